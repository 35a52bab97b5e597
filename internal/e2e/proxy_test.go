package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

// exchange is one request the site received through the recorder.
type exchange struct {
	// call is the same for every attempt of one call: method, URL and
	// body (the JWT, signed afresh per attempt, is left out).
	call       string
	path       string
	sent       time.Time // the request reached the proxy
	answered   time.Time // the site's answer reached the proxy
	status     int
	retryAfter time.Duration
}

// recorder is a reverse proxy in front of a simulated site that records
// every exchange: the service talks to the proxy, over real HTTP, as if it
// were the site, because the site believes the proxy's address is its own
// (it builds BaseURL, which it installs in the service, from its
// listener's Addr). Nothing of the service is replaced.
type recorder struct {
	mu  sync.Mutex
	log []exchange
}

// addrListener is a listener that reports another address as its own.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

// recordedSite returns the site option that puts a recorder in front of a
// site made with it.
func recordedSite(t *testing.T) (jirasim.SiteOption, *recorder) {
	t.Helper()
	siteL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	target := &url.URL{Scheme: "http", Host: siteL.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent := time.Now()
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h := sha256.Sum256([]byte(r.Method + " " + r.URL.RequestURI() + "\n" + string(body)))
		cw := &captureWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(cw, r)
		ex := exchange{call: hex.EncodeToString(h[:8]), path: r.URL.Path, sent: sent, answered: cw.at, status: cw.status}
		if secs, err := strconv.Atoi(cw.Header().Get("Retry-After")); err == nil {
			ex.retryAfter = time.Duration(secs) * time.Second
		}
		rec.mu.Lock()
		rec.log = append(rec.log, ex)
		rec.mu.Unlock()
	})}
	go func() { _ = srv.Serve(proxyL) }()
	t.Cleanup(func() { _ = srv.Close() })
	return jirasim.WithListener(addrListener{Listener: siteL, addr: proxyL.Addr()}), rec
}

// captureWriter notes the status and when the header went out.
type captureWriter struct {
	http.ResponseWriter
	status int
	at     time.Time
}

func (w *captureWriter) WriteHeader(code int) {
	w.status, w.at = code, time.Now()
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if w.at.IsZero() {
		w.at = time.Now()
	}
	return w.ResponseWriter.Write(b)
}

// exchanges returns a copy of the log, in the order answers came.
func (rec *recorder) exchanges() []exchange {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]exchange(nil), rec.log...)
}
