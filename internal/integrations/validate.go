package integrations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/lifecycle"
	"github.com/sei-io/jira-connect/internal/store"
)

// Installations finds a linked installation's site URL, state and secret.
type Installations interface {
	Lookup(ctx context.Context, clientKey string) (*lifecycle.Entry, error)
}

// Validator runs Validate Connection's pre-flight checks.
type Validator struct {
	Installations Installations
	AppKey        string
	HTTP          *http.Client
	Now           func() time.Time
}

// Check results.
const (
	Pass    = "pass"
	Fail    = "fail"
	Skipped = "skipped"
)

// Check is one named pre-flight check with a sentence a person can act on.
type Check struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Message    string `json:"message"`
	DurationMS int64  `json:"duration_ms"`
}

// Validation is the outcome of Validate Connection.
type Validation struct {
	OK     bool      `json:"ok"`
	At     time.Time `json:"at"`
	Checks []Check   `json:"checks"`
}

// Check names, in the order they run.
const (
	CheckInstallation = "installation"
	CheckReachable    = "site_reachable"
	CheckSearch       = "search_issues"
	CheckEmails       = "read_emails"
)

// validationTimeout bounds the whole validation; each call is small.
const validationTimeout = 30 * time.Second

// Validate runs the checks for the tenant's integration, stores the result
// and moves the integration to connected (all pass) or failing.
func (s *Service) Validate(ctx context.Context, tenantID, id string) (*Integration, *Validation, error) {
	return s.validate(ctx, tenantID, id, false)
}

// validate is Validate; rejected says the integration was failing with
// credentials_rejected before (Reauthenticate reads that before it
// replaces the credentials).
func (s *Service) validate(ctx context.Context, tenantID, id string, rejected bool) (*Integration, *Validation, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, validationTimeout)
	defer cancel()
	rejected = rejected || it.StatusReason == ReasonCredentialsReject
	v := s.runValidation(ctx, it)

	raw, _ := json.Marshal(v)
	rs := string(raw)
	it.LastValidation, it.ValidatedAt = &rs, &v.At
	switch {
	case v.OK:
		it.Status, it.StatusReason = StatusConnected, ReasonValidated
	case it.Status == StatusUninstalled:
		// stays uninstalled: that is the more useful status
	default:
		it.Status, it.StatusReason = StatusFailing, ReasonValidationFailed
	}
	if err := s.DB.SaveIntegration(context.WithoutCancel(ctx), it); err != nil {
		return nil, nil, err
	}
	// A connected integration starts ingesting at once; the sync picks
	// full or incremental by its checkpoints (a satellite's integration is
	// ingested by the satellite).
	if v.OK && s.Queue != nil && !BySatellite(it) {
		s.enqueueAfterValidation(context.WithoutCancel(ctx), it.ID, rejected)
	}
	return view(it), v, nil
}

// Retries of enqueueAfterValidation.
const (
	enqueueRetries = 30
	enqueueEvery   = 100 * time.Millisecond
)

// enqueueAfterValidation schedules the sync that follows a validation.
// One sync job per integration exists at a time, and the job that met
// rejected credentials holds that slot until River records its end, a
// moment after it marked the integration failing; no other job can hold
// it then (a failing integration gets no periodic or requested sync). So
// for an integration repaired from credentials_rejected, a taken slot is
// that ending job, and the enqueue is retried for a few seconds rather
// than losing the sync that resumes ingestion.
func (s *Service) enqueueAfterValidation(ctx context.Context, id string, rejected bool) {
	for i := 0; ; i++ {
		queued, err := s.Queue.EnqueueSync(ctx, id, "incremental")
		if err != nil {
			s.Log.WarnContext(ctx, "first sync not scheduled", "integration_id", id, "error", err.Error())
			return
		}
		if queued || !rejected || i == enqueueRetries {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(enqueueEvery):
		}
	}
}

func (v *Validator) run(ctx context.Context, it *store.Integration) *Validation {
	out := &Validation{At: v.Now().UTC().Truncate(time.Microsecond)}
	add := func(name string, started time.Time, err error, passMsg string) bool {
		c := Check{Name: name, Status: Pass, Message: passMsg, DurationMS: time.Since(started).Milliseconds()}
		if err != nil {
			c.Status, c.Message = Fail, err.Error()
		}
		out.Checks = append(out.Checks, c)
		return err == nil
	}
	skip := func(names ...string) {
		for _, n := range names {
			out.Checks = append(out.Checks, Check{Name: n, Status: Skipped, Message: "Not run: an earlier check failed."})
		}
	}

	started := time.Now()
	entry, err := v.installation(ctx, it)
	if !add(CheckInstallation, started, err, "The Jira site is linked and the app is enabled on it.") {
		skip(CheckReachable, CheckSearch, CheckEmails)
		return out
	}
	client, err := jira.New(entry.BaseURL, &jira.ConnectJWT{AppKey: v.AppKey, SharedSecret: entry.Secret, Now: v.Now}, jira.WithHTTPClient(v.HTTP),
		// A person is waiting: one quick retry, not an ingester's patience.
		jira.WithRetryPolicy(jira.RetryPolicy{MaxAttempts: 2, MaxElapsed: 10 * time.Second, BaseDelay: 200 * time.Millisecond,
			MaxDelay: time.Second, MaxRetryAfter: 5 * time.Second}))
	if err != nil {
		add(CheckReachable, started, say("The site URL %s is not usable: %v", entry.BaseURL, err), "")
		skip(CheckSearch, CheckEmails)
		return out
	}

	started = time.Now()
	info, err := client.ServerInfo(ctx)
	var me *jira.User
	if err == nil {
		me, err = client.Myself(ctx)
	}
	msg := ""
	if err == nil {
		// The site's zone, as Jira reports it for the app's user, next to
		// the integration's: dates without an offset are read in the latter.
		msg = fmt.Sprintf("The app called %s (Jira %s) with its signed token. Jira's time zone: %s; this integration's: %s.",
			entry.BaseURL, info.Version, orUnknown(me.TimeZone), it.Timezone)
	}
	if !add(CheckReachable, started, explain(err, entry.BaseURL, CheckReachable), msg) {
		skip(CheckSearch, CheckEmails)
		return out
	}

	started = time.Now()
	// Jira Cloud refuses unbounded JQL on /search/jql, so bound it.
	_, err = client.SearchJQL(ctx, jira.SearchRequest{JQL: "updated >= -36500d ORDER BY updated DESC", MaxResults: 1, Fields: []string{"id"}})
	add(CheckSearch, started, explain(err, entry.BaseURL, CheckSearch), "The app can search issues.")

	started = time.Now()
	_, err = client.UserEmails(ctx, []string{me.AccountID})
	// Asking for the app user's own email is enough to learn whether Jira
	// lets the app read email addresses at all.
	add(CheckEmails, started, explain(err, entry.BaseURL, CheckEmails), "The app can read users' email addresses.")

	out.OK = true
	for _, c := range out.Checks {
		out.OK = out.OK && c.Status == Pass
	}
	return out
}

func (v *Validator) installation(ctx context.Context, it *store.Integration) (*lifecycle.Entry, error) {
	if it.ClientKey == nil {
		return nil, say("No Jira site is linked: generate a Connect key on the app's page in Jira and redeem it for this integration.")
	}
	e, err := v.Installations.Lookup(ctx, *it.ClientKey)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, say("The linked Jira installation no longer exists: reinstall the app and link it again.")
		}
		return nil, say("The installation could not be read; try again.")
	}
	switch e.State {
	case lifecycle.StateUninstalled:
		return nil, say("The app was uninstalled from the Jira site: reinstall it and link it again with a new Connect key.")
	case lifecycle.StateDisabled:
		return nil, say("The app is disabled on the Jira site: a Jira administrator can enable it under Manage apps.")
	}
	return e, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// explain turns a Jira client error into a sentence for a person.
func explain(err error, site, check string) error {
	if err == nil {
		return nil
	}
	var je *jira.Error
	detail := ""
	if errors.As(err, &je) && len(je.Messages) > 0 {
		detail = " Jira said: " + je.Messages[0]
	}
	switch {
	case jira.IsNetwork(err):
		return say("The Jira site %s could not be reached (%v). Check that the site exists and is up.", site, networkCause(err))
	case jira.IsUnauthorized(err):
		return say("Jira refused the app's signed request (401). The installation's shared secret may be out of date: reinstall the app on the site.%s", detail)
	case check == CheckEmails && (jira.IsForbidden(err) || (je != nil && je.Status == http.StatusBadRequest)):
		// Atlassian documents 400 for an app "not approved to use this
		// API"; sites have been seen answering 403. Both mean the same.
		return say("Jira refused to give email addresses (%d). Apps need Atlassian's approval to read emails (the ACCESS_EMAIL_ADDRESSES scope): request it for the app, then validate again.%s", je.Status, detail)
	case jira.IsForbidden(err) && check == CheckSearch:
		return say("The app may not search issues (403). Give the app's user the Browse Projects permission on the projects to ingest.%s", detail)
	case jira.IsForbidden(err):
		return say("Jira refused the request (403).%s", detail)
	case jira.IsRateLimited(err):
		return say("Jira is rate limiting the app (429); validate again in a minute.%s", detail)
	}
	return say("The call to Jira failed: %v", err)
}

// sentence is an error whose text is written for a person: capitalized,
// punctuated, and telling what to do.
type sentence string

func (s sentence) Error() string { return string(s) }

func say(format string, args ...any) error { return sentence(fmt.Sprintf(format, args...)) }

func networkCause(err error) string {
	var je *jira.Error
	if errors.As(err, &je) && je.Err != nil {
		return je.Err.Error()
	}
	return err.Error()
}
