package jira

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"time"
)

// TLS for sites that are not on the public web: a Data Center behind a
// private CA, or with a self-signed certificate a customer has chosen to
// accept. Verification is skipped only when asked for by name.

// WithTLSConfig sends requests with cfg (a copy of it) as the TLS client
// configuration: RootCAs for a private CA, or InsecureSkipVerify. The
// client then has a transport of its own (its own connection pool), built
// like the default one, or cloned from the HTTP client given with
// WithHTTPClient, whose transport must then be an *http.Transport.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) {
		if cfg != nil {
			o.tls = cfg.Clone()
		}
	}
}

// WithRootCAs trusts the certificates of pool (and only those) for the
// site: a Data Center signed by a private CA.
func WithRootCAs(pool *x509.CertPool) Option {
	return WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
}

// WithInsecureSkipVerify accepts any certificate the site presents,
// self-signed, expired or for another name: what a satellite's
// allow_unsafe_ssl asks for. The connection is still encrypted, but not
// to a server anyone vouched for.
func WithInsecureSkipVerify() Option {
	return WithTLSConfig(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // asked for by name
}

// NewHTTPClient returns an HTTP client like the one New builds by
// default (timeout, redirects answered rather than followed) with the
// given TLS configuration (nil: the system's roots), for calls that
// travel beside the REST client's, e.g. to an ADFS token endpoint in the
// same network.
func NewHTTPClient(timeout time.Duration, cfg *tls.Config) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if cfg == nil {
		return newHTTPClient(timeout)
	}
	h, _ := withTLS(nil, cfg, timeout)
	return h
}

// withTLS is h (nil: the default client) with its own transport using cfg.
func withTLS(h *http.Client, cfg *tls.Config, timeout time.Duration) (*http.Client, error) {
	if h == nil {
		h = newHTTPClient(timeout)
	}
	c := *h
	if timeout != DefaultTimeout || c.Timeout == 0 {
		c.Timeout = timeout
	}
	var base *http.Transport
	switch t := c.Transport.(type) {
	case nil:
		base = http.DefaultTransport.(*http.Transport)
	case *http.Transport:
		base = t
	default:
		return nil, errors.New("jira: WithTLSConfig needs an HTTP client whose transport is an *http.Transport")
	}
	t := base.Clone()
	t.TLSClientConfig = cfg.Clone()
	t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, DefaultMaxConcurrency)
	c.Transport = t
	return &c, nil
}
