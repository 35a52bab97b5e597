package atlassianjwt

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
)

func TestExtractToken(t *testing.T) {
	const tok = "aaa.bbb.ccc"
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name       string
		method     string
		target     string
		headers    map[string][]string
		body       string
		want       string
		reason     string // Unauthorized reason, or "" for success
		code       apperr.Code
		bodyIntact bool
	}{
		{name: "header", target: "/x", headers: map[string][]string{"Authorization": {"JWT " + tok}}, want: tok},
		{name: "header scheme any case", target: "/x", headers: map[string][]string{"Authorization": {"jwt  " + tok + " "}}, want: tok},
		{name: "query", target: "/x?a=1&jwt=" + tok, want: tok},
		{name: "query with encoded name", target: "/x?%6Awt=" + tok, want: tok},
		{name: "form body", method: "POST", target: "/x", headers: map[string][]string{"Content-Type": {form + "; charset=UTF-8"}}, body: "a=1&jwt=" + tok, want: tok, bodyIntact: true},
		{name: "json body not looked at", method: "POST", target: "/x?jwt=" + tok, headers: map[string][]string{"Content-Type": {"application/json"}}, body: "jwt=other", want: tok, bodyIntact: true},
		{name: "bearer header ignored", target: "/x?jwt=" + tok, headers: map[string][]string{"Authorization": {"Bearer abc"}}, want: tok},
		{name: "none", target: "/x", reason: "missing_token"},
		{name: "empty query value", target: "/x?jwt=", reason: "missing_token"},
		{name: "header and query", target: "/x?jwt=" + tok, headers: map[string][]string{"Authorization": {"JWT " + tok}}, reason: "multiple_tokens"},
		{name: "query twice", target: "/x?jwt=" + tok + "&jwt=" + tok, reason: "multiple_tokens"},
		{name: "two headers", target: "/x", headers: map[string][]string{"Authorization": {"JWT " + tok, "JWT " + tok}}, reason: "multiple_tokens"},
		{name: "header and form", method: "POST", target: "/x", headers: map[string][]string{"Authorization": {"JWT " + tok}, "Content-Type": {form}}, body: "jwt=" + tok, reason: "multiple_tokens", bodyIntact: true},
		{name: "query and form", method: "POST", target: "/x?jwt=" + tok, headers: map[string][]string{"Content-Type": {form}}, body: "jwt=" + tok, reason: "multiple_tokens", bodyIntact: true},
		{name: "too long in header", target: "/x", headers: map[string][]string{"Authorization": {"JWT " + strings.Repeat(".", 1<<20)}}, reason: "too_long"},
		{name: "too long in query", target: "/x?jwt=" + strings.Repeat(".", 1<<20), reason: "too_long"},
		{name: "form too large", method: "POST", target: "/x", headers: map[string][]string{"Content-Type": {form}}, body: "jwt=" + tok + "&pad=" + strings.Repeat("x", MaxFormBody), code: apperr.TooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			r := httptest.NewRequest(method, tc.target, strings.NewReader(tc.body))
			if tc.body == "" {
				r.Body = http.NoBody
			}
			for k, vs := range tc.headers {
				r.Header[k] = vs
			}
			start := time.Now()
			got, err := ExtractToken(r)
			if d := time.Since(start); d > 10*time.Millisecond {
				t.Errorf("took %v", d)
			}
			switch {
			case tc.code != "":
				if apperr.CodeOf(err) != tc.code {
					t.Fatalf("got %v, want code %s", err, tc.code)
				}
			case tc.reason != "":
				wantReason(t, err, tc.reason)
			case err != nil:
				t.Fatalf("rejected: %v", err)
			case got != tc.want:
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if tc.bodyIntact {
				b, err := io.ReadAll(r.Body)
				if err != nil || string(b) != tc.body {
					t.Errorf("body after extraction: %q, %v", b, err)
				}
			}
		})
	}
}

// A handler that parsed the form first has consumed the body; the parsed form
// is used instead.
func TestExtractTokenParsedForm(t *testing.T) {
	r := httptest.NewRequest("POST", "/x", strings.NewReader("jwt=a.b.c"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := r.ParseForm(); err != nil {
		t.Fatal(err)
	}
	if got, err := ExtractToken(r); err != nil || got != "a.b.c" {
		t.Fatalf("got %q, %v", got, err)
	}
	r.URL.RawQuery = url.Values{"jwt": {"a.b.c"}}.Encode()
	_, err := ExtractToken(r)
	wantReason(t, err, "multiple_tokens")
}

// Without a Content-Length the cap is enforced while reading, and the body
// is still whole for whoever reads it next.
func TestExtractTokenFormOverCapUnannounced(t *testing.T) {
	body := "pad=" + strings.Repeat("x", MaxFormBody) + "&jwt=a.b.c"
	r := httptest.NewRequest("POST", "/x", io.NopCloser(strings.NewReader(body)))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := ExtractToken(r); apperr.CodeOf(err) != apperr.TooLarge {
		t.Fatalf("got %v, want too_large", err)
	}
	if b, _ := io.ReadAll(r.Body); string(b) != body {
		t.Errorf("body not restored: %d of %d bytes", len(b), len(body))
	}
}
