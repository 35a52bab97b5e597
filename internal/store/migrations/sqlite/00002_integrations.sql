-- SEI tenants, their API keys and integrations, and the Connect keys that
-- link a Jira installation to an integration.
-- Keep internal/store/migrations/postgres/00002_integrations.sql equivalent.
-- Time columns are DATETIME for the reason given in 00001_init.sql.

-- +goose Up
CREATE TABLE tenants (
    id         TEXT        PRIMARY KEY,
    name       TEXT        NOT NULL,
    created_at DATETIME NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT        PRIMARY KEY,
    tenant_id    TEXT        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix       TEXT        NOT NULL UNIQUE, -- shown, to tell keys apart
    hash         TEXT        NOT NULL,        -- hex SHA-256 of the whole key
    created_at   DATETIME NOT NULL,
    revoked_at   DATETIME,
    last_used_at DATETIME
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

CREATE TABLE integrations (
    id              TEXT        PRIMARY KEY,  -- UUIDv7: time-ordered, so it pages
    tenant_id       TEXT        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT        NOT NULL,
    description     TEXT        NOT NULL DEFAULT '',
    tags            TEXT        NOT NULL DEFAULT '[]', -- JSON array
    type            TEXT        NOT NULL,
    timezone        TEXT        NOT NULL,
    excluded_fields TEXT        NOT NULL DEFAULT '[]', -- JSON array
    settings        TEXT        NOT NULL DEFAULT '{}', -- JSON: type-specific, non-secret
    credentials     TEXT,                     -- sealed JSON, for API token / Data Center types
    status          TEXT        NOT NULL,
    status_reason   TEXT        NOT NULL DEFAULT '',
    client_key      TEXT        UNIQUE REFERENCES installations (client_key),
    linked_at       DATETIME,
    last_validation TEXT,                     -- JSON: the checks of the last validation
    validated_at    DATETIME,
    created_at      DATETIME NOT NULL,
    updated_at      DATETIME NOT NULL,
    CONSTRAINT integrations_status_check
        CHECK (status IN ('pending', 'connected', 'failing', 'uninstalled')),
    CONSTRAINT integrations_type_check
        CHECK (type IN ('jira_connect_app', 'jira_cloud_api_token', 'jira_datacenter')),
    CONSTRAINT integrations_tenant_name_key UNIQUE (tenant_id, name)
);

CREATE TABLE connect_keys (
    hash        TEXT        PRIMARY KEY,      -- hex SHA-256 of the normalized key
    client_key  TEXT        NOT NULL REFERENCES installations (client_key) ON DELETE CASCADE,
    created_at  DATETIME NOT NULL,
    expires_at  DATETIME NOT NULL,
    used_at     DATETIME,
    revoked_at  DATETIME,
    integration_id TEXT                       -- who redeemed it
);
CREATE INDEX connect_keys_client_idx ON connect_keys (client_key);

-- +goose Down
DROP TABLE connect_keys;
DROP TABLE integrations;
DROP TABLE api_keys;
DROP TABLE tenants;
