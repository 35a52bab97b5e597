-- The issue hygiene report and the Salesforce mapping (internal/hygiene):
-- per-integration report settings, the site's field list (to validate the
-- fields settings name), hygiene_issues (a narrow projection of jira_issues
-- that the report scans), and issue <-> Salesforce case links.
-- Keep internal/store/migrations/sqlite/00005_hygiene.sql equivalent.

-- +goose Up

-- One row per integration that has report settings. Kept apart from
-- integrations.settings on purpose: integrations are saved whole
-- (SaveIntegration writes every column), and a Validate Connection running
-- for seconds would write back the settings it read before a concurrent
-- change, losing it.
CREATE TABLE report_settings (
    integration_id   text        PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    hygiene          text        NOT NULL DEFAULT '{}', -- JSON, owned by internal/hygiene
    slots            text        NOT NULL DEFAULT '[]', -- JSON: what hygiene_issues.s0/n0 … s9/n9 hold (store.HygieneSlot)
    salesforce_field text,                              -- a Jira field id; NULL: no mapping
    updated_at       timestamptz NOT NULL
);

-- The site's field list (GET /rest/api/3/field) as last fetched, so custom
-- hygiene misses can be validated while the site cannot be reached.
CREATE TABLE jira_fields (
    integration_id text        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    field_id       text        NOT NULL,
    name           text        NOT NULL,
    custom         boolean     NOT NULL DEFAULT false,
    schema_type    text        NOT NULL DEFAULT '', -- schema.type: string, number, date, datetime, array, option, user...
    schema_items   text        NOT NULL DEFAULT '', -- schema.items, for arrays
    fetched_at     timestamptz NOT NULL,
    PRIMARY KEY (integration_id, field_id)
);

-- What the hygiene report reads of each issue, one row per jira_issues row,
-- written with it (store.WriteIssues) and derived from it by SQL only
-- (store.refreshHygieneIssues). The report scans this instead of
-- jira_issues: a fraction of the width, the first status change already
-- found, and the values custom misses compare already taken out of the
-- other-fields JSON (s<k> as text: texts, option values, account ids,
-- yyyy-mm-dd dates, lists as U+001F-separated values; n<k>: numbers and
-- instants as epoch seconds). Parsing JSON per issue per report cost more
-- than everything else together. The foreign key deletes a row with its
-- issue wherever issues are deleted.
CREATE TABLE hygiene_issues (
    integration_id      text        NOT NULL,
    issue_id            bigint      NOT NULL,
    key                 text        NOT NULL,
    project_key         text        NOT NULL,
    created             timestamptz NOT NULL,
    updated             timestamptz NOT NULL,
    resolved            timestamptz,
    first_change        timestamptz,          -- the first status change
    assignee_account_id text,
    has_due_date        boolean     NOT NULL,
    description_length  integer,              -- NULL: no description
    has_components      boolean     NOT NULL,
    s0 text, n0 double precision,
    s1 text, n1 double precision,
    s2 text, n2 double precision,
    s3 text, n3 double precision,
    s4 text, n4 double precision,
    s5 text, n5 double precision,
    s6 text, n6 double precision,
    s7 text, n7 double precision,
    s8 text, n8 double precision,
    s9 text, n9 double precision,
    PRIMARY KEY (integration_id, issue_id),
    FOREIGN KEY (integration_id, issue_id) REFERENCES jira_issues (integration_id, issue_id) ON DELETE CASCADE
);
-- A time frame alone scans the created index; with projects, the second.
CREATE INDEX hygiene_issues_created_idx ON hygiene_issues (integration_id, created);
CREATE INDEX hygiene_issues_project_idx ON hygiene_issues (integration_id, project_key, created);

INSERT INTO hygiene_issues (integration_id, issue_id, key, project_key, created, updated, resolved, first_change,
    assignee_account_id, has_due_date, description_length, has_components)
SELECT j.integration_id, j.issue_id, j.key, j.project_key, j.created, j.updated, j.resolved, t.first_change,
    j.assignee_account_id, j.due_date IS NOT NULL, length(j.description), j.components NOT IN ('[]', '', 'null')
FROM jira_issues j
LEFT JOIN (SELECT integration_id, issue_id, min(at) AS first_change FROM jira_transitions GROUP BY integration_id, issue_id) t
    ON t.integration_id = j.integration_id AND t.issue_id = j.issue_id;

-- Salesforce cases named by an issue's salesforce_field. Unlike the other
-- children of jira_issues (00004 dropped their foreign keys for write
-- speed), links keep theirs: they are few (only issues that name a case),
-- and the cascade removes them wherever issues are deleted.
CREATE TABLE salesforce_links (
    integration_id text   NOT NULL,
    issue_id       bigint NOT NULL,
    case_ref       text   NOT NULL, -- an 18-character Case id, or a case number (digits)
    kind           text   NOT NULL,
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
