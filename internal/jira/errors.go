package jira

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// ErrResponseTooLarge is the cause of an *Error whose response body exceeded
// the client's MaxResponseBytes. The body is refused, never truncated:
// half an issue page decoded as a whole one would silently lose issues.
var ErrResponseTooLarge = errors.New("response body too large")

// ErrCredentialsRejected matches (with errors.Is) every failure that means
// the credentials no longer work and a person must act — re-authenticate —
// rather than a fault that passes: a 401; a 401 or 404 that Jira Data
// Center answered as anonymous (X-AUSERNAME: anonymous: a revoked token, a
// changed password, an expired or changed session, which on some endpoints
// looks like missing data); a 403 with X-Authentication-Denied-Reason
// (Data Center wants a CAPTCHA solved after failed logins); and an
// identity provider refusing the grant (ADFS's invalid_grant). A sync that
// meets it should stop and say so, not retry and not delete anything.
var ErrCredentialsRejected = errors.New("credentials rejected")

// Error is every failure of a call to Jira.
//
// It names the call by method and API path only. Neither the query string
// (a signed URL may carry its token there), nor headers, nor credentials are
// ever part of it, and Jira's own messages are scrubbed of anything shaped
// like a token before they are kept.
type Error struct {
	Status   int      // HTTP status; 0 when no response arrived (network, timeout, cancellation)
	Messages []string // Jira's errorMessages, then the values of its errors map (by key)
	Method   string
	Path     string // the API path, e.g. /rest/api/3/myself, without the site's base path or query
	Err      error  // the cause: a network error, a decoding error, ErrResponseTooLarge…
	// RetryAfter is the wait Jira asked for: its Retry-After header (usually
	// on 429 and 503), or on a 429 or 503 without one, the time until its
	// X-RateLimit-Reset; 0 when it named none. A call that gives up on a
	// wait longer than its policy allows returns it here for a scheduler.
	RetryAfter time.Duration
	// RateLimitReason is a 429's RateLimit-Reason (jira-burst-based,
	// jira-quota-tenant-based, …): which limit was hit.
	RateLimitReason string
	// Attempts is how many attempts the call made; more than one when it
	// was retried.
	Attempts int
	// Anonymous is set when Jira said it served the request as nobody
	// (X-AUSERNAME: anonymous): on a 401 or 404, the credentials were not
	// accepted, and a 404 is then not missing data.
	Anonymous bool
	// DeniedReason is Data Center's X-Authentication-Denied-Reason on a
	// 403, e.g. CAPTCHA_CHALLENGE, without its login URL.
	DeniedReason string
}

// Is makes errors.Is(err, ErrCredentialsRejected) true for the answers
// that mean the credentials were refused (see ErrCredentialsRejected).
func (e *Error) Is(target error) bool {
	return target == ErrCredentialsRejected && e.credentialsRejected()
}

func (e *Error) credentialsRejected() bool {
	switch {
	case e.Status == http.StatusUnauthorized:
		return true
	case e.Status == http.StatusNotFound && e.Anonymous:
		return true
	case e.Status == http.StatusForbidden && e.DeniedReason != "":
		return true
	}
	return false
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("jira: ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	if e.Status != 0 {
		b.WriteString(": ")
		b.WriteString(strconv.Itoa(e.Status))
		if t := http.StatusText(e.Status); t != "" {
			b.WriteByte(' ')
			b.WriteString(t)
		}
	}
	if len(e.Messages) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Messages, "; "))
	}
	switch {
	case e.Anonymous && (e.Status == http.StatusUnauthorized || e.Status == http.StatusNotFound):
		b.WriteString(" (Jira answered as anonymous: the credentials were not accepted)")
	case e.DeniedReason != "":
		b.WriteString(" (authentication denied: ")
		b.WriteString(e.DeniedReason)
		b.WriteByte(')')
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Attempts > 1 {
		b.WriteString(" (after ")
		b.WriteString(strconv.Itoa(e.Attempts))
		b.WriteString(" attempts)")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// StatusOf returns the HTTP status of a Jira error, 0 for any other error or
// when no response arrived.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsUnauthorized reports that the credentials were refused: a 401 (wrong
// or rotated shared secret, app uninstalled, bad or revoked API token or
// personal access token, wrong password, clock skew on exp), a Data
// Center 404 answered as anonymous (an expired or changed session), or an
// identity provider refusing the grant (ADFS). A 403 is IsForbidden even
// when errors.Is(err, ErrCredentialsRejected) (a CAPTCHA to solve).
func IsUnauthorized(err error) bool {
	return errors.Is(err, ErrCredentialsRejected) && StatusOf(err) != http.StatusForbidden
}

// IsForbidden reports a 403: authenticated, but not allowed.
func IsForbidden(err error) bool { return StatusOf(err) == http.StatusForbidden }

// IsNotFound reports a 404 that is about the resource: not one Jira Data
// Center answered as anonymous, which is IsUnauthorized.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound && !e.Anonymous
}

// IsCertificate reports that the site's TLS certificate was not trusted:
// signed by an unknown authority (self-signed, a private CA the client
// was not given), for another host name, or expired. Such a call is also
// IsNetwork; this says which remedy applies (trust the CA, or skip
// verification where that is allowed).
func IsCertificate(err error) bool {
	var (
		certErr   *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	return errors.As(err, &certErr) || errors.As(err, &authority) || errors.As(err, &hostErr) || errors.As(err, &invalid)
}

// IsRateLimited reports a 429; the *Error's RetryAfter says how long to wait.
func IsRateLimited(err error) bool { return StatusOf(err) == http.StatusTooManyRequests }

// IsTransient reports a failure that may pass if the call is made again
// later: a 429, a 5xx other than 501, or a network error other than an
// untrusted certificate (which comes back every time). A call returns one
// when its retries ran out; a job that gets one can be rescheduled (after
// the *Error's RetryAfter, when set).
func IsTransient(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	s := e.Status
	return s == http.StatusTooManyRequests || (s >= 500 && s != http.StatusNotImplemented) || (isNetworkErr(e.Err) && !IsCertificate(e.Err))
}

// IsNetwork reports that Jira could not be reached or the exchange broke
// off: DNS, dial, TLS, a connection reset or closed mid-response, or a
// timeout. A cancellation by the caller's context is not a network error.
func IsNetwork(err error) bool {
	var e *Error
	return errors.As(err, &e) && isNetworkErr(e.Err)
}

func isNetworkErr(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var (
		netErr    net.Error // *net.OpError, *net.DNSError, http's timeouts
		certErr   *tls.CertificateVerificationError
		recErr    tls.RecordHeaderError
		alertErr  tls.AlertError
		authority x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	return errors.As(err, &netErr) || errors.As(err, &certErr) || errors.As(err, &recErr) ||
		errors.As(err, &alertErr) || errors.As(err, &authority) || errors.As(err, &hostErr) || errors.As(err, &invalid)
}

// Bounds on what is kept of an error body: enough to explain, too little to
// flood a log.
const (
	maxMessages   = 20
	maxMessageLen = 1000
	maxErrorBody  = 64 << 10
)

// jiraMessages reads Jira's error shape, {"errorMessages": [...], "errors":
// {"field": "message"}}, plus the {"message": "..."} some Atlassian gateways
// answer with. Anything else (HTML, plain text) gives no messages: the
// status says enough, and an unknown body is not worth the risk of echoing.
func jiraMessages(body []byte) []string {
	var v struct {
		ErrorMessages []string                   `json:"errorMessages"`
		Errors        map[string]json.RawMessage `json:"errors"`
		Message       string                     `json:"message"`
	}
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	msgs := slices.Clone(v.ErrorMessages)
	keys := make([]string, 0, len(v.Errors))
	for k := range v.Errors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var s string
		if json.Unmarshal(v.Errors[k], &s) == nil {
			msgs = append(msgs, s)
		}
	}
	if v.Message != "" {
		msgs = append(msgs, v.Message)
	}
	out := msgs[:0]
	for _, m := range msgs {
		if m = strings.TrimSpace(redact(m)); m != "" {
			out = append(out, truncate(m, maxMessageLen))
		}
		if len(out) == maxMessages {
			break
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

var (
	// "JWT x", "Bearer x", "Basic x": a credential quoted with its scheme.
	schemeCred = regexp.MustCompile(`(?i)\b(jwt|bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}`)
	// Three base64url segments, the first a JSON object: a JWT.
	jwtShaped = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)
	// A jwt query parameter, should a server echo a signed URL.
	jwtParam = regexp.MustCompile(`(?i)\bjwt=[^&\s"'<>]*`)
)

// redact removes anything that looks like a credential from a message the
// server wrote. Our own requests never carry one in the URL, but a proxy
// or a future caller might, and a message ends up in logs.
func redact(s string) string {
	s = schemeCred.ReplaceAllString(s, "[redacted credential]")
	s = jwtShaped.ReplaceAllString(s, "[redacted token]")
	return jwtParam.ReplaceAllString(s, "jwt=[redacted]")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// authAnswer reads what an error answer says about the credentials: Data
// Center names the user a request ran as in X-AUSERNAME ("anonymous" when
// it accepted none) and why it refused a known one in
// X-Authentication-Denied-Reason ("CAPTCHA_CHALLENGE; login-url=…").
func authAnswer(status int, h http.Header) (anonymous bool, deniedReason string) {
	if status == http.StatusUnauthorized || status == http.StatusNotFound {
		anonymous = strings.EqualFold(strings.TrimSpace(h.Get("X-AUSERNAME")), "anonymous")
	}
	if status == http.StatusForbidden {
		if v := strings.TrimSpace(h.Get("X-Authentication-Denied-Reason")); v != "" {
			reason, _, _ := strings.Cut(v, ";")
			deniedReason = truncate(redact(strings.TrimSpace(reason)), 100)
			if deniedReason == "" {
				deniedReason = "denied"
			}
		}
	}
	return anonymous, deniedReason
}
