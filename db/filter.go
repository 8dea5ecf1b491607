package db

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Every list the UI can show walks ids newest first (keyset pagination on the primary key:
// rows that arrive while someone pages never shift the pages), and every filter below is
// served by an index in id order (migration 0009). TestListQueriesUseIndexes checks the plan of
// each combination with EXPLAIN QUERY PLAN.

// arrivalSlack bounds how much later than another delivery one that arrived earlier can commit.
// A time range is turned into a range of ids with it, so that a range far in the past is found
// through an index instead of by walking every newer id.
//
// NOTE: ids follow commit order while times are stamped on arrival; a delivery commits within
// the server's read and write timeouts (60 s each) of arriving, so one that arrived more than
// arrivalSlack after another always has the larger id. Raise this with those timeouts. A wall
// clock stepped back by more than this could hide events at the edge of a range.
const arrivalSlack = 10 * time.Minute

// noCursor is the cursor of a first page: a keyset query always bounds the id, so its plan is
// a search of the primary key (or of an index) and never a bare scan.
const noCursor = math.MaxInt64

// clause collects SQL conditions and their arguments.
type clause struct {
	conds []string
	args  []any
}

func (c *clause) add(cond string, args ...any) {
	c.conds = append(c.conds, cond)
	c.args = append(c.args, args...)
}

func (c *clause) where() string {
	if len(c.conds) == 0 {
		return ""
	}
	return "\n\t\tWHERE " + strings.Join(c.conds, "\n\t\t\tAND ")
}

// eventConds adds the conditions of f on events aliased v, except the cursor and the id bounds
// of a time range. single says the query checks one known event (a live update): search then
// probes the full-text index for that row instead of collecting every match.
func eventConds(c *clause, f EventFilter, single bool) {
	if f.EndpointID != nil {
		c.add("v.endpoint_id = ?", *f.EndpointID)
	}
	if f.EndpointSlug != nil {
		c.add("v.endpoint_id = (SELECT id FROM endpoints WHERE slug = ?)", *f.EndpointSlug)
	}
	if f.EventType != nil {
		c.add("v.event_type = ?", *f.EventType)
	}
	if f.Since != nil {
		c.add("v.first_received_at >= ?", micros(*f.Since))
	}
	if f.Until != nil {
		c.add("v.first_received_at < ?", micros(*f.Until))
	}
	if f.Duplicates != nil {
		if *f.Duplicates {
			c.add("v.delivery_count > 1")
		} else {
			c.add("v.delivery_count = 1")
		}
	}
	if f.Search != nil {
		if single {
			searchOne(c, "v.id", *f.Search)
		} else {
			searchIn(c, "v.id", *f.Search)
		}
	}
}

// deliveryConds adds the conditions of f on deliveries aliased d, except cursors and the id
// bounds of a time range.
func deliveryConds(c *clause, f DeliveryFilter, single bool) {
	if f.Verdict != nil {
		c.add("d.verdict = ?", string(*f.Verdict))
	}
	if f.Reason != nil {
		// Only rejected deliveries have a reason, and they are few (bounded): the verdict
		// index serves this.
		c.add("d.verdict = 'rejected'")
		c.add("d.reason = ?", *f.Reason)
	}
	if f.EventID != nil {
		c.add("d.event_id = ?", *f.EventID)
	}
	if f.EndpointID != nil {
		c.add("d.endpoint_id = ?", *f.EndpointID)
	}
	if f.EndpointSlug != nil {
		c.add("d.endpoint_id = (SELECT id FROM endpoints WHERE slug = ?)", *f.EndpointSlug)
	}
	if f.EventType != nil {
		c.add("d.event_type = ?", *f.EventType)
	}
	if f.Since != nil {
		c.add("d.received_at >= ?", micros(*f.Since))
	}
	if f.Until != nil {
		c.add("d.received_at < ?", micros(*f.Until))
	}
	if f.Duplicates != nil {
		if *f.Duplicates {
			c.add("d.duplicate = 1")
		} else {
			c.add("d.duplicate = 0")
		}
	}
	if f.Search != nil {
		if single {
			searchOne(c, "d.event_id", *f.Search)
		} else {
			searchIn(c, "d.event_id", *f.Search)
		}
	}
}

// searchIn matches the event id in col against one search box: any Plaud id (file,
// transcription, device, envelope), plaudhook's own event number ("#12"), or words of the
// payload text. Each part is an index lookup; the union of their ids is then walked in order.
func searchIn(c *clause, col, term string) {
	term = strings.TrimSpace(term)
	parts := []string{
		"SELECT id FROM events WHERE file_id = ? AND file_id != ''",
		"SELECT id FROM events WHERE transcription_id = ? AND transcription_id != ''",
		"SELECT id FROM events WHERE device_id = ? AND device_id != ''",
		"SELECT id FROM events WHERE envelope_id = ? AND envelope_id != ''",
	}
	args := []any{term, term, term, term}
	if n, ok := eventNumber(term); ok {
		parts = append(parts, "SELECT ?")
		args = append(args, n)
	}
	if q := ftsQuery(term); q != "" {
		parts = append(parts, "SELECT rowid FROM events_fts WHERE events_fts MATCH ?")
		args = append(args, q)
	}
	c.add(col+" IN (\n\t\t\t"+strings.Join(parts, "\n\t\t\tUNION ALL ")+")", args...)
}

// searchOne is searchIn for a query about one row: the same matches, probed for that row.
func searchOne(c *clause, col, term string) {
	term = strings.TrimSpace(term)
	cond := "(EXISTS (SELECT 1 FROM events s WHERE s.id = " + col + ` AND ? != ''
		AND (s.file_id = ? OR s.transcription_id = ? OR s.device_id = ? OR s.envelope_id = ?))`
	args := []any{term, term, term, term, term}
	if n, ok := eventNumber(term); ok {
		cond += " OR " + col + " = ?"
		args = append(args, n)
	}
	if q := ftsQuery(term); q != "" {
		// A NULL rowid constraint is not "no row" to FTS5: test for it first.
		cond += " OR (" + col + " IS NOT NULL AND EXISTS (SELECT 1 FROM events_fts" +
			" WHERE events_fts MATCH ? AND rowid = " + col + "))"
		args = append(args, q)
	}
	c.add(cond+")", args...)
}

// eventNumber reads "#12" or "12" as plaudhook's event number.
func eventNumber(term string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(term, "#"), 10, 64)
	return n, err == nil && n > 0
}

// ftsQuery turns what someone typed into an FTS5 query: every word must appear, each as a
// quoted phrase (so no character is FTS syntax) matching as a prefix ("transcri" finds
// "transcription"). Words without a letter or digit are dropped; "" means nothing to search.
func ftsQuery(term string) string {
	var words []string
	for _, w := range strings.Fields(term) {
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			continue
		}
		words = append(words, `"`+strings.ReplaceAll(w, `"`, `""`)+`"*`)
	}
	return strings.Join(words, " ")
}

// idBounds returns the smallest and largest id a row with a time in [since, until) can have,
// in a table whose ids follow its time column within arrivalSlack. ok is false when no row
// can match. Each bound costs an index seek and a walk over one arrivalSlack of rows.
func (db *DB) idBounds(ctx context.Context, table, col string, since, until *time.Time) (lo, hi int64, ok bool, err error) {
	lo, hi = 0, noCursor
	slack := arrivalSlack.Microseconds()
	if since != nil {
		var v sql.NullInt64
		err = db.r.QueryRowContext(ctx, `
			SELECT min(x.id)
			FROM `+table+` x, (
				SELECT `+col+` AS t0 FROM `+table+` WHERE `+col+` >= ?
				ORDER BY `+col+` LIMIT 1) b
			WHERE x.`+col+` >= b.t0 AND x.`+col+` < b.t0 + ?`,
			micros(*since), slack).Scan(&v)
		if err != nil {
			return 0, 0, false, fmt.Errorf("find id bounds: %w", err)
		}
		if !v.Valid {
			return 0, 0, false, nil
		}
		lo = v.Int64
	}
	if until != nil {
		var v sql.NullInt64
		err = db.r.QueryRowContext(ctx, `
			SELECT max(x.id)
			FROM `+table+` x, (
				SELECT `+col+` AS t1 FROM `+table+` WHERE `+col+` < ?
				ORDER BY `+col+` DESC LIMIT 1) b
			WHERE x.`+col+` <= b.t1 AND x.`+col+` > b.t1 - ?`,
			micros(*until), slack).Scan(&v)
		if err != nil {
			return 0, 0, false, fmt.Errorf("find id bounds: %w", err)
		}
		if !v.Valid {
			return 0, 0, false, nil
		}
		hi = v.Int64
	}
	return lo, hi, lo <= hi, nil
}

// eventListQuery builds the query of one page of events: newest first below f.Before, at most
// limit rows. ok is false when the time range holds no event at all.
//
// A search for words is two keyset queries joined: one through the id indexes, and one that
// walks the full-text index newest first and stops at limit matches, so a common word costs a
// page, not every event that has it. The union of the two (at most twice limit rows) is then
// sorted.
func (db *DB) eventListQuery(ctx context.Context, f EventFilter, limit int) (string, []any, bool, error) {
	before := f.Before
	if before <= 0 {
		before = noCursor
	}
	var lo, hi int64
	bounded := f.Since != nil || f.Until != nil
	if bounded {
		var ok bool
		var err error
		lo, hi, ok, err = db.idBounds(ctx, "events", "first_received_at", f.Since, f.Until)
		if err != nil || !ok {
			return "", nil, false, err
		}
	}
	page := func(c *clause, from, id string) (string, []any) {
		c.add(id+" < ?", before)
		if bounded {
			c.add(id+" BETWEEN ? AND ?", lo, hi)
		}
		q := `SELECT ` + eventColumns + `
		FROM ` + from + `
		JOIN endpoints e ON e.id = v.endpoint_id` + c.where() + `
		ORDER BY ` + id + ` DESC LIMIT ?`
		return q, append(c.args, limit)
	}

	words := ""
	if f.Search != nil {
		words = ftsQuery(*f.Search)
	}
	if words == "" {
		c := &clause{}
		eventConds(c, f, false)
		q, args := page(c, "events v", "v.id")
		return q, args, true, nil
	}

	// Exact ids (and the event number) through their indexes.
	term := strings.TrimSpace(*f.Search)
	rest := f
	rest.Search = nil
	c1 := &clause{}
	eventConds(c1, rest, false)
	ids := []string{
		"SELECT id FROM events WHERE file_id = ? AND file_id != ''",
		"SELECT id FROM events WHERE transcription_id = ? AND transcription_id != ''",
		"SELECT id FROM events WHERE device_id = ? AND device_id != ''",
		"SELECT id FROM events WHERE envelope_id = ? AND envelope_id != ''",
	}
	idArgs := []any{term, term, term, term}
	if n, ok := eventNumber(term); ok {
		ids = append(ids, "SELECT ?")
		idArgs = append(idArgs, n)
	}
	c1.add("v.id IN (\n\t\t\t"+strings.Join(ids, "\n\t\t\tUNION ALL ")+")", idArgs...)
	q1, args1 := page(c1, "events v", "v.id")

	// Words through the full-text index, newest first.
	c2 := &clause{}
	c2.add("events_fts MATCH ?", words)
	eventConds(c2, rest, false)
	// CROSS JOIN keeps the full-text index as the outer loop, walked newest first.
	q2, args2 := page(c2, "events_fts f\n\t\tCROSS JOIN events v ON v.id = f.rowid", "f.rowid")

	q := `SELECT * FROM (` + q1 + `)
		UNION
		SELECT * FROM (` + q2 + `)
		ORDER BY 1 DESC LIMIT ?`
	args := append(append(args1, args2...), limit)
	return q, args, true, nil
}

// deliveryListQuery builds the query of one page of deliveries: newest first below f.Before,
// or oldest first above f.After.
func (db *DB) deliveryListQuery(ctx context.Context, f DeliveryFilter, limit int) (string, []any, bool, error) {
	c := &clause{}
	deliveryConds(c, f, false)
	order := "d.id DESC"
	if f.After > 0 {
		c.add("d.id > ?", f.After)
		order = "d.id ASC"
	} else {
		before := f.Before
		if before <= 0 {
			before = noCursor
		}
		c.add("d.id < ?", before)
	}
	if f.Since != nil || f.Until != nil {
		lo, hi, ok, err := db.idBounds(ctx, "deliveries", "received_at", f.Since, f.Until)
		if err != nil || !ok {
			return "", nil, false, err
		}
		c.add("d.id BETWEEN ? AND ?", lo, hi)
	}
	q := `SELECT ` + deliveryColumns + `
		FROM deliveries d
		JOIN endpoints e ON e.id = d.endpoint_id` + c.where() + `
		ORDER BY ` + order + ` LIMIT ?`
	return q, append(c.args, limit), true, nil
}

// EventMatches reports whether the event with id matches f (its cursor and limit aside): what
// a live list asks before showing a new row.
func (db *DB) EventMatches(ctx context.Context, f EventFilter, id int64) (bool, error) {
	c := &clause{}
	eventConds(c, f, true)
	c.add("v.id = ?", id)
	var one int
	err := db.r.QueryRowContext(ctx, `SELECT 1 FROM events v`+c.where(), c.args...).Scan(&one)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("match event %d: %w", id, err)
	}
	return true, nil
}

// DeliveryMatches reports whether the delivery with id matches f (its cursors and limit aside).
func (db *DB) DeliveryMatches(ctx context.Context, f DeliveryFilter, id int64) (bool, error) {
	c := &clause{}
	deliveryConds(c, f, true)
	c.add("d.id = ?", id)
	var one int
	err := db.r.QueryRowContext(ctx, `SELECT 1 FROM deliveries d`+c.where(), c.args...).Scan(&one)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("match delivery %d: %w", id, err)
	}
	return true, nil
}
