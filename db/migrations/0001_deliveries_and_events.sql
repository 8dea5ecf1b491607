-- +goose Up
-- Times are INTEGER Unix microseconds, UTC. Bodies are BLOBs in their own table so that list
-- queries over deliveries never page through payload bytes.

CREATE TABLE endpoints (
    id             INTEGER PRIMARY KEY,
    slug           TEXT    NOT NULL UNIQUE,
    name           TEXT    NOT NULL,
    expected_types TEXT    NOT NULL DEFAULT '',
    note           TEXT    NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL
);

INSERT INTO endpoints (slug, name, created_at)
VALUES ('default', 'Default', CAST(unixepoch('subsec') * 1000000 AS INTEGER));

CREATE TABLE events (
    id                INTEGER PRIMARY KEY,
    endpoint_id       INTEGER NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    dedupe_key        TEXT    NOT NULL,
    event_type        TEXT    NOT NULL DEFAULT '',
    envelope_id       TEXT    NOT NULL DEFAULT '',
    file_id           TEXT    NOT NULL DEFAULT '',
    transcription_id  TEXT    NOT NULL DEFAULT '',
    device_id         TEXT    NOT NULL DEFAULT '',
    is_json           INTEGER NOT NULL DEFAULT 0,
    size              INTEGER NOT NULL,
    summary           TEXT    NOT NULL DEFAULT '',
    first_received_at INTEGER NOT NULL,
    last_received_at  INTEGER NOT NULL,
    delivery_count    INTEGER NOT NULL DEFAULT 1,
    body_delivery_id  INTEGER NOT NULL,
    UNIQUE (endpoint_id, dedupe_key)
);

CREATE INDEX events_type ON events (event_type, id);
CREATE INDEX events_endpoint ON events (endpoint_id, id);

CREATE TABLE deliveries (
    id             INTEGER PRIMARY KEY,
    endpoint_id    INTEGER NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    received_at    INTEGER NOT NULL,
    remote_addr    TEXT    NOT NULL DEFAULT '',
    method         TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    headers        TEXT    NOT NULL,           -- JSON object: name -> list of values, as received
    body_sha256    TEXT    NOT NULL,           -- of the whole body, even when only a prefix is kept
    size           INTEGER NOT NULL,           -- bytes received (after any Content-Encoding)
    body_truncated INTEGER NOT NULL DEFAULT 0, -- 1 when only a prefix of a rejected body is kept
    content_type   TEXT    NOT NULL DEFAULT '',
    content_encoding TEXT  NOT NULL DEFAULT '',
    verdict        TEXT    NOT NULL CHECK (verdict IN ('verified', 'rejected')),
    reason         TEXT    NOT NULL DEFAULT '',
    scheme         TEXT    NOT NULL DEFAULT '',
    secret_label   TEXT    NOT NULL DEFAULT '',
    sender_timestamp TEXT  NOT NULL DEFAULT '',
    skew_ms        INTEGER,
    event_id       INTEGER REFERENCES events (id) ON DELETE CASCADE,
    duplicate      INTEGER NOT NULL DEFAULT 0,
    ack_micros     INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX deliveries_verdict ON deliveries (verdict, id);
CREATE INDEX deliveries_event ON deliveries (event_id, id);

CREATE TABLE delivery_bodies (
    delivery_id INTEGER PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    body        BLOB    NOT NULL
);

-- +goose Down
DROP TABLE delivery_bodies;
DROP TABLE deliveries;
DROP TABLE events;
DROP TABLE endpoints;
