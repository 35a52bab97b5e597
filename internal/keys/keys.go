// Package keys owns Connect keys: the one-time codes a Jira administrator
// generates on the app's page in Jira and pastes into SEI to link that Jira
// installation to an SEI integration. A key is valid for 10 minutes, used
// once, bound to one installation, and stored only as a hash.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/integrations"
	"github.com/sei-io/jira-connect/internal/store"
)

// TTL is how long a key stays valid.
const TTL = 10 * time.Minute

// Keys are 28 characters of Crockford's base32 alphabet (140 bits), shown
// in groups of four. The alphabet has no I, L, O or U, and reading a key
// back maps the look-alikes (O→0, I/L→1), so a key copied by hand or read
// over the phone still works.
const (
	alphabet  = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	keyLen    = 28
	groupSize = 4
)

// Service issues and redeems Connect keys.
type Service struct {
	DB  *store.DB
	Now func() time.Time
	Log *slog.Logger
}

// Issued is a new key, shown once.
type Issued struct {
	Key       string    `json:"key"`
	ExpiresAt time.Time `json:"expires_at"`
}

// errInvalidKey is the single answer for unknown, expired, used, revoked
// and malformed keys, so a caller learns nothing about which it was.
var errInvalidKey = &apperr.Error{Code: apperr.Invalid, Message: "this Connect key is not valid: it may be mistyped, expired or already used; generate a new one on the app's page in Jira",
	Fields: map[string]string{"key": "is not a valid Connect key"}, Reason: "invalid_connect_key"}

// IsInvalidKey reports whether err is the uniform invalid-key answer.
func IsInvalidKey(err error) bool { return apperr.ReasonOf(err) == errInvalidKey.Reason }

// Generate issues a key for a live, enabled installation and revokes that
// installation's earlier unused key.
func (s *Service) Generate(ctx context.Context, clientKey string) (*Issued, error) {
	in, err := s.DB.GetInstallation(ctx, clientKey)
	if err != nil {
		return nil, err
	}
	switch in.State {
	case store.StateUninstalled:
		return nil, apperr.New(apperr.Forbidden, "the app is uninstalled from this site").WithReason("uninstalled")
	case store.StateDisabled:
		return nil, apperr.New(apperr.Forbidden, "the app is disabled on this site; enable it in Manage apps first").WithReason("disabled")
	}
	key := newKey()
	now := s.Now().UTC()
	k := &store.ConnectKey{Hash: Hash(key), ClientKey: clientKey, CreatedAt: now, ExpiresAt: now.Add(TTL)}
	if err := s.DB.ReplaceConnectKey(ctx, k); err != nil {
		return nil, err
	}
	s.Log.InfoContext(ctx, "connect key issued", "client_key", clientKey, "expires_at", k.ExpiresAt)
	return &Issued{Key: format(key), ExpiresAt: k.ExpiresAt}, nil
}

func newKey() string {
	b := make([]byte, keyLen)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[b[i]&31] // 256 is a multiple of 32: no modulo bias
	}
	return string(b)
}

func format(key string) string {
	var sb strings.Builder
	for i := 0; i < len(key); i += groupSize {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(key[i:min(i+groupSize, len(key))])
	}
	return sb.String()
}

// Normalize turns what a person pasted into the canonical key, or "" when
// it cannot be one.
func Normalize(s string) string {
	if len(s) > 200 {
		return ""
	}
	var sb strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if !strings.ContainsRune(alphabet, r) {
			return ""
		}
		sb.WriteRune(r)
	}
	if sb.Len() != keyLen {
		return ""
	}
	return sb.String()
}

// Hash is how a canonical key is stored. Keys carry 140 random bits, so a
// plain SHA-256 cannot be reversed by guessing.
func Hash(canonical string) string {
	h := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(h[:])
}

// Redeem links the installation the key was issued for to the tenant's
// integration. Everything happens in one transaction: if linking fails
// (the installation is linked elsewhere), the key stays unused.
func (s *Service) Redeem(ctx context.Context, tenantID, integrationID, pasted string) (*store.Integration, error) {
	canonical := Normalize(pasted)
	var linked *store.Integration
	err := s.DB.Tx(ctx, func(tx *store.DB) error {
		it, err := tx.GetIntegration(ctx, tenantID, integrationID)
		if err != nil {
			return err
		}
		if it.Type != integrations.TypeConnectApp {
			return apperr.New(apperr.Invalid, "only jira_connect_app integrations are linked with a Connect key")
		}
		if canonical == "" {
			return errInvalidKey
		}
		now := s.Now()
		clientKey, err := tx.ConsumeConnectKey(ctx, Hash(canonical), it.ID, now)
		if apperr.CodeOf(err) == apperr.NotFound {
			return errInvalidKey
		}
		if err != nil {
			return err
		}
		in, err := tx.GetInstallation(ctx, clientKey)
		if err != nil {
			return err
		}
		if in.State == store.StateUninstalled || in.State == store.StateDisabled {
			return errInvalidKey
		}
		// An installation links to one integration. A link held by an
		// integration whose app was uninstalled is stale: it moves here.
		if holder, err := tx.IntegrationByClientKey(ctx, clientKey); err == nil && holder.ID != it.ID {
			if holder.Status != integrations.StatusUninstalled {
				return apperr.New(apperr.Conflict, "this Jira site is already linked to another integration; unlink it there first").WithReason("already_linked")
			}
			holder.ClientKey, holder.LinkedAt = nil, nil
			holder.StatusReason = integrations.ReasonUnlinked
			if err := tx.SaveIntegration(ctx, holder); err != nil {
				return err
			}
		} else if err != nil && apperr.CodeOf(err) != apperr.NotFound {
			return err
		}
		t := now.UTC()
		it.ClientKey, it.LinkedAt = &clientKey, &t
		it.Status, it.StatusReason = integrations.StatusPending, integrations.ReasonLinked
		if err := tx.SaveIntegration(ctx, it); err != nil {
			return err
		}
		linked = it
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Log.InfoContext(ctx, "installation linked", "tenant_id", tenantID, "integration_id", integrationID, "client_key", *linked.ClientKey)
	return linked, nil
}

// Unlink removes the tenant's integration's link to its installation.
func (s *Service) Unlink(ctx context.Context, tenantID, integrationID string) (*store.Integration, error) {
	var out *store.Integration
	err := s.DB.Tx(ctx, func(tx *store.DB) error {
		it, err := tx.GetIntegration(ctx, tenantID, integrationID)
		if err != nil {
			return err
		}
		if it.ClientKey == nil {
			return apperr.New(apperr.NotFound, "no Jira site is linked to this integration")
		}
		it.ClientKey, it.LinkedAt = nil, nil
		it.Status, it.StatusReason = integrations.StatusPending, integrations.ReasonUnlinked
		out = it
		return tx.SaveIntegration(ctx, it)
	})
	return out, err
}
