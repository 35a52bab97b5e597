// Package integrations owns what the SEI product manages through /api/v1:
// tenants (SEI accounts) and their API keys, the integrations each tenant
// connects to Jira, their validation and their monitoring. Tenants are
// isolated: another tenant's integration is NotFound, never Forbidden.
package integrations

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// Service implements tenants, API keys and integrations on the store.
type Service struct {
	DB  *store.DB
	Now func() time.Time
	Log *slog.Logger
	// Validator runs Validate Connection; nil until wired.
	Validator *Validator
	// Queue schedules syncs; nil when no background jobs run.
	Queue SyncQueue
	// Secrets seals the credentials of API-token and Data Center
	// integrations (the same key ring as the shared secrets).
	Secrets Sealer
	// CloudHosts are the hosts a jira_cloud_api_token URL may name; nil
	// allows any.
	CloudHosts HostMatcher
	// AllowLoopbackHTTP accepts http:// site URLs on loopback hosts (the
	// simulator in development and tests); production refuses them.
	AllowLoopbackHTTP bool
	// PublicURL is the service's BASE_URL, written into satellite.yml.
	PublicURL string
}

// Tenant is the public view of a tenant.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// API keys look like "sei_k3m9x2ab_<26 more characters>": a fixed marker
// (so secret scanners can find leaked keys), an 8-character prefix that is
// stored in clear to tell keys apart, and 130 random bits. Only the SHA-256
// of the whole key is stored; a fast hash is right for random keys of this
// strength (a slow hash protects guessable passwords, which these are not).
const apiKeyMarker = "sei_"

var b32 = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

func randomString(bytes int) string {
	b := make([]byte, bytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b32.EncodeToString(b)
}

func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// NewID returns a time-ordered UUIDv7, so listings page by creation.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// CreateTenant creates a tenant and its first API key, returned once.
func (s *Service) CreateTenant(ctx context.Context, name string) (*Tenant, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return nil, "", apperr.Validation(map[string]string{"name": "is required (at most 200 characters)"})
	}
	t := &store.Tenant{ID: NewID(), Name: name}
	var key string
	err := s.DB.Tx(ctx, func(tx *store.DB) error {
		if err := tx.CreateTenant(ctx, t); err != nil {
			return err
		}
		var err error
		key, _, err = createAPIKey(ctx, tx, t.ID)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return &Tenant{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt}, key, nil
}

// CreateAPIKey adds an API key to a tenant and returns it (shown once) and
// its visible prefix.
func (s *Service) CreateAPIKey(ctx context.Context, tenantID string) (key, prefix string, err error) {
	if _, err := s.DB.GetTenant(ctx, tenantID); err != nil {
		return "", "", err
	}
	return createAPIKey(ctx, s.DB, tenantID)
}

func createAPIKey(ctx context.Context, db *store.DB, tenantID string) (string, string, error) {
	prefix := apiKeyMarker + randomString(5) // 8 characters, 40 bits: unique enough, retried on collision
	key := prefix + "_" + randomString(17)   // 136 bits of secret
	k := &store.APIKey{ID: NewID(), TenantID: tenantID, Prefix: prefix, Hash: hashKey(key)}
	if err := db.CreateAPIKey(ctx, k); err != nil {
		return "", "", err
	}
	return key, prefix, nil
}

// RevokeAPIKey revokes a key given its id or visible prefix.
func (s *Service) RevokeAPIKey(ctx context.Context, idOrPrefix string) (prefix string, err error) {
	k, err := s.DB.RevokeAPIKey(ctx, idOrPrefix)
	if err != nil {
		return "", err
	}
	return k.Prefix, nil
}

// touchEvery bounds how often a key's last_used_at is written: once a
// minute is precise enough and keeps reads from becoming writes.
const touchEvery = time.Minute

// Authenticate returns the tenant id for a bearer API key. Every failure is
// the same Unauthorized; the comparison of hashes is constant-time.
func (s *Service) Authenticate(ctx context.Context, key string) (string, error) {
	if !strings.HasPrefix(key, apiKeyMarker) || len(key) > 100 {
		return "", apperr.Unauth("api_key_malformed")
	}
	prefix, _, ok := strings.Cut(key[len(apiKeyMarker):], "_")
	if !ok {
		return "", apperr.Unauth("api_key_malformed")
	}
	k, err := s.DB.APIKeyByPrefix(ctx, apiKeyMarker+prefix)
	if apperr.CodeOf(err) == apperr.NotFound {
		return "", apperr.Unauth("api_key_unknown")
	}
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare([]byte(hashKey(key)), []byte(k.Hash)) != 1 {
		return "", apperr.Unauth("api_key_mismatch")
	}
	if k.RevokedAt != nil {
		return "", apperr.Unauth("api_key_revoked")
	}
	if now := s.Now(); k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > touchEvery {
		if err := s.DB.TouchAPIKey(ctx, k.ID, now); err != nil {
			s.Log.WarnContext(ctx, "api key last use not recorded", "prefix", k.Prefix, "error", err.Error())
		}
	}
	return k.TenantID, nil
}
