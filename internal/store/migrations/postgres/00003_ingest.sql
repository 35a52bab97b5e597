-- Ingested Jira data, per integration: issues, their status transitions and
-- other field changes, comments, users; sync runs and checkpoints; webhook
-- notifications. Keep internal/store/migrations/sqlite/00003_ingest.sql
-- equivalent. Excluded (sensitive) fields never reach these tables: the
-- ingester drops them before writing (internal/ingest).

-- +goose Up
CREATE TABLE jira_issues (
    integration_id      text        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    issue_id            bigint      NOT NULL,
    key                 text        NOT NULL,
    project_key         text        NOT NULL,
    project_id          text        NOT NULL DEFAULT '',
    issue_type          text        NOT NULL DEFAULT '',
    status              text        NOT NULL DEFAULT '',
    status_category     text        NOT NULL DEFAULT '',
    priority            text,
    assignee_account_id text,
    reporter_account_id text,
    creator_account_id  text,
    summary             text,        -- NULL when excluded
    description         text,        -- plain text of the ADF; NULL when excluded or empty
    created             timestamptz NOT NULL,
    updated             timestamptz NOT NULL,
    resolved            timestamptz,
    due_date            text,        -- yyyy-mm-dd as Jira gives it (no offset)
    due_at              timestamptz, -- due_date's midnight in the integration's time zone
    components          text        NOT NULL DEFAULT '[]',
    labels              text        NOT NULL DEFAULT '[]',
    fix_versions        text        NOT NULL DEFAULT '[]',
    sprint              text,
    parent_key          text,
    story_points        double precision,
    fields              text        NOT NULL DEFAULT '{}', -- other non-excluded fields, JSON
    synced_at           timestamptz NOT NULL,
    PRIMARY KEY (integration_id, issue_id)
);
CREATE UNIQUE INDEX jira_issues_key_idx ON jira_issues (integration_id, key);
CREATE INDEX jira_issues_updated_idx ON jira_issues (integration_id, updated);
CREATE INDEX jira_issues_project_idx ON jira_issues (integration_id, project_key, issue_id);

CREATE TABLE jira_transitions (
    integration_id    text        NOT NULL,
    issue_id          bigint      NOT NULL,
    history_id        text        NOT NULL,
    item              integer     NOT NULL,
    from_status       text,
    to_status         text,
    from_status_id    text,
    to_status_id      text,
    author_account_id text,
    at                timestamptz NOT NULL,
    PRIMARY KEY (integration_id, issue_id, history_id, item),
    FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE
);

CREATE TABLE jira_field_changes (
    integration_id    text        NOT NULL,
    issue_id          bigint      NOT NULL,
    history_id        text        NOT NULL,
    item              integer     NOT NULL,
    field             text        NOT NULL,
    field_id          text,
    from_value        text,        -- NULL when the field is excluded
    from_string       text,
    to_value          text,
    to_string         text,
    author_account_id text,
    at                timestamptz NOT NULL,
    PRIMARY KEY (integration_id, issue_id, history_id, item),
    FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE
);

CREATE TABLE jira_comments (
    integration_id    text        NOT NULL,
    issue_id          bigint      NOT NULL,
    comment_id        text        NOT NULL,
    author_account_id text,
    body              text,        -- plain text; NULL when comments are excluded
    created           timestamptz NOT NULL,
    updated           timestamptz NOT NULL,
    PRIMARY KEY (integration_id, issue_id, comment_id),
    FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE
);

CREATE TABLE jira_users (
    integration_id text        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    account_id     text        NOT NULL,
    display_name   text        NOT NULL DEFAULT '',
    email          text,        -- NULL when Jira shows none, never ''
    active         boolean     NOT NULL DEFAULT true,
    time_zone      text,
    account_type   text,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (integration_id, account_id),
    CONSTRAINT jira_users_email_check CHECK (email IS NULL OR email <> '')
);

CREATE TABLE sync_runs (
    id             text        PRIMARY KEY,
    integration_id text        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    mode           text        NOT NULL,
    state          text        NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    requests       integer     NOT NULL DEFAULT 0,
    pages          integer     NOT NULL DEFAULT 0,
    issues         integer     NOT NULL DEFAULT 0,
    transitions    integer     NOT NULL DEFAULT 0,
    comments       integer     NOT NULL DEFAULT 0,
    users          integer     NOT NULL DEFAULT 0,
    deleted        integer     NOT NULL DEFAULT 0,
    error          text,
    CONSTRAINT sync_runs_state_check CHECK (state IN ('running', 'succeeded', 'failed'))
);
CREATE INDEX sync_runs_integration_idx ON sync_runs (integration_id, started_at);

-- One row per sync partition: where its next page starts. Written in the
-- same transaction as the page it follows, so a crash resumes exactly.
CREATE TABLE sync_checkpoints (
    integration_id text        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    partition      text        NOT NULL,
    position       text        NOT NULL,   -- JSON, owned by internal/ingest
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (integration_id, partition)
);

-- Webhook notifications, kept only as "something changed": the ingester
-- re-reads the issue from Jira, so duplicates and reorderings converge and
-- no payload (with its possibly sensitive fields) is ever stored.
CREATE TABLE webhook_events (
    id             bigserial   PRIMARY KEY,
    client_key     text        NOT NULL,
    event          text        NOT NULL,
    issue_id       bigint,
    issue_key      text,
    jira_timestamp bigint,
    received_at    timestamptz NOT NULL,
    processed_at   timestamptz,
    attempts       integer     NOT NULL DEFAULT 0,
    error          text
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
