package jirasim

import (
	"crypto/subtle"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Credentials of Data Center and API-token sites, changeable while the
// site serves so a test can revoke one in the middle of a sync.

// ADFSPath is where a Data Center site serves its ADFS token endpoint
// (under the server's root, not the context path: ADFS is its own host in
// a real network).
const ADFSPath = "/adfs/oauth2/token"

// ADFSConfig is the relying party an ADFS server knows: the client id and
// resource an OAuth2 password grant must name, and how long the access
// tokens it issues last.
type ADFSConfig struct {
	ClientID, Resource string
	// TokenTTL is the access tokens' lifetime (expires_in); 0 means an
	// hour, ADFS's default.
	TokenTTL time.Duration
}

// SetPassword lets a Data Center user call with HTTP Basic and password;
// "" revokes it (a changed password).
func (s *Site) SetPassword(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if password == "" {
		delete(s.rest.dc.passwords, username)
		return
	}
	s.rest.dc.passwords[username] = password
}

// AddPAT makes token a personal access token of the Data Center user.
func (s *Site) AddPAT(username, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.dc.pats[token] = username
}

// IssuePAT creates a personal access token for the Data Center user.
func (s *Site) IssuePAT(username string) string {
	tok := "NjU" + randB64(33) // the shape of Jira's PATs: base64, 44 characters
	s.AddPAT(username, tok)
	return tok
}

// RevokePAT revokes a personal access token.
func (s *Site) RevokePAT(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rest.dc.pats, token)
}

// RevokeAPIToken revokes the API token of the Cloud user with this email
// (AddBasicUser): their Basic calls get 401 from now on.
func (s *Site) RevokeAPIToken(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rest.basic, email)
}

// EnableADFS serves the ADFS token endpoint (ADFSURL) for a relying party.
func (s *Site) EnableADFS(cfg ADFSConfig) {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.dc.adfs = &cfg
}

// SetADFSPassword sets a user's password at ADFS ("" removes the user).
// The ADFS username is the Data Center username it signs in as.
func (s *Site) SetADFSPassword(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if password == "" {
		delete(s.rest.dc.adfsUsers, username)
		return
	}
	s.rest.dc.adfsUsers[username] = password
}

// RevokeADFSTokens ends every access token ADFS has issued, as a
// changed session or signing key does.
func (s *Site) RevokeADFSTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.rest.dc.adfsTokens)
}

// ADFSURL is the token endpoint EnableADFS serves.
func (s *Site) ADFSURL() string { return s.Server.URL + ADFSPath }

// ADFSTokenRequests is how many requests reached the ADFS token endpoint;
// ADFSTokensIssued how many of them got a token.
func (s *Site) ADFSTokenRequests() int { return int(s.rest.dc.adfsRequests.Load()) }
func (s *Site) ADFSTokensIssued() int  { return int(s.rest.dc.adfsIssued.Load()) }

// authenticateDC accepts HTTP Basic with a password, or a Bearer personal
// access token or unexpired ADFS access token, of a user the site knows.
func (s *Site) authenticateDC(r *http.Request) (principal, bool) {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	var username string
	now := s.now()
	s.mu.Lock()
	switch {
	case strings.EqualFold(scheme, "Basic"):
		user, pw, ok := r.BasicAuth()
		want, known := s.rest.dc.passwords[user]
		if ok && known && subtle.ConstantTimeCompare([]byte(pw), []byte(want)) == 1 {
			username = user
		}
	case strings.EqualFold(scheme, "Bearer"):
		cred = strings.TrimSpace(cred)
		if u, ok := s.rest.dc.pats[cred]; ok {
			username = u
		} else if g, ok := s.rest.dc.adfsTokens[cred]; ok && now.Before(g.expires) {
			username = g.username
		}
	}
	s.mu.Unlock()
	if username == "" {
		return principal{}, false
	}
	st := s.rest.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	u, ok := st.users[st.byName[username]]
	if !ok || !u.active {
		return principal{}, false
	}
	return principal{user: *u}, true
}

// refuseDC answers a request whose credentials were not accepted as Data
// Center answers an anonymous user.
func (s *Site) refuseDC(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	status := s.rest.dc.anonStatus
	s.mu.Unlock()
	h := w.Header()
	h.Set("X-AUSERNAME", "anonymous")
	if status == http.StatusNotFound {
		jiraError(w, http.StatusNotFound, MsgDCNotFound)
		return
	}
	if r.Header.Get("Authorization") != "" {
		h.Set("X-Seraph-LoginReason", "AUTHENTICATED_FAILED")
	}
	h.Set("WWW-Authenticate", `Basic realm="protected-area"`)
	jiraError(w, http.StatusUnauthorized, MsgDCUnauthenticated)
}

// serveADFSToken is ADFS's OAuth2 token endpoint for the password grant
// (grant_type=password, client_id, resource, username, password), which
// answers {access_token, token_type: "bearer", expires_in} or an OAuth2
// error with ADFS's MSIS message.
func (s *Site) serveADFSToken(w http.ResponseWriter, r *http.Request) {
	s.rest.dc.adfsRequests.Add(1)
	s.mu.Lock()
	cfg := s.rest.dc.adfs
	s.mu.Unlock()
	if cfg == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "MSIS9604: An error occurred. The token endpoint accepts only POST.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "MSIS9604: The request body is not a form.")
		return
	}
	f := r.PostForm
	switch {
	case f.Get("grant_type") != "password":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "MSIS9611: The authorization server does not support the requested 'grant_type'.")
		return
	case f.Get("client_id") != cfg.ClientID:
		oauthError(w, http.StatusBadRequest, "invalid_client", "MSIS9607: The 'client_id' parameter in the request is invalid. No registered client is found with this identifier.")
		return
	case f.Get("resource") != cfg.Resource:
		oauthError(w, http.StatusBadRequest, "invalid_resource", "MSIS9602: The received 'resource' parameter is not a valid registered relying party identifier.")
		return
	}
	user, pw := f.Get("username"), f.Get("password")
	s.mu.Lock()
	want, known := s.rest.dc.adfsUsers[user]
	s.mu.Unlock()
	if !known || subtle.ConstantTimeCompare([]byte(pw), []byte(want)) != 1 {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "MSIS9659: Invalid 'username' or 'password'.")
		return
	}
	tok := randB64(48)
	s.mu.Lock()
	s.rest.dc.adfsTokens[tok] = adfsGrant{username: user, expires: s.rest.clock().Add(cfg.TokenTTL)}
	s.mu.Unlock()
	s.rest.dc.adfsIssued.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer",
		"expires_in": int(math.Ceil(cfg.TokenTTL.Seconds())), "resource": cfg.Resource})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// dcRateHeaders are the headers Data Center's rate limiter puts on every
// answer: a bucket of limit tokens, refilled with fill tokens every
// interval seconds, retry-after 0 while tokens remain.
func dcRateHeaders(h http.Header, b *bucket, remaining int, wait time.Duration) {
	interval, fill := 1, b.rate
	if fill < 1 {
		interval, fill = int(math.Round(1/b.rate)), 1
	}
	h.Set("X-RateLimit-Limit", strconv.Itoa(int(b.burst)))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Interval-Seconds", strconv.Itoa(max(interval, 1)))
	h.Set("X-RateLimit-FillRate", strconv.Itoa(max(int(math.Round(fill)), 1)))
	h.Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
}
