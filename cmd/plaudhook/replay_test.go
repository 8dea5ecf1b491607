package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/plaudhook/plaudhook/web"
	"github.com/plaudhook/plaudhook/web/signature"
)

// appReceiver is the team's app being debugged: it records the bodies it gets.
type appReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
	marks  []string // the replay marker header of each request
}

func newAppReceiver(t *testing.T) *appReceiver {
	t.Helper()
	a := &appReceiver{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.bodies = append(a.bodies, string(b))
		a.marks = append(a.marks, r.Header.Get(web.ReplayMarkerHeader))
		a.mu.Unlock()
		w.Write([]byte(`{"received":true}`))
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *appReceiver) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.bodies)
}

// mustIngestNow posts body signed now with the fixture secret and returns the event id.
func mustIngestNow(t *testing.T, m *Main, body []byte) int64 {
	t.Helper()
	h := signature.Sign(signature.SchemeDevguide, []byte(fixtureSecret), time.Now(), body)
	status, reply := postSigned(t, m.URL()+"/webhook", map[string]string{
		signature.HeaderSignature: h.Get(signature.HeaderSignature)}, body)
	var r struct {
		EventID int64 `json:"event_id"`
	}
	if err := json.Unmarshal([]byte(reply), &r); status != 200 || err != nil || r.EventID == 0 {
		t.Fatalf("ingest = %d %s", status, reply)
	}
	return r.EventID
}

// mustAdminToken creates an API token for the first-run admin.
func mustAdminToken(t *testing.T, m *Main) string {
	t.Helper()
	u, err := m.DB.FindUserByUsername(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	tok := web.NewAPIToken()
	if _, err := m.DB.CreateToken(context.Background(), u.ID, "replay test", tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestReplayCommand runs `plaudhook replay EVENT_ID --to URL --mode MODE` against the real
// server: the app gets the stored bytes, the command prints the attempt, and a URL the policy
// refuses fails with the reason.
func TestReplayCommand(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	body := []byte(`{"event":"device.synced","id":"evt_cli","data":{"file_id":"f_cli"}}`)
	id := mustIngestNow(t, m, body)
	app := newAppReceiver(t)
	tok := mustAdminToken(t, m)

	var out, errOut stringsBuilder
	err := run(context.Background(), []string{"replay", strconv.FormatInt(id, 10), "--to", app.URL,
		"--mode", "original", "--server", m.URL(), "--token", tok}, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("replay: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "200 OK") || app.count() != 1 || app.bodies[0] != string(body) {
		t.Errorf("output %q, app got %q; want 200 OK and the stored body", out.String(), app.bodies)
	}

	// Refused by the address policy: an error naming the reason, nothing sent.
	out = stringsBuilder{}
	err = run(context.Background(), []string{"replay", strconv.FormatInt(id, 10), "--to",
		"http://169.254.169.254/latest/meta-data/", "--server", m.URL(), "--token", tok}, nil, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "target not allowed: cloud metadata address") {
		t.Errorf("refused replay: err %v, output %q; want an error and the reason", err, out.String())
	}

	// Into this server's own webhook with --store-as-new: a second event with the same bytes.
	out = stringsBuilder{}
	err = run(context.Background(), []string{"replay", strconv.FormatInt(id, 10), "--to",
		m.URL() + "/webhook", "--store-as-new", "--server", m.URL(), "--token", tok}, nil, &out, &errOut)
	if c, _ := m.DB.CountRecords(context.Background()); err != nil || c.Events != 2 {
		t.Errorf("replay --store-as-new: %v, %d events; want a second event\n%s", err, c.Events, out.String())
	}

	t.Run("ErrNoToken", func(t *testing.T) {
		err := run(context.Background(), []string{"replay", "1", "--to", app.URL, "--server", m.URL()},
			nil, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "token") {
			t.Errorf("without a token: err = %v, want one naming the token", err)
		}
	})
	t.Run("ErrBadToken", func(t *testing.T) {
		err := run(context.Background(), []string{"replay", "1", "--to", app.URL, "--server", m.URL(),
			"--token", "nope"}, nil, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("bad token: err = %v, want a 401", err)
		}
	})
}

// TestBrowserReplay opens an event in a real browser, replays it to a local app from the page,
// and watches the attempt appear in the log without a reload; a second replay, from a script,
// appears live as well.
func TestBrowserReplay(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	ctx := newBrowser(t)
	body := []byte(`{"event":"transcription.completed","id":"evt_browser","data":{"file_id":"f_b"}}`)
	id := mustIngestNow(t, m, body)
	app := newAppReceiver(t)
	signIn(t, ctx, m.URL())

	// Open the event page and wait for its attempt stream.
	err := chromedp.Do(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/events/%d", m.URL(), id)),
		chromedp.WaitVisible(`[data-testid=replay-form]`),
		chromedp.WaitReady(`[data-testid=attempt-live][data-live=open]`),
	)
	if err != nil {
		t.Fatalf("open event page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload = true`)); err != nil {
		t.Fatal(err)
	}

	// Replay from the form.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`[data-testid=replay-url]`, app.URL+"/hook"),
		chromedp.Click(`[data-testid=replay-submit]`),
		chromedp.WaitVisible(`[data-testid=replay-result]`),
		chromedp.WaitVisible(`#attempt-rows [data-testid=attempt-row]`),
	)
	if err != nil {
		t.Fatalf("replay from the page: %v", err)
	}
	outcome, err := chromedp.Run(ctx, chromedp.Text(`#attempt-rows [data-testid=attempt-row] [data-testid=attempt-outcome]`))
	if err != nil || outcome != "200 OK" {
		t.Errorf("attempt outcome = %q (%v), want 200 OK", outcome, err)
	}
	if app.count() != 1 || app.bodies[0] != string(body) || app.marks[0] != strconv.FormatInt(id, 10) {
		t.Errorf("app got %q marked %q, want the stored body marked %d", app.bodies, app.marks, id)
	}

	// A replay made elsewhere (the API) shows up on the open page too.
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/v1/events/%d/replay", m.URL(), id),
		strings.NewReader(`{"target_url":"`+app.URL+`/again","mode":"original"}`))
	req.Header.Set("Authorization", "Bearer "+mustAdminToken(t, m))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("API replay: %v %v", err, resp)
	}
	resp.Body.Close()
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](
		`document.querySelectorAll("#attempt-rows [data-testid=attempt-row]").length === 2`))
	if err != nil {
		t.Fatalf("the second attempt did not appear live: %v", err)
	}
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload === true`))
	if err != nil || !same {
		t.Errorf("the page reloaded (%v)", err)
	}
	placeholder, _ := chromedp.Run(ctx, chromedp.Evaluate[int](
		`document.querySelectorAll("[data-testid=no-attempts]").length`))
	if placeholder != 0 {
		t.Errorf("the 'not replayed yet' row is still shown")
	}

	// Copy as curl: the button (hidden without script) copies the command, once per click.
	// The page's clipboard is swapped for a recorder, as a headless browser has none to read.
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`(function () {
		window.__copies = [];
		navigator.clipboard.writeText = function (t) { window.__copies.push(t); return Promise.resolve(); };
		return true;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(`details.curl summary`),
		chromedp.WaitVisible(`button.copy[data-copy="#curl-event"]`),
		chromedp.Click(`button.copy[data-copy="#curl-event"]`),
	)
	if err != nil {
		t.Fatalf("copy as curl: %v", err)
	}
	copied, err := chromedp.Run(ctx, chromedp.Poll[string](
		`window.__copies.length > 0 && window.__copies.join("\n---\n")`))
	if err != nil || !strings.Contains(copied, "curl -sS -X POST") ||
		!strings.Contains(copied, signature.HeaderSignature) || strings.Contains(copied, "\n---\n") {
		t.Errorf("copied %q (%v), want the curl command with its signature, copied once", copied, err)
	}
}
