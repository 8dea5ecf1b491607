package db

import (
	"context"
	"database/sql"
	"fmt"
)

// The ingest path's share of secrets: match bookkeeping in the group commit, and promoting a
// re-verified delivery through the same writer.

// countSecretMatches adds the batch's verified deliveries to their secrets' match counts and last
// match times, inside the ingest transaction: one UPDATE per secret per batch, never a second
// write per delivery.
func (db *DB) countSecretMatches(ctx context.Context, tx *sql.Tx, batch []*job) error {
	type tally struct {
		n    int
		last int64
	}
	counts := map[int64]*tally{}
	for _, j := range batch {
		d := &j.in.Delivery
		if j.err != nil || d.SecretID == 0 || d.Verdict != Verified {
			continue
		}
		t := counts[d.SecretID]
		if t == nil {
			t = &tally{}
			counts[d.SecretID] = t
		}
		t.n++
		t.last = max(t.last, micros(d.ReceivedAt))
	}
	for id, t := range counts {
		if _, err := db.txExec(ctx, tx, `
			UPDATE secrets SET match_count = match_count + ?,
				last_matched_at = max(coalesce(last_matched_at, 0), ?)
			WHERE id = ?`, t.n, t.last, id); err != nil {
			return fmt.Errorf("count secret matches: %w", err)
		}
	}
	return nil
}

// promoteDelivery turns the stored rejected delivery in.Promote into the verified delivery that
// in.Delivery describes, inside the ingest transaction, then stores its event through the same
// upsert as any ingested delivery (so a repeat of a stored event is counted, not duplicated).
// It fails with ErrConflict when the row is no longer a rejected delivery with its whole body.
func (db *DB) promoteDelivery(ctx context.Context, tx *sql.Tx, j *job) (IngestResult, error) {
	in := j.in
	d := &in.Delivery
	out := IngestResult{DeliveryID: in.Promote}
	if in.Event == nil {
		return out, fmt.Errorf("promote delivery %d: no event", in.Promote)
	}
	res, err := db.txExec(ctx, tx, `
		UPDATE deliveries SET verdict = 'verified', reason = '', scheme = ?, secret_label = ?,
			secret_id = ?, secret_old = ?, sender_timestamp = ?, skew_ms = ?, promoted_by = ?,
			promoted_at = ?
		WHERE id = ? AND verdict = 'rejected' AND body_truncated = 0`,
		d.Scheme, d.SecretLabel, nullID(d.SecretID), d.SecretOld, d.SenderTimestamp, d.SkewMS,
		d.PromotedBy, micros(db.now()), in.Promote)
	if err != nil {
		return out, fmt.Errorf("promote delivery %d: %w", in.Promote, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return out, fmt.Errorf("promote delivery %d: not a rejected delivery with its whole body: %w",
			in.Promote, ErrConflict)
	}
	if err := db.upsertEvent(ctx, tx, j, in.Promote, &out); err != nil {
		return out, err
	}
	// The row's triggers fill in its event type and move it in the rollups.
	if _, err := db.txExec(ctx, tx,
		`UPDATE deliveries SET event_id = ?, duplicate = ? WHERE id = ?`,
		out.EventID, out.Duplicate, in.Promote); err != nil {
		return out, fmt.Errorf("link delivery to event: %w", err)
	}
	return out, nil
}
