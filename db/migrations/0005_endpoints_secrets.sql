-- +goose Up
-- Signing secrets, several per endpoint. A stored secret's value is sealed with AES-256-GCM under
-- the master key named by key_id, bound to the row id (db/sealed); the database never holds it in
-- clear. A secret from the environment (PLAUD_WEBHOOK_SECRET) keeps its value out of the database
-- altogether: its row only carries the label, fingerprint and match counts shown in the UI.
CREATE TABLE secrets (
    id              INTEGER PRIMARY KEY,
    endpoint_id     INTEGER NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    label           TEXT    NOT NULL,
    fingerprint     TEXT    NOT NULL,            -- first 8 hex digits of SHA-256(value)
    source          TEXT    NOT NULL DEFAULT 'stored' CHECK (source IN ('stored', 'environment')),
    ciphertext      BLOB    NOT NULL DEFAULT x'', -- nonce || AES-256-GCM(value) || tag
    key_id          TEXT    NOT NULL DEFAULT '',  -- id of the master key that sealed it
    state           TEXT    NOT NULL DEFAULT 'active'
                            CHECK (state IN ('active', 'retiring', 'revoked')),
    retire_at       INTEGER,                     -- a retiring secret verifies until then
    revoked_at      INTEGER,
    created_at      INTEGER NOT NULL,
    created_by      TEXT    NOT NULL DEFAULT '',
    last_matched_at INTEGER,
    match_count     INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX secrets_endpoint ON secrets (endpoint_id, id);
-- The CLI names secrets by label: unique among the secrets still in use on an endpoint.
CREATE UNIQUE INDEX secrets_label ON secrets (endpoint_id, label) WHERE state != 'revoked';

-- Which secret verified a delivery (no foreign key: the label is kept as text beside it), whether
-- that secret was already superseded then, and who promoted a rejected delivery by re-verifying it.
ALTER TABLE deliveries ADD COLUMN secret_id INTEGER;
ALTER TABLE deliveries ADD COLUMN secret_old INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN promoted_by TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN promoted_at INTEGER;

-- Endpoint health: counts per endpoint and time window, covering the verdict.
CREATE INDEX deliveries_endpoint_received ON deliveries (endpoint_id, received_at, verdict);
-- The clock-skew banner counts recent skew rejections on every page.
CREATE INDEX deliveries_skew ON deliveries (received_at) WHERE reason = 'timestamp_out_of_tolerance';
-- Event types seen per endpoint.
CREATE INDEX events_endpoint_type ON events (endpoint_id, event_type);

-- +goose Down
DROP INDEX events_endpoint_type;
DROP INDEX deliveries_skew;
DROP INDEX deliveries_endpoint_received;
ALTER TABLE deliveries DROP COLUMN promoted_at;
ALTER TABLE deliveries DROP COLUMN promoted_by;
ALTER TABLE deliveries DROP COLUMN secret_old;
ALTER TABLE deliveries DROP COLUMN secret_id;
DROP TABLE secrets;
