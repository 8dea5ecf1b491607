package views

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"

	"github.com/plaudhook/plaudhook/db"
)

// sampleAt is a time with a fraction of a second: the title shows the second, the datetime
// attribute keeps it all.
var sampleAt = time.Date(2026, 3, 24, 10, 2, 15, 250_000_000, time.UTC)

// sampleExact is sampleAt as the hover title must read it.
const sampleExact = "2026-03-24 10:02:15 UTC"

func renderDoc(t *testing.T, c templ.Component) *goquery.Document {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// checkRelativeTimes fails unless doc has want relative times, each carrying sampleAt exactly:
// as its datetime and as its title (the text shown on hover once the script has replaced the
// element's text with "5 min ago").
func checkRelativeTimes(t *testing.T, doc *goquery.Document, want int) {
	t.Helper()
	times := doc.Find("time[data-relative]")
	if times.Length() != want {
		t.Errorf("relative times = %d, want %d", times.Length(), want)
	}
	times.Each(func(_ int, s *goquery.Selection) {
		if got := s.AttrOr("title", ""); got != sampleExact {
			t.Errorf("time title = %q, want %q", got, sampleExact)
		}
		at, err := time.Parse(time.RFC3339Nano, s.AttrOr("datetime", ""))
		if err != nil || !at.Equal(sampleAt) {
			t.Errorf("time datetime = %q, want %s", s.AttrOr("datetime", ""), sampleAt.Format(time.RFC3339Nano))
		}
		if got := strings.TrimSpace(s.Text()); got != sampleExact {
			t.Errorf("time text without script = %q, want the exact time %q", got, sampleExact)
		}
	})
}

// TestEventPageCopyButtons renders an event page and checks it has a copy button for each
// Plaud id, the raw body and the headers; that each button's target exists and holds what it
// says; that buttons stay hidden (they need script) and are labelled; and that the page's
// relative times keep the exact time on hover.
func TestEventPageCopyButtons(t *testing.T) {
	first := db.Delivery{ID: 11, EventID: 7, ReceivedAt: sampleAt, Verdict: db.Verified,
		Header: http.Header{"Content-Type": {"application/json"}, "Plaud-Signature": {"t=1,v1=" +
			strings.Repeat("ab", 32)}, "X-Request-Id": {"req-42"}}}
	props := EventPageProps{
		Event: db.Event{ID: 7, EventType: "device.synced", Endpoint: "default",
			EnvelopeID: "evt_9Kq", FileID: "file_77", TranscriptionID: "txn_55", DeviceID: "NOTE-A7",
			FirstReceivedAt: sampleAt, LastReceivedAt: sampleAt, DeliveryCount: 1, JSON: true},
		Body:       []byte(`{"event":"device.synced","id":"evt_9Kq"}`),
		First:      first,
		Deliveries: []db.Delivery{first},
	}
	page := Page{Title: "Event 7", Nav: "events", Static: "/static/test",
		User: &db.User{ID: 1, Username: "viewer", Role: db.RoleViewer}}
	doc := renderDoc(t, EventPage(page, props))

	// One button per id, copying the id itself.
	for label, id := range map[string]string{"envelope id": "evt_9Kq", "file id": "file_77",
		"transcription id": "txn_55", "device id": "NOTE-A7"} {
		b := doc.Find(`button.copy[data-copy-text="` + id + `"]`)
		if b.Length() != 1 || b.AttrOr("aria-label", "") != "Copy "+label {
			t.Errorf("copy buttons for %s = %d (label %q), want one labelled %q", id, b.Length(),
				b.AttrOr("aria-label", ""), "Copy "+label)
		}
	}

	// The body and the headers: each button names an element that exists once and holds them.
	targets := map[string]func(*goquery.Selection) bool{
		"raw-body": func(s *goquery.Selection) bool { return strings.Contains(s.Text(), `"evt_9Kq"`) },
		"first-headers": func(s *goquery.Selection) bool {
			names := s.Find("[data-testid=header-table] th").Map(func(_ int, h *goquery.Selection) string {
				return h.Text()
			})
			return strings.Join(names, ",") == "Content-Type,Plaud-Signature,X-Request-Id" &&
				strings.Contains(s.Text(), "req-42")
		},
	}
	for target, holds := range targets {
		if n := doc.Find("button.copy[data-copy-target=" + target + "]").Length(); n != 1 {
			t.Errorf("copy buttons for #%s = %d, want 1", target, n)
		}
		el := doc.Find("#" + target)
		if el.Length() != 1 || !holds(el) {
			h, _ := el.Html()
			t.Errorf("#%s (%d elements) does not hold what its button copies: %s", target, el.Length(), h)
		}
	}

	// Without script a copy button can do nothing, so it starts hidden; each has a name.
	doc.Find("button.copy").Each(func(_ int, s *goquery.Selection) {
		if _, hidden := s.Attr("hidden"); !hidden || s.AttrOr("aria-label", "") == "" {
			h, _ := goquery.OuterHtml(s)
			t.Errorf("copy button not hidden or unlabelled: %s", h)
		}
	})

	// First received, and the delivery's row.
	checkRelativeTimes(t, doc, 2)
}

// TestListRowTimes checks the event and delivery rows carry their time exactly on hover.
func TestListRowTimes(t *testing.T) {
	var buf bytes.Buffer
	ctx := context.Background()
	if err := EventRow(db.Event{ID: 3, EventType: "device.synced", FirstReceivedAt: sampleAt}, false).Render(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if err := DeliveryRow(db.Delivery{ID: 4, ReceivedAt: sampleAt, Verdict: db.Rejected,
		Reason: "missing_signature"}).Render(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader("<table>" + buf.String() + "</table>"))
	if err != nil {
		t.Fatal(err)
	}
	checkRelativeTimes(t, doc, 2)
}
