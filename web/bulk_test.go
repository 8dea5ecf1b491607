package web_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
	"github.com/plaudhook/plaudhook/web/signature"
)

// mustIngestMany stores n events: even ones device.synced, odd ones device.connected.
func mustIngestMany(t *testing.T, e *replayEnv, n int) (synced []int64) {
	t.Helper()
	for i := range n {
		typ := "device.synced"
		if i%2 == 1 {
			typ = "device.connected"
		}
		id := e.mustIngest(signature.SchemeDevguide,
			[]byte(fmt.Sprintf(`{"event":%q,"id":"evt_%d"}`, typ, i)), nil)
		if typ == "device.synced" {
			synced = append(synced, id)
		}
	}
	return synced
}

// bulkForm is a bulk replay of every device.synced event to url.
func bulkForm(url, rate, concurrency string) map[string]string {
	return map[string]string{"type": "device.synced", "url": url, "mode": "original",
		"rate": rate, "concurrency": concurrency}
}

// startBulk posts the form and returns the new job's id.
func startBulk(t *testing.T, e *replayEnv, c *http.Client, form map[string]string) int64 {
	t.Helper()
	resp, body := sendForm(t, c, e.ts.URL+"/bulk", form, false)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/bulk/") {
		t.Fatalf("start bulk = %d %s", resp.StatusCode, body)
	}
	id, _ := strconv.ParseInt(strings.TrimPrefix(loc, "/bulk/"), 10, 64)
	return id
}

func waitJob(t *testing.T, e *replayEnv, id int64, state db.BulkState) db.BulkJob {
	t.Helper()
	var j db.BulkJob
	waitUntil(t, "bulk job "+string(state), func() bool {
		j, _ = e.db.FindBulkJobByID(context.Background(), id)
		return j.State == state
	})
	return j
}

// TestBulkReplay dry-runs a filter (count and first rows, nothing sent), then runs it: each
// matching event is sent once, never more than the concurrency at a time, with a live progress
// bar on the job's page.
func TestBulkReplay(t *testing.T) {
	e := mustReplayEnv(t)
	e.srv.StartReplayWorkers()
	synced := mustIngestMany(t, e, 9) // 5 device.synced
	var inFlight, maxInFlight atomic.Int64
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	})
	op := e.client("operator")
	form := bulkForm(rc.srv.URL, "100", "2")

	// The dry run: a GET that shows the count and the first rows and sends nothing.
	q := "?preview=1"
	for k, v := range form {
		q += "&" + k + "=" + v
	}
	resp, page := get(t, op, e.ts.URL+"/bulk/new"+q)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dry run = %d %s", resp.StatusCode, page)
	}
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(page))
	if got := doc.Find("[data-testid=bulk-count]").Text(); got != "5" {
		t.Errorf("dry run count = %q, want 5", got)
	}
	if n := doc.Find("[data-testid=bulk-preview-row]").Length(); n != 5 {
		t.Errorf("dry run rows = %d, want 5", n)
	}
	if len(rc.requests()) != 0 {
		t.Fatalf("the dry run sent requests")
	}

	// The run.
	id := startBulk(t, e, op, form)
	j := waitJob(t, e, id, db.BulkDone)
	if j.Total != 5 || j.Done != 5 || j.Failed != 0 {
		t.Errorf("job = %+v, want 5 of 5 done", j)
	}
	seen := map[string]int{}
	for _, r := range rc.requests() {
		seen[r.header.Get(web.ReplayMarkerHeader)]++
	}
	for _, ev := range synced {
		if n := seen[strconv.FormatInt(ev, 10)]; n != 1 {
			t.Errorf("event %d sent %d times, want once", ev, n)
		}
	}
	if len(seen) != 5 {
		t.Errorf("events sent = %v, want only the 5 device.synced ones", seen)
	}
	if m := maxInFlight.Load(); m > 2 {
		t.Errorf("up to %d requests at once, want at most 2", m)
	}
	if es := auditActions(t, e.db, "bulk.start"); len(es) != 1 || es[0].Actor != "operator" {
		t.Errorf("bulk start not audited: %+v", es)
	}
	_, page = get(t, op, fmt.Sprintf("%s/bulk/%d", e.ts.URL, id))
	if !strings.Contains(page, `data-state="done"`) || !strings.Contains(page, "5 of 5 sent") {
		t.Errorf("job page does not show it done")
	}

	// The page's stream starts with the current progress bar.
	msg := readSSE(t, op, fmt.Sprintf("%s/bulk/%d/stream", e.ts.URL, id), "bulk-progress")
	if !strings.Contains(msg, `data-testid="bulk-progress"`) || !strings.Contains(msg, `data-state="done"`) {
		t.Errorf("progress message = %q, want the finished progress bar", msg)
	}

	t.Run("ErrRefused", func(t *testing.T) {
		resp, body := sendForm(t, op, e.ts.URL+"/bulk",
			bulkForm("http://169.254.169.254/latest/meta-data/", "10", "1"), false)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "cloud metadata address") {
			t.Errorf("bulk to metadata = %d, want 422 explaining the refusal", resp.StatusCode)
		}
		if es := auditActions(t, e.db, "replay.refused"); len(es) != 1 {
			t.Errorf("refused bulk replay not audited: %+v", es)
		}
	})
	t.Run("ErrViewer", func(t *testing.T) {
		resp, _ := sendForm(t, e.client("viewer"), e.ts.URL+"/bulk", form, false)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer bulk = %d, want 403", resp.StatusCode)
		}
	})
}

// TestBulkProgressLive keeps a job's page stream open while the job runs against a receiver
// that answers only when the test lets it: the stream starts with the bar at 0, moves to 1 of 5
// after the first answer, and ends with the finished bar after the rest.
func TestBulkProgressLive(t *testing.T) {
	e := mustReplayEnv(t)
	e.srv.StartReplayWorkers()
	mustIngestMany(t, e, 9) // 5 device.synced
	gate := make(chan struct{}, 5)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-gate:
		case <-r.Context().Done():
		}
	})
	defer close(gate) // before the receiver's cleanup, which waits for its handlers
	op := e.client("operator")
	id := startBulk(t, e, op, bulkForm(rc.srv.URL, "100", "1"))

	// Open the job page's stream.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/bulk/%d/stream", e.ts.URL, id), nil)
	resp, err := op.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)

	// next returns the next bulk-progress message's data-done and data-state.
	next := func() (done, state string) {
		t.Helper()
		var msg strings.Builder
		for sc.Scan() {
			line := sc.Text()
			if line != "" {
				msg.WriteString(line + "\n")
				continue
			}
			if !strings.Contains(msg.String(), "event: bulk-progress\n") {
				msg.Reset()
				continue
			}
			doc, err := goquery.NewDocumentFromReader(strings.NewReader(sseData(msg.String())))
			if err != nil {
				t.Fatal(err)
			}
			bar := doc.Find("[data-testid=bulk-progress]")
			done, _ = bar.Attr("data-done")
			state, _ = bar.Attr("data-state")
			return done, state
		}
		t.Fatalf("the stream ended: %v", sc.Err())
		return "", ""
	}

	if done, state := next(); done != "0" || state != "running" {
		t.Fatalf("first message: done %s, state %s; want 0, running", done, state)
	}
	gate <- struct{}{} // the first event is answered
	if done, state := next(); done != "1" || state != "running" {
		t.Errorf("after one answer: done %s, state %s; want 1, running", done, state)
	}
	for range 4 {
		gate <- struct{}{}
	}
	var done, state string
	for state != "done" {
		done, state = next()
	}
	if done != "5" {
		t.Errorf("finished bar: done %s, want 5", done)
	}
}

// sseData joins the data lines of one server-sent message.
func sseData(msg string) string {
	var out []string
	for _, line := range strings.Split(msg, "\n") {
		if v, ok := strings.CutPrefix(line, "data:"); ok {
			out = append(out, strings.TrimPrefix(v, " "))
		}
	}
	return strings.Join(out, "\n")
}

// TestBulkCancel cancels a slow job after its first attempt: it stops, and what it sent stays
// recorded.
func TestBulkCancel(t *testing.T) {
	e := mustReplayEnv(t)
	e.srv.StartReplayWorkers()
	mustIngestMany(t, e, 9)
	rc := newReceiver(t, nil)
	op := e.client("operator")
	id := startBulk(t, e, op, bulkForm(rc.srv.URL, "0.1", "1")) // one every 10 s
	waitUntil(t, "the first attempt", func() bool {
		j, _ := e.db.FindBulkJobByID(context.Background(), id)
		return j.Done == 1
	})

	resp, _ := sendForm(t, op, fmt.Sprintf("%s/bulk/%d/cancel", e.ts.URL, id), nil, false)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel = %d", resp.StatusCode)
	}
	e.srv.StopReplayWorkers() // waits for the job's goroutine: nothing more can be sent
	j, _ := e.db.FindBulkJobByID(context.Background(), id)
	if j.State != db.BulkCancelled || j.Done != 1 || len(rc.requests()) != 1 {
		t.Errorf("job = %+v after %d requests, want cancelled after 1", j, len(rc.requests()))
	}
	if es := auditActions(t, e.db, "bulk.cancel"); len(es) != 1 {
		t.Errorf("cancel not audited")
	}
}

// TestBulkResume stops the server while a job's third request is in flight, then starts a new
// one over the same database: the job resumes, and every event ends with exactly one recorded
// attempt (the interrupted one is sent again, the others are not).
func TestBulkResume(t *testing.T) {
	path := t.TempDir() + "/bulk.db"
	clock := newTestClock()
	e := newReplayEnv(t, path, clock)
	e.srv.StartReplayWorkers()
	synced := mustIngestMany(t, e, 9)

	var n atomic.Int64
	var stopOnce sync.Once
	stopped := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 3 {
			// Shut down while this request is in flight; it never gets an answer.
			stopOnce.Do(func() { go func() { e.srv.StopReplayWorkers(); close(stopped) }() })
			<-r.Context().Done()
		}
	})
	id := startBulk(t, e, e.client("operator"), bulkForm(rc.srv.URL, "100", "1"))
	<-stopped
	j, _ := e.db.FindBulkJobByID(context.Background(), id)
	if j.State != db.BulkRunning || j.Done != 2 {
		t.Fatalf("after the stop: job = %+v, want running with 2 done", j)
	}

	// Restart.
	e.close()
	e = newReplayEnv(t, path, clock)
	e.srv.StartReplayWorkers()
	j = waitJob(t, e, id, db.BulkDone)
	if j.Done != 5 || j.Total != 5 {
		t.Errorf("job = %+v, want 5 of 5", j)
	}
	for _, ev := range synced {
		as, _ := e.db.FindAttempts(context.Background(), db.AttemptFilter{EventID: ev})
		if len(as) != 1 || as[0].BulkJobID != id {
			t.Errorf("event %d has %d attempts, want exactly 1 of job %d", ev, len(as), id)
		}
	}
	if got := len(rc.requests()); got != 6 {
		t.Errorf("receiver got %d requests, want 6 (5 events, the interrupted one twice)", got)
	}
}

// TestBulkDryRunFilters narrows a dry run by endpoint and by time range (from inclusive, to
// exclusive, read as UTC), and explains a filter it cannot use.
func TestBulkDryRunFilters(t *testing.T) {
	e := mustReplayEnv(t)
	for i := range 3 {
		e.mustIngest(signature.SchemeDevguide, []byte(fmt.Sprintf(`{"event":"device.synced","id":"evt_t%d"}`, i)), nil)
		e.advance(time.Hour)
	}
	op := e.client("operator")
	at := func(d time.Duration) string { return testNow.Add(d).Format("2006-01-02T15:04") }
	dryRun := func(q url.Values) (int, *goquery.Document) {
		t.Helper()
		q.Set("preview", "1")
		q.Set("url", "http://127.0.0.1:9/")
		resp, page := get(t, op, e.ts.URL+"/bulk/new?"+q.Encode())
		doc, _ := goquery.NewDocumentFromReader(strings.NewReader(page))
		return resp.StatusCode, doc
	}

	tests := []struct {
		name  string
		q     url.Values
		count string
	}{
		{"every event", url.Values{}, "3"},
		{"endpoint", url.Values{"endpoint": {"default"}}, "3"},
		{"from", url.Values{"from": {at(30 * time.Minute)}}, "2"},
		{"from and to", url.Values{"from": {at(30 * time.Minute)}, "to": {at(2 * time.Hour)}}, "1"},
		{"to is exclusive", url.Values{"to": {at(0)}}, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, doc := dryRun(tt.q)
			if status != http.StatusOK || doc.Find("[data-testid=bulk-count]").Text() != tt.count {
				t.Errorf("dry run = %d, count %q; want 200, %s", status, doc.Find("[data-testid=bulk-count]").Text(), tt.count)
			}
		})
	}
	for _, bad := range []struct {
		name, key, value, want string
	}{
		{"ErrEndpoint", "endpoint", "nope", "There is no endpoint nope."},
		{"ErrTime", "from", "yesterday", "Times are like"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			status, doc := dryRun(url.Values{bad.key: {bad.value}})
			if msg := doc.Find("[data-testid=bulk-error]").Text(); status != http.StatusUnprocessableEntity ||
				!strings.Contains(msg, bad.want) {
				t.Errorf("dry run = %d %q, want 422 %q", status, msg, bad.want)
			}
		})
	}
}
