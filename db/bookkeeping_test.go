package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// bookkeepingCases are deliveries whose bodies exercise every branch of the index and shape
// SQL: nested objects and arrays, keys SQLite quotes, numbers, text that is not JSON, an empty
// body, a JSON scalar, broken JSON, repeats within and across batches, rejected deliveries,
// two endpoints and several hours.
func bookkeepingCases() []*Ingest {
	bodies := []string{
		`{"event":"audio_transcribe.completed","id":"e1","data":{"file_id":"f1","segments":[{"speaker":"A","text":"hello world"},{"speaker":"B","text":"second"}]}}`,
		`{"event":"audio_transcribe.completed","id":"e2","data":{"file_id":"f2","segments":[{"speaker":"A","text":"会議の議事録"}]}}`,
		`{"event":"audio_transcribe.completed","id":"e3","data":{"fileId":2.50,"big":1e3,"a b":{"x":[[1,2],[3]]},"été":true,"_u":null,"k[1]":"bracket"}}`,
		`{"event":"device.synced","id":"e4","data":{"device_id":"d1","battery":87}}`,
		`not json at all, just words`,
		``,
		`42`,
		`{"event":"broken", "id":`,
		`{"event":"device.synced","id":"e5","data":{"device_id":"d2","battery":12,"new_field":"drift"}}`,
		`[{"event":"array.top"},{"event":"second"}]`,
	}
	base := time.Date(2026, 12, 3, 9, 59, 0, 0, time.UTC)
	var out []*Ingest
	for i := range 60 {
		src := i
		if i%6 == 5 {
			src = i - 1 // a retry of the one before it, often in the same batch
		}
		body := []byte(bodies[src%len(bodies)])
		at := base.Add(time.Duration(i) * 3 * time.Minute) // crosses hours
		endpoint := int64(1 + src%2)
		in := &Ingest{Delivery: Delivery{EndpointID: endpoint, ReceivedAt: at, Method: "POST",
			Path: "/webhook", Header: http.Header{"Plaud-Signature": {"x"}}, Body: body,
			BodySHA256: shaHex(body), Size: int64(len(body))}}
		switch {
		case i%7 == 3:
			in.Delivery.Verdict, in.Delivery.Reason = Rejected, "signature_mismatch"
		case i%11 == 5:
			in.Delivery.Verdict, in.Delivery.Reason = Rejected, "timestamp_out_of_tolerance"
		default:
			in.Delivery.Verdict = Verified
			typ := "unknown"
			var env struct{ Event string }
			if json.Unmarshal(body, &env) == nil && env.Event != "" {
				typ = env.Event
			}
			key := fmt.Sprintf("sha256:%s", shaHex(body))
			in.Event = &Event{DedupeKey: key, EventType: typ, JSON: json.Valid(body),
				Size: int64(len(body))}
		}
		out = append(out, in)
	}
	return out
}

// storeRowByRow stores one delivery the way the ingest path did before batch bookkeeping: each
// row on its own, every derived table kept by the triggers.
func storeRowByRow(t *testing.T, d *DB, in *Ingest) {
	t.Helper()
	ctx := context.Background()
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	dl := &in.Delivery
	received := micros(dl.ReceivedAt)
	ack := micros(d.now()) - received
	headers, _ := json.Marshal(dl.Header)
	res, err := tx.Exec(`
		INSERT INTO deliveries (endpoint_id, received_at, remote_addr, method, path, headers,
			body_sha256, size, body_truncated, content_type, content_encoding, verdict, reason,
			scheme, secret_label, sender_timestamp, skew_ms, ack_micros, secret_id, secret_old)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		dl.EndpointID, received, dl.RemoteAddr, dl.Method, dl.Path, string(headers),
		dl.BodySHA256, dl.Size, dl.BodyTruncated, dl.ContentType, dl.ContentEncoding,
		string(dl.Verdict), dl.Reason, dl.Scheme, dl.SecretLabel, dl.SenderTimestamp, dl.SkewMS,
		ack, nullID(dl.SecretID), dl.SecretOld)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	if _, err := tx.Exec(`INSERT INTO delivery_bodies (delivery_id, body) VALUES (?, ?)`,
		id, append([]byte{}, dl.Body...)); err != nil {
		t.Fatal(err)
	}
	if v := in.Event; v != nil {
		var eventID int64
		var count int
		if err := tx.QueryRow(`
			INSERT INTO events (endpoint_id, dedupe_key, event_type, envelope_id, file_id,
				transcription_id, device_id, is_json, size, summary, first_received_at,
				last_received_at, delivery_count, body_delivery_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
			ON CONFLICT (endpoint_id, dedupe_key) DO UPDATE SET
				last_received_at = max(last_received_at, excluded.last_received_at),
				delivery_count = delivery_count + 1
			RETURNING id, delivery_count`,
			dl.EndpointID, v.DedupeKey, v.EventType, v.EnvelopeID, v.FileID, v.TranscriptionID,
			v.DeviceID, v.JSON, v.Size, v.Summary, received, received, id,
		).Scan(&eventID, &count); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`UPDATE deliveries SET event_id = ?, duplicate = ? WHERE id = ?`,
			eventID, count > 1, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// derivedTables reads every table the bookkeeping keeps, and the search index term by term.
func derivedTables(t *testing.T, d *DB) map[string][]string {
	t.Helper()
	ctx := context.Background()
	if _, err := d.w.ExecContext(ctx,
		`CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_terms USING fts5vocab(main, events_fts, 'instance')`); err != nil {
		t.Fatal(err)
	}
	queries := map[string]string{
		"stats_deliveries": `SELECT * FROM stats_deliveries ORDER BY 1, 2, 3, 4`,
		"stats_ack":        `SELECT * FROM stats_ack ORDER BY 1, 2, 3`,
		"stats_events":     `SELECT * FROM stats_events ORDER BY 1, 2, 3`,
		"schema_shapes":    `SELECT * FROM schema_shapes ORDER BY id`,
		"schema_types":     `SELECT * FROM schema_types ORDER BY 1`,
		"schema_paths":     `SELECT * FROM schema_paths ORDER BY 1, 2`,
		"event_shapes":     `SELECT * FROM event_shapes ORDER BY 1`,
		"search index":     `SELECT term, doc, col, offset FROM temp.fts_terms ORDER BY 1, 2, 3, 4`,
		"search rows":      `SELECT rowid FROM events_fts ORDER BY 1`,
		"deliveries": `SELECT id, endpoint_id, received_at, verdict, reason, ack_micros,
			coalesce(event_id, 0), duplicate, event_type FROM deliveries ORDER BY id`,
		"events": `SELECT id, endpoint_id, dedupe_key, event_type, first_received_at,
			last_received_at, delivery_count, body_delivery_id FROM events ORDER BY id`,
		"ingest_batch": `SELECT * FROM ingest_batch`,
	}
	out := map[string][]string{}
	for name, q := range queries {
		rows, err := d.w.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				if i > 0 {
					b.WriteString(" | ")
				}
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprint(&b, v)
			}
			out[name] = append(out[name], b.String())
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// TestBatchBookkeepingMatchesTriggers stores the same deliveries twice: in batches through the
// writer, which keeps the search index, schema drift and rollups itself, and row by row with
// the triggers keeping them. Every derived table must come out the same, term for term.
func TestBatchBookkeepingMatchesTriggers(t *testing.T) {
	ctx := context.Background()
	// Deliveries from 09:59 to 12:56 acknowledged at 11:00: ack latencies land in many buckets.
	clock := func() time.Time { return time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC) }
	batched := mustOpenDB(t, Options{Now: clock})
	rowByRow := mustOpenDB(t, Options{Now: clock})
	for _, d := range []*DB{batched, rowByRow} {
		if _, err := d.CreateEndpoint(ctx, Endpoint{Slug: "second", Name: "Second"}); err != nil {
			t.Fatal(err)
		}
	}

	cases := bookkeepingCases()
	// Batches of uneven sizes, written as the writer writes them. Half of the batches bring
	// their index facts read beforehand (as CreateDelivery does), half leave it to the writer.
	// The first batch holds two new events of one shape.
	for i, size := 0, 2; i < len(cases); i, size = i+size, size%9+1 {
		var batch []*job
		for _, in := range cases[i:min(len(cases), i+size)] {
			c := *in
			if c.Event != nil {
				ev := *c.Event
				if size%2 == 0 {
					ix, err := batched.bodyIndex(ctx, nil, c.Delivery.Body)
					if err != nil {
						t.Fatal(err)
					}
					ev.Index = ix
				}
				c.Event = &ev
			}
			batch = append(batch, &job{in: &c, done: make(chan struct{})})
		}
		batched.commitBatch(batch)
		for _, j := range batch {
			if j.err != nil {
				t.Fatalf("batch at %d: %v", i, j.err)
			}
		}
	}
	for _, in := range cases {
		storeRowByRow(t, rowByRow, in)
	}

	got, want := derivedTables(t, batched), derivedTables(t, rowByRow)
	for name, rows := range want {
		if len(rows) == 0 && name != "ingest_batch" {
			t.Errorf("%s: empty in the row-by-row store: the cases do not exercise it", name)
		}
		if !slices.Equal(got[name], rows) {
			t.Errorf("%s differs:\nbatched:    %q\nrow by row: %q", name, got[name], rows)
		}
	}
	// Search finds what it found before, including text that is not JSON and CJK.
	for _, q := range []string{"hello", "会議の議事録", "words", "bracket", "drift"} {
		for _, d := range []*DB{batched, rowByRow} {
			var n int
			if err := d.r.QueryRowContext(ctx,
				`SELECT count(*) FROM events_fts WHERE events_fts MATCH ?`, q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Errorf("search %q finds nothing", q)
			}
		}
	}
}

// TestBookkeepingTriggersStandAsideOnlyInBatches checks the marker of migration 0011 never
// outlives a batch: after ingest, an insert from elsewhere is kept by the triggers again.
func TestBookkeepingTriggersStandAsideOnlyInBatches(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	mustIngest(t, d, verified([]byte(`{"event":"a","id":"1"}`), "id:1"))
	var marks int
	if err := d.r.QueryRowContext(ctx, `SELECT count(*) FROM ingest_batch`).Scan(&marks); err != nil {
		t.Fatal(err)
	}
	if marks != 0 {
		t.Fatalf("ingest_batch holds %d rows after a batch", marks)
	}
	// A row written outside the writer (a script, a restore) still gets its index and counts.
	if _, err := d.w.ExecContext(ctx, `
		INSERT INTO deliveries (id, endpoint_id, received_at, method, path, headers, body_sha256,
			size, verdict) VALUES (900, 1, 1, 'POST', '/webhook', '{}', '', 9, 'verified');
		INSERT INTO delivery_bodies (delivery_id, body) VALUES (900, '{"outside":"zebra"}');
		INSERT INTO events (id, endpoint_id, dedupe_key, event_type, is_json, size,
			first_received_at, last_received_at, body_delivery_id)
		VALUES (900, 1, 'k900', 'outside.type', 1, 9, 1, 1, 900)`); err != nil {
		t.Fatal(err)
	}
	var found, typed, shaped int
	if err := d.r.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM events_fts WHERE events_fts MATCH 'zebra'),
		(SELECT coalesce(sum(events), 0) FROM stats_events WHERE event_type = 'outside.type'),
		(SELECT count(*) FROM event_shapes WHERE event_id = 900)`).Scan(&found, &typed, &shaped); err != nil {
		t.Fatal(err)
	}
	if found != 1 || typed != 1 || shaped != 1 {
		t.Fatalf("outside insert: search %d, rollup %d, shape %d; want 1 each", found, typed, shaped)
	}
}

// TestBatchWithFailingJob puts a job that must fail (promoting a delivery that is not a
// rejected one) between two good ones: the batch is written again job by job, the good ones
// are stored with their bookkeeping, and only the bad one reports its error.
func TestBatchWithFailingJob(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, Options{})
	first := mustIngest(t, d, verified([]byte(`{"event":"a","id":"0"}`), "id:0"))

	bad := verified([]byte(`{"event":"a","id":"0"}`), "id:promoted")
	bad.Promote = first.DeliveryID // verified already: not promotable
	batch := []*job{
		{in: verified([]byte(`{"event":"b","id":"1","note":"alpha"}`), "id:1"), done: make(chan struct{})},
		{in: bad, done: make(chan struct{})},
		{in: verified([]byte(`{"event":"b","id":"2","note":"omega"}`), "id:2"), done: make(chan struct{})},
	}
	d.commitBatch(batch)
	if batch[0].err != nil || batch[2].err != nil {
		t.Fatalf("good jobs failed: %v, %v", batch[0].err, batch[2].err)
	}
	if !errors.Is(batch[1].err, ErrConflict) {
		t.Fatalf("bad job: %v, want ErrConflict", batch[1].err)
	}
	if batch[0].res.DeliveryID == 0 || batch[2].res.DeliveryID != batch[0].res.DeliveryID+1 {
		t.Fatalf("delivery ids %d, %d: want consecutive", batch[0].res.DeliveryID, batch[2].res.DeliveryID)
	}
	var deliveries, events, typed, found int
	if err := d.r.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM deliveries),
		(SELECT count(*) FROM events),
		(SELECT coalesce(sum(events), 0) FROM stats_events),
		(SELECT count(*) FROM events_fts WHERE events_fts MATCH 'alpha OR omega')`).Scan(
		&deliveries, &events, &typed, &found); err != nil {
		t.Fatal(err)
	}
	if deliveries != 3 || events != 3 || typed != 3 || found != 2 {
		t.Fatalf("stored %d deliveries, %d events, %d in the rollup, %d found; want 3, 3, 3, 2",
			deliveries, events, typed, found)
	}
}
