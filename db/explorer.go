package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Schema drift thresholds. A type's fields are judged only once it has driftMinEvents events
// with a known shape; a field is usual when at least driftUsual of them have it and rare when
// at most driftRare do.
const (
	driftMinEvents = 5
	driftUsual     = 0.8
	driftRare      = 0.2
)

// FieldCount says how many events of a type have a field.
type FieldCount struct {
	Path         string // e.g. "data.file_id"; "[]" stands for the elements of an array
	Events       int    // events of the type that have it
	Of           int    // events of the type with a known shape
	FirstEventID int    // the first event that had it
}

// Share is the fraction of the type's events that have the field.
func (f FieldCount) Share() float64 {
	if f.Of == 0 {
		return 0
	}
	return float64(f.Events) / float64(f.Of)
}

// Drift says how an event's fields differ from what its type usually has. The zero value means
// no difference, or not enough events of the type to tell.
type Drift struct {
	Missing []FieldCount // fields most events of the type have and this one lacks
	Added   []FieldCount // fields this event has and few events of the type do
}

// Any reports whether there is a difference to show.
func (d Drift) Any() bool { return len(d.Missing) > 0 || len(d.Added) > 0 }

// typeFields is what drift is judged against: the field counts of one event type.
type typeFields struct {
	events int
	fields map[string]FieldCount // by stored path ("$.data.file_id")
}

// FillDrift sets the Drift of each event whose body has a known shape. Events of types with
// too few events to judge, and bodies that are not JSON, are left without drift.
func (db *DB) FillDrift(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}

	// The shape of each event on the page.
	ids := make([]any, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	rows, err := db.r.QueryContext(ctx, `
		SELECT es.event_id, s.id, s.event_type, s.paths
		FROM event_shapes es
		JOIN schema_shapes s ON s.id = es.shape_id
		WHERE es.event_id IN (`+placeholders(len(ids))+`)`, ids...)
	if err != nil {
		return fmt.Errorf("fill drift: %w", err)
	}
	type shape struct {
		eventType string
		paths     []string
	}
	shapeOf := map[int64]int64{}
	shapes := map[int64]shape{}
	for rows.Next() {
		var eventID, shapeID int64
		var s shape
		var paths string
		if err := rows.Scan(&eventID, &shapeID, &s.eventType, &paths); err != nil {
			rows.Close()
			return fmt.Errorf("fill drift: %w", err)
		}
		if _, ok := shapes[shapeID]; !ok {
			if err := json.Unmarshal([]byte(paths), &s.paths); err != nil {
				rows.Close()
				return fmt.Errorf("fill drift: shape %d: %w", shapeID, err)
			}
			shapes[shapeID] = s
		}
		shapeOf[eventID] = shapeID
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("fill drift: %w", err)
	}

	// Judge each shape once against its type's counts.
	types := map[string]typeFields{}
	drift := map[int64]Drift{}
	for id, s := range shapes {
		tf, ok := types[s.eventType]
		if !ok {
			if tf, err = db.typeFields(ctx, s.eventType); err != nil {
				return err
			}
			types[s.eventType] = tf
		}
		drift[id] = judge(s.paths, tf)
	}
	for i := range events {
		if id, ok := shapeOf[events[i].ID]; ok {
			events[i].Drift = drift[id]
		}
	}
	return nil
}

// typeFields loads the field counts of one event type.
func (db *DB) typeFields(ctx context.Context, eventType string) (typeFields, error) {
	tf := typeFields{fields: map[string]FieldCount{}}
	err := db.r.QueryRowContext(ctx,
		`SELECT events FROM schema_types WHERE event_type = ?`, eventType).Scan(&tf.events)
	if errors.Is(err, sql.ErrNoRows) {
		return tf, nil
	}
	if err != nil {
		return tf, fmt.Errorf("load fields of %q: %w", eventType, err)
	}
	rows, err := db.r.QueryContext(ctx, `
		SELECT path, events, first_event_id FROM schema_paths
		WHERE event_type = ? AND events > 0`, eventType)
	if err != nil {
		return tf, fmt.Errorf("load fields of %q: %w", eventType, err)
	}
	defer rows.Close()
	for rows.Next() {
		var path string
		f := FieldCount{Of: tf.events}
		if err := rows.Scan(&path, &f.Events, &f.FirstEventID); err != nil {
			return tf, fmt.Errorf("load fields of %q: %w", eventType, err)
		}
		f.Path = displayPath(path)
		tf.fields[path] = f
	}
	if err := rows.Err(); err != nil {
		return tf, fmt.Errorf("load fields of %q: %w", eventType, err)
	}
	return tf, nil
}

// judge compares one shape's paths with its type's counts. Only the outermost differing field
// is named: a missing "data" object is one finding, not one per field inside it.
func judge(paths []string, tf typeFields) Drift {
	var d Drift
	if tf.events < driftMinEvents {
		return d
	}
	has := make(map[string]bool, len(paths))
	for _, p := range paths {
		has[p] = true
	}
	var missing, added []string
	for p, f := range tf.fields {
		if !has[p] && f.Share() >= driftUsual {
			missing = append(missing, p)
		}
	}
	for _, p := range paths {
		if f, ok := tf.fields[p]; ok && f.Share() <= driftRare {
			added = append(added, p)
		}
	}
	for _, p := range outermost(missing) {
		d.Missing = append(d.Missing, tf.fields[p])
	}
	for _, p := range outermost(added) {
		d.Added = append(d.Added, tf.fields[p])
	}
	return d
}

// outermost sorts paths and drops those inside another path of the list.
func outermost(paths []string) []string {
	sort.Strings(paths)
	var out []string
	for _, p := range paths {
		if n := len(out); n > 0 && isInside(p, out[n-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// isInside reports whether path p lies inside path parent ("$.a.b" and "$.a[]" inside "$.a").
func isInside(p, parent string) bool {
	return strings.HasPrefix(p, parent) && len(p) > len(parent) &&
		(p[len(parent)] == '.' || p[len(parent)] == '[')
}

// displayPath turns a stored path ("$.data.file_id") into the form shown ("data.file_id").
func displayPath(p string) string {
	p = strings.TrimPrefix(p, "$")
	return strings.TrimPrefix(p, ".")
}

// SchemaType summarises the fields seen for one event type.
type SchemaType struct {
	EventType string
	Events    int // events with a known shape
	Shapes    int // distinct sets of fields seen
	Fields    []FieldCount
}

// FindSchemaTypes returns every event type that has JSON bodies, with its field counts, by type
// name.
func (db *DB) FindSchemaTypes(ctx context.Context) ([]SchemaType, error) {
	rows, err := db.r.QueryContext(ctx, `
		SELECT t.event_type, t.events,
			(SELECT count(*) FROM schema_shapes s WHERE s.event_type = t.event_type AND s.events > 0)
		FROM schema_types t
		WHERE t.events > 0
		ORDER BY t.event_type
		LIMIT 500`)
	if err != nil {
		return nil, fmt.Errorf("find schema types: %w", err)
	}
	var out []SchemaType
	for rows.Next() {
		var st SchemaType
		if err := rows.Scan(&st.EventType, &st.Events, &st.Shapes); err != nil {
			rows.Close()
			return nil, fmt.Errorf("find schema types: %w", err)
		}
		out = append(out, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find schema types: %w", err)
	}
	for i := range out {
		tf, err := db.typeFields(ctx, out[i].EventType)
		if err != nil {
			return nil, err
		}
		for _, f := range tf.fields {
			out[i].Fields = append(out[i].Fields, f)
		}
		sort.Slice(out[i].Fields, func(a, b int) bool {
			return out[i].Fields[a].Path < out[i].Fields[b].Path
		})
	}
	return out, nil
}

// FindEventTypes returns the distinct event types stored, by name ("" for events that name
// none), at most 500. It hops through the type index, one seek per type.
func (db *DB) FindEventTypes(ctx context.Context) ([]string, error) {
	var out []string
	var last sql.NullString
	for len(out) < 500 {
		var t string
		var err error
		if !last.Valid {
			err = db.r.QueryRowContext(ctx,
				`SELECT event_type FROM events ORDER BY event_type LIMIT 1`).Scan(&t)
		} else {
			err = db.r.QueryRowContext(ctx, `SELECT event_type FROM events
				WHERE event_type > ? ORDER BY event_type LIMIT 1`, last.String).Scan(&t)
		}
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("find event types: %w", err)
		}
		out = append(out, t)
		last = sql.NullString{String: t, Valid: true}
	}
	return out, nil
}

// DashboardFilter selects what the dashboard summarises: deliveries and events received in
// [Since, Until), on one endpoint or (nil) on all, counted per Bucket.
type DashboardFilter struct {
	EndpointID *int64
	Since      time.Time
	Until      time.Time
	Bucket     time.Duration // width of one bar of the volume charts
}

// Dashboard is the health of a subscription at a glance.
type Dashboard struct {
	Buckets   []time.Time     // start of each bucket, oldest first
	Types     []TypeVolume    // events per type, most frequent first
	Endpoints []EndpointStats // per endpoint, by slug
	Total     EndpointStats   // all endpoints together (EndpointID 0)
	Latest    []LatestEvent   // the newest event of each endpoint and type, ever
	Rejected  []int           // rejected deliveries per bucket
	Verified  []int           // verified deliveries per bucket
	Reasons   map[string]int  // rejections per reason
}

// TypeVolume is how many events of one type arrived, per bucket and in all.
type TypeVolume struct {
	EventType string
	Counts    []int
	Total     int
}

// EndpointStats is the delivery health of one endpoint over the dashboard's range.
type EndpointStats struct {
	EndpointID int64
	Endpoint   string // slug
	Name       string
	Deliveries int
	Rejected   int
	Duplicates int // verified deliveries that repeated a stored event
	Events     int // distinct events first received in the range
	// Ack latency percentiles: time from receipt to commit, over every delivery.
	AckP50, AckP95, AckP99 time.Duration
}

// FailureRate is the share of deliveries that failed verification.
func (s EndpointStats) FailureRate() float64 { return ratio(s.Rejected, s.Deliveries) }

// DuplicateRate is the share of verified deliveries that repeated a stored event.
func (s EndpointStats) DuplicateRate() float64 {
	return ratio(s.Duplicates, s.Deliveries-s.Rejected)
}

func ratio(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// LatestEvent is the newest event of one endpoint and type.
type LatestEvent struct {
	EndpointID int64
	Endpoint   string
	EventType  string
	EventID    int64
	ReceivedAt time.Time
	InRange    int // events of this endpoint and type in the dashboard's range
}

// FindDashboard summarises traffic in f's range from the hourly rollups that triggers keep
// (migration 0009): its cost grows with the hours of the range, not with its traffic. Since
// must fall on a whole hour and Bucket be a whole number of hours; ack latency percentiles are
// read from a histogram, so each is the upper bound of its 10 %-wide bucket.
func (db *DB) FindDashboard(ctx context.Context, f DashboardFilter) (Dashboard, error) {
	if f.Bucket <= 0 {
		f.Bucket = time.Hour
	}
	since, until := f.Since.UTC(), f.Until.UTC()
	if f.Bucket%time.Hour != 0 || !since.Equal(since.Truncate(time.Hour)) {
		return Dashboard{}, &ValidationError{Message: "the dashboard counts whole hours"}
	}
	n := int((until.Sub(since) + f.Bucket - 1) / f.Bucket)
	if n <= 0 || n > 1000 {
		return Dashboard{}, &ValidationError{Message: "the dashboard range must hold 1 to 1000 bars"}
	}
	d := Dashboard{Buckets: make([]time.Time, n), Rejected: make([]int, n),
		Verified: make([]int, n), Reasons: map[string]int{}}
	for i := range d.Buckets {
		d.Buckets[i] = since.Add(time.Duration(i) * f.Bucket)
	}

	// Step by step: endpoints, events per type and bucket, deliveries per endpoint and bucket,
	// ack percentiles, then the newest event of each type.
	if err := db.dashboardEndpoints(ctx, &d, f); err != nil {
		return d, err
	}
	byID := map[int64]*EndpointStats{}
	for i := range d.Endpoints {
		byID[d.Endpoints[i].EndpointID] = &d.Endpoints[i]
	}
	r := hourRange{from: since.Unix() / 3600, to: (until.Unix() + 3599) / 3600,
		per: int64(f.Bucket / time.Hour), endpointID: f.EndpointID}
	pairs, err := db.dashboardEvents(ctx, &d, byID, r)
	if err != nil {
		return d, err
	}
	if err := db.dashboardDeliveries(ctx, &d, byID, r); err != nil {
		return d, err
	}
	if err := db.dashboardLatency(ctx, byID, &d.Total, r); err != nil {
		return d, err
	}
	latest, err := db.findLatestEvents(ctx, f.EndpointID)
	if err != nil {
		return d, err
	}
	for i := range latest {
		latest[i].InRange = pairs[pairKey{latest[i].EndpointID, latest[i].EventType}]
	}
	d.Latest = latest
	return d, nil
}

// hourRange is a dashboard range in rollup hours: [from, to), per hours to a bar.
type hourRange struct {
	from, to, per int64
	endpointID    *int64
}

// where returns the condition of a rollup query over r, and its arguments.
func (r hourRange) where() (string, []any) {
	cond := "hour >= ? AND hour < ?"
	args := []any{r.from, r.to}
	if r.endpointID != nil {
		cond += " AND endpoint_id = ?"
		args = append(args, *r.endpointID)
	}
	return cond, args
}

// bar returns the bar of a rollup hour.
func (r hourRange) bar(hour int64) int { return int((hour - r.from) / r.per) }

func (db *DB) dashboardEndpoints(ctx context.Context, d *Dashboard, f DashboardFilter) error {
	q := `SELECT id, slug, name FROM endpoints`
	var args []any
	if f.EndpointID != nil {
		q += ` WHERE id = ?`
		args = append(args, *f.EndpointID)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY slug`, args...)
	if err != nil {
		return fmt.Errorf("dashboard endpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s EndpointStats
		if err := rows.Scan(&s.EndpointID, &s.Endpoint, &s.Name); err != nil {
			return fmt.Errorf("dashboard endpoints: %w", err)
		}
		d.Endpoints = append(d.Endpoints, s)
	}
	return rows.Err()
}

// pairKey names one endpoint and event type.
type pairKey struct {
	endpointID int64
	eventType  string
}

// dashboardEvents counts events per type and bar, and returns the count of each endpoint and
// type pair.
func (db *DB) dashboardEvents(ctx context.Context, d *Dashboard, byID map[int64]*EndpointStats,
	r hourRange) (map[pairKey]int, error) {
	cond, args := r.where()
	rows, err := db.r.QueryContext(ctx, `
		SELECT hour, endpoint_id, event_type, events FROM stats_events
		WHERE `+cond+` AND events > 0`, args...)
	if err != nil {
		return nil, fmt.Errorf("dashboard events: %w", err)
	}
	defer rows.Close()
	byType := map[string]*TypeVolume{}
	pairs := map[pairKey]int{}
	for rows.Next() {
		var hour, endpointID int64
		var eventType string
		var count int
		if err := rows.Scan(&hour, &endpointID, &eventType, &count); err != nil {
			return nil, fmt.Errorf("dashboard events: %w", err)
		}
		tv := byType[eventType]
		if tv == nil {
			tv = &TypeVolume{EventType: eventType, Counts: make([]int, len(d.Buckets))}
			byType[eventType] = tv
		}
		if b := r.bar(hour); b >= 0 && b < len(tv.Counts) {
			tv.Counts[b] += count
		}
		tv.Total += count
		pairs[pairKey{endpointID, eventType}] += count
		d.Total.Events += count
		if s := byID[endpointID]; s != nil {
			s.Events += count
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dashboard events: %w", err)
	}
	for _, tv := range byType {
		d.Types = append(d.Types, *tv)
	}
	sort.Slice(d.Types, func(i, j int) bool {
		if d.Types[i].Total != d.Types[j].Total {
			return d.Types[i].Total > d.Types[j].Total
		}
		return d.Types[i].EventType < d.Types[j].EventType
	})
	return pairs, nil
}

// dashboardDeliveries counts deliveries, rejections (per bar and per reason) and duplicates.
func (db *DB) dashboardDeliveries(ctx context.Context, d *Dashboard, byID map[int64]*EndpointStats,
	r hourRange) error {
	cond, args := r.where()
	rows, err := db.r.QueryContext(ctx, `
		SELECT hour, endpoint_id, verdict, reason, deliveries, duplicates FROM stats_deliveries
		WHERE `+cond+` AND deliveries > 0`, args...)
	if err != nil {
		return fmt.Errorf("dashboard deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var hour, endpointID int64
		var verdict Verdict
		var reason string
		var count, dups int
		if err := rows.Scan(&hour, &endpointID, &verdict, &reason, &count, &dups); err != nil {
			return fmt.Errorf("dashboard deliveries: %w", err)
		}
		for _, s := range []*EndpointStats{&d.Total, byID[endpointID]} {
			if s == nil {
				continue
			}
			s.Deliveries += count
			s.Duplicates += dups
			if verdict == Rejected {
				s.Rejected += count
			}
		}
		if verdict == Rejected {
			d.Reasons[reason] += count
		}
		b := r.bar(hour)
		if b < 0 || b >= len(d.Buckets) {
			continue
		}
		if verdict == Rejected {
			d.Rejected[b] += count
		} else {
			d.Verified[b] += count
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("dashboard deliveries: %w", err)
	}
	return nil
}

// dashboardLatency reads ack latency percentiles, per endpoint and in all, from the histogram:
// each percentile is the upper bound of the bucket that holds its rank (nearest rank).
func (db *DB) dashboardLatency(ctx context.Context, byID map[int64]*EndpointStats,
	total *EndpointStats, r hourRange) error {
	cond, args := r.where()
	rows, err := db.r.QueryContext(ctx, `
		SELECT a.endpoint_id, b.upper, sum(a.deliveries)
		FROM stats_ack a JOIN ack_buckets b ON b.bucket = a.bucket
		WHERE `+strings.ReplaceAll(cond, "hour", "a.hour")+` AND a.deliveries > 0
		GROUP BY a.endpoint_id, b.upper
		ORDER BY a.endpoint_id, b.upper`, args...)
	if err != nil {
		return fmt.Errorf("dashboard latency: %w", err)
	}
	defer rows.Close()
	type bucket struct{ upper, n int64 }
	hist := map[int64][]bucket{}
	var all []bucket
	for rows.Next() {
		var endpointID int64
		var b bucket
		if err := rows.Scan(&endpointID, &b.upper, &b.n); err != nil {
			return fmt.Errorf("dashboard latency: %w", err)
		}
		hist[endpointID] = append(hist[endpointID], b)
		all = append(all, b)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("dashboard latency: %w", err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].upper < all[j].upper })

	// Percentiles by nearest rank over each histogram.
	set := func(s *EndpointStats, hs []bucket) {
		var n int64
		for _, b := range hs {
			n += b.n
		}
		at := func(p int64) time.Duration {
			rank := (n*p + 99) / 100
			var seen int64
			for _, b := range hs {
				if seen += b.n; seen >= rank {
					return time.Duration(b.upper) * time.Microsecond
				}
			}
			return 0
		}
		if n > 0 {
			s.AckP50, s.AckP95, s.AckP99 = at(50), at(95), at(99)
		}
	}
	for id, hs := range hist {
		if s := byID[id]; s != nil {
			set(s, hs)
		}
	}
	set(total, all)
	return nil
}

// findLatestEvents returns the newest event of each endpoint and type, hopping through the
// (endpoint_id, event_type) index one seek per pair; at most 200 pairs.
func (db *DB) findLatestEvents(ctx context.Context, endpointID *int64) ([]LatestEvent, error) {
	var out []LatestEvent
	ep, typ := int64(-1), ""
	if endpointID != nil {
		ep = *endpointID
	}
	first := true
	for len(out) < 200 {
		// The next pair: the next type of this endpoint, else the first type of the next
		// endpoint. (Two seeks: a row-value comparison "(endpoint_id, event_type) > (?, ?)"
		// would seek on the endpoint only and walk every event of it.)
		err := sql.ErrNoRows
		if !first || endpointID != nil {
			q := `SELECT endpoint_id, event_type FROM events
				WHERE endpoint_id = ? AND event_type > ? ORDER BY event_type LIMIT 1`
			if first {
				q = `SELECT endpoint_id, event_type FROM events
					WHERE endpoint_id = ? AND event_type >= ? ORDER BY event_type LIMIT 1`
			}
			err = db.r.QueryRowContext(ctx, q, ep, typ).Scan(&ep, &typ)
		}
		if errors.Is(err, sql.ErrNoRows) && endpointID == nil {
			err = db.r.QueryRowContext(ctx, `SELECT endpoint_id, event_type FROM events
				WHERE endpoint_id > ? ORDER BY endpoint_id, event_type LIMIT 1`, ep).Scan(&ep, &typ)
		}
		first = false
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("find latest events: %w", err)
		}
		le := LatestEvent{EndpointID: ep, EventType: typ}
		var at int64
		err = db.r.QueryRowContext(ctx, `
			SELECT v.id, v.first_received_at, e.slug
			FROM events v JOIN endpoints e ON e.id = v.endpoint_id
			WHERE v.endpoint_id = ? AND v.event_type = ?
			ORDER BY v.id DESC LIMIT 1`, ep, typ).Scan(&le.EventID, &at, &le.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("find latest events: %w", err)
		}
		le.ReceivedAt = fromMicros(at)
		out = append(out, le)
	}
	return out, nil
}

// ExportEvents calls fn with every event matching f, newest first, reading pages of 500 so
// that neither memory nor a read transaction grows with the export. Events that arrive while
// it runs are not included (they are newer than its first page). f.Before and f.Limit are
// ignored.
func (db *DB) ExportEvents(ctx context.Context, f EventFilter, fn func(Event) error) error {
	f.Before, f.Limit = 0, 500
	for {
		page, next, err := db.FindEvents(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		f.Before = next
	}
}

// ExportDeliveries calls fn with every delivery matching f (without bodies), newest first, in
// pages of 500 like ExportEvents. f.Before, f.After and f.Limit are ignored.
func (db *DB) ExportDeliveries(ctx context.Context, f DeliveryFilter, fn func(Delivery) error) error {
	f.Before, f.After, f.Limit = 0, 0, 500
	for {
		page, err := db.FindDeliveries(ctx, f)
		if err != nil {
			return err
		}
		for _, d := range page {
			if err := fn(d); err != nil {
				return err
			}
		}
		if len(page) < f.Limit {
			return nil
		}
		f.Before = page[len(page)-1].ID
	}
}

// FindBody returns the stored body of a delivery, or ErrNotFound.
func (db *DB) FindBody(ctx context.Context, deliveryID int64) ([]byte, error) {
	var body []byte
	err := db.r.QueryRowContext(ctx,
		`SELECT body FROM delivery_bodies WHERE delivery_id = ?`, deliveryID).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("body of delivery %d: %w", deliveryID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find body of delivery %d: %w", deliveryID, err)
	}
	if body == nil {
		body = []byte{}
	}
	return body, nil
}

// placeholders returns "?, ?, ?" for n arguments.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}
