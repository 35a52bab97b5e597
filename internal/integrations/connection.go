package integrations

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// How an API-token or Data Center integration reaches its site.
const (
	// ConnectionCloud: the service calls the site itself.
	ConnectionCloud = "cloud"
	// ConnectionSatellite: an Ingestion Satellite inside the customer's
	// network calls the site and pushes what it ingested; the service
	// never calls the site and never holds its credentials.
	ConnectionSatellite = "satellite"
)

// Authentication methods.
const (
	AuthAPIToken = "api_token" // Jira Cloud: an Atlassian account's email and API token, HTTP Basic
	AuthPAT      = "pat"       // Data Center: a personal access token, Bearer
	AuthBasic    = "basic"     // Data Center: username and password, HTTP Basic
	AuthADFS     = "adfs"      // Data Center behind ADFS: OAuth2 password grant, Bearer
)

// The secret of each method: sealed at rest, never returned, never logged.
const (
	SecretAPIToken = "api_token"
	SecretToken    = "token"
	SecretPassword = "password"
)

// Further reasons of the token and Data Center types.
const (
	ReasonNotValidated    = "not_validated"
	ReasonSettingsChanged = "settings_changed"
)

func init() {
	reasonText[ReasonNotValidated] = "Not validated yet: run Validate Connection."
	reasonText[ReasonSettingsChanged] = "The connection settings or credentials changed: run Validate Connection."
}

// Settings is the non-secret connection of an API-token or Data Center
// integration, kept as JSON in store.Integration.Settings.
type Settings struct {
	Connection string       `json:"connection,omitempty"`
	URL        string       `json:"url,omitempty"`
	Auth       AuthSettings `json:"authentication"`
	TLS        TLSSettings  `json:"tls"`
	// SecretsSetAt says when each secret was last set; the secret itself
	// is in store.Integration.Credentials, sealed.
	SecretsSetAt map[string]time.Time `json:"secrets_set_at,omitempty"`
}

// AuthSettings are the non-secret parts of the credentials.
type AuthSettings struct {
	Method   string `json:"method,omitempty"`
	Email    string `json:"email,omitempty"`
	Username string `json:"username,omitempty"`
	ADFSURL  string `json:"adfs_url,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Resource string `json:"resource,omitempty"`
}

// TLSSettings say how a Data Center site's certificate is checked.
type TLSSettings struct {
	// AllowUnsafeSSL turns certificate verification off: encrypted, but
	// anyone in the path can impersonate the site. A last resort;
	// CACertificate is the way to trust a private CA.
	AllowUnsafeSSL bool   `json:"allow_unsafe_ssl,omitempty"`
	CACertificate  string `json:"ca_certificate,omitempty"` // PEM, trusted in addition to the system's roots
}

// ParseSettings reads an integration's settings; "{}" and "" are empty.
func ParseSettings(it *store.Integration) (Settings, error) {
	var st Settings
	if strings.TrimSpace(it.Settings) == "" {
		return st, nil
	}
	if err := json.Unmarshal([]byte(it.Settings), &st); err != nil {
		return st, apperr.Wrap(err, apperr.Internal, "integration settings are unreadable")
	}
	return st, nil
}

// UsesCredentials reports whether the integration is one whose stored
// credentials the service uses to call Jira (API token, or Data Center
// connected directly).
func UsesCredentials(it *store.Integration) bool {
	if it.Type != TypeCloudToken && it.Type != TypeDataCenter {
		return false
	}
	st, err := ParseSettings(it)
	return err == nil && st.Connection != ConnectionSatellite
}

// BySatellite reports whether a satellite ingests the integration: the
// service then runs no sync of its own.
func BySatellite(it *store.Integration) bool {
	if it.Type != TypeDataCenter {
		return false
	}
	st, err := ParseSettings(it)
	return err == nil && st.Connection == ConnectionSatellite
}

// AuthInput is the authentication part of a create, PATCH or PUT
// …/authentication. Secrets (api_token, token, password) are write-only.
type AuthInput struct {
	Method   *string `json:"method"`
	Email    *string `json:"email"`
	APIToken *string `json:"api_token"`
	Token    *string `json:"token"`
	Username *string `json:"username"`
	Password *string `json:"password"`
	ADFSURL  *string `json:"adfs_url"`
	ClientID *string `json:"client_id"`
	Resource *string `json:"resource"`
}

// String, GoString and LogValue keep the secrets out of any log line or
// %v that an AuthInput might reach by mistake.
func (a AuthInput) String() string   { return "integrations.AuthInput{[redacted]}" }
func (a AuthInput) GoString() string { return a.String() }
func (a AuthInput) LogValue() slog.Value {
	m := ""
	if a.Method != nil {
		m = *a.Method
	}
	return slog.GroupValue(slog.String("method", m))
}

func (a *AuthInput) secret(name string) *string {
	switch name {
	case SecretAPIToken:
		return a.APIToken
	case SecretToken:
		return a.Token
	case SecretPassword:
		return a.Password
	}
	return nil
}

// given lists the fields present in the input, secrets included.
func (a *AuthInput) given() map[string]*string {
	m := map[string]*string{"email": a.Email, "api_token": a.APIToken, "token": a.Token, "username": a.Username,
		"password": a.Password, "adfs_url": a.ADFSURL, "client_id": a.ClientID, "resource": a.Resource}
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	return m
}

// TLSInput is the tls part of a create or PATCH (Data Center only).
type TLSInput struct {
	AllowUnsafeSSL *bool   `json:"allow_unsafe_ssl"`
	CACertificate  *string `json:"ca_certificate"`
}

// method is what one authentication method takes.
type method struct {
	fields []string // non-secret, all required
	secret string
}

var methods = map[string]map[string]method{
	TypeCloudToken: {AuthAPIToken: {fields: []string{"email"}, secret: SecretAPIToken}},
	TypeDataCenter: {
		AuthPAT:   {secret: SecretToken},
		AuthBasic: {fields: []string{"username"}, secret: SecretPassword},
		AuthADFS:  {fields: []string{"adfs_url", "client_id", "resource", "username"}, secret: SecretPassword},
	},
}

// SecretOf names the secret of the integration's method ("" if none).
func SecretOf(typ string, st Settings) string { return methods[typ][st.Auth.Method].secret }

// connChange is a validated change of an integration's connection, to be
// committed once every field has passed.
type connChange struct {
	settings   Settings
	secretName string
	secret     *string // a new secret to seal
	dropSecret bool    // no secret is to be stored (satellite)
	changed    bool    // anything Validate Connection checks changed
}

// Limits of the connection fields.
const (
	maxURL    = 2000
	maxSecret = 4096
	maxIdent  = 255
	maxCAPEM  = 64 << 10
)

// applyConnection validates the connection fields of in against it's type,
// adding one message per bad field to f.
func (s *Service) applyConnection(in *Input, it *store.Integration, creating bool, f map[string]string) *connChange {
	if it.Type != TypeCloudToken && it.Type != TypeDataCenter {
		for name, given := range map[string]bool{"connection": in.Connection != nil, "url": in.URL != nil,
			"authentication": in.Authentication != nil, "tls": in.TLS != nil} {
			if given {
				f[name] = "is not used by jira_connect_app integrations: the app's installation links the site"
			}
		}
		return nil
	}
	st, err := ParseSettings(it)
	if err != nil {
		st = Settings{}
	}
	before, _ := json.Marshal(st)
	wasSatellite := st.Connection == ConnectionSatellite
	ch := &connChange{}

	if in.Connection != nil {
		st.Connection = strings.TrimSpace(*in.Connection)
	}
	if st.Connection == "" {
		st.Connection = ConnectionCloud
	}
	switch {
	case st.Connection != ConnectionCloud && st.Connection != ConnectionSatellite:
		f["connection"] = "must be cloud (the service calls the site) or satellite (a satellite inside your network does)"
	case st.Connection == ConnectionSatellite && it.Type == TypeCloudToken:
		f["connection"] = "satellite is for jira_datacenter: a Jira Cloud site is reached directly (connection cloud)"
	}
	satellite := st.Connection == ConnectionSatellite && it.Type == TypeDataCenter

	if in.URL != nil {
		st.URL = strings.TrimSpace(*in.URL)
	}
	if st.URL == "" {
		f["url"] = "is required: the site's base URL, e.g. https://acme.atlassian.net or https://jira.acme.internal/jira"
	} else if u, msg := s.checkSiteURL(it.Type, st.Connection, st.URL); msg != "" {
		f["url"] = msg
	} else {
		st.URL = u
	}

	if t := in.TLS; t != nil {
		if it.Type != TypeDataCenter {
			f["tls"] = "is for jira_datacenter: Jira Cloud's certificates are publicly trusted"
		} else {
			if t.AllowUnsafeSSL != nil {
				st.TLS.AllowUnsafeSSL = *t.AllowUnsafeSSL
			}
			if t.CACertificate != nil {
				st.TLS.CACertificate = strings.TrimSpace(*t.CACertificate)
			}
		}
	}
	if st.TLS.CACertificate != "" {
		switch {
		case satellite:
			f["tls.ca_certificate"] = "is for connection cloud: a satellite trusts the certificate store of its host"
		case len(st.TLS.CACertificate) > maxCAPEM || !validPEM(st.TLS.CACertificate):
			f["tls.ca_certificate"] = "must be one or more PEM certificates (-----BEGIN CERTIFICATE-----)"
		}
	}

	a := in.Authentication
	if a == nil {
		a = &AuthInput{}
	}
	methodBefore := st.Auth.Method
	if a.Method != nil {
		st.Auth.Method = strings.TrimSpace(*a.Method)
	}
	if st.Auth.Method == "" && it.Type == TypeCloudToken {
		st.Auth.Method = AuthAPIToken
	}
	methodChanged := st.Auth.Method != methodBefore
	if methodChanged {
		// The old method's fields do not carry over: a basic-auth user
		// name is not necessarily the ADFS one.
		st.Auth = AuthSettings{Method: st.Auth.Method}
	}
	m, ok := methods[it.Type][st.Auth.Method]
	switch {
	case !ok && it.Type == TypeCloudToken:
		f["authentication.method"] = "must be api_token for jira_cloud_api_token (pat, basic and adfs are Data Center methods)"
	case !ok && st.Auth.Method == "":
		f["authentication.method"] = "is required: pat (personal access token, recommended), basic (username and password) or adfs"
	case !ok:
		f["authentication.method"] = "must be pat, basic or adfs"
	}
	for name := range a.given() {
		switch {
		case ok && (slices.Contains(m.fields, name) || name == m.secret):
		case wrongTypeField(it.Type, name) != "":
			f["authentication."+name] = wrongTypeField(it.Type, name)
		case ok:
			f["authentication."+name] = fmt.Sprintf("is not used by method %s (it takes %s)", st.Auth.Method, takes(m))
		}
		// With an unknown method, the method's own message says enough.
	}
	if !ok {
		return ch
	}
	fields := map[string]*string{"email": &st.Auth.Email, "username": &st.Auth.Username, "adfs_url": &st.Auth.ADFSURL,
		"client_id": &st.Auth.ClientID, "resource": &st.Auth.Resource}
	given := a.given()
	for _, name := range m.fields {
		if v := given[name]; v != nil {
			*fields[name] = strings.TrimSpace(*v)
		}
		if msg := s.checkAuthField(it.Type, st.Auth.Method, name, *fields[name]); msg != "" {
			f["authentication."+name] = msg
		}
	}

	ch.secretName = m.secret
	secret := a.secret(m.secret)
	switch {
	case satellite && secret != nil:
		f["authentication."+m.secret] = "is not stored for a satellite integration: it goes into satellite.yml on the satellite's host, inside your network"
	case satellite:
		ch.dropSecret = it.Credentials != nil
	case secret != nil:
		if msg := checkSecret(*secret); msg != "" {
			f["authentication."+m.secret] = msg
		}
		ch.secret = secret
	case it.Credentials == nil || methodChanged || wasSatellite:
		f["authentication."+m.secret] = fmt.Sprintf("is required for method %s", st.Auth.Method)
	}

	after, _ := json.Marshal(st)
	ch.settings = st
	ch.changed = creating || string(before) != string(after) || ch.secret != nil || ch.dropSecret
	return ch
}

// wrongTypeField explains a field given to the other type, which is the
// mix-up people make: an API token to Data Center, a PAT to Cloud.
func wrongTypeField(typ, name string) string {
	switch {
	case typ == TypeDataCenter && name == "api_token":
		return "is for Jira Cloud (jira_cloud_api_token); Jira Data Center takes a personal access token (method pat, field token), a username and password (basic) or ADFS"
	case typ == TypeDataCenter && name == "email":
		return "is for Jira Cloud (jira_cloud_api_token); Jira Data Center's basic authentication takes username"
	case typ == TypeCloudToken && name == "token":
		return "a personal access token is for Jira Data Center; a Jira Cloud site takes email and api_token (an Atlassian API token)"
	case typ == TypeCloudToken:
		return "is not used by jira_cloud_api_token integrations, which take email and api_token"
	}
	return ""
}

func takes(m method) string {
	return strings.Join(append(slices.Clone(m.fields), m.secret), ", ")
}

// checkSiteURL validates and normalizes a site URL; msg says what is wrong.
func (s *Service) checkSiteURL(typ, conn, raw string) (string, string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > maxURL || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "":
		return "", "is not an absolute http(s) URL such as https://jira.acme.com"
	case u.User != nil:
		return "", "must not carry a user name or password: give them under authentication"
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", "must not have a query or fragment: give the site's base URL"
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), ""
	plain := u.Scheme == "http" && !(s.AllowLoopbackHTTP && isLoopback(u.Hostname()))
	switch typ {
	case TypeCloudToken:
		if plain {
			return "", "must be https: Jira Cloud sites are served over https only, and the API token must not travel unencrypted"
		}
		if s.CloudHosts != nil && !s.CloudHosts.Allows(u.Hostname()) {
			return "", "is not a Jira Cloud site this service accepts (an Atlassian domain such as acme.atlassian.net); for Jira on your own servers use jira_datacenter"
		}
		if u.Path != "" {
			return "", "must be the site's root, such as https://acme.atlassian.net: Jira Cloud has no context path"
		}
	case TypeDataCenter:
		if plain && conn == ConnectionCloud {
			return "", "must be https with connection cloud: the credentials would cross the internet unencrypted (http is allowed with connection satellite, inside your network)"
		}
	}
	return u.String(), ""
}

func (s *Service) checkAuthField(typ, meth, name, v string) string {
	if v == "" {
		return fmt.Sprintf("is required for method %s", meth)
	}
	switch name {
	case "email":
		if len(v) > 254 || strings.Count(v, "@") != 1 || strings.HasPrefix(v, "@") || strings.HasSuffix(v, "@") || hasSpaceOrControl(v) {
			return "must be the email address of the Atlassian account the API token belongs to"
		}
	case "username":
		if len(v) > maxIdent || hasControl(v) {
			return "must be 1 to 255 characters without control characters"
		}
		if meth == AuthBasic && strings.Contains(v, ":") {
			return "must not contain ':' (HTTP Basic authentication cannot carry it)"
		}
	case "adfs_url":
		u, err := url.Parse(v)
		if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || len(v) > maxURL {
			return "must be the ADFS token endpoint, e.g. https://adfs.acme.com/adfs/oauth2/token"
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && s.AllowLoopbackHTTP && isLoopback(u.Hostname())) {
			return "must be https: the password is sent to it"
		}
	case "client_id", "resource":
		if len(v) > maxURL || hasSpaceOrControl(v) {
			return "must be 1 to 2000 characters without spaces or control characters"
		}
	}
	return ""
}

// checkSecret never echoes the secret.
func checkSecret(v string) string {
	if v == "" || len(v) > maxSecret || hasControl(v) {
		return "must be 1 to 4096 characters without control characters"
	}
	if strings.TrimSpace(v) != v {
		return "must not begin or end with spaces (a copy-and-paste slip?)"
	}
	return ""
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

func hasSpaceOrControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) })
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validPEM(s string) bool {
	rest, n := []byte(s), 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return false
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return false
		}
		n++
	}
	return n > 0 && strings.TrimSpace(string(rest)) == ""
}

// commitConnection writes a validated change into the row: the settings,
// the sealed secret, and a status that asks for validation when anything
// it checks changed.
func (s *Service) commitConnection(it *store.Integration, ch *connChange) error {
	if ch == nil {
		return nil
	}
	st := ch.settings
	switch {
	case ch.secret != nil:
		sealed, err := s.sealCredentials(it.ID, map[string]string{ch.secretName: *ch.secret})
		if err != nil {
			return err
		}
		it.Credentials = &sealed
		st.SecretsSetAt = map[string]time.Time{ch.secretName: s.Now().UTC().Truncate(time.Second)}
	case ch.dropSecret:
		it.Credentials, st.SecretsSetAt = nil, nil
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot encode settings")
	}
	it.Settings = string(raw)
	if ch.changed {
		it.Status, it.StatusReason = StatusPending, ReasonSettingsChanged
	}
	return nil
}

// AuthView is the authentication an integration shows: everything but the
// secrets, of which it shows only whether and when they were set.
type AuthView struct {
	Method      string                     `json:"method"`
	Email       string                     `json:"email,omitempty"`
	Username    string                     `json:"username,omitempty"`
	ADFSURL     string                     `json:"adfs_url,omitempty"`
	ClientID    string                     `json:"client_id,omitempty"`
	Resource    string                     `json:"resource,omitempty"`
	Credentials map[string]CredentialState `json:"credentials"`
}

// CredentialState says whether a secret is stored and since when.
type CredentialState struct {
	Set   bool       `json:"set"`
	SetAt *time.Time `json:"set_at"`
	// HeldBy is "satellite" when the secret lives in satellite.yml only.
	HeldBy string `json:"held_by,omitempty"`
}

// TLSView is the tls part of a Data Center integration.
type TLSView struct {
	AllowUnsafeSSL bool   `json:"allow_unsafe_ssl"`
	CACertificate  string `json:"ca_certificate,omitempty"`
}

func connectionView(v *Integration, it *store.Integration) {
	if it.Type != TypeCloudToken && it.Type != TypeDataCenter {
		return
	}
	st, err := ParseSettings(it)
	if err != nil {
		return
	}
	v.Connection, v.URL = st.Connection, st.URL
	a := &AuthView{Method: st.Auth.Method, Email: st.Auth.Email, Username: st.Auth.Username, ADFSURL: st.Auth.ADFSURL,
		ClientID: st.Auth.ClientID, Resource: st.Auth.Resource, Credentials: map[string]CredentialState{}}
	if name := SecretOf(it.Type, st); name != "" {
		cs := CredentialState{Set: it.Credentials != nil}
		if t, ok := st.SecretsSetAt[name]; ok && cs.Set {
			cs.SetAt = &t
		}
		if st.Connection == ConnectionSatellite {
			cs.HeldBy = "satellite"
		}
		a.Credentials[name] = cs
	}
	v.Authentication = a
	if it.Type == TypeDataCenter {
		v.TLS = &TLSView{AllowUnsafeSSL: st.TLS.AllowUnsafeSSL, CACertificate: st.TLS.CACertificate}
	}
}
