package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/store"
)

// Notification is what the service keeps of a webhook: which issue it is
// about. The payload itself (which may carry excluded fields) is dropped
// on arrival; processing re-reads the issue from Jira, which makes
// duplicates harmless and out-of-order deliveries converge on Jira's
// current state.
type Notification struct {
	Event     string
	IssueID   *int64
	IssueKey  *string
	Timestamp *int64
}

// ParseWebhook reads the few fields the service needs from a Jira webhook
// body, whatever else it carries.
func ParseWebhook(body []byte) (*Notification, error) {
	var w struct {
		WebhookEvent string `json:"webhookEvent"`
		Timestamp    *int64 `json:"timestamp"`
		Issue        *struct {
			ID  json.Number `json:"id"`
			Key string      `json:"key"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, apperr.New(apperr.Invalid, "malformed webhook body")
	}
	if w.WebhookEvent == "" || len(w.WebhookEvent) > 100 {
		return nil, apperr.New(apperr.Invalid, "webhook body has no webhookEvent")
	}
	n := &Notification{Event: w.WebhookEvent, Timestamp: w.Timestamp}
	if w.Issue != nil {
		if id, err := strconv.ParseInt(string(w.Issue.ID), 10, 64); err == nil && id > 0 {
			n.IssueID = &id
		}
		if w.Issue.Key != "" && len(w.Issue.Key) < 256 {
			k := w.Issue.Key
			n.IssueKey = &k
		}
	}
	return n, nil
}

// Links tells which integration a Jira site is linked to.
type Links interface {
	// LinkedIntegration returns the integration's id, "" when the site is
	// not linked to one (or not installed).
	LinkedIntegration(ctx context.Context, clientKey string) (string, error)
}

// Webhooks records notifications and processes them.
type Webhooks struct {
	DB      *store.DB
	Sources SourceFactory
	Now     func() time.Time
	// Links answers from memory (the lifecycle directory, which drops its
	// copy whenever a link changes), so acknowledging a webhook reads
	// nothing from the database. Nil asks the database every time.
	Links Links
	// Enqueue schedules processing (a River job); nil processes inline
	// later through ProcessPending.
	Enqueue func(ctx context.Context, eventID int64) error
	// EnqueueMany, when set, schedules several at once (preferred over
	// Enqueue).
	EnqueueMany func(ctx context.Context, eventIDs []int64) error

	mu sync.Mutex // guards what follows
	// Group commit (see store): the events waiting to be stored, and
	// whether a flusher is storing them.
	queue    []*pendingEvent
	flushing bool
	// metas caches each integration's field list (see fieldMeta).
	metas map[string]cachedMeta
}

// pendingEvent is an accepted notification waiting for its batch.
type pendingEvent struct {
	e    *store.WebhookEvent
	done chan error
}

// maxEventBatch bounds the events stored by one statement.
const maxEventBatch = 256

// flushTimeout bounds one batch's writes; they outlive the request that
// started them (its caller may have gone), not the process.
const flushTimeout = 10 * time.Second

// Accept persists a verified webhook's notification and schedules its
// processing. It does no Jira call, so Jira gets its answer in
// milliseconds.
func (w *Webhooks) Accept(ctx context.Context, clientKey string, body []byte) error {
	n, err := ParseWebhook(body)
	if err != nil {
		return err
	}
	// A site not linked to an integration has nothing to keep fresh; its
	// first sync after linking reads everything anyway.
	linked, err := w.linkedIntegration(ctx, clientKey)
	if err != nil {
		return err
	}
	if linked == "" {
		return nil
	}
	e := &store.WebhookEvent{ClientKey: clientKey, Event: n.Event, IssueID: n.IssueID, IssueKey: n.IssueKey,
		JiraTimestamp: n.Timestamp, ReceivedAt: w.Now().UTC()}
	return w.store(ctx, e)
}

// store stores an event, and answers once it is committed, together with
// the events that arrived while the previous batch was being written:
// group commit. Under load, one INSERT and one River InsertMany carry tens
// of webhooks, where a commit per webhook (two with its job) made the
// database the bottleneck and acknowledgements queue behind it; alone, a
// webhook is written at once, with no wait for company. The caller that
// finds no flusher becomes it, writes what is queued, and hands the rest
// to a goroutine, so no caller waits for more than its own batch and the
// one before it.
func (w *Webhooks) store(ctx context.Context, e *store.WebhookEvent) error {
	p := &pendingEvent{e: e, done: make(chan error, 1)}
	w.mu.Lock()
	w.queue = append(w.queue, p)
	lead := !w.flushing
	w.flushing = true
	w.mu.Unlock()
	if lead {
		if w.flushOnce() {
			go w.flushAll()
		}
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// The event may still be stored; Jira retries what it sees fail,
		// and processing is idempotent.
		return ctx.Err()
	}
}

// flushOnce stores the queued events (up to maxEventBatch) and tells their
// callers; it reports whether more are queued, or else ends the flushing.
func (w *Webhooks) flushOnce() bool {
	w.mu.Lock()
	n := min(len(w.queue), maxEventBatch)
	batch := w.queue[:n:n]
	w.queue = w.queue[n:]
	w.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	err := w.insert(ctx, batch)
	cancel()
	for _, p := range batch {
		p.done <- err
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		w.queue = nil
		w.flushing = false
		return false
	}
	return true
}

func (w *Webhooks) flushAll() {
	for w.flushOnce() {
	}
}

// insert writes a batch of events and schedules their processing. A
// failure to schedule leaves them pending; the periodic sweep of pending
// events picks them up.
func (w *Webhooks) insert(ctx context.Context, batch []*pendingEvent) error {
	events := make([]*store.WebhookEvent, len(batch))
	for i, p := range batch {
		events[i] = p.e
	}
	if err := w.DB.InsertWebhookEvents(ctx, events); err != nil {
		return err
	}
	ids := make([]int64, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	switch {
	case w.EnqueueMany != nil:
		_ = w.EnqueueMany(ctx, ids)
	case w.Enqueue != nil:
		for _, id := range ids {
			_ = w.Enqueue(ctx, id)
		}
	}
	return nil
}

func (w *Webhooks) linkedIntegration(ctx context.Context, clientKey string) (string, error) {
	if w.Links != nil {
		return w.Links.LinkedIntegration(ctx, clientKey)
	}
	it, err := w.DB.IntegrationByClientKey(ctx, clientKey)
	if apperr.CodeOf(err) == apperr.NotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return it.ID, nil
}

// ProcessWebhook brings the issue a notification names up to date: read
// it from Jira, write it if it is visible, delete it if it is not.
func (w *Webhooks) ProcessWebhook(ctx context.Context, eventID int64) error {
	e, err := w.DB.GetWebhookEvent(ctx, eventID)
	if err != nil {
		return err
	}
	if e.ProcessedAt != nil {
		return nil // a duplicate job
	}
	began := w.Now()
	perr := w.process(ctx, e)
	if err := w.DB.FinishWebhookEvent(context.WithoutCancel(ctx), e.ID, w.Now(), perr); err != nil {
		return err
	}
	if perr == nil && e.IssueID != nil {
		// The issue was read from Jira after every notification about it
		// received before began: those are answered too, and their jobs
		// find them processed (a burst of edits costs one read, not one
		// per notification). The margin covers clocks of other replicas
		// that received them; a notification inside it keeps its own job.
		// Best effort: a failure leaves them to their own jobs.
		_, _ = w.DB.FinishWebhookEventsFor(context.WithoutCancel(ctx), e.ClientKey, *e.IssueID, began.Add(-coalesceMargin), w.Now())
	}
	return perr
}

// coalesceMargin is how much older than a read of an issue a notification
// must be for that read to answer it.
const coalesceMargin = 2 * time.Second

func (w *Webhooks) process(ctx context.Context, e *store.WebhookEvent) error {
	if e.IssueID == nil {
		return nil // nothing issue-shaped to refresh
	}
	it, err := w.DB.IntegrationByClientKey(ctx, e.ClientKey)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil // the site is not linked to an integration
	}
	if err != nil {
		return err
	}
	src, err := w.Sources(ctx, it)
	if err != nil {
		return err
	}
	meta, err := w.fieldMeta(ctx, it.ID, src)
	if err != nil {
		return err
	}
	return refreshIssues(ctx, w.DB, src, it, meta, []int64{*e.IssueID}, w.Now)
}

// fieldMetaTTL is how long a site's field list serves webhook processing.
// Field ids (sprint, story points) are fixed once created; a new one is
// seen within the TTL, and by every sync, which reads the list itself.
const fieldMetaTTL = 10 * time.Minute

type cachedMeta struct {
	meta FieldMeta
	at   time.Time
}

// fieldMeta is the site's field list, read from Jira at most once per
// fieldMetaTTL per integration rather than once per notification (which
// doubled the Jira calls webhooks cost, against the site's rate limit).
func (w *Webhooks) fieldMeta(ctx context.Context, integrationID string, src Source) (FieldMeta, error) {
	w.mu.Lock()
	c, ok := w.metas[integrationID]
	w.mu.Unlock()
	if ok && w.Now().Sub(c.at) < fieldMetaTTL {
		return c.meta, nil
	}
	meta, err := src.Fields(ctx)
	if err != nil {
		return FieldMeta{}, err
	}
	w.mu.Lock()
	if w.metas == nil {
		w.metas = map[string]cachedMeta{}
	}
	w.metas[integrationID] = cachedMeta{meta, w.Now()}
	w.mu.Unlock()
	return meta, nil
}

// noSuchIssue recognises Jira's 400 for JQL that names a missing issue.
func noSuchIssue(err error) bool {
	var je *jira.Error
	if !errors.As(err, &je) || je.Status != http.StatusBadRequest {
		return false
	}
	for _, m := range je.Messages {
		if strings.Contains(m, "does not exist") {
			return true
		}
	}
	return false
}

// RefreshIssues re-reads issues by id and writes what Jira returns;
// issues Jira no longer returns are deleted.
func RefreshIssues(ctx context.Context, db *store.DB, src Source, it *store.Integration, ids []int64, now func() time.Time) error {
	meta, err := src.Fields(ctx)
	if err != nil {
		return err
	}
	return refreshIssues(ctx, db, src, it, meta, ids, now)
}

// refreshIssues is RefreshIssues with the site's field list at hand.
func refreshIssues(ctx context.Context, db *store.DB, src Source, it *store.Integration, meta FieldMeta, ids []int64, now func() time.Time) error {
	loc, err := time.LoadLocation(it.Timezone)
	if err != nil {
		loc = time.UTC
	}
	s := &Syncer{DB: db, Sources: func(context.Context, *store.Integration) (Source, error) { return src, nil }, Now: now}
	s.defaults()
	r := &run{s: s, it: it, src: src, users: newUserSet(),
		tr: &Transformer{IntegrationID: it.ID, Meta: meta, Exclude: NewExclusions(it.ExcludedFields), Location: loc, Now: now}}
	list := ""
	for i, id := range ids {
		if i > 0 {
			list += ", "
		}
		list += strconv.FormatInt(id, 10)
	}
	seen := map[int64]bool{}
	err = r.pages(ctx, fmt.Sprintf("id in (%s) ORDER BY id ASC", list), func(batch []*Rows) *store.SyncCheckpoint {
		for _, b := range batch {
			seen[b.Issue.IssueID] = true
		}
		return nil
	})
	switch {
	case err == nil:
	case noSuchIssue(err) && len(ids) == 1:
		// Jira refuses JQL naming an issue that does not exist (or the
		// app may not see) instead of returning nothing: it is gone.
	case noSuchIssue(err):
		for _, id := range ids { // find which one, one by one
			if err := refreshIssues(ctx, db, src, it, meta, []int64{id}, now); err != nil {
				return err
			}
		}
		return nil
	default:
		return err
	}
	var gone []int64
	for _, id := range ids {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	if _, err := db.DeleteIssues(ctx, it.ID, gone); err != nil {
		return err
	}
	return r.writeUsers(ctx)
}
