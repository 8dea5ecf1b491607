-- +goose Up
-- The event explorer: an index behind every filter of the event and delivery lists, full-text
-- search over payload text, the event type on each delivery (so the delivery list filters by
-- type through an index), and the fields seen per event type (schema drift). Triggers keep all
-- of it current inside the transaction that stores a delivery, so a committed event is
-- searchable and classified the moment its sender is answered. Every trigger statement is
-- written so that it cannot fail on any body: a body that SQLite does not read as JSON is
-- indexed as plain text and gets no shape.

-- Events. Lists walk ids newest first; these serve each filter in id order.
-- events_received finds the id bounds of a time range.
CREATE INDEX events_received ON events (first_received_at);
CREATE INDEX events_duplicated ON events (id) WHERE delivery_count > 1;
CREATE INDEX events_file ON events (file_id) WHERE file_id != '';
CREATE INDEX events_transcription ON events (transcription_id) WHERE transcription_id != '';
CREATE INDEX events_device ON events (device_id) WHERE device_id != '';
CREATE INDEX events_envelope ON events (envelope_id) WHERE envelope_id != '';

-- Deliveries. event_type copies the type of the delivery's event ('' when rejected), set by a
-- trigger when the ingest writer links the delivery to its event.
ALTER TABLE deliveries ADD COLUMN event_type TEXT NOT NULL DEFAULT '';
UPDATE deliveries SET event_type = coalesce(
    (SELECT v.event_type FROM events v WHERE v.id = deliveries.event_id), '')
WHERE event_id IS NOT NULL;

CREATE INDEX deliveries_type ON deliveries (event_type, id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
CREATE INDEX deliveries_duplicate ON deliveries (id) WHERE duplicate = 1;
-- Finds the id bounds of a time range.
CREATE INDEX deliveries_received ON deliveries (received_at);

-- +goose StatementBegin
CREATE TRIGGER deliveries_event_type AFTER UPDATE OF event_id ON deliveries
WHEN NEW.event_id IS NOT NULL
BEGIN
    UPDATE deliveries
    SET event_type = coalesce((SELECT v.event_type FROM events v WHERE v.id = NEW.event_id), '')
    WHERE id = NEW.id;
END;
-- +goose StatementEnd

-- Full-text search over the text of each event's body: the string and number values of a JSON
-- body, or the body itself otherwise, at most the first 64 KiB of it (transcripts have their
-- own search). Contentless: the text is not stored twice, only the index.
CREATE VIRTUAL TABLE events_fts USING fts5 (
    text,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Schema drift. A shape is the sorted set of field paths of one JSON body ("$.data.file_id";
-- array elements are read from the first element only and written "[]"); each event points to
-- its shape, and the per-type counts say how usual each field is.
CREATE TABLE schema_shapes (
    id             INTEGER PRIMARY KEY,
    event_type     TEXT    NOT NULL,
    paths          TEXT    NOT NULL,           -- JSON array of paths, sorted
    events         INTEGER NOT NULL DEFAULT 0, -- events with exactly this shape
    first_event_id INTEGER NOT NULL,
    last_event_id  INTEGER NOT NULL,           -- lets the insert trigger find the row it touched
    UNIQUE (event_type, paths)
);

CREATE INDEX schema_shapes_last ON schema_shapes (last_event_id);

CREATE TABLE schema_types (
    event_type TEXT    PRIMARY KEY,
    events     INTEGER NOT NULL DEFAULT 0      -- events of this type that have a shape
) WITHOUT ROWID;

CREATE TABLE schema_paths (
    event_type     TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    events         INTEGER NOT NULL DEFAULT 0, -- events of this type that have the field
    first_event_id INTEGER NOT NULL,           -- the first event that brought it
    PRIMARY KEY (event_type, path)
) WITHOUT ROWID;

CREATE TABLE event_shapes (
    event_id INTEGER PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    shape_id INTEGER NOT NULL REFERENCES schema_shapes (id)
);

-- NOTE: the shape expression below appears twice, in the trigger and in the backfill at the end;
-- change both together. Bodies over 4 MiB get no shape (walking them would hold the single
-- writer too long), and a shape keeps at most 256 paths (a map keyed by ids would otherwise
-- make every event its own shape).
-- +goose StatementBegin
CREATE TRIGGER events_explorer_insert AFTER INSERT ON events
BEGIN
    INSERT INTO schema_shapes (event_type, paths, events, first_event_id, last_event_id)
    SELECT NEW.event_type, s.paths, 1, NEW.id, NEW.id
    FROM (
        SELECT json_group_array(p ORDER BY p) AS paths
        FROM (
            SELECT DISTINCT replace(t.fullkey, '[0]', '[]') AS p
            FROM delivery_bodies b, json_tree(CAST(b.body AS TEXT)) t
            WHERE b.delivery_id = NEW.body_delivery_id
                AND length(b.body) <= 4194304
                AND json_valid(CAST(b.body AS TEXT))
                AND t.fullkey != '$'
                AND t.fullkey NOT GLOB '*[[][1-9]*'
            ORDER BY p
            LIMIT 256
        )
    ) s
    WHERE s.paths != '[]'
    ON CONFLICT (event_type, paths) DO UPDATE SET
        events = events + 1,
        last_event_id = excluded.last_event_id;

    INSERT OR REPLACE INTO event_shapes (event_id, shape_id)
    SELECT NEW.id, id FROM schema_shapes WHERE last_event_id = NEW.id
    ORDER BY id DESC LIMIT 1;

    INSERT INTO schema_types (event_type, events)
    SELECT NEW.event_type, 1 FROM event_shapes WHERE event_id = NEW.id
    ON CONFLICT (event_type) DO UPDATE SET events = events + 1;

    INSERT INTO schema_paths (event_type, path, events, first_event_id)
    SELECT NEW.event_type, j.value, 1, NEW.id
    FROM event_shapes es
    JOIN schema_shapes s ON s.id = es.shape_id
    JOIN json_each(s.paths) j
    WHERE es.event_id = NEW.id
    ON CONFLICT (event_type, path) DO UPDATE SET events = events + 1;

    INSERT OR REPLACE INTO events_fts (rowid, text)
    SELECT NEW.id, substr(CASE
            WHEN length(b.body) <= 4194304 AND json_valid(CAST(b.body AS TEXT)) THEN
                coalesce((SELECT group_concat(j.value, ' ')
                          FROM json_tree(CAST(b.body AS TEXT)) j
                          WHERE j.type IN ('text', 'integer', 'real')), '')
            ELSE CAST(substr(b.body, 1, 65536) AS TEXT)
        END, 1, 65536)
    FROM delivery_bodies b
    WHERE b.delivery_id = NEW.body_delivery_id;
END;
-- +goose StatementEnd

-- Deleting an event (retention, a deleted endpoint) takes it out of the search index and the
-- field counts.
-- +goose StatementBegin
CREATE TRIGGER events_explorer_delete BEFORE DELETE ON events
BEGIN
    DELETE FROM events_fts WHERE rowid = OLD.id;

    UPDATE schema_types SET events = events - 1
    WHERE event_type = OLD.event_type
        AND EXISTS (SELECT 1 FROM event_shapes WHERE event_id = OLD.id);

    UPDATE schema_paths SET events = events - 1
    WHERE event_type = OLD.event_type AND path IN (
        SELECT j.value
        FROM event_shapes es
        JOIN schema_shapes s ON s.id = es.shape_id
        JOIN json_each(s.paths) j
        WHERE es.event_id = OLD.id);

    UPDATE schema_shapes SET events = events - 1
    WHERE id = (SELECT shape_id FROM event_shapes WHERE event_id = OLD.id);

    -- An id can be given again once the newest event is deleted: forget it as a marker.
    UPDATE schema_shapes SET last_event_id = 0 WHERE last_event_id = OLD.id;

    DELETE FROM event_shapes WHERE event_id = OLD.id;
END;
-- +goose StatementEnd

-- Dashboard rollups: counts per hour (received_at / 3600000000) kept by triggers, so the
-- dashboard reads a few rows per hour of its range however many deliveries arrived. Ack latency
-- is kept as a histogram: bucket b holds acks below ack_buckets.upper and at or above the
-- previous bucket's upper bound, each bound 10 % above the last (percentiles are read to that
-- precision).
CREATE TABLE stats_events (
    hour        INTEGER NOT NULL,
    endpoint_id INTEGER NOT NULL,
    event_type  TEXT    NOT NULL,
    events      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, endpoint_id, event_type)
) WITHOUT ROWID;

CREATE TABLE stats_deliveries (
    hour        INTEGER NOT NULL,
    endpoint_id INTEGER NOT NULL,
    verdict     TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    deliveries  INTEGER NOT NULL DEFAULT 0,
    duplicates  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, endpoint_id, verdict, reason)
) WITHOUT ROWID;

CREATE TABLE ack_buckets (
    bucket INTEGER PRIMARY KEY,
    upper  INTEGER NOT NULL UNIQUE -- microseconds, exclusive
);

WITH RECURSIVE b (bucket, upper) AS (
    SELECT 0, 100
    UNION ALL
    SELECT bucket + 1, CAST(upper * 1.1 AS INTEGER) + 1 FROM b WHERE upper < 3600000000
)
INSERT INTO ack_buckets (bucket, upper) SELECT bucket, upper FROM b;

CREATE TABLE stats_ack (
    hour        INTEGER NOT NULL,
    endpoint_id INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    deliveries  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, endpoint_id, bucket)
) WITHOUT ROWID;

-- +goose StatementBegin
CREATE TRIGGER deliveries_stats_insert AFTER INSERT ON deliveries
BEGIN
    INSERT INTO stats_deliveries (hour, endpoint_id, verdict, reason, deliveries, duplicates)
    VALUES (NEW.received_at / 3600000000, NEW.endpoint_id, NEW.verdict, NEW.reason, 1,
        NEW.duplicate != 0)
    ON CONFLICT (hour, endpoint_id, verdict, reason) DO UPDATE SET
        deliveries = deliveries + 1,
        duplicates = duplicates + excluded.duplicates;

    INSERT INTO stats_ack (hour, endpoint_id, bucket, deliveries)
    VALUES (NEW.received_at / 3600000000, NEW.endpoint_id, coalesce(
            (SELECT bucket FROM ack_buckets WHERE upper > NEW.ack_micros ORDER BY upper LIMIT 1),
            (SELECT max(bucket) FROM ack_buckets)), 1)
    ON CONFLICT (hour, endpoint_id, bucket) DO UPDATE SET deliveries = deliveries + 1;
END;
-- +goose StatementEnd

-- The ingest writer marks a repeat after inserting it; a rejected delivery can be re-verified.
-- (A delivery's time, endpoint and ack latency never change once stored.)
-- +goose StatementBegin
CREATE TRIGGER deliveries_stats_update AFTER UPDATE OF verdict, reason, duplicate ON deliveries
WHEN OLD.verdict != NEW.verdict OR OLD.reason != NEW.reason OR OLD.duplicate != NEW.duplicate
BEGIN
    UPDATE stats_deliveries SET
        deliveries = deliveries - 1,
        duplicates = duplicates - (OLD.duplicate != 0)
    WHERE hour = OLD.received_at / 3600000000 AND endpoint_id = OLD.endpoint_id
        AND verdict = OLD.verdict AND reason = OLD.reason;

    INSERT INTO stats_deliveries (hour, endpoint_id, verdict, reason, deliveries, duplicates)
    VALUES (NEW.received_at / 3600000000, NEW.endpoint_id, NEW.verdict, NEW.reason, 1,
        NEW.duplicate != 0)
    ON CONFLICT (hour, endpoint_id, verdict, reason) DO UPDATE SET
        deliveries = deliveries + 1,
        duplicates = duplicates + excluded.duplicates;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER deliveries_stats_delete AFTER DELETE ON deliveries
BEGIN
    UPDATE stats_deliveries SET
        deliveries = deliveries - 1,
        duplicates = duplicates - (OLD.duplicate != 0)
    WHERE hour = OLD.received_at / 3600000000 AND endpoint_id = OLD.endpoint_id
        AND verdict = OLD.verdict AND reason = OLD.reason;

    UPDATE stats_ack SET deliveries = deliveries - 1
    WHERE hour = OLD.received_at / 3600000000 AND endpoint_id = OLD.endpoint_id
        AND bucket = coalesce(
            (SELECT bucket FROM ack_buckets WHERE upper > OLD.ack_micros ORDER BY upper LIMIT 1),
            (SELECT max(bucket) FROM ack_buckets));
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER events_stats_insert AFTER INSERT ON events
BEGIN
    INSERT INTO stats_events (hour, endpoint_id, event_type, events)
    VALUES (NEW.first_received_at / 3600000000, NEW.endpoint_id, NEW.event_type, 1)
    ON CONFLICT (hour, endpoint_id, event_type) DO UPDATE SET events = events + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER events_stats_delete AFTER DELETE ON events
BEGIN
    UPDATE stats_events SET events = events - 1
    WHERE hour = OLD.first_received_at / 3600000000 AND endpoint_id = OLD.endpoint_id
        AND event_type = OLD.event_type;
END;
-- +goose StatementEnd

INSERT INTO stats_events (hour, endpoint_id, event_type, events)
SELECT first_received_at / 3600000000, endpoint_id, event_type, count(*)
FROM events
GROUP BY 1, 2, 3;

INSERT INTO stats_deliveries (hour, endpoint_id, verdict, reason, deliveries, duplicates)
SELECT received_at / 3600000000, endpoint_id, verdict, reason, count(*), sum(duplicate != 0)
FROM deliveries
GROUP BY 1, 2, 3, 4;

INSERT INTO stats_ack (hour, endpoint_id, bucket, deliveries)
SELECT received_at / 3600000000, endpoint_id, coalesce(
        (SELECT bucket FROM ack_buckets WHERE upper > ack_micros ORDER BY upper LIMIT 1),
        (SELECT max(bucket) FROM ack_buckets)), count(*)
FROM deliveries
GROUP BY 1, 2, 3;

-- Backfill what the triggers would have written for the events stored before this migration.
INSERT INTO events_fts (rowid, text)
SELECT v.id, substr(CASE
        WHEN length(b.body) <= 4194304 AND json_valid(CAST(b.body AS TEXT)) THEN
            coalesce((SELECT group_concat(j.value, ' ')
                      FROM json_tree(CAST(b.body AS TEXT)) j
                      WHERE j.type IN ('text', 'integer', 'real')), '')
        ELSE CAST(substr(b.body, 1, 65536) AS TEXT)
    END, 1, 65536)
FROM events v
JOIN delivery_bodies b ON b.delivery_id = v.body_delivery_id;

CREATE TEMP TABLE explorer_backfill AS
SELECT v.id AS event_id, v.event_type AS event_type, (
        SELECT json_group_array(p ORDER BY p)
        FROM (
            SELECT DISTINCT replace(t.fullkey, '[0]', '[]') AS p
            FROM json_tree(CAST(b.body AS TEXT)) t
            WHERE t.fullkey != '$' AND t.fullkey NOT GLOB '*[[][1-9]*'
            ORDER BY p
            LIMIT 256
        )
    ) AS paths
FROM events v
JOIN delivery_bodies b ON b.delivery_id = v.body_delivery_id
WHERE length(b.body) <= 4194304 AND json_valid(CAST(b.body AS TEXT));

DELETE FROM explorer_backfill WHERE paths = '[]';

INSERT INTO schema_shapes (event_type, paths, events, first_event_id, last_event_id)
SELECT event_type, paths, count(*), min(event_id), max(event_id)
FROM explorer_backfill
GROUP BY event_type, paths;

INSERT INTO event_shapes (event_id, shape_id)
SELECT b.event_id, s.id
FROM explorer_backfill b
JOIN schema_shapes s ON s.event_type = b.event_type AND s.paths = b.paths;

INSERT INTO schema_types (event_type, events)
SELECT event_type, sum(events) FROM schema_shapes GROUP BY event_type;

INSERT INTO schema_paths (event_type, path, events, first_event_id)
SELECT s.event_type, j.value, sum(s.events), min(s.first_event_id)
FROM schema_shapes s
JOIN json_each(s.paths) j
GROUP BY s.event_type, j.value;

DROP TABLE explorer_backfill;

-- +goose Down
DROP TRIGGER events_stats_delete;
DROP TRIGGER events_stats_insert;
DROP TRIGGER deliveries_stats_delete;
DROP TRIGGER deliveries_stats_update;
DROP TRIGGER deliveries_stats_insert;
DROP TABLE stats_ack;
DROP TABLE ack_buckets;
DROP TABLE stats_deliveries;
DROP TABLE stats_events;
DROP TABLE event_shapes;
DROP TABLE schema_paths;
DROP TABLE schema_types;
DROP TABLE schema_shapes;
DROP TABLE events_fts;
DROP TRIGGER events_explorer_delete;
DROP TRIGGER events_explorer_insert;
DROP TRIGGER deliveries_event_type;
DROP INDEX deliveries_received;
DROP INDEX deliveries_duplicate;
DROP INDEX deliveries_endpoint;
DROP INDEX deliveries_type;
ALTER TABLE deliveries DROP COLUMN event_type;
DROP INDEX events_envelope;
DROP INDEX events_device;
DROP INDEX events_transcription;
DROP INDEX events_file;
DROP INDEX events_duplicated;
DROP INDEX events_received;
