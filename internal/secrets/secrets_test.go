package secrets_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/secrets"
)

// keyBytes returns 32 bytes whose base64 spellings contain both '+' and '/'
// (std) or '-' and '_' (URL), so the alphabet handling is exercised.
func keyBytes(seed byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = 0xfb ^ seed ^ byte(i*7)
	}
	return b
}

func spec(kid string, key []byte) string {
	return kid + ":" + base64.StdEncoding.EncodeToString(key)
}

func mustRing(t *testing.T, s string) *secrets.KeyRing {
	t.Helper()
	r, err := secrets.ParseKeyRing(s)
	if err != nil {
		t.Fatalf("ParseKeyRing: %v", err)
	}
	return r
}

func mustSeal(t *testing.T, r *secrets.KeyRing, pt, aad string) string {
	t.Helper()
	s, err := r.Seal([]byte(pt), []byte(aad))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return s
}

func wantDecryptFailed(t *testing.T, pt []byte, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("Open succeeded with %q, want decrypt_failed error", pt)
	}
	if pt != nil {
		t.Errorf("Open returned plaintext %q alongside error", pt)
	}
	if got := apperr.CodeOf(err); got != apperr.Internal {
		t.Errorf("code = %q, want internal", got)
	}
	if got := apperr.ReasonOf(err); got != secrets.ReasonDecryptFailed {
		t.Errorf("reason = %q, want %q", got, secrets.ReasonDecryptFailed)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := mustRing(t, spec("k1", keyBytes(1)))
	for _, pt := range []string{"", "s", "a shared secret of some length: " + strings.Repeat("x", 300)} {
		sealed := mustSeal(t, r, pt, "client-key-1")
		if !regexp.MustCompile(`^v1\.k1\.[A-Za-z0-9_-]+$`).MatchString(sealed) {
			t.Fatalf("sealed %q does not look like v1.k1.<base64url>", sealed)
		}
		if len(pt) >= 8 && strings.Contains(sealed, pt) {
			t.Fatal("sealed string contains the plaintext")
		}
		got, err := r.Open(sealed, []byte("client-key-1"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if got == nil || string(got) != pt {
			t.Fatalf("Open = %q (nil=%v), want %q", got, got == nil, pt)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	r := mustRing(t, spec("k1", keyBytes(1)))
	seen := map[string]bool{}
	for range 100 {
		s := mustSeal(t, r, "same", "aad")
		if seen[s] {
			t.Fatal("two seals of the same plaintext are identical")
		}
		seen[s] = true
	}
}

func TestOpenFailures(t *testing.T) {
	r := mustRing(t, spec("k1", keyBytes(1))+","+spec("k0", keyBytes(0)))
	other := mustRing(t, spec("k9", keyBytes(9)))
	sealed := mustSeal(t, r, "secret", "row-A")
	_, payload, _ := strings.Cut(strings.TrimPrefix(sealed, "v1."), ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return "v1.k1." + base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		name   string
		sealed string
		aad    string
	}{
		{"wrong aad (swapped between rows)", sealed, "row-B"},
		{"empty aad", sealed, ""},
		{"tampered nonce", flip(0), "row-A"},
		{"tampered ciphertext", flip(12), "row-A"},
		{"tampered tag", flip(len(raw) - 1), "row-A"},
		{"truncated", sealed[:len(sealed)-4], "row-A"},
		{"too short", "v1.k1.AAAA", "row-A"},
		{"unknown kid", mustSeal(t, other, "secret", "row-A"), "row-A"},
		{"kid relabelled", "v1.k0." + payload, "row-A"},
		{"wrong version", "v2.k1." + payload, "row-A"},
		{"no version", "k1." + payload, "row-A"},
		{"not base64", "v1.k1.***", "row-A"},
		{"plaintext stored by mistake", "hunter2", "row-A"},
		{"dotted plaintext stored by mistake", "hunter2.k1.x", "row-A"},
		{"empty", "", "row-A"},
		{"bad kid", "v1.k/1." + payload, "row-A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := r.Open(tt.sealed, []byte(tt.aad))
			wantDecryptFailed(t, pt, err)
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error echoes the input: %v", err)
			}
		})
	}
	// The logged cause says why, for the operator.
	for sealed, want := range map[string]string{
		"v2.k1." + payload: `unsupported format version "v2"`,
		"v1.k7." + payload: `unknown kid "k7"`,
		sealed:             "authentication failed",
	} {
		_, err := r.Open(sealed, []byte("row-B"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%.12s...) = %v, want cause %q", sealed, err, want)
		}
	}
}

func TestRotation(t *testing.T) {
	old := mustRing(t, spec("k2024", keyBytes(1)))
	sealedOld := mustSeal(t, old, "secret", "ck")

	rotated := mustRing(t, spec("k2025", keyBytes(2))+","+spec("k2024", keyBytes(1)))
	if rotated.PrimaryKID() != "k2025" {
		t.Fatalf("PrimaryKID = %q", rotated.PrimaryKID())
	}
	if !rotated.NeedsRotation(sealedOld) {
		t.Error("NeedsRotation(old) = false, want true")
	}
	got, err := rotated.Open(sealedOld, []byte("ck"))
	if err != nil || string(got) != "secret" {
		t.Fatalf("Open(old) = %q, %v", got, err)
	}
	sealedNew := mustSeal(t, rotated, string(got), "ck")
	if !strings.HasPrefix(sealedNew, "v1.k2025.") {
		t.Errorf("resealed under %q, want primary k2025", sealedNew)
	}
	if rotated.NeedsRotation(sealedNew) {
		t.Error("NeedsRotation(new) = true, want false")
	}
	if !rotated.NeedsRotation("garbage") {
		t.Error("NeedsRotation(garbage) = false, want true so a sweep surfaces it")
	}
	// The old ring cannot read what the new primary sealed.
	pt, err := old.Open(sealedNew, []byte("ck"))
	wantDecryptFailed(t, pt, err)
}

func TestParseKeyRingAcceptsEncodings(t *testing.T) {
	k := keyBytes(3)
	encs := map[string]string{
		"std":        base64.StdEncoding.EncodeToString(k),
		"url":        base64.URLEncoding.EncodeToString(k),
		"raw std":    base64.RawStdEncoding.EncodeToString(k),
		"raw url":    base64.RawURLEncoding.EncodeToString(k),
		"whitespace": "  " + base64.StdEncoding.EncodeToString(k) + " ",
	}
	if !strings.ContainsAny(encs["std"], "+/") || !strings.ContainsAny(encs["url"], "-_") {
		t.Fatalf("test key does not exercise both alphabets: %s %s", encs["std"], encs["url"])
	}
	ref := mustRing(t, spec("a", k))
	sealed := mustSeal(t, ref, "x", "")
	for name, e := range encs {
		t.Run(name, func(t *testing.T) {
			r := mustRing(t, "a:"+e)
			if got, err := r.Open(sealed, nil); err != nil || string(got) != "x" {
				t.Fatalf("Open = %q, %v; the encodings decode to different keys", got, err)
			}
		})
	}
	long := strings.Repeat("K", 32)
	if r := mustRing(t, long+":"+encs["std"]+" , B_-9:"+encs["url"]); strings.Join(r.KIDs(), ",") != long+",B_-9" {
		t.Errorf("KIDs = %v", r.KIDs())
	}
}

func TestParseKeyRingErrors(t *testing.T) {
	k32 := base64.StdEncoding.EncodeToString(keyBytes(4))
	k16 := base64.StdEncoding.EncodeToString(keyBytes(5)[:16])
	k33 := base64.StdEncoding.EncodeToString(append(keyBytes(6), 1))
	tests := []struct {
		name, spec, want string
		material         []string // must not appear in the error
	}{
		{"empty", "", "empty", nil},
		{"blank", "   ", "empty", nil},
		{"empty entry", "a:" + k32 + ",", "entry 2 is empty", []string{k32}},
		{"no colon", k32, "no ':'", []string{k32}},
		{"empty kid", ":" + k32, "kid must be", []string{k32}},
		{"kid too long", strings.Repeat("a", 33) + ":" + k32, "kid must be", []string{k32}},
		{"kid bad char", "a.b:" + k32, "kid must be", []string{k32}},
		{"key pasted as kid", k32 + ":" + k32, "kid must be", []string{k32, k32[:20]}},
		{"duplicate kid", "a:" + k32 + ",a:" + k32, `duplicate kid "a"`, []string{k32}},
		{"short key", "a:" + k16, "got 16", []string{k16}},
		{"long key", "a:" + k33, "got 33", []string{k33}},
		{"not base64", "a:" + strings.Repeat("!", 44), "not valid base64", []string{"!!!!"}},
		{"hex key", "a:" + hex.EncodeToString(keyBytes(7)), "got 48", []string{hex.EncodeToString(keyBytes(7))}},
		{"empty key", "a:", "got 0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := secrets.ParseKeyRing(tt.spec)
			if err == nil {
				t.Fatalf("ParseKeyRing succeeded: %v", r)
			}
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Errorf("code = %q, want invalid", apperr.CodeOf(err))
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			for _, m := range tt.material {
				if strings.Contains(msg, m) {
					t.Errorf("error %q echoes key material", msg)
				}
			}
		})
	}
}

func TestKeyRingNeverPrintsKeys(t *testing.T) {
	k1, k2 := keyBytes(8), keyBytes(9)
	r := mustRing(t, spec("prim", k1)+","+spec("old", k2))
	type holder struct {
		Ring  *secrets.KeyRing
		ring  secrets.KeyRing
		rings []*secrets.KeyRing
	}
	h := holder{Ring: r, ring: *r, rings: []*secrets.KeyRing{r}}
	var nilRing *secrets.KeyRing
	outs := []string{r.String(), r.GoString(), (*r).String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, r), fmt.Sprintf(verb, *r), fmt.Sprintf(verb, h), fmt.Sprintf(verb, nilRing))
	}
	for _, k := range [][]byte{k1, k2} {
		forbidden := []string{
			base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k)[:16],
			hex.EncodeToString(k)[:16], strings.ToUpper(hex.EncodeToString(k)[:16]), string(k[:8]),
			fmt.Sprint(k[:6])[1:20], // decimal byte lists as %v would print them
		}
		for _, out := range outs {
			for _, f := range forbidden {
				if strings.Contains(out, f) {
					t.Fatalf("formatted key ring %q contains key material %q", out, f)
				}
			}
		}
	}
	if want := "secrets.KeyRing{primary: prim, kids: [prim old]}"; r.String() != want || fmt.Sprintf("%#v", r) != want {
		t.Errorf("String = %q, %%#v = %q; want %q", r.String(), fmt.Sprintf("%#v", r), want)
	}
}

func TestGenerateKeySpec(t *testing.T) {
	s, err := secrets.GenerateKeySpec()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^k\d{8}:[A-Za-z0-9+/]{43}=$`).MatchString(s) {
		t.Fatalf("spec %q does not look like k<yyyymmdd>:<base64>", s)
	}
	r := mustRing(t, s)
	sealed := mustSeal(t, r, "x", "y")
	if got, err := r.Open(sealed, []byte("y")); err != nil || string(got) != "x" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	s2, _ := secrets.GenerateKeySpec()
	if s2 == s {
		t.Fatal("two generated specs are equal")
	}
}

func TestLoadOrCreateDevKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keys")
	spec1, created, err := secrets.LoadOrCreateDevKey(dir)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	mustRing(t, spec1)
	fi, err := os.Stat(filepath.Join(dir, secrets.DevKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %#o, want 0600", perm)
	}
	di, _ := os.Stat(dir)
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("key dir mode %#o, want 0700", perm)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir has %d entries, want only the key file (temp file left behind?)", len(entries))
	}

	spec2, created, err := secrets.LoadOrCreateDevKey(dir)
	if err != nil || created || spec2 != spec1 {
		t.Fatalf("second call: created=%v err=%v same=%v", created, err, spec2 == spec1)
	}

	if err := os.Chmod(filepath.Join(dir, secrets.DevKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := secrets.LoadOrCreateDevKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key file: err = %v, want refusal", err)
	} else if strings.Contains(err.Error(), spec1[strings.Index(spec1, ":")+1:]) {
		t.Errorf("error echoes the key: %v", err)
	}
}

func TestLoadOrCreateDevKeyRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, secrets.DevKeyFile), []byte("a:c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := secrets.LoadOrCreateDevKey(dir)
	if err == nil || strings.Contains(err.Error(), "c2hvcnQ") {
		t.Fatalf("err = %v, want a refusal that does not echo the key", err)
	}
}

func TestLoadOrCreateDevKeyConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "k")
	const n = 8
	specs := make([]string, n)
	createdCount := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, created, err := secrets.LoadOrCreateDevKey(dir)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			specs[i] = s
			if created {
				createdCount++
			}
		})
	}
	wg.Wait()
	if createdCount != 1 {
		t.Errorf("%d callers created the key, want 1", createdCount)
	}
	for _, s := range specs[1:] {
		if s != specs[0] {
			t.Fatal("concurrent callers got different keys")
		}
	}
}
