package atlassianjwt

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// InstallKeysURL is Atlassian's CDN of the public keys that sign install and
// uninstall callbacks.
const InstallKeysURL = "https://connect-install-keys.atlassian.com"

const (
	defaultKeyTimeout  = 5 * time.Second
	defaultKeyMaxBytes = 16 << 10 // a PEM RSA key is under 1 KiB
	maxCachedKeys      = 256      // Atlassian rotates rarely; this only bounds memory
	minRSABits         = 2048
	maxRSABits         = 8192 // bigger keys only make verification slow
)

// InstallKeys fetches and caches the RSA public keys of the install-keys CDN
// by key ID. Only successful fetches are cached, and concurrent fetches of
// one kid share a single request.
type InstallKeys struct {
	BaseURL  string        // e.g. InstallKeysURL; a test points it at httptest
	Client   *http.Client  // nil means a plain client
	MaxBytes int64         // response body cap; 0 means 16 KiB
	Timeout  time.Duration // per fetch; 0 means 5s

	mu       sync.Mutex
	cache    map[string]*rsa.PublicKey
	inflight map[string]*keyCall
}

type keyCall struct {
	done chan struct{} // closed when key and err are set
	key  *rsa.PublicKey
	err  error
}

// NewInstallKeys returns a key source for baseURL with the default limits.
func NewInstallKeys(baseURL string, client *http.Client) *InstallKeys {
	return &InstallKeys{BaseURL: baseURL, Client: client, MaxBytes: defaultKeyMaxBytes, Timeout: defaultKeyTimeout}
}

// Key returns the public key named kid. The kid comes from an unauthenticated
// token, so it is checked before it becomes part of a URL: it cannot add a
// path segment, a query, a scheme or an escape.
func (k *InstallKeys) Key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	if !validKid(kid) {
		return nil, apperr.Unauth("bad_kid")
	}
	k.mu.Lock()
	if key := k.cache[kid]; key != nil {
		k.mu.Unlock()
		return key, nil
	}
	c := k.inflight[kid]
	if c == nil {
		c = &keyCall{done: make(chan struct{})}
		if k.inflight == nil {
			k.inflight = make(map[string]*keyCall)
		}
		k.inflight[kid] = c
		// Detached from ctx: one caller giving up must not fail the others
		// waiting on the same fetch. The fetch has its own timeout.
		go k.fetch(context.WithoutCancel(ctx), kid, c)
	}
	k.mu.Unlock()

	select {
	case <-c.done:
		if c.err != nil {
			return nil, c.err
		}
		return c.key, nil
	case <-ctx.Done():
		return nil, keyFetchFailed(ctx.Err())
	}
}

func (k *InstallKeys) fetch(ctx context.Context, kid string, c *keyCall) {
	c.key, c.err = k.download(ctx, kid)
	k.mu.Lock()
	delete(k.inflight, kid)
	if c.err == nil {
		if k.cache == nil || len(k.cache) >= maxCachedKeys {
			k.cache = make(map[string]*rsa.PublicKey)
		}
		k.cache[kid] = c.key
	}
	k.mu.Unlock()
	close(c.done)
}

func (k *InstallKeys) download(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	timeout, maxBytes, client := k.Timeout, k.MaxBytes, k.Client
	if timeout <= 0 {
		timeout = defaultKeyTimeout
	}
	if maxBytes <= 0 {
		maxBytes = defaultKeyMaxBytes
	}
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(k.BaseURL, "/")+"/"+kid, nil)
	if err != nil {
		return nil, keyFetchFailed(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, keyFetchFailed(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, keyFetchFailed(fmt.Errorf("install key %s: status %d", kid, resp.StatusCode))
	}
	if resp.ContentLength > maxBytes {
		return nil, keyFetchFailed(fmt.Errorf("install key %s: body of %d bytes", kid, resp.ContentLength))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, keyFetchFailed(err)
	}
	if int64(len(body)) > maxBytes {
		return nil, keyFetchFailed(fmt.Errorf("install key %s: body over %d bytes", kid, maxBytes))
	}
	key, err := parseRSAPublicKey(body)
	if err != nil {
		return nil, keyFetchFailed(fmt.Errorf("install key %s: %w", kid, err))
	}
	return key, nil
}

func keyFetchFailed(cause error) *apperr.Error {
	e := apperr.Unauth("key_fetch_failed")
	e.Err = cause
	return e
}

// parseRSAPublicKey reads the first PEM block, as PKIX ("PUBLIC KEY", what the
// CDN serves) or PKCS #1 ("RSA PUBLIC KEY").
func parseRSAPublicKey(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	key, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%T is not an RSA key", pub)
	}
	if n := key.N.BitLen(); n < minRSABits || n > maxRSABits {
		return nil, fmt.Errorf("RSA key of %d bits", n)
	}
	return key, nil
}

// validKid admits 1–256 characters of [A-Za-z0-9._-] other than "." and
// "..": enough for the UUIDs and names Atlassian uses, and nothing that could
// steer the fetch elsewhere ("/", "%", ":", "\", "?", "#").
func validKid(kid string) bool {
	if len(kid) == 0 || len(kid) > 256 || kid == "." || kid == ".." {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// InstallVerifier checks the RS256 tokens Atlassian signs for the installed
// and uninstalled lifecycle callbacks ("signed install"). Those calls cannot
// use the shared secret: installed is where the secret arrives, and trusting
// a secret from the request being checked would let anyone overwrite an
// installation.
type InstallVerifier struct {
	Keys     *InstallKeys
	Audience string // the app's BASE_URL; aud must equal it
	BasePath string // path of the app's base URL, stripped before hashing
	Now      func() time.Time
	Leeway   time.Duration
}

// Verify checks a signed-install token for the request method and URL u.
//
// It does not check iss. The caller must compare Claims.Issuer with the
// clientKey in the callback's body, and for an existing installation refuse
// a mismatch, since the token proves only that Atlassian sent the call for
// that issuer.
func (v *InstallVerifier) Verify(ctx context.Context, token string, method string, u *url.URL) (*Claims, error) {
	t, err := parseToken(token)
	if err != nil {
		return nil, err
	}
	// Pinned: accepting HS256 here would let anyone sign with the public key
	// text as the HMAC secret.
	if t.header.Alg != "RS256" {
		return nil, apperr.Unauth("bad_alg")
	}
	if !validKid(t.header.Kid) {
		return nil, apperr.Unauth("bad_kid")
	}
	key, kerr := v.Keys.Key(ctx, t.header.Kid)
	if kerr != nil {
		return nil, kerr
	}
	digest := sha256.Sum256([]byte(t.signingInput))
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], t.sig) != nil {
		return nil, apperr.Unauth("bad_signature")
	}
	c, err := t.validate(now(v.Now), v.Leeway)
	if err != nil {
		return nil, err
	}
	if !audienceMatches(c.Audience, v.Audience) {
		return nil, apperr.Unauth("bad_audience")
	}
	if err := checkQSH(c.QSH, method, u, v.BasePath, false); err != nil {
		return nil, err
	}
	return c, nil
}

// audienceMatches compares whole URLs, ignoring one trailing slash on either
// side; a prefix test would accept BASE_URL+".evil.com".
func audienceMatches(aud []string, want string) bool {
	want = strings.TrimSuffix(want, "/")
	if want == "" {
		return false
	}
	for _, a := range aud {
		if strings.TrimSuffix(a, "/") == want {
			return true
		}
	}
	return false
}
