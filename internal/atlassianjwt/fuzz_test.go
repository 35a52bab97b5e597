package atlassianjwt

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sei-io/jira-connect/internal/apperr"
)

func FuzzCanonicalRequest(f *testing.F) {
	f.Add("GET", "https://example.com/test?a=x1&a=x10&b=y1&b=y10&jwt=x", "")
	f.Add("post", "https://example.com/app/a&b/?c=%E5%AE%AE+%2B&c=&d;e=1", "/app/")
	for _, tc := range loadVectors(f).Tests {
		f.Add("GET", tc.SignedURL, "")
	}
	f.Fuzz(func(t *testing.T, method, raw, basePath string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		got := CanonicalRequest(method, u, basePath)
		if !strings.HasPrefix(got, strings.ToUpper(method)+"&/") {
			t.Fatalf("%q does not start with the method and a path", got)
		}
		if QSH(method, u, basePath) != QSH(method, u, basePath) || !qshMatches(QSH(method, u, basePath), method, u, basePath) {
			t.Fatal("QSH not stable")
		}
		// The hash covers exactly what net/url gives a handler: rebuilding
		// the query from url.ParseQuery must not change it.
		vals, _ := url.ParseQuery(u.RawQuery)
		again := *u
		again.RawQuery = vals.Encode()
		if want := CanonicalRequest(method, &again, basePath); got != want {
			t.Fatalf("query %q: %q, but from its parsed form %q", u.RawQuery, got, want)
		}
		// ExtractToken's shortcut parser finds the jwt parameters ParseQuery
		// finds (whenever none is too long to bother decoding).
		if toks := queryTokens(u.RawQuery); len(u.RawQuery) < 3*MaxTokenLen && !slices.Equal(toks, vals["jwt"]) {
			t.Fatalf("query %q: jwt %q, ParseQuery %q", u.RawQuery, toks, vals["jwt"])
		}
		// The path part holds no bare separator.
		rest := got[len(strings.ToUpper(method))+1:]
		if path, _, _ := strings.Cut(rest, "&"); strings.Contains(u.Path, "&") && !strings.Contains(path, "%26") {
			t.Fatalf("ampersand of %q not escaped in %q", u.Path, path)
		}
	})
}

// FuzzVerify feeds arbitrary tokens to both verifiers. Neither may panic,
// nor answer anything but success or the uniform authentication failure, nor
// accept a token whose signature it has not checked.
func FuzzVerify(f *testing.F) {
	u, _ := url.Parse(webhookURL)
	good, _ := SignHS256(testSecret, hsClaims(u, "POST"))
	ctxTok, _ := SignHS256(testSecret, with(hsClaims(u, "POST"), "qsh", ContextQSH))
	f.Add(good)
	f.Add(ctxTok)
	f.Add(mixSig(good, "x.y.AAAA"))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Add(strings.Repeat(".", MaxTokenLen+1))
	for _, tc := range loadVectors(f).Tests {
		if t := mustURL(f, tc.SignedURL).Query().Get("jwt"); t != "" {
			f.Add(t)
		}
	}

	// The install keys answer from a primed cache or fail at once, so no
	// input reaches the network.
	keys := NewInstallKeys("http://keys.invalid", &http.Client{Transport: failTransport{}})
	keys.cache = map[string]*rsa.PublicKey{testKid: &rsaKey(f, "atlassian", 2048).PublicKey}
	hv := &Verifier{BasePath: "/connect", Secrets: Installation{testClientKey, testSecret}, Now: fixedNow}
	iv := &InstallVerifier{Keys: keys, Audience: appBaseURL, Now: fixedNow}

	f.Fuzz(func(t *testing.T, token string) {
		for i, verify := range []func() (*Claims, error){
			func() (*Claims, error) { return hv.Verify(context.Background(), token, "POST", u, true) },
			func() (*Claims, error) { return iv.Verify(context.Background(), token, "POST", u) },
		} {
			c, err := verify()
			if err == nil {
				if c == nil || i == 0 && token != good && token != ctxTok {
					t.Fatalf("verifier %d accepted %q", i, token)
				}
				continue
			}
			var e *apperr.Error
			if !errors.As(err, &e) || e.Code != apperr.Unauthorized || e.Message != "authentication failed" || c != nil {
				t.Fatalf("verifier %d: %v (%T), claims %v", i, err, err, c)
			}
		}
	})
}

type failTransport struct{}

func (failTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in fuzzing")
}
