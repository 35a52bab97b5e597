-- Installations of the Connect app, one per Jira site (clientKey).
-- Keep internal/store/migrations/sqlite/00001_init.sql equivalent.

-- +goose Up
CREATE TABLE installations (
    client_key      text        PRIMARY KEY,
    base_url        text        NOT NULL,
    display_url     text,
    product_type    text,
    description     text,
    installation_id text,        -- the installationId from Atlassian (an ARI)
    oauth_client_id text,
    server_version  text,
    plugins_version text,
    shared_secret   text,        -- sealed by internal/secrets, NULL after uninstall
    state           text        NOT NULL,
    installed_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    uninstalled_at  timestamptz,
    purge_after     timestamptz, -- ingested data is kept until then after uninstall
    CONSTRAINT installations_state_check
        CHECK (state IN ('installed', 'enabled', 'disabled', 'uninstalled')),
    CONSTRAINT installations_uninstalled_secret_check
        CHECK (state <> 'uninstalled' OR shared_secret IS NULL)
);

CREATE INDEX installations_state_idx ON installations (state);

-- +goose Down
DROP TABLE installations;
