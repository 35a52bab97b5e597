package integrations

import (
	"context"
	"errors"
	"strings"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/store"
)

// Reauthenticate replaces an API-token or Data Center integration's
// credentials and validates them at once: an integration that was failing
// (credentials_rejected, or anything else) is connected again when the
// checks pass, and its next sync, scheduled by the validation, resumes
// from its checkpoints. New credentials that fail validation are kept (the
// old ones were replaced, as asked) and the validation says why.
func (s *Service) Reauthenticate(ctx context.Context, tenantID, id string, a AuthInput) (*Integration, *Validation, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case it.Type == TypeConnectApp:
		return nil, nil, apperr.New(apperr.Conflict, "a Connect app integration authenticates as the installed app: reinstall the app, or link the site again with a new Connect key").WithReason("not_credentials")
	case BySatellite(it):
		return nil, nil, apperr.New(apperr.Conflict, "the satellite holds this integration's credentials: change them in satellite.yml on its host (PATCH authentication changes the method or user name written into satellite.yml)").WithReason("satellite_credentials")
	}
	st, err := ParseSettings(it)
	if err != nil {
		return nil, nil, err
	}
	method := st.Auth.Method
	if a.Method != nil {
		method = strings.TrimSpace(*a.Method)
	}
	if m, ok := methods[it.Type][method]; ok && a.secret(m.secret) == nil {
		// Replacing credentials means giving the secret; keeping the
		// stored one is what PATCH is for.
		return nil, nil, apperr.Validation(map[string]string{m.secret: "is required to re-authenticate"})
	}
	rejected := it.StatusReason == ReasonCredentialsReject
	if err := s.applyAll(&Input{Authentication: &a}, it, false); err != nil {
		return nil, nil, bodyFields(err)
	}
	if err := s.DB.SaveIntegration(ctx, it); err != nil {
		return nil, nil, err
	}
	s.Log.InfoContext(ctx, "integration re-authenticated", "integration_id", it.ID, "method", methodOf(it))
	return s.validate(ctx, tenantID, id, rejected)
}

// bodyFields renames "authentication.x" to "x": the body of PUT
// …/authentication is the authentication object itself.
func bodyFields(err error) error {
	ae := apperr.As(err)
	if ae.Fields == nil {
		return err
	}
	f := make(map[string]string, len(ae.Fields))
	for k, v := range ae.Fields {
		f[strings.TrimPrefix(k, "authentication.")] = v
	}
	return &apperr.Error{Code: ae.Code, Message: ae.Message, Reason: ae.Reason, Fields: f}
}

// methodOf returns the integration's authentication method, for logs.
func methodOf(it *store.Integration) string {
	st, _ := ParseSettings(it)
	return st.Auth.Method
}

// CredentialsRejected reports whether a sync's error means Jira refused
// the integration's credentials (expired or revoked token, changed
// password), which retrying cannot fix.
func CredentialsRejected(err error) bool {
	// A 401; a Data Center 401 or 404 answered as anonymous (a revoked
	// token, an expired session); a 403 asking for a CAPTCHA; ADFS
	// refusing the grant (internal/jira's ErrCredentialsRejected).
	return errors.Is(err, jira.ErrCredentialsRejected)
}

// MarkCredentialsRejected puts an integration whose credentials Jira
// refused during a sync in failing / credentials_rejected, shown by
// monitoring until someone re-authenticates. Nothing ingested is touched:
// checkpoints stay, so the next sync after re-authentication resumes. The
// status changes only if the credentials are still the ones the sync
// used: a re-authentication that raced the sync is not undone, and then
// it reports false (the sync should run again, with the new ones).
func (s *Service) MarkCredentialsRejected(ctx context.Context, it *store.Integration, cause error) (bool, error) {
	changed, err := s.DB.SetStatusIfCredentials(ctx, it.ID, it.Credentials, StatusFailing, ReasonCredentialsReject)
	if err != nil {
		return false, err
	}
	// The cause is a *jira.Error: method, path, status and Jira's
	// scrubbed message, never a credential.
	s.Log.WarnContext(ctx, "Jira rejected the integration's credentials", "integration_id", it.ID, "method", methodOf(it),
		"status_changed", changed, "error", cause.Error())
	return changed, nil
}
