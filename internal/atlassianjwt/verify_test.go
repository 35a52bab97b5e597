package atlassianjwt

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sei-io/jira-connect/internal/apperr"
)

const (
	testClientKey = "8db1f5a2-5b4c-3c9e-9d0e-1f2a3b4c5d6e"
	webhookURL    = "https://app.example.com/connect/webhooks/jira/issue-updated?issue_id=10001&project_id=10000&user_id=5b10ac8d82e05b22cc7d4ef5"
)

var testSecret = []byte("Xq3v9GZkR2Lw7sTn5bYc8hJd4fMp6aE1uK0oWi2yQrVtBxNzCgHjAlSeDmFu")

func hsClaims(u *url.URL, method string) map[string]any {
	return map[string]any{
		"iss":     testClientKey,
		"sub":     "5b10ac8d82e05b22cc7d4ef5",
		"iat":     testNow.Add(-time.Minute).Unix(),
		"exp":     testNow.Add(2 * time.Minute).Unix(),
		"qsh":     QSH(method, u, "/connect"),
		"context": map[string]any{},
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestVerify(t *testing.T) {
	u := mustURL(t, webhookURL)
	base := hsClaims(u, "POST")
	hs := hmacWith(testSecret)
	hdr := map[string]string{"alg": "HS256", "typ": "JWT"}
	rsa := rsaKey(t, "other", 2048)
	pemKey := pkixPEM(t, &rsa.PublicKey)

	tests := []struct {
		name        string
		token       string
		method, url string // default POST webhookURL
		allowCtx    bool
		leeway      time.Duration
		reason      string // "" means accepted
		noLookup    bool   // rejected before the secret is looked up
	}{
		{name: "valid", token: craft(t, hdr, base, hs)},
		{name: "lower-case method is the same request", token: craft(t, hdr, base, hs), method: "post"},
		{name: "alg none unsigned", token: craft(t, map[string]string{"alg": "none"}, base, noSig), reason: "bad_alg", noLookup: true},
		{name: "alg none with a valid MAC", token: craft(t, map[string]string{"alg": "none"}, base, hs), reason: "bad_alg", noLookup: true},
		{name: "alg lower-case", token: craft(t, map[string]string{"alg": "hs256"}, base, hs), reason: "bad_alg", noLookup: true},
		{name: "alg HS512", token: craft(t, map[string]string{"alg": "HS512"}, base, hs), reason: "bad_alg", noLookup: true},
		{name: "alg RS256", token: craft(t, map[string]string{"alg": "RS256"}, base, rsaWith(rsa)), reason: "bad_alg", noLookup: true},
		{name: "alg missing", token: craft(t, map[string]string{"typ": "JWT"}, base, hs), reason: "bad_alg", noLookup: true},
		{name: "HS256 keyed with a public key", token: craft(t, hdr, base, hmacWith(pemKey)), reason: "bad_signature"},
		{name: "wrong secret", token: craft(t, hdr, base, hmacWith([]byte("not the secret"))), reason: "bad_signature"},
		{name: "signature of another token", token: mixSig(craft(t, hdr, base, hs), craft(t, hdr, with(base, "sub", "x"), hs)), reason: "bad_signature"},
		{name: "unknown issuer", token: craft(t, hdr, with(base, "iss", "someone-else"), hs), reason: "unknown_issuer"},
		{name: "no issuer", token: craft(t, hdr, with(base, "iss", nil), hs), reason: "unknown_issuer", noLookup: true},
		{name: "exp missing", token: craft(t, hdr, with(base, "exp", nil), hs), reason: "missing_exp"},
		{name: "exp zero", token: craft(t, hdr, with(base, "exp", 0), hs), reason: "bad_exp"},
		{name: "exp negative", token: craft(t, hdr, with(base, "exp", -1), hs), reason: "bad_exp"},
		{name: "exp quoted", token: craft(t, hdr, with(base, "exp", "9999999999"), hs), reason: "bad_exp"},
		{name: "exp null", token: craft(t, hdr, with(base, "exp", json.RawMessage("null")), hs), reason: "bad_exp"},
		{name: "exp object", token: craft(t, hdr, with(base, "exp", map[string]int{"a": 1}), hs), reason: "bad_exp"},
		{name: "exp huge", token: craft(t, hdr, with(base, "exp", 1e300), hs), reason: "bad_exp"},
		{name: "exp past", token: craft(t, hdr, with(base, "exp", testNow.Add(-time.Second).Unix()), hs), reason: "expired"},
		{name: "exp now", token: craft(t, hdr, with(base, "exp", testNow.Unix()), hs), reason: "expired"},
		{name: "exp past within leeway", token: craft(t, hdr, with(base, "exp", testNow.Add(-10*time.Second).Unix()), hs), leeway: 30 * time.Second},
		{name: "exp past beyond leeway", token: craft(t, hdr, with(base, "exp", testNow.Add(-time.Minute).Unix()), hs), leeway: 30 * time.Second, reason: "expired"},
		{name: "exp fractional", token: craft(t, hdr, with(base, "exp", float64(testNow.Unix())+0.5), hs)},
		{name: "iat quoted", token: craft(t, hdr, with(base, "iat", "1"), hs), reason: "malformed"},
		{name: "aud a number", token: craft(t, hdr, with(base, "aud", 7), hs), reason: "malformed"},
		{name: "iss a number", token: craft(t, hdr, with(base, "iss", 7), hs), reason: "malformed", noLookup: true},
		{name: "qsh missing", token: craft(t, hdr, with(base, "qsh", nil), hs), reason: "bad_qsh"},
		{name: "qsh for another method", token: craft(t, hdr, base, hs), method: "GET", reason: "bad_qsh"},
		{name: "qsh for another path", token: craft(t, hdr, base, hs), url: strings.Replace(webhookURL, "issue-updated", "issue-deleted", 1), reason: "bad_qsh"},
		{name: "qsh for another query", token: craft(t, hdr, base, hs), url: strings.Replace(webhookURL, "10001", "10002", 1), reason: "bad_qsh"},
		{name: "qsh with an added parameter", token: craft(t, hdr, base, hs), url: webhookURL + "&admin=true", reason: "bad_qsh"},
		{name: "qsh in upper case", token: craft(t, hdr, with(base, "qsh", strings.ToUpper(QSH("POST", u, "/connect"))), hs), reason: "bad_qsh"},
		{name: "context qsh not allowed", token: craft(t, hdr, with(base, "qsh", ContextQSH), hs), reason: "context_qsh_not_allowed"},
		{name: "context qsh allowed", token: craft(t, hdr, with(base, "qsh", ContextQSH), hs), allowCtx: true, url: "https://app.example.com/connect/api/anything?x=1"},
		{name: "empty", token: "", reason: "missing_token", noLookup: true},
		{name: "two segments", token: "eyJhbGciOiJIUzI1NiJ9.e30", reason: "malformed", noLookup: true},
		{name: "four segments", token: craft(t, hdr, base, hs) + ".x", reason: "malformed", noLookup: true},
		{name: "padded signature", token: craft(t, hdr, base, hs) + "=", reason: "malformed", noLookup: true},
		{name: "standard base64 header", token: "eyJhbGciOiJIUzI1NiJ9+." + strings.SplitN(craft(t, hdr, base, hs), ".", 2)[1], reason: "malformed", noLookup: true},
		{name: "payload not JSON", token: b64.EncodeToString([]byte(`{"alg":"HS256"}`)) + "." + b64.EncodeToString([]byte("nope")) + ".", reason: "malformed", noLookup: true},
		{name: "payload an array", token: craft(t, hdr, []int{1}, hs), reason: "malformed", noLookup: true},
		{name: "too long", token: strings.Repeat(".", 1<<20), reason: "too_long", noLookup: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &countingSource{Installation: Installation{testClientKey, testSecret}}
			v := &Verifier{BasePath: "/connect", Secrets: src, Now: fixedNow, Leeway: tc.leeway}
			method, raw := "POST", webhookURL
			if tc.method != "" {
				method = tc.method
			}
			if tc.url != "" {
				raw = tc.url
			}
			c, err := v.Verify(context.Background(), tc.token, method, mustURL(t, raw), tc.allowCtx)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if c.Issuer != testClientKey || c.Subject != "5b10ac8d82e05b22cc7d4ef5" {
					t.Errorf("claims %+v", c)
				}
				return
			}
			wantReason(t, err, tc.reason)
			if c != nil {
				t.Error("claims returned with an error")
			}
			if n := src.calls.Load(); tc.noLookup && n != 0 {
				t.Errorf("%d secret lookups, want none", n)
			}
		})
	}
}

// mixSig puts b's signature on a's header and payload.
func mixSig(a, b string) string {
	return a[:strings.LastIndexByte(a, '.')] + b[strings.LastIndexByte(b, '.'):]
}

func TestVerifyClaims(t *testing.T) {
	u := mustURL(t, webhookURL)
	claims := with(hsClaims(u, "POST"), "aud", []string{testClientKey}, "context", map[string]any{"user": map[string]string{"accountId": "abc"}})
	tok, err := SignHS256(testSecret, claims)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{BasePath: "/connect/", Secrets: Installation{testClientKey, testSecret}, Now: fixedNow}
	got, err := v.Verify(context.Background(), tok, "POST", u, false)
	if err != nil {
		t.Fatal(err)
	}
	want := &Claims{
		Issuer:    testClientKey,
		Subject:   "5b10ac8d82e05b22cc7d4ef5",
		Audience:  []string{testClientKey},
		QSH:       QSH("POST", u, "/connect"),
		ExpiresAt: time.Unix(testNow.Add(2*time.Minute).Unix(), 0),
		IssuedAt:  time.Unix(testNow.Add(-time.Minute).Unix(), 0),
		Context:   json.RawMessage(`{"user":{"accountId":"abc"}}`),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("claims (-want +got):\n%s", d)
	}
}

// An unknown issuer and a bad signature must look the same to the caller.
func TestUnknownIssuerLooksLikeBadSignature(t *testing.T) {
	u := mustURL(t, webhookURL)
	v := &Verifier{BasePath: "/connect", Secrets: Installation{testClientKey, testSecret}, Now: fixedNow}
	unknown, _ := SignHS256(testSecret, with(hsClaims(u, "POST"), "iss", "not-installed"))
	forged, _ := SignHS256([]byte("guess"), hsClaims(u, "POST"))
	_, e1 := v.Verify(context.Background(), unknown, "POST", u, false)
	_, e2 := v.Verify(context.Background(), forged, "POST", u, false)
	a, b := apperr.As(e1), apperr.As(e2)
	if a.Code != b.Code || a.Message != b.Message || a.Err != nil || b.Err != nil {
		t.Errorf("distinguishable: %+v vs %+v", a, b)
	}
	if a.Reason != "unknown_issuer" || b.Reason != "bad_signature" {
		t.Errorf("reasons %q, %q", a.Reason, b.Reason)
	}
}

func TestVerifySecretSourceFailures(t *testing.T) {
	u := mustURL(t, webhookURL)
	tok, _ := SignHS256(testSecret, hsClaims(u, "POST"))
	tests := []struct {
		name   string
		err    error
		secret []byte
		code   apperr.Code
	}{
		{"not found", apperr.New(apperr.NotFound, "no such installation"), nil, apperr.Unauthorized},
		{"foreign error", errors.New("record not found"), nil, apperr.Unauthorized},
		{"empty secret", nil, []byte{}, apperr.Unauthorized},
		{"store down", apperr.New(apperr.Unavailable, "database unavailable"), nil, apperr.Unavailable},
		{"store bug", apperr.New(apperr.Internal, "query failed"), nil, apperr.Internal},
		{"cancelled", context.Canceled, nil, apperr.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &countingSource{Installation: Installation{testClientKey, tc.secret}, err: tc.err}
			v := &Verifier{BasePath: "/connect", Secrets: src, Now: fixedNow}
			_, err := v.Verify(context.Background(), tok, "POST", u, false)
			if got := apperr.CodeOf(err); got != tc.code {
				t.Fatalf("code %s, want %s (%v)", got, tc.code, err)
			}
			if tc.code == apperr.Unauthorized {
				wantReason(t, err, "unknown_issuer")
			}
		})
	}
}

func TestTooLongIsFast(t *testing.T) {
	dots := strings.Repeat(".", 1<<20)
	v := &Verifier{Secrets: Installation{testClientKey, testSecret}}
	iv := &InstallVerifier{Keys: NewInstallKeys("http://127.0.0.1:9", nil), Audience: "https://app.example.com"}
	u := mustURL(t, webhookURL)
	start := time.Now()
	_, e1 := v.Verify(context.Background(), dots, "POST", u, false)
	_, e2 := iv.Verify(context.Background(), dots, "POST", u)
	if d := time.Since(start); d > 10*time.Millisecond {
		t.Errorf("took %v", d)
	}
	wantReason(t, e1, "too_long")
	wantReason(t, e2, "too_long")
}

func TestSign(t *testing.T) {
	u := mustURL(t, "https://acme.atlassian.net/rest/api/3/search?jql=project%20%3D%20SEI&startAt=0&maxResults=100")
	tok, err := Sign("com.sei.jira-connect", testSecret, "GET", u, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Secrets: Installation{"com.sei.jira-connect", testSecret}, Now: fixedNow}
	c, err := v.Verify(context.Background(), tok, "GET", u, false)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.Equal(testNow.Add(3*time.Minute)) || !c.IssuedAt.Equal(testNow) {
		t.Errorf("iat %v exp %v", c.IssuedAt, c.ExpiresAt)
	}
	// A site with a context path signs paths relative to it.
	onPrem := mustURL(t, "https://jira.example.com/jira/rest/api/2/issue/SEI-1")
	tok, _ = Sign("app", testSecret, "GET", onPrem, "/jira", testNow)
	if mustPayload[rawClaims](t, tok).QSH != QSH("GET", mustURL(t, "https://x/rest/api/2/issue/SEI-1"), "") {
		t.Error("base path not stripped when signing")
	}
	if _, err := Sign("app", nil, "GET", u, "", testNow); apperr.CodeOf(err) != apperr.Internal {
		t.Errorf("empty secret: %v", err)
	}
	if _, err := SignHS256(testSecret, map[string]any{"bad": func() {}}); apperr.CodeOf(err) != apperr.Internal {
		t.Errorf("unencodable claims: %v", err)
	}
}

// cachingSource serves a stale secret until Refresh loads the current one.
type cachingSource struct {
	cached, current []byte
	refreshes       int
}

func (s *cachingSource) SharedSecret(context.Context, string) ([]byte, error) { return s.cached, nil }

func (s *cachingSource) Refresh(context.Context, string) (bool, error) {
	s.refreshes++
	changed := string(s.cached) != string(s.current)
	s.cached = s.current
	return changed, nil
}

// After a reinstall on another replica, the first call with the new secret
// reloads it instead of failing until the cache expires.
func TestVerifyRefreshesStaleSecret(t *testing.T) {
	u := mustURL(t, webhookURL)
	newSecret := []byte("the secret of the reinstall")
	tok, _ := SignHS256(newSecret, hsClaims(u, "POST"))
	forged, _ := SignHS256([]byte("guess"), hsClaims(u, "POST"))

	src := &cachingSource{cached: testSecret, current: newSecret}
	v := &Verifier{BasePath: "/connect", Secrets: src, Now: fixedNow}
	if _, err := v.Verify(context.Background(), tok, "POST", u, false); err != nil {
		t.Fatalf("after refresh: %v", err)
	}
	_, err := v.Verify(context.Background(), forged, "POST", u, false)
	wantReason(t, err, "bad_signature")
	if src.refreshes != 2 {
		t.Errorf("%d refreshes, want one per mismatch", src.refreshes)
	}
}
