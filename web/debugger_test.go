package web_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
)

// TestDebuggerOnDeliveryPage posts, through the real webhook URL, one delivery built to trigger
// each hint, and finds that hint on the rejected delivery's page, with digests cut to 8 hex
// digits and no secret shown.
func TestDebuggerOnDeliveryPage(t *testing.T) {
	c8, _ := base64.StdEncoding.DecodeString("H4sIAAAAAAACA6tWSi1LzStRslIqKUrMK04uyiwoyczP00vOzy3ISS1JTVHSUUpJLElUsqpWSsvMSY3PTAGqTYs3MDAwBEqhaPJMARsDkautBQCzkATTWwAAAA==")
	tests := []struct {
		name    string
		h       http.Header
		body    []byte
		kind    string
		mention string
	}{
		{"revoked secret", http.Header{"Plaud-Signature": {sigOld}}, b1, "inactive_secret", "was revoked at 2026-12-03 12:00:00 UTC"},
		{"trailing newline added", http.Header{"Plaud-Signature": {sigS}}, append([]byte(string(b1)), '\n'), "line_ending", "without its final line feed"},
		{"trailing CR LF added", http.Header{"Plaud-Signature": {sigS}}, append([]byte(string(b1)), '\r', '\n'), "line_ending", "without its final CR LF"},
		{"CR LF lost", devguide(testSecret, append([]byte(string(b1)), '\r', '\n')), b1, "line_ending", "with a final CR LF"},
		{"devguide value with sha256= prefix", http.Header{"Plaud-Signature": {"sha256=" + sigS}}, b1, "other_scheme", "devguide"},
		{"embedded value without prefix under another timestamp name", http.Header{"Plaud-Signature": {"8ac13db87fdf5842d1ba6ae8629981ef7bf41aff9f0f364624a98917b2757f3d"}, "X-Plaud-Timestamp": {"1796299200"}}, b1, "other_scheme", "timestamp from X-Plaud-Timestamp"},
		{"millisecond timestamp", http.Header{"Plaud-Timestamp": {"1796299200000"}, "Plaud-Signature": {"sha256=d4c00503647d6b2d4fc3c29dafc569383539c81c7ebb060d9775062f1a1e8136"}}, b1, "millisecond", "in milliseconds"},
		{"signed in seconds, sent in milliseconds", http.Header{"Plaud-Timestamp": {"1796299200000"}, "Plaud-Signature": {"sha256=8ac13db87fdf5842d1ba6ae8629981ef7bf41aff9f0f364624a98917b2757f3d"}}, b1, "millisecond", "signed the timestamp in seconds"},
		{"X-Plaud-Signature", http.Header{"X-Plaud-Signature": {sigS}}, b1, "other_header", "X-Plaud-Signature"},
		{"secret with whitespace", http.Header{"Plaud-Signature": {"daeaab8e25d62af38d6442db12709e2558cd1168902ff0fe344e239afd23177f"}}, b1, "secret_whitespace", "2 spaces before it"},
		{"gzip without Content-Encoding", http.Header{"Plaud-Signature": {sigS}}, c8, "gzip", "decompressed"},
		{"Content-Encoding gzip over plain bytes", http.Header{"Plaud-Signature": {sigS}, "Content-Encoding": {"gzip"}}, b1, "gzip", "not gzip"},
		{"clock skew", embedded(testSecret, testNow.Add(-301*time.Second), b1), b1, "clock_skew", "301 s behind"},
	}

	e := newSecretEnv(t)
	admin := e.client("admin")
	e.addSecret(admin, "default", "S", testSecret)
	e.addSecret(admin, "default", "old", oldSecret)
	secrets, _ := e.db.FindSecrets(context.Background(), 1)
	for _, s := range secrets {
		if s.Label == "old" {
			e.mustForm(admin, "/endpoints/default/secrets/"+itoa64(s.ID)+"/revoke", nil)
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.post("/webhook", tt.h, tt.body)
			if resp.StatusCode/100 != 4 {
				t.Fatalf("status %d (%s), want a rejection", resp.StatusCode, body)
			}
			d, doc := e.newestDelivery(admin)
			if d.Verdict != db.Rejected {
				t.Fatalf("newest delivery is %s", d.Verdict)
			}
			if doc.Find("[data-testid=debugger]").Length() != 1 {
				t.Fatal("no debugger on the rejected delivery's page")
			}
			hint := doc.Find(`[data-testid=hint][data-kind="` + tt.kind + `"]`)
			if hint.Length() == 0 || !strings.Contains(hint.Text(), tt.mention) {
				t.Fatalf("hints = %v; want %s mentioning %q (got %q)", hintKinds(doc), tt.kind, tt.mention, hint.Text())
			}
			// Each secret is listed with its outcome, digests cut to 8 hex digits.
			if tries := doc.Find("[data-testid=debugger-try]").Length(); tries != 2 {
				t.Errorf("secrets tried = %d, want 2", tries)
			}
			html, _ := doc.Html()
			if m := hex64.FindString(strings.ReplaceAll(html, d.BodySHA256, "")); m != "" {
				t.Errorf("a whole digest is on the page: %s", m)
			}
			if strings.Contains(html, testSecret) || strings.Contains(html, oldSecret) {
				t.Error("a secret value is on the page")
			}
		})
	}

	// The skew is shown in seconds; a verified delivery has no debugger.
	e.post("/webhook", embedded(testSecret, testNow.Add(-400*time.Second), b1), b1)
	_, doc := e.newestDelivery(admin)
	if got := doc.Find("[data-testid=skew-seconds]").Text(); got != "400 s" {
		t.Errorf("skew = %q, want 400 s", got)
	}
	e.post("/webhook", devguide(testSecret, b1), b1)
	if _, doc := e.newestDelivery(admin); doc.Find("[data-testid=debugger]").Length() != 0 {
		t.Error("a verified delivery shows the debugger")
	}
}

// TestReverify: a delivery signed with a secret the endpoint lacks is rejected; once an admin adds
// the secret, the debugger says so, and re-verifying (with the delivery's receive time for the
// tolerance, long after) promotes it to an event through the ingest path, audited.
func TestReverify(t *testing.T) {
	e := newSecretEnv(t)
	ctx := context.Background()
	admin := e.client("admin")
	e.addSecret(admin, "default", "S", testSecret)

	// Embedded, so the tolerance matters: re-verified an hour later, it must use receive time.
	late := []byte(`{"event":"transcription.completed","id":"evt_late","data":{"file_id":"f_9"}}`)
	if resp, _ := e.post("/webhook", embedded("the_missing_secret", testNow, late), late); resp.StatusCode != 400 {
		t.Fatalf("unknown secret: %d, want 400", resp.StatusCode)
	}
	rejected, _ := e.newestDelivery(admin)

	// Re-verify now changes nothing, and is not a promotion.
	page := e.mustForm(admin, "/deliveries/"+itoa64(rejected.ID)+"/reverify", nil)
	if notice := mustDoc(t, page).Find("[data-testid=notice]").Text(); !strings.Contains(notice, "Still rejected") {
		t.Errorf("notice = %q, want still rejected", notice)
	}

	// Operators may not re-verify.
	if resp, _ := form(t, e.client("operator"), e.ts.URL+"/deliveries/"+itoa64(rejected.ID)+"/reverify", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("operator re-verify: %d, want 403", resp.StatusCode)
	}

	// An hour later the admin adds the missing secret; the debugger names it.
	e.setClock(testNow.Add(time.Hour))
	admin = e.client("admin")
	e.addSecret(admin, "default", "found", "the_missing_secret")
	doc := e.deliveryDoc(admin, rejected.ID)
	if hint := doc.Find(`[data-testid=hint][data-kind=inactive_secret]`).Text(); !strings.Contains(hint, "added after this delivery arrived") {
		t.Errorf("hint = %q, want the secret added later", hint)
	}
	page = e.mustForm(admin, "/deliveries/"+itoa64(rejected.ID)+"/reverify", nil)
	if notice := mustDoc(t, page).Find("[data-testid=notice]").Text(); !strings.Contains(notice, "now event #") {
		t.Fatalf("notice = %q, want the promotion", notice)
	}
	d, err := e.db.FindDeliveryByID(ctx, rejected.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Verdict != db.Verified || d.EventID == 0 || d.SecretLabel != "found" || d.PromotedBy != "admin" || !d.ReceivedAt.Equal(testNow) {
		t.Fatalf("promoted delivery = %+v", d)
	}
	ev, _ := e.db.FindEventByID(ctx, d.EventID)
	if ev.EnvelopeID != "evt_late" || !ev.FirstReceivedAt.Equal(testNow) {
		t.Errorf("event = %+v, want evt_late first received at %v", ev, testNow)
	}
	if !strings.Contains(page, `data-testid="promoted"`) {
		t.Error("the delivery page does not say it was re-verified")
	}
	entries, _, _ := e.db.FindAuditEntries(ctx, db.AuditFilter{ActionPrefix: "delivery.promote"})
	if len(entries) != 1 || entries[0].Actor != "admin" || !strings.Contains(entries[0].Detail, `"found"`) {
		t.Errorf("audit = %+v, want one promotion by admin naming the secret", entries)
	}

	// Twice is refused; the same event delivered again later is a duplicate of it (dedupe).
	if resp, _ := form(t, admin, e.ts.URL+"/deliveries/"+itoa64(rejected.ID)+"/reverify", nil); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("second re-verify: %d, want 422", resp.StatusCode)
	}
	resp, body := e.post("/webhook", embedded("the_missing_secret", e.now(), late), late)
	if resp.StatusCode != 200 || !strings.Contains(body, `"duplicate":true`) {
		t.Errorf("the same event again: %d %s, want a duplicate", resp.StatusCode, body)
	}

	// A rejection for a body too large cannot be re-verified.
	e.post("/webhook", http.Header{"Content-Encoding": {"br"}}, b1)
	tooBig, doc := e.newestDelivery(admin)
	if doc.Find("[data-testid=reverify]").Length() != 0 || doc.Find("[data-testid=reverify-why-not]").Length() != 1 {
		t.Error("an unsupported_encoding rejection offers re-verify")
	}
	if resp, _ := form(t, admin, e.ts.URL+"/deliveries/"+itoa64(tooBig.ID)+"/reverify", url.Values{}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("re-verify unsupported_encoding: %d, want 422", resp.StatusCode)
	}

	// Nor can a request that carried no signature at all: its page says it was not signed,
	// without blaming a secret.
	e.post("/webhook", http.Header{"Content-Type": {"application/json"}}, b1)
	unsigned, doc := e.newestDelivery(admin)
	if doc.Find("[data-testid=reverify]").Length() != 0 {
		t.Error("an unsigned delivery offers re-verify")
	}
	if doc.Find(`[data-testid=hint][data-kind=unsigned]`).Length() != 1 || doc.Find("[data-testid=no-hints]").Length() != 0 {
		t.Errorf("unsigned delivery %d: the debugger does not say it was not signed", unsigned.ID)
	}
}
