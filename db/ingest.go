package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Ingest is what the webhook path hands to storage for one delivery. Event is nil for a
// rejected delivery.
type Ingest struct {
	Delivery Delivery
	Event    *Event // facts read from a verified body: dedupe key, type, ids, summary
	// Promote is the id of a stored rejected delivery that Delivery re-verified: that row
	// becomes verified in place (no new delivery), and its event is stored like any other.
	Promote int64
}

// IngestResult says what a committed delivery became.
type IngestResult struct {
	DeliveryID    int64
	EventID       int64 // 0 for a rejected delivery
	Duplicate     bool  // the event was already stored; this delivery was added to it
	DeliveryCount int   // deliveries of the event so far, this one included
	BatchSize     int   // deliveries that shared this commit
	BatchFirst    bool  // the first delivery of its batch: metrics count each batch once
	// EventType is the stored event's type (a repeat keeps the type its event was stored with).
	EventType string
	// Forwarding says a forwarding rule was enabled when the event was stored: a new event may
	// have been queued for forwarding in the same commit (migration 0008's trigger).
	Forwarding bool
}

type job struct {
	in   *Ingest
	res  IngestResult
	err  error
	done chan struct{}

	// Kept by the writer for the batch's bookkeeping (db/bookkeeping.go): microseconds from
	// receipt to the writer taking the delivery.
	ack int64
}

// CreateDelivery stores one delivery and, when it verified, its event (or adds it to the event
// it duplicates). It returns only after the transaction holding the delivery has committed, so
// a caller may acknowledge the sender as soon as it returns nil. Concurrent calls share commits
// (group commit): one writer goroutine drains the queue into a transaction per batch.
//
// It returns an error wrapping ErrUnavailable when the commit failed or the database is closed:
// nothing of the delivery is stored then.
func (db *DB) CreateDelivery(ctx context.Context, in *Ingest) (IngestResult, error) {
	// Read what the search index and schema drift need from the body here, on a reader and in
	// the caller's goroutine, so that deliveries arriving together are read in parallel and
	// the single writer only stores the result. Failing that, the writer reads it itself.
	if in.Event != nil && in.Event.Index == nil && db.indexStmt != nil {
		if ix, err := db.bodyIndex(ctx, nil, in.Delivery.Body); err == nil {
			in.Event.Index = ix
		}
	}
	j := &job{in: in, done: make(chan struct{})}

	// Queue the job; once queued it is committed or failed by the writer, whatever happens
	// to ctx, so the answer to the sender always matches what is on disk.
	if err := db.enqueue(ctx, j); err != nil {
		return IngestResult{}, err
	}
	<-j.done
	return j.res, j.err
}

func (db *DB) enqueue(ctx context.Context, j *job) (err error) {
	defer func() {
		// Sending on the closed queue of a closed DB panics: report it as unavailable.
		if recover() != nil {
			err = fmt.Errorf("create delivery: %w: database closed", ErrUnavailable)
		}
	}()
	select {
	case db.jobs <- j:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("create delivery: %w", ctx.Err())
	}
}

// runWriter is the single ingest writer: it takes every job that is waiting, commits them in
// one transaction and wakes their callers.
func (db *DB) runWriter() {
	defer close(db.stopped)
	batch := make([]*job, 0, db.opt.MaxBatch)
	for first := range db.jobs {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < db.opt.MaxBatch {
			select {
			case j, ok := <-db.jobs:
				if !ok {
					break drain
				}
				batch = append(batch, j)
			default:
				break drain
			}
		}
		db.commitBatch(batch)
		db.tailCheckpoint(context.Background())
	}
}

// errJobFailed asks commitBatch to write the batch again, one savepoint per job.
var errJobFailed = errors.New("a delivery of the batch failed")

// commitBatch writes every job of the batch in one transaction and wakes the callers once it
// has committed. The batch is first written straight through; if one job's statements fail
// (rare: a promote that lost its race), the transaction is rolled back and written again with a
// savepoint per job, so that job alone fails. A failed commit fails them all.
func (db *DB) commitBatch(batch []*job) {
	err := db.writeBatch(batch, false)
	if errors.Is(err, errJobFailed) {
		err = db.writeBatch(batch, true)
	}
	if err != nil {
		// Whatever made the transaction fail (a full disk, an I/O error, a refused COMMIT),
		// none of the batch is stored: every sender is told to retry later (503), never that
		// its delivery was at fault.
		if err = unavailable(err); !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		err = fmt.Errorf("commit deliveries: %w", err)
		db.log.Error("ingest commit failed", "batch_size", len(batch), "error", err)
		for _, j := range batch {
			if j.err == nil {
				j.err = err
			}
			close(j.done)
		}
		return
	}
	db.wakeCheckpointer()
	for i, j := range batch {
		j.res.BatchSize = len(batch)
		j.res.BatchFirst = i == 0
		close(j.done)
	}
}

// forwardingQuery tells whether any forwarding rule is enabled.
const forwardingQuery = `SELECT EXISTS (SELECT 1 FROM forwarding_rules WHERE enabled = 1)`

// writeBatch writes and commits the batch in one transaction. careful puts each job in a
// savepoint of its own; otherwise the first failing job aborts the transaction with
// errJobFailed.
func (db *DB) writeBatch(batch []*job, careful bool) (err error) {
	ctx := context.Background()
	for _, j := range batch {
		j.res, j.err = IngestResult{}, nil
	}
	db.prepareWanted(ctx)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	// Stand the bookkeeping triggers aside for this transaction (migration 0011).
	if _, err := db.txExec(ctx, tx, `INSERT INTO ingest_batch (id) VALUES (1)`); err != nil {
		return err
	}
	// Deliveries get their ids here, as SQLite would give them, so that a new event can name
	// its delivery before the delivery row (which names the event) is written.
	var next int64
	if err := db.txQueryRow(ctx, tx, `SELECT coalesce(max(id), 0) + 1 FROM deliveries`).Scan(&next); err != nil {
		return err
	}

	// Written straight through, the delivery and body rows of the whole batch go in a few
	// multi-row statements after the events they name; carefully, each job alone.
	var rows *batchRows
	if !careful {
		rows = &batchRows{}
	}
	rejected := 0
	for _, j := range batch {
		if careful {
			if _, err := db.txExec(ctx, tx, `SAVEPOINT job`); err != nil {
				return err
			}
		}
		j.res, j.err = db.insertDelivery(ctx, tx, j, next, rows)
		if j.err != nil {
			if !careful {
				return errJobFailed
			}
			db.log.Error("store delivery", "error", j.err)
			if _, err := db.txExec(ctx, tx, `ROLLBACK TO job`); err != nil {
				return err
			}
		} else if j.in.Promote == 0 {
			next++
		}
		if careful {
			if _, err := db.txExec(ctx, tx, `RELEASE job`); err != nil {
				return err
			}
		}
		if j.err == nil && j.in.Event == nil {
			rejected++
		}
	}
	if rows != nil {
		if err := db.execRows(ctx, tx, deliveryInsert, deliveryRow, rows.deliveries); err != nil {
			// A row the batch could not take (a constraint): find it job by job.
			return fmt.Errorf("%w: insert deliveries: %w", errJobFailed, err)
		}
		if err := db.execRows(ctx, tx, bodyInsert, bodyRow, rows.bodies); err != nil {
			return fmt.Errorf("%w: insert bodies: %w", errJobFailed, err)
		}
	}

	// Whether the new events may have been queued for forwarding: one read per batch, so the
	// forwarder is woken only when it may have work.
	var forwarding bool
	if err := db.txQueryRow(ctx, tx, forwardingQuery).Scan(&forwarding); err != nil {
		return err
	}
	for _, j := range batch {
		j.res.Forwarding = forwarding && j.err == nil && j.res.EventID != 0 && !j.res.Duplicate
	}

	learned := map[shapeKey]int64{}
	if !db.skipBookkeeping {
		if err := db.keepBatch(ctx, tx, batch, learned); err != nil {
			return err
		}
	}
	// Count matches on the secrets that verified, in the same transaction.
	if err := db.countSecretMatches(ctx, tx, batch); err != nil {
		db.log.Warn("count secret matches", "error", err)
	}

	// Keep the rejected log bounded: prune in the same transaction every so often, so a flood
	// of junk deliveries costs a few deletes per hundred rows and never fills the disk.
	db.rejectedSincePrune += rejected
	if db.rejectedSincePrune >= 100 {
		if err := db.pruneRejected(ctx, tx); err != nil {
			db.log.Warn("prune rejected deliveries", "error", err)
		}
		db.rejectedSincePrune = 0
		db.kickRetention() // the bytes bound is checked outside this transaction
	}

	if _, err := db.txExec(ctx, tx, `DELETE FROM ingest_batch`); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	db.rememberShapes(learned)
	return nil
}

// insertDelivery writes one delivery with the given id, its body and, when verified, its event,
// inside tx. A verified delivery's event comes first, so the delivery row is written once,
// complete with its event and whether it repeats it. With rows set, the delivery and body rows
// are added there for the batch's multi-row statements instead of written at once.
func (db *DB) insertDelivery(ctx context.Context, tx *sql.Tx, j *job, id int64, rows *batchRows) (IngestResult, error) {
	in := j.in
	d := &in.Delivery
	received := micros(d.ReceivedAt)
	j.ack = micros(db.now()) - received
	if in.Promote != 0 {
		return db.promoteDelivery(ctx, tx, j) // db/secret_ingest.go
	}
	headers, err := json.Marshal(d.Header)
	if err != nil {
		return IngestResult{}, fmt.Errorf("encode headers: %w", err)
	}
	if d.Header == nil {
		headers = []byte("{}")
	}

	out := IngestResult{DeliveryID: id}
	var eventID any // NULL for a rejected delivery
	if in.Event != nil {
		if err := db.upsertEvent(ctx, tx, j, id, &out); err != nil {
			return out, err
		}
		eventID = out.EventID
	}
	body := d.Body
	if body == nil {
		body = []byte{}
	}
	deliveryArgs := []any{id, d.EndpointID, received, d.RemoteAddr, d.Method, d.Path,
		string(headers), d.BodySHA256, d.Size, d.BodyTruncated, d.ContentType,
		d.ContentEncoding, string(d.Verdict), d.Reason, d.Scheme, d.SecretLabel,
		d.SenderTimestamp, d.SkewMS, j.ack, nullID(d.SecretID), d.SecretOld, eventID,
		out.Duplicate, out.EventType}
	if rows != nil {
		rows.deliveries = append(rows.deliveries, deliveryArgs...)
		rows.bodies = append(rows.bodies, id, body)
		return out, nil
	}
	if _, err := db.txExec(ctx, tx, deliveryInsert+deliveryRow, deliveryArgs...); err != nil {
		return IngestResult{}, fmt.Errorf("insert delivery: %w", conflict(err))
	}
	if _, err := db.txExec(ctx, tx, bodyInsert+bodyRow, id, body); err != nil {
		return IngestResult{}, fmt.Errorf("insert body: %w", err)
	}
	return out, nil
}

// The statements of a delivery and its body, whose VALUES rows a batch repeats.
const (
	deliveryInsert = `INSERT INTO deliveries (id, endpoint_id, received_at, remote_addr, method,
		path, headers, body_sha256, size, body_truncated, content_type, content_encoding, verdict,
		reason, scheme, secret_label, sender_timestamp, skew_ms, ack_micros, secret_id,
		secret_old, event_id, duplicate, event_type) VALUES `
	deliveryRow = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	bodyInsert  = `INSERT INTO delivery_bodies (delivery_id, body) VALUES `
	bodyRow     = `(?, ?)`
)

// batchRows gathers the arguments of a batch's delivery and body rows, in id order.
type batchRows struct{ deliveries, bodies []any }

// execRows runs head followed by as many copies of row as args fill, in statements of 64, 16,
// 4 or 1 rows: a few prepared statements serve every batch size, and a batch costs a handful
// of statements instead of one per row.
func (db *DB) execRows(ctx context.Context, tx *sql.Tx, head, row string, args []any) error {
	width := strings.Count(row, "?")
	for len(args) > 0 {
		n := len(args) / width
		for _, size := range []int{64, 16, 4, 1} {
			if n >= size {
				n = size
				break
			}
		}
		if _, err := db.txExec(ctx, tx, db.rowsQuery(head, row, n), args[:n*width]...); err != nil {
			return err
		}
		args = args[n*width:]
	}
	return nil
}

// rowsQuery is head with n copies of row, built once per shape so the statement cache sees
// the same text each time.
func (db *DB) rowsQuery(head, row string, n int) string {
	k := rowsKey{head, n}
	if q, ok := db.rowsQueries[k]; ok {
		return q
	}
	var b strings.Builder
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	if db.rowsQueries == nil {
		db.rowsQueries = map[rowsKey]string{}
	}
	db.rowsQueries[k] = b.String()
	return b.String()
}

type rowsKey struct {
	head string
	n    int
}

// upsertEvent stores the event of the verified delivery deliveryID, inside tx: a new event whose
// body is that delivery's, or this delivery counted on the event it repeats. The unique
// (endpoint_id, dedupe_key) index makes this safe under any concurrency. It sets out's event
// fields.
func (db *DB) upsertEvent(ctx context.Context, tx *sql.Tx, j *job, deliveryID int64, out *IngestResult) error {
	d, v := &j.in.Delivery, j.in.Event
	received := micros(d.ReceivedAt)
	err := db.txQueryRow(ctx, tx, `
		INSERT INTO events (endpoint_id, dedupe_key, event_type, envelope_id, file_id,
			transcription_id, device_id, is_json, size, summary, first_received_at,
			last_received_at, delivery_count, body_delivery_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
		ON CONFLICT (endpoint_id, dedupe_key) DO UPDATE SET
			last_received_at = max(last_received_at, excluded.last_received_at),
			delivery_count = delivery_count + 1
		RETURNING id, delivery_count, event_type`,
		d.EndpointID, v.DedupeKey, v.EventType, v.EnvelopeID, v.FileID, v.TranscriptionID,
		v.DeviceID, v.JSON, v.Size, v.Summary, received, received, deliveryID,
	).Scan(&out.EventID, &out.DeliveryCount, &out.EventType)
	if err != nil {
		return fmt.Errorf("upsert event: %w", err)
	}
	out.Duplicate = out.DeliveryCount > 1
	return nil
}

// pruneRejected deletes the oldest rejected deliveries beyond MaxRejected.
func (db *DB) pruneRejected(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `
		DELETE FROM deliveries
		WHERE verdict = 'rejected' AND id <= (
			SELECT id FROM deliveries WHERE verdict = 'rejected'
			ORDER BY id DESC LIMIT 1 OFFSET ?)`, db.opt.MaxRejected)
	return err
}

// Now returns the storage clock's time; handlers use it to stamp receipts consistently.
func (db *DB) Now() time.Time { return db.now() }
