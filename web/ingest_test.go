package web_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
	"github.com/plaudhook/plaudhook/web/signature"
)

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func withHeader(h http.Header, kv ...string) http.Header {
	h = h.Clone()
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// TestIngest is the webhook endpoint's scenario table: status, reply reason, and what was
// stored for each kind of delivery.
func TestIngest(t *testing.T) {
	big := []byte(`{"event":"transcription.completed","data":{"text":"` + strings.Repeat("lorem ", (1<<20)/6-12) + `"}}`)
	big = append(big, bytes.Repeat([]byte(" "), (1<<20)-len(big))...) // exactly the 1 MiB limit
	tooBig := append(append([]byte(nil), big...), ' ')
	c8, _ := base64.StdEncoding.DecodeString("H4sIAAAAAAACA6tWSi1LzStRslIqKUrMK04uyiwoyczP00vOzy3ISS1JTVHSUUpJLElUsqpWSsvMSY3PTAGqTYs3MDAwBEqhaPJMARsDkautBQCzkATTWwAAAA==")
	bomb := gz(make([]byte, 10<<20))
	form := []byte("payload=%7B%22text%22%3A%22*bold*%20note%22%7D&ts=1")
	xss := []byte(`{"event":"<script>alert(1)</script>","data":{"file_id":"<img src=x onerror=alert(1)>"}}`)

	tests := []struct {
		name       string
		path       string
		h          http.Header
		body       []byte
		status     int
		reason     string
		wantStored []byte // body an event must hold, nil when no event
	}{
		{"devguide", "/webhook", signed(signature.SchemeDevguide, b1, testNow), b1, 200, "", b1},
		{"embedded", "/webhook", signed(signature.SchemeEmbedded, b1, testNow.Add(-10*time.Second)), b1, 200, "", b1},
		{"C1 tampered", "/webhook", signed(signature.SchemeDevguide, b1, testNow), bytes.Replace(b1, []byte("tr_0001"), []byte("tr_0002"), 1), 400, "signature_mismatch", nil},
		{"C1 missing header", "/webhook", http.Header{"Content-Type": {"application/json"}}, b1, 400, "missing_signature", nil},
		{"wrong secret", "/webhook", signature.Sign(signature.SchemeDevguide, []byte("nope"), testNow, b1), b1, 400, "signature_mismatch", nil},
		{"stale timestamp", "/webhook", signed(signature.SchemeEmbedded, b1, testNow.Add(-10*time.Minute)), b1, 400, "timestamp_out_of_tolerance", nil},
		{"malformed", "/webhook", http.Header{"Plaud-Signature": {"zzz"}}, b1, 400, "malformed_signature", nil},
		{"C10 exactly the limit", "/webhook", signed(signature.SchemeDevguide, big, testNow), big, 200, "", big},
		{"C10 one byte over", "/webhook", signed(signature.SchemeDevguide, tooBig, testNow), tooBig, 413, "payload_too_large", nil},
		{"C8 gzip signed over decoded", "/webhook", withHeader(signed(signature.SchemeDevguide, b1, testNow), "Content-Encoding", "gzip"), c8, 200, "", b1},
		{"C8 gzip signed over wire", "/webhook", withHeader(http.Header{"Plaud-Signature": {"4f75b065c44c6387693b81045453a78701bd3bfb76a0bab4cc5015079d8ea064"}}, "Content-Encoding", "gzip"), c8, 200, "", b1},
		{"C8 gzip bomb", "/webhook", withHeader(signed(signature.SchemeDevguide, b1, testNow), "Content-Encoding", "gzip"), bomb, 413, "payload_too_large", nil},
		{"C8 corrupt gzip", "/webhook", withHeader(signed(signature.SchemeDevguide, b1, testNow), "Content-Encoding", "gzip"), []byte("not gzip"), 400, "bad_encoding", nil},
		{"C8 brotli", "/webhook", withHeader(signed(signature.SchemeDevguide, b1, testNow), "Content-Encoding", "br"), b1, 415, "unsupported_encoding", nil},
		{"C11 form body", "/webhook", withHeader(signature.Sign(signature.SchemeDevguide, []byte(testSecret), testNow, form), "Content-Type", "application/x-www-form-urlencoded"), form, 200, "", form},
		{"C11 text body", "/webhook", withHeader(signature.Sign(signature.SchemeDevguide, []byte(testSecret), testNow, []byte("hello plaud")), "Content-Type", "text/plain"), []byte("hello plaud"), 200, "", []byte("hello plaud")},
		{"invalid UTF-8", "/webhook", signature.Sign(signature.SchemeDevguide, []byte(testSecret), testNow, []byte("\xff\xfe{")), []byte("\xff\xfe{"), 200, "", []byte("\xff\xfe{")},
		{"markup in payload", "/webhook", signed(signature.SchemeDevguide, xss, testNow), xss, 200, "", xss},
		{"unknown endpoint slug", "/webhook/other", signed(signature.SchemeDevguide, b1, testNow), b1, 404, "unknown_endpoint", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			resp, body := e.post(tt.path, tt.h, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			var reply struct {
				Status, Reason string
				EventID        int64 `json:"event_id"`
			}
			if err := json.Unmarshal([]byte(body), &reply); err != nil {
				t.Fatalf("reply %q is not JSON: %v", body, err)
			}
			if reply.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", reply.Reason, tt.reason)
			}
			if tt.status == 200 && reply.Status != "success" {
				t.Errorf("status field = %q, want success", reply.Status)
			}
			if strings.Contains(body, testSecret) {
				t.Errorf("reply reveals the secret")
			}

			events, _, _ := e.db.FindEvents(context.Background(), db.EventFilter{})
			if tt.wantStored == nil {
				if len(events) != 0 {
					t.Fatalf("events = %d, want none", len(events))
				}
				if tt.status == 404 {
					return
				}
				v := db.Rejected
				ds, _ := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{Verdict: &v})
				if len(ds) != 1 || ds[0].Reason != tt.reason {
					t.Fatalf("rejected log = %+v, want one row with reason %s", ds, tt.reason)
				}
				return
			}
			if len(events) != 1 || events[0].ID != reply.EventID {
				t.Fatalf("events = %+v, want the one acknowledged (%d)", events, reply.EventID)
			}
			d, err := e.db.FindDeliveryByID(context.Background(), events[0].BodyDeliveryID)
			if err != nil {
				t.Fatal(err)
			}
			if shaHex(d.Body) != shaHex(tt.wantStored) {
				t.Errorf("stored sha256 = %s, want %s", shaHex(d.Body), shaHex(tt.wantStored))
			}
		})
	}
}

// TestIngestDuplicates is C12: the same event twice is one event with two deliveries, and both
// deliveries are answered 200.
func TestIngestDuplicates(t *testing.T) {
	e := newEnv(t)
	b12 := []byte(`{"event":"device.recording_completed","data":{"file_id":"f_0012","event_id":"evt_0012"}}`)
	h := http.Header{"Plaud-Signature": {"b41376619131978a730c1432aa8e76001cde4eb1d5e051384b230edcf8d02bad"}}
	for i := 0; i < 2; i++ {
		if resp, body := e.post("/webhook", h, b12); resp.StatusCode != 200 {
			t.Fatalf("delivery %d: %d %s", i+1, resp.StatusCode, body)
		}
		e.clock.Set(e.clock.Add(24 * time.Second))
	}
	// The embedded variant with two timestamps is the same event too (same envelope id).
	for _, ts := range []time.Time{testNow, testNow.Add(24 * time.Second)} {
		e.clock.Set(ts)
		if resp, body := e.post("/webhook", signed(signature.SchemeEmbedded, b12, ts), b12); resp.StatusCode != 200 {
			t.Fatalf("embedded delivery: %d %s", resp.StatusCode, body)
		}
	}
	events, _, _ := e.db.FindEvents(context.Background(), db.EventFilter{})
	if len(events) != 1 || events[0].DeliveryCount != 4 {
		t.Fatalf("events = %+v, want one delivered 4 times", events)
	}
}

// TestIngestCommitFailure is C23's fault injection through HTTP: a commit that fails answers 503
// with Retry-After, and nothing is stored.
func TestIngestCommitFailure(t *testing.T) {
	e := newEnv(t)
	if err := e.db.SetQueryOnly(true); err != nil { // every commit now fails, as on a full disk
		t.Fatal(err)
	}
	resp, body := e.post("/webhook", signed(signature.SchemeDevguide, b1, testNow), b1)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status = %d, Retry-After %q; want 503 with Retry-After (%s)", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	e.db.SetQueryOnly(false)
	ds, _ := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{})
	if len(ds) != 0 {
		t.Fatalf("deliveries after failed commit = %d, want 0", len(ds))
	}
	// Once the disk is writable again, Plaud's retry is stored.
	if resp, body := e.post("/webhook", signed(signature.SchemeDevguide, b1, testNow), b1); resp.StatusCode != 200 {
		t.Fatalf("retry: %d %s", resp.StatusCode, body)
	}
}

// TestIngestCrossOriginExempt is C28's webhook half: browser-looking cross-site headers do not
// stop a signed delivery, while the same headers stop a dashboard POST.
func TestIngestCrossOriginExempt(t *testing.T) {
	e := newEnv(t)
	h := withHeader(signed(signature.SchemeDevguide, b1, testNow), "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	if resp, body := e.post("/webhook", h, b1); resp.StatusCode != 200 {
		t.Fatalf("webhook with cross-site headers: %d %s", resp.StatusCode, body)
	}
	c := e.client("viewer")
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/logout", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site logout: %d, want 403", resp.StatusCode)
	}
	// The session survived the refused request.
	if resp, _ := get(t, c, e.ts.URL+"/"); resp.StatusCode != 200 {
		t.Fatalf("after refused logout: %d, want 200", resp.StatusCode)
	}
}

// TestIngestLowerCaseHeaderOnTheWire is C1 as a sender's HTTP library may write it: the header
// name in lower case and the hex digest in upper case, sent by hand over a raw connection so
// that no Go client canonicalises anything. net/http canonicalises the name; it verifies.
func TestIngestLowerCaseHeaderOnTheWire(t *testing.T) {
	e := newEnv(t)
	conn, err := net.Dial("tcp", e.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "POST /webhook HTTP/1.1\r\n" +
		"Host: " + e.ts.Listener.Addr().String() + "\r\n" +
		"content-type: application/json\r\n" +
		"plaud-signature: " + strings.ToUpper(sigS) + "\r\n" +
		"content-length: " + strconv.Itoa(len(b1)) + "\r\n" +
		"connection: close\r\n\r\n" + string(b1)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"success"`) {
		t.Fatalf("status = %d (%s), want 200 success", resp.StatusCode, body)
	}
	events, _, _ := e.db.FindEvents(context.Background(), db.EventFilter{})
	if len(events) != 1 {
		t.Fatalf("events = %d, want 1", len(events))
	}
	d, err := e.db.FindDeliveryByID(context.Background(), events[0].BodyDeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Header.Get("Plaud-Signature"); got != strings.ToUpper(sigS) {
		t.Errorf("stored Plaud-Signature = %q, want the upper-case value as sent", got)
	}
	if shaHex(d.Body) != shaHex(b1) {
		t.Errorf("stored body sha256 = %s, want B1's", shaHex(d.Body))
	}
}

// TestIngestBodyLimitBoundary is C10's boundary with L = 1 MiB: exactly L bytes is stored, L+1
// is answered 413 with both sizes in the message, and the rejected delivery records the whole
// size and the reason.
func TestIngestBodyLimitBoundary(t *testing.T) {
	const limit = 1 << 20
	e := newEnv(t)
	exact := bytes.Repeat([]byte("a"), limit)
	if resp, body := e.post("/webhook", signed(signature.SchemeDevguide, exact, testNow), exact); resp.StatusCode != 200 {
		t.Fatalf("exactly L bytes: %d %s, want 200", resp.StatusCode, body)
	}

	over := bytes.Repeat([]byte("a"), limit+1)
	resp, body := e.post("/webhook", signed(signature.SchemeDevguide, over, testNow), over)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("L+1 bytes: %d %s, want 413", resp.StatusCode, body)
	}
	var reply struct{ Reason, Message string }
	json.Unmarshal([]byte(body), &reply)
	if want := "payload too large (1048577 > 1048576 bytes)"; reply.Reason != "payload_too_large" || reply.Message != want {
		t.Errorf("reply = %+v, want reason payload_too_large, message %q", reply, want)
	}

	v := db.Rejected
	ds, _ := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{Verdict: &v})
	if len(ds) != 1 || ds[0].Reason != "payload_too_large" || ds[0].Size != limit+1 {
		t.Fatalf("rejected log = %+v, want one payload_too_large row of size %d", ds, limit+1)
	}
	_, page := get(t, e.client("viewer"), e.ts.URL+"/deliveries/"+strconv.FormatInt(ds[0].ID, 10))
	contains(t, page, "payload_too_large", "larger than the configured limit",
		"payload too large (1048577 &gt; 1048576 bytes)")
}

// TestIngestSkewMessages is C14 at the HTTP level: both directions keep the reason
// timestamp_out_of_tolerance, and the message says which way the timestamp is off.
func TestIngestSkewMessages(t *testing.T) {
	tests := []struct {
		name, ts, sig, want string
	}{
		{"T-301 too old", "1796298899", "sha256=675feb52978513591705bf5bbdedcdcd1f7a6701faf0b9326ac2d8abeb6d9108",
			"timestamp too old: Plaud-Timestamp is 301 s behind this server's clock (tolerance 300 s)"},
		{"T+301 in the future", "1796299501", "sha256=6132b4afa75f5da31d579578596142c04703ad26a677687a99923b511a4d947b",
			"timestamp in the future: Plaud-Timestamp is 301 s ahead of this server's clock (tolerance 300 s)"},
		{"milliseconds", "1796299200000", "sha256=d4c00503647d6b2d4fc3c29dafc569383539c81c7ebb060d9775062f1a1e8136",
			"timestamp in the future: Plaud-Timestamp looks like milliseconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			h := http.Header{"Content-Type": {"application/json"}, "Plaud-Timestamp": {tt.ts}, "Plaud-Signature": {tt.sig}}
			resp, body := e.post("/webhook", h, b1)
			var reply struct{ Reason, Message string }
			json.Unmarshal([]byte(body), &reply)
			if resp.StatusCode != 400 || reply.Reason != "timestamp_out_of_tolerance" {
				t.Fatalf("got %d %s, want 400 timestamp_out_of_tolerance", resp.StatusCode, body)
			}
			if !strings.HasPrefix(reply.Message, tt.want) {
				t.Errorf("message = %q, want %q", reply.Message, tt.want)
			}
		})
	}
}

// TestIngestDowngradeRefused: an expired embedded delivery replayed as a devguide one (the
// timestamp moved into the body, the same digest sent bare) is answered 400 scheme_downgrade
// and kept in the rejected log, never stored as an event.
func TestIngestDowngradeRefused(t *testing.T) {
	e := newEnv(t)
	old := testNow.Add(-30 * 24 * time.Hour)
	ts := strconv.FormatInt(old.Unix(), 10)
	sig := signed(signature.SchemeEmbedded, b1, old).Get(signature.HeaderSignature)
	body := append([]byte(ts+"."), b1...)
	h := http.Header{"Plaud-Signature": {strings.TrimPrefix(sig, "sha256=")}}
	resp, reply := e.post("/webhook", h, body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(reply, `"reason":"scheme_downgrade"`) {
		t.Fatalf("downgraded replay = %d %s, want 400 scheme_downgrade", resp.StatusCode, reply)
	}
	v := db.Rejected
	ds, _ := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{Verdict: &v})
	if len(ds) != 1 || ds[0].Reason != "scheme_downgrade" {
		t.Errorf("rejected log = %+v, want one scheme_downgrade row", ds)
	}
	if evs, _, _ := e.db.FindEvents(context.Background(), db.EventFilter{}); len(evs) != 0 {
		t.Errorf("events = %d, want none", len(evs))
	}
}

// TestIngestBodyMemory: the bodies all requests hold at once stay within Config.BodyMemory. A
// delivery that would pass it (read as sent, or while a gzip body inflates) is answered 503
// with Retry-After and not stored, its bytes are handed back, and deliveries that fit go on.
func TestIngestBodyMemory(t *testing.T) {
	// 256 KiB in all: one address may hold 64 KiB of it.
	e := newEnv(t, func(c *web.Config) { c.BodyMemory = 256 << 10 })
	busy := func(name string, h http.Header, body []byte) {
		t.Helper()
		resp, reply := e.post("/webhook", h, body)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(reply, `"reason":"server_busy"`) {
			t.Errorf("%s = %d %s (Retry-After %q), want 503 server_busy", name, resp.StatusCode, reply,
				resp.Header.Get("Retry-After"))
		}
	}

	big := bytes.Repeat([]byte("x"), 100<<10)
	busy("a plain body past the budget", signed(signature.SchemeDevguide, big, testNow), big)

	// 10 MiB of zeros, a few kilobytes gzipped: the budget stops it as it inflates.
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(make([]byte, 10<<20))
	zw.Close()
	h := signed(signature.SchemeDevguide, zipped.Bytes(), testNow)
	h.Set("Content-Encoding", "gzip")
	busy("a gzip bomb", h, zipped.Bytes())

	// Nothing of either was stored, and every byte was handed back: a body that takes almost
	// the whole budget fits, again and again.
	if ds, _ := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{}); len(ds) != 0 {
		t.Errorf("deliveries after 503s = %d, want 0", len(ds))
	}
	for i := range 3 {
		fits := []byte(fmt.Sprintf(`{"event":"x","id":"fits-%d","pad":"%s"}`, i, strings.Repeat("p", 60<<10)))
		if resp, reply := e.post("/webhook", signed(signature.SchemeDevguide, fits, testNow), fits); resp.StatusCode != 200 {
			t.Fatalf("a body within the budget, #%d = %d %s", i+1, resp.StatusCode, reply)
		}
	}
}
