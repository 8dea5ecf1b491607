package web_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/signature"
)

// seeded is what the explorer tests know about one event they stored through the webhook.
type seeded struct {
	id       int64
	typ      string
	endpoint string
	at       time.Time
	dup      bool
	rare     bool // its body says "zanzibar"
	file     string
	envelope string // the body's "id"
	txn      string // its transcription id, "" when none
	dev      string // its device id, "" when none
}

var explorerTypes = []string{"transcription.completed", "device.synced", "audio_transcribe.completed"}

// explorerEnv is a server whose two endpoints (default and lab) both accept testSecret.
func explorerEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, func(c *webConfig) {
		c.Secrets = func(context.Context, int64) []signature.Secret {
			return []signature.Secret{{Label: "S", Key: []byte(testSecret)}}
		}
	})
	if _, err := e.db.CreateEndpoint(context.Background(), db.Endpoint{Slug: "lab", Name: "Lab"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// seedExplorer posts 130 signed events a minute apart (three types, every fourth to lab, every
// seventh delivered twice, every tenth about "zanzibar", every fifth naming a transcription and
// every third a device) and three rejected deliveries.
func seedExplorer(t *testing.T, e *env) []seeded {
	t.Helper()
	var out []seeded
	for i := 0; i < 130; i++ {
		s := seeded{typ: explorerTypes[i%3], endpoint: "default", dup: i%7 == 0,
			rare: i%10 == 0, file: fmt.Sprintf("file_%03d", i)}
		if i%5 == 2 {
			s.txn = fmt.Sprintf("trs_%03d", i)
		}
		switch i % 6 {
		case 1:
			s.dev = "NOTE-A7"
		case 4:
			s.dev = "NOTE-B4"
		}
		out = append(out, postSeeded(t, e, s, testNow.Add(time.Duration(i-130)*time.Minute),
			fmt.Sprintf("evt_%03d", i), i%4 == 0))
	}
	e.clock.Set(testNow)
	e.post("/webhook", http.Header{}, []byte("unsigned"))
	e.post("/webhook/lab", http.Header{"Plaud-Signature": {strings.Repeat("ab", 32)}}, []byte("forged"))
	e.post("/webhook", http.Header{"Plaud-Signature": {strings.Repeat("cd", 32)}}, []byte("forged again"))
	return out
}

// postSeeded posts s at the clock time at with envelope id env (to lab when lab is set), twice
// when s.dup, and returns it with its event id, time and endpoint filled in.
func postSeeded(t *testing.T, e *env, s seeded, at time.Time, env string, lab bool) seeded {
	t.Helper()
	e.clock.Set(at)
	s.at, s.envelope, s.endpoint = at, env, "default"
	path := "/webhook"
	if lab {
		s.endpoint, path = "lab", "/webhook/lab"
	}
	note := "weekly sync"
	if s.rare {
		note = "trip to zanzibar"
	}
	data := map[string]string{"fileId": s.file, "note": note}
	if s.txn != "" {
		data["transcriptionId"] = s.txn
	}
	if s.dev != "" {
		data["deviceId"] = s.dev
	}
	body, _ := json.Marshal(map[string]any{"event": s.typ, "id": env, "data": data})
	for k := 0; k < 1+btoi(s.dup); k++ {
		resp, text := e.post(path, signed(signature.SchemeDevguide, body, at), body)
		if resp.StatusCode != 200 {
			t.Fatalf("post %s: %d %s", env, resp.StatusCode, text)
		}
		var ack struct {
			EventID int64 `json:"event_id"`
		}
		json.Unmarshal([]byte(text), &ack)
		s.id = ack.EventID
	}
	return s
}

// seedOld posts four events a minute either side of the 24 h and 7 d limits before testNow,
// oldest first (the two oldest on lab), and sets the clock back to testNow: the ranges are
// checked at their edges.
func seedOld(t *testing.T, e *env) []seeded {
	t.Helper()
	var out []seeded
	for i, ago := range []time.Duration{7*24*time.Hour + time.Minute, 7*24*time.Hour - time.Minute,
		24*time.Hour + time.Minute, 24*time.Hour - time.Minute} {
		s := seeded{typ: explorerTypes[i%3], file: fmt.Sprintf("file_old_%d", i)}
		out = append(out, postSeeded(t, e, s, testNow.Add(-ago), fmt.Sprintf("evt_old_%d", i), i < 2))
	}
	e.clock.Set(testNow)
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// explorerCases are filters of the event list as URL parameters, with what they mean.
func explorerCases() []struct {
	name  string
	query string
	keep  func(s seeded) bool
} {
	since := testNow.Add(-100 * time.Minute).UTC()
	until := testNow.Add(-40 * time.Minute).UTC()
	return []struct {
		name  string
		query string
		keep  func(s seeded) bool
	}{
		{"none", "", func(seeded) bool { return true }},
		{"type", "type=device.synced", func(s seeded) bool { return s.typ == "device.synced" }},
		{"endpoint", "endpoint=lab", func(s seeded) bool { return s.endpoint == "lab" }},
		{"duplicates", "dup=1", func(s seeded) bool { return s.dup }},
		{"search word", "q=zanzibar", func(s seeded) bool { return s.rare }},
		{"search common word across pages", "q=weekly", func(s seeded) bool { return !s.rare }},
		{"search file id", "q=file_017", func(s seeded) bool { return s.file == "file_017" }},
		{"search transcription id", "q=trs_047", func(s seeded) bool { return s.txn == "trs_047" }},
		{"search device id", "q=NOTE-B4", func(s seeded) bool { return s.dev == "NOTE-B4" }},
		{"search envelope id", "q=evt_093", func(s seeded) bool { return s.envelope == "evt_093" }},
		{"search old envelope id", "q=evt_old_0", func(s seeded) bool { return s.envelope == "evt_old_0" }},
		{"last 15 min", "range=15m", func(s seeded) bool { return !s.at.Before(testNow.Add(-15 * time.Minute)) }},
		{"last 24 h", "range=24h", func(s seeded) bool { return !s.at.Before(testNow.Add(-24 * time.Hour)) }},
		{"last 7 d", "range=7d", func(s seeded) bool { return !s.at.Before(testNow.Add(-7 * 24 * time.Hour)) }},
		{"last 7 d on lab", "range=7d&endpoint=lab", func(s seeded) bool {
			return !s.at.Before(testNow.Add(-7*24*time.Hour)) && s.endpoint == "lab"
		}},
		{"absolute range", "since=" + since.Format(time.RFC3339) + "&until=" + until.Format(time.RFC3339),
			func(s seeded) bool { return !s.at.Before(since) && s.at.Before(until) }},
		{"type endpoint duplicates", "type=transcription.completed&endpoint=default&dup=1", func(s seeded) bool {
			return s.typ == "transcription.completed" && s.endpoint == "default" && s.dup
		}},
		{"search and type", "q=zanzibar&type=audio_transcribe.completed", func(s seeded) bool {
			return s.rare && s.typ == "audio_transcribe.completed"
		}},
		{"range and endpoint", "range=1h&endpoint=default", func(s seeded) bool {
			return !s.at.Before(testNow.Add(-time.Hour)) && s.endpoint == "default"
		}},
	}
}

func wantIDs(seed []seeded, keep func(seeded) bool) []int64 {
	var out []int64
	for i := len(seed) - 1; i >= 0; i-- {
		if keep(seed[i]) {
			out = append(out, seed[i].id)
		}
	}
	return out
}

// walkList follows a list's "older" links from first, returning every row id in order and the
// URL of every page visited.
func walkList(t *testing.T, e *env, c *http.Client, first, row string) ([]int64, []string) {
	t.Helper()
	var ids []int64
	var pages []string
	next := first
	for len(pages) < 20 && next != "" {
		resp, body := get(t, c, e.ts.URL+next)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", next, resp.StatusCode)
		}
		pages = append(pages, next)
		doc := mustDoc(t, body)
		rows := doc.Find("[data-testid=" + row + "]")
		if rows.Length() > 100 {
			t.Fatalf("page %s holds %d rows, want at most 100", next, rows.Length())
		}
		rows.Each(func(_ int, s *goquery.Selection) {
			id, _ := strconv.ParseInt(s.AttrOr("data-id", ""), 10, 64)
			ids = append(ids, id)
		})
		link := doc.Find("[data-testid=next-page]")
		next = ""
		if _, hidden := link.Attr("hidden"); link.Length() == 1 && !hidden {
			next = link.AttrOr("href", "")
		}
	}
	return ids, pages
}

// TestEventListFilters checks each filter of the event list alone and combined, in the UI and
// in the API, across pages: the rows shown are exactly those that match, newest first, and
// every "older" link keeps the filter.
func TestEventListFilters(t *testing.T) {
	e := explorerEnv(t)
	seed := append(seedOld(t, e), seedExplorer(t, e)...)
	c := e.client("viewer")
	for _, tc := range explorerCases() {
		t.Run(tc.name, func(t *testing.T) {
			want := wantIDs(seed, tc.keep)
			if len(want) == 0 {
				t.Fatal("the case matches nothing: it tests nothing")
			}
			if tc.query != "" && len(want) == len(seed) {
				t.Fatal("the case matches every event: it filters nothing")
			}

			// The UI, following its links.
			got, pages := walkList(t, e, c, "/events?"+tc.query, "event-row")
			if !slices.Equal(got, want) {
				t.Errorf("UI ids = %v, want %v", got, want)
			}
			for _, p := range pages[1:] {
				u, _ := url.Parse(p)
				wantQ, _ := url.ParseQuery(tc.query)
				for k := range wantQ {
					if u.Query().Get(k) != wantQ.Get(k) {
						t.Errorf("page link %s lost filter %s=%s", p, k, wantQ.Get(k))
					}
				}
			}

			// The API, following next_cursor.
			var apiIDs []int64
			cursor := ""
			for i := 0; i < 20; i++ {
				u := e.ts.URL + "/api/v1/events?limit=40&" + tc.query
				if cursor != "" {
					u += "&cursor=" + cursor
				}
				resp, body := get(t, c, u)
				if resp.StatusCode != 200 {
					t.Fatalf("API = %d %s", resp.StatusCode, body)
				}
				var page struct {
					Events []struct {
						ID int64 `json:"id"`
					} `json:"events"`
					NextCursor *string `json:"next_cursor"`
				}
				if err := json.Unmarshal([]byte(body), &page); err != nil {
					t.Fatal(err)
				}
				for _, ev := range page.Events {
					apiIDs = append(apiIDs, ev.ID)
				}
				if page.NextCursor == nil {
					break
				}
				cursor = *page.NextCursor
			}
			if !slices.Equal(apiIDs, want) {
				t.Errorf("API ids = %v, want %v", apiIDs, want)
			}
		})
	}

	// The form's own time format (datetime-local, UTC) reads like RFC 3339.
	since := testNow.Add(-100 * time.Minute).UTC().Format("2006-01-02T15:04")
	local, _ := walkList(t, e, c, "/events?since="+since, "event-row")
	if rfc, _ := walkList(t, e, c, "/events?since="+url.QueryEscape(testNow.Add(-100*time.Minute).UTC().Format(time.RFC3339)), "event-row"); len(local) == 0 || !slices.Equal(local, rfc) {
		t.Errorf("since=%s gives %d rows, RFC 3339 gives %d", since, len(local), len(rfc))
	}

	// A common word filling more than a page needs two pages, and both keep the filter.
	if _, pages := walkList(t, e, c, "/events?q=weekly", "event-row"); len(pages) != 2 {
		t.Errorf("q=weekly took %d pages, want 2", len(pages))
	}
	// The filter form shows the filters of the URL.
	_, body := get(t, c, e.ts.URL+"/events?type=device.synced&q=zanzibar&dup=1")
	doc := mustDoc(t, body)
	if v := doc.Find("[data-testid=filter-q]").AttrOr("value", ""); v != "zanzibar" {
		t.Errorf("search box = %q", v)
	}
	if v := doc.Find("[data-testid=filter-type] option[selected]").AttrOr("value", ""); v != "device.synced" {
		t.Errorf("type selected = %q", v)
	}
	if _, ok := doc.Find("[data-testid=filter-dup]").Attr("checked"); !ok {
		t.Errorf("duplicates box not ticked")
	}
	// Every row is a real link to its event.
	doc.Find("[data-testid=event-row]").Each(func(_ int, s *goquery.Selection) {
		if href := s.Find("a[data-nav-link]").AttrOr("href", ""); href != "/events/"+s.AttrOr("data-id", "") {
			t.Errorf("row link = %q, want the event page", href)
		}
	})
	// The live stream of the page carries the same filters.
	stream := doc.Find("[data-testid=live-region]").AttrOr("sse-connect", "")
	su, _ := url.Parse(stream)
	if su.Path != "/events/stream" || su.Query().Get("type") != "device.synced" ||
		su.Query().Get("q") != "zanzibar" || su.Query().Get("list") != "events" {
		t.Errorf("stream URL = %q, want the list's filters", stream)
	}
}

// TestDeliveryListFilters checks the delivery list's own filters: verdict, reason, endpoint,
// type, duplicates, in the UI and the API.
func TestDeliveryListFilters(t *testing.T) {
	e := explorerEnv(t)
	seedExplorer(t, e)
	c := e.client("viewer")
	all, err := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, query string
		keep        func(d db.Delivery) bool
	}{
		{"rejected", "verdict=rejected", func(d db.Delivery) bool { return d.Verdict == db.Rejected }},
		{"reason", "reason=signature_mismatch", func(d db.Delivery) bool { return d.Reason == "signature_mismatch" }},
		{"rejected on lab", "verdict=rejected&endpoint=lab", func(d db.Delivery) bool {
			return d.Verdict == db.Rejected && d.Endpoint == "lab"
		}},
		{"duplicates", "dup=1", func(d db.Delivery) bool { return d.Duplicate }},
		{"verified of a type", "verdict=verified&type=device.synced", func(d db.Delivery) bool {
			if d.Verdict != db.Verified {
				return false
			}
			ev, _ := e.db.FindEventByID(context.Background(), d.EventID)
			return ev.EventType == "device.synced"
		}},
		{"all across pages", "", func(db.Delivery) bool { return true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []int64
			for _, d := range all {
				if tc.keep(d) {
					want = append(want, d.ID)
				}
			}
			if len(want) == 0 {
				t.Fatal("the case matches nothing")
			}
			got, _ := walkList(t, e, c, "/deliveries?"+tc.query, "delivery-row")
			if !slices.Equal(got, want) {
				t.Errorf("UI ids = %v, want %v", got, want)
			}
			resp, body := get(t, c, e.ts.URL+"/api/v1/deliveries?limit=500&"+tc.query)
			var page struct {
				Deliveries []struct {
					ID int64 `json:"id"`
				} `json:"deliveries"`
			}
			json.Unmarshal([]byte(body), &page)
			var apiIDs []int64
			for _, d := range page.Deliveries {
				apiIDs = append(apiIDs, d.ID)
			}
			if resp.StatusCode != 200 || !slices.Equal(apiIDs, want) {
				t.Errorf("API = %d, ids %v, want %v", resp.StatusCode, apiIDs, want)
			}
		})
	}

	// The event list sends verdict and reason filters to the delivery list.
	resp, _ := get(t, c, e.ts.URL+"/events?reason=missing_signature")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/deliveries?reason=missing_signature" {
		t.Errorf("event list with a reason = %d to %q", resp.StatusCode, loc)
	}
	// Bad filter values are refused with a message, not ignored.
	for _, q := range []string{"/events?range=forever", "/events?since=yesterday", "/deliveries?verdict=maybe", "/events?before=x"} {
		if resp, _ := get(t, c, e.ts.URL+q); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("GET %s = %d, want 422", q, resp.StatusCode)
		}
	}
	if resp, _ := get(t, c, e.ts.URL+"/api/v1/events?range=forever"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("API bad range = %d, want 400", resp.StatusCode)
	}
}

// openStreamAt opens a live stream with a query.
func openStreamAt(t *testing.T, e *env, c *http.Client, query string) *http.Response {
	t.Helper()
	resp, err := c.Get(e.ts.URL + "/events/stream?" + query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("stream %s = %d", query, resp.StatusCode)
	}
	return resp
}

// TestLiveUpdatesHonourFilters (C22) opens the streams of filtered lists and delivers rows that
// do not match before one that does: the first row each stream sends is the matching one, and
// the unfiltered stream still sends everything.
func TestLiveUpdatesHonourFilters(t *testing.T) {
	e := explorerEnv(t)
	c := e.client("viewer")
	body := func(typ, note string, n int) []byte {
		return []byte(fmt.Sprintf(`{"event":%q,"id":"live_%d","data":{"note":%q}}`, typ, n, note))
	}
	send := func(path string, b []byte) {
		if resp, text := e.post(path, signed(signature.SchemeDevguide, b, testNow), b); resp.StatusCode != 200 {
			t.Fatalf("post: %d %s", resp.StatusCode, text)
		}
	}
	tests := []struct {
		name, query string
		misses      func(n int)
		hit         func(n int)
		want        string // in the first row sent
	}{
		{"type", "list=events&type=device.synced",
			func(n int) { send("/webhook", body("transcription.completed", "x", n)) },
			func(n int) { send("/webhook", body("device.synced", "x", n)) }, `data-event-type="device.synced"`},
		{"endpoint", "list=events&endpoint=lab",
			func(n int) { send("/webhook", body("device.synced", "x", n)) },
			func(n int) { send("/webhook/lab", body("device.synced", "x", n)) }, `<td>lab</td>`},
		{"search", "list=events&q=zanzibar",
			func(n int) { send("/webhook", body("device.synced", "weekly sync", n)) },
			func(n int) { send("/webhook", body("device.synced", "to zanzibar", n)) }, `device.synced`},
		{"past range", "list=events&until=2000-01-01",
			func(n int) { send("/webhook", body("device.synced", "x", n)) },
			nil, ""},
		{"rejected deliveries", "list=deliveries&verdict=rejected",
			func(n int) { send("/webhook", body("device.synced", "x", n)) },
			func(int) { e.post("/webhook", http.Header{}, []byte("unsigned")) }, `data-verdict="rejected"`},
	}
	n := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := openStreamAt(t, e, c, tc.query)
			all := openStreamAt(t, e, c, "")
			n += 10
			tc.misses(n)
			tc.misses(n + 1)
			if tc.hit == nil {
				// Nothing may arrive: two heartbeats pass with no row.
				events, _ := readEvents(t, resp, func(ev []sseEvent, beats int) bool { return beats >= 3 || len(ev) > 0 })
				if len(events) > 0 {
					t.Fatalf("stream sent %s for a range in the past", events[0].name)
				}
			} else {
				tc.hit(n + 2)
				// The row of the hit is the newest of its list.
				newest, err := e.db.LastDeliveryID(context.Background())
				if strings.Contains(tc.query, "list=events") {
					var evs []db.Event
					evs, _, err = e.db.FindEvents(context.Background(), db.EventFilter{Limit: 1})
					newest = evs[0].ID
				}
				if err != nil {
					t.Fatal(err)
				}
				events, _ := readEvents(t, resp, func(ev []sseEvent, _ int) bool { return len(ev) >= 1 })
				if !strings.Contains(events[0].data, tc.want) || !strings.Contains(events[0].data, fmt.Sprintf(`data-id="%d"`, newest)) {
					t.Fatalf("first row sent = %s %q, want row %d with %s", events[0].name, events[0].data, newest, tc.want)
				}
				if strings.HasPrefix(events[0].name, "event-") != strings.Contains(tc.query, "list=events") {
					t.Errorf("message %s sent to the %s stream", events[0].name, tc.query)
				}
			}
			// The unfiltered stream had every delivery.
			want := 2 + btoi(tc.hit != nil)
			got, _ := readEvents(t, all, func(ev []sseEvent, _ int) bool {
				k := 0
				for _, x := range ev {
					k += btoi(strings.HasPrefix(x.name, "delivery-"))
				}
				return k >= want
			})
			if len(got) < want {
				t.Errorf("unfiltered stream sent %d messages, want at least %d", len(got), want)
			}
		})
	}

	// A filtered stream resumed with Last-Event-ID replays only the matching rows it missed.
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/events/stream?list=events&endpoint=lab", nil)
	req.Header.Set("Last-Event-ID", "1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	missed, _ := readEvents(t, resp, func(_ []sseEvent, beats int) bool { return beats >= 2 })
	if len(missed) != 1 || !strings.Contains(missed[0].data, "<td>lab</td>") {
		t.Errorf("resumed lab stream sent %d messages, want the one lab event: %v", len(missed), missed)
	}
	if r, _ := get(t, c, e.ts.URL+"/events/stream?list=nope"); r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("stream of an unknown list = %d, want 422", r.StatusCode)
	}
}

// TestExportFiltered exports a filtered set as NDJSON (with and without bodies) and CSV, from
// the UI and the API, and checks rows and audit.
func TestExportFiltered(t *testing.T) {
	e := explorerEnv(t)
	seed := seedExplorer(t, e)
	c := e.client("viewer")
	want := wantIDs(seed, func(s seeded) bool { return s.typ == "device.synced" && s.endpoint == "default" })

	for _, u := range []string{"/events/export?format=ndjson&type=device.synced&endpoint=default",
		"/api/v1/events?format=ndjson&type=device.synced&endpoint=default&body=1"} {
		resp, body := get(t, c, e.ts.URL+u)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" ||
			!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
			t.Fatalf("%s = %d %s %s", u, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
		}
		var got []int64
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			var ev struct {
				ID        int64           `json:"id"`
				EventType string          `json:"event_type"`
				Body      json.RawMessage `json:"body"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if strings.Contains(u, "body=1") != (len(ev.Body) > 0) {
				t.Errorf("%s: body present = %v", u, len(ev.Body) > 0)
			}
			if len(ev.Body) > 0 && !strings.Contains(string(ev.Body), `"device.synced"`) {
				t.Errorf("exported body = %s", ev.Body)
			}
			got = append(got, ev.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s ids = %v, want %v", u, got, want)
		}
	}

	// CSV, with a header row, parseable, one row per event.
	resp, body := get(t, c, e.ts.URL+"/events/export?format=csv&type=device.synced&endpoint=default")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("csv: %v %s", err, resp.Header.Get("Content-Type"))
	}
	if rows[0][0] != "id" || len(rows) != len(want)+1 || rows[1][0] != strconv.FormatInt(want[0], 10) {
		t.Errorf("csv = %d rows, first %v, want header then %d rows from %d", len(rows), rows[0], len(want), want[0])
	}
	// Deliveries too.
	_, body = get(t, c, e.ts.URL+"/deliveries/export?format=csv&verdict=rejected")
	rows, _ = csv.NewReader(strings.NewReader(body)).ReadAll()
	if len(rows) != 4 || rows[1][4] != "rejected" {
		t.Errorf("rejected deliveries csv = %v", rows)
	}
	// Exports are audited with their filter.
	entries, _, err := e.db.FindAuditEntries(context.Background(), db.AuditFilter{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	exports := 0
	for _, a := range entries {
		if strings.HasSuffix(a.Action, ".export") && strings.Contains(a.Detail, "format") {
			exports++
		}
	}
	if exports != 4 {
		t.Errorf("export audit entries = %d, want 4", exports)
	}
	if resp, _ := get(t, c, e.ts.URL+"/events/export?format=xml"); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("export as xml = %d, want 422", resp.StatusCode)
	}
}

// TestCSVFormulaNeutralised checks payload text cannot become a spreadsheet formula.
func TestCSVFormulaNeutralised(t *testing.T) {
	e := newEnv(t)
	b := []byte(`{"event":"=HYPERLINK(\"http://x\")","data":{"fileId":"+1"}}`)
	e.post("/webhook", signed(signature.SchemeDevguide, b, testNow), b)
	_, body := get(t, e.client("viewer"), e.ts.URL+"/events/export?format=csv")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("csv: %v %v", rows, err)
	}
	if got := rows[1][2]; got != `'=HYPERLINK("http://x")` {
		t.Errorf("event_type cell = %q, want it prefixed with a quote", got)
	}
}

// seedBulk inserts n events of type bulk.test straight into the database file through a second
// connection, in one transaction (the triggers index them as ingest would): the webhook path
// would take minutes for 100,000.
func seedBulk(t testing.TB, path string, n int) {
	t.Helper()
	conn, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000&_txlock=immediate&_foreign_keys=0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	at := testNow.Add(-time.Hour).UnixMicro()
	for _, q := range []string{
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO deliveries (id, endpoint_id, received_at, method, path, headers, body_sha256,
			size, verdict, event_id, event_type)
		SELECT 1000000 + i, 1, ? + i, 'POST', '/webhook', '{}', '', 60, 'verified', 1000000 + i,
			'bulk.test' FROM n`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO delivery_bodies (delivery_id, body)
		SELECT 1000000 + i, CAST('{"event":"bulk.test","data":{"n":' || i || ',"note":"row ' || i || '"}}' AS BLOB) FROM n WHERE ? >= 0`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO events (id, endpoint_id, dedupe_key, event_type, envelope_id, file_id, is_json,
			size, summary, first_received_at, last_received_at, delivery_count, body_delivery_id)
		SELECT 1000000 + i, 1, 'bulk:' || i, 'bulk.test', 'evt_bulk_' || i, 'file_bulk_' || i, 1,
			60, 'bulk row', ? + i, ? + i, 1, 1000000 + i FROM n`,
	} {
		args := []any{n, at}
		if strings.Contains(q, "events (id") {
			args = append(args, at)
		}
		if _, err := tx.Exec(q, args...); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestExportStreamsInBoundedMemory exports 100,000 events as NDJSON and samples the heap while
// it streams: the peak grows by a small fraction of what is sent, so the export is never built
// in memory.
func TestExportStreamsInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 events: runs without -short")
	}
	const n = 100_000
	e := newEnv(t)
	seedBulk(t, e.db.Path, n)
	c := e.client("viewer")

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
			}
		}
	}()

	t0 := time.Now()
	resp, err := c.Get(e.ts.URL + "/events/export?format=ndjson&type=bulk.test")
	if err != nil {
		t.Fatal(err)
	}
	lines, bytes := 0, int64(0)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines++
		bytes += int64(len(sc.Bytes())) + 1
	}
	resp.Body.Close()
	close(stop)
	<-sampled
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	growth := int64(peak.Load()) - int64(base.HeapAlloc)
	t.Logf("exported %d events, %.1f MiB in %v; heap peak %.1f MiB above the start; %.0f bytes allocated per event",
		lines, float64(bytes)/(1<<20), time.Since(t0).Round(time.Millisecond), float64(growth)/(1<<20),
		float64(after.TotalAlloc-base.TotalAlloc)/float64(n))
	if lines != n {
		t.Fatalf("exported %d lines, want %d", lines, n)
	}
	if bytes < 20<<20 {
		t.Fatalf("export is only %d bytes: too small to show anything about memory", bytes)
	}
	if growth > bytes/4 || growth > 32<<20 {
		t.Errorf("heap grew by %d bytes while sending %d: the export is held in memory", growth, bytes)
	}
}

// TestCompare compares two events and two deliveries: the structural diff lists exactly the
// fields that differ, and the headers line up side by side.
func TestCompare(t *testing.T) {
	e := newEnv(t)
	c := e.client("viewer")
	a, err := os.ReadFile("jsondiff/testdata/transcript.a.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("jsondiff/testdata/transcript.b.json")
	var ids []int64
	for i, body := range [][]byte{a, b} {
		h := signed(signature.SchemeDevguide, body, testNow)
		if i == 1 {
			h.Set("X-Retry", "1")
		}
		resp, text := e.post("/webhook", h, body)
		var ack struct {
			EventID int64 `json:"event_id"`
		}
		json.Unmarshal([]byte(text), &ack)
		if resp.StatusCode != 200 {
			t.Fatalf("post: %d %s", resp.StatusCode, text)
		}
		ids = append(ids, ack.EventID)
	}
	resp, body := get(t, c, fmt.Sprintf("%s/compare?e=%d&e=%d", e.ts.URL, ids[0], ids[1]))
	if resp.StatusCode != 200 {
		t.Fatalf("compare = %d", resp.StatusCode)
	}
	doc := mustDoc(t, body)
	var want []struct{ Path, Kind string }
	wb, _ := os.ReadFile("jsondiff/testdata/transcript.want.json")
	json.Unmarshal(wb, &want)
	rows := doc.Find("[data-testid=diff-row]")
	if rows.Length() != len(want) {
		t.Fatalf("diff rows = %d, want %d", rows.Length(), len(want))
	}
	rows.Each(func(i int, s *goquery.Selection) {
		if p, k := s.Find("[data-testid=diff-path]").Text(), s.AttrOr("data-kind", ""); p != want[i].Path || k != want[i].Kind {
			t.Errorf("diff row %d = %s %s, want %s %s", i, p, k, want[i].Path, want[i].Kind)
		}
	})
	// Headers side by side: the extra header and the signatures differ, Content-Type does not.
	differs := map[string]string{}
	doc.Find("[data-testid=header-pair]").Each(func(_ int, s *goquery.Selection) {
		differs[s.Find("th").Text()] = s.AttrOr("data-differs", "")
	})
	if differs["X-Retry"] != "true" || differs["Plaud-Signature"] != "true" || differs["Content-Type"] != "false" {
		t.Errorf("header differences = %v", differs)
	}
	if strings.Contains(body, signed(signature.SchemeDevguide, a, testNow).Get("Plaud-Signature")) {
		t.Errorf("the compare page shows a whole signature")
	}

	// Two deliveries of the same event compare as the same body.
	e.post("/webhook", signed(signature.SchemeDevguide, a, testNow), a)
	ds, _ := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{EventID: &ids[0]})
	_, body = get(t, c, fmt.Sprintf("%s/compare?d=%d&d=%d", e.ts.URL, ds[0].ID, ds[1].ID))
	if mustDoc(t, body).Find("[data-testid=diff-none]").Length() != 1 {
		t.Errorf("two deliveries of one event are not shown as the same body")
	}
	// A body that is not JSON is shown, not diffed.
	e.post("/webhook", http.Header{}, []byte("not json"))
	last, _ := e.db.LastDeliveryID(context.Background())
	_, body = get(t, c, fmt.Sprintf("%s/compare?d=%d&d=%d", e.ts.URL, ds[0].ID, last))
	if mustDoc(t, body).Find("[data-testid=diff-not-json]").Length() != 1 {
		t.Errorf("non-JSON compare has no explanation")
	}
	// Without two, the form asks for them.
	for q, status := range map[string]int{"": 200, "e=1": 422, "e=1&e=2&e=3": 422, "e=x&e=1": 422} {
		if resp, body := get(t, c, e.ts.URL+"/compare?"+q); resp.StatusCode != status || !strings.Contains(body, `action="/compare"`) {
			t.Errorf("compare?%s = %d, want %d with the form", q, resp.StatusCode, status)
		}
	}
	if resp, _ := get(t, c, e.ts.URL+"/compare?e=1&e=999999"); resp.StatusCode != 404 {
		t.Errorf("compare with a missing event = %d, want 404", resp.StatusCode)
	}
}

// TestSchemaDriftMarked stores device.synced events from the fixture, then one without its
// fileId: the list marks that row, its page names the missing field, and the fields page
// lists the counts.
func TestSchemaDriftMarked(t *testing.T) {
	e := newEnv(t)
	c := e.client("viewer")
	fixture, err := os.ReadFile("../db/testdata/drift/device.synced.json")
	if err != nil {
		t.Fatal(err)
	}
	odd, _ := os.ReadFile("../db/testdata/drift/device.synced.no-file-id.json")
	for i := 0; i < 6; i++ {
		b := []byte(strings.Replace(string(fixture), "evt_6Yh1jK3lZ5xC7vB9", fmt.Sprintf("evt_%d", i), 1))
		e.post("/webhook", signed(signature.SchemeDevguide, b, testNow), b)
	}
	_, text := e.post("/webhook", signed(signature.SchemeDevguide, odd, testNow), odd)
	var ack struct {
		EventID int64 `json:"event_id"`
	}
	json.Unmarshal([]byte(text), &ack)

	_, body := get(t, c, e.ts.URL+"/events")
	doc := mustDoc(t, body)
	marked := doc.Find("[data-testid=drift-badge]").Closest("tr")
	if marked.Length() != 1 || marked.AttrOr("data-id", "") != strconv.FormatInt(ack.EventID, 10) {
		t.Fatalf("marked rows = %d (%s), want only event %d", marked.Length(), marked.AttrOr("data-id", ""), ack.EventID)
	}
	_, body = get(t, c, fmt.Sprintf("%s/events/%d", e.ts.URL, ack.EventID))
	missing := mustDoc(t, body).Find("[data-testid=drift-missing] code").Text()
	if missing != "data.fileId" {
		t.Errorf("event page names %q missing, want data.fileId", missing)
	}
	_, body = get(t, c, e.ts.URL+"/schema?type=device.synced")
	fields := mustDoc(t, body).Find("[data-testid=schema-field]")
	if fields.Length() < 10 || !strings.Contains(fields.Text(), "data.fileId") {
		t.Errorf("fields page lists %d fields: %s", fields.Length(), fields.Text())
	}
}

// TestEventPageExplorer checks the event page's additions: a highlighted, foldable JSON tree
// with payload markup escaped, copy buttons, relative times, and a link comparing it with the
// previous event of its type.
func TestEventPageExplorer(t *testing.T) {
	e := newEnv(t)
	c := e.client("viewer")
	first := []byte(`{"event":"device.synced","id":"e1","data":{"fileId":"f1"}}`)
	xss := []byte(`{"event":"device.synced","id":"e2","data":{"fileId":"<img src=x onerror=alert(1)>","n":[1,2,{"deep":null}]}}`)
	for _, b := range [][]byte{first, xss} {
		e.post("/webhook", signed(signature.SchemeDevguide, b, testNow), b)
	}
	_, body := get(t, c, e.ts.URL+"/events/2")
	doc := mustDoc(t, body)
	tree := doc.Find("[data-testid=json-tree]")
	if tree.Length() != 1 || tree.Find("details").Length() != 4 || tree.Find(".j-key").Length() < 5 {
		t.Fatalf("JSON tree: %d trees, %d foldable nodes, %d keys", tree.Length(), tree.Find("details").Length(), tree.Find(".j-key").Length())
	}
	if got := tree.Find(".j-str").FilterFunction(func(_ int, s *goquery.Selection) bool {
		return strings.Contains(s.Text(), "onerror")
	}).Text(); got != `"<img src=x onerror=alert(1)>"` {
		t.Errorf("string node = %q", got)
	}
	if strings.Contains(body, "<img src=x") {
		t.Errorf("payload markup rendered as HTML")
	}
	if doc.Find("button.copy[data-copy-text=e2]").Length() != 1 || doc.Find("button.copy[data-copy-target=raw-body]").Length() != 1 {
		t.Errorf("copy buttons for the envelope id and the raw body are missing")
	}
	if doc.Find("time[data-relative][datetime]").Length() == 0 {
		t.Errorf("no relative time")
	}
	if href := doc.Find("[data-testid=compare-previous]").AttrOr("href", ""); href != "/compare?e=1&e=2" {
		t.Errorf("compare with previous = %q", href)
	}

	// The headers have a copy button of their own, copying the element that holds them.
	btn := doc.Find("button.copy[data-copy-target=first-headers]")
	if btn.Length() != 1 || btn.AttrOr("aria-label", "") != "Copy the headers" {
		t.Errorf("header copy buttons = %d (label %q), want one labelled \"Copy the headers\"",
			btn.Length(), btn.AttrOr("aria-label", ""))
	}
	names := doc.Find("#first-headers [data-testid=header-table] th").Map(func(_ int, s *goquery.Selection) string {
		return s.Text()
	})
	for _, want := range []string{"Content-Type", "Plaud-Signature"} {
		if !slices.Contains(names, want) {
			t.Errorf("the copied header block holds %v, want %s among them", names, want)
		}
	}

	// Every relative time, on the event page and in the list, keeps the exact time: as its
	// machine-readable datetime and as the title shown on hover.
	exact := testNow.UTC().Format("2006-01-02 15:04:05") + " UTC"
	_, list := get(t, c, e.ts.URL+"/events")
	for page, d := range map[string]*goquery.Document{"/events/2": doc, "/events": mustDoc(t, list)} {
		times := d.Find("time[data-relative]")
		if times.Length() == 0 {
			t.Errorf("%s: no relative time", page)
		}
		times.Each(func(_ int, s *goquery.Selection) {
			if title := s.AttrOr("title", ""); title != exact {
				t.Errorf("%s: time title = %q, want %q", page, title, exact)
			}
			at, err := time.Parse(time.RFC3339Nano, s.AttrOr("datetime", ""))
			if err != nil || !at.Equal(testNow) {
				t.Errorf("%s: time datetime = %q, want %s", page, s.AttrOr("datetime", ""),
					testNow.Format(time.RFC3339))
			}
		})
	}
}

// TestDashboard checks the home page's numbers against the seed, and that each links to the
// list it counts.
func TestDashboard(t *testing.T) {
	e := explorerEnv(t)
	seed := seedExplorer(t, e)
	c := e.client("viewer")
	resp, body := get(t, c, e.ts.URL+"/")
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	doc := mustDoc(t, body)
	card := func(id string) string {
		return strings.TrimSpace(doc.Find("[data-testid=" + id + "] .card-value").Text())
	}
	deliveries := len(seed) + 3
	dups := 0
	for _, s := range seed {
		dups += btoi(s.dup)
	}
	deliveries += dups
	if got := card("total-events"); got != strconv.Itoa(len(seed)) {
		t.Errorf("events = %s, want %d", got, len(seed))
	}
	if got := card("total-deliveries"); got != strconv.Itoa(deliveries) {
		t.Errorf("deliveries = %s, want %d", got, deliveries)
	}
	wantRate := fmt.Sprintf("%.1f %%", 300/float64(deliveries))
	if got := card("failure-rate"); got != wantRate {
		t.Errorf("failure rate = %s, want %s", got, wantRate)
	}
	if href := doc.Find("[data-testid=failure-rate] a").AttrOr("href", ""); href != "/deliveries?range=24h&verdict=rejected" {
		t.Errorf("failure rate links to %q", href)
	}
	if n := doc.Find("[data-testid=chart-events-chart] rect").Length(); n < 3 {
		t.Errorf("events chart has %d bars", n)
	}
	if n := doc.Find("[data-testid=dashboard-type-row]").Length(); n != 6 {
		t.Errorf("type rows = %d, want 6 (3 types on 2 endpoints)", n)
	}
	if n := doc.Find("[data-testid=dashboard-endpoint-row]").Length(); n != 2 {
		t.Errorf("endpoint rows = %d, want 2", n)
	}

	// One endpoint, and a range that holds nothing.
	_, body = get(t, c, e.ts.URL+"/?endpoint=lab&range=7d")
	doc = mustDoc(t, body)
	lab := 0
	for _, s := range seed {
		lab += btoi(s.endpoint == "lab")
	}
	if got := card("total-events"); got != strconv.Itoa(lab) {
		t.Errorf("lab events = %s, want %d", got, lab)
	}
	for q, status := range map[string]int{"/?range=1y": 422, "/?endpoint=nope": 404} {
		if resp, _ := get(t, c, e.ts.URL+q); resp.StatusCode != status {
			t.Errorf("GET %s = %d, want %d", q, resp.StatusCode, status)
		}
	}
}

// TestExplorerPagesNeedSignIn checks the explorer's pages are closed to anonymous visitors.
func TestExplorerPagesNeedSignIn(t *testing.T) {
	e := newEnv(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/", "/events?q=x", "/events/export", "/deliveries/export", "/compare?e=1&e=2", "/schema"} {
		resp, err := noRedirect.Get(e.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("anonymous GET %s = %d, want 303 to sign in", p, resp.StatusCode)
		}
	}
}

// BenchmarkEventListPage measures the server time of one page of the event list over HTTP
// (query, drift marks, filter menus and rendering), first and deep, unfiltered and under each
// filter, over PLAUDHOOK_BENCH_EVENTS events (100,000 by default), and reports the median and
// 99th percentile of a request:
//
//	go test -tags sqlite_fts5 -run '^$' -bench EventListPage -benchtime 50x ./web/
//
// BenchmarkExplorer in package db measures the storage queries alone at a million.
func BenchmarkEventListPage(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("PLAUDHOOK_BENCH_EVENTS")); err == nil && v >= 10_000 {
		n = v
	}
	e := newEnv(b)
	seedBulk(b, e.db.Path, n)
	c := e.client("viewer")
	deep := strconv.Itoa(1_000_000 + n/10) // a cursor 90% of the way down
	for _, tc := range []struct{ name, query string }{
		{"none", ""},
		{"endpoint", "endpoint=default"},
		{"type", "type=bulk.test"},
		{"last24h", "range=24h"},
		{"duplicates", "dup=1"},
		{"searchID", "q=file_bulk_4242"},
		{"searchWord", "q=row"},
	} {
		for _, page := range []struct{ name, before string }{{"first", ""}, {"deep", deep}} {
			b.Run(tc.name+"/"+page.name, func(b *testing.B) {
				u := e.ts.URL + "/events?" + tc.query
				if page.before != "" {
					u += "&before=" + page.before
				}
				times := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					resp, err := c.Get(u)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("GET %s = %d", u, resp.StatusCode)
					}
					times = append(times, time.Since(t0))
				}
				b.StopTimer()
				slices.Sort(times)
				b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
				b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}

// TestExplorerControlsAreLabelled checks every control of the explorer's pages has a name a
// screen reader can read: an enclosing label, a label for its id, an aria-label, or (buttons
// and links) text of its own; and every chart is an image with a title.
func TestExplorerControlsAreLabelled(t *testing.T) {
	e := explorerEnv(t)
	seedExplorer(t, e)
	c := e.client("viewer")
	for _, p := range []string{"/", "/events", "/events?type=device.synced&dup=1", "/deliveries",
		"/compare", "/compare?e=1&e=2", "/schema", "/events/1"} {
		resp, body := get(t, c, e.ts.URL+p)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", p, resp.StatusCode)
		}
		doc := mustDoc(t, body)
		n := 0
		doc.Find("main input:not([type=hidden]), main select, main textarea, main button, main a[href]").Each(func(_ int, s *goquery.Selection) {
			n++
			name := strings.TrimSpace(s.AttrOr("aria-label", ""))
			if name == "" && (goquery.NodeName(s) == "button" || goquery.NodeName(s) == "a") {
				name = strings.TrimSpace(s.Text())
			}
			if name == "" && s.Closest("label").Length() > 0 {
				name = strings.TrimSpace(s.Closest("label").Text())
			}
			if id := s.AttrOr("id", ""); name == "" && id != "" {
				name = strings.TrimSpace(doc.Find(`label[for="` + id + `"]`).Text())
			}
			if name == "" {
				h, _ := goquery.OuterHtml(s)
				t.Errorf("%s: control without an accessible name: %s", p, h)
			}
		})
		if n == 0 {
			t.Errorf("%s: no controls found: the check checks nothing", p)
		}
		doc.Find("svg").Each(func(_ int, s *goquery.Selection) {
			if s.AttrOr("role", "") != "img" || (s.AttrOr("aria-labelledby", "") == "" && s.AttrOr("aria-label", "") == "") {
				t.Errorf("%s: chart without role=img and a label", p)
			}
		})
	}
}
