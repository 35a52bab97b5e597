package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

func ptr[T any](v T) *T { return &v }

// A zone far from UTC and nanoseconds, to catch lossy time handling.
var tokyo = time.FixedZone("JST", 9*3600)

func newInstallation(key string) *store.Installation {
	return &store.Installation{
		ClientKey:      key,
		BaseURL:        "https://" + key + ".atlassian.net",
		DisplayURL:     "https://jira." + key + ".example",
		ProductType:    "jira",
		Description:    "Atlassian JIRA at https://" + key + ".atlassian.net",
		InstallationID: "ari:cloud:ecosystem::installation/" + key,
		OAuthClientID:  "oauth-" + key,
		ServerVersion:  "100264",
		PluginsVersion: "1001.0.0-SNAPSHOT",
		SharedSecret:   ptr("v1.k1.sealed-" + key),
		State:          store.StateInstalled,
		InstalledAt:    time.Date(2025, 3, 30, 1, 2, 3, 456789123, tokyo),
	}
}

func openWithClock(t *testing.T, d string) (*store.DB, *fakeClock) {
	clock := &fakeClock{t: time.Date(2025, 4, 1, 12, 0, 0, 987654321, tokyo)}
	return storetest.OpenOptions(t, d, store.Options{Now: clock.Now}), clock
}

func mustGet(t *testing.T, db *store.DB, key string) *store.Installation {
	t.Helper()
	got, err := db.GetInstallation(context.Background(), key)
	if err != nil {
		t.Fatalf("GetInstallation(%q): %v", key, err)
	}
	return got
}

func TestInstallationRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, d := range storetest.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			db, clock := openWithClock(t, d)
			in := newInstallation("acme")
			if err := db.UpsertInstallation(ctx, in); err != nil {
				t.Fatal(err)
			}
			// The struct now holds exactly what was stored.
			wantInstalled := time.Date(2025, 3, 29, 16, 2, 3, 456789000, time.UTC)
			if !in.InstalledAt.Equal(wantInstalled) || in.InstalledAt.Location() != time.UTC {
				t.Errorf("InstalledAt normalized to %v, want %v", in.InstalledAt, wantInstalled)
			}
			if want := time.Date(2025, 4, 1, 3, 0, 0, 987654000, time.UTC); in.UpdatedAt != want {
				t.Errorf("UpdatedAt = %v, want the injected clock %v", in.UpdatedAt, want)
			}
			got := mustGet(t, db, "acme")
			// == on time.Time also compares locations: both must be UTC.
			if diff := cmp.Diff(in, got, cmp.Comparer(func(a, b time.Time) bool { return a == b })); diff != "" {
				t.Errorf("round trip (-put +got):\n%s", diff)
			}

			// Reinstall: every column is overwritten, nullable times cleared.
			clock.Advance(time.Hour)
			re := newInstallation("acme")
			re.BaseURL = "https://renamed.atlassian.net"
			re.DisplayURL = ""
			re.SharedSecret = ptr("v1.k2.new")
			re.InstalledAt = time.Time{} // zero: the store's clock
			if err := db.UpsertInstallation(ctx, re); err != nil {
				t.Fatal(err)
			}
			got = mustGet(t, db, "acme")
			if diff := cmp.Diff(re, got); diff != "" {
				t.Errorf("after reinstall (-put +got):\n%s", diff)
			}
			if !got.InstalledAt.Equal(db.Now()) || got.DisplayURL != "" || *got.SharedSecret != "v1.k2.new" {
				t.Errorf("reinstall not applied: %+v", got)
			}
		})
	}
}

func TestInstallationLifecycle(t *testing.T) {
	ctx := context.Background()
	for _, d := range storetest.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			db, clock := openWithClock(t, d)
			if err := db.UpsertInstallation(ctx, newInstallation("acme")); err != nil {
				t.Fatal(err)
			}

			for _, enabled := range []bool{true, false, true} {
				clock.Advance(time.Minute)
				if err := db.SetInstallationEnabled(ctx, "acme", enabled); err != nil {
					t.Fatal(err)
				}
				got := mustGet(t, db, "acme")
				want := map[bool]string{true: store.StateEnabled, false: store.StateDisabled}[enabled]
				if got.State != want || !got.UpdatedAt.Equal(db.Now()) {
					t.Errorf("after SetInstallationEnabled(%v): state %q updated %v", enabled, got.State, got.UpdatedAt)
				}
			}

			clock.Advance(time.Minute)
			at := time.Date(2025, 5, 1, 10, 0, 0, 123456789, tokyo)
			purge := at.Add(30 * 24 * time.Hour)
			if err := db.MarkUninstalled(ctx, "acme", at, &purge); err != nil {
				t.Fatal(err)
			}
			got := mustGet(t, db, "acme")
			if got.State != store.StateUninstalled || got.SharedSecret != nil {
				t.Errorf("after MarkUninstalled: state %q secret %v", got.State, got.SharedSecret)
			}
			if got.UninstalledAt == nil || *got.UninstalledAt != at.UTC().Truncate(time.Microsecond) {
				t.Errorf("UninstalledAt = %v, want %v", got.UninstalledAt, at.UTC())
			}
			if got.PurgeAfter == nil || *got.PurgeAfter != purge.UTC().Truncate(time.Microsecond) {
				t.Errorf("PurgeAfter = %v, want %v", got.PurgeAfter, purge.UTC())
			}
			if !got.UpdatedAt.Equal(db.Now()) {
				t.Errorf("UpdatedAt = %v, want %v", got.UpdatedAt, db.Now())
			}

			// An uninstalled installation cannot be enabled or disabled.
			for _, enabled := range []bool{true, false} {
				if err := db.SetInstallationEnabled(ctx, "acme", enabled); apperr.CodeOf(err) != apperr.NotFound {
					t.Errorf("SetInstallationEnabled(uninstalled, %v) = %v, want not_found", enabled, err)
				}
			}
			if mustGet(t, db, "acme").State != store.StateUninstalled {
				t.Error("state changed on an uninstalled installation")
			}

			// Uninstall without retention.
			if err := db.MarkUninstalled(ctx, "acme", at, nil); err != nil {
				t.Fatal(err)
			}
			if got := mustGet(t, db, "acme"); got.PurgeAfter != nil {
				t.Errorf("PurgeAfter = %v, want nil", got.PurgeAfter)
			}

			// Reinstall revives it with a fresh secret and no uninstall times.
			if err := db.UpsertInstallation(ctx, newInstallation("acme")); err != nil {
				t.Fatal(err)
			}
			got = mustGet(t, db, "acme")
			if got.State != store.StateInstalled || got.SharedSecret == nil || got.UninstalledAt != nil || got.PurgeAfter != nil {
				t.Errorf("after reinstall: %+v", got)
			}
		})
	}
}

func TestInstallationNotFound(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		_, err := db.GetInstallation(ctx, "missing")
		if apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("GetInstallation = %v, want not_found", err)
		}
		var ae *apperr.Error
		if !errors.As(err, &ae) || ae.Message != "installation not found" {
			t.Errorf("error = %#v", err)
		}
		if err := db.SetInstallationEnabled(ctx, "missing", true); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("SetInstallationEnabled = %v, want not_found", err)
		}
		if err := db.MarkUninstalled(ctx, "missing", time.Now(), nil); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("MarkUninstalled = %v, want not_found", err)
		}
		list, err := db.ListInstallations(ctx)
		if err != nil || len(list) != 0 {
			t.Errorf("ListInstallations = %v, %v; want empty", list, err)
		}
	})
}

func TestUpsertValidation(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		for name, mutate := range map[string]func(*store.Installation){
			"no client key":           func(i *store.Installation) { i.ClientKey = "" },
			"no base url":             func(i *store.Installation) { i.BaseURL = "" },
			"bad state":               func(i *store.Installation) { i.State = "paused" },
			"uninstalled with secret": func(i *store.Installation) { i.State = store.StateUninstalled },
		} {
			in := newInstallation("acme")
			mutate(in)
			if err := db.UpsertInstallation(ctx, in); apperr.CodeOf(err) != apperr.Invalid {
				t.Errorf("%s: err = %v, want invalid", name, err)
			}
		}
	})
}

// The database enforces the state CHECK and the unique client key even for
// writes that bypass the repository, and the errors map to apperr codes.
func TestConstraintsAndErrorMapping(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		in := newInstallation("acme")
		in.UpdatedAt = in.InstalledAt
		if err := db.Gorm.WithContext(ctx).Create(in).Error; err != nil {
			t.Fatal(err)
		}
		err := store.MapError(db.Gorm.WithContext(ctx).Create(newInstallation("acme")).Error, "installation")
		if apperr.CodeOf(err) != apperr.Conflict {
			t.Errorf("duplicate insert = %v, want conflict", err)
		}

		bad := newInstallation("other")
		bad.State = "paused"
		bad.UpdatedAt = bad.InstalledAt
		err = store.MapError(db.Gorm.WithContext(ctx).Create(bad).Error, "installation")
		if apperr.CodeOf(err) != apperr.Internal || errors.Unwrap(err) == nil {
			t.Errorf("CHECK violation = %v, want internal with cause", err)
		}

		gone := newInstallation("gone")
		gone.State = store.StateUninstalled
		gone.UpdatedAt = gone.InstalledAt
		if err := db.Gorm.WithContext(ctx).Create(gone).Error; err == nil {
			t.Error("uninstalled row with a shared secret accepted")
		}

		if store.MapError(nil, "x") != nil {
			t.Error("MapError(nil) != nil")
		}
		already := apperr.New(apperr.Forbidden, "no")
		if store.MapError(already, "x") != already {
			t.Error("MapError does not pass *apperr.Error through")
		}
	})
}

func TestListInstallations(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		var want []store.Installation
		for _, k := range []string{"c", "a", "b"} {
			in := newInstallation(k)
			if err := db.UpsertInstallation(ctx, in); err != nil {
				t.Fatal(err)
			}
			want = append(want, *in)
		}
		if err := db.MarkUninstalled(ctx, "b", time.Now(), nil); err != nil {
			t.Fatal(err)
		}
		got, err := db.ListInstallations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]string, len(got))
		for i, g := range got {
			keys[i] = g.ClientKey + ":" + g.State
		}
		if diff := cmp.Diff([]string{"a:installed", "b:uninstalled", "c:installed"}, keys); diff != "" {
			t.Errorf("ListInstallations (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want[1], got[0]); diff != "" {
			t.Errorf("listed row differs (-want +got):\n%s", diff)
		}
	})
}

// Times compare correctly in SQL on both dialects (SQLite compares the
// stored text), which a purge job relies on.
func TestTimeComparisonsInSQL(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		base := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
		offsets := []time.Duration{
			-time.Hour, -time.Second, -500 * time.Millisecond, -time.Microsecond, 0,
			time.Microsecond, 120 * time.Millisecond, 500 * time.Millisecond, time.Second, 24 * time.Hour,
		}
		for i, off := range offsets {
			k := fmt.Sprintf("k%02d", i)
			if err := db.UpsertInstallation(ctx, newInstallation(k)); err != nil {
				t.Fatal(err)
			}
			// Written in another zone on purpose: the store normalizes.
			if err := db.MarkUninstalled(ctx, k, base, ptr(base.Add(off).In(tokyo))); err != nil {
				t.Fatal(err)
			}
		}
		// Pivots in another zone too: SQLite compares text, so the store
		// must write every time argument in UTC.
		for _, pivot := range []time.Time{base, base.Add(300 * time.Millisecond).In(tokyo), base.Add(-time.Minute).In(tokyo)} {
			want := 0
			for _, off := range offsets {
				if base.Add(off).Before(pivot) {
					want++
				}
			}
			var n int64
			if err := db.Gorm.WithContext(ctx).Model(&store.Installation{}).
				Where("purge_after < ?", pivot).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			if int(n) != want {
				t.Errorf("purge_after < %v: %d rows, want %d", pivot, n, want)
			}
		}
		var latest []store.Installation
		if err := db.Gorm.WithContext(ctx).Order("purge_after DESC").Limit(2).Find(&latest).Error; err != nil {
			t.Fatal(err)
		}
		if len(latest) != 2 || latest[0].ClientKey != "k09" || latest[1].ClientKey != "k08" {
			t.Errorf("ORDER BY purge_after DESC = %v", latest)
		}
	})
}

func TestTx(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		boom := apperr.New(apperr.Conflict, "boom")
		err := db.Tx(ctx, func(tx *store.DB) error {
			if err := tx.UpsertInstallation(ctx, newInstallation("rolled-back")); err != nil {
				return err
			}
			if _, err := tx.GetInstallation(ctx, "rolled-back"); err != nil {
				t.Errorf("row not visible inside its transaction: %v", err)
			}
			return boom
		})
		if err != boom {
			t.Errorf("Tx = %v, want fn's error unchanged", err)
		}
		if _, err := db.GetInstallation(ctx, "rolled-back"); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("rolled back row visible: %v", err)
		}

		err = db.Tx(ctx, func(tx *store.DB) error {
			if err := tx.UpsertInstallation(ctx, newInstallation("committed")); err != nil {
				return err
			}
			// Nested: the inner failure rolls back to its savepoint only.
			_ = tx.Tx(ctx, func(inner *store.DB) error {
				if err := inner.UpsertInstallation(ctx, newInstallation("inner")); err != nil {
					return err
				}
				return boom
			})
			return tx.SetInstallationEnabled(ctx, "committed", true)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, db, "committed"); got.State != store.StateEnabled {
			t.Errorf("state = %q", got.State)
		}
		if _, err := db.GetInstallation(ctx, "inner"); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("inner savepoint not rolled back: %v", err)
		}

		func() {
			defer func() {
				if recover() == nil {
					t.Error("panic swallowed")
				}
			}()
			_ = db.Tx(ctx, func(tx *store.DB) error {
				_ = tx.UpsertInstallation(ctx, newInstallation("panicked"))
				panic("boom")
			})
		}()
		if _, err := db.GetInstallation(ctx, "panicked"); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("row of a panicking transaction visible: %v", err)
		}
	})
}

func TestContextCancelled(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := db.GetInstallation(ctx, "acme")
		if err == nil || apperr.CodeOf(err) == apperr.NotFound {
			t.Fatalf("GetInstallation with a cancelled context = %v", err)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v does not wrap context.Canceled", err)
		}
	})
}

// Times written by any query (not only the repository's, which
// normalizes) are stored in UTC on SQLite, whatever their zone or wrapper.
func TestSQLiteWritesTimesInUTC(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.DialectSQLite)
	if err := db.UpsertInstallation(ctx, newInstallation("acme")); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 7, 1, 9, 30, 0, 123456789, tokyo)
	for name, arg := range map[string]any{
		"time.Time":    at,
		"*time.Time":   &at,
		"sql.NullTime": sql.NullTime{Time: at, Valid: true},
	} {
		storetest.Exec(t, db, "UPDATE installations SET purge_after = ? WHERE client_key = ?", arg, "acme")
		var text string
		if err := db.Gorm.Raw("SELECT CAST(purge_after AS TEXT) FROM installations").Scan(&text).Error; err != nil {
			t.Fatal(err)
		}
		if want := "2025-07-01 00:30:00.123456789+00:00"; text != want {
			t.Errorf("%s stored as %q, want %q", name, text, want)
		}
		got := mustGet(t, db, "acme")
		if got.PurgeAfter == nil || !got.PurgeAfter.Equal(at.Truncate(time.Microsecond)) {
			t.Errorf("%s read back as %v", name, got.PurgeAfter)
		}
	}
	storetest.Exec(t, db, "UPDATE installations SET purge_after = ? WHERE client_key = ?", (*time.Time)(nil), "acme")
	if got := mustGet(t, db, "acme"); got.PurgeAfter != nil {
		t.Errorf("nil *time.Time stored as %v", got.PurgeAfter)
	}
}
