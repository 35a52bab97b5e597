package atlassianjwt

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"net/url"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// signedTokenTTL is how long the app's tokens to Jira live: long enough for
// one call and its retries, short enough that a leaked URL is soon useless.
const signedTokenTTL = 3 * time.Minute

// Sign returns the HS256 token for one call from the app to Jira: iss is the
// app key, qsh binds the token to method and u, and basePath is the path of
// the Jira site's base URL (empty for Jira Cloud sites).
func Sign(issuer string, secret []byte, method string, u *url.URL, basePath string, now time.Time) (string, error) {
	return SignHS256(secret, map[string]any{
		"iss": issuer,
		"iat": now.Unix(),
		"exp": now.Add(signedTokenTTL).Unix(),
		"qsh": QSH(method, u, basePath),
	})
}

// SignHS256 signs arbitrary claims with a shared secret, as Jira does for
// the calls it makes to the app.
func SignHS256(secret []byte, claims map[string]any) (string, error) {
	return signHS256(secret, claims)
}

// signHS256 takes any JSON-encodable claims, so a test can fix their order.
func signHS256(secret []byte, claims any) (string, error) {
	if len(secret) == 0 {
		return "", apperr.New(apperr.Internal, "signing with an empty secret")
	}
	input, err := signingInput(header{Alg: "HS256"}, claims)
	if err != nil {
		return "", err
	}
	return input + "." + b64.EncodeToString(hmacSHA256(secret, input)), nil
}

// SignRS256 signs arbitrary claims with an RSA key under a key ID, as
// Atlassian does for signed installs; a Jira simulator serves the public key
// at InstallKeys.BaseURL/kid.
func SignRS256(kid string, key *rsa.PrivateKey, claims map[string]any) (string, error) {
	if key == nil {
		return "", apperr.New(apperr.Internal, "signing with a nil RSA key")
	}
	input, err := signingInput(header{Alg: "RS256", Kid: kid}, claims)
	if err != nil {
		return "", err
	}
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", apperr.Wrap(err, apperr.Internal, "RS256 signing failed")
	}
	return input + "." + b64.EncodeToString(sig), nil
}

func signingInput(h header, claims any) (string, error) {
	hj, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid,omitempty"`
		Typ string `json:"typ"`
	}{h.Alg, h.Kid, "JWT"})
	if err != nil {
		return "", apperr.Wrap(err, apperr.Internal, "encoding JWT header")
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		// No cause: a marshaling error may quote a claim's value.
		return "", apperr.New(apperr.Internal, "encoding JWT claims failed")
	}
	return b64.EncodeToString(hj) + "." + b64.EncodeToString(cj), nil
}

func hmacSHA256(secret []byte, input string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return mac.Sum(nil)
}
