package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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
}

type job struct {
	in   *Ingest
	res  IngestResult
	err  error
	done chan struct{}
}

// CreateDelivery stores one delivery and, when it verified, its event (or adds it to the event
// it duplicates). It returns only after the transaction holding the delivery has committed, so
// a caller may acknowledge the sender as soon as it returns nil. Concurrent calls share commits
// (group commit): one writer goroutine drains the queue into a transaction per batch.
//
// It returns an error wrapping ErrUnavailable when the commit failed or the database is closed:
// nothing of the delivery is stored then.
func (db *DB) CreateDelivery(ctx context.Context, in *Ingest) (IngestResult, error) {
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
	}
}

// commitBatch writes every job of the batch in one transaction. A job whose statements fail is
// rolled back to its savepoint alone; a failed commit fails them all.
func (db *DB) commitBatch(batch []*job) {
	ctx := context.Background()
	// Whatever made the transaction fail (a full disk, an I/O error, a refused COMMIT), none of
	// the batch is stored: every sender is told to retry later (503), never that its delivery
	// was at fault.
	fail := func(err error) {
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
	}

	db.prepareWanted(ctx)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	rejected := 0
	for _, j := range batch {
		if _, err := db.txExec(ctx, tx, `SAVEPOINT job`); err != nil {
			tx.Rollback()
			fail(err)
			return
		}
		j.res, j.err = db.insertDelivery(ctx, tx, j.in)
		if j.err != nil {
			db.log.Error("store delivery", "error", j.err)
			if _, err := db.txExec(ctx, tx, `ROLLBACK TO job`); err != nil {
				tx.Rollback()
				fail(err)
				return
			}
		}
		if _, err := db.txExec(ctx, tx, `RELEASE job`); err != nil {
			tx.Rollback()
			fail(err)
			return
		}
		if j.err == nil && j.in.Event == nil {
			rejected++
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

	if err := tx.Commit(); err != nil {
		fail(err)
		return
	}
	db.wakeCheckpointer()
	for i, j := range batch {
		j.res.BatchSize = len(batch)
		j.res.BatchFirst = i == 0
		close(j.done)
	}
}

// insertDelivery writes one delivery, its body and, when verified, its event, inside tx.
func (db *DB) insertDelivery(ctx context.Context, tx *sql.Tx, in *Ingest) (IngestResult, error) {
	d := &in.Delivery
	headers, err := json.Marshal(d.Header)
	if err != nil {
		return IngestResult{}, fmt.Errorf("encode headers: %w", err)
	}
	if d.Header == nil {
		headers = []byte("{}")
	}
	received := micros(d.ReceivedAt)
	ack := micros(db.now()) - received
	if in.Promote != 0 {
		return db.promoteDelivery(ctx, tx, in) // db/secret.go
	}

	res, err := db.txExec(ctx, tx, `
		INSERT INTO deliveries (endpoint_id, received_at, remote_addr, method, path, headers,
			body_sha256, size, body_truncated, content_type, content_encoding, verdict, reason,
			scheme, secret_label, sender_timestamp, skew_ms, ack_micros, secret_id, secret_old)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.EndpointID, received, d.RemoteAddr, d.Method, d.Path, string(headers),
		d.BodySHA256, d.Size, d.BodyTruncated, d.ContentType, d.ContentEncoding,
		string(d.Verdict), d.Reason, d.Scheme, d.SecretLabel, d.SenderTimestamp, d.SkewMS, ack,
		nullID(d.SecretID), d.SecretOld)
	if err != nil {
		return IngestResult{}, fmt.Errorf("insert delivery: %w", conflict(err))
	}
	out := IngestResult{}
	if out.DeliveryID, err = res.LastInsertId(); err != nil {
		return out, fmt.Errorf("insert delivery: %w", err)
	}
	body := d.Body
	if body == nil {
		body = []byte{}
	}
	if _, err := db.txExec(ctx, tx,
		`INSERT INTO delivery_bodies (delivery_id, body) VALUES (?, ?)`,
		out.DeliveryID, body); err != nil {
		return out, fmt.Errorf("insert body: %w", err)
	}
	if in.Event == nil {
		return out, nil
	}
	return db.upsertEvent(ctx, tx, in, out)
}

// upsertEvent stores the event of the verified delivery out.DeliveryID, inside tx: a new event,
// or this delivery counted on the event it repeats. The unique (endpoint_id, dedupe_key) index
// makes this safe under any concurrency.
func (db *DB) upsertEvent(ctx context.Context, tx *sql.Tx, in *Ingest, out IngestResult) (IngestResult, error) {
	d, v := &in.Delivery, in.Event
	received := micros(d.ReceivedAt)
	err := db.txQueryRow(ctx, tx, `
		INSERT INTO events (endpoint_id, dedupe_key, event_type, envelope_id, file_id,
			transcription_id, device_id, is_json, size, summary, first_received_at,
			last_received_at, delivery_count, body_delivery_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
		ON CONFLICT (endpoint_id, dedupe_key) DO UPDATE SET
			last_received_at = max(last_received_at, excluded.last_received_at),
			delivery_count = delivery_count + 1
		RETURNING id, delivery_count`,
		d.EndpointID, v.DedupeKey, v.EventType, v.EnvelopeID, v.FileID, v.TranscriptionID,
		v.DeviceID, v.JSON, v.Size, v.Summary, received, received, out.DeliveryID,
	).Scan(&out.EventID, &out.DeliveryCount)
	if err != nil {
		return out, fmt.Errorf("upsert event: %w", err)
	}
	out.Duplicate = out.DeliveryCount > 1
	if _, err := db.txExec(ctx, tx,
		`UPDATE deliveries SET event_id = ?, duplicate = ? WHERE id = ?`,
		out.EventID, out.Duplicate, out.DeliveryID); err != nil {
		return out, fmt.Errorf("link delivery to event: %w", err)
	}
	return out, nil
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
