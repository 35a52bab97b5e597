package integrations

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/store"
)

// Sealer encrypts secrets at rest (the key ring of internal/secrets); aad
// binds a ciphertext to its row.
type Sealer interface {
	Seal(plaintext, aad []byte) (string, error)
	Open(sealed string, aad []byte) ([]byte, error)
}

// HostMatcher says whether a host is a Jira Cloud site (config's
// JIRA_HOST_ALLOWLIST).
type HostMatcher interface {
	Allows(host string) bool
}

// credentialsAAD binds sealed credentials to their integration: copied
// into another row, they do not decrypt.
func credentialsAAD(integrationID string) []byte {
	return []byte("integration-credentials:" + integrationID)
}

func (s *Service) sealCredentials(integrationID string, secrets map[string]string) (string, error) {
	if s.Secrets == nil {
		return "", apperr.New(apperr.Internal, "no key ring to encrypt credentials with")
	}
	raw, err := json.Marshal(secrets)
	if err != nil {
		return "", apperr.Wrap(err, apperr.Internal, "cannot encode credentials")
	}
	defer clear(raw)
	return s.Secrets.Seal(raw, credentialsAAD(integrationID))
}

// openCredentials decrypts the integration's stored secrets.
func (s *Service) openCredentials(it *store.Integration) (map[string]string, error) {
	if it.Credentials == nil {
		return nil, apperr.New(apperr.Conflict, "no credentials are stored for this integration: re-authenticate it").WithReason("no_credentials")
	}
	if s.Secrets == nil {
		return nil, apperr.New(apperr.Internal, "no key ring to decrypt credentials with")
	}
	raw, err := s.Secrets.Open(*it.Credentials, credentialsAAD(it.ID))
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	var out map[string]string
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "stored credentials are unreadable")
	}
	return out, nil
}

// Authenticator returns the jira.Authenticator of an API-token or Data
// Center integration, with its secret decrypted.
func (s *Service) Authenticator(it *store.Integration, st Settings) (jira.Authenticator, error) {
	secrets, err := s.openCredentials(it)
	if err != nil {
		return nil, err
	}
	secret := secrets[SecretOf(it.Type, st)]
	if secret == "" {
		return nil, apperr.New(apperr.Conflict, "the stored credentials do not fit the authentication method: re-authenticate").WithReason("no_credentials")
	}
	switch st.Auth.Method {
	case AuthAPIToken:
		return jira.Basic{Username: st.Auth.Email, Password: secret}, nil
	case AuthBasic:
		return jira.Basic{Username: st.Auth.Username, Password: secret}, nil
	case AuthPAT:
		return jira.Bearer{Token: secret}, nil
	case AuthADFS:
		// A password grant against ADFS, its token cached and renewed
		// before expiry by the authenticator (one per client: a sync or a
		// validation). ADFS is reached with the site's TLS settings: in
		// practice the same network and the same private CA.
		cfg, err := TLSConfig(st)
		if err != nil {
			return nil, err
		}
		a, err := jira.NewADFS(jira.ADFSConfig{TokenURL: st.Auth.ADFSURL, ClientID: st.Auth.ClientID, Resource: st.Auth.Resource,
			Username: st.Auth.Username, Password: secret, TLS: cfg})
		if err != nil {
			return nil, apperr.Wrap(err, apperr.Conflict, "the ADFS settings are unusable: %v", err).WithReason("bad_adfs")
		}
		return a, nil
	}
	return nil, apperr.New(apperr.Conflict, "unknown authentication method %q", st.Auth.Method)
}

// TLSConfig returns the TLS configuration of a site with TLS settings
// (nil when the defaults serve, so that such sites share the Jira
// client's connection pool): a private CA trusted in addition to the
// system's roots, or verification off when asked for by name.
func TLSConfig(st Settings) (*tls.Config, error) {
	if !st.TLS.AllowUnsafeSSL && st.TLS.CACertificate == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if st.TLS.CACertificate != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(st.TLS.CACertificate)) {
			return nil, apperr.New(apperr.Conflict, "the integration's CA certificate does not parse").WithReason("bad_ca_certificate")
		}
		cfg.RootCAs = pool
	}
	// Asked for explicitly, per integration, and shown by validation.
	cfg.InsecureSkipVerify = st.TLS.AllowUnsafeSSL //nolint:gosec
	return cfg, nil
}

// JiraClient returns a REST client for an API-token integration or a Data
// Center integration connected directly, authenticated with its stored
// credentials. opts come after the integration's own (a caller's retry
// policy wins).
func (s *Service) JiraClient(_ context.Context, it *store.Integration, opts ...jira.Option) (*jira.Client, error) {
	if !UsesCredentials(it) {
		return nil, apperr.New(apperr.Conflict, "the service does not call this integration's site with stored credentials").WithReason("no_direct_connection")
	}
	st, err := ParseSettings(it)
	if err != nil {
		return nil, err
	}
	auth, err := s.Authenticator(it, st)
	if err != nil {
		return nil, err
	}
	cfg, err := TLSConfig(st)
	if err != nil {
		return nil, err
	}
	var own []jira.Option
	if cfg != nil {
		own = append(own, jira.WithTLSConfig(cfg))
	}
	return jira.New(st.URL, auth, append(own, opts...)...)
}
