-- Pending webhook events by issue, so that processing one notification can
-- mark the others about the same issue that it answers (ingest.Webhooks:
-- a burst of notifications costs Jira one read of the issue, not one per
-- notification). Keep internal/store/migrations/postgres/00007_webhook_coalescing.sql
-- equivalent.

-- +goose Up
CREATE INDEX webhook_events_issue_pending_idx ON webhook_events (client_key, issue_id) WHERE processed_at IS NULL;

-- +goose Down
DROP INDEX webhook_events_issue_pending_idx;
