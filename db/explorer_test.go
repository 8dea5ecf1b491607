package db

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// seedEvent is what the explorer tests know about one stored event: the reference model the
// filters are checked against.
type seedEvent struct {
	id, endpoint                int64
	typ, file, txn, dev, env    string
	at                          time.Time
	deliveries                  int
	values                      []string // the body's string values in document order
	json                        bool
	firstDelivery, lastDelivery int64
}

// seedDelivery is the reference model of one delivery.
type seedDelivery struct {
	id, endpoint, event int64
	verdict             Verdict
	reason, typ         string
	at                  time.Time
	dup                 bool
}

type explorerSeed struct {
	events     []seedEvent // by id
	deliveries []seedDelivery
}

var seedBase = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

// mustSeedExplorer stores 40 events on two endpoints (every fifth delivered twice, times
// slightly out of id order) and rejected deliveries between them, and returns the model.
func mustSeedExplorer(tb testing.TB, d *DB) explorerSeed {
	tb.Helper()
	ctx := context.Background()
	if _, err := d.w.Exec(`INSERT INTO endpoints (slug, name, created_at) VALUES ('lab', 'Lab', 0)`); err != nil {
		tb.Fatal(err)
	}
	types := []string{"transcription.completed", "device.synced", "audio_transcribe.completed", ""}
	notes := []string{"weekly sync", "order two pallet jacks", "Café menu review", "budget 2027"}
	var s explorerSeed
	for i := 0; i < 40; i++ {
		e := seedEvent{endpoint: 1, typ: types[i%4], env: fmt.Sprintf("evt_%02d", i),
			file: fmt.Sprintf("file_%d", i%5), json: i%4 != 3}
		if i%3 == 0 {
			e.endpoint = 2
		}
		if strings.HasPrefix(e.typ, "transcription") {
			e.txn = fmt.Sprintf("txn_%02d", i)
		}
		if e.typ == "device.synced" {
			e.dev = fmt.Sprintf("dev_%d", i%2)
		}
		// Even events arrive 90 s after their slot, so ids and times disagree pairwise.
		e.at = seedBase.Add(time.Duration(i) * time.Minute)
		if i%2 == 0 {
			e.at = e.at.Add(90 * time.Second)
		}
		note := notes[i%len(notes)]
		var body []byte
		if e.json {
			data := map[string]string{"fileId": e.file, "note": note}
			e.values = []string{e.typ, e.env, e.file, note}
			if e.txn != "" {
				data["transcriptionId"] = e.txn
				e.values = append(e.values, e.txn)
			}
			if e.dev != "" {
				data["deviceId"] = e.dev
				e.values = append(e.values, e.dev)
			}
			body, _ = json.Marshal(map[string]any{"event": e.typ, "id": e.env, "data": data})
			e.values = jsonValues(tb, body)
		} else {
			body = []byte("plain text " + note)
			e.values = []string{string(body)}
			e.env, e.file = "", ""
		}
		e.deliveries = 1
		if i%5 == 0 {
			e.deliveries = 2
		}
		for k := 0; k < e.deliveries; k++ {
			in := &Ingest{
				Delivery: Delivery{EndpointID: e.endpoint, ReceivedAt: e.at.Add(time.Duration(k) * 45 * time.Second),
					Method: "POST", Path: "/webhook", Header: http.Header{"X": {strconv.Itoa(i)}},
					Body: body, BodySHA256: shaHex(body), Size: int64(len(body)), Verdict: Verified},
				Event: &Event{DedupeKey: "id:" + e.env + strconv.Itoa(i), EventType: e.typ,
					EnvelopeID: e.env, FileID: e.file, TranscriptionID: e.txn, DeviceID: e.dev,
					JSON: e.json, Size: int64(len(body))},
			}
			res, err := d.CreateDelivery(ctx, in)
			if err != nil {
				tb.Fatal(err)
			}
			e.id = res.EventID
			s.deliveries = append(s.deliveries, seedDelivery{id: res.DeliveryID, endpoint: e.endpoint,
				event: res.EventID, verdict: Verified, typ: e.typ, at: in.Delivery.ReceivedAt,
				dup: res.Duplicate})
		}
		s.events = append(s.events, e)

		// A rejected delivery after every fourth event.
		if i%4 == 1 {
			reason := []string{"signature_mismatch", "missing_signature"}[i%8/4]
			in := rejected([]byte("junk"), reason)
			in.Delivery.EndpointID = e.endpoint
			in.Delivery.ReceivedAt = e.at.Add(10 * time.Second)
			res, err := d.CreateDelivery(ctx, in)
			if err != nil {
				tb.Fatal(err)
			}
			s.deliveries = append(s.deliveries, seedDelivery{id: res.DeliveryID,
				endpoint: e.endpoint, verdict: Rejected, reason: reason, at: in.Delivery.ReceivedAt})
		}
	}
	slices.SortFunc(s.deliveries, func(a, b seedDelivery) int { return int(a.id - b.id) })
	return s
}

// jsonValues lists the string and number values of a JSON body in document order, as the
// full-text index reads them.
func jsonValues(tb testing.TB, body []byte) []string {
	tb.Helper()
	var out []string
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	key := true
	var stack []bool // true: inside an object
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				stack = append(stack, v == '{')
				key = v == '{'
			} else {
				stack = stack[:len(stack)-1]
				key = len(stack) > 0 && stack[len(stack)-1]
			}
			continue
		case string:
			if key && len(stack) > 0 && stack[len(stack)-1] {
				key = false
				continue
			}
			out = append(out, v)
		case json.Number:
			out = append(out, v.String())
		}
		if len(stack) > 0 && stack[len(stack)-1] {
			key = true
		}
	}
	return out
}

// tokens splits text as FTS5's unicode61 tokenizer does for ASCII and Latin text: runs of
// letters and digits, lower-cased, accents removed.
func tokens(s string) []string {
	s = strings.NewReplacer("é", "e", "É", "e").Replace(s)
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// searchMatches is the reference meaning of EventFilter.Search.
func (e seedEvent) searchMatches(term string) bool {
	term = strings.TrimSpace(term)
	for _, id := range []string{e.file, e.txn, e.dev, e.env} {
		if id != "" && id == term {
			return true
		}
	}
	if n, err := strconv.ParseInt(strings.TrimPrefix(term, "#"), 10, 64); err == nil && n == e.id {
		return true
	}
	text := tokens(strings.Join(e.values, " "))
	words := 0
	for _, w := range strings.Fields(term) {
		wt := tokens(w)
		if len(wt) == 0 {
			continue
		}
		words++
		if !phrasePrefix(text, wt) {
			return false
		}
	}
	return words > 0
}

func phrasePrefix(text, phrase []string) bool {
	for p := 0; p+len(phrase) <= len(text); p++ {
		ok := true
		for k, w := range phrase {
			if k == len(phrase)-1 {
				ok = ok && strings.HasPrefix(text[p+k], w)
			} else {
				ok = ok && text[p+k] == w
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (e seedEvent) matches(f EventFilter) bool {
	slugs := map[int64]string{1: "default", 2: "lab"}
	switch {
	case f.EndpointID != nil && *f.EndpointID != e.endpoint,
		f.EndpointSlug != nil && *f.EndpointSlug != slugs[e.endpoint],
		f.EventType != nil && *f.EventType != e.typ,
		f.Since != nil && e.at.Before(*f.Since),
		f.Until != nil && !e.at.Before(*f.Until),
		f.Duplicates != nil && *f.Duplicates != (e.deliveries > 1),
		f.Search != nil && !e.searchMatches(*f.Search):
		return false
	}
	return true
}

func (s explorerSeed) eventByID(id int64) seedEvent {
	for _, e := range s.events {
		if e.id == id {
			return e
		}
	}
	return seedEvent{}
}

func (d seedDelivery) matches(f DeliveryFilter, s explorerSeed) bool {
	slugs := map[int64]string{1: "default", 2: "lab"}
	switch {
	case f.Verdict != nil && *f.Verdict != d.verdict,
		f.Reason != nil && *f.Reason != d.reason,
		f.EventID != nil && *f.EventID != d.event,
		f.EndpointID != nil && *f.EndpointID != d.endpoint,
		f.EndpointSlug != nil && *f.EndpointSlug != slugs[d.endpoint],
		f.EventType != nil && *f.EventType != d.typ,
		f.Since != nil && d.at.Before(*f.Since),
		f.Until != nil && !d.at.Before(*f.Until),
		f.Duplicates != nil && *f.Duplicates != d.dup,
		f.Search != nil && (d.event == 0 || !s.eventByID(d.event).searchMatches(*f.Search)):
		return false
	}
	return true
}

func ptr[T any](v T) *T { return &v }

// eventFilterCases are the filters of the event list, each alone and in combinations.
func eventFilterCases() []struct {
	name string
	f    EventFilter
} {
	at := func(min int) *time.Time { return ptr(seedBase.Add(time.Duration(min) * time.Minute)) }
	return []struct {
		name string
		f    EventFilter
	}{
		{"none", EventFilter{}},
		{"endpoint", EventFilter{EndpointID: ptr(int64(2))}},
		{"endpoint slug", EventFilter{EndpointSlug: ptr("lab")}},
		{"unknown slug", EventFilter{EndpointSlug: ptr("nope")}},
		{"type", EventFilter{EventType: ptr("device.synced")}},
		{"type none", EventFilter{EventType: ptr("")}},
		{"since", EventFilter{Since: at(11)}},
		{"until", EventFilter{Until: at(21)}},
		{"since until", EventFilter{Since: at(5), Until: at(9)}},
		{"empty range", EventFilter{Since: at(100)}},
		{"duplicates", EventFilter{Duplicates: ptr(true)}},
		{"no duplicates", EventFilter{Duplicates: ptr(false)}},
		{"search file id", EventFilter{Search: ptr("file_3")}},
		{"search transcription id", EventFilter{Search: ptr("txn_08")}},
		{"search device id", EventFilter{Search: ptr("dev_1")}},
		{"search envelope id", EventFilter{Search: ptr("evt_17")}},
		{"search event number", EventFilter{Search: ptr("#7")}},
		{"search words", EventFilter{Search: ptr("pallet jack")}},
		{"search accent", EventFilter{Search: ptr("cafe")}},
		{"search plain body", EventFilter{Search: ptr("plain budget")}},
		{"search syntax", EventFilter{Search: ptr(`"NEAR( * -x OR`)}},
		{"search nothing", EventFilter{Search: ptr("  ")}},
		{"endpoint type", EventFilter{EndpointID: ptr(int64(1)), EventType: ptr("transcription.completed")}},
		{"type since", EventFilter{EventType: ptr("device.synced"), Since: at(20)}},
		{"endpoint duplicates", EventFilter{EndpointID: ptr(int64(2)), Duplicates: ptr(true)}},
		{"type search", EventFilter{EventType: ptr("audio_transcribe.completed"), Search: ptr("weekly")}},
		{"all", EventFilter{EndpointID: ptr(int64(1)), EventType: ptr("device.synced"),
			Since: at(0), Until: at(35), Duplicates: ptr(false), Search: ptr("sync")}},
	}
}

// TestEventFilters checks every event filter, alone and combined, against the reference model,
// walking all pages of three: nothing missing, nothing twice, newest first.
func TestEventFilters(t *testing.T) {
	d := mustOpenDB(t, Options{})
	s := mustSeedExplorer(t, d)
	ctx := context.Background()
	for _, tc := range eventFilterCases() {
		t.Run(tc.name, func(t *testing.T) {
			var want []int64
			for i := len(s.events) - 1; i >= 0; i-- {
				if s.events[i].matches(tc.f) {
					want = append(want, s.events[i].id)
				}
			}
			var got []int64
			f := tc.f
			f.Limit = 3
			for pages := 0; pages < 100; pages++ {
				page, next, err := d.FindEvents(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > 3 {
					t.Fatalf("page of %d rows, want at most 3", len(page))
				}
				for _, e := range page {
					got = append(got, e.ID)
				}
				if next == 0 {
					break
				}
				f.Before = next
			}
			if !slices.Equal(got, want) {
				t.Errorf("ids = %v, want %v", got, want)
			}

			// The live check agrees with the list for every event.
			for _, e := range s.events {
				ok, err := d.EventMatches(ctx, tc.f, e.id)
				if err != nil {
					t.Fatal(err)
				}
				if ok != e.matches(tc.f) {
					t.Errorf("EventMatches(%d) = %v, want %v", e.id, ok, !ok)
				}
			}
		})
	}
}

func deliveryFilterCases() []struct {
	name string
	f    DeliveryFilter
} {
	at := func(min int) *time.Time { return ptr(seedBase.Add(time.Duration(min) * time.Minute)) }
	return []struct {
		name string
		f    DeliveryFilter
	}{
		{"none", DeliveryFilter{}},
		{"verified", DeliveryFilter{Verdict: ptr(Verified)}},
		{"rejected", DeliveryFilter{Verdict: ptr(Rejected)}},
		{"reason", DeliveryFilter{Reason: ptr("missing_signature")}},
		{"endpoint", DeliveryFilter{EndpointID: ptr(int64(2))}},
		{"endpoint slug", DeliveryFilter{EndpointSlug: ptr("default")}},
		{"type", DeliveryFilter{EventType: ptr("transcription.completed")}},
		{"since", DeliveryFilter{Since: at(30)}},
		{"until", DeliveryFilter{Until: at(12)}},
		{"duplicates", DeliveryFilter{Duplicates: ptr(true)}},
		{"search", DeliveryFilter{Search: ptr("file_2")}},
		{"event", DeliveryFilter{EventID: ptr(int64(6))}},
		{"rejected endpoint since", DeliveryFilter{Verdict: ptr(Rejected), EndpointID: ptr(int64(1)), Since: at(10)}},
		{"type duplicates", DeliveryFilter{EventType: ptr("device.synced"), Duplicates: ptr(true)}},
		{"verified search endpoint", DeliveryFilter{Verdict: ptr(Verified), Search: ptr("weekly"), EndpointSlug: ptr("lab")}},
	}
}

// TestDeliveryFilters does for the delivery list what TestEventFilters does for events.
func TestDeliveryFilters(t *testing.T) {
	d := mustOpenDB(t, Options{})
	s := mustSeedExplorer(t, d)
	ctx := context.Background()
	for _, tc := range deliveryFilterCases() {
		t.Run(tc.name, func(t *testing.T) {
			var want []int64
			for i := len(s.deliveries) - 1; i >= 0; i-- {
				if s.deliveries[i].matches(tc.f, s) {
					want = append(want, s.deliveries[i].id)
				}
			}
			var got []int64
			f := tc.f
			f.Limit = 4
			for pages := 0; pages < 100; pages++ {
				page, err := d.FindDeliveries(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range page {
					got = append(got, x.ID)
				}
				if len(page) < f.Limit {
					break
				}
				f.Before = page[len(page)-1].ID
			}
			if !slices.Equal(got, want) {
				t.Errorf("ids = %v, want %v", got, want)
			}
			for _, x := range s.deliveries {
				ok, err := d.DeliveryMatches(ctx, tc.f, x.id)
				if err != nil {
					t.Fatal(err)
				}
				if ok != x.matches(tc.f, s) {
					t.Errorf("DeliveryMatches(%d) = %v, want %v", x.id, ok, !ok)
				}
			}
		})
	}
}

// TestPaginationStableUnderInserts pages through events while new ones arrive: every event
// that existed at the start is seen exactly once, and none that arrived later.
func TestPaginationStableUnderInserts(t *testing.T) {
	d := mustOpenDB(t, Options{})
	s := mustSeedExplorer(t, d)
	ctx := context.Background()
	f := EventFilter{Limit: 7}
	var got []int64
	for i := 0; ; i++ {
		page, next, err := d.FindEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.ID)
		}
		if next == 0 {
			break
		}
		f.Before = next
		body := []byte(fmt.Sprintf(`{"event":"late","n":%d}`, i))
		if _, err := d.CreateDelivery(ctx, verified(body, fmt.Sprintf("late%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(s.events) {
		t.Fatalf("saw %d events, want the %d stored before paging", len(got), len(s.events))
	}
	for i, id := range got {
		if want := s.events[len(s.events)-1-i].id; id != want {
			t.Fatalf("event #%d = %d, want %d", i, id, want)
		}
	}
}

// planLines returns the EXPLAIN QUERY PLAN details of q.
func planLines(tb testing.TB, d *DB, q string, args []any) []string {
	tb.Helper()
	rows, err := d.r.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		tb.Fatalf("explain: %v\n%s", err, q)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			tb.Fatal(err)
		}
		out = append(out, detail)
	}
	return out
}

// bareScan matches a plan step that reads a whole table without an index.
var bareScan = regexp.MustCompile(`^SCAN (v|d|e|x|s|events|deliveries|endpoints)$`)

// checkPlan fails when a plan scans a table without an index, sorts rows for ORDER BY (unless
// sorts allows it), or does not use the index wanted.
func checkPlan(t *testing.T, plan []string, want string, sorts bool) {
	t.Helper()
	joined := strings.Join(plan, "\n")
	for _, line := range plan {
		if bareScan.MatchString(line) {
			t.Errorf("full table scan %q in plan:\n%s", line, joined)
		}
		if !sorts && strings.Contains(line, "TEMP B-TREE FOR ORDER BY") {
			t.Errorf("plan sorts instead of walking an index:\n%s", joined)
		}
	}
	if !strings.Contains(joined, want) {
		t.Errorf("plan does not use %s:\n%s", want, joined)
	}
}

// TestListQueriesUseIndexes asserts with EXPLAIN QUERY PLAN that every list query the UI can
// issue is served by an index in order: one row per filter combination of the event and
// delivery lists, on the first page and on a later one.
func TestListQueriesUseIndexes(t *testing.T) {
	d := mustOpenDB(t, Options{})
	mustSeedExplorer(t, d)
	ctx := context.Background()
	since := ptr(seedBase.Add(10 * time.Minute))
	until := ptr(seedBase.Add(30 * time.Minute))
	// A search for words is the union of two keyset pages (ids, full text): each page comes
	// from an index in order, and their union, at most twice a page, is sorted.
	events := []struct {
		name  string
		f     EventFilter
		want  string
		sorts bool
	}{
		{"none", EventFilter{}, "USING INTEGER PRIMARY KEY", false},
		{"endpoint", EventFilter{EndpointID: ptr(int64(1))}, "events_endpoint", false},
		{"endpoint slug", EventFilter{EndpointSlug: ptr("lab")}, "events_endpoint", false},
		{"type", EventFilter{EventType: ptr("device.synced")}, "events_type", false},
		{"since", EventFilter{Since: since}, "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)", false},
		{"until", EventFilter{Until: until}, "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)", false},
		{"range", EventFilter{Since: since, Until: until}, "USING INTEGER PRIMARY KEY", false},
		{"duplicates", EventFilter{Duplicates: ptr(true)}, "events_duplicated", false},
		{"search", EventFilter{Search: ptr("pallet")}, "SCAN f VIRTUAL TABLE", true},
		{"search id", EventFilter{Search: ptr("file_1")}, "events_file", true},
		{"endpoint type", EventFilter{EndpointID: ptr(int64(1)), EventType: ptr("x")}, "events_endpoint_type", false},
		{"endpoint range", EventFilter{EndpointID: ptr(int64(1)), Since: since, Until: until}, "events_endpoint", false},
		{"type range", EventFilter{EventType: ptr("x"), Since: since}, "events_type", false},
		{"type duplicates", EventFilter{EventType: ptr("x"), Duplicates: ptr(true)}, "events_", false},
		{"type search", EventFilter{EventType: ptr("x"), Search: ptr("pallet")}, "SCAN f VIRTUAL TABLE", true},
		{"endpoint duplicates", EventFilter{EndpointID: ptr(int64(1)), Duplicates: ptr(true)}, "events_", false},
		{"duplicates range", EventFilter{Duplicates: ptr(true), Since: since}, "events_", false},
		{"search range", EventFilter{Search: ptr("pallet"), Since: since, Until: until}, "SCAN f VIRTUAL TABLE", true},
		{"all", EventFilter{EndpointID: ptr(int64(1)), EventType: ptr("x"), Since: since,
			Until: until, Duplicates: ptr(true), Search: ptr("pallet")}, "events_", true},
	}
	for _, tc := range events {
		for _, before := range []int64{0, 20} {
			t.Run(fmt.Sprintf("events %s before %d", tc.name, before), func(t *testing.T) {
				f := tc.f
				f.Before = before
				q, args, ok, err := d.eventListQuery(ctx, f, 101)
				if err != nil || !ok {
					t.Fatalf("query: ok %v, %v", ok, err)
				}
				checkPlan(t, planLines(t, d, q, args), tc.want, tc.sorts)
			})
		}
	}

	// A search of deliveries finds them per matching event (deliveries_event), so its matches
	// are sorted: a cost that grows with the matches, not with the table.
	deliveries := []struct {
		name  string
		f     DeliveryFilter
		want  string
		sorts bool
	}{
		{"none", DeliveryFilter{}, "USING INTEGER PRIMARY KEY", false},
		{"verdict", DeliveryFilter{Verdict: ptr(Rejected)}, "deliveries_verdict", false},
		{"reason", DeliveryFilter{Reason: ptr("signature_mismatch")}, "deliveries_verdict", false},
		{"endpoint", DeliveryFilter{EndpointID: ptr(int64(2))}, "deliveries_endpoint", false},
		{"endpoint slug", DeliveryFilter{EndpointSlug: ptr("lab")}, "deliveries_endpoint", false},
		{"type", DeliveryFilter{EventType: ptr("x")}, "deliveries_type", false},
		{"since", DeliveryFilter{Since: since}, "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)", false},
		{"range", DeliveryFilter{Since: since, Until: until}, "USING INTEGER PRIMARY KEY", false},
		{"duplicates", DeliveryFilter{Duplicates: ptr(true)}, "deliveries_duplicate", false},
		{"search", DeliveryFilter{Search: ptr("pallet")}, "events_fts", true},
		{"event", DeliveryFilter{EventID: ptr(int64(3))}, "deliveries_event", false},
		{"verdict endpoint", DeliveryFilter{Verdict: ptr(Verified), EndpointID: ptr(int64(1))}, "deliveries_", false},
		{"reason range", DeliveryFilter{Reason: ptr("x"), Since: since}, "deliveries_verdict", false},
		{"type duplicates", DeliveryFilter{EventType: ptr("x"), Duplicates: ptr(true)}, "deliveries_", false},
		{"endpoint type range", DeliveryFilter{EndpointID: ptr(int64(1)), EventType: ptr("x"), Since: since}, "deliveries_", false},
		{"all", DeliveryFilter{Verdict: ptr(Verified), EndpointID: ptr(int64(1)), EventType: ptr("x"),
			Since: since, Until: until, Duplicates: ptr(true), Search: ptr("pallet")}, "deliveries_", true},
		{"resume", DeliveryFilter{After: 5}, "USING INTEGER PRIMARY KEY (rowid>?)", false},
	}
	for _, tc := range deliveries {
		for _, before := range []int64{0, 20} {
			t.Run(fmt.Sprintf("deliveries %s before %d", tc.name, before), func(t *testing.T) {
				f := tc.f
				f.Before = before
				q, args, ok, err := d.deliveryListQuery(ctx, f, 101)
				if err != nil || !ok {
					t.Fatalf("query: ok %v, %v", ok, err)
				}
				checkPlan(t, planLines(t, d, q, args), tc.want, tc.sorts)
			})
		}
	}

	// The helper queries: a time range's id bounds, and the type hop of the filter menu.
	for _, q := range []struct{ sql, want string }{
		{`SELECT min(x.id) FROM events x, (SELECT first_received_at AS t0 FROM events
			WHERE first_received_at >= ? ORDER BY first_received_at LIMIT 1) b
			WHERE x.first_received_at >= b.t0 AND x.first_received_at < b.t0 + ?`, "events_received"},
		{`SELECT min(x.id) FROM deliveries x, (SELECT received_at AS t0 FROM deliveries
			WHERE received_at >= ? ORDER BY received_at LIMIT 1) b
			WHERE x.received_at >= b.t0 AND x.received_at < b.t0 + ?`, "deliveries_received"},
		{`SELECT event_type FROM events WHERE event_type > ? ORDER BY event_type LIMIT 1`, "events_type"},
		// The dashboard's hop through endpoint and type pairs, and the newest event of each.
		{`SELECT endpoint_id, event_type FROM events
			WHERE endpoint_id = ? AND event_type > ? ORDER BY event_type LIMIT 1`, "events_endpoint_type (endpoint_id=? AND event_type>?)"},
		{`SELECT endpoint_id, event_type FROM events
			WHERE endpoint_id > ? ORDER BY endpoint_id, event_type LIMIT 1`, "events_endpoint_type (endpoint_id>?)"},
		{`SELECT v.id, v.first_received_at, e.slug FROM events v JOIN endpoints e ON e.id = v.endpoint_id
			WHERE v.endpoint_id = ? AND v.event_type = ? ORDER BY v.id DESC LIMIT 1`, "events_endpoint_type (endpoint_id=? AND event_type=?)"},
	} {
		t.Run("helper "+q.want, func(t *testing.T) {
			checkPlan(t, planLines(t, d, q.sql, []any{1, 2}[:strings.Count(q.sql, "?")]), q.want, false)
		})
	}
}

// TestSchemaDrift stores several device.synced events from the fixture, then one without its
// data.fileId and one with a new data.firmware object: each is marked with its difference, the
// usual ones are not.
func TestSchemaDrift(t *testing.T) {
	d := mustOpenDB(t, Options{})
	ctx := context.Background()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "drift", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	store := func(body []byte, key string) int64 {
		in := verified(body, key)
		in.Event.EventType = "device.synced"
		res, err := d.CreateDelivery(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return res.EventID
	}

	// Too few events of the type to judge: nothing is marked, even the odd one.
	early := store(read("device.synced.no-file-id.json"), "early")
	var usual []int64
	for i := 0; i < 8; i++ {
		usual = append(usual, store(read("device.synced.json"), fmt.Sprintf("u%d", i)))
	}
	missing := store(read("device.synced.no-file-id.json"), "missing")
	added := store(read("device.synced.new-firmware.json"), "added")

	events, _, err := d.FindEvents(ctx, EventFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.FillDrift(ctx, events); err != nil {
		t.Fatal(err)
	}
	byID := map[int64]Event{}
	for _, e := range events {
		byID[e.ID] = e
	}
	for _, id := range usual {
		if dr := byID[id].Drift; dr.Any() {
			t.Errorf("usual event %d marked: %+v", id, dr)
		}
	}
	got := byID[missing].Drift
	if len(got.Missing) != 1 || got.Missing[0].Path != "data.fileId" || len(got.Added) != 0 {
		t.Fatalf("drift of the event without fileId = %+v, want data.fileId missing", got)
	}
	if f := got.Missing[0]; f.Events != 9 || f.Of != 11 {
		t.Errorf("data.fileId seen in %d of %d, want 9 of 11", f.Events, f.Of)
	}
	got = byID[added].Drift
	if len(got.Added) != 1 || got.Added[0].Path != "data.firmware" || len(got.Missing) != 0 {
		t.Errorf("drift of the event with firmware = %+v, want data.firmware added (once)", got)
	}
	if got.Added[0].FirstEventID != int(added) {
		t.Errorf("data.firmware first seen in %d, want %d", got.Added[0].FirstEventID, added)
	}
	// The early event is judged now that the type has enough events.
	if dr := byID[early].Drift; len(dr.Missing) != 1 {
		t.Errorf("early event drift = %+v, want data.fileId missing", dr)
	}

	// The per-type summary lists each field with its count.
	types, err := d.FindSchemaTypes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(types) != 1 || types[0].EventType != "device.synced" || types[0].Events != 11 || types[0].Shapes != 3 {
		t.Fatalf("schema types = %+v, want device.synced with 11 events in 3 shapes", types)
	}

	// Deleting the odd events takes them out of the counts: the new field is forgotten.
	for _, id := range []int64{missing, added, early} {
		if _, err := d.w.Exec(`DELETE FROM events WHERE id = ?`, id); err != nil {
			t.Fatal(err)
		}
	}
	types, _ = d.FindSchemaTypes(ctx)
	for _, f := range types[0].Fields {
		if f.Events != 8 || f.Of != 8 {
			t.Errorf("field %s after deletes: %d of %d, want 8 of 8", f.Path, f.Events, f.Of)
		}
	}
	checkRollups(t, d)
	var n int
	d.r.QueryRow(`SELECT count(*) FROM events_fts WHERE events_fts MATCH '"2.4.1"'`).Scan(&n)
	if n != 0 {
		t.Errorf("deleted event still found by search")
	}
}

// TestExplorerIndexesOddBodies stores bodies SQLite cannot read as JSON (too deep, invalid
// UTF-8, not JSON at all, empty): each is stored and acknowledged like any other, found by its
// text where it has some, and given no shape.
func TestExplorerIndexesOddBodies(t *testing.T) {
	d := mustOpenDB(t, Options{})
	ctx := context.Background()
	bodies := map[string][]byte{
		"deep":    []byte(strings.Repeat(`{"a":`, 1200) + `"zebra"` + strings.Repeat("}", 1200)),
		"invalid": []byte("gnu \xff\xfe antelope"),
		"text":    []byte("hello walrus"),
		"empty":   {},
		"array":   []byte(`["okapi", 1, {"k": "ibex"}]`),
	}
	for name, b := range bodies {
		if _, err := d.CreateDelivery(ctx, verified(b, name)); err != nil {
			t.Fatalf("store %s: %v", name, err)
		}
	}
	for _, word := range []string{"zebra", "antelope", "walrus", "okapi", "ibex"} {
		events, _, err := d.FindEvents(ctx, EventFilter{Search: ptr(word)})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 {
			t.Errorf("search %q found %d events, want 1", word, len(events))
		}
	}
	var shapes int
	d.r.QueryRow(`SELECT count(*) FROM event_shapes`).Scan(&shapes)
	if shapes != 1 {
		t.Errorf("events with a shape = %d, want 1 (the array)", shapes)
	}
}

// TestDashboard checks the dashboard's counts, rates and percentiles against the seed.
func TestDashboard(t *testing.T) {
	d := mustOpenDB(t, Options{})
	s := mustSeedExplorer(t, d)
	ctx := context.Background()
	f := DashboardFilter{Since: seedBase.Add(-time.Hour), Until: seedBase.Add(2 * time.Hour), Bucket: time.Hour}
	got, err := d.FindDashboard(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Buckets) != 3 {
		t.Fatalf("buckets = %d, want 3", len(got.Buckets))
	}

	// Reference counts from the seed.
	var deliveries, rejected, dups, events int
	perType := map[string]int{}
	perBucket := make([]int, 3)
	for _, x := range s.deliveries {
		if x.at.Before(f.Since) || !x.at.Before(f.Until) {
			continue
		}
		deliveries++
		if x.verdict == Rejected {
			rejected++
			perBucket[int(x.at.Sub(f.Since)/f.Bucket)]++
		}
		if x.dup {
			dups++
		}
	}
	for _, e := range s.events {
		if !e.at.Before(f.Since) && e.at.Before(f.Until) {
			events++
			perType[e.typ]++
		}
	}
	if got.Total.Deliveries != deliveries || got.Total.Rejected != rejected ||
		got.Total.Duplicates != dups || got.Total.Events != events {
		t.Errorf("totals = %+v, want %d deliveries, %d rejected, %d duplicates, %d events",
			got.Total, deliveries, rejected, dups, events)
	}
	checkRollups(t, d)
	if !slices.Equal(got.Rejected, perBucket) {
		t.Errorf("rejected per bucket = %v, want %v", got.Rejected, perBucket)
	}
	for _, tv := range got.Types {
		if tv.Total != perType[tv.EventType] {
			t.Errorf("type %q: %d events, want %d", tv.EventType, tv.Total, perType[tv.EventType])
		}
	}
	if len(got.Types) != len(perType) {
		t.Errorf("types = %d, want %d", len(got.Types), len(perType))
	}
	if len(got.Endpoints) != 2 || got.Endpoints[0].Endpoint != "default" ||
		got.Endpoints[0].Deliveries+got.Endpoints[1].Deliveries != deliveries {
		t.Errorf("endpoints = %+v", got.Endpoints)
	}

	// Latest per endpoint and type: one row per pair, each the highest id of the pair.
	latest := map[string]int64{}
	for _, e := range s.events {
		k := fmt.Sprintf("%d/%s", e.endpoint, e.typ)
		latest[k] = max(latest[k], e.id)
	}
	if len(got.Latest) != len(latest) {
		t.Errorf("latest = %d rows, want %d", len(got.Latest), len(latest))
	}
	for _, le := range got.Latest {
		if want := latest[fmt.Sprintf("%d/%s", le.EndpointID, le.EventType)]; le.EventID != want {
			t.Errorf("latest %s %q = %d, want %d", le.Endpoint, le.EventType, le.EventID, want)
		}
	}

	// On one endpoint: only its pairs, each still the newest.
	f.EndpointID = ptr(int64(2))
	got, err = d.FindDashboard(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	pairs := 0
	for k := range latest {
		if strings.HasPrefix(k, "2/") {
			pairs++
		}
	}
	if len(got.Latest) != pairs || pairs == 0 {
		t.Errorf("latest on endpoint 2 = %d rows, want %d", len(got.Latest), pairs)
	}
	for _, le := range got.Latest {
		if want := latest[fmt.Sprintf("2/%s", le.EventType)]; le.EndpointID != 2 || le.EventID != want {
			t.Errorf("latest on endpoint 2: %+v, want event %d", le, want)
		}
	}
}

// checkRollups recomputes the dashboard rollups from the tables and compares them with what
// the triggers kept.
func checkRollups(t *testing.T, d *DB) {
	t.Helper()
	for _, q := range []struct{ name, kept, fresh string }{
		{"events", `SELECT hour, endpoint_id, event_type, events FROM stats_events WHERE events != 0 ORDER BY 1, 2, 3`,
			`SELECT first_received_at / 3600000000, endpoint_id, event_type, count(*) FROM events GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`},
		{"deliveries", `SELECT hour, endpoint_id, verdict || reason, deliveries * 1000 + duplicates FROM stats_deliveries WHERE deliveries != 0 ORDER BY 1, 2, 3`,
			`SELECT received_at / 3600000000, endpoint_id, verdict || reason, count(*) * 1000 + sum(duplicate) FROM deliveries GROUP BY 1, 2, verdict, reason ORDER BY 1, 2, 3`},
		{"ack", `SELECT hour, endpoint_id, bucket, deliveries FROM stats_ack WHERE deliveries != 0 ORDER BY 1, 2, 3`,
			`SELECT received_at / 3600000000, endpoint_id, coalesce((SELECT bucket FROM ack_buckets WHERE upper > ack_micros ORDER BY upper LIMIT 1), (SELECT max(bucket) FROM ack_buckets)), count(*) FROM deliveries GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`},
	} {
		read := func(sql string) string {
			rows, err := d.r.Query(sql)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var a, b, c, n any
				rows.Scan(&a, &b, &c, &n)
				out = append(out, fmt.Sprint(a, b, c, n))
			}
			return strings.Join(out, "; ")
		}
		if kept, fresh := read(q.kept), read(q.fresh); kept != fresh {
			t.Errorf("%s rollup = %s, recomputed %s", q.name, kept, fresh)
		}
	}
}

// TestAckPercentiles stores deliveries whose ack latencies are 1..100 ms and checks the
// percentiles are the nearest-rank ones.
func TestAckPercentiles(t *testing.T) {
	clock := testNow
	d := mustOpenDB(t, Options{Now: func() time.Time { return clock }})
	ctx := context.Background()
	for i := 1; i <= 100; i++ {
		in := rejected([]byte("x"), "signature_mismatch")
		in.Delivery.ReceivedAt = testNow.Add(-time.Duration(i) * time.Millisecond)
		if _, err := d.CreateDelivery(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.FindDashboard(ctx, DashboardFilter{Since: testNow.Add(-time.Hour),
		Until: testNow.Add(time.Hour), Bucket: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Each percentile is the upper bound of its histogram bucket: at most 10 % above the
	// nearest-rank value, never below it.
	want := []time.Duration{50 * time.Millisecond, 95 * time.Millisecond, 99 * time.Millisecond}
	gotP := []time.Duration{got.Total.AckP50, got.Total.AckP95, got.Total.AckP99}
	for i := range want {
		if gotP[i] < want[i] || gotP[i] > want[i]*11/10 {
			t.Errorf("percentile %d = %v, want %v to %v", i, gotP[i], want[i], want[i]*11/10)
		}
	}
	if ep := got.Endpoints[0]; ep.AckP99 != got.Total.AckP99 || ep.FailureRate() != 1 {
		t.Errorf("default endpoint p99 %v, failure rate %v; want %v, 1", ep.AckP99, ep.FailureRate(), got.Total.AckP99)
	}

	// Deleting deliveries takes them out of the rollups: the counts follow the table.
	if _, err := d.w.Exec(`DELETE FROM deliveries WHERE ack_micros >= 51000`); err != nil {
		t.Fatal(err)
	}
	got, err = d.FindDashboard(ctx, DashboardFilter{Since: testNow.Add(-time.Hour),
		Until: testNow.Add(time.Hour), Bucket: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got.Total.Deliveries != 50 || got.Total.AckP99 < 49*time.Millisecond || got.Total.AckP99 > 55*time.Millisecond {
		t.Errorf("after deleting the slow half: %d deliveries, p99 %v; want 50, about 50ms",
			got.Total.Deliveries, got.Total.AckP99)
	}
	checkRollups(t, d)
}

// TestExportEvents walks more events than one export page, newest first, each once.
func TestExportEvents(t *testing.T) {
	d := mustOpenDB(t, Options{})
	ctx := context.Background()
	for i := 0; i < 1203; i++ {
		body := []byte(fmt.Sprintf(`{"event":"e","n":%d}`, i))
		if _, err := d.CreateDelivery(ctx, verified(body, strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	var ids []int64
	err := d.ExportEvents(ctx, EventFilter{}, func(e Event) error {
		ids = append(ids, e.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1203 || ids[0] != 1203 || ids[1202] != 1 {
		t.Fatalf("exported %d events from %d to %d, want 1203 from 1203 to 1", len(ids), ids[0], ids[len(ids)-1])
	}
	n := 0
	err = d.ExportDeliveries(ctx, DeliveryFilter{}, func(Delivery) error { n++; return nil })
	if err != nil || n != 1203 {
		t.Errorf("exported %d deliveries (%v), want 1203", n, err)
	}
}

// TestEveryUIListQueryUsesIndexes asserts with EXPLAIN QUERY PLAN, for every combination of
// filters the list pages' form can issue (endpoint, type, time range, duplicates, search, and
// on deliveries verdict and reason), on the first page and on a later one, that the list query
// reads no table without an index and sorts rows only for a search (whose union of two keyset
// pages is at most twice a page). One row per combination: the table is generated so that a new
// filter cannot be left out.
func TestEveryUIListQueryUsesIndexes(t *testing.T) {
	d := mustOpenDB(t, Options{})
	mustSeedExplorer(t, d)
	ctx := context.Background()
	since := ptr(seedBase.Add(10 * time.Minute))
	until := ptr(seedBase.Add(30 * time.Minute))

	type choice struct {
		name string
		set  func(f *DeliveryFilter)
	}
	none := choice{"", func(*DeliveryFilter) {}}
	// The form's fields: "range=" gives Since alone; since and until may come alone or together.
	dims := [][]choice{
		{none, {"endpoint", func(f *DeliveryFilter) { f.EndpointSlug = ptr("lab") }}},
		{none, {"type", func(f *DeliveryFilter) { f.EventType = ptr("device.synced") }},
			{"no-type", func(f *DeliveryFilter) { f.EventType = ptr("") }}},
		{none, {"since", func(f *DeliveryFilter) { f.Since = since }},
			{"until", func(f *DeliveryFilter) { f.Until = until }},
			{"since-until", func(f *DeliveryFilter) { f.Since, f.Until = since, until }}},
		{none, {"dup", func(f *DeliveryFilter) { f.Duplicates = ptr(true) }}},
		{none, {"q-words", func(f *DeliveryFilter) { f.Search = ptr("pallet jack") }},
			{"q-id", func(f *DeliveryFilter) { f.Search = ptr("file_1") }},
			{"q-number", func(f *DeliveryFilter) { f.Search = ptr("#7") }}},
	}
	deliveryOnly := [][]choice{
		{none, {"verified", func(f *DeliveryFilter) { f.Verdict = ptr(Verified) }},
			{"rejected", func(f *DeliveryFilter) { f.Verdict = ptr(Rejected) }}},
		{none, {"reason", func(f *DeliveryFilter) { f.Reason = ptr("signature_mismatch") }}},
	}
	combos := func(dims [][]choice) [][]choice {
		out := [][]choice{nil}
		for _, dim := range dims {
			var next [][]choice
			for _, prefix := range out {
				for _, c := range dim {
					next = append(next, append(slices.Clone(prefix), c))
				}
			}
			out = next
		}
		return out
	}
	name := func(cs []choice) string {
		var parts []string
		for _, c := range cs {
			if c.name != "" {
				parts = append(parts, c.name)
			}
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, "+")
	}
	check := func(t *testing.T, q string, args []any, search bool) {
		t.Helper()
		plan := planLines(t, d, q, args)
		joined := strings.Join(plan, "\n")
		for _, line := range plan {
			if bareScan.MatchString(line) {
				t.Errorf("full table scan %q in plan:\n%s", line, joined)
			}
			if !search && strings.Contains(line, "TEMP B-TREE FOR ORDER BY") {
				t.Errorf("plan sorts instead of walking an index:\n%s", joined)
			}
		}
		if !strings.Contains(joined, " USING ") {
			t.Errorf("plan uses no index:\n%s", joined)
		}
	}

	rows := 0
	for _, cs := range combos(dims) {
		var df DeliveryFilter
		for _, c := range cs {
			c.set(&df)
		}
		ef := EventFilter{EndpointSlug: df.EndpointSlug, EventType: df.EventType, Since: df.Since,
			Until: df.Until, Duplicates: df.Duplicates, Search: df.Search}
		for _, before := range []int64{0, 20} {
			rows++
			t.Run(fmt.Sprintf("events/%s/before=%d", name(cs), before), func(t *testing.T) {
				f := ef
				f.Before = before
				q, args, ok, err := d.eventListQuery(ctx, f, 101)
				if err != nil || !ok {
					t.Fatalf("query: ok %v, %v", ok, err)
				}
				check(t, q, args, f.Search != nil)
			})
		}
	}
	for _, cs := range combos(append(slices.Clone(dims), deliveryOnly...)) {
		var df DeliveryFilter
		for _, c := range cs {
			c.set(&df)
		}
		for _, before := range []int64{0, 20} {
			rows++
			t.Run(fmt.Sprintf("deliveries/%s/before=%d", name(cs), before), func(t *testing.T) {
				f := df
				f.Before = before
				q, args, ok, err := d.deliveryListQuery(ctx, f, 101)
				if err != nil || !ok {
					t.Fatalf("query: ok %v, %v", ok, err)
				}
				check(t, q, args, f.Search != nil)
			})
		}
	}
	// 2×3×4×2×4 event combinations, ×3×2 for deliveries, each on two pages.
	if want := 2 * (192 + 192*6); rows != want {
		t.Errorf("checked %d plans, want %d", rows, want)
	}
}
