// Package jirasim is a fake Atlassian for tests, demos and benchmarks. It
// plays Jira Cloud over real HTTP the way Jira treats a Connect app: it reads
// the app's descriptor, publishes an RS256 install key on a keys server like
// connect-install-keys.atlassian.com, signs install and uninstall callbacks
// with it, and signs enabled/disabled callbacks, webhooks and page loads with
// each site's shared secret. Faults on the keys server (404, 500, slow, huge
// bodies) let tests prove the app's failure paths.
//
// Each Site is also a Jira Cloud REST simulator (rest.go, endpoints.go). It
// authenticates calls as Jira Cloud does (HS256 JWT with the site's shared
// secret, iss = app key, qsh; or HTTP Basic with an API token) and serves,
// under an optional context path: serverInfo, myself, the enhanced JQL
// search (GET and POST /search/jql, token paging), GET issue, an issue's
// changelog and comments, fields, project search, user/bulk,
// user/email/bulk and changelog/bulkfetch (Basic only: Atlassian does not
// open it to Connect apps).
//
// Data comes from AddIssue, or from Generate (gen.go): a deterministic site
// of up to millions of issues, each rebuilt from (seed, issue) on demand so
// that a generated issue costs about 50 bytes (memPerIssue) until a
// mutation stores it. Mutations (mutate.go) change issues and comments and
// return the webhook Jira would send, for the test to deliver when and as
// often as it likes. GroundTruth (truth.go) says what an ingester should end
// up with.
//
// The JQL is a real parser for a subset (jql.go): AND-joined clauses on
// project, id/key, created and updated, and ORDER BY id, key, created,
// updated. Pages are positioned by sort key, not offset (search.go).
//
// Other modes: NewCloudSite is a Cloud site reached only with API tokens
// (HTTP Basic; /user/bulk shows emails as profile visibility allows, the
// email API is for Connect apps only); NewDataCenterSite plays Jira Data
// Center (datacenter.go: API v2, startAt paging and the 10,000 result
// window, Basic, personal access tokens and an ADFS token endpoint,
// credentials revocable while it serves); WithTLS serves https with a
// self-signed certificate.
//
// Realism knobs, all safe to turn while the site serves: SetLatency,
// SetRateLimit (a token bucket answering 429 with Jira's headers), Inject
// (5xx, resets, truncated or malformed bodies, slow answers, 429s, by
// probability or count), SetFault (one failure mode for every call),
// SetSearchLimits, SetEmbeddedLimits, AllowUnboundedJQL, SetClock.
//
// What an ingester must cope with here, as on Jira Cloud:
//   - a search without a restriction is refused (MsgUnboundedJQL);
//   - pages stop at 100 issues with fields, 5000 with ids only, whatever
//     maxResults asks; follow nextPageToken, absent on the last page;
//   - expand=changelog embeds only the newest 100 histories and the
//     comment field only the first 20 comments; total says how many
//     there are; /issue/{id}/changelog pages them all, oldest first;
//   - naming a deleted or invisible issue in JQL (key = X, id in (…)) is
//     a 400, not an empty result;
//   - date strings in JQL are read in the caller's time zone (/myself);
//     epoch milliseconds are not ambiguous;
//   - date-times carry the caller's zone offset, sprint dates are UTC "Z",
//     duedate is a bare date;
//   - user objects carry no emailAddress; the email API leaves out
//     accounts it has no address for;
//   - ordered by updated, an issue updated mid-paging moves behind the
//     cursor and comes again; ordered by id nothing is lost or repeated.
package jirasim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
)

// Fault is how the keys server misbehaves.
type Fault int

const (
	FaultNone     Fault = iota
	FaultNotFound       // 404
	FaultError          // 500
	FaultSlow           // answers after SlowDelay
	FaultHuge           // a 10 MiB body
)

// Atlassian is the fake platform: install-key CDN plus signing.
type Atlassian struct {
	Keys   *httptest.Server // serves PEM public keys at /<kid>
	Kid    string
	Signer *rsa.PrivateKey
	// Fetches counts requests to the keys server.
	Fetches   atomic.Int64
	SlowDelay time.Duration
	HTTP      *http.Client

	fault atomic.Int32
	mu    sync.Mutex
	pems  map[string][]byte
}

// New starts the keys server with a fresh 2048-bit RSA key.
func New() (*Atlassian, error) { return NewWithKeysListener(nil) }

// NewWithKeysListener is New with the keys server on l (nil: a free
// loopback port), for a keys URL that must be known in advance.
func NewWithKeysListener(l net.Listener) (*Atlassian, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	a := &Atlassian{Kid: "jirasim-" + randHex(8), Signer: key, SlowDelay: 3 * time.Second, HTTP: &http.Client{Timeout: 30 * time.Second}, pems: map[string][]byte{}}
	a.pems[a.Kid] = PublicPEM(&key.PublicKey)
	a.Keys = startServer(http.HandlerFunc(a.serveKey), l)
	return a, nil
}

// startServer is httptest.NewServer, on l when given.
func startServer(h http.Handler, l net.Listener) *httptest.Server {
	if l == nil {
		return httptest.NewServer(h)
	}
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	return srv
}

// Close stops the keys server.
func (a *Atlassian) Close() { a.Keys.Close() }

// SetFault makes the keys server misbehave until set back to FaultNone.
func (a *Atlassian) SetFault(f Fault) { a.fault.Store(int32(f)) }

// PublishKey adds another public key under kid (e.g. a rotated key).
func (a *Atlassian) PublishKey(kid string, pub *rsa.PublicKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pems[kid] = PublicPEM(pub)
}

func (a *Atlassian) serveKey(w http.ResponseWriter, r *http.Request) {
	a.Fetches.Add(1)
	switch Fault(a.fault.Load()) {
	case FaultNotFound:
		http.NotFound(w, r)
		return
	case FaultError:
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case FaultSlow:
		select {
		case <-time.After(a.SlowDelay):
		case <-r.Context().Done():
			return
		}
	case FaultHuge:
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte("A"), 64<<10)
		for i := 0; i < 160; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		return
	}
	a.mu.Lock()
	pem, ok := a.pems[strings.TrimPrefix(r.URL.Path, "/")]
	a.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(pem)
}

// PublicPEM encodes an RSA public key as Atlassian's keys server does.
func PublicPEM(pub *rsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// App is a Connect app as Jira sees it: its parsed descriptor.
type App struct {
	BaseURL   string
	Key       string
	Lifecycle map[string]string
	Webhooks  map[string]string // event -> url path
	Pages     map[string]string // module key -> url path
	Raw       map[string]any
}

// LoadApp fetches and parses the descriptor as Jira does on install.
func (a *Atlassian) LoadApp(ctx context.Context, descriptorURL string) (*App, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, descriptorURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("descriptor: HTTP %d", resp.StatusCode)
	}
	var d struct {
		BaseURL   string            `json:"baseUrl"`
		Key       string            `json:"key"`
		Lifecycle map[string]string `json:"lifecycle"`
		Modules   struct {
			PostInstallPage *struct{ Key, URL string } `json:"postInstallPage"`
			ConfigurePage   *struct{ Key, URL string } `json:"configurePage"`
			Webhooks        []struct{ Event, URL string }
		} `json:"modules"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("descriptor: %w", err)
	}
	app := &App{BaseURL: strings.TrimRight(d.BaseURL, "/"), Key: d.Key, Lifecycle: d.Lifecycle, Webhooks: map[string]string{}, Pages: map[string]string{}}
	_ = json.Unmarshal(body, &app.Raw)
	for _, w := range d.Modules.Webhooks {
		app.Webhooks[w.Event] = w.URL
	}
	for _, p := range []*struct{ Key, URL string }{d.Modules.PostInstallPage, d.Modules.ConfigurePage} {
		if p != nil {
			app.Pages[p.Key] = p.URL
		}
	}
	return app, nil
}

// Site is one Jira Cloud site with the app installed (or about to be).
type Site struct {
	Atlassian *Atlassian
	App       *App
	ClientKey string
	// SharedSecret is the installation's secret. Reinstall rotates it; a
	// test that assigns it directly must not do so while the site serves.
	SharedSecret string
	BaseURL      string // the site's URL, e.g. http://127.0.0.1:PORT, or http://127.0.0.1:PORT/jira with WithContextPath
	Server       *httptest.Server
	// ContextPath is the path part of BaseURL: "" for a Cloud site, e.g.
	// "/jira" for one served under a context path.
	ContextPath string
	// AppAccountID is the accountId of the app's own user on this site,
	// which /myself returns for calls signed with the app's JWT.
	AppAccountID string
	// TimeZone is the app user's time zone in /myself; set it before the
	// site serves its first request.
	TimeZone string

	mu       sync.Mutex // guards SharedSecret against Reinstall, and rest (but rest.st)
	rest     restState
	listener net.Listener
}

// SiteOption configures a Site made by NewSite.
type SiteOption func(*Site)

// WithContextPath serves the site under a path prefix, as a Jira behind a
// reverse proxy at https://host/jira: BaseURL gets the path, REST calls are
// answered only under it, and JWTs are checked relative to it.
func WithContextPath(p string) SiteOption {
	return func(s *Site) {
		p = strings.TrimRight(p, "/")
		if p != "" && !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		s.ContextPath = p
	}
}

// WithListener serves the site on l instead of a free loopback port.
func WithListener(l net.Listener) SiteOption { return func(s *Site) { s.listener = l } }

// WithTimeZone sets the app user's time zone (an IANA name), which /myself
// reports and every date-time is rendered in.
func WithTimeZone(tz string) SiteOption { return func(s *Site) { s.TimeZone = tz } }

// NewSite starts a site, a Jira REST simulator, with a fresh clientKey and
// shared secret for app.
func (a *Atlassian) NewSite(app *App, opts ...SiteOption) *Site {
	s := &Site{Atlassian: a, App: app, ClientKey: newUUID(), SharedSecret: randB64(32), AppAccountID: randHex(12), TimeZone: "Etc/UTC"}
	s.rest.init()
	for _, o := range opts {
		o(s)
	}
	s.start()
	return s
}

// Close stops the site's server.
func (s *Site) Close() { s.Server.Close() }

// InstallPayload is the body Jira posts on every lifecycle event.
func (s *Site) InstallPayload(event string) map[string]any {
	return map[string]any{
		"key":            s.App.Key,
		"clientKey":      s.ClientKey,
		"sharedSecret":   s.SharedSecret,
		"serverVersion":  "100245",
		"pluginsVersion": "1001.0.0-SNAPSHOT",
		"baseUrl":        s.BaseURL,
		"displayUrl":     s.BaseURL,
		"productType":    "jira",
		"description":    "Atlassian JIRA at " + s.BaseURL,
		"eventType":      event,
		"installationId": "ari:cloud:ecosystem::installation/" + newUUID(),
		"oauthClientId":  randHex(16),
	}
}

// Install posts a signed installed callback.
func (s *Site) Install(ctx context.Context) (*http.Response, error) {
	s.setUninstalled(false)
	return s.signedInstallCall(ctx, "installed")
}

// Uninstall posts a signed uninstalled callback. From then on the site
// refuses the app's REST calls with 401, as Jira does once an app is gone.
func (s *Site) Uninstall(ctx context.Context) (*http.Response, error) {
	s.setUninstalled(true)
	return s.signedInstallCall(ctx, "uninstalled")
}

// Reinstall rotates the shared secret, as Jira does, and installs again.
func (s *Site) Reinstall(ctx context.Context) (*http.Response, error) {
	s.mu.Lock()
	s.SharedSecret = randB64(32)
	s.mu.Unlock()
	return s.Install(ctx)
}

func (s *Site) signedInstallCall(ctx context.Context, event string) (*http.Response, error) {
	u := s.App.BaseURL + s.App.Lifecycle[event]
	tok, err := s.Atlassian.InstallToken(s.ClientKey, s.App.BaseURL, http.MethodPost, u, time.Now())
	if err != nil {
		return nil, err
	}
	return s.Atlassian.Do(ctx, http.MethodPost, u, "JWT "+tok, s.InstallPayload(event))
}

// InstallToken signs what Atlassian signs for install/uninstall.
func (a *Atlassian) InstallToken(clientKey, audience, method, rawURL string, now time.Time) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	base, _ := url.Parse(audience)
	return atlassianjwt.SignRS256(a.Kid, a.Signer, map[string]any{
		"iss": clientKey, "aud": []string{audience}, "iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix(),
		"qsh": atlassianjwt.QSH(method, u, base.Path), "sub": "jirasim",
	})
}

// Enable and Disable post enabled/disabled signed with the shared secret.
func (s *Site) Enable(ctx context.Context) (*http.Response, error) {
	return s.hs256Lifecycle(ctx, "enabled")
}

func (s *Site) Disable(ctx context.Context) (*http.Response, error) {
	return s.hs256Lifecycle(ctx, "disabled")
}

func (s *Site) hs256Lifecycle(ctx context.Context, event string) (*http.Response, error) {
	u := s.App.BaseURL + s.App.Lifecycle[event]
	tok, err := s.Token(http.MethodPost, u, time.Now())
	if err != nil {
		return nil, err
	}
	return s.Atlassian.Do(ctx, http.MethodPost, u, "JWT "+tok, s.InstallPayload(event))
}

// Token signs a call to the app (webhook, page load) with the shared secret.
func (s *Site) Token(method, rawURL string, now time.Time) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	base, _ := url.Parse(s.App.BaseURL)
	return atlassianjwt.SignHS256([]byte(s.SharedSecret), map[string]any{
		"iss": s.ClientKey, "iat": now.Unix(), "exp": now.Add(3 * time.Minute).Unix(),
		"qsh": atlassianjwt.QSH(method, u, base.Path), "sub": "557058:" + newUUID(),
	})
}

// ContextToken is what AP.context.getToken() hands a page: qsh fixed to
// "context-qsh", valid for 15 minutes.
func (s *Site) ContextToken(now time.Time) (string, error) {
	return atlassianjwt.SignHS256([]byte(s.SharedSecret), map[string]any{
		"iss": s.ClientKey, "iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
		"qsh": atlassianjwt.ContextQSH, "sub": "557058:" + newUUID(),
		"context": map[string]any{},
	})
}

// Webhook posts a signed webhook for event to the URL the descriptor names.
func (s *Site) Webhook(ctx context.Context, event string, body any) (*http.Response, error) {
	path, ok := s.App.Webhooks[event]
	if !ok {
		return nil, fmt.Errorf("descriptor declares no webhook for %s", event)
	}
	u := s.App.BaseURL + path
	tok, err := s.Token(http.MethodPost, u, time.Now())
	if err != nil {
		return nil, err
	}
	return s.Atlassian.Do(ctx, http.MethodPost, u, "JWT "+tok, body)
}

// PageURL is the URL Jira loads in an iframe for a page module, with the
// context parameters Jira adds and a jwt query parameter signed over them.
func (s *Site) PageURL(moduleKey string) (string, error) {
	path, ok := s.App.Pages[moduleKey]
	if !ok {
		return "", fmt.Errorf("descriptor declares no page %s", moduleKey)
	}
	u, err := url.Parse(s.App.BaseURL + path)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("xdm_e", s.BaseURL)
	q.Set("xdm_c", "channel-"+moduleKey)
	q.Set("cp", "")
	q.Set("xdm_deprecated_addon_key_do_not_use", s.App.Key)
	q.Set("lic", "none")
	q.Set("cv", "1001.0.0-SNAPSHOT")
	u.RawQuery = q.Encode()
	tok, err := s.Token(http.MethodGet, u.String(), time.Now())
	if err != nil {
		return "", err
	}
	q.Set("jwt", tok)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Do sends a JSON request with an Authorization header (empty for none).
func (a *Atlassian) Do(ctx context.Context, method, rawURL, authorization string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Header.Set("User-Agent", "Atlassian Connect jirasim")
	return a.HTTP.Do(req)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func randB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
