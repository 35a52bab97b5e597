package atlassianjwt

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// ContextQSH is the qsh Jira puts in tokens that are not bound to one request:
// context tokens that a page's JavaScript gets from AP.context.getToken and
// sends back with its own AJAX calls.
const ContextQSH = "context-qsh"

// CanonicalRequest returns Atlassian's canonical form of a request,
// METHOD&path&query, whose SHA-256 is the qsh claim.
//
// basePath is the path of the base URL the request is relative to (the app's
// for requests from Jira, the Jira site's for requests to it); it is removed
// so that a reverse proxy adding a prefix does not change the hash.
//
// The rules follow Atlassian's reference implementation (atlassian-jwt's
// HttpRequestCanonicalizer), which is what Jira runs on both ends:
//   - the path is the decoded path (java.net.URI.getPath), one trailing "/"
//     removed, "" becoming "/", and "&" escaped so it cannot pass for the
//     separator;
//   - parameters are decoded ("+" is a space), "jwt" is dropped, names are
//     sorted by their percent-encoded form, repeated values are sorted by
//     their decoded form in Java's string order and joined with ",";
//   - names and values are percent-encoded as RFC 3986 (only A-Z a-z 0-9 -._~
//     stay literal).
//
// The query is split exactly as net/url's ParseQuery splits it (pairs with a
// ";" or a bad escape are dropped), so the hash covers precisely the
// parameters a Go handler will see through URL.Query.
func CanonicalRequest(method string, u *url.URL, basePath string) string {
	return string(appendCanonical(nil, method, u, basePath))
}

// QSH returns the query string hash of a request: the hex SHA-256 of
// CanonicalRequest.
func QSH(method string, u *url.URL, basePath string) string {
	h := qshHex(method, u, basePath)
	return string(h[:])
}

// qshMatches compares a qsh claim with the request without allocating.
func qshMatches(claim, method string, u *url.URL, basePath string) bool {
	h := qshHex(method, u, basePath)
	return claim == string(h[:])
}

func qshHex(method string, u *url.URL, basePath string) (h [2 * sha256.Size]byte) {
	var buf [512]byte // most canonical requests fit; longer ones spill to the heap
	sum := sha256.Sum256(appendCanonical(buf[:0], method, u, basePath))
	hex.Encode(h[:], sum[:])
	return h
}

func appendCanonical(b []byte, method string, u *url.URL, basePath string) []byte {
	var path, query string
	if u != nil {
		path, query = u.Path, u.RawQuery
	}
	b = append(b, strings.ToUpper(method)...)
	b = append(b, '&')
	b = appendPath(b, path, basePath)
	b = append(b, '&')
	return appendQuery(b, query)
}

func appendPath(b []byte, p, basePath string) []byte {
	// Strip the base only on a segment boundary: "/app" is not the base of
	// "/application".
	if base := strings.TrimRight(basePath, "/"); base != "" {
		if rest, ok := strings.CutPrefix(p, base); ok && (rest == "" || rest[0] == '/') {
			p = rest
		}
	}
	p = strings.TrimSuffix(p, "/") // one slash, as Jira's StringUtils.removeEnd
	if p == "" || p[0] != '/' {
		b = append(b, '/')
	}
	for i := 0; i < len(p); i++ {
		// Without this, /a&b?x=y and /a?b&x=y would hash alike.
		if p[i] == '&' {
			b = append(b, "%26"...)
		} else {
			b = append(b, p[i])
		}
	}
	return b
}

type param struct {
	name string // percent-encoded, the sort key
	val  string // decoded
}

func appendQuery(b []byte, q string) []byte {
	var arr [16]param
	ps := arr[:0]
	for q != "" {
		var seg string
		seg, q, _ = strings.Cut(q, "&")
		// Mirror url.ParseQuery: a pair it drops is a pair no handler sees.
		if seg == "" || strings.Contains(seg, ";") {
			continue
		}
		k, v, _ := strings.Cut(seg, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || k == "jwt" {
			continue
		}
		ps = append(ps, param{escape(k), v})
	}
	slices.SortFunc(ps, func(x, y param) int {
		if c := strings.Compare(x.name, y.name); c != 0 {
			return c
		}
		return compareUTF16(x.val, y.val)
	})
	for i, p := range ps {
		switch {
		case i == 0:
		case p.name == ps[i-1].name:
			b = append(b, ',')
			b = appendEscaped(b, p.val)
			continue
		default:
			b = append(b, '&')
		}
		b = append(b, p.name...)
		b = append(b, '=')
		b = appendEscaped(b, p.val)
	}
	return b
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

const upperHex = "0123456789ABCDEF"

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; unreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return b
}

// escape is appendEscaped for a string; it allocates only when it must.
func escape(s string) string {
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			return string(appendEscaped(make([]byte, 0, len(s)+16), s))
		}
	}
	return s
}

// compareUTF16 orders strings as Java's String.compareTo does, by UTF-16 code
// unit, because that is how Jira sorts repeated values. It differs from byte
// order only between a supplementary character (a surrogate pair, 0xD800…)
// and one in U+E000–U+FFFF, e.g. an emoji and a full-width letter.
func compareUTF16(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) || i == len(b) {
		return cmp.Compare(len(a), len(b))
	}
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ra, _ := utf8.DecodeRuneInString(a[i:])
	rb, _ := utf8.DecodeRuneInString(b[i:])
	if (ra > 0xFFFF) != (rb > 0xFFFF) {
		if ra > 0xFFFF {
			ra = 0xD800
		} else {
			rb = 0xD800
		}
	}
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	return strings.Compare(a[i:], b[i:])
}
