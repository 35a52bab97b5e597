package lifecycle

import (
	"context"
	"sync"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// Entry is what the directory remembers of an installation: enough to verify
// its calls and to call it back, with the shared secret already decrypted.
type Entry struct {
	ClientKey string
	BaseURL   string
	State     string
	Secret    []byte // nil once uninstalled
	loadedAt  time.Time
	missing   bool // negative entry: no such installation
}

// Directory caches installations in memory so verifying a JWT costs no
// database round trip. Entries live for TTL; lifecycle changes on this
// replica invalidate them at once, and Refresh lets a verifier re-read an
// entry whose secret just failed (another replica may have seen a
// reinstall), at most once per refreshEvery per client key.
type Directory struct {
	store  Store
	sealer Sealer
	ttl    time.Duration
	now    func() time.Time

	mu      sync.RWMutex
	entries map[string]*Entry
}

// Negative entries are short-lived so that a fresh install on another
// replica is seen quickly, while a flood of unknown issuers still costs at
// most one query per key per interval.
const (
	negativeTTL  = 2 * time.Second
	refreshEvery = time.Second
	maxEntries   = 100_000
)

// NewDirectory returns an empty directory.
func NewDirectory(st Store, sealer Sealer, ttl time.Duration, now func() time.Time) *Directory {
	return &Directory{store: st, sealer: sealer, ttl: ttl, now: now, entries: map[string]*Entry{}}
}

// Lookup returns the installation for clientKey, from memory when fresh.
func (d *Directory) Lookup(ctx context.Context, clientKey string) (*Entry, error) {
	now := d.now()
	d.mu.RLock()
	e, ok := d.entries[clientKey]
	d.mu.RUnlock()
	if ok && d.fresh(e, now) {
		return e.result()
	}
	return d.load(ctx, clientKey)
}

func (d *Directory) fresh(e *Entry, now time.Time) bool {
	ttl := d.ttl
	if e.missing {
		ttl = min(ttl, negativeTTL)
	}
	return now.Sub(e.loadedAt) < ttl
}

func (e *Entry) result() (*Entry, error) {
	if e.missing {
		return nil, apperr.New(apperr.NotFound, "installation not found")
	}
	return e, nil
}

func (d *Directory) load(ctx context.Context, clientKey string) (*Entry, error) {
	in, err := d.store.GetInstallation(ctx, clientKey)
	e := &Entry{ClientKey: clientKey, loadedAt: d.now()}
	switch {
	case apperr.CodeOf(err) == apperr.NotFound:
		e.missing = true
	case err != nil:
		return nil, err
	default:
		e.BaseURL, e.State = in.BaseURL, in.State
		if in.SharedSecret != nil && in.State != StateUninstalled {
			if e.Secret, err = d.sealer.Open(*in.SharedSecret, []byte(in.ClientKey)); err != nil {
				return nil, err
			}
		}
	}
	d.mu.Lock()
	if len(d.entries) >= maxEntries {
		clear(d.entries) // crude but bounded: a full reload costs one query per key
	}
	d.entries[clientKey] = e
	d.mu.Unlock()
	return e.result()
}

// SharedSecret implements atlassianjwt.SecretSource: the secret of a live
// installation, NotFound for unknown or uninstalled ones.
func (d *Directory) SharedSecret(ctx context.Context, clientKey string) ([]byte, error) {
	e, err := d.Lookup(ctx, clientKey)
	if err != nil {
		return nil, err
	}
	if e.Secret == nil {
		return nil, apperr.New(apperr.NotFound, "installation not found")
	}
	return e.Secret, nil
}

// Refresh re-reads clientKey if its entry is older than refreshEvery and
// reports whether the secret changed. The verifier calls it after a
// signature mismatch, so a reinstall seen by another replica takes effect
// here on the next call instead of after the TTL.
func (d *Directory) Refresh(ctx context.Context, clientKey string) (bool, error) {
	d.mu.RLock()
	old, ok := d.entries[clientKey]
	d.mu.RUnlock()
	if ok && d.now().Sub(old.loadedAt) < refreshEvery {
		return false, nil
	}
	e, err := d.load(ctx, clientKey)
	if err != nil {
		return false, err
	}
	return !ok || string(old.Secret) != string(e.Secret), nil
}

// Invalidate drops clientKey's entry.
func (d *Directory) Invalidate(clientKey string) {
	d.mu.Lock()
	delete(d.entries, clientKey)
	d.mu.Unlock()
}

// InvalidateAll drops every entry; used when change notifications may have
// been missed.
func (d *Directory) InvalidateAll() {
	d.mu.Lock()
	clear(d.entries)
	d.mu.Unlock()
}

// Get reads the stored installation (not cached): for pages that show it.
func (d *Directory) Get(ctx context.Context, clientKey string) (*store.Installation, error) {
	return d.store.GetInstallation(ctx, clientKey)
}
