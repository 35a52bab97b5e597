package jira

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
)

// Authenticator adds credentials to an outgoing request.
//
// It is called once per attempt, after the request's URL, method and headers
// are final, so a signature (the Connect JWT's qsh and exp) always matches
// the request it travels with. basePath is the path of the site's base URL
// ("" for Jira Cloud, e.g. "/jira" behind a context path).
type Authenticator interface {
	Authenticate(req *http.Request, basePath string) error
}

// ConnectJWT signs each request as the Connect app, the way Jira Cloud
// expects calls from an installed app: an HS256 token keyed with the
// installation's shared secret, iss = the app key, a qsh binding it to this
// method, path and query, and a short expiry.
type ConnectJWT struct {
	AppKey       string
	SharedSecret []byte
	Now          func() time.Time // nil means time.Now
}

// Authenticate sets "Authorization: JWT <token>".
func (a ConnectJWT) Authenticate(req *http.Request, basePath string) error {
	if a.AppKey == "" || len(a.SharedSecret) == 0 {
		return errors.New("connect JWT: app key or shared secret missing")
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	tok, err := atlassianjwt.Sign(a.AppKey, a.SharedSecret, req.Method, req.URL, basePath, now())
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "JWT "+tok)
	return nil
}

// String, GoString and LogValue keep the secret out of logs and %v/%#v.
func (a ConnectJWT) String() string {
	return "jira.ConnectJWT{AppKey: " + a.AppKey + ", SharedSecret: [redacted]}"
}
func (a ConnectJWT) GoString() string { return a.String() }
func (a ConnectJWT) LogValue() slog.Value {
	return slog.GroupValue(slog.String("scheme", "connect-jwt"), slog.String("app_key", a.AppKey))
}

// Basic authenticates with HTTP Basic: an Atlassian account's email and API
// token on Jira Cloud, or a username and password on Data Center.
type Basic struct {
	Username, Password string
}

// Authenticate sets "Authorization: Basic …".
func (a Basic) Authenticate(req *http.Request, _ string) error {
	if a.Username == "" || a.Password == "" {
		return errors.New("basic auth: username or password missing")
	}
	req.SetBasicAuth(a.Username, a.Password)
	return nil
}

func (a Basic) String() string {
	return "jira.Basic{Username: " + a.Username + ", Password: [redacted]}"
}
func (a Basic) GoString() string { return a.String() }
func (a Basic) LogValue() slog.Value {
	return slog.GroupValue(slog.String("scheme", "basic"), slog.String("username", a.Username))
}

// Bearer authenticates with a bearer token (a Data Center personal access
// token).
type Bearer struct {
	Token string
}

// Authenticate sets "Authorization: Bearer <token>".
func (a Bearer) Authenticate(req *http.Request, _ string) error {
	if a.Token == "" {
		return errors.New("bearer auth: token missing")
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	return nil
}

func (a Bearer) String() string       { return "jira.Bearer{Token: [redacted]}" }
func (a Bearer) GoString() string     { return a.String() }
func (a Bearer) LogValue() slog.Value { return slog.GroupValue(slog.String("scheme", "bearer")) }
