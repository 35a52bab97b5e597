-- hygiene_issues no longer carries a foreign key to jira_issues: see
-- internal/store/migrations/postgres/00008_hygiene_without_fk.sql. SQLite
-- cannot drop a constraint, so the table is rebuilt (nothing refers to it).

-- +goose Up
CREATE TABLE hygiene_issues_new (
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
    PRIMARY KEY (integration_id, issue_id)
);
INSERT INTO hygiene_issues_new SELECT * FROM hygiene_issues;
DROP TABLE hygiene_issues;
ALTER TABLE hygiene_issues_new RENAME TO hygiene_issues;
CREATE INDEX hygiene_issues_created_idx ON hygiene_issues (integration_id, created);
CREATE INDEX hygiene_issues_project_idx ON hygiene_issues (integration_id, project_key, created);

-- +goose Down
CREATE TABLE hygiene_issues_old (
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
INSERT INTO hygiene_issues_old SELECT h.* FROM hygiene_issues h
WHERE EXISTS (SELECT 1 FROM jira_issues i WHERE i.integration_id = h.integration_id AND i.issue_id = h.issue_id);
DROP TABLE hygiene_issues;
ALTER TABLE hygiene_issues_old RENAME TO hygiene_issues;
CREATE INDEX hygiene_issues_created_idx ON hygiene_issues (integration_id, created);
CREATE INDEX hygiene_issues_project_idx ON hygiene_issues (integration_id, project_key, created);
