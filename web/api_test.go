package web_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/web/signature"
)

// apiGet fetches an API URL with c and decodes the JSON answer into a generic map.
func apiGet(t *testing.T, c *http.Client, u string) (int, map[string]any) {
	t.Helper()
	resp, body := get(t, c, u)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q, want application/json", u, ct)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET %s: %v in %s", u, err, body)
	}
	return resp.StatusCode, v
}

// list returns the objects of a list field of an API answer.
func list(t *testing.T, v map[string]any, field string) []map[string]any {
	t.Helper()
	raw, ok := v[field].([]any)
	if !ok {
		t.Fatalf("answer has no list %q: %v", field, v)
	}
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i] = x.(map[string]any)
	}
	return out
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestReadAPI checks every read API route as the README documents it: shapes and snake_case
// field names, newest-first paging with a cursor, the filters, the exact body bytes, rejected
// deliveries with their reason, and errors as {"error", "code"}.
func TestReadAPI(t *testing.T) {
	e := newEnv(t)
	c := e.client("viewer")

	// Three events a minute apart (the first delivered twice) and one rejected delivery.
	b2 := []byte(`{"event":"device.synced","data":{"device_id":"d_1"}}`)
	b3 := []byte("not json at all")
	start := e.clock.Now()
	for i, b := range [][]byte{b1, b2, b3} {
		if resp, body := e.post("/webhook", signed(signature.SchemeDevguide, b, e.clock.Now()), b); resp.StatusCode != 200 {
			t.Fatalf("post %d: %d %s", i, resp.StatusCode, body)
		}
		if i == 0 {
			e.post("/webhook", signed(signature.SchemeEmbedded, b, e.clock.Now()), b)
		}
		advance(e, time.Minute)
	}
	e.post("/webhook", http.Header{"Content-Type": {"application/json"}}, b1)

	// The list: newest first, documented fields, snake_case only.
	status, v := apiGet(t, c, e.ts.URL+"/api/v1/events")
	events := list(t, v, "events")
	if status != 200 || len(events) != 3 || v["next_cursor"] != nil {
		t.Fatalf("events = %d, %d events, next %v; want 200, 3, null", status, len(events), v["next_cursor"])
	}
	wantKeys := []string{"body_url", "delivery_count", "device_id", "endpoint", "envelope_id",
		"event_type", "file_id", "id", "is_json", "last_received_at", "received_at", "size",
		"summary", "transcription_id"}
	if got := keys(events[0]); !slices.Equal(got, wantKeys) {
		t.Errorf("event keys = %v, want %v", got, wantKeys)
	}
	first := events[2]
	if first["event_type"] != "transcription.completed" || first["delivery_count"] != 2.0 ||
		first["endpoint"] != "default" || first["received_at"] != start.Format(time.RFC3339) {
		t.Errorf("oldest event = %v", first)
	}
	if events[0]["is_json"] != false || events[1]["event_type"] != "device.synced" {
		t.Errorf("order or fields wrong: %v / %v", events[0], events[1])
	}

	// Paging with the cursor walks every event once.
	var seen []any
	next := e.ts.URL + "/api/v1/events?limit=2"
	for next != "" {
		_, page := apiGet(t, c, next)
		for _, ev := range list(t, page, "events") {
			seen = append(seen, ev["id"])
		}
		next = ""
		if cur, ok := page["next_cursor"].(string); ok {
			next = e.ts.URL + "/api/v1/events?limit=2&cursor=" + cur
		}
	}
	if len(seen) != 3 || seen[0] != events[0]["id"] || seen[2] != events[2]["id"] {
		t.Errorf("paged ids = %v, want the three in order", seen)
	}

	// Filters.
	filters := []struct {
		query string
		want  int
	}{
		{"type=device.synced", 1},
		{"type=nothing.like.this", 0},
		{"endpoint=default", 3},
		{"endpoint=no-such-endpoint", 0},
		{"since=" + start.Add(time.Minute).Format(time.RFC3339), 2},
		{"until=" + start.Add(time.Minute).Format(time.RFC3339), 1},
		{"since=" + itoa(start.Add(30*time.Second).Unix()) + "&until=" + itoa(start.Add(90*time.Second).Unix()), 1},
	}
	for _, f := range filters {
		_, page := apiGet(t, c, e.ts.URL+"/api/v1/events?"+f.query)
		if got := len(list(t, page, "events")); got != f.want {
			t.Errorf("events?%s = %d events, want %d", f.query, got, f.want)
		}
	}

	// One event with its deliveries.
	id := itoa(int64(first["id"].(float64)))
	status, one := apiGet(t, c, e.ts.URL+"/api/v1/events/"+id)
	ds := list(t, one, "deliveries")
	if status != 200 || one["id"] != first["id"] || len(ds) != 2 {
		t.Fatalf("event %s = %d with %d deliveries, want 200 and 2", id, status, len(ds))
	}
	if ds[0]["verdict"] != "verified" || ds[0]["event_id"] != first["id"] || ds[0]["body_sha256"] != shaHex(b1) {
		t.Errorf("delivery = %v", ds[0])
	}
	if _, has := ds[0]["reason"]; has {
		t.Error("a verified delivery has a reason")
	}

	// The body, byte for byte.
	resp, body := get(t, c, e.ts.URL+"/api/v1/events/"+id+"/body")
	if resp.StatusCode != 200 || body != string(b1) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("body = %d %q (%s), want the stored bytes", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	resp, body = get(t, c, e.ts.URL+"/api/v1/events/"+itoa(int64(events[0]["id"].(float64)))+"/body")
	if body != string(b3) || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("non-JSON body = %q (%s)", body, resp.Header.Get("Content-Type"))
	}

	// Deliveries by verdict; rejected ones carry their reason.
	_, rej := apiGet(t, c, e.ts.URL+"/api/v1/deliveries?verdict=rejected")
	rs := list(t, rej, "deliveries")
	if len(rs) != 1 || rs[0]["reason"] != "missing_signature" || rs[0]["event_id"] != nil {
		t.Errorf("rejected = %v, want one with reason missing_signature and no event", rs)
	}
	_, ver := apiGet(t, c, e.ts.URL+"/api/v1/deliveries?verdict=verified&limit=3")
	if vs := list(t, ver, "deliveries"); len(vs) != 3 || ver["next_cursor"] == nil {
		t.Errorf("verified (limit 3) = %d, next %v; want 3 and a cursor", len(vs), ver["next_cursor"])
	}
	_, all := apiGet(t, c, e.ts.URL+"/api/v1/deliveries")
	if got := len(list(t, all, "deliveries")); got != 5 {
		t.Errorf("all deliveries = %d, want 5", got)
	}

	// Errors: JSON with a message and a code.
	bad := []struct {
		path   string
		status int
		code   string
	}{
		{"/api/v1/events?limit=0", 400, "bad_request"},
		{"/api/v1/events?limit=x", 400, "bad_request"},
		{"/api/v1/events?cursor=-3", 400, "bad_request"},
		{"/api/v1/events?since=yesterday", 400, "bad_request"},
		{"/api/v1/deliveries?verdict=maybe", 400, "bad_request"},
		{"/api/v1/events/999999", 404, "not_found"},
		{"/api/v1/events/abc", 404, "not_found"},
		{"/api/v1/events/999999/body", 404, "not_found"},
		{"/api/v1/nothing", 404, "not_found"},
	}
	for _, b := range bad {
		status, v := apiGet(t, c, e.ts.URL+b.path)
		msg, _ := v["error"].(string)
		if status != b.status || v["code"] != b.code || msg == "" {
			t.Errorf("GET %s = %d %v, want %d with code %s and a message", b.path, status, v, b.status, b.code)
		}
	}
}
