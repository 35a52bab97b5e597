package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// unfinishedStates are the states in which a job blocks a duplicate: all
// but the final ones (completed, cancelled, discarded). River requires
// available, pending, running and scheduled in a custom ByState.
var unfinishedStates = []rivertype.JobState{
	rivertype.JobStateAvailable,
	rivertype.JobStatePending,
	rivertype.JobStateRetryable,
	rivertype.JobStateRunning,
	rivertype.JobStateScheduled,
}

// SyncArgs is a sync of one integration (kind "sync").
type SyncArgs struct {
	// IntegrationID alone is the unique key: one sync per integration.
	IntegrationID string `json:"integration_id" river:"unique"`
	Mode          string `json:"mode"`
}

// Kind is River's job kind.
func (SyncArgs) Kind() string { return "sync" }

// InsertOpts makes syncs unique per integration while unfinished.
func (SyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueSync,
		MaxAttempts: syncMaxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: unfinishedStates},
	}
}

// WebhookArgs is the processing of one stored webhook event (kind "webhook").
type WebhookArgs struct {
	EventID int64 `json:"event_id" river:"unique"`
}

// Kind is River's job kind.
func (WebhookArgs) Kind() string { return "webhook" }

// InsertOpts gives webhooks the highest priority, and one unfinished job
// per event.
func (WebhookArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueDefault,
		Priority:    1, // River's highest
		MaxAttempts: webhookMaxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: unfinishedStates},
	}
}

// scheduleArgs is one periodic pass enqueueing incremental syncs (kind
// "sync_schedule").
type scheduleArgs struct{}

func (scheduleArgs) Kind() string { return "sync_schedule" }

func (scheduleArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueDefault,
		Priority:    2,
		MaxAttempts: 3, // the next period tries again anyway
		UniqueOpts:  river.UniqueOpts{ByState: unfinishedStates},
	}
}

func syncArgs(integrationID, mode string) (SyncArgs, error) {
	if strings.TrimSpace(integrationID) == "" {
		return SyncArgs{}, apperr.Validation(map[string]string{"integration_id": "is required"})
	}
	if mode != ModeFull && mode != ModeIncremental {
		return SyncArgs{}, apperr.Validation(map[string]string{"mode": `must be "full" or "incremental"`})
	}
	return SyncArgs{IntegrationID: integrationID, Mode: mode}, nil
}

func (j *Jobs) workers() *river.Workers {
	ws := river.NewWorkers()
	river.AddWorker(ws, &syncWorker{j: j})
	river.AddWorker(ws, &webhookWorker{j: j})
	river.AddWorker(ws, &scheduleWorker{j: j})
	return ws
}

func (j *Jobs) periodicSchedule() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(j.cfg.SyncInterval),
		func() (river.JobArgs, *river.InsertOpts) { return scheduleArgs{}, nil },
		// RunOnStart: the schedule lives in the leader's memory and restarts
		// with every new leader, so deployments more frequent than the
		// interval would otherwise never reach it.
		&river.PeriodicJobOpts{ID: "sync_schedule", RunOnStart: true})
}

type syncWorker struct {
	river.WorkerDefaults[SyncArgs]
	j *Jobs
}

func (w *syncWorker) Work(ctx context.Context, job *river.Job[SyncArgs]) error {
	return outcome(job.JobRow, w.j.syncer.Sync(ctx, job.Args.IntegrationID, job.Args.Mode))
}

func (w *syncWorker) Timeout(*river.Job[SyncArgs]) time.Duration { return w.j.cfg.SyncTimeout }

func (w *syncWorker) NextRetry(job *river.Job[SyncArgs]) time.Time {
	return time.Now().Add(backoff(w.j.cfg.RetryBase, w.j.cfg.SyncInterval, job.Attempt))
}

type webhookWorker struct {
	river.WorkerDefaults[WebhookArgs]
	j *Jobs
}

func (w *webhookWorker) Work(ctx context.Context, job *river.Job[WebhookArgs]) error {
	return outcome(job.JobRow, w.j.webhooks.ProcessWebhook(ctx, job.Args.EventID))
}

func (w *webhookWorker) Timeout(*river.Job[WebhookArgs]) time.Duration { return webhookTimeout }

func (w *webhookWorker) NextRetry(job *river.Job[WebhookArgs]) time.Time {
	return time.Now().Add(backoff(w.j.cfg.RetryBase, webhookRetryCap, job.Attempt))
}

type scheduleWorker struct {
	river.WorkerDefaults[scheduleArgs]
	j *Jobs
}

func (w *scheduleWorker) Timeout(*river.Job[scheduleArgs]) time.Duration { return scheduleTimeout }

func (w *scheduleWorker) Work(ctx context.Context, _ *river.Job[scheduleArgs]) error {
	ids, err := w.j.integrations.ConnectedIntegrationIDs(ctx)
	if err != nil {
		return err
	}
	enqueued := 0
	for chunk := range chunks(ids, 500) {
		params := make([]river.InsertManyParams, 0, len(chunk))
		for _, id := range chunk {
			params = append(params, river.InsertManyParams{Args: SyncArgs{IntegrationID: id, Mode: ModeIncremental}})
		}
		res, err := w.j.client.InsertMany(ctx, params)
		if err != nil {
			return err
		}
		for _, r := range res {
			if !r.UniqueSkippedAsDuplicate {
				enqueued++
			}
		}
	}
	w.j.log.InfoContext(ctx, "periodic sync scheduled", "integrations", len(ids), "enqueued", enqueued)
	// Housekeeping rides on the same leader-only schedule.
	if m, ok := w.j.integrations.(Maintainer); ok {
		if err := m.Maintain(ctx); err != nil {
			w.j.log.WarnContext(ctx, "maintenance failed", "error", err.Error())
		}
	}
	return nil
}

// Maintainer is optionally implemented by the Integrations given to New:
// housekeeping run with every periodic schedule (retention purges, webhook
// events whose job was never enqueued).
type Maintainer interface {
	Maintain(ctx context.Context) error
}

func chunks[T any](s []T, n int) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// backoff is base·2^(attempt-1), capped, with ±10% jitter so that jobs
// failing together (Jira down) do not come back together.
func backoff(base, limit time.Duration, attempt int) time.Duration {
	d := limit
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 40 {
		if b := base << (attempt - 1); b > 0 && b < limit {
			d = b
		}
	}
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// permanentError is an error not worth retrying.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: a job whose Syncer or
// WebhookProcessor returns it is cancelled (River's JobCancel) instead of
// retried. An *apperr.Error with code NotFound or Invalid is treated the
// same way (the integration or event is gone, or can never be processed).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// outcome maps a Syncer's or WebhookProcessor's error to River's: nil
// completes; Permanent, NotFound and Invalid cancel; RateLimited or
// Unavailable with a RetryAfter snooze that long (River's JobSnooze: not a
// failed attempt; at most maxSnoozes times per job, then such errors count
// as failures); anything else is a failed attempt, retried with backoff.
func outcome(job *rivertype.JobRow, err error) error {
	if err == nil {
		return nil
	}
	var perm *permanentError
	if errors.As(err, &perm) {
		return river.JobCancel(err)
	}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case apperr.NotFound, apperr.Invalid:
			return river.JobCancel(err)
		case apperr.RateLimited, apperr.Unavailable:
			if ae.RetryAfter > 0 && snoozes(job) < maxSnoozes {
				return river.JobSnooze(ae.RetryAfter)
			}
		}
	}
	return err
}

func snoozes(job *rivertype.JobRow) int {
	var md struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(job.Metadata, &md)
	return md.Snoozes
}
