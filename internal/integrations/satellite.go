package integrations

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/satellite/wire"
	"github.com/sei-io/jira-connect/internal/store"
)

// satelliteIntegration returns the tenant's integration if a satellite
// ingests it, Conflict otherwise.
func (s *Service) satelliteIntegration(ctx context.Context, tenantID, id string) (*store.Integration, Settings, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, Settings{}, err
	}
	if !BySatellite(it) {
		return nil, Settings{}, apperr.New(apperr.Conflict, "this integration is not ingested by a satellite: only a jira_datacenter integration with connection satellite is").WithReason("not_satellite")
	}
	st, err := ParseSettings(it)
	return it, st, err
}

// Placeholders of satellite.yml: the service never has the API key in
// clear (only its hash) and never stores a satellite integration's
// secret, so these are what a person fills in.
const (
	PlaceholderAPIKey   = "<YOUR_API_KEY>"
	PlaceholderPassword = "<PASSWORD>"
	PlaceholderPAT      = "<PERSONAL_ACCESS_TOKEN>"
	PlaceholderADFS     = "<ADFS_PASSWORD>"
)

// SatelliteYAML renders satellite.yml for a satellite integration, filled
// in except for the secrets, in the format SEI's documentation publishes.
func (s *Service) SatelliteYAML(ctx context.Context, tenantID, id string) ([]byte, error) {
	it, st, err := s.satelliteIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# satellite.yml of the SEI integration %s, generated %s.", commentSafe(it.Name), s.Now().UTC().Format(time.RFC3339))
	w("# Replace the values in <ANGLE BRACKETS>, make the file readable by the satellite's user only,")
	w("# and run on a host inside your network that reaches %s:", commentSafe(st.URL))
	w("#   satellite --config satellite.yml")
	w("satellite: {tenant: %s, api_key: %s, url: %s}", yq(it.TenantID), yq(PlaceholderAPIKey), yq(strings.TrimRight(s.PublicURL, "/")+"/api"))
	w("integrations:")
	w("  - id: %s", yq(it.ID))
	w("    url: %s", yq(st.URL))
	switch st.Auth.Method {
	case AuthADFS:
		w("    application: jira")
		w("    authentication: adfs")
		w("    adfs_url: %s", yq(st.Auth.ADFSURL))
		w("    adfs_client_id: %s", yq(st.Auth.ClientID))
		w("    adfs_resource: %s", yq(st.Auth.Resource))
		w("    adfs_username: %s", yq(st.Auth.Username))
		w("    adfs_password: %s", yq(PlaceholderADFS))
	case AuthBasic:
		w("    username: %s", yq(st.Auth.Username))
		w("    application: jira")
		w("    api_key: %s   # the password of %s", yq(PlaceholderPassword), commentSafe(st.Auth.Username))
	default: // a personal access token: no username
		w("    application: jira")
		w("    api_key: %s   # a personal access token (Jira: Profile, Personal Access Tokens)", yq(PlaceholderPAT))
	}
	fields := make([]string, 0, len(it.ExcludedFields))
	for _, f := range it.ExcludedFields {
		fields = append(fields, yq(f))
	}
	w("    metadata: {timezone: %s, sensitive_fields: [%s]}", yq(it.Timezone), strings.Join(fields, ", "))
	w("jira: {allow_unsafe_ssl: %t}", st.TLS.AllowUnsafeSSL)
	return []byte(b.String()), nil
}

// yq quotes a YAML scalar: single quotes, in which only ' is special.
// Values reaching here have no line breaks (validated when written).
func yq(s string) string {
	return "'" + strings.ReplaceAll(commentSafe(s), "'", "''") + "'"
}

// commentSafe keeps a value on its line: a line break in a name would
// end a YAML comment and start a key of its own.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// ReceiveBatch applies a batch a satellite pushed. It is idempotent: a
// batch id seen before answers the first result without writing anything
// (Duplicate), and if two pushes of one batch race, the batch's row, taken
// first in the transaction, lets one of them write. A reused id with other
// content is a Conflict: the satellite must not reuse ids.
func (s *Service) ReceiveBatch(ctx context.Context, tenantID, id string, b *wire.Batch) (*wire.BatchResult, error) {
	it, _, err := s.satelliteIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if f := b.Validate(); f != nil {
		return nil, apperr.Validation(f)
	}
	canonical, err := json.Marshal(b)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "cannot encode batch")
	}
	sum := sha256.Sum256(canonical)
	digest := hex.EncodeToString(sum[:])
	if prev, err := s.DB.GetSatelliteBatch(ctx, it.ID, b.BatchID); err == nil {
		return duplicateBatch(prev, digest)
	} else if apperr.CodeOf(err) != apperr.NotFound {
		return nil, err
	}

	now := s.Now().UTC().Truncate(time.Microsecond)
	rows := batchRows(it, b, now)
	written := map[string]int{}
	// TxOnConn: WriteIssues inside copies the children on the
	// transaction's connection.
	err = s.DB.TxOnConn(ctx, func(tx *store.DB) error {
		if err := tx.InsertSatelliteBatch(ctx, &store.SatelliteBatch{IntegrationID: it.ID, BatchID: b.BatchID, Digest: digest, Result: "{}", ReceivedAt: now}); err != nil {
			return err
		}
		n, err := tx.WriteIssues(ctx, it.ID, rows.issues, nil)
		if err != nil {
			return err
		}
		// Issues not newer than the stored version are left alone with
		// their children (a replayed or out-of-order batch).
		written["issues"], written["issues_not_newer"] = n, len(rows.issues.Issues)-n
		written["transitions"], written["field_changes"], written["comments"] = len(rows.issues.Transitions), len(rows.issues.FieldChanges), len(rows.issues.Comments)
		if written["deleted"], err = tx.DeleteIssues(ctx, it.ID, b.DeletedIssueIDs); err != nil {
			return err
		}
		if err := tx.UpsertUsers(ctx, rows.users); err != nil {
			return err
		}
		written["users"] = len(rows.users)
		raw, _ := json.Marshal(written)
		if err := tx.SetSatelliteBatchResult(ctx, it.ID, b.BatchID, string(raw)); err != nil {
			return err
		}
		return tx.TouchSatellite(ctx, it.ID, now, nil)
	})
	if apperr.ReasonOf(err) == "unique_violation" {
		// The same batch id committed meanwhile (a concurrent retry).
		prev, gerr := s.DB.GetSatelliteBatch(ctx, it.ID, b.BatchID)
		if gerr != nil {
			return nil, err
		}
		return duplicateBatch(prev, digest)
	}
	if err != nil {
		return nil, err
	}
	return &wire.BatchResult{BatchID: b.BatchID, ReceivedAt: now, Written: written}, nil
}

func duplicateBatch(prev *store.SatelliteBatch, digest string) (*wire.BatchResult, error) {
	if prev.Digest != digest {
		return nil, &apperr.Error{Code: apperr.Conflict, Message: "this batch_id was used for a batch with other content: use a new batch_id for new content",
			Reason: "batch_id_reused", Fields: map[string]string{"batch_id": "was used before for other content"}}
	}
	out := &wire.BatchResult{BatchID: prev.BatchID, Duplicate: true, ReceivedAt: prev.ReceivedAt, Written: map[string]int{}}
	_ = json.Unmarshal([]byte(prev.Result), &out.Written)
	return out, nil
}

type satelliteRows struct {
	issues *store.IssueBatch
	users  []store.JiraUser
}

// batchRows turns a batch into rows, applying the integration's exclusions
// again: the satellite should have dropped sensitive fields, and a
// misconfigured one must still not get them stored.
func batchRows(it *store.Integration, b *wire.Batch, now time.Time) satelliteRows {
	ex := ingest.NewExclusions(it.ExcludedFields)
	loc, err := time.LoadLocation(it.Timezone)
	if err != nil {
		loc = time.UTC
	}
	out := satelliteRows{issues: &store.IssueBatch{}}
	for _, w := range b.Issues {
		is := store.JiraIssue{IntegrationID: it.ID, IssueID: w.ID, Key: w.Key, ProjectKey: w.ProjectKey, ProjectID: w.ProjectID,
			IssueType: w.IssueType, Status: w.Status, StatusCategory: w.StatusCategory, Priority: w.Priority,
			AssigneeAccountID: w.AssigneeAccountID, ReporterAccountID: w.ReporterAccountID, CreatorAccountID: w.CreatorAccountID,
			Created: w.Created.UTC(), Updated: w.Updated.UTC(), Resolved: utcPtr(w.Resolved), Sprint: w.Sprint, ParentKey: w.ParentKey,
			StoryPoints: w.StoryPoints, SyncedAt: now,
			Components: jsonList(w.Components, ex.Field("components")), Labels: jsonList(w.Labels, ex.Field("labels")),
			FixVersions: jsonList(w.FixVersions, ex.Field("fixVersions")), Fields: otherFields(w.Fields, ex)}
		if !ex.Field("summary") {
			is.Summary = w.Summary
		}
		if !ex.Field("description") {
			is.Description = w.Description
		}
		if w.DueDate != nil && !ex.Field("duedate") {
			// A due date has no offset: that day where the team works.
			if d, err := time.ParseInLocation(time.DateOnly, *w.DueDate, loc); err == nil {
				due, at := *w.DueDate, d.UTC()
				is.DueDate, is.DueAt = &due, &at
			}
		}
		out.issues.Issues = append(out.issues.Issues, is)
	}
	for _, t := range b.Transitions {
		out.issues.Transitions = append(out.issues.Transitions, store.JiraTransition{IntegrationID: it.ID, IssueID: t.IssueID,
			HistoryID: t.HistoryID, Item: t.Item, FromStatus: t.FromStatus, ToStatus: t.ToStatus, FromStatusID: t.FromStatusID,
			ToStatusID: t.ToStatusID, AuthorAccountID: t.AuthorAccountID, At: t.At.UTC()})
	}
	for _, c := range b.FieldChanges {
		fc := store.JiraFieldChange{IntegrationID: it.ID, IssueID: c.IssueID, HistoryID: c.HistoryID, Item: c.Item, Field: c.Field,
			FieldID: c.FieldID, AuthorAccountID: c.AuthorAccountID, At: c.At.UTC()}
		id := c.Field
		if c.FieldID != nil {
			id = *c.FieldID
		}
		// An excluded field's change keeps that it changed, not the values.
		if !ex.Field(id) && !ex.Field(c.Field) {
			fc.FromValue, fc.FromString, fc.ToValue, fc.ToString = c.FromValue, c.FromString, c.ToValue, c.ToString
		}
		out.issues.FieldChanges = append(out.issues.FieldChanges, fc)
	}
	if !ex.Comments() {
		for _, c := range b.Comments {
			out.issues.Comments = append(out.issues.Comments, store.JiraComment{IntegrationID: it.ID, IssueID: c.IssueID,
				CommentID: c.CommentID, AuthorAccountID: c.AuthorAccountID, Body: c.Body, Created: c.Created.UTC(), Updated: c.Updated.UTC()})
		}
	}
	for _, u := range b.Users {
		out.users = append(out.users, store.JiraUser{IntegrationID: it.ID, AccountID: u.AccountID, DisplayName: u.DisplayName,
			Email: u.Email, Active: u.Active, TimeZone: u.TimeZone, AccountType: u.AccountType})
	}
	return out
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func jsonList(v []string, excluded bool) string {
	if excluded || v == nil {
		v = []string{}
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

// otherFields keeps the non-excluded entries of a fields object.
func otherFields(raw json.RawMessage, ex ingest.Exclusions) string {
	var m map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || m == nil {
		return "{}"
	}
	for k, v := range m {
		if ex.Field(k) || string(v) == "null" {
			delete(m, k)
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}

// SatelliteHeartbeat records a satellite's report: its last contact, and
// the checks it ran against Jira, which Validate Connection shows.
func (s *Service) SatelliteHeartbeat(ctx context.Context, tenantID, id string, hb *wire.Heartbeat) (*wire.HeartbeatResult, error) {
	it, _, err := s.satelliteIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if f := hb.Validate(); f != nil {
		return nil, apperr.Validation(f)
	}
	raw, err := json.Marshal(hb)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "cannot encode heartbeat")
	}
	rs := string(raw)
	now := s.Now().UTC().Truncate(time.Microsecond)
	if err := s.DB.TouchSatellite(ctx, it.ID, now, &rs); err != nil {
		return nil, err
	}
	return &wire.HeartbeatResult{ReceivedAt: now}, nil
}

// SatelliteState is what monitoring shows of a satellite integration.
type SatelliteState struct {
	LastContactAt   *time.Time     `json:"last_contact_at"`
	LastHeartbeatAt *time.Time     `json:"last_heartbeat_at"`
	LastBatchAt     *time.Time     `json:"last_batch_at"`
	Batches         int64          `json:"batches"`
	Version         string         `json:"version,omitempty"`
	Hostname        string         `json:"hostname,omitempty"`
	Sync            *wire.SyncInfo `json:"sync,omitempty"`
	Silent          bool           `json:"silent"` // no contact for three heartbeat periods
}

func (s *Service) satelliteState(ctx context.Context, it *store.Integration) (*SatelliteState, error) {
	c, err := s.DB.SatelliteContactOf(ctx, it.ID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return &SatelliteState{Silent: true}, nil
	}
	if err != nil {
		return nil, err
	}
	st := &SatelliteState{LastContactAt: &c.ContactAt, LastHeartbeatAt: c.HeartbeatAt, LastBatchAt: c.BatchAt, Batches: c.Batches,
		Silent: s.Now().Sub(c.ContactAt) > satelliteSilentAfter}
	if c.Heartbeat != nil {
		var hb wire.Heartbeat
		if json.Unmarshal([]byte(*c.Heartbeat), &hb) == nil {
			st.Version, st.Hostname, st.Sync = hb.Version, hb.Hostname, hb.Sync
		}
	}
	return st, nil
}
