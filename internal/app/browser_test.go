package app

// Browser tests: the configure page as a person sees it, in headless
// Chromium driven by chromedp, against the real service and the Jira
// simulator. Atlassian's all.js is replaced by a stub (no internet in
// tests): requests for connect-cdn.atl-paas.net are intercepted with the
// DevTools Fetch domain and answered with a small AP whose
// context.getToken() hands out a context token minted by the test.
//
// Without a browser the tests skip; with CI_REQUIRE_BROWSER=1 (.ci/run sets
// it) they fail instead. The browser is $CHROMIUM_PATH, else chromium,
// chromium-browser or google-chrome on PATH. Screenshots go to
// t.ArtifactDir(): kept with `go test -artifacts -outputdir DIR`, else
// removed after the test.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/sei-io/jira-connect/internal/store"
)

// browserTimeout bounds one browser session: start, every page, shutdown.
const browserTimeout = 60 * time.Second

// connectKeyPattern is a displayed Connect key: seven groups of four
// characters of Crockford's base32 (no I, L, O, U), as internal/keys makes.
var connectKeyPattern = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){6}$`)

// chromiumPath finds the browser, or skips the test; with
// CI_REQUIRE_BROWSER=1 a missing browser fails it instead.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		full, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("CHROMIUM_PATH=%s is not an executable: %v", p, err)
		}
		return full
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "browser test needs Chromium: none found (set CHROMIUM_PATH, or put chromium, chromium-browser or google-chrome on PATH; on Debian: apt-get install chromium)"
	if os.Getenv("CI_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + "; failing because CI_REQUIRE_BROWSER=1")
	}
	t.Skip(msg)
	return ""
}

// newBrowser starts headless Chromium with a fresh profile and returns the
// context of its first tab. Everything stops at the test's cleanup, or
// after browserTimeout.
func newBrowser(t *testing.T, exe string) context.Context {
	t.Helper()
	// Made before the cleanups below, so removed after the browser exited.
	profile := t.TempDir()
	out := &syncBuffer{} // the browser's stderr and chromedp's complaints
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1024, 768),
		chromedp.CombinedOutput(out),
	)
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	logf := func(format string, args ...any) { fmt.Fprintf(out, "chromedp: "+format+"\n", args...) }
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(logf), chromedp.WithLogf(logf))
	t.Cleanup(func() {
		cancelBrowser() // closes the browser
		cancelAlloc()   // and waits until it has exited
		cancel()
		if t.Failed() {
			var lines []string
			for l := range strings.Lines(out.String()) {
				if !strings.Contains(l, "dbus") { // a container has no D-Bus; Chromium says so at length
					lines = append(lines, l)
				}
			}
			t.Logf("Chromium output (without D-Bus complaints):\n%s", strings.Join(lines, ""))
		}
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	// Runs before the browser closes: what the page looked like when it failed.
	t.Cleanup(func() {
		if !t.Failed() || bctx.Err() != nil {
			return
		}
		sctx, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		if buf, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)); err == nil {
			p := filepath.Join(t.ArtifactDir(), "failure.png")
			if os.WriteFile(p, buf, 0o644) == nil {
				t.Logf("screenshot at failure: %s", p)
			}
		}
	})
	return bctx
}

// allJSStub answers the page's requests for https://connect-cdn.atl-paas.net/all.js
// with a stub AP, and lets every other intercepted request through.
type allJSStub struct {
	body   []byte
	served atomic.Int32

	mu   sync.Mutex
	hold chan struct{} // answer all.js only once this is closed; nil: at once
}

// allJSStubScript is the stub: AP.context.getToken takes a callback and
// also returns a promise, as the real all.js does, and answers
// asynchronously. window.__apStub counts the calls.
const allJSStubScript = `(function () {
  "use strict";
  var token = %s;
  window.__apStub = { getTokenCalls: 0 };
  window.AP = {
    context: {
      getToken: function (callback) {
        window.__apStub.getTokenCalls++;
        var p = new Promise(function (resolve) { setTimeout(function () { resolve(token); }, 0); });
        if (typeof callback === "function") { p.then(callback); }
        return p;
      }
    },
    resize: function () {},
    sizeToParent: function () {}
  };
})();
`

// stubAllJS intercepts the CDN in the tab of ctx (Fetch.enable) until the
// test ends; all.js is answered with a stub whose getToken gives token.
func stubAllJS(t *testing.T, ctx context.Context, token string) *allJSStub {
	t.Helper()
	tok, _ := json.Marshal(token)
	st := &allJSStub{body: fmt.Appendf(nil, allJSStubScript, tok)}
	sctx, cancel := context.WithCancel(ctx)
	paused := chromedp.Events(sctx, fetch.RequestPaused) // subscribed from here on
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		for ev, err := range paused {
			if err != nil {
				return
			}
			wg.Go(func() { st.answer(t, sctx, ev) })
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: "*connect-cdn.atl-paas.net*"}},
	}); err != nil {
		t.Fatalf("Fetch.enable: %v", err)
	}
	return st
}

// holdUntil makes the stub keep all.js back until release is called, as a
// slow CDN would; the page must cope.
func (st *allJSStub) holdUntil() (release func()) {
	ch := make(chan struct{})
	st.mu.Lock()
	st.hold = ch
	st.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			st.mu.Lock()
			st.hold = nil
			st.mu.Unlock()
			close(ch)
		})
	}
}

func (st *allJSStub) answer(t *testing.T, ctx context.Context, ev fetch.EventRequestPaused) {
	u, _ := url.Parse(ev.Request.URL)
	var err error
	if u != nil && u.Host == "connect-cdn.atl-paas.net" {
		st.mu.Lock()
		hold := st.hold
		st.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return
			}
		}
		_, err = chromedp.Call(ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
			RequestID:    ev.RequestID,
			ResponseCode: http.StatusOK,
			ResponseHeaders: []*fetch.HeaderEntry{
				{Name: "Content-Type", Value: "application/javascript; charset=utf-8"},
				{Name: "Cache-Control", Value: "no-store"},
			},
			Body: st.body,
		})
		if err == nil {
			st.served.Add(1)
		}
	} else {
		_, err = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
	}
	if err != nil && ctx.Err() == nil {
		t.Errorf("answering intercepted %s: %v", ev.Request.URL, err)
	}
}

// consoleLog collects what the tab writes to its console: console calls,
// uncaught exceptions and unhandled rejections, and the browser's log
// (CSP violations, failed loads).
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func collectConsole(t *testing.T, ctx context.Context) *consoleLog {
	c := &consoleLog{}
	cctx, cancel := context.WithCancel(ctx)
	msgs := chromedp.Console(cctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// check fails the test for uncaught exceptions and CSP violations, and
// logs the rest.
func (c *consoleLog) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		switch {
		case m.IsException():
			t.Errorf("page threw: %s (%s:%d)", m.Text, m.URL, m.Line+1)
		case strings.Contains(m.Text, "Content Security Policy"):
			t.Errorf("CSP violation: %s", m.Text)
		default:
			t.Logf("console %s", m)
		}
	}
}

// screenshot saves a full-page PNG in the test's artifact directory.
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG, else JPEG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if !bytes.HasPrefix(buf, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot %s is not a PNG", name)
	}
	p := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// navigateNoWait navigates without waiting for the load event (which an
// async all.js held back would delay): it returns at DOMContentLoaded, when
// the page's own inline script has run.
func navigateNoWait(u string) chromedp.Action[page.EventDomContentEventFired] {
	return chromedp.WaitEvent(page.DomContentEventFired, nil, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := cdp.Call(ctx, tg, page.Navigate, page.NavigateParams{URL: u})
		if err == nil && res.ErrorText != "" {
			err = fmt.Errorf("navigate %s: %s", u, res.ErrorText)
		}
		return err
	}))
}

func elementText(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("#%s: %v", id, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

func pageState(t *testing.T, ctx context.Context) string {
	t.Helper()
	a, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("state"), "data-state"))
	if err != nil || !a.Exists {
		t.Fatalf("#state data-state: %v (exists %v)", err, a.Exists)
	}
	return a.Value
}

func evalInPage[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// TestConfigurePageInBrowser is the administrator's path in a real browser:
// the page in Jira's iframe says "not linked", Generate key shows a key and
// its countdown, the key is redeemed through the API, and the page then
// says which integration of which tenant the site is linked to.
func TestConfigurePageInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	forEachDB(t, func(t *testing.T, db *store.DB) {
		began := time.Now()
		h := start(t, db, "", nil)
		s := h.installed()
		remember(s.SharedSecret)
		// Names that must come out escaped, as text.
		const tenantName, integrationName = "Acme & Sons", "Jira <prod>"
		_, apiKey := h.newTenant(tenantName)
		st, it := h.api("POST", "/integrations", apiKey, map[string]any{"name": integrationName})
		if st != http.StatusCreated {
			t.Fatalf("create integration: %d %v", st, it)
		}
		ctxTok, err := s.ContextToken(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		remember(ctxTok)

		ctx := newBrowser(t, exe)
		console := collectConsole(t, ctx)
		stub := stubAllJS(t, ctx, ctxTok)
		t.Logf("browser up after %v", time.Since(began).Round(time.Millisecond))

		// First load: all.js arrives late, after the click, as from a slow
		// CDN; the page waits for AP when it needs a token.
		release := stub.holdUntil()
		defer release()
		pageURL, err := s.PageURL("sei-connect")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(ctx, navigateNoWait(pageURL)); err != nil {
			t.Fatalf("load page: %v", err)
		}
		if got := pageState(t, ctx); got != "not_linked" {
			t.Errorf("data-state = %q before linking, want not_linked", got)
		}
		if got := elementText(t, ctx, "state"); !strings.Contains(got, "Not linked") {
			t.Errorf("#state says %q before linking", got)
		}
		if evalInPage[bool](t, ctx, `typeof window.AP !== "undefined"`) {
			t.Fatal("AP is there before all.js was released; the late-stub path is not tested")
		}
		saveScreenshot(t, ctx, "1-not-linked.png")

		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("generate"))); err != nil {
			t.Fatalf("click Generate key: %v", err)
		}
		release()
		type shown struct {
			Key, Countdown, Error string
			BoxVisible            bool
		}
		got, err := chromedp.Run(ctx, chromedp.Poll[shown](`(function () {
			var key = document.getElementById("key").textContent.trim(),
			    countdown = document.getElementById("countdown").textContent.trim(),
			    error = document.getElementById("error").textContent.trim();
			if (error) { return { Error: error }; }
			var m = /^(\d+):(\d\d)$/.exec(countdown);
			if (!/^[0-9A-Z]{4}(-[0-9A-Z]{4}){6}$/.test(key) || !m || m[1] * 60 + (+m[2]) >= 600) { return null; }
			return { Key: key, Countdown: countdown, BoxVisible: document.getElementById("key-box").offsetParent !== null };
		})()`, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
		if err != nil {
			t.Fatalf("waiting for a key and a countdown under 10:00: %v (key %q, countdown %q, error %q)", err,
				elementText(t, ctx, "key"), elementText(t, ctx, "countdown"), elementText(t, ctx, "error"))
		}
		if got.Error != "" {
			t.Fatalf("the page shows an error: %s", got.Error)
		}
		remember(got.Key)
		if !connectKeyPattern.MatchString(got.Key) {
			t.Errorf("key %q is not XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX in Crockford base32", got.Key)
		}
		mm, ss, _ := strings.Cut(got.Countdown, ":")
		minutes, _ := strconv.Atoi(mm)
		seconds, _ := strconv.Atoi(ss)
		if left := minutes*60 + seconds; left < 9*60 || left >= 10*60 {
			t.Errorf("countdown %s, want just under 10:00", got.Countdown)
		}
		if !got.BoxVisible {
			t.Error("#key-box is hidden although the key is set")
		}
		if n := evalInPage[int](t, ctx, `window.__apStub.getTokenCalls`); n != 1 {
			t.Errorf("AP.context.getToken called %d times, want 1", n)
		}

		// Copy: the clipboard may be refused headless; the page falls back
		// to selecting the key. Either way it says so and throws nothing.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("copy"))); err != nil {
			t.Fatalf("click Copy: %v", err)
		}
		copied, err := chromedp.Run(ctx, chromedp.Poll[string](`(function () {
			var t = document.getElementById("copy").textContent;
			return t === "Copy" ? null : t;
		})()`, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(5*time.Second)))
		if err != nil {
			t.Errorf("Copy changed nothing: %v", err)
		} else if copied != "Copied" && copied != "Press Ctrl+C" {
			t.Errorf("Copy button says %q", copied)
		} else {
			t.Logf("Copy: %q", copied)
		}
		saveScreenshot(t, ctx, "2-key.png")

		// Redeem the key in SEI, through the API.
		st, linked := h.api("POST", "/integrations/"+id(it)+"/connect-key", apiKey, map[string]any{"key": got.Key})
		if st != http.StatusOK {
			t.Fatalf("redeem the key from the page: %d %v", st, linked)
		}
		if site, _ := linked["site"].(map[string]any); site["client_key"] != s.ClientKey {
			t.Errorf("redeemed for %v, want site %s", linked["site"], s.ClientKey)
		}

		// Reload, as Jira would: a fresh signed URL (page tokens are bound to
		// their URL), all.js at once this time.
		pageURL, err = s.PageURL("sei-connect")
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
			t.Fatalf("reload page: %v", err)
		}
		if got := pageState(t, ctx); got != "linked" {
			t.Errorf("data-state = %q after linking, want linked", got)
		}
		if got := elementText(t, ctx, "integration-name"); got != integrationName {
			t.Errorf("#integration-name = %q, want %q", got, integrationName)
		}
		if got := elementText(t, ctx, "tenant-name"); got != tenantName {
			t.Errorf("#tenant-name = %q, want %q", got, tenantName)
		}
		want := "Linked to integration " + integrationName + " of " + tenantName
		if got := elementText(t, ctx, "state"); !strings.HasPrefix(got, want) {
			t.Errorf("#state says %q, want %q...", got, want)
		}
		if !evalInPage[bool](t, ctx, `typeof window.AP !== "undefined"`) {
			t.Error("the stub all.js did not load on the second page")
		}
		saveScreenshot(t, ctx, "3-linked.png")

		if n := stub.served.Load(); n != 2 {
			t.Errorf("the all.js stub was served %d times, want 2 (once per page load)", n)
		}
		console.check(t)
		t.Logf("browser flow took %v", time.Since(began).Round(time.Millisecond))
	})
}

// TestConfigurePageErrorInBrowser: opened without Jira's signature (no jwt,
// or an expired one), the browser shows the HTML error page that tells a
// person to open the app inside Jira.
func TestConfigurePageErrorInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		s := h.installed()
		remember(s.SharedSecret)
		good, err := s.PageURL("sei-connect")
		if err != nil {
			t.Fatal(err)
		}
		pu, _ := url.Parse(good)
		q := pu.Query()
		q.Del("jwt")
		missing := h.base + pu.Path + "?" + q.Encode()
		old, err := s.Token(http.MethodGet, missing, time.Now().Add(-10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		q.Set("jwt", old)
		expired := h.base + pu.Path + "?" + q.Encode()

		ctx := newBrowser(t, exe)
		console := collectConsole(t, ctx)
		for _, c := range []struct{ name, url string }{{"missing", missing}, {"expired", expired}} {
			resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(c.url))
			if err != nil {
				t.Fatalf("%s jwt: %v", c.name, err)
			}
			if resp.Status != http.StatusUnauthorized || resp.MimeType != "text/html" {
				t.Errorf("%s jwt: status %d, %s; want 401, text/html", c.name, resp.Status, resp.MimeType)
			}
			if got := elementText(t, ctx, "page-error"); !strings.Contains(got, "opened inside Jira") {
				t.Errorf("%s jwt: the page says %q", c.name, got)
			}
			if evalInPage[bool](t, ctx, `document.getElementById("generate") !== null`) {
				t.Errorf("%s jwt: the page offers Generate key", c.name)
			}
			saveScreenshot(t, ctx, "error-"+c.name+"-jwt.png")
		}
		console.check(t)
	})
}
