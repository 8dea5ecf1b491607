-- +goose Up
-- Retention by age walks events from the oldest last delivery: this index serves it without
-- scanning the table.
CREATE INDEX events_last_received ON events (last_received_at);

-- +goose Down
DROP INDEX events_last_received;
