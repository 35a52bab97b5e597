// Package atlassianjwt owns Atlassian Connect's JWT rules: the query string
// hash (qsh) canonicalizer, finding the token in a request, verifying HS256
// tokens Jira signs with an installation's shared secret, verifying the RS256
// "signed install" tokens of the lifecycle callbacks against Atlassian's
// install-keys CDN, and signing the app's own calls to Jira.
//
// It knows nothing of Gin or the database: callers hand it a request or a
// token and a SecretSource, and get back Claims or an *apperr.Error. Every
// rejection is apperr.Unauth with a hidden reason, so a caller learns only
// "authentication failed", never which check failed.
//
// Tokens are parsed by hand rather than with a generic JWT library so that
// each rule (pinned algorithm, numeric exp, qsh) is exact and visible here.
package atlassianjwt

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// MaxTokenLen bounds a token before any parsing, so an oversized one costs
// nothing. Jira's tokens are a few hundred bytes; context claims add a few
// more.
const MaxTokenLen = 8 << 10

// Claims are the verified claims of a token.
type Claims struct {
	Issuer    string // clientKey of the installation (HS256) or of the installing site (RS256)
	Subject   string // Atlassian account ID of the acting user, if any
	Audience  []string
	QSH       string
	ExpiresAt time.Time
	IssuedAt  time.Time
	Context   json.RawMessage // Jira's "context" claim, verbatim
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

type rawClaims struct {
	Iss     string          `json:"iss"`
	Sub     string          `json:"sub"`
	Aud     json.RawMessage `json:"aud"`
	QSH     string          `json:"qsh"`
	Exp     json.RawMessage `json:"exp"`
	Iat     json.RawMessage `json:"iat"`
	Context json.RawMessage `json:"context"`
}

type token struct {
	header       header
	claims       rawClaims
	signingInput string // header.payload, as received
	sig          []byte
}

// Strict: a signature has exactly one accepted spelling.
var b64 = base64.RawURLEncoding.Strict()

func parseToken(s string) (*token, *apperr.Error) {
	if len(s) > MaxTokenLen {
		return nil, apperr.Unauth("too_long")
	}
	if s == "" {
		return nil, apperr.Unauth("missing_token")
	}
	h, rest, ok1 := strings.Cut(s, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return nil, apperr.Unauth("malformed")
	}
	t := &token{signingInput: s[:len(h)+1+len(p)]}
	var err error
	if t.sig, err = b64.DecodeString(sig); err != nil {
		return nil, apperr.Unauth("malformed")
	}
	if decodeSegment(h, &t.header) != nil || decodeSegment(p, &t.claims) != nil {
		return nil, apperr.Unauth("malformed")
	}
	return t, nil
}

func decodeSegment(seg string, v any) error {
	raw, err := b64.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// validate turns the raw claims of a token whose signature has been checked
// into Claims, enforcing exp. It does not look at qsh or aud.
func (t *token) validate(now time.Time, leeway time.Duration) (*Claims, *apperr.Error) {
	c := &t.claims
	if len(c.Exp) == 0 {
		return nil, apperr.Unauth("missing_exp")
	}
	exp, ok := numericDate(c.Exp)
	if !ok {
		return nil, apperr.Unauth("bad_exp")
	}
	if !now.Before(exp.Add(leeway)) {
		return nil, apperr.Unauth("expired")
	}
	out := &Claims{Issuer: c.Iss, Subject: c.Sub, QSH: c.QSH, ExpiresAt: exp, Context: c.Context}
	if len(c.Iat) > 0 {
		if out.IssuedAt, ok = numericDate(c.Iat); !ok {
			return nil, apperr.Unauth("malformed")
		}
	}
	var err error
	if out.Audience, err = audience(c.Aud); err != nil {
		return nil, apperr.Unauth("malformed")
	}
	return out, nil
}

// numericDate accepts only a positive JSON number. golang-jwt's NumericDate
// would also take the string "9999999999"; Jira never sends one, so such a
// token was not made by Jira.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || !('0' <= raw[0] && raw[0] <= '9') {
		return time.Time{}, false // also rules out "-1", null, "…", {…}
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f <= 0 || f >= 1<<53 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// audience reads aud, which RFC 7519 allows as a string or an array.
func audience(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return []string{s}, err
	}
	var ss []string
	return ss, json.Unmarshal(raw, &ss)
}

// checkQSH binds the token to the request it came with.
func checkQSH(claim, method string, u *url.URL, basePath string, allowContext bool) *apperr.Error {
	switch {
	case claim == ContextQSH:
		if !allowContext {
			return apperr.Unauth("context_qsh_not_allowed")
		}
		return nil
	case !qshMatches(claim, method, u, basePath):
		return apperr.Unauth("bad_qsh")
	}
	return nil
}
