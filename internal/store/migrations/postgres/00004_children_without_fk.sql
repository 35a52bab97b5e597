-- Status transitions, field changes and comments no longer carry a foreign
-- key to jira_issues. The key cost a trigger and an index probe per child
-- row: half of PostgreSQL's CPU during a full sync (about 8 child rows per
-- issue), and the only writers of these tables (internal/store: WriteIssues,
-- DeleteIssues, PurgeExpired, DeleteIntegration) already write and delete
-- children together with their issue in one transaction, issues locked
-- first. Keep internal/store/migrations/sqlite/00004_children_without_fk.sql
-- equivalent.

-- +goose Up
ALTER TABLE jira_transitions DROP CONSTRAINT jira_transitions_integration_id_issue_id_fkey;
ALTER TABLE jira_field_changes DROP CONSTRAINT jira_field_changes_integration_id_issue_id_fkey;
ALTER TABLE jira_comments DROP CONSTRAINT jira_comments_integration_id_issue_id_fkey;

-- +goose Down
DELETE FROM jira_transitions c WHERE NOT EXISTS (SELECT 1 FROM jira_issues i WHERE i.integration_id = c.integration_id AND i.issue_id = c.issue_id);
DELETE FROM jira_field_changes c WHERE NOT EXISTS (SELECT 1 FROM jira_issues i WHERE i.integration_id = c.integration_id AND i.issue_id = c.issue_id);
DELETE FROM jira_comments c WHERE NOT EXISTS (SELECT 1 FROM jira_issues i WHERE i.integration_id = c.integration_id AND i.issue_id = c.issue_id);
ALTER TABLE jira_transitions ADD FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE;
ALTER TABLE jira_field_changes ADD FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE;
ALTER TABLE jira_comments ADD FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE;
