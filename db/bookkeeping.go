package db

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// What the ingest writer derives from the rows it stores, kept once per batch: the explorer's
// search index and schema drift, and the dashboard's hourly rollups. Triggers used to do this
// for every row, inside the single writer, and were most of its time (migration 0011). Rows
// written any other way still go through those triggers.

// BodyIndex is what the search index and schema drift take from one event body. CreateDelivery
// reads it before queueing the delivery, on a reader connection, so that the single writer only
// stores it.
type BodyIndex struct {
	Paths string // JSON array of the body's field paths, sorted; "[]" when it has none
	Text  string // what the search index holds for the body
}

// bodyIndexQuery is the SQL of the events_explorer_insert trigger (migration 0011), over a bound
// body instead of a stored one: SQLite's own JSON reading, so a body is indexed alike either
// way. Change both together, and indexBody (db/bodyindex.go), which must give the same answers.
const bodyIndexQuery = `
	WITH b (body) AS (SELECT ?)
	SELECT
		CASE WHEN length(body) <= 4194304 AND json_valid(CAST(body AS TEXT)) THEN (
			SELECT json_group_array(p ORDER BY p)
			FROM (
				SELECT DISTINCT replace(t.fullkey, '[0]', '[]') AS p
				FROM json_tree(CAST(body AS TEXT)) t
				WHERE t.fullkey != '$' AND t.fullkey NOT GLOB '*[[][1-9]*'
				ORDER BY p
				LIMIT 256))
		ELSE '[]' END,
		substr(CASE
			WHEN length(body) <= 4194304 AND json_valid(CAST(body AS TEXT)) THEN
				coalesce((SELECT group_concat(j.value, ' ')
				          FROM json_tree(CAST(body AS TEXT)) j
				          WHERE j.type IN ('text', 'integer', 'real')), '')
			ELSE CAST(substr(body, 1, 65536) AS TEXT)
		END, 1, 65536)
	FROM b`

// bodyIndex works out the index facts of body: in Go when indexBody can (db/bodyindex.go),
// else by asking SQLite (bodyIndexSQL).
func (db *DB) bodyIndex(ctx context.Context, tx *sql.Tx, body []byte) (*BodyIndex, error) {
	if ix, ok := indexBody(body); ok {
		return ix, nil
	}
	return db.bodyIndexSQL(ctx, tx, body)
}

// bodyIndexSQL reads the index facts of body with bodyIndexQuery: on the readers, or in the
// writer's transaction tx when it is not nil.
func (db *DB) bodyIndexSQL(ctx context.Context, tx *sql.Tx, body []byte) (*BodyIndex, error) {
	if body == nil {
		body = []byte{}
	}
	var row *sql.Row
	if tx != nil {
		row = db.txQueryRow(ctx, tx, bodyIndexQuery, body)
	} else {
		row = db.indexStmt.QueryRowContext(ctx, body)
	}
	var paths string
	var text sql.NullString // an empty body binds as NULL, and indexes as no text
	if err := row.Scan(&paths, &text); err != nil {
		return nil, fmt.Errorf("index body: %w", err)
	}
	return &BodyIndex{Paths: paths, Text: text.String}, nil
}

// loadAckBuckets reads the upper bounds of the ack latency histogram (fixed by migration 0009).
func (db *DB) loadAckBuckets(ctx context.Context) error {
	rows, err := db.w.QueryContext(ctx, `SELECT bucket, upper FROM ack_buckets ORDER BY upper`)
	if err != nil {
		return fmt.Errorf("read ack buckets: %w", err)
	}
	defer rows.Close()
	db.ackBuckets = db.ackBuckets[:0]
	for rows.Next() {
		var b [2]int64
		if err := rows.Scan(&b[0], &b[1]); err != nil {
			return fmt.Errorf("read ack buckets: %w", err)
		}
		db.ackBuckets = append(db.ackBuckets, b)
	}
	return rows.Err()
}

// ackBucket is the histogram bucket of an ack latency: the first whose upper bound is above it,
// or the last one.
func (db *DB) ackBucket(ack int64) int64 {
	bs := db.ackBuckets
	i := sort.Search(len(bs), func(i int) bool { return bs[i][1] > ack })
	if i == len(bs) {
		i = len(bs) - 1
	}
	if i < 0 {
		return 0
	}
	return bs[i][0]
}

const hourMicros = 3600000000

// shapeKey names a schema shape: an event type and its sorted field paths.
type shapeKey struct{ typ, paths string }

// maxShapeIDs bounds the writer's memory of shape ids; past it, new shapes are found through
// their unique index as before.
const maxShapeIDs = 4096

// rememberShapes adds the shape ids of a committed batch to the writer's memory.
func (db *DB) rememberShapes(learned map[shapeKey]int64) {
	if db.shapeIDs == nil {
		db.shapeIDs = map[shapeKey]int64{}
	}
	for k, id := range learned {
		if len(db.shapeIDs) >= maxShapeIDs {
			return
		}
		db.shapeIDs[k] = id
	}
}

// keepBatch writes what the triggers of migration 0011 stand aside for, for the stored jobs of
// one batch: per new delivery the hourly delivery and ack rollups, per new event its search
// text, its shape and the per-type field counts, and the hourly event rollup. Counts are summed
// per group in memory and written once per group.
//
// learned collects the ids of the shapes it wrote; the writer adds them to db.shapeIDs once the
// transaction has committed.
func (db *DB) keepBatch(ctx context.Context, tx *sql.Tx, batch []*job, learned map[shapeKey]int64) error {
	type delKey struct {
		hour, endpoint  int64
		verdict, reason string
	}
	type ackKey struct{ hour, endpoint, bucket int64 }
	type evKey struct {
		hour, endpoint int64
		typ            string
	}
	dels := map[delKey]*[2]int64{} // deliveries, duplicates
	acks := map[ackKey]int64{}
	evs := map[evKey]int64{}
	shapes := map[shapeKey][]int64{} // event ids, ascending (jobs are in id order)
	var search []any                 // rowid, text of each new event

	for _, j := range batch {
		if j.err != nil {
			continue
		}
		d := &j.in.Delivery
		received := micros(d.ReceivedAt)
		if j.in.Promote == 0 {
			k := delKey{received / hourMicros, d.EndpointID, string(d.Verdict), d.Reason}
			c := dels[k]
			if c == nil {
				c = new([2]int64)
				dels[k] = c
			}
			c[0]++
			if j.res.Duplicate {
				c[1]++
			}
			acks[ackKey{received / hourMicros, d.EndpointID, db.ackBucket(j.ack)}]++
		}
		if j.in.Event == nil || j.res.EventID == 0 || j.res.DeliveryCount != 1 {
			continue
		}
		typ := j.res.EventType
		evs[evKey{received / hourMicros, d.EndpointID, typ}]++
		ix := j.in.Event.Index
		if ix == nil {
			var err error
			if ix, err = db.bodyIndex(ctx, tx, d.Body); err != nil {
				return err
			}
		}
		search = append(search, j.res.EventID, ix.Text)
		if ix.Paths != "[]" {
			k := shapeKey{typ, ix.Paths}
			shapes[k] = append(shapes[k], j.res.EventID)
		}
	}

	if err := db.execRows(ctx, tx, `INSERT OR REPLACE INTO events_fts (rowid, text) VALUES `,
		`(?, ?)`, search); err != nil {
		return fmt.Errorf("index events: %w", err)
	}
	for k, c := range dels {
		if _, err := db.txExec(ctx, tx, `
			INSERT INTO stats_deliveries (hour, endpoint_id, verdict, reason, deliveries, duplicates)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (hour, endpoint_id, verdict, reason) DO UPDATE SET
				deliveries = deliveries + excluded.deliveries,
				duplicates = duplicates + excluded.duplicates`,
			k.hour, k.endpoint, k.verdict, k.reason, c[0], c[1]); err != nil {
			return fmt.Errorf("count deliveries: %w", err)
		}
	}
	for k, n := range acks {
		if _, err := db.txExec(ctx, tx, `
			INSERT INTO stats_ack (hour, endpoint_id, bucket, deliveries) VALUES (?, ?, ?, ?)
			ON CONFLICT (hour, endpoint_id, bucket) DO UPDATE SET
				deliveries = deliveries + excluded.deliveries`,
			k.hour, k.endpoint, k.bucket, n); err != nil {
			return fmt.Errorf("count ack latency: %w", err)
		}
	}
	for k, n := range evs {
		if _, err := db.txExec(ctx, tx, `
			INSERT INTO stats_events (hour, endpoint_id, event_type, events) VALUES (?, ?, ?, ?)
			ON CONFLICT (hour, endpoint_id, event_type) DO UPDATE SET
				events = events + excluded.events`,
			k.hour, k.endpoint, k.typ, n); err != nil {
			return fmt.Errorf("count events: %w", err)
		}
	}

	// Shapes in the order of their first event, so a field two shapes of the batch share is
	// first seen in the earlier event, as row by row.
	keys := make([]shapeKey, 0, len(shapes))
	for k := range shapes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b shapeKey) int { return cmp.Compare(shapes[a][0], shapes[b][0]) })
	types := map[string]int64{}
	for _, k := range keys {
		ids := shapes[k]
		first, last, n := ids[0], ids[len(ids)-1], int64(len(ids))
		shapeID, known := db.shapeIDs[k]
		if known {
			// A shape seen before: count on its row by id, without the unique index's long
			// key. (Shapes are never deleted; their counts only go down.)
			res, err := db.txExec(ctx, tx, `
				UPDATE schema_shapes SET events = events + ?, last_event_id = ? WHERE id = ?`,
				n, last, shapeID)
			if err != nil {
				return fmt.Errorf("count shape: %w", err)
			}
			if c, err := res.RowsAffected(); err != nil || c != 1 {
				known = false
				delete(db.shapeIDs, k)
			}
		}
		if !known {
			if err := db.txQueryRow(ctx, tx, `
			INSERT INTO schema_shapes (event_type, paths, events, first_event_id, last_event_id)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (event_type, paths) DO UPDATE SET
				events = events + excluded.events,
				last_event_id = excluded.last_event_id
			RETURNING id`, k.typ, k.paths, n, first, last).Scan(&shapeID); err != nil {
				return fmt.Errorf("count shape: %w", err)
			}
			learned[k] = shapeID
		}
		idList, err := json.Marshal(ids)
		if err != nil {
			return fmt.Errorf("count shape: %w", err)
		}
		if _, err := db.txExec(ctx, tx, `
			INSERT OR REPLACE INTO event_shapes (event_id, shape_id)
			SELECT j.value, ? FROM json_each(?) j`, shapeID, string(idList)); err != nil {
			return fmt.Errorf("mark event shapes: %w", err)
		}
		if _, err := db.txExec(ctx, tx, `
			INSERT INTO schema_paths (event_type, path, events, first_event_id)
			SELECT ?, j.value, ?, ? FROM json_each(?) j WHERE true
			ON CONFLICT (event_type, path) DO UPDATE SET events = events + excluded.events`,
			k.typ, n, first, k.paths); err != nil {
			return fmt.Errorf("count fields: %w", err)
		}
		types[k.typ] += n
	}
	for typ, n := range types {
		if _, err := db.txExec(ctx, tx, `
			INSERT INTO schema_types (event_type, events) VALUES (?, ?)
			ON CONFLICT (event_type) DO UPDATE SET events = events + excluded.events`,
			typ, n); err != nil {
			return fmt.Errorf("count types: %w", err)
		}
	}
	return nil
}
