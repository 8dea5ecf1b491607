package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/signature"
)

// TestEndpointLifecycle: an admin creates an endpoint in the UI; its URL routes deliveries to it
// (with its own secrets); event types it does not expect are accepted but flagged; editing and
// deleting work and are audited; other roles cannot reach the pages.
func TestEndpointLifecycle(t *testing.T) {
	e := newSecretEnv(t)
	ctx := context.Background()
	admin := e.client("admin")

	// Only admins reach endpoint pages.
	for _, role := range []string{"viewer", "operator"} {
		if resp, _ := get(t, e.client(role), e.ts.URL+"/endpoints"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s GET /endpoints: %d, want 403", role, resp.StatusCode)
		}
	}

	// A bad form is shown again with its error; nothing is created.
	resp, body := form(t, admin, e.ts.URL+"/endpoints", url.Values{"slug": {"Bad Slug"}, "name": {"Meetings"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || mustDoc(t, body).Find("[data-testid=form-error]").Length() != 1 {
		t.Fatalf("bad slug: %d, want 422 with the form error", resp.StatusCode)
	}
	page := e.mustForm(admin, "/endpoints", url.Values{"slug": {"meetings"}, "name": {"Meetings"},
		"expected_types": {"transcription.completed\ntranscription.failed"}})
	doc := mustDoc(t, page)
	if got := doc.Find("[data-testid=endpoint-url]").Text(); !strings.HasSuffix(got, "/webhook/meetings") {
		t.Errorf("endpoint URL = %q", got)
	}
	if doc.Find("[data-testid=no-secret]").Length() != 1 {
		t.Error("a new endpoint without a secret is not flagged")
	}
	if resp, _ := form(t, admin, e.ts.URL+"/endpoints", url.Values{"slug": {"meetings"}, "name": {"Again"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("same slug again: %d, want 422", resp.StatusCode)
	}

	// Its URL receives; without a secret everything is rejected.
	if resp, body := e.post("/webhook/meetings", devguide(testSecret, b1), b1); resp.StatusCode != 400 || !strings.Contains(body, "no_secret_configured") {
		t.Fatalf("no secret yet: %d %s", resp.StatusCode, body)
	}
	e.addSecret(admin, "meetings", "portal", testSecret)
	if resp, body := e.post("/webhook/meetings", devguide(testSecret, b1), b1); resp.StatusCode != 200 {
		t.Fatalf("signed delivery: %d %s", resp.StatusCode, body)
	}
	// The default endpoint does not know this endpoint's secret.
	if resp, _ := e.post("/webhook", devguide(testSecret, b1), b1); resp.StatusCode != 400 {
		t.Errorf("default endpoint with another endpoint's secret: %d, want 400", resp.StatusCode)
	}
	unexpected := []byte(`{"event":"device.battery_low","data":{"device_id":"d_1"}}`)
	if resp, _ := e.post("/webhook/meetings", devguide(testSecret, unexpected), unexpected); resp.StatusCode != 200 {
		t.Fatalf("unexpected type must still be accepted: %d", resp.StatusCode)
	}
	if resp, body := e.post("/webhook/nope", devguide(testSecret, b1), b1); resp.StatusCode != 404 || !strings.Contains(body, "unknown_endpoint") {
		t.Errorf("unknown slug: %d %s, want 404 unknown_endpoint", resp.StatusCode, body)
	}

	// The list flags the unexpected type, and only that one; so does its event page.
	_, list := get(t, admin, e.ts.URL+"/events")
	doc = mustDoc(t, list)
	flagged := doc.Find(`tr[data-event-type="device.battery_low"] [data-testid=unexpected-type]`).Length()
	clean := doc.Find(`tr[data-event-type="transcription.completed"] [data-testid=unexpected-type]`).Length()
	if flagged != 1 || clean != 0 {
		t.Errorf("unexpected flags: battery_low %d, transcription.completed %d; want 1, 0", flagged, clean)
	}
	events, _, _ := e.db.FindEvents(ctx, db.EventFilter{})
	_, eventPage := get(t, admin, e.ts.URL+"/events/"+itoa64(events[0].ID))
	if !strings.Contains(eventPage, `data-testid="unexpected-type"`) {
		t.Error("the event page does not flag the unexpected type")
	}
	// The health page lists types seen against expected ones.
	_, page = get(t, admin, e.ts.URL+"/endpoints/meetings")
	doc = mustDoc(t, page)
	for typ, want := range map[string]string{"transcription.completed": "true", "device.battery_low": "false", "transcription.failed": "true"} {
		if got := doc.Find(`[data-testid=type-row][data-type="`+typ+`"]`).AttrOr("data-expected", "missing"); got != want {
			t.Errorf("type %s expected = %s, want %s", typ, got, want)
		}
	}

	// Edit: expecting every type clears the flag.
	e.mustForm(admin, "/endpoints/meetings", url.Values{"slug": {"meetings"}, "name": {"Meetings room"}, "expected_types": {""}})
	if got, _ := e.db.FindEventByID(ctx, events[0].ID); got.Unexpected {
		t.Error("still flagged after the endpoint expects every type")
	}

	// A new slug moves the URL at once, though webhooks to the old one were just answered
	// (the server keeps endpoint ids by slug).
	e.mustForm(admin, "/endpoints/meetings", url.Values{"slug": {"rooms"}, "name": {"Meetings room"}, "expected_types": {""}})
	if resp, body := e.post("/webhook/meetings", devguide(testSecret, b1), b1); resp.StatusCode != 404 {
		t.Errorf("old slug after a rename: %d %s, want 404", resp.StatusCode, body)
	}
	if resp, body := e.post("/webhook/rooms", devguide(testSecret, unexpected), unexpected); resp.StatusCode != 200 || !strings.Contains(body, `"duplicate":true`) {
		t.Errorf("new slug after a rename: %d %s, want 200, a repeat", resp.StatusCode, body)
	}
	e.mustForm(admin, "/endpoints/rooms", url.Values{"slug": {"meetings"}, "name": {"Meetings room"}, "expected_types": {""}})

	// Delete needs the slug typed; then the URL is gone.
	if resp, _ := form(t, admin, e.ts.URL+"/endpoints/meetings/delete", url.Values{"confirm": {"nope"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("delete without confirmation: %d, want 422", resp.StatusCode)
	}
	if resp, _ := form(t, admin, e.ts.URL+"/endpoints/default/delete", url.Values{"confirm": {"default"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("delete default: %d, want 422", resp.StatusCode)
	}
	e.mustForm(admin, "/endpoints/meetings/delete", url.Values{"confirm": {"meetings"}})
	if resp, _ := e.post("/webhook/meetings", devguide(testSecret, b1), b1); resp.StatusCode != 404 {
		t.Errorf("deleted endpoint: %d, want 404", resp.StatusCode)
	}

	entries, _, _ := e.db.FindAuditEntries(ctx, db.AuditFilter{ActionPrefix: "endpoint."})
	got := map[string]bool{}
	for _, a := range entries {
		got[a.Action] = a.Actor == "admin"
	}
	for _, action := range []string{"endpoint.create", "endpoint.update", "endpoint.delete"} {
		if !got[action] {
			t.Errorf("no %s audit entry by admin", action)
		}
	}
}

// TestEndpointHealthPage: counts over 24 hours and 7 days, top reasons and the 48-hour chart.
func TestEndpointHealthPage(t *testing.T) {
	e := newSecretEnv(t)
	admin := e.client("admin")
	e.addSecret(admin, "default", "S", testSecret)

	// Two days ago: one verified. Now: two verified, three rejected.
	e.setClock(testNow.Add(-40 * time.Hour))
	e.post("/webhook", devguide(testSecret, b1), b1)
	e.setClock(testNow)
	admin = e.client("admin")
	for i := range 2 {
		b := []byte(`{"event":"device.synced","n":` + itoa64(int64(i)) + `}`)
		e.post("/webhook", devguide(testSecret, b), b)
	}
	for range 2 {
		e.post("/webhook", devguide("wrong", b1), b1)
	}
	e.post("/webhook", http.Header{}, b1)

	_, page := get(t, admin, e.ts.URL+"/endpoints/default")
	doc := mustDoc(t, page)
	for id, want := range map[string]string{"verified-24h": "2", "rejected-24h": "3", "verified-7d": "3", "rejected-7d": "3"} {
		if got := doc.Find("[data-testid=" + id + "]").Text(); got != want {
			t.Errorf("%s = %q, want %s", id, got, want)
		}
	}
	newest, _ := e.newestDelivery(admin)
	last := doc.Find("[data-testid=last-delivery] a")
	if last.AttrOr("href", "") != "/deliveries/"+itoa64(newest.ID) || !strings.Contains(last.Text(), "2026-12-03 12:00:00") {
		t.Errorf("last delivery = %q (%s), want the newest delivery at T", last.Text(), last.AttrOr("href", ""))
	}
	_, list := get(t, admin, e.ts.URL+"/endpoints")
	row := mustDoc(t, list).Find(`[data-testid=endpoint-row][data-slug=default]`)
	if got := row.Find("td").Last().Text(); !strings.Contains(got, "2026-12-03 12:00:00") {
		t.Errorf("endpoint list: last delivery = %q, want T", got)
	}
	if reasons := doc.Find("[data-testid=top-reasons] li").First().Text(); !strings.Contains(reasons, "signature_mismatch") || !strings.Contains(reasons, "× 2") {
		t.Errorf("top reason = %q, want signature_mismatch × 2", reasons)
	}
	hours := doc.Find("[data-testid=chart-hour]")
	if hours.Length() != db.ChartHours {
		t.Fatalf("chart hours = %d, want %d", hours.Length(), db.ChartHours)
	}
	current := hours.Last()
	if current.AttrOr("data-verified", "") != "2" || current.AttrOr("data-rejected", "") != "3" {
		t.Errorf("current hour = %s verified, %s rejected; want 2, 3", current.AttrOr("data-verified", ""), current.AttrOr("data-rejected", ""))
	}
	if current.Find("rect.bar-ok").Length() != 1 || current.Find("rect.bar-bad").Length() != 1 {
		t.Error("current hour lacks its stacked bars")
	}
	if early := hours.Eq(db.ChartHours - 41); early.AttrOr("data-verified", "") != "1" {
		t.Errorf("hour 40 h ago = %s verified, want 1", early.AttrOr("data-verified", ""))
	}
}

// TestClockSkewBanner is C14's banner: five timestamp-skew rejections within an hour make every
// page say the clock may be off, by about the median skew; four do not.
func TestClockSkewBanner(t *testing.T) {
	e := newSecretEnv(t)
	admin := e.client("admin")
	e.addSecret(admin, "default", "S", testSecret)
	for i := range 5 {
		// The sender's clock is ~400 s behind ours.
		ts := testNow.Add(-time.Duration(400+i) * time.Second)
		b := []byte(`{"event":"device.synced","n":` + itoa64(int64(i)) + `}`)
		if resp, body := e.post("/webhook", embedded(testSecret, ts, b), b); resp.StatusCode != 400 || !strings.Contains(body, "timestamp_out_of_tolerance") {
			t.Fatalf("skewed delivery: %d %s", resp.StatusCode, body)
		}
		_, page := get(t, admin, e.ts.URL+"/")
		banner := mustDoc(t, page).Find("[data-testid=skew-banner]").Text()
		if i < 4 && banner != "" {
			t.Fatalf("banner after %d skew rejections: %q", i+1, banner)
		}
		if i == 4 && !strings.Contains(banner, "may be off by about 402 seconds") {
			t.Fatalf("banner after 5 = %q, want about 402 seconds", banner)
		}
	}
	// The endpoint page says it too; an hour later it is gone.
	_, page := get(t, admin, e.ts.URL+"/endpoints/default")
	if mustDoc(t, page).Find("[data-testid=skew-banner]").Length() == 0 {
		t.Error("no banner on the endpoint page")
	}
	e.setClock(testNow.Add(61 * time.Minute))
	admin = e.client("admin")
	_, page = get(t, admin, e.ts.URL+"/")
	if mustDoc(t, page).Find("[data-testid=skew-banner]").Length() != 0 {
		t.Error("banner still shown an hour later")
	}
}

// TestSendTestEvent: the endpoint page signs a sample with the endpoint's newest active secret
// and posts it to this server's own webhook URL over HTTP; the event is stored as any other.
func TestSendTestEvent(t *testing.T) {
	e := newSecretEnv(t)
	admin := e.client("admin")
	e.mustForm(admin, "/endpoints", url.Values{"slug": {"calls"}, "name": {"Calls"}})

	// No secret: nothing to sign with.
	if resp, _ := form(t, admin, e.ts.URL+"/endpoints/calls/test", url.Values{"sample": {"device.synced"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("test without a secret: %d, want 422", resp.StatusCode)
	}
	e.addSecret(admin, "calls", "old", oldSecret)
	e.mustForm(admin, "/endpoints/calls/secrets/rotate", url.Values{"label": {"new"}, "value": {testSecret}})

	page := e.mustForm(admin, "/endpoints/calls/test", url.Values{"sample": {"transcription.completed.short"}})
	notice := mustDoc(t, page).Find("[data-testid=notice]").Text()
	if !strings.Contains(notice, "answered HTTP 200") || !strings.Contains(notice, "event #") {
		t.Fatalf("notice = %q, want HTTP 200 and the event", notice)
	}
	d, _ := e.newestDelivery(admin)
	if d.Verdict != db.Verified || d.Endpoint != "calls" || d.SecretLabel != "new" || d.Scheme != string(signature.SchemeEmbedded) {
		t.Errorf("delivery = %s via %s by %q (%s); want verified via calls by new (embedded)", d.Verdict, d.Endpoint, d.SecretLabel, d.Scheme)
	}
	if ua := d.Header.Get("User-Agent"); !strings.HasPrefix(ua, "plaudhook-test/") || d.RemoteAddr != "127.0.0.1" {
		t.Errorf("delivery came from %s with User-Agent %q; want this server over loopback", d.RemoteAddr, ua)
	}
	entries, _, _ := e.db.FindAuditEntries(context.Background(), db.AuditFilter{ActionPrefix: "endpoint.test"})
	if len(entries) != 1 || !strings.Contains(entries[0].Detail, "HTTP 200") {
		t.Errorf("audit = %+v", entries)
	}

	// The API counts it.
	_, body := get(t, admin, e.ts.URL+"/api/v1/endpoints")
	var api struct {
		Endpoints []struct {
			Slug        string `json:"slug"`
			Verified24h int    `json:"verified_24h"`
		} `json:"endpoints"`
	}
	json.Unmarshal([]byte(body), &api)
	if len(api.Endpoints) != 2 || api.Endpoints[1].Slug != "calls" || api.Endpoints[1].Verified24h != 1 {
		t.Errorf("api = %+v", api.Endpoints)
	}
}

// TestEndpointNote: an endpoint's note is saved when it is created and when it is edited, and
// shown (as text) on its page and in GET /api/v1/endpoints.
func TestEndpointNote(t *testing.T) {
	e := newSecretEnv(t)
	admin := e.client("admin")
	note := "Plaud portal subscription <b>#42</b>"
	page := e.mustForm(admin, "/endpoints", url.Values{"slug": {"meetings"}, "name": {"Meetings"}, "note": {note}})
	if strings.Contains(page, "<b>#42</b>") || !strings.Contains(mustDoc(t, page).Find("dl.facts").Text(), note) {
		t.Errorf("the new endpoint's page does not show the note as text")
	}
	apiNote := func() string {
		_, body := get(t, e.client("viewer"), e.ts.URL+"/api/v1/endpoints")
		var got struct {
			Endpoints []struct {
				Slug string `json:"slug"`
				Note string `json:"note"`
			} `json:"endpoints"`
		}
		json.Unmarshal([]byte(body), &got)
		for _, ep := range got.Endpoints {
			if ep.Slug == "meetings" {
				return ep.Note
			}
		}
		return "(no endpoint meetings)"
	}
	if got := apiNote(); got != note {
		t.Errorf("API note = %q, want %q", got, note)
	}

	edited := "moved to the Tokyo office"
	page = e.mustForm(admin, "/endpoints/meetings", url.Values{"slug": {"meetings"}, "name": {"Meetings"}, "note": {edited}})
	if got := mustDoc(t, page).Find("dl.facts").Text(); !strings.Contains(got, edited) || strings.Contains(got, "#42") {
		t.Errorf("after editing, the page shows %q, want only the new note", got)
	}
	if got := apiNote(); got != edited {
		t.Errorf("API note after editing = %q, want %q", got, edited)
	}
}
