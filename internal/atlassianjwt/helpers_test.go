package atlassianjwt

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// craft builds a token with any header, claims and signature: the shapes the
// real signers refuse to make.
func craft(t testing.TB, hdr, claims any, sign func(input string) []byte) string {
	t.Helper()
	hj, err1 := json.Marshal(hdr)
	cj, err2 := json.Marshal(claims)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	input := b64.EncodeToString(hj) + "." + b64.EncodeToString(cj)
	return input + "." + b64.EncodeToString(sign(input))
}

func hmacWith(key []byte) func(string) []byte {
	return func(input string) []byte { return hmacSHA256(key, input) }
}

func rsaWith(key *rsa.PrivateKey) func(string) []byte {
	return func(input string) []byte {
		d := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
		if err != nil {
			panic(err)
		}
		return sig
	}
}

func noSig(string) []byte { return nil }

// wantReason fails unless err is the uniform authentication failure with the
// given hidden reason.
func wantReason(t testing.TB, err error, reason string) {
	t.Helper()
	var e *apperr.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want *apperr.Error %s", err, err, reason)
	}
	if e.Code != apperr.Unauthorized || e.Message != "authentication failed" || e.Reason != reason {
		t.Fatalf("got code %s message %q reason %q, want unauthorized %q", e.Code, e.Message, e.Reason, reason)
	}
}

// countingSource is a SecretSource that counts lookups.
type countingSource struct {
	Installation
	err   error
	calls atomic.Int32
}

func (s *countingSource) SharedSecret(ctx context.Context, key string) ([]byte, error) {
	s.calls.Add(1)
	if s.err != nil {
		return nil, s.err
	}
	return s.Installation.SharedSecret(ctx, key)
}

// RSA keys are slow to make, so each size is made once.
var rsaKeys sync.Map

func rsaKey(t testing.TB, name string, bits int) *rsa.PrivateKey {
	t.Helper()
	if k, ok := rsaKeys.Load(name); ok {
		return k.(*rsa.PrivateKey)
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	actual, _ := rsaKeys.LoadOrStore(name, k)
	return actual.(*rsa.PrivateKey)
}

func pkixPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
