package atlassianjwt

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// MaxFormBody caps how much of a form body ExtractToken reads to look for a
// jwt field. Jira's form posts are small; a larger form is refused rather
// than half-read, since the half not read could hold a second token.
const MaxFormBody = 64 << 10

// ExtractToken returns the token of a request from Jira, which may come in
// the Authorization header ("JWT <token>"), the jwt query parameter, or the
// jwt field of a form body. Exactly one must be present: with two, a check
// could read one while a handler trusts the other.
//
// A form body is read (at most MaxFormBody bytes) and put back, so handlers
// can still read it.
func ExtractToken(r *http.Request) (string, error) {
	var n int
	var tok string
	add := func(ts ...string) {
		for _, t := range ts {
			n, tok = n+1, t
		}
	}
	for _, h := range r.Header.Values("Authorization") {
		if scheme, t, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "JWT") {
			add(strings.TrimSpace(t))
		}
	}
	if r.URL != nil {
		add(queryTokens(r.URL.RawQuery)...)
	}
	body, err := formTokens(r)
	if err != nil {
		return "", err
	}
	add(body...)
	switch {
	case n > 1:
		return "", apperr.Unauth("multiple_tokens")
	case len(tok) > MaxTokenLen:
		return "", apperr.Unauth("too_long")
	case tok == "":
		return "", apperr.Unauth("missing_token")
	}
	return tok, nil
}

// queryTokens returns the jwt parameters of a query as url.ParseQuery would,
// but decodes nothing that cannot be a token: a key longer than "%6A%77%74"
// is not "jwt", and a value too long to decode to MaxTokenLen bytes is
// returned raw, to be rejected as too long. A megabyte of query costs one
// scan, not a parse.
func queryTokens(q string) []string {
	var toks []string
	for q != "" {
		var seg string
		seg, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(seg, "=")
		if len(k) > len("%6A%77%74") || strings.Contains(seg, ";") {
			continue
		}
		if k, err := url.QueryUnescape(k); err != nil || k != "jwt" {
			continue
		}
		if len(v) > 3*MaxTokenLen {
			toks = append(toks, v)
		} else if v, err := url.QueryUnescape(v); err == nil {
			toks = append(toks, v)
		}
	}
	return toks
}

// formTokens returns the jwt fields of a form body and restores r.Body.
func formTokens(r *http.Request) ([]string, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, nil
	}
	if r.PostForm != nil { // already parsed: the body has been consumed
		return r.PostForm["jwt"], nil
	}
	if r.ContentLength > MaxFormBody {
		return nil, tooLarge()
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, MaxFormBody+1))
	r.Body = replayBody{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Invalid, "could not read request body")
	}
	if len(buf) > MaxFormBody {
		return nil, tooLarge()
	}
	// Parse errors are ignored as ParseForm's callers usually do; a pair it
	// cannot decode holds no token anyone will read.
	vals, _ := url.ParseQuery(string(buf))
	return vals["jwt"], nil
}

func tooLarge() *apperr.Error {
	return apperr.New(apperr.TooLarge, "form body too large").WithReason("form_too_large")
}

// replayBody serves the bytes already read, then the rest, and closes the
// original body.
type replayBody struct {
	io.Reader
	io.Closer
}
