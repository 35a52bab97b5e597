package store

// Internals for the external tests (package store_test cannot be internal:
// it imports storetest, which imports store).

var (
	MapError = mapError
	ParseURL = func(raw string) (dialect, dsn, dir string, err error) {
		t, err := parseURL(raw)
		return t.dialect, t.dsn, t.dir, err
	}
)
