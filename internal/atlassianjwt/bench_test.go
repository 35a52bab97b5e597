package atlassianjwt

import (
	"context"
	"testing"
)

// BenchmarkVerifyHS256 is the cost of authenticating one webhook: parse,
// in-memory secret lookup, HMAC, exp and qsh.
func BenchmarkVerifyHS256(b *testing.B) {
	u := mustURL(b, webhookURL)
	tok, err := SignHS256(testSecret, hsClaims(u, "POST"))
	if err != nil {
		b.Fatal(err)
	}
	v := &Verifier{BasePath: "/connect", Secrets: Installation{testClientKey, testSecret}, Now: fixedNow}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok, "POST", u, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkQSH(b *testing.B) {
	u := mustURL(b, webhookURL)
	b.ReportAllocs()
	for b.Loop() {
		QSH("POST", u, "/connect")
	}
}
