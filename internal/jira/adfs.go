package jira

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
)

// ADFSConfig configures NewADFS: an OAuth2 resource owner password grant
// against Active Directory Federation Services, whose access token Jira
// Data Center (with an ADFS/OIDC sign-in) accepts as a Bearer token.
type ADFSConfig struct {
	// TokenURL is ADFS's token endpoint, e.g.
	// https://adfs.example.com/adfs/oauth2/token. A bare host
	// (https://adfs.example.com) gets that path.
	TokenURL string
	// ClientID is the OAuth2 client registered at ADFS, Resource the
	// relying party identifier Jira is known by there.
	ClientID, Resource string
	// Username and Password of the account the token is issued to.
	Username, Password string
	// HTTP sends the token requests; nil means NewHTTPClient with TLS.
	HTTP *http.Client
	// TLS is used when HTTP is nil (an ADFS behind a private CA, or
	// InsecureSkipVerify where allowed).
	TLS *tls.Config
	// RenewBefore renews a token this long before it expires, so no
	// request leaves with one about to lapse; 0 means a tenth of the
	// token's lifetime, at most five minutes.
	RenewBefore time.Duration
	// Now is the clock of expiry; nil means time.Now.
	Now func() time.Time
}

// DefaultADFSPath is ADFS's token endpoint under its host.
const DefaultADFSPath = "/adfs/oauth2/token"

// ADFS authenticates with a Bearer access token from ADFS, obtained by
// the password grant, cached, and renewed before it expires. One grant
// runs at a time: callers arriving meanwhile wait for it, or use the
// current token while it is still valid. It is safe for concurrent use.
// Neither the password nor a token ever appears in its String, GoString,
// LogValue or errors.
type ADFS struct {
	cfg      ADFSConfig
	tokenURL *url.URL

	mu        sync.Mutex
	token     string
	expiresAt time.Time
	renewAt   time.Time
	flight    *adfsFlight
}

type adfsFlight struct {
	done  chan struct{}
	token string
	err   error
}

// NewADFS checks cfg and returns the authenticator. No request is made
// until the first call needs a token.
func NewADFS(cfg ADFSConfig) (*ADFS, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.TokenURL))
	switch {
	case err != nil:
		return nil, errors.New("adfs: token URL does not parse")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, errors.New("adfs: token URL must be http or https")
	case u.Host == "":
		return nil, errors.New("adfs: token URL has no host")
	case u.User != nil:
		return nil, errors.New("adfs: token URL must not carry credentials")
	case cfg.ClientID == "" || cfg.Resource == "":
		return nil, errors.New("adfs: client id and resource are required")
	case cfg.Username == "" || cfg.Password == "":
		return nil, errors.New("adfs: username and password are required")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = DefaultADFSPath
	}
	u.RawQuery, u.Fragment = "", ""
	if cfg.HTTP == nil {
		cfg.HTTP = NewHTTPClient(DefaultTimeout, cfg.TLS)
	}
	return &ADFS{cfg: cfg, tokenURL: u}, nil
}

// Authenticate sets "Authorization: Bearer <access token>", getting or
// renewing the token first when needed.
func (a *ADFS) Authenticate(req *http.Request, _ string) error {
	tok, err := a.Token(req.Context())
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// Token returns a valid access token: the cached one until RenewBefore
// its expiry, else a new one (one grant at a time).
func (a *ADFS) Token(ctx context.Context) (string, error) {
	a.mu.Lock()
	now := a.now()
	if a.token != "" && now.Before(a.renewAt) {
		tok := a.token
		a.mu.Unlock()
		return tok, nil
	}
	if f := a.flight; f != nil {
		if a.token != "" && now.Before(a.expiresAt) {
			tok := a.token // still good while another caller renews it
			a.mu.Unlock()
			return tok, nil
		}
		a.mu.Unlock()
		select {
		case <-f.done:
			return f.token, f.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	f := &adfsFlight{done: make(chan struct{})}
	a.flight = f
	a.mu.Unlock()

	// Others wait on this grant, so the first caller's cancellation must
	// not fail it for them; the HTTP client's timeout bounds it.
	tok, lifetime, err := a.grant(context.WithoutCancel(ctx))

	a.mu.Lock()
	switch now := a.now(); {
	case err == nil:
		a.token, a.expiresAt = tok, now.Add(lifetime)
		a.renewAt = a.expiresAt.Add(-a.margin(lifetime))
	case a.token != "" && now.Before(a.expiresAt) && !errors.Is(err, ErrCredentialsRejected):
		// ADFS is away but the token has time left: use it, and try
		// again on the next call.
		tok, err = a.token, nil
	}
	f.token, f.err = tok, err
	a.flight = nil
	a.mu.Unlock()
	close(f.done)
	return tok, err
}

// margin is how long before expiry a token is renewed.
func (a *ADFS) margin(lifetime time.Duration) time.Duration {
	if a.cfg.RenewBefore > 0 {
		return min(a.cfg.RenewBefore, lifetime/2)
	}
	return min(lifetime/10, 5*time.Minute)
}

func (a *ADFS) now() time.Time {
	if a.cfg.Now != nil {
		return a.cfg.Now()
	}
	return time.Now()
}

// invalidate drops the cached token if it is the one a rejected request
// carried (Jira may stop accepting a token before its stated expiry), so
// the next call gets a fresh one.
func (a *ADFS) invalidate(authorization string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && authorization == "Bearer "+a.token {
		a.token, a.expiresAt, a.renewAt = "", time.Time{}, time.Time{}
	}
}

// ADFSError is ADFS refusing a token request: an OAuth2 error code
// (invalid_grant for a wrong username or password, invalid_client,
// invalid_resource…) with ADFS's description, or an answer that is not
// OAuth2 at all. The refusals of the credentials or of the relying party
// match ErrCredentialsRejected.
type ADFSError struct {
	Status      int    // HTTP status; 0 when no answer came
	Code        string // OAuth2 "error"
	Description string // ADFS's "error_description" (an MSIS message)
	Err         error  // the cause when no answer came or it did not decode
}

func (e *ADFSError) Error() string {
	var b strings.Builder
	b.WriteString("adfs: token request")
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *ADFSError) Unwrap() error { return e.Err }

// Is matches ErrCredentialsRejected for refusals a person must fix: the
// password (invalid_grant), the client or the relying party, or a 401.
func (e *ADFSError) Is(target error) bool {
	if target != ErrCredentialsRejected {
		return false
	}
	switch e.Code {
	case "invalid_grant", "invalid_client", "unauthorized_client", "invalid_resource", "invalid_scope", "unsupported_grant_type":
		return true
	}
	return e.Status == http.StatusUnauthorized
}

// grant makes one password grant and returns the token and its lifetime.
func (a *ADFS) grant(ctx context.Context) (string, time.Duration, error) {
	form := url.Values{
		"grant_type": {"password"}, "client_id": {a.cfg.ClientID}, "resource": {a.cfg.Resource},
		"username": {a.cfg.Username}, "password": {a.cfg.Password},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.tokenURL.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, &ADFSError{Err: errors.New("building the token request")}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", DefaultUserAgent)
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		// *url.Error quotes the URL (no secret in it: the form is the
		// body), but keep the cause alone like the REST client does.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if IsCertificate(err) {
			err = fmt.Errorf("ADFS's TLS certificate is not trusted: %w", err)
		}
		return "", 0, &ADFSError{Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, &ADFSError{Status: resp.StatusCode, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	var v struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"` // a number, or a string of one
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
	}
	decodeErr := json.Unmarshal(data, &v)
	if resp.StatusCode != http.StatusOK {
		e := &ADFSError{Status: resp.StatusCode}
		if decodeErr == nil {
			e.Code, e.Description = truncate(redact(v.Error), 100), truncate(redact(v.Description), maxMessageLen)
		}
		return "", 0, e
	}
	if decodeErr != nil || v.AccessToken == "" {
		return "", 0, &ADFSError{Status: resp.StatusCode, Err: errors.New("the answer carries no access_token")}
	}
	if v.TokenType != "" && !strings.EqualFold(v.TokenType, "bearer") {
		return "", 0, &ADFSError{Status: resp.StatusCode, Err: fmt.Errorf("token_type %q is not bearer", truncate(v.TokenType, 40))}
	}
	secs := 0.0
	raw := strings.Trim(string(v.ExpiresIn), `"`)
	if _, err := fmt.Sscanf(raw, "%g", &secs); err != nil || secs <= 0 {
		secs = 3600 // ADFS's default lifetime when it does not say
	}
	return v.AccessToken, time.Duration(secs * float64(time.Second)), nil
}

// String, GoString and LogValue keep the password and tokens out of logs
// and %v/%#v.
func (a *ADFS) String() string {
	return "jira.ADFS{TokenURL: " + a.tokenURL.String() + ", ClientID: " + a.cfg.ClientID + ", Username: " + a.cfg.Username + ", Password: [redacted]}"
}
func (a *ADFS) GoString() string { return a.String() }
func (a *ADFS) LogValue() slog.Value {
	return slog.GroupValue(slog.String("scheme", "adfs"), slog.String("token_url", a.tokenURL.String()),
		slog.String("client_id", a.cfg.ClientID), slog.String("username", a.cfg.Username))
}

// String, GoString and LogValue of the config redact its password too,
// should it be logged before NewADFS.
func (c ADFSConfig) String() string {
	return "jira.ADFSConfig{TokenURL: " + c.TokenURL + ", ClientID: " + c.ClientID + ", Resource: " + c.Resource + ", Username: " + c.Username + ", Password: [redacted]}"
}
func (c ADFSConfig) GoString() string { return c.String() }
func (c ADFSConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("token_url", c.TokenURL), slog.String("client_id", c.ClientID), slog.String("username", c.Username))
}

// tokenRenewer is an Authenticator whose credential is a cached token
// that Jira may stop accepting before its stated expiry.
type tokenRenewer interface {
	Authenticator
	invalidate(authorization string)
}

// renewingAuth remembers the Authorization header of one call's last
// attempt, so the call can drop exactly that token when it is rejected.
type renewingAuth struct {
	tokenRenewer
	used string
}

func (r *renewingAuth) Authenticate(req *http.Request, basePath string) error {
	r.used = ""
	if err := r.tokenRenewer.Authenticate(req, basePath); err != nil {
		return err
	}
	r.used = req.Header.Get("Authorization")
	return nil
}
