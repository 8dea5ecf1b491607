package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/signature"
)

// mustPost sends a webhook delivery and fails the test unless it was answered 200.
func (e *env) mustPost(h http.Header, body []byte) {
	e.t.Helper()
	if resp, reply := e.post("/webhook", h, body); resp.StatusCode != http.StatusOK {
		e.t.Fatalf("POST /webhook: %d %s, want 200", resp.StatusCode, reply)
	}
}

// onlyEvent returns the one stored event.
func (e *env) onlyEvent() db.Event {
	e.t.Helper()
	events, _, err := e.db.FindEvents(context.Background(), db.EventFilter{})
	if err != nil || len(events) != 1 {
		e.t.Fatalf("events = %d (%v), want 1", len(events), err)
	}
	return events[0]
}

// shownTime is the exact time a <time> element shows a reader: its text, or its hover title once
// the text is relative ("5 min ago").
func shownTime(s *goquery.Selection) string {
	if text := strings.TrimSpace(s.Text()); strings.HasSuffix(text, " UTC") {
		return text
	}
	return s.AttrOr("title", "")
}

// TestEventPageLargeBodyC10: a 1.5 MiB body is stored whole, but its page does not inline it
// (for a viewer or for an operator, whose replay form and copy-as-curl could carry it too):
// the page is far smaller than the body and links the exact bytes, which load on demand.
func TestEventPageLargeBodyC10(t *testing.T) {
	e := newEnv(t, func(c *webConfig) { c.BodyLimit = 2 << 20 })
	text := strings.Repeat("lorem ", (3<<19)/6)
	big := []byte(`{"event":"transcription.completed","data":{"file_id":"f_0010","text":"` + text + `"}}`)
	e.mustPost(signed(signature.SchemeDevguide, big, testNow), big)
	ev := e.onlyEvent()

	for _, role := range []string{"viewer", "operator"} {
		c := e.client(role)
		resp, page := get(t, c, e.ts.URL+views.EventURL(ev.ID))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: event page = %d", role, resp.StatusCode)
		}
		if len(page) > len(big)/4 {
			t.Errorf("%s: page is %d bytes for a %d-byte body, want well under the body's size", role, len(page), len(big))
		}
		doc := mustDoc(t, page)
		if doc.Find("[data-testid=raw-body], [data-testid=pretty-body]").Length() != 0 {
			t.Errorf("%s: the body is inline", role)
		}
		if doc.Find("[data-testid=body-not-inline]").Length() != 1 {
			t.Errorf("%s: no notice that the body is not shown", role)
		}
		if role == "operator" {
			curl := doc.Find("[data-testid=curl]").Text()
			if !strings.Contains(curl, fmt.Sprintf("@'event-%d.body'", ev.ID)) || strings.Contains(curl, "lorem lorem") {
				t.Errorf("copy as curl = %.200q, want it to read the downloaded file", curl)
			}
		}

		// The link gives the exact bytes, as text for reading; the download as well.
		href, ok := doc.Find("[data-testid=body-link]").Attr("href")
		if !ok {
			t.Fatalf("%s: no link to the body", role)
		}
		resp, body := get(t, c, e.ts.URL+href)
		if resp.StatusCode != 200 || shaHex([]byte(body)) != shaHex(big) {
			t.Errorf("%s: %s = %d, sha256 %s, want the exact body", role, href, resp.StatusCode, shaHex([]byte(body)))
		}
		if got := resp.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
			t.Errorf("%s: body view Content-Type = %q, want text/plain", role, got)
		}
		href, _ = doc.Find("[data-testid=body-download]").Attr("href")
		if _, body := get(t, c, e.ts.URL+href); shaHex([]byte(body)) != shaHex(big) {
			t.Errorf("%s: download %s is not the exact body", role, href)
		}
	}

	// The body route is behind sign-in like the page.
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, body := get(t, anon, e.ts.URL+fmt.Sprintf("/events/%d/body?view=raw", ev.ID))
	if resp.StatusCode == http.StatusOK || strings.Contains(body, "lorem") {
		t.Errorf("without signing in: %d, want a redirect to sign in", resp.StatusCode)
	}
}

// TestEventPageInlineLimit: a body of exactly views.MaxInlineBody bytes is still shown inline.
func TestEventPageInlineLimit(t *testing.T) {
	e := newEnv(t)
	head := []byte(`{"event":"device.synced","data":{"pad":"`)
	tail := []byte(`"}}`)
	body := append(append(head, bytes.Repeat([]byte("x"), views.MaxInlineBody-len(head)-len(tail))...), tail...)
	e.mustPost(signed(signature.SchemeDevguide, body, testNow), body)
	_, page := get(t, e.client("viewer"), e.ts.URL+views.EventURL(e.onlyEvent().ID))
	doc := mustDoc(t, page)
	if got := doc.Find("[data-testid=raw-body]").Text(); got != string(body) {
		t.Errorf("raw body at the limit: %d bytes shown, want all %d", len(got), len(body))
	}
	if doc.Find("[data-testid=body-not-inline]").Length() != 0 {
		t.Error("a body at the limit is not inline")
	}
}

// TestEventPageNonJSONC11: a form body shows raw and decoded (labelled so), stored byte for
// byte; text bodies, with or without a Content-Type, are "unknown (non-JSON)" and not decoded.
func TestEventPageNonJSONC11(t *testing.T) {
	form := []byte("payload=%7B%22text%22%3A%22*bold*%20note%22%7D&ts=1")
	hello := []byte("hello plaud")
	tests := []struct {
		name     string
		h        http.Header
		body     []byte
		wantForm map[string]string // nil: no decoded view
	}{
		{"a form", http.Header{"Content-Type": {"application/x-www-form-urlencoded"},
			"Plaud-Signature": {"0c720722cc7e9b3f297498d038404abff7636eda81e890a601cfa503dad0933f"}},
			form, map[string]string{"payload": `{"text":"*bold* note"}`, "ts": "1"}},
		{"b text/plain", http.Header{"Content-Type": {"text/plain"},
			"Plaud-Signature": {"af513704b7f50d0929c34b5873c1c3ca74c04cc9fa503ba1fb92e7acede4370b"}},
			hello, nil},
		{"c no Content-Type", http.Header{
			"Plaud-Signature": {"af513704b7f50d0929c34b5873c1c3ca74c04cc9fa503ba1fb92e7acede4370b"}},
			hello, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustPost(tt.h, tt.body)
			ev := e.onlyEvent()
			d, _ := e.db.FindDeliveryByID(context.Background(), ev.BodyDeliveryID)
			if !bytes.Equal(d.Body, tt.body) {
				t.Fatalf("stored %q (%d bytes), want %q", d.Body, len(d.Body), tt.body)
			}
			_, page := get(t, e.client("viewer"), e.ts.URL+views.EventURL(ev.ID))
			doc := mustDoc(t, page)
			if got := doc.Find("[data-testid=event-title]").Text(); !strings.HasPrefix(got, "unknown (non-JSON)") {
				t.Errorf("title = %q, want unknown (non-JSON)", got)
			}
			if got := doc.Find("[data-testid=raw-body]").Text(); got != string(tt.body) {
				t.Errorf("raw body = %q, want the stored bytes", got)
			}
			rows := doc.Find("[data-testid=form-row]")
			if tt.wantForm == nil {
				if doc.Find("[data-testid=form-decoded]").Length() != 0 {
					t.Error("a decoded form view for a body that is not a form")
				}
				return
			}
			if rows.Length() != len(tt.wantForm) {
				t.Fatalf("form rows = %d, want %d", rows.Length(), len(tt.wantForm))
			}
			for k, want := range tt.wantForm {
				if got := doc.Find(`[data-testid=form-row][data-key="` + k + `"] td`).Text(); got != want {
					t.Errorf("decoded %s = %q, want %q", k, got, want)
				}
			}
			if got := doc.Find("[data-testid=form-decoded] summary").Text(); !strings.Contains(got, "decoded") {
				t.Errorf("decoded view is labelled %q, want it to say decoded", got)
			}
		})
	}
}

// TestEventPageFormEscaped: decoded form values are text, never markup.
func TestEventPageFormEscaped(t *testing.T) {
	e := newEnv(t)
	body := []byte("note=" + url.QueryEscape("<script>alert(1)</script>") + "&bad=%zz")
	h := signature.Sign(signature.SchemeDevguide, []byte(testSecret), testNow, body)
	h.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	e.mustPost(h, body)
	_, page := get(t, e.client("viewer"), e.ts.URL+views.EventURL(e.onlyEvent().ID))
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("a decoded form value is rendered as HTML")
	}
	doc := mustDoc(t, page)
	if got := doc.Find(`[data-testid=form-row][data-key="note"] td`).Text(); got != "<script>alert(1)</script>" {
		t.Errorf("decoded note = %q", got)
	}
	if doc.Find("[data-testid=form-partial]").Length() != 1 {
		t.Error("a pair that could not be decoded is not mentioned")
	}
}

// TestEventPageUTF8C5: the C5 title renders as UTF-8 text, and searching for 会議 finds the
// event (a reversed word does not).
func TestEventPageUTF8C5(t *testing.T) {
	const title = "Café ₹ 会議 😊"
	b5, _ := hex.DecodeString("7b226576656e74223a227472616e736372697074696f6e2e636f6d706c65746564222c2264617461223a7b2266696c655f6964223a22665f30303035222c227469746c65223a22436166c3a920e282b920e4bc9ae8adb020f09f988a227d7d")
	e := newEnv(t)
	e.mustPost(http.Header{"Content-Type": {"application/json"},
		"Plaud-Signature": {"19b57294aa8d53c0d3cd5972cd8f5d5d58f8c2b3bbffc5d014b7c61454884371"}}, b5)
	ev := e.onlyEvent()
	c := e.client("viewer")

	resp, page := get(t, c, e.ts.URL+views.EventURL(ev.ID))
	if got := resp.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q, want UTF-8 HTML", got)
	}
	doc := mustDoc(t, page)
	if doc.Find(`meta[charset="utf-8"], meta[charset="UTF-8"]`).Length() != 1 {
		t.Error("the page does not declare UTF-8")
	}
	if got := doc.Find("[data-testid=raw-body]").Text(); got != string(b5) {
		t.Errorf("raw body = %q, want the stored bytes", got)
	}
	if got := doc.Find("[data-testid=pretty-body]").Text(); !strings.Contains(got, `"`+title+`"`) {
		t.Errorf("pretty body lacks the title %q: %q", title, got)
	}

	for q, want := range map[string]int{"会議": 1, "議会": 0} {
		_, list := get(t, c, e.ts.URL+"/events?q="+url.QueryEscape(q))
		rows := mustDoc(t, list).Find("[data-testid=event-row]")
		if rows.Length() != want {
			t.Errorf("q=%s: %d rows, want %d", q, rows.Length(), want)
		}
		if want == 1 && rows.AttrOr("data-id", "") != itoa64(ev.ID) {
			t.Errorf("q=%s found event %s, want %d", q, rows.AttrOr("data-id", ""), ev.ID)
		}
	}
}

// TestEventPageGzipC8: a gzip delivery is stored decoded with its content_encoding, and its
// page shows the JSON.
func TestEventPageGzipC8(t *testing.T) {
	c8, _ := base64.StdEncoding.DecodeString("H4sIAAAAAAACA6tWSi1LzStRslIqKUrMK04uyiwoyczP00vOzy3ISS1JTVHSUUpJLElUsqpWSsvMSY3PTAGqTYs3MDAwBEqhaPJMARsDkautBQCzkATTWwAAAA==")
	e := newEnv(t)
	e.mustPost(withHeader(signed(signature.SchemeDevguide, b1, testNow), "Content-Encoding", "gzip"), c8)
	ev := e.onlyEvent()
	d, _ := e.db.FindDeliveryByID(context.Background(), ev.BodyDeliveryID)
	if d.ContentEncoding != "gzip" || !bytes.Equal(d.Body, b1) {
		t.Fatalf("stored content_encoding %q, body %q; want gzip and B1", d.ContentEncoding, d.Body)
	}
	c := e.client("viewer")
	_, api := get(t, c, e.ts.URL+"/api/v1/deliveries")
	contains(t, api, `"content_encoding":"gzip"`)

	_, page := get(t, c, e.ts.URL+views.EventURL(ev.ID))
	doc := mustDoc(t, page)
	if got := doc.Find("[data-testid=raw-body]").Text(); got != string(b1) {
		t.Errorf("raw body = %q, want B1 decoded", got)
	}
	if got := doc.Find("[data-testid=pretty-body]").Text(); !strings.Contains(got, `"transcriptionId"`) {
		t.Errorf("no pretty JSON: %q", got)
	}
}

// TestEventPageDeliveriesC12: one event delivered twice 24 s apart lists both deliveries, each
// with its own receive time.
func TestEventPageDeliveriesC12(t *testing.T) {
	e := newEnv(t)
	b12 := []byte(`{"event":"device.recording_completed","data":{"file_id":"f_0012","event_id":"evt_0012"}}`)
	h := http.Header{"Plaud-Signature": {"b41376619131978a730c1432aa8e76001cde4eb1d5e051384b230edcf8d02bad"}}
	e.mustPost(h, b12)
	e.clock.Set(testNow.Add(24 * time.Second))
	e.mustPost(h, b12)
	ev := e.onlyEvent()

	_, page := get(t, e.client("viewer"), e.ts.URL+views.EventURL(ev.ID))
	doc := mustDoc(t, page)
	if got := doc.Find("[data-testid=event-delivery-count]").Text(); got != "2" {
		t.Errorf("delivery count = %q, want 2", got)
	}
	var got []string
	doc.Find("[data-testid=delivery-row] time").Each(func(_ int, s *goquery.Selection) {
		got = append(got, s.AttrOr("datetime", "")+" "+shownTime(s))
	})
	want := map[string]bool{
		"2026-12-03T12:00:00Z 2026-12-03 12:00:00 UTC": true,
		"2026-12-03T12:00:24Z 2026-12-03 12:00:24 UTC": true,
	}
	if len(got) != 2 || !want[got[0]] || !want[got[1]] || got[0] == got[1] {
		t.Errorf("delivery times = %q, want both receive times", got)
	}
}

// TestEventRowC1: the list row of the C1 baseline shows its type, receive time, "verified", the
// file and transcription ids and its size.
func TestEventRowC1(t *testing.T) {
	e := newEnv(t)
	e.mustPost(http.Header{"Content-Type": {"application/json"}, "Plaud-Signature": {sigS}}, b1)
	_, list := get(t, e.client("viewer"), e.ts.URL+"/events")
	row := mustDoc(t, list).Find("[data-testid=event-row]")
	if row.Length() != 1 {
		t.Fatalf("rows = %d, want 1", row.Length())
	}
	checks := []struct{ name, got, want string }{
		{"type", row.AttrOr("data-event-type", ""), "transcription.completed"},
		{"type link", strings.TrimSpace(row.Find("a.type").Text()), "transcription.completed"},
		{"status", strings.TrimSpace(row.Find("[data-testid=event-status]").Text()), "verified"},
		{"received", row.Find("[data-testid=event-received] time").AttrOr("datetime", ""), "2026-12-03T12:00:00Z"},
		{"received text", shownTime(row.Find("[data-testid=event-received] time")), "2026-12-03 12:00:00 UTC"},
		{"file id", row.Find("[data-testid=event-file-id]").Text(), "f_0001"},
		{"transcription id", row.Find("[data-testid=event-transcription-id]").Text(), "tr_0001"},
		{"size", row.Find("[data-testid=event-size]").Text(), "91 B"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

// TestCredentialHeadersHidden: a webhook request that carries credentials of its own (a proxy's
// basic auth, a cookie, an API key) is stored as received, but no page shows their values.
func TestCredentialHeadersHidden(t *testing.T) {
	e := newEnv(t)
	h := signed(signature.SchemeDevguide, b1, testNow)
	h.Set("Authorization", "Basic cHJveHk6aHVudGVyMg==")
	h.Set("Cookie", "plaudhook_session=leakme")
	h.Set("X-Api-Key", "key_leakme_0123")
	h.Set("Api-Key", "key_leakme_4567")
	h.Set("X-Access-Token", "tok_leakme_89")
	h["X_api_key"] = []string{"key_leakme_underscore"}
	h.Set("X-Private-Key", "pk_leakme_0")
	h.Set("X-Client-Key", "ck_leakme_1")
	h.Set("X-Jwt-Assertion", "jwt_leakme_2")
	h.Set("X-Signing-Secret", "ss_leakme_3")
	resp, body := e.post("/webhook", h, b1)
	if resp.StatusCode != 200 {
		t.Fatalf("post = %d %s", resp.StatusCode, body)
	}
	ds, _ := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{})
	if len(ds) != 1 {
		t.Fatalf("deliveries = %d", len(ds))
	}
	d, _ := e.db.FindDeliveryByID(context.Background(), ds[0].ID)
	if d.Header.Get("Cookie") != "plaudhook_session=leakme" {
		t.Errorf("stored Cookie = %q, want it kept as received", d.Header.Get("Cookie"))
	}
	for _, u := range []string{"/deliveries/" + strconv.FormatInt(d.ID, 10), "/events/" + strconv.FormatInt(d.EventID, 10)} {
		_, page := get(t, e.client("viewer"), e.ts.URL+u)
		for _, secret := range []string{"cHJveHk6aHVudGVyMg==", "leakme"} {
			if strings.Contains(page, secret) {
				t.Errorf("%s shows %q", u, secret)
			}
		}
		if !strings.Contains(page, "(hidden, 26 bytes)") {
			t.Errorf("%s does not say the Authorization header is hidden", u)
		}
	}
}
