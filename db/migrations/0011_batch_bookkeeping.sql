-- +goose Up
-- The ingest writer keeps the search index, schema drift and the dashboard rollups itself, once
-- per batch of deliveries instead of once per row (db/bookkeeping.go): walking every body with
-- json_tree inside the single writer, and two upserts per row for the rollups, were most of
-- its time. The writer marks its transaction with a row in ingest_batch, deletes the row before
-- it commits, and the triggers stand aside while the row is there. Any other insert (a restore,
-- a script, a test seeding rows) still goes through the triggers, so the derived tables stay
-- right whoever writes.
CREATE TABLE ingest_batch (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

DROP TRIGGER events_explorer_insert;
-- +goose StatementBegin
CREATE TRIGGER events_explorer_insert AFTER INSERT ON events
WHEN NOT EXISTS (SELECT 1 FROM ingest_batch)
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

DROP TRIGGER deliveries_stats_insert;
-- +goose StatementBegin
CREATE TRIGGER deliveries_stats_insert AFTER INSERT ON deliveries
WHEN NOT EXISTS (SELECT 1 FROM ingest_batch)
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

DROP TRIGGER events_stats_insert;
-- +goose StatementBegin
CREATE TRIGGER events_stats_insert AFTER INSERT ON events
WHEN NOT EXISTS (SELECT 1 FROM ingest_batch)
BEGIN
    INSERT INTO stats_events (hour, endpoint_id, event_type, events)
    VALUES (NEW.first_received_at / 3600000000, NEW.endpoint_id, NEW.event_type, 1)
    ON CONFLICT (hour, endpoint_id, event_type) DO UPDATE SET events = events + 1;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER events_explorer_insert;
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

DROP TRIGGER deliveries_stats_insert;
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

DROP TRIGGER events_stats_insert;
-- +goose StatementBegin
CREATE TRIGGER events_stats_insert AFTER INSERT ON events
BEGIN
    INSERT INTO stats_events (hour, endpoint_id, event_type, events)
    VALUES (NEW.first_received_at / 3600000000, NEW.endpoint_id, NEW.event_type, 1)
    ON CONFLICT (hour, endpoint_id, event_type) DO UPDATE SET events = events + 1;
END;
-- +goose StatementEnd
DROP TABLE ingest_batch;
