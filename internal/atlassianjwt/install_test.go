package atlassianjwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
)

const (
	appBaseURL = "https://connect.sei.example.com"
	installURL = appBaseURL + "/lifecycle/installed"
	testKid    = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
)

// keyServer plays connect-install-keys.atlassian.com: it serves PEM bodies by
// kid and counts every request.
type keyServer struct {
	*httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	keys map[string][]byte
}

func newKeyServer(t *testing.T, handler http.HandlerFunc) *keyServer {
	t.Helper()
	ks := &keyServer{keys: map[string][]byte{}}
	if handler == nil {
		handler = func(w http.ResponseWriter, r *http.Request) {
			ks.mu.Lock()
			body, ok := ks.keys[strings.TrimPrefix(r.URL.Path, "/")]
			ks.mu.Unlock()
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Write(body)
		}
	}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.hits.Add(1)
		handler(w, r)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) serve(kid string, pemBody []byte) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys[kid] = pemBody
}

func installClaims(t testing.TB, u string) map[string]any {
	return map[string]any{
		"iss": testClientKey,
		"aud": appBaseURL,
		"iat": testNow.Unix(),
		"exp": testNow.Add(3 * time.Minute).Unix(),
		"qsh": QSH("POST", mustURL(t, u), ""),
	}
}

func TestInstallVerify(t *testing.T) {
	atlassian := rsaKey(t, "atlassian", 2048)
	other := rsaKey(t, "other", 2048)
	pemKey := pkixPEM(t, &atlassian.PublicKey)
	base := installClaims(t, installURL)
	rs := rsaWith(atlassian)
	hdr := map[string]string{"alg": "RS256", "kid": testKid, "typ": "JWT"}
	hdrKid := func(kid string) map[string]string { return map[string]string{"alg": "RS256", "kid": kid} }

	tests := []struct {
		name    string
		token   string
		url     string
		aud     string
		reason  string
		noFetch bool
	}{
		{name: "valid", token: craft(t, hdr, base, rs)},
		{name: "aud with trailing slash", token: craft(t, hdr, with(base, "aud", appBaseURL+"/"), rs)},
		{name: "configured audience with trailing slash", token: craft(t, hdr, base, rs), aud: appBaseURL + "/"},
		{name: "aud as array", token: craft(t, hdr, with(base, "aud", []string{"https://other.example", appBaseURL}), rs)},
		{name: "alg none", token: craft(t, map[string]string{"alg": "none", "kid": testKid}, base, noSig), reason: "bad_alg", noFetch: true},
		{name: "HS256 keyed with the install key PEM", token: craft(t, map[string]string{"alg": "HS256", "kid": testKid}, base, hmacWith(pemKey)), reason: "bad_alg", noFetch: true},
		{name: "RS512", token: craft(t, map[string]string{"alg": "RS512", "kid": testKid}, base, rs), reason: "bad_alg", noFetch: true},
		{name: "PS256", token: craft(t, map[string]string{"alg": "PS256", "kid": testKid}, base, rs), reason: "bad_alg", noFetch: true},
		{name: "signed by another key", token: craft(t, hdr, base, rsaWith(other)), reason: "bad_signature"},
		{name: "signature truncated", token: craft(t, hdr, base, func(s string) []byte { return rs(s)[:255] }), reason: "bad_signature"},
		{name: "kid missing", token: craft(t, map[string]string{"alg": "RS256"}, base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid traversal", token: craft(t, hdrKid("../x"), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid dot-dot", token: craft(t, hdrKid(".."), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid dot", token: craft(t, hdrKid("."), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid slash", token: craft(t, hdrKid("a/b"), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid encoded slash", token: craft(t, hdrKid("a%2Fb"), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid URL", token: craft(t, hdrKid("https://evil"), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid backslash", token: craft(t, hdrKid(`a\b`), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid query", token: craft(t, hdrKid("a?b"), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid fragment", token: craft(t, hdrKid("a#b"), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid non-ASCII", token: craft(t, hdrKid("clé"), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid 300 chars", token: craft(t, hdrKid(strings.Repeat("a", 300)), base, rs), reason: "bad_kid", noFetch: true},
		{name: "kid unknown to the CDN", token: craft(t, hdrKid("no-such-kid"), base, rs), reason: "key_fetch_failed"},
		{name: "aud foreign", token: craft(t, hdr, with(base, "aud", "https://evil.example"), rs), reason: "bad_audience"},
		{name: "aud prefixed", token: craft(t, hdr, with(base, "aud", appBaseURL+"evil"), rs), reason: "bad_audience"},
		{name: "aud prefixed domain", token: craft(t, hdr, with(base, "aud", appBaseURL+".evil.com"), rs), reason: "bad_audience"},
		{name: "aud sub-path", token: craft(t, hdr, with(base, "aud", appBaseURL+"/x"), rs), reason: "bad_audience"},
		{name: "aud missing", token: craft(t, hdr, with(base, "aud", nil), rs), reason: "bad_audience"},
		{name: "audience not configured", token: craft(t, hdr, with(base, "aud", ""), rs), aud: "/", reason: "bad_audience"},
		{name: "exp quoted", token: craft(t, hdr, with(base, "exp", "9999999999"), rs), reason: "bad_exp"},
		{name: "exp missing", token: craft(t, hdr, with(base, "exp", nil), rs), reason: "missing_exp"},
		{name: "expired", token: craft(t, hdr, with(base, "exp", testNow.Add(-time.Hour).Unix()), rs), reason: "expired"},
		{name: "qsh for uninstalled", token: craft(t, hdr, with(base, "qsh", QSH("POST", mustURL(t, appBaseURL+"/lifecycle/uninstalled"), "")), rs), reason: "bad_qsh"},
		{name: "context qsh never", token: craft(t, hdr, with(base, "qsh", ContextQSH), rs), reason: "context_qsh_not_allowed"},
		{name: "too long", token: strings.Repeat(".", 1<<20), reason: "too_long", noFetch: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks := newKeyServer(t, nil)
			ks.serve(testKid, pemKey)
			aud := appBaseURL
			if tc.aud != "" {
				aud = tc.aud
			}
			v := &InstallVerifier{Keys: NewInstallKeys(ks.URL, ks.Client()), Audience: aud, Now: fixedNow}
			raw := installURL
			if tc.url != "" {
				raw = tc.url
			}
			c, err := v.Verify(context.Background(), tc.token, "POST", mustURL(t, raw))
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if c.Issuer != testClientKey {
					t.Errorf("issuer %q", c.Issuer)
				}
			} else {
				wantReason(t, err, tc.reason)
			}
			if n := ks.hits.Load(); tc.noFetch && n != 0 {
				t.Errorf("%d key fetches, want none", n)
			}
		})
	}
}

// The signer a Jira simulator uses produces tokens the verifier accepts.
func TestSignRS256RoundTrip(t *testing.T) {
	key := rsaKey(t, "atlassian", 2048)
	ks := newKeyServer(t, nil)
	ks.serve("sim-1", pkixPEM(t, &key.PublicKey))
	tok, err := SignRS256("sim-1", key, installClaims(t, installURL))
	if err != nil {
		t.Fatal(err)
	}
	v := &InstallVerifier{Keys: NewInstallKeys(ks.URL+"/", nil), Audience: appBaseURL, Now: fixedNow}
	if _, err := v.Verify(context.Background(), tok, "POST", mustURL(t, installURL)); err != nil {
		t.Fatal(err)
	}
	if _, err := SignRS256("k", nil, nil); apperr.CodeOf(err) != apperr.Internal {
		t.Errorf("nil key: %v", err)
	}
}

func TestInstallKeysFetch(t *testing.T) {
	good := rsaKey(t, "atlassian", 2048)
	small := rsaKey(t, "small", 1024)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&good.PublicKey)})
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			w.Write(pkixPEM(t, &good.PublicKey))
		}
	}
	body := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { w.Write(b) }
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		ok      bool
	}{
		{"PKIX", body(pkixPEM(t, &good.PublicKey)), true},
		{"PKCS1", body(pkcs1), true},
		{"404", status(http.StatusNotFound), false},
		{"500", status(http.StatusInternalServerError), false},
		{"204", status(http.StatusNoContent), false},
		{"not PEM", body([]byte("hello")), false},
		{"certificate block", body(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})), false},
		{"garbage DER", body(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})), false},
		{"ECDSA key", body(pkixPEM(t, &ec.PublicKey)), false},
		{"1024-bit RSA", body(pkixPEM(t, &small.PublicKey)), false},
		{"private key", body(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)})), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks := newKeyServer(t, tc.handler)
			k := NewInstallKeys(ks.URL, ks.Client())
			key, err := k.Key(context.Background(), testKid)
			if tc.ok {
				if err != nil || !key.Equal(&good.PublicKey) {
					t.Fatalf("key %v, err %v", key, err)
				}
				// Cached: a second call does not fetch.
				if _, err := k.Key(context.Background(), testKid); err != nil || ks.hits.Load() != 1 {
					t.Errorf("second call: err %v, %d fetches", err, ks.hits.Load())
				}
				return
			}
			wantReason(t, err, "key_fetch_failed")
			// Failures are not cached: the next install may succeed.
			k.Key(context.Background(), testKid)
			if n := ks.hits.Load(); n != 2 {
				t.Errorf("%d fetches after two failures, want 2", n)
			}
		})
	}
}

func TestInstallKeysBadKidNeverFetches(t *testing.T) {
	ks := newKeyServer(t, nil)
	k := NewInstallKeys(ks.URL, ks.Client())
	for _, kid := range []string{"", ".", "..", "../x", "a/b", "a%2Fb", "https://evil", `a\b`, "a:b", "a b", "a?b", strings.Repeat("k", 257)} {
		_, err := k.Key(context.Background(), kid)
		wantReason(t, err, "bad_kid")
	}
	if n := ks.hits.Load(); n != 0 {
		t.Errorf("%d fetches", n)
	}
	if !validKid(strings.Repeat("k", 256)) || !validKid("a.b_c-D9") {
		t.Error("valid kids rejected")
	}
}

func TestInstallKeysSlowServer(t *testing.T) {
	ks := newKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	k := NewInstallKeys(ks.URL, ks.Client())
	k.Timeout = 50 * time.Millisecond
	start := time.Now()
	_, err := k.Key(context.Background(), testKid)
	wantReason(t, err, "key_fetch_failed")
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v with a 50ms timeout", d)
	}
}

// A caller whose context ends stops waiting, without failing other callers.
func TestInstallKeysCallerCancels(t *testing.T) {
	release := make(chan struct{})
	good := rsaKey(t, "atlassian", 2048)
	ks := newKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write(pkixPEM(t, &good.PublicKey))
	})
	k := NewInstallKeys(ks.URL, ks.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := k.Key(ctx, testKid)
	wantReason(t, err, "key_fetch_failed")
	close(release)
	if _, err := k.Key(context.Background(), testKid); err != nil {
		t.Fatal(err)
	}
	if n := ks.hits.Load(); n != 1 {
		t.Errorf("%d fetches, want the first one to be shared", n)
	}
}

func TestInstallKeysHugeBody(t *testing.T) {
	const huge = 10 << 20
	ks := newKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
		// No Content-Length: the client has to count.
		chunk := []byte(strings.Repeat("A", 32<<10))
		for n := 0; n < huge; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	var read atomic.Int64
	client := &http.Client{Transport: countingTransport{http.DefaultTransport, &read}}
	k := NewInstallKeys(ks.URL, client)
	start := time.Now()
	_, err := k.Key(context.Background(), testKid)
	wantReason(t, err, "key_fetch_failed")
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	if n := read.Load(); n > defaultKeyMaxBytes+1 {
		t.Errorf("read %d bytes, cap is %d", n, defaultKeyMaxBytes)
	}

	// With a Content-Length over the cap nothing is read at all.
	ks2 := newKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "20000")
		w.Write(make([]byte, 20000))
	})
	read.Store(0)
	k2 := NewInstallKeys(ks2.URL, client)
	_, err = k2.Key(context.Background(), testKid)
	wantReason(t, err, "key_fetch_failed")
	if n := read.Load(); n != 0 {
		t.Errorf("read %d bytes of an announced oversized body", n)
	}
}

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil {
		resp.Body = countingBody{resp.Body, c.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestInstallKeysCoalesce(t *testing.T) {
	good := rsaKey(t, "atlassian", 2048)
	release := make(chan struct{})
	ks := newKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write(pkixPEM(t, &good.PublicKey))
	})
	k := NewInstallKeys(ks.URL, ks.Client())
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := k.Key(context.Background(), testKid)
			errs <- err
		})
	}
	// Let the callers pile up on the one request before it answers.
	for deadline := time.Now().Add(time.Second); ks.hits.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := ks.hits.Load(); n != 1 {
		t.Errorf("%d fetches for one kid, want 1", n)
	}
}
