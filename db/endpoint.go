package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
)

// DefaultEndpointID is the endpoint the first migration creates: slug "default", URL /webhook.
const DefaultEndpointID int64 = 1

// Endpoint is one receiving URL, one per Plaud subscription: /webhook for the default endpoint,
// /webhook/{slug} for the others. It owns its signing secrets.
type Endpoint struct {
	ID            int64
	Slug          string
	Name          string
	ExpectedTypes []string // event types this subscription should send; others are flagged
	Note          string
	CreatedAt     time.Time
}

// Path is the URL path Plaud posts this endpoint's deliveries to.
func (e Endpoint) Path() string {
	if e.ID == DefaultEndpointID {
		return "/webhook"
	}
	return "/webhook/" + e.Slug
}

// Expects reports whether eventType is one the endpoint expects. An endpoint that lists no types
// expects every type.
func (e Endpoint) Expects(eventType string) bool {
	return len(e.ExpectedTypes) == 0 || slices.Contains(e.ExpectedTypes, eventType)
}

// EndpointUpdate changes an endpoint. Nil fields are left as they are.
type EndpointUpdate struct {
	Slug          *string
	Name          *string
	ExpectedTypes *[]string
	Note          *string
}

var (
	slugPattern      = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`)
	eventTypePattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,100}$`)
)

// ParseEventTypes reads a list of event types separated by commas, spaces or new lines, as typed
// in the endpoint form or the CLI. It returns them sorted without repeats, or a ValidationError.
func ParseEventTypes(s string) ([]string, error) {
	var out []string
	for _, t := range strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || unicode.IsSpace(r)
	}) {
		if !eventTypePattern.MatchString(t) {
			return nil, &ValidationError{Message: fmt.Sprintf(
				"event type %q: use letters, digits and . _ : - only", t)}
		}
		out = append(out, t)
	}
	sort.Strings(out)
	out = slices.Compact(out)
	if len(out) > 50 {
		return nil, &ValidationError{Message: "at most 50 expected event types"}
	}
	return out, nil
}

// validate checks an endpoint's fields and normalises them in place.
func (e *Endpoint) validate() error {
	e.Slug = strings.TrimSpace(e.Slug)
	e.Name = strings.TrimSpace(e.Name)
	e.Note = strings.TrimSpace(e.Note)
	switch {
	case !slugPattern.MatchString(e.Slug):
		return &ValidationError{Message: "slug: 1 to 40 lowercase letters, digits and dashes, " +
			"not starting or ending with a dash"}
	case e.Name == "" || len(e.Name) > 100 || strings.ContainsFunc(e.Name, unicode.IsControl):
		return &ValidationError{Message: "name: 1 to 100 characters, no control characters"}
	case len(e.Note) > 2000:
		return &ValidationError{Message: "note: at most 2,000 characters"}
	}
	types, err := ParseEventTypes(strings.Join(e.ExpectedTypes, ","))
	if err != nil {
		return err
	}
	e.ExpectedTypes = types
	return nil
}

const endpointColumns = `id, slug, name, expected_types, note, created_at`

func scanEndpoint(s interface{ Scan(...any) error }) (Endpoint, error) {
	var e Endpoint
	var types string
	var created int64
	err := s.Scan(&e.ID, &e.Slug, &e.Name, &types, &e.Note, &created)
	e.CreatedAt = fromMicros(created)
	if types != "" {
		e.ExpectedTypes = strings.Split(types, ",")
	}
	return e, err
}

// CreateEndpoint stores a new endpoint. It returns a ValidationError for bad fields and
// ErrConflict when the slug is taken.
func (db *DB) CreateEndpoint(ctx context.Context, e Endpoint) (Endpoint, error) {
	if err := e.validate(); err != nil {
		return e, err
	}
	e.CreatedAt = db.now().UTC()
	err := db.w.QueryRowContext(ctx, `
		INSERT INTO endpoints (slug, name, expected_types, note, created_at)
		VALUES (?, ?, ?, ?, ?)
		RETURNING id`,
		e.Slug, e.Name, strings.Join(e.ExpectedTypes, ","), e.Note, micros(e.CreatedAt),
	).Scan(&e.ID)
	if err != nil {
		return e, fmt.Errorf("create endpoint %q: %w", e.Slug, unavailable(conflict(err)))
	}
	db.secretsChanged()
	return e, nil
}

// UpdateEndpoint changes the fields set in u and returns the endpoint as stored. The default
// endpoint keeps its slug. It returns ErrNotFound, a ValidationError, or ErrConflict when the new
// slug is taken.
func (db *DB) UpdateEndpoint(ctx context.Context, id int64, u EndpointUpdate) (Endpoint, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return Endpoint{}, fmt.Errorf("update endpoint %d: %w", id, unavailable(err))
	}
	defer tx.Rollback()

	e, err := findEndpoint(ctx, tx, `id = ?`, id)
	if err != nil {
		return e, err
	}
	if u.Slug != nil && *u.Slug != e.Slug {
		if id == DefaultEndpointID {
			return e, &ValidationError{Message: "the default endpoint keeps the slug default"}
		}
		e.Slug = *u.Slug
	}
	if u.Name != nil {
		e.Name = *u.Name
	}
	if u.ExpectedTypes != nil {
		e.ExpectedTypes = *u.ExpectedTypes
	}
	if u.Note != nil {
		e.Note = *u.Note
	}
	if err := e.validate(); err != nil {
		return e, err
	}

	_, err = tx.ExecContext(ctx, `
		UPDATE endpoints SET slug = ?, name = ?, expected_types = ?, note = ?
		WHERE id = ?`,
		e.Slug, e.Name, strings.Join(e.ExpectedTypes, ","), e.Note, id)
	if err != nil {
		return e, fmt.Errorf("update endpoint %d: %w", id, unavailable(conflict(err)))
	}
	if err := tx.Commit(); err != nil {
		return e, fmt.Errorf("update endpoint %d: %w", id, unavailable(err))
	}
	db.secretsChanged()
	return e, nil
}

// DeleteEndpoint removes an endpoint with its secrets, deliveries and events. The default
// endpoint cannot be deleted (ValidationError). It returns ErrNotFound for an unknown id.
//
// NOTE: the cascade runs in one transaction on the single writer; deleting an endpoint with a
// very long history holds up ingest on every endpoint until it is done.
func (db *DB) DeleteEndpoint(ctx context.Context, id int64) error {
	if id == DefaultEndpointID {
		return &ValidationError{Message: "the default endpoint cannot be deleted"}
	}
	res, err := db.w.ExecContext(ctx, `DELETE FROM endpoints WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete endpoint %d: %w", id, unavailable(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("endpoint %d: %w", id, ErrNotFound)
	}
	db.secretsChanged()
	return nil
}

// FindEndpoints returns every endpoint, the default one first, then by slug.
func (db *DB) FindEndpoints(ctx context.Context) ([]Endpoint, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+endpointColumns+` FROM endpoints
		ORDER BY id != 1, slug`)
	if err != nil {
		return nil, fmt.Errorf("find endpoints: %w", err)
	}
	defer rows.Close()
	var out []Endpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("find endpoints: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find endpoints: %w", err)
	}
	return out, nil
}

// FindEndpointBySlug returns the endpoint with slug, or ErrNotFound.
func (db *DB) FindEndpointBySlug(ctx context.Context, slug string) (Endpoint, error) {
	return findEndpoint(ctx, db.r, `slug = ?`, slug)
}

// FindEndpointByID returns the endpoint with id, or ErrNotFound.
func (db *DB) FindEndpointByID(ctx context.Context, id int64) (Endpoint, error) {
	return findEndpoint(ctx, db.r, `id = ?`, id)
}

// querier is what both *sql.DB and *sql.Tx offer for single-row reads.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func findEndpoint(ctx context.Context, q querier, where string, arg any) (Endpoint, error) {
	e, err := scanEndpoint(q.QueryRowContext(ctx,
		`SELECT `+endpointColumns+` FROM endpoints WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("endpoint %v: %w", arg, ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("find endpoint %v: %w", arg, err)
	}
	return e, nil
}

// EndpointHealth is what an endpoint's page says about its traffic.
type EndpointHealth struct {
	LastDeliveryID int64     // 0 when nothing arrived yet
	LastDeliveryAt time.Time // zero when nothing arrived yet
	Verified24h    int
	Rejected24h    int
	Verified7d     int
	Rejected7d     int
	Reasons        []Count     // top rejection reasons over 7 days, most frequent first
	Types          []Count     // event types stored for the endpoint, most frequent first
	Hours          []HourCount // deliveries per hour over 48 hours, oldest first
	Skew           SkewSummary // timestamp-skew rejections in the last hour
}

// Count is a value with how often it occurred.
type Count struct {
	Value string
	N     int
}

// HourCount is one hour of the volume chart.
type HourCount struct {
	Start    time.Time
	Verified int
	Rejected int
}

// SkewSummary describes recent rejections for timestamp skew: how many, and the median skew
// (this server's clock minus the sender's) in seconds.
type SkewSummary struct {
	Count         int
	MedianSeconds int64
}

// ChartHours is how many hours the endpoint volume chart covers.
const ChartHours = 48

// FindEndpointHealth gathers an endpoint's health as of now: last delivery, counts over 24 hours
// and 7 days, top rejection reasons, event types, hourly volume and recent clock skew.
func (db *DB) FindEndpointHealth(ctx context.Context, endpointID int64, now time.Time) (EndpointHealth, error) {
	var h EndpointHealth
	now = now.UTC()

	// The last delivery.
	var at int64
	err := db.r.QueryRowContext(ctx, `
		SELECT id, received_at FROM deliveries
		WHERE endpoint_id = ?
		ORDER BY received_at DESC, id DESC LIMIT 1`, endpointID).Scan(&h.LastDeliveryID, &at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("endpoint health: last delivery: %w", err)
	}
	if err == nil {
		h.LastDeliveryAt = fromMicros(at)
	}

	// Counts over 7 days and, in the same pass, over 24 hours.
	day, week := micros(now.Add(-24*time.Hour)), micros(now.Add(-7*24*time.Hour))
	rows, err := db.r.QueryContext(ctx, `
		SELECT verdict, sum(received_at >= ?), count(*) FROM deliveries
		WHERE endpoint_id = ? AND received_at >= ?
		GROUP BY verdict`, day, endpointID, week)
	if err != nil {
		return h, fmt.Errorf("endpoint health: counts: %w", err)
	}
	for rows.Next() {
		var v Verdict
		var n24, n7 int
		if err := rows.Scan(&v, &n24, &n7); err != nil {
			rows.Close()
			return h, fmt.Errorf("endpoint health: counts: %w", err)
		}
		if v == Verified {
			h.Verified24h, h.Verified7d = n24, n7
		} else {
			h.Rejected24h, h.Rejected7d = n24, n7
		}
	}
	rows.Close()

	// Top rejection reasons, and event types seen.
	if h.Reasons, err = db.counts(ctx, `
		SELECT reason, count(*) FROM deliveries
		WHERE endpoint_id = ? AND received_at >= ? AND verdict = 'rejected'
		GROUP BY reason ORDER BY 2 DESC, 1 LIMIT 5`, endpointID, week); err != nil {
		return h, fmt.Errorf("endpoint health: reasons: %w", err)
	}
	if h.Types, err = db.counts(ctx, `
		SELECT event_type, count(*) FROM events
		WHERE endpoint_id = ?
		GROUP BY event_type ORDER BY 2 DESC, 1 LIMIT 100`, endpointID); err != nil {
		return h, fmt.Errorf("endpoint health: types: %w", err)
	}

	// Volume per hour: 48 buckets, the last one being the current hour.
	start := now.Truncate(time.Hour).Add(-(ChartHours - 1) * time.Hour)
	h.Hours = make([]HourCount, ChartHours)
	for i := range h.Hours {
		h.Hours[i].Start = start.Add(time.Duration(i) * time.Hour)
	}
	rows, err = db.r.QueryContext(ctx, `
		SELECT (received_at - ?) / 3600000000, verdict, count(*) FROM deliveries
		WHERE endpoint_id = ? AND received_at >= ? AND received_at < ?
		GROUP BY 1, 2`, micros(start), endpointID, micros(start),
		micros(start.Add(ChartHours*time.Hour)))
	if err != nil {
		return h, fmt.Errorf("endpoint health: volume: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i, n int
		var v Verdict
		if err := rows.Scan(&i, &v, &n); err != nil {
			return h, fmt.Errorf("endpoint health: volume: %w", err)
		}
		if i < 0 || i >= ChartHours {
			continue
		}
		if v == Verified {
			h.Hours[i].Verified = n
		} else {
			h.Hours[i].Rejected = n
		}
	}
	if err := rows.Err(); err != nil {
		return h, fmt.Errorf("endpoint health: volume: %w", err)
	}

	h.Skew, err = db.FindClockSkew(ctx, &endpointID, now.Add(-time.Hour))
	return h, err
}

// EndpointTraffic is the part of an endpoint's health that lists show: its last delivery and its
// counts over 24 hours. It costs an index lookup and a day's index range, where the whole health
// also scans a week and builds the chart, so a list of many endpoints stays quick.
type EndpointTraffic struct {
	LastDeliveryID int64     // 0 when nothing arrived yet
	LastDeliveryAt time.Time // zero when nothing arrived yet
	Verified24h    int
	Rejected24h    int
}

// FindEndpointTraffic returns an endpoint's last delivery and its counts over the 24 hours
// before now.
func (db *DB) FindEndpointTraffic(ctx context.Context, endpointID int64, now time.Time) (EndpointTraffic, error) {
	var t EndpointTraffic
	var at int64
	err := db.r.QueryRowContext(ctx, `
		SELECT id, received_at FROM deliveries
		WHERE endpoint_id = ?
		ORDER BY received_at DESC, id DESC LIMIT 1`, endpointID).Scan(&t.LastDeliveryID, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return t, nil // nothing arrived, so nothing to count
	case err != nil:
		return t, fmt.Errorf("endpoint traffic: last delivery: %w", err)
	}
	t.LastDeliveryAt = fromMicros(at)
	rows, err := db.r.QueryContext(ctx, `
		SELECT verdict, count(*) FROM deliveries
		WHERE endpoint_id = ? AND received_at >= ?
		GROUP BY verdict`, endpointID, micros(now.Add(-24*time.Hour)))
	if err != nil {
		return t, fmt.Errorf("endpoint traffic: counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v Verdict
		var n int
		if err := rows.Scan(&v, &n); err != nil {
			return t, fmt.Errorf("endpoint traffic: counts: %w", err)
		}
		if v == Verified {
			t.Verified24h = n
		} else {
			t.Rejected24h = n
		}
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("endpoint traffic: counts: %w", err)
	}
	return t, nil
}

// counts runs a two-column (value, count) query.
func (db *DB) counts(ctx context.Context, q string, args ...any) ([]Count, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Count
	for rows.Next() {
		var c Count
		if err := rows.Scan(&c.Value, &c.N); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// FindClockSkew summarises rejections for timestamp skew received since a time, on one endpoint
// or (nil) on all. Skews of more than a day are left out: they are not a clock that is off but a
// timestamp in the wrong unit (milliseconds), which the signature debugger explains.
func (db *DB) FindClockSkew(ctx context.Context, endpointID *int64, since time.Time) (SkewSummary, error) {
	q := `SELECT skew_ms FROM deliveries
		WHERE reason = 'timestamp_out_of_tolerance' AND received_at >= ?
			AND skew_ms IS NOT NULL AND abs(skew_ms) < 86400000`
	args := []any{micros(since)}
	if endpointID != nil {
		q += ` AND endpoint_id = ?`
		args = append(args, *endpointID)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY skew_ms LIMIT 10000`, args...)
	if err != nil {
		return SkewSummary{}, fmt.Errorf("find clock skew: %w", err)
	}
	defer rows.Close()
	var skews []int64
	for rows.Next() {
		var ms int64
		if err := rows.Scan(&ms); err != nil {
			return SkewSummary{}, fmt.Errorf("find clock skew: %w", err)
		}
		skews = append(skews, ms)
	}
	if err := rows.Err(); err != nil {
		return SkewSummary{}, fmt.Errorf("find clock skew: %w", err)
	}
	if len(skews) == 0 {
		return SkewSummary{}, nil
	}
	return SkewSummary{Count: len(skews), MedianSeconds: skews[len(skews)/2] / 1000}, nil
}
