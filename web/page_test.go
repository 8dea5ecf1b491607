package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/signature"
)

// TestPagesShowEvents checks the list and event pages render what was stored, escaped.
func TestPagesShowEvents(t *testing.T) {
	e := newEnv(t)
	xss := []byte(`{"event":"<script>alert(1)</script>","data":{"file_id":"f_<b>1</b>"}}`)
	for _, b := range [][]byte{b1, xss} {
		if resp, body := e.post("/webhook", signed(signature.SchemeDevguide, b, testNow), b); resp.StatusCode != 200 {
			t.Fatalf("post: %d %s", resp.StatusCode, body)
		}
	}
	e.post("/webhook", signed(signature.SchemeDevguide, b1, testNow), b1) // a duplicate
	e.post("/webhook", http.Header{"Plaud-Signature": {strings.Repeat("ab", 32)}}, []byte("junk"))

	c := e.client("viewer")
	resp, body := get(t, c, e.ts.URL+"/events")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /events = %d", resp.StatusCode)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rows := doc.Find("[data-testid=event-row]")
	if rows.Length() != 2 {
		t.Fatalf("event rows = %d, want 2", rows.Length())
	}
	if got := rows.Last().Find("[data-testid=delivery-count]").Text(); got != "received 2×" {
		t.Errorf("duplicate count = %q, want received 2×", got)
	}
	if strings.Contains(body, "<script>alert(1)</script>") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("payload markup is not escaped in the list")
	}

	// The event page shows the raw body escaped and the pretty view.
	events, _, _ := e.db.FindEvents(context.Background(), db.EventFilter{})
	resp, body = get(t, c, e.ts.URL+fmt.Sprintf("/events/%d", events[0].ID))
	if resp.StatusCode != 200 {
		t.Fatalf("event page = %d", resp.StatusCode)
	}
	if strings.Contains(body, "<b>1</b>") {
		t.Errorf("event page renders payload HTML")
	}
	doc, _ = goquery.NewDocumentFromReader(strings.NewReader(body))
	if got := doc.Find("[data-testid=raw-body]").Text(); got != string(xss) {
		t.Errorf("raw body = %q, want the exact body", got)
	}
	if doc.Find("[data-testid=pretty-body]").Length() != 1 {
		t.Errorf("no pretty JSON view")
	}

	// The download is byte-exact.
	resp, body = get(t, c, e.ts.URL+fmt.Sprintf("/events/%d/body", events[0].ID))
	if body != string(xss) || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("download = %q (%s)", body, resp.Header.Get("Content-Type"))
	}

	// The rejected list shows the reason, and the delivery page explains it.
	_, body = get(t, c, e.ts.URL+"/deliveries?verdict=rejected")
	doc, _ = goquery.NewDocumentFromReader(strings.NewReader(body))
	if got := doc.Find("[data-testid=delivery-reason]").Text(); got != "signature_mismatch" {
		t.Errorf("rejected reason = %q", got)
	}
	href, _ := doc.Find("[data-testid=delivery-row] a").Attr("href")
	_, body = get(t, c, e.ts.URL+href)
	contains(t, body, "does not match the body under any secret")
	// The signature shown is shortened, never the full digest.
	if strings.Contains(body, strings.Repeat("ab", 32)) {
		t.Errorf("delivery page shows the full signature")
	}

	// Unknown ids are 404 pages.
	if resp, _ := get(t, c, e.ts.URL+"/events/999999"); resp.StatusCode != 404 {
		t.Errorf("missing event = %d, want 404", resp.StatusCode)
	}
	if resp, _ := get(t, c, e.ts.URL+"/events/abc"); resp.StatusCode != 404 {
		t.Errorf("bad id = %d, want 404", resp.StatusCode)
	}
}

// TestStaticServed checks the vendored scripts are served with long cache headers.
func TestStaticServed(t *testing.T) {
	e := newEnv(t)
	c := e.client("viewer")
	_, body := get(t, c, e.ts.URL+"/")
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
	n := 0
	doc.Find("script[src], link[rel=stylesheet]").Each(func(_ int, s *goquery.Selection) {
		src, ok := s.Attr("src")
		if !ok {
			src, _ = s.Attr("href")
		}
		resp, b := get(t, http.DefaultClient, e.ts.URL+src)
		if resp.StatusCode != 200 || len(b) < 100 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s = %d, %d bytes, %q", src, resp.StatusCode, len(b), resp.Header.Get("Cache-Control"))
		}
		n++
	})
	if n != 4 {
		t.Errorf("static references = %d, want 4 (css, htmx, sse, app)", n)
	}
}
