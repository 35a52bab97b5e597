-- The Ingestion Satellite's side of the service: the batches it pushed (so
-- that a batch pushed again is recognized and not applied twice) and its
-- last contact per integration. Time columns are DATETIME for the reason
-- given in 00001_init.sql. Keep
-- internal/store/migrations/postgres/00006_satellite.sql equivalent.

-- +goose Up
CREATE TABLE satellite_batches (
    integration_id TEXT        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    batch_id       TEXT        NOT NULL,              -- chosen by the satellite
    digest         TEXT        NOT NULL,              -- hex SHA-256 of the batch as received: a reused id with other content is refused
    result         TEXT        NOT NULL DEFAULT '{}', -- JSON: what was written, repeated to a duplicate push
    received_at    DATETIME    NOT NULL,
    PRIMARY KEY (integration_id, batch_id)
);
CREATE INDEX satellite_batches_received_idx ON satellite_batches (received_at);

-- One row per integration, written by every heartbeat and batch; kept out
-- of integrations so that a heartbeat never races an edit of the settings.
CREATE TABLE satellite_contacts (
    integration_id TEXT        PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    contact_at     DATETIME    NOT NULL,
    heartbeat_at   DATETIME,
    heartbeat      TEXT,                              -- JSON: the last heartbeat (version, checks, sync)
    batch_at       DATETIME,
    batches        INTEGER     NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE satellite_contacts;
DROP TABLE satellite_batches;
