package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Event is one Plaud event, stored once however many times it was delivered.
type Event struct {
	ID              int64
	EndpointID      int64
	Endpoint        string // endpoint slug, filled by queries
	DedupeKey       string // "id:<envelope id>" or "sha256:<body hash>"
	EventType       string // "" when the body names none
	EnvelopeID      string
	FileID          string
	TranscriptionID string
	DeviceID        string
	JSON            bool   // the body is a JSON object
	Size            int64  // body size in bytes
	Summary         string // short preview for lists
	FirstReceivedAt time.Time
	LastReceivedAt  time.Time
	DeliveryCount   int
	BodyDeliveryID  int64 // the delivery whose body is the event's body (the first one)
	// Unexpected is set when the endpoint lists expected event types and this is not one.
	Unexpected bool
	// Drift says how its fields differ from those its type usually has; set by FillDrift.
	Drift Drift
	// Index is what storing the event adds to the search index and schema drift; CreateDelivery
	// reads it from the body when it is nil.
	Index *BodyIndex
}

// EventFilter selects events for FindEvents. Nil fields are unset.
type EventFilter struct {
	EndpointID   *int64
	EndpointSlug *string // endpoint by slug; an unknown slug matches nothing
	EventType    *string
	Since        *time.Time // first received at or after
	Until        *time.Time // first received before
	// Duplicates: true keeps only events delivered more than once, false only those
	// delivered once.
	Duplicates *bool
	// Search matches any Plaud id (file, transcription, device, envelope), plaudhook's event
	// number ("#12"), or words of the payload text (every word, as a prefix).
	Search *string
	Before int64 // keyset cursor: only ids below it (0 = from the newest)
	Limit  int
}

const eventColumns = `v.id, v.endpoint_id, e.slug, v.dedupe_key, v.event_type, v.envelope_id,
	v.file_id, v.transcription_id, v.device_id, v.is_json, v.size, v.summary,
	v.first_received_at, v.last_received_at, v.delivery_count, v.body_delivery_id,
	(e.expected_types != '' AND instr(',' || e.expected_types || ',', ',' || v.event_type || ',') = 0)`

func scanEvent(s interface{ Scan(...any) error }) (Event, error) {
	var v Event
	var first, last int64
	err := s.Scan(&v.ID, &v.EndpointID, &v.Endpoint, &v.DedupeKey, &v.EventType, &v.EnvelopeID,
		&v.FileID, &v.TranscriptionID, &v.DeviceID, &v.JSON, &v.Size, &v.Summary,
		&first, &last, &v.DeliveryCount, &v.BodyDeliveryID, &v.Unexpected)
	v.FirstReceivedAt = fromMicros(first)
	v.LastReceivedAt = fromMicros(last)
	return v, err
}

// FindEventByID returns one event, or ErrNotFound.
func (db *DB) FindEventByID(ctx context.Context, id int64) (Event, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+eventColumns+`
		FROM events v
		JOIN endpoints e ON e.id = v.endpoint_id
		WHERE v.id = ?`, id)
	v, err := scanEvent(row)
	if err == sql.ErrNoRows {
		return v, fmt.Errorf("event %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("find event %d: %w", id, err)
	}
	return v, nil
}

// FindEvents returns one page of events matching f, newest first, and the cursor of the next
// page (0 when this is the last one). Every filter is served by an index in id order, so a page
// costs the same at any depth.
func (db *DB) FindEvents(ctx context.Context, f EventFilter) ([]Event, int64, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	// One row more than asked tells whether a next page exists (db/filter.go builds the query).
	q, args, ok, err := db.eventListQuery(ctx, f, f.Limit+1)
	if err != nil {
		return nil, 0, fmt.Errorf("find events: %w", err)
	}
	if !ok {
		return nil, 0, nil
	}

	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("find events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		v, err := scanEvent(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("find events: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("find events: %w", err)
	}
	var next int64
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// EndpointIDBySlug returns the id of the endpoint with slug, or ErrNotFound.
func (db *DB) EndpointIDBySlug(ctx context.Context, slug string) (int64, error) {
	var id int64
	// Every webhook asks: the statement is prepared once (db.go), not parsed per delivery.
	var row *sql.Row
	if db.slugStmt != nil {
		row = db.slugStmt.QueryRowContext(ctx, slug)
	} else { // a read-only database (OpenReadOnly)
		row = db.r.QueryRowContext(ctx, `SELECT id FROM endpoints WHERE slug = ?`, slug)
	}
	err := row.Scan(&id)
	if err == sql.ErrNoRows {
		return 0, fmt.Errorf("endpoint %q: %w", slug, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("find endpoint %q: %w", slug, err)
	}
	return id, nil
}
