package lifecycle

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// Entry is what the directory remembers of an installation: enough to verify
// its calls, to call it back (with the shared secret already decrypted) and
// to know whether its webhooks are wanted.
type Entry struct {
	ClientKey string
	BaseURL   string
	State     string
	Secret    []byte // nil once uninstalled
	// IntegrationID is the integration the installation is linked to, ""
	// when none: webhooks of unlinked sites are dropped without a query.
	IntegrationID string
	loadedAt      time.Time
	expires       time.Time
	missing       bool // negative entry: no such installation
}

// DirectoryStore is what the directory reads.
type DirectoryStore interface {
	GetInstallation(ctx context.Context, clientKey string) (*store.Installation, error)
	IntegrationByClientKey(ctx context.Context, clientKey string) (*store.Integration, error)
}

// Directory caches installations in memory so verifying a JWT, and
// deciding whether a webhook is wanted, cost no database round trip.
// Entries live for about TTL (±10%, so that entries filled together do not
// all expire together and stall the requests of that moment on reloads);
// concurrent misses of one key share one read. Changes invalidate entries
// at once: lifecycle changes on this replica directly, integration writes
// through store.WatchLinks, and other replicas' changes through the
// installation_changed notifications. Refresh lets a verifier re-read an
// entry whose secret just failed (a missed notification), at most once per
// refreshEvery per client key.
type Directory struct {
	store  DirectoryStore
	sealer Sealer
	ttl    time.Duration
	now    func() time.Time
	// jitter returns a number in [0, 1) that spreads expiries; tests fix it.
	jitter func() float64

	mu      sync.RWMutex
	entries map[string]*Entry
	loads   map[string]*load // reads in flight, by client key
}

// load is one read of an installation, shared by every caller that missed
// the key while it ran.
type load struct {
	done chan struct{}
	e    *Entry
	err  error
	// stale is set (under the directory's lock) when the key is
	// invalidated during the read: the result may predate the change, so it
	// is neither cached nor joined by later callers.
	stale bool
}

// Negative entries are short-lived so that a fresh install on another
// replica is seen quickly, while a flood of unknown issuers still costs at
// most one query per key per interval.
const (
	negativeTTL  = 2 * time.Second
	refreshEvery = time.Second
	maxEntries   = 100_000
	ttlSpread    = 0.10
	// loadTimeout bounds a shared read, which no single caller's context
	// may cancel for the others.
	loadTimeout = 10 * time.Second
)

// NewDirectory returns an empty directory.
func NewDirectory(st DirectoryStore, sealer Sealer, ttl time.Duration, now func() time.Time) *Directory {
	return &Directory{store: st, sealer: sealer, ttl: ttl, now: now, jitter: rand.Float64,
		entries: map[string]*Entry{}, loads: map[string]*load{}}
}

// Lookup returns the installation for clientKey, from memory when fresh.
func (d *Directory) Lookup(ctx context.Context, clientKey string) (*Entry, error) {
	d.mu.RLock()
	e, ok := d.entries[clientKey]
	d.mu.RUnlock()
	if ok && d.now().Before(e.expires) {
		return e.result()
	}
	return d.load(ctx, clientKey)
}

func (e *Entry) result() (*Entry, error) {
	if e.missing {
		return nil, apperr.New(apperr.NotFound, "installation not found")
	}
	return e, nil
}

// load reads clientKey, or waits for the read of it already in flight.
// The read runs on its own goroutine so that each caller can give up with
// its own context without failing the others.
func (d *Directory) load(ctx context.Context, clientKey string) (*Entry, error) {
	d.mu.Lock()
	l, ok := d.loads[clientKey]
	if !ok {
		l = &load{done: make(chan struct{})}
		d.loads[clientKey] = l
		go d.fill(context.WithoutCancel(ctx), clientKey, l)
	}
	d.mu.Unlock()
	select {
	case <-l.done:
		if l.err != nil {
			return nil, l.err
		}
		return l.e.result()
	case <-ctx.Done():
		return nil, apperr.Wrap(ctx.Err(), apperr.Unavailable, "installation lookup interrupted")
	}
}

func (d *Directory) fill(ctx context.Context, clientKey string, l *load) {
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	e, err := d.read(ctx, clientKey)
	d.mu.Lock()
	if d.loads[clientKey] == l {
		delete(d.loads, clientKey)
	}
	if err == nil && !l.stale {
		if len(d.entries) >= maxEntries {
			clear(d.entries) // crude but bounded: a full reload costs one read per key
		}
		d.entries[clientKey] = e
	}
	d.mu.Unlock()
	l.e, l.err = e, err
	close(l.done)
}

func (d *Directory) read(ctx context.Context, clientKey string) (*Entry, error) {
	e := &Entry{ClientKey: clientKey, loadedAt: d.now()}
	in, err := d.store.GetInstallation(ctx, clientKey)
	switch {
	case apperr.CodeOf(err) == apperr.NotFound:
		e.missing = true
		e.expires = e.loadedAt.Add(d.spread(min(d.ttl, negativeTTL)))
		return e, nil
	case err != nil:
		return nil, err
	}
	e.BaseURL, e.State = in.BaseURL, in.State
	if in.SharedSecret != nil && in.State != StateUninstalled {
		if e.Secret, err = d.sealer.Open(*in.SharedSecret, []byte(in.ClientKey)); err != nil {
			return nil, err
		}
	}
	it, err := d.store.IntegrationByClientKey(ctx, clientKey)
	switch {
	case apperr.CodeOf(err) == apperr.NotFound:
	case err != nil:
		return nil, err
	default:
		e.IntegrationID = it.ID
	}
	e.expires = e.loadedAt.Add(d.spread(d.ttl))
	return e, nil
}

// spread returns ttl ± ttlSpread.
func (d *Directory) spread(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl) * (1 - ttlSpread + 2*ttlSpread*d.jitter()))
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

// LinkedIntegration returns the id of the integration clientKey's
// installation is linked to, "" when it is not linked (or not installed),
// from memory when fresh. The webhook path asks it for every webhook.
func (d *Directory) LinkedIntegration(ctx context.Context, clientKey string) (string, error) {
	e, err := d.Lookup(ctx, clientKey)
	if apperr.CodeOf(err) == apperr.NotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return e.IntegrationID, nil
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

// Invalidate drops clientKey's entry, and makes a read of it in flight
// count for nothing. store.EveryInstallation drops every entry.
func (d *Directory) Invalidate(clientKey string) {
	if clientKey == store.EveryInstallation {
		d.InvalidateAll()
		return
	}
	d.mu.Lock()
	delete(d.entries, clientKey)
	if l, ok := d.loads[clientKey]; ok {
		l.stale = true
		delete(d.loads, clientKey)
	}
	d.mu.Unlock()
}

// InvalidateAll drops every entry; used when change notifications may have
// been missed, and when an integration's link changed (store.WatchLinks).
func (d *Directory) InvalidateAll() {
	d.mu.Lock()
	clear(d.entries)
	for _, l := range d.loads {
		l.stale = true
	}
	clear(d.loads)
	d.mu.Unlock()
}

// Get reads the stored installation (not cached): for pages that show it.
func (d *Directory) Get(ctx context.Context, clientKey string) (*store.Installation, error) {
	return d.store.GetInstallation(ctx, clientKey)
}
