-- The Ingestion Satellite's side of the service: the batches it pushed (so
-- that a batch pushed again is recognized and not applied twice) and its
-- last contact per integration. Keep
-- internal/store/migrations/sqlite/00006_satellite.sql equivalent.

-- +goose Up
CREATE TABLE satellite_batches (
    integration_id text        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    batch_id       text        NOT NULL,              -- chosen by the satellite
    digest         text        NOT NULL,              -- hex SHA-256 of the batch as received: a reused id with other content is refused
    result         text        NOT NULL DEFAULT '{}', -- JSON: what was written, repeated to a duplicate push
    received_at    timestamptz NOT NULL,
    PRIMARY KEY (integration_id, batch_id)
);
CREATE INDEX satellite_batches_received_idx ON satellite_batches (received_at);

-- One row per integration, written by every heartbeat and batch; kept out
-- of integrations so that a heartbeat never races an edit of the settings.
CREATE TABLE satellite_contacts (
    integration_id text        PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    contact_at     timestamptz NOT NULL,
    heartbeat_at   timestamptz,
    heartbeat      text,                              -- JSON: the last heartbeat (version, checks, sync)
    batch_at       timestamptz,
    batches        bigint      NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE satellite_contacts;
DROP TABLE satellite_batches;
