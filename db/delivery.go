package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Verdict says whether a delivery's signature verified.
type Verdict string

// The two verdicts.
const (
	Verified Verdict = "verified"
	Rejected Verdict = "rejected"
)

// Delivery is one HTTP request that arrived at a webhook endpoint, verified or rejected.
type Delivery struct {
	ID         int64
	EndpointID int64
	Endpoint   string // endpoint slug, filled by queries
	ReceivedAt time.Time
	RemoteAddr string
	Method     string
	Path       string
	Header     http.Header // all headers as received
	// Body is the stored body: every byte for verified deliveries; for rejected ones at most
	// the rejected-body cap (BodyTruncated says so). Empty in list queries.
	Body            []byte
	BodySHA256      string // hex SHA-256 of the whole body as received
	Size            int64  // length of the whole body
	BodyTruncated   bool
	ContentType     string
	ContentEncoding string
	Verdict         Verdict
	Reason          string // machine-readable rejection reason; "" when verified
	Scheme          string // signing scheme detected
	SecretLabel     string // label of the secret that matched
	SenderTimestamp string // Plaud-Timestamp as received
	SkewMS          *int64 // receive time minus sender timestamp, when known
	EventID         int64  // 0 when rejected
	Duplicate       bool   // a later delivery of an event already stored
	AckMicros       int64  // time from receipt to commit
	SecretID        int64  // the secret that matched (0: none, or one no longer stored)
	SecretOld       bool   // that secret was retiring, or a newer one existed, when it matched
	PromotedBy      string // who re-verified this once-rejected delivery; "" if nobody did
	PromotedAt      time.Time
}

// DeliveryFilter selects deliveries for FindDeliveries. Nil fields are unset.
type DeliveryFilter struct {
	Verdict      *Verdict
	Reason       *string // rejection reason, e.g. "signature_mismatch" (implies rejected)
	EventID      *int64
	EndpointID   *int64
	EndpointSlug *string // endpoint by slug; an unknown slug matches nothing
	EventType    *string // type of the delivery's event ("" matches rejected deliveries)
	Since        *time.Time
	Until        *time.Time
	Duplicates   *bool   // true: only repeats of a stored event; false: no repeats
	Search       *string // a Plaud id, "#<event number>" or payload words (see EventFilter)
	Before       int64   // keyset cursor: only ids below it (0 = from the newest)
	After        int64   // only ids above it, oldest first (used to resume a live stream)
	Limit        int     // at most 5,000; 0 means 100
}

const deliveryColumns = `d.id, d.endpoint_id, e.slug, d.received_at, d.remote_addr, d.method,
	d.path, d.headers, d.body_sha256, d.size, d.body_truncated, d.content_type,
	d.content_encoding, d.verdict, d.reason, d.scheme, d.secret_label, d.sender_timestamp,
	d.skew_ms, coalesce(d.event_id, 0), d.duplicate, d.ack_micros, coalesce(d.secret_id, 0),
	d.secret_old, d.promoted_by, coalesce(d.promoted_at, 0)`

func scanDelivery(s interface{ Scan(...any) error }) (Delivery, error) {
	var d Delivery
	var headers string
	var received int64
	var skew sql.NullInt64
	var promoted int64
	err := s.Scan(&d.ID, &d.EndpointID, &d.Endpoint, &received, &d.RemoteAddr, &d.Method,
		&d.Path, &headers, &d.BodySHA256, &d.Size, &d.BodyTruncated, &d.ContentType,
		&d.ContentEncoding, &d.Verdict, &d.Reason, &d.Scheme, &d.SecretLabel,
		&d.SenderTimestamp, &skew, &d.EventID, &d.Duplicate, &d.AckMicros, &d.SecretID,
		&d.SecretOld, &d.PromotedBy, &promoted)
	if promoted != 0 {
		d.PromotedAt = fromMicros(promoted)
	}
	if err != nil {
		return d, err
	}
	d.ReceivedAt = fromMicros(received)
	if skew.Valid {
		d.SkewMS = &skew.Int64
	}
	if err := json.Unmarshal([]byte(headers), &d.Header); err != nil {
		return d, fmt.Errorf("decode headers of delivery %d: %w", d.ID, err)
	}
	return d, nil
}

// FindDeliveryByID returns one delivery with its stored body, or ErrNotFound.
func (db *DB) FindDeliveryByID(ctx context.Context, id int64) (Delivery, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+deliveryColumns+`, b.body
		FROM deliveries d
		JOIN endpoints e ON e.id = d.endpoint_id
		LEFT JOIN delivery_bodies b ON b.delivery_id = d.id
		WHERE d.id = ?`, id)
	var body []byte
	d, err := scanDelivery(scanWith{row, &body})
	if err == sql.ErrNoRows {
		return d, fmt.Errorf("delivery %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("find delivery %d: %w", id, err)
	}
	d.Body = body
	if d.Body == nil {
		d.Body = []byte{}
	}
	return d, nil
}

// FindDeliveries returns deliveries matching f without their bodies: newest first, or oldest
// first when f.After is set.
func (db *DB) FindDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	if f.Limit <= 0 || f.Limit > 5000 {
		f.Limit = 100
	}
	// db/filter.go builds the query: every filter is served by an index in id order.
	q, args, ok, err := db.deliveryListQuery(ctx, f, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("find deliveries: %w", err)
	}
	if !ok {
		return nil, nil
	}

	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("find deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find deliveries: %w", err)
	}
	return out, nil
}

// LastDeliveryID returns the id of the newest delivery, 0 when there is none.
func (db *DB) LastDeliveryID(ctx context.Context) (int64, error) {
	var id int64
	err := db.r.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM deliveries`).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("last delivery id: %w", err)
	}
	return id, nil
}

// scanWith appends extra destinations to a row scan.
type scanWith struct {
	row   *sql.Row
	extra any
}

func (s scanWith) Scan(dest ...any) error { return s.row.Scan(append(dest, s.extra)...) }
