-- Ingested Jira data, per integration: issues, their status transitions and
-- other field changes, comments, users; sync runs and checkpoints; webhook
-- notifications. Keep internal/store/migrations/postgres/00003_ingest.sql
-- equivalent. Excluded (sensitive) fields never reach these tables: the
-- Time columns are DATETIME for the reason given in 00001_init.sql.
-- ingester drops them before writing (internal/ingest).

-- +goose Up
CREATE TABLE jira_issues (
    integration_id      TEXT        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    issue_id            INTEGER      NOT NULL,
    key                 TEXT        NOT NULL,
    project_key         TEXT        NOT NULL,
    project_id          TEXT        NOT NULL DEFAULT '',
    issue_type          TEXT        NOT NULL DEFAULT '',
    status              TEXT        NOT NULL DEFAULT '',
    status_category     TEXT        NOT NULL DEFAULT '',
    priority            TEXT,
    assignee_account_id TEXT,
    reporter_account_id TEXT,
    creator_account_id  TEXT,
    summary             TEXT,        -- NULL when excluded
    description         TEXT,        -- plain TEXT of the ADF; NULL when excluded or empty
    created             DATETIME NOT NULL,
    updated             DATETIME NOT NULL,
    resolved            DATETIME,
    due_date            TEXT,        -- yyyy-mm-dd as Jira gives it (no offset)
    due_at              DATETIME, -- due_date's midnight in the integration's time zone
    components          TEXT        NOT NULL DEFAULT '[]',
    labels              TEXT        NOT NULL DEFAULT '[]',
    fix_versions        TEXT        NOT NULL DEFAULT '[]',
    sprint              TEXT,
    parent_key          TEXT,
    story_points        REAL,
    fields              TEXT        NOT NULL DEFAULT '{}', -- other non-excluded fields, JSON
    synced_at           DATETIME NOT NULL,
    PRIMARY KEY (integration_id, issue_id)
);
CREATE UNIQUE INDEX jira_issues_key_idx ON jira_issues (integration_id, key);
CREATE INDEX jira_issues_updated_idx ON jira_issues (integration_id, updated);
CREATE INDEX jira_issues_project_idx ON jira_issues (integration_id, project_key, issue_id);

CREATE TABLE jira_transitions (
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

CREATE TABLE jira_field_changes (
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

CREATE TABLE jira_comments (
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

CREATE TABLE jira_users (
    integration_id TEXT        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    account_id     TEXT        NOT NULL,
    display_name   TEXT        NOT NULL DEFAULT '',
    email          TEXT,        -- NULL when Jira shows none, never ''
    active         BOOLEAN     NOT NULL DEFAULT true,
    time_zone      TEXT,
    account_type   TEXT,
    updated_at     DATETIME NOT NULL,
    PRIMARY KEY (integration_id, account_id),
    CONSTRAINT jira_users_email_check CHECK (email IS NULL OR email <> '')
);

CREATE TABLE sync_runs (
    id             TEXT        PRIMARY KEY,
    integration_id TEXT        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    mode           TEXT        NOT NULL,
    state          TEXT        NOT NULL,
    started_at     DATETIME NOT NULL,
    finished_at    DATETIME,
    requests       INTEGER     NOT NULL DEFAULT 0,
    pages          INTEGER     NOT NULL DEFAULT 0,
    issues         INTEGER     NOT NULL DEFAULT 0,
    transitions    INTEGER     NOT NULL DEFAULT 0,
    comments       INTEGER     NOT NULL DEFAULT 0,
    users          INTEGER     NOT NULL DEFAULT 0,
    deleted        INTEGER     NOT NULL DEFAULT 0,
    error          TEXT,
    CONSTRAINT sync_runs_state_check CHECK (state IN ('running', 'succeeded', 'failed'))
);
CREATE INDEX sync_runs_integration_idx ON sync_runs (integration_id, started_at);

-- One row per sync partition: where its next page starts. Written in the
-- same transaction as the page it follows, so a crash resumes exactly.
CREATE TABLE sync_checkpoints (
    integration_id TEXT        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    partition      TEXT        NOT NULL,
    position       TEXT        NOT NULL,   -- JSON, owned by internal/ingest
    updated_at     DATETIME NOT NULL,
    PRIMARY KEY (integration_id, partition)
);

-- Webhook notifications, kept only as "something changed": the ingester
-- re-reads the issue from Jira, so duplicates and reorderings converge and
-- no payload (with its possibly sensitive fields) is ever stored.
CREATE TABLE webhook_events (
    id             INTEGER     PRIMARY KEY AUTOINCREMENT,
    client_key     TEXT        NOT NULL,
    event          TEXT        NOT NULL,
    issue_id       INTEGER,
    issue_key      TEXT,
    jira_timestamp INTEGER,
    received_at    DATETIME NOT NULL,
    processed_at   DATETIME,
    attempts       INTEGER     NOT NULL DEFAULT 0,
    error          TEXT
);
CREATE INDEX webhook_events_pending_idx ON webhook_events (processed_at, id);

-- +goose Down
DROP TABLE webhook_events;
DROP TABLE sync_checkpoints;
DROP TABLE sync_runs;
DROP TABLE jira_users;
DROP TABLE jira_comments;
DROP TABLE jira_field_changes;
DROP TABLE jira_transitions;
DROP TABLE jira_issues;
