-- SEI tenants, their API keys and integrations, and the Connect keys that
-- link a Jira installation to an integration.
-- Keep internal/store/migrations/sqlite/00002_integrations.sql equivalent.

-- +goose Up
CREATE TABLE tenants (
    id         text        PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           text        PRIMARY KEY,
    tenant_id    text        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix       text        NOT NULL UNIQUE, -- shown, to tell keys apart
    hash         text        NOT NULL,        -- hex SHA-256 of the whole key
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

CREATE TABLE integrations (
    id              text        PRIMARY KEY,  -- UUIDv7: time-ordered, so it pages
    tenant_id       text        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    tags            text        NOT NULL DEFAULT '[]', -- JSON array
    type            text        NOT NULL,
    timezone        text        NOT NULL,
    excluded_fields text        NOT NULL DEFAULT '[]', -- JSON array
    settings        text        NOT NULL DEFAULT '{}', -- JSON: type-specific, non-secret
    credentials     text,                     -- sealed JSON, for API token / Data Center types
    status          text        NOT NULL,
    status_reason   text        NOT NULL DEFAULT '',
    client_key      text        UNIQUE REFERENCES installations (client_key),
    linked_at       timestamptz,
    last_validation text,                     -- JSON: the checks of the last validation
    validated_at    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT integrations_status_check
        CHECK (status IN ('pending', 'connected', 'failing', 'uninstalled')),
    CONSTRAINT integrations_type_check
        CHECK (type IN ('jira_connect_app', 'jira_cloud_api_token', 'jira_datacenter')),
    CONSTRAINT integrations_tenant_name_key UNIQUE (tenant_id, name)
);

CREATE TABLE connect_keys (
    hash        text        PRIMARY KEY,      -- hex SHA-256 of the normalized key
    client_key  text        NOT NULL REFERENCES installations (client_key) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    integration_id text                       -- who redeemed it
);
CREATE INDEX connect_keys_client_idx ON connect_keys (client_key);

-- +goose Down
DROP TABLE connect_keys;
DROP TABLE integrations;
DROP TABLE api_keys;
DROP TABLE tenants;
