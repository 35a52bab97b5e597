package app

import (
	"context"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/integrations"
	"github.com/sei-io/jira-connect/internal/jobs"
	"github.com/sei-io/jira-connect/internal/store"
)

// Sources opens the Jira source of any integration type: the Connect app's
// signed calls (connect), or the stored credentials of an API-token or
// Data Center integration connected directly.
func Sources(connect ingest.SourceFactory, ints *integrations.Service) ingest.SourceFactory {
	return func(ctx context.Context, it *store.Integration) (ingest.Source, error) {
		switch it.Type {
		case integrations.TypeConnectApp:
			return connect(ctx, it)
		case integrations.TypeCloudToken:
			c, err := ints.JiraClient(ctx, it)
			if err != nil {
				return nil, err
			}
			// Status history by changelog/bulkfetch, emails as the site's
			// privacy settings show them to the account.
			return ingest.NewCloudTokenSource(c), nil
		case integrations.TypeDataCenter:
			if integrations.BySatellite(it) {
				return nil, apperr.New(apperr.Conflict, "a satellite ingests this integration").WithReason("satellite")
			}
			c, err := ints.JiraClient(ctx, it)
			if err != nil {
				return nil, err
			}
			return ingest.NewDataCenterSource(c, ingest.DataCenterOptions{}), nil
		}
		return nil, apperr.New(apperr.Invalid, "unknown integration type %q", it.Type)
	}
}

// syncGuard is the Syncer the jobs run. It skips integrations a satellite
// ingests (the periodic schedule covers every connected integration), and
// when Jira refuses an integration's stored credentials it marks the
// integration failing / credentials_rejected and stops retrying: a revoked
// token does not come back by itself. What the sync stored stays, with its
// checkpoints, so the sync after re-authentication resumes.
type syncGuard struct {
	syncer jobs.Syncer
	db     *store.DB
	ints   *integrations.Service
}

func (g *syncGuard) Sync(ctx context.Context, integrationID, mode string) error {
	it, err := g.db.GetIntegrationByID(ctx, integrationID)
	if err != nil {
		return err
	}
	if integrations.BySatellite(it) {
		return nil
	}
	err = g.syncer.Sync(ctx, integrationID, mode)
	if err != nil && integrations.UsesCredentials(it) && integrations.CredentialsRejected(err) {
		marked, merr := g.ints.MarkCredentialsRejected(context.WithoutCancel(ctx), it, err)
		switch {
		case merr != nil:
			return merr
		case !marked:
			// Re-authenticated while this sync ran with the old
			// credentials: the validation's enqueue found this job in the
			// way, so run it again shortly with the new ones.
			return &apperr.Error{Code: apperr.Unavailable, Message: "credentials replaced during the sync", RetryAfter: reauthRetry, Err: err}
		}
		return jobs.Permanent(err)
	}
	return err
}

// reauthRetry is how soon a sync that met credentials replaced meanwhile
// runs again.
const reauthRetry = 2 * time.Second
