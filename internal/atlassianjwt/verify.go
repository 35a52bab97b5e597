package atlassianjwt

import (
	"context"
	"crypto/hmac"
	"errors"
	"net/url"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// Installation is what the verifier needs to know of an installed Jira site.
// It is also a SecretSource for that one site, which suits tests and the
// lifecycle handler that has just stored it.
type Installation struct {
	ClientKey string
	Secret    []byte
}

// SharedSecret returns the secret for the installation's own client key.
func (in Installation) SharedSecret(_ context.Context, clientKey string) ([]byte, error) {
	if clientKey != in.ClientKey || len(in.Secret) == 0 {
		return nil, apperr.New(apperr.NotFound, "installation not found")
	}
	return in.Secret, nil
}

// SecretSource looks up the shared secret of an installation by client key.
//
// For an unknown key it returns an error (apperr NotFound or any other); the
// verifier reports that exactly like a bad signature. The exceptions are an
// *apperr.Error with code Unavailable or Internal and a context error: those
// pass through, so that a database outage answers 5xx, which Jira retries,
// instead of 401, which makes it drop a webhook.
type SecretSource interface {
	SharedSecret(ctx context.Context, clientKey string) ([]byte, error)
}

// SecretRefresher may be implemented by a SecretSource that caches secrets.
// After a signature mismatch the verifier asks it to reload the key once and,
// if the secret changed, checks again: a reinstall handled by another replica
// then takes effect at once instead of after the cache's TTL. Refresh should
// rate-limit itself, since anyone can send a bad signature.
type SecretRefresher interface {
	Refresh(ctx context.Context, clientKey string) (changed bool, err error)
}

// Verifier checks HS256 tokens on calls from Jira: webhooks, page loads and
// AJAX calls from the app's pages.
type Verifier struct {
	BasePath string // path of the app's base URL, stripped before hashing
	Secrets  SecretSource
	Now      func() time.Time // nil means time.Now
	Leeway   time.Duration    // clock skew tolerated on exp
}

// Verify checks token for the request method and URL u and returns its
// claims. allowContextQSH admits Jira's context tokens (qsh "context-qsh"),
// which are not bound to one request; only routes called by the app's own
// page scripts should allow them.
//
// The checks run cheapest and least revealing first: size and shape, the
// algorithm pinned to HS256 before any secret is looked up, then the
// signature (constant time), and only then exp and qsh, so an unsigned token
// never reaches the claim checks.
func (v *Verifier) Verify(ctx context.Context, token string, method string, u *url.URL, allowContextQSH bool) (*Claims, error) {
	t, err := parseToken(token)
	if err != nil {
		return nil, err
	}
	if t.header.Alg != "HS256" {
		return nil, apperr.Unauth("bad_alg")
	}
	secret, err := v.secret(ctx, t.claims.Iss)
	if err != nil {
		return nil, err
	}
	if !v.signedWith(ctx, t, secret) {
		return nil, apperr.Unauth("bad_signature")
	}
	c, err := t.validate(now(v.Now), v.Leeway)
	if err != nil {
		return nil, err
	}
	if err := checkQSH(c.QSH, method, u, v.BasePath, allowContextQSH); err != nil {
		return nil, err
	}
	return c, nil
}

func (v *Verifier) signedWith(ctx context.Context, t *token, secret []byte) bool {
	if hmac.Equal(hmacSHA256(secret, t.signingInput), t.sig) {
		return true
	}
	r, ok := v.Secrets.(SecretRefresher)
	if !ok {
		return false
	}
	if changed, err := r.Refresh(ctx, t.claims.Iss); err != nil || !changed {
		return false
	}
	secret, err := v.secret(ctx, t.claims.Iss)
	return err == nil && hmac.Equal(hmacSHA256(secret, t.signingInput), t.sig)
}

// secret returns the issuer's secret, or an error that for an unknown issuer
// is indistinguishable from a bad signature, so that nobody can probe which
// client keys are installed.
func (v *Verifier) secret(ctx context.Context, iss string) ([]byte, *apperr.Error) {
	if iss == "" {
		return nil, apperr.Unauth("unknown_issuer")
	}
	secret, err := v.Secrets.SharedSecret(ctx, iss)
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return nil, apperr.Wrap(err, apperr.Unavailable, "request cancelled")
	case err != nil:
		var e *apperr.Error
		if errors.As(err, &e) && (e.Code == apperr.Unavailable || e.Code == apperr.Internal) {
			return nil, e
		}
		return nil, apperr.Unauth("unknown_issuer")
	case len(secret) == 0:
		// An empty HMAC key would let anyone sign.
		return nil, apperr.Unauth("unknown_issuer")
	}
	return secret, nil
}

func now(f func() time.Time) time.Time {
	if f == nil {
		return time.Now()
	}
	return f()
}
