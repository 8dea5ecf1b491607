package web_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
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
		{"no secret on endpoint", "/webhook/other", signed(signature.SchemeDevguide, b1, testNow), b1, 404, "unknown_endpoint", nil},
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
