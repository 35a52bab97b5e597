package integrations

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// Monitoring is what SEI shows on an integration's health panel.
type Monitoring struct {
	Status         string        `json:"status"`
	StatusReason   string        `json:"status_reason"`
	StatusMessage  string        `json:"status_message"`
	Installation   *InstallState `json:"installation"`
	LastValidation *Validation   `json:"last_validation"`
	Sync           SyncState     `json:"sync"`
	// Satellite is the satellite's contact, for a satellite integration.
	Satellite *SatelliteState `json:"satellite,omitempty"`
}

// InstallState is the linked installation as the app sees it.
type InstallState struct {
	ClientKey string     `json:"client_key"`
	SiteURL   string     `json:"site_url"`
	State     string     `json:"state"`
	LinkedAt  *time.Time `json:"linked_at"`
}

// SyncState is the last sync; empty until the first one.
type SyncState struct {
	State          *string          `json:"state"` // running, succeeded, failed
	Mode           *string          `json:"mode"`
	LastStartedAt  *time.Time       `json:"last_started_at"`
	LastFinishedAt *time.Time       `json:"last_finished_at"`
	Counts         map[string]int   `json:"counts"`
	Stored         map[string]int64 `json:"stored"`
	LastError      *string          `json:"last_error"`
}

// Monitoring returns the tenant's integration's health.
func (s *Service) Monitoring(ctx context.Context, tenantID, id string) (*Monitoring, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	m := &Monitoring{Status: it.Status, StatusReason: it.StatusReason, StatusMessage: reasonText[it.StatusReason],
		Sync: SyncState{Counts: map[string]int{}}}
	if it.ClientKey != nil {
		in, err := s.DB.GetInstallation(ctx, *it.ClientKey)
		if err != nil && apperr.CodeOf(err) != apperr.NotFound {
			return nil, err
		}
		m.Installation = &InstallState{ClientKey: *it.ClientKey, LinkedAt: it.LinkedAt}
		if in != nil {
			m.Installation.SiteURL, m.Installation.State = in.BaseURL, in.State
		}
	}
	if run, err := s.DB.LatestRun(ctx, it.ID); err == nil {
		m.Sync.State, m.Sync.Mode = &run.State, &run.Mode
		m.Sync.LastStartedAt, m.Sync.LastFinishedAt, m.Sync.LastError = &run.StartedAt, run.FinishedAt, run.Error
		m.Sync.Counts = map[string]int{"requests": run.Requests, "pages": run.Pages, "issues": run.Issues,
			"transitions": run.Transitions, "comments": run.Comments, "users": run.Users, "deleted": run.Deleted}
	} else if apperr.CodeOf(err) != apperr.NotFound {
		return nil, err
	}
	if m.Sync.Stored, err = s.DB.CountIngested(ctx, it.ID); err != nil {
		return nil, err
	}
	if BySatellite(it) {
		if m.Satellite, err = s.satelliteState(ctx, it); err != nil {
			return nil, err
		}
	}
	if it.LastValidation != nil {
		var v Validation
		if err := json.Unmarshal([]byte(*it.LastValidation), &v); err == nil {
			m.LastValidation = &v
		}
	}
	return m, nil
}
