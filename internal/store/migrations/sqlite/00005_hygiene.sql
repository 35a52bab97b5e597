-- The issue hygiene report and the Salesforce mapping: see
-- internal/store/migrations/postgres/00005_hygiene.sql, which this keeps
-- equivalent. Time columns are DATETIME for the reason given in
-- 00001_init.sql. A table rebuild of jira_issues in a later SQLite
-- migration must keep the rows of hygiene_issues and salesforce_links:
-- with foreign_keys on, DROP TABLE jira_issues cascades into them.

-- +goose Up
CREATE TABLE report_settings (
    integration_id   TEXT     PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    hygiene          TEXT     NOT NULL DEFAULT '{}',
    slots            TEXT     NOT NULL DEFAULT '[]',
    salesforce_field TEXT,
    updated_at       DATETIME NOT NULL
);

CREATE TABLE jira_fields (
    integration_id TEXT     NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    field_id       TEXT     NOT NULL,
    name           TEXT     NOT NULL,
    custom         BOOLEAN  NOT NULL DEFAULT false,
    schema_type    TEXT     NOT NULL DEFAULT '',
    schema_items   TEXT     NOT NULL DEFAULT '',
    fetched_at     DATETIME NOT NULL,
    PRIMARY KEY (integration_id, field_id)
);

CREATE TABLE hygiene_issues (
    integration_id      TEXT     NOT NULL,
    issue_id            INTEGER  NOT NULL,
    key                 TEXT     NOT NULL,
    project_key         TEXT     NOT NULL,
    created             DATETIME NOT NULL,
    updated             DATETIME NOT NULL,
    resolved            DATETIME,
    first_change        DATETIME,
    assignee_account_id TEXT,
    has_due_date        BOOLEAN  NOT NULL,
    description_length  INTEGER,
    has_components      BOOLEAN  NOT NULL,
    s0 TEXT, n0 REAL,
    s1 TEXT, n1 REAL,
    s2 TEXT, n2 REAL,
    s3 TEXT, n3 REAL,
    s4 TEXT, n4 REAL,
    s5 TEXT, n5 REAL,
    s6 TEXT, n6 REAL,
    s7 TEXT, n7 REAL,
    s8 TEXT, n8 REAL,
    s9 TEXT, n9 REAL,
    PRIMARY KEY (integration_id, issue_id),
    FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE
);
CREATE INDEX hygiene_issues_created_idx ON hygiene_issues (integration_id, created);
CREATE INDEX hygiene_issues_project_idx ON hygiene_issues (integration_id, project_key, created);

INSERT INTO hygiene_issues (integration_id, issue_id, key, project_key, created, updated, resolved, first_change,
    assignee_account_id, has_due_date, description_length, has_components)
SELECT j.integration_id, j.issue_id, j.key, j.project_key, j.created, j.updated, j.resolved, t.first_change,
    j.assignee_account_id, j.due_date IS NOT NULL, length(j.description), j.components NOT IN ('[]', '', 'null')
FROM jira_issues j
LEFT JOIN (SELECT integration_id, issue_id, min(at) AS first_change FROM jira_transitions GROUP BY integration_id, issue_id) t
    ON t.integration_id = j.integration_id AND t.issue_id = j.issue_id;

CREATE TABLE salesforce_links (
    integration_id TEXT    NOT NULL,
    issue_id       INTEGER NOT NULL,
    case_ref       TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    PRIMARY KEY (integration_id, issue_id, case_ref),
    FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE,
    CONSTRAINT salesforce_links_kind_check CHECK (kind IN ('case_id', 'case_number'))
);
CREATE INDEX salesforce_links_case_idx ON salesforce_links (integration_id, case_ref);

-- +goose Down
DROP TABLE salesforce_links;
DROP TABLE hygiene_issues;
DROP TABLE jira_fields;
DROP TABLE report_settings;
