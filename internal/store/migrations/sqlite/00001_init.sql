-- Installations of the Connect app, one per Jira site (clientKey).
-- Keep internal/store/migrations/postgres/00001_init.sql equivalent.
--
-- Time columns are declared DATETIME: the driver (glebarez/go-sqlite) only
-- parses a TEXT value back into time.Time when the declared type is DATE,
-- DATETIME or TIMESTAMP; any other type name (or a STRICT table, which
-- forbids these names) makes gorm fail to scan them. The store converts
-- every time argument to UTC (sqlite_conn.go), so they are stored as
-- "2025-03-29 16:02:03.456789+00:00" and compare and sort correctly as
-- text. Do not write them with SQL functions (CURRENT_TIMESTAMP,
-- datetime('now')): those produce another text shape.

-- +goose Up
CREATE TABLE installations (
    client_key      TEXT     NOT NULL PRIMARY KEY,
    base_url        TEXT     NOT NULL,
    display_url     TEXT,
    product_type    TEXT,
    description     TEXT,
    installation_id TEXT,     -- the installationId from Atlassian (an ARI)
    oauth_client_id TEXT,
    server_version  TEXT,
    plugins_version TEXT,
    shared_secret   TEXT,     -- sealed by internal/secrets, NULL after uninstall
    state           TEXT     NOT NULL,
    installed_at    DATETIME NOT NULL,
    updated_at      DATETIME NOT NULL,
    uninstalled_at  DATETIME,
    purge_after     DATETIME, -- ingested data is kept until then after uninstall
    CONSTRAINT installations_state_check
        CHECK (state IN ('installed', 'enabled', 'disabled', 'uninstalled')),
    CONSTRAINT installations_uninstalled_secret_check
        CHECK (state <> 'uninstalled' OR shared_secret IS NULL)
);

CREATE INDEX installations_state_idx ON installations (state);

-- +goose Down
DROP TABLE installations;
