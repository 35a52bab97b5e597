-- Status transitions, field changes and comments no longer carry a foreign
-- key to jira_issues: see internal/store/migrations/postgres/00004_children_without_fk.sql.
-- SQLite cannot drop a constraint, so each table is rebuilt (nothing refers
-- to these tables, so this is safe with foreign_keys on).

-- +goose Up
CREATE TABLE jira_transitions_new (
    integration_id    TEXT        NOT NULL,
    issue_id          INTEGER      NOT NULL,
    history_id        TEXT        NOT NULL,
    item              INTEGER     NOT NULL,
    from_status       TEXT,
    to_status         TEXT,
    from_status_id    TEXT,
    to_status_id      TEXT,
    author_account_id TEXT,
    at                DATETIME NOT NULL,
    PRIMARY KEY (integration_id, issue_id, history_id, item)
);
INSERT INTO jira_transitions_new SELECT * FROM jira_transitions;
DROP TABLE jira_transitions;
ALTER TABLE jira_transitions_new RENAME TO jira_transitions;

CREATE TABLE jira_field_changes_new (
    integration_id    TEXT        NOT NULL,
    issue_id          INTEGER      NOT NULL,
    history_id        TEXT        NOT NULL,
    item              INTEGER     NOT NULL,
    field             TEXT        NOT NULL,
    field_id          TEXT,
    from_value        TEXT,        -- NULL when the field is excluded
    from_string       TEXT,
    to_value          TEXT,
    to_string         TEXT,
    author_account_id TEXT,
    at                DATETIME NOT NULL,
    PRIMARY KEY (integration_id, issue_id, history_id, item)
);
INSERT INTO jira_field_changes_new SELECT * FROM jira_field_changes;
DROP TABLE jira_field_changes;
ALTER TABLE jira_field_changes_new RENAME TO jira_field_changes;

CREATE TABLE jira_comments_new (
    integration_id    TEXT        NOT NULL,
    issue_id          INTEGER      NOT NULL,
    comment_id        TEXT        NOT NULL,
    author_account_id TEXT,
    body              TEXT,        -- plain TEXT; NULL when comments are excluded
    created           DATETIME NOT NULL,
    updated           DATETIME NOT NULL,
    PRIMARY KEY (integration_id, issue_id, comment_id)
);
INSERT INTO jira_comments_new SELECT * FROM jira_comments;
DROP TABLE jira_comments;
ALTER TABLE jira_comments_new RENAME TO jira_comments;

-- +goose Down
CREATE TABLE jira_transitions_old (
    integration_id    TEXT        NOT NULL,
    issue_id          INTEGER      NOT NULL,
    history_id        TEXT        NOT NULL,
    item              INTEGER     NOT NULL,
    from_status       TEXT,
    to_status         TEXT,
    from_status_id    TEXT,
    to_status_id      TEXT,
    author_account_id TEXT,
    at                DATETIME NOT NULL,
    PRIMARY KEY (integration_id, issue_id, history_id, item),
    FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE
);
INSERT INTO jira_transitions_old SELECT c.* FROM jira_transitions c JOIN jira_issues i ON i.integration_id = c.integration_id AND i.issue_id = c.issue_id;
DROP TABLE jira_transitions;
ALTER TABLE jira_transitions_old RENAME TO jira_transitions;

CREATE TABLE jira_field_changes_old (
    integration_id    TEXT        NOT NULL,
    issue_id          INTEGER      NOT NULL,
    history_id        TEXT        NOT NULL,
    item              INTEGER     NOT NULL,
    field             TEXT        NOT NULL,
    field_id          TEXT,
    from_value        TEXT,        -- NULL when the field is excluded
    from_string       TEXT,
    to_value          TEXT,
    to_string         TEXT,
    author_account_id TEXT,
    at                DATETIME NOT NULL,
    PRIMARY KEY (integration_id, issue_id, history_id, item),
    FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE
);
INSERT INTO jira_field_changes_old SELECT c.* FROM jira_field_changes c JOIN jira_issues i ON i.integration_id = c.integration_id AND i.issue_id = c.issue_id;
DROP TABLE jira_field_changes;
ALTER TABLE jira_field_changes_old RENAME TO jira_field_changes;

CREATE TABLE jira_comments_old (
    integration_id    TEXT        NOT NULL,
    issue_id          INTEGER      NOT NULL,
    comment_id        TEXT        NOT NULL,
    author_account_id TEXT,
    body              TEXT,        -- plain TEXT; NULL when comments are excluded
    created           DATETIME NOT NULL,
    updated           DATETIME NOT NULL,
    PRIMARY KEY (integration_id, issue_id, comment_id),
    FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE
);
INSERT INTO jira_comments_old SELECT c.* FROM jira_comments c JOIN jira_issues i ON i.integration_id = c.integration_id AND i.issue_id = c.issue_id;
DROP TABLE jira_comments;
ALTER TABLE jira_comments_old RENAME TO jira_comments;
