-- hygiene_issues no longer carries a foreign key to jira_issues, for the
-- reason 00004 gave for the issue children: the key cost a trigger and an
-- index probe per written issue (one hygiene row per issue, written in the
-- same transaction as the issue), and the code that deletes issues
-- (internal/store: DeleteIssues, PurgeExpired, DeleteIntegration) deletes
-- their hygiene rows with them. Keep
-- internal/store/migrations/sqlite/00008_hygiene_without_fk.sql equivalent.

-- +goose Up
ALTER TABLE hygiene_issues DROP CONSTRAINT hygiene_issues_integration_id_issue_id_fkey;

-- +goose Down
DELETE FROM hygiene_issues h WHERE NOT EXISTS (SELECT 1 FROM jira_issues i WHERE i.integration_id = h.integration_id AND i.issue_id = h.issue_id);
ALTER TABLE hygiene_issues ADD FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE;
