// Package secrets owns encryption of secrets at rest (shared secrets of Jira
// installations, OAuth credentials): a key ring of AES-256-GCM keys, each
// named by a key id (kid), of which the first encrypts and all decrypt so
// keys can be rotated without downtime.
//
// A sealed secret is a self-describing string
//
//	v1.<kid>.<base64url(nonce || ciphertext || tag)>
//
// with a random 96-bit nonce. The caller's additional data (aad) binds a
// ciphertext to its row, typically the installation's clientKey, so a
// ciphertext copied into another row does not decrypt. The version and kid
// are authenticated too.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
)

const (
	version   = "v1"
	keySize   = 32 // AES-256
	nonceSize = 12 // the GCM standard nonce; random nonces are safe for well under 2^32 seals per key
	maxKIDLen = 32
)

// ReasonDecryptFailed is the apperr reason of every Open failure, whatever
// the cause (unknown kid, bad format, tampering, wrong aad): callers and
// logs can tell that a secret is unusable, and the wrapped cause says why.
const ReasonDecryptFailed = "decrypt_failed"

type key struct {
	id   string
	aead cipher.AEAD // the raw key bytes are not kept once the cipher exists
}

// KeyRing seals with its primary key and opens with any of its keys. It is
// safe for concurrent use. Its String and GoString never show key material.
type KeyRing struct {
	primary *key
	byID    map[string]*key
	ids     []string // in spec order, primary first
}

// ParseKeyRing parses "kid1:BASE64KEY,kid2:BASE64KEY". Each key is standard
// or URL-safe base64 (padded or not) of exactly 32 bytes; a kid is 1–32
// characters of [A-Za-z0-9_-]. The first key is the primary (encrypting)
// key. Errors name entries by position and valid kids only, never key
// material.
func ParseKeyRing(spec string) (*KeyRing, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, specErr("key spec is empty; expected kid:base64key[,kid:base64key...]")
	}
	r := &KeyRing{byID: make(map[string]*key)}
	for i, entry := range strings.Split(spec, ",") {
		n := i + 1
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, specErr("key spec entry %d is empty", n)
		}
		kid, b64, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, specErr("key spec entry %d has no ':' between kid and key", n)
		}
		kid, b64 = strings.TrimSpace(kid), strings.TrimSpace(b64)
		if !validKID(kid) {
			// Not echoing the kid: a malformed entry may have the key in it.
			return nil, specErr("key spec entry %d: kid must be 1-%d characters of A-Z a-z 0-9 _ -", n, maxKIDLen)
		}
		if _, dup := r.byID[kid]; dup {
			return nil, specErr("key spec entry %d: duplicate kid %q", n, kid)
		}
		raw, err := decodeKey(b64)
		if err != nil {
			return nil, specErr("key spec entry %d (kid %q): key is not valid base64", n, kid)
		}
		if len(raw) != keySize {
			return nil, specErr("key spec entry %d (kid %q): key must decode to %d bytes, got %d", n, kid, keySize, len(raw))
		}
		aead, err := newAEAD(raw)
		clear(raw)
		if err != nil {
			return nil, apperr.Wrap(err, apperr.Internal, "cannot create cipher for kid %q", kid)
		}
		k := &key{id: kid, aead: aead}
		r.byID[kid] = k
		r.ids = append(r.ids, kid)
		if r.primary == nil {
			r.primary = k
		}
	}
	return r, nil
}

func specErr(format string, args ...any) *apperr.Error {
	return apperr.New(apperr.Invalid, "secrets: "+format, args...).WithReason("bad_key_spec")
}

func validKID(kid string) bool {
	if len(kid) == 0 || len(kid) > maxKIDLen {
		return false
	}
	for _, c := range []byte(kid) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// decodeKey accepts the four common base64 spellings. A 32-byte key has the
// same length in all of them, so at most one alphabet can be mistaken for
// another only when the text has neither +/ nor -_, in which case both
// decode to the same bytes.
func decodeKey(s string) ([]byte, error) {
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

func newAEAD(raw []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// PrimaryKID is the kid that Seal uses.
func (r *KeyRing) PrimaryKID() string { return r.primary.id }

// KIDs lists the ring's kids, primary first.
func (r *KeyRing) KIDs() []string { return append([]string(nil), r.ids...) }

// String describes the ring by its kids only. The formatting methods have
// value receivers so that a copied KeyRing prints the same way as a pointer
// (fmt prints "<nil>" for a nil *KeyRing).
func (r KeyRing) String() string {
	if r.primary == nil {
		return "secrets.KeyRing{}"
	}
	return fmt.Sprintf("secrets.KeyRing{primary: %s, kids: [%s]}", r.primary.id, strings.Join(r.ids, " "))
}

// GoString keeps %#v from dumping the ring's internals.
func (r KeyRing) GoString() string { return r.String() }

// Format makes every verb (%v, %+v, %#v, %s, %x, %q ...) print String, so no
// formatting of a ring reaches the cipher state.
func (r KeyRing) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(r.String())) }

// aadFor authenticates the header along with the caller's aad. The header
// cannot contain '.' inside the kid, so header||aad is unambiguous.
func aadFor(kid string, aad []byte) []byte {
	h := version + "." + kid + "."
	out := make([]byte, 0, len(h)+len(aad))
	return append(append(out, h...), aad...)
}

// Seal encrypts plaintext under the primary key, binding it to aad.
func (r *KeyRing) Seal(plaintext, aad []byte) (string, error) {
	k := r.primary
	buf := make([]byte, nonceSize, nonceSize+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", apperr.Wrap(err, apperr.Internal, "cannot encrypt secret").WithReason("encrypt_failed")
	}
	buf = k.aead.Seal(buf, buf[:nonceSize], plaintext, aadFor(k.id, aad))
	return version + "." + k.id + "." + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts a string made by Seal with the same aad. Every failure is
// an Internal apperr with reason "decrypt_failed"; it never returns an
// empty secret in place of an error.
func (r *KeyRing) Open(sealed string, aad []byte) ([]byte, error) {
	kid, payload, err := parse(sealed)
	if err != nil {
		return nil, decryptErr(err)
	}
	k, ok := r.byID[kid]
	if !ok {
		return nil, decryptErr(fmt.Errorf("unknown kid %q (ring has %s)", kid, strings.Join(r.ids, ",")))
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, decryptErr(errors.New("payload is not base64url"))
	}
	if len(raw) < nonceSize+k.aead.Overhead() {
		return nil, decryptErr(errors.New("payload is too short"))
	}
	pt, err := k.aead.Open(nil, raw[:nonceSize], raw[nonceSize:], aadFor(kid, aad))
	if err != nil {
		return nil, decryptErr(fmt.Errorf("kid %q: authentication failed (tampered ciphertext, wrong key or wrong aad)", kid))
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}

func decryptErr(cause error) *apperr.Error {
	return apperr.Wrap(cause, apperr.Internal, "secret cannot be decrypted").WithReason(ReasonDecryptFailed)
}

// parse splits "v1.<kid>.<payload>" without judging the payload.
func parse(sealed string) (kid, payload string, err error) {
	v, rest, ok := strings.Cut(sealed, ".")
	if !ok {
		return "", "", errors.New("not a sealed secret")
	}
	if v != version {
		if looksLikeVersion(v) {
			return "", "", fmt.Errorf("unsupported format version %q", v)
		}
		return "", "", errors.New("not a sealed secret") // not echoing what may be a plaintext secret
	}
	kid, payload, ok = strings.Cut(rest, ".")
	if !ok || !validKID(kid) {
		return "", "", errors.New("malformed sealed secret header")
	}
	return kid, payload, nil
}

func looksLikeVersion(v string) bool {
	if len(v) < 2 || len(v) > 4 || v[0] != 'v' {
		return false
	}
	for _, c := range []byte(v[1:]) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// NeedsRotation reports whether sealed is not under the primary key in the
// current format, so a rotation sweep should Open and Seal it again. A
// malformed value also reports true, so the sweep surfaces it.
func (r *KeyRing) NeedsRotation(sealed string) bool {
	kid, _, err := parse(sealed)
	return err != nil || kid != r.primary.id
}

// GenerateKeySpec returns a one-key spec "k<yyyymmdd>:<base64>" with a
// fresh random key, for development and as a template for production keys.
func GenerateKeySpec() (string, error) {
	raw := make([]byte, keySize)
	if _, err := rand.Read(raw); err != nil {
		return "", apperr.Wrap(err, apperr.Internal, "cannot generate key")
	}
	defer clear(raw)
	return "k" + time.Now().UTC().Format("20060102") + ":" + base64.StdEncoding.EncodeToString(raw), nil
}
