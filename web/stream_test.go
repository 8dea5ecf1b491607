package web_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/signature"
)

type sseEvent struct {
	id, name, data string
}

// readEvents reads server-sent events (and counts heartbeat comments) until stop says so.
func readEvents(t *testing.T, resp *http.Response, stop func([]sseEvent, int) bool) ([]sseEvent, int) {
	t.Helper()
	var events []sseEvent
	beats := 0
	cur := sseEvent{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.name != "" {
					events = append(events, cur)
				}
				cur = sseEvent{}
				if stop(events, beats) {
					return
				}
			case strings.HasPrefix(line, ":"):
				beats++
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data += line[6:] + "\n"
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		resp.Body.Close()
		<-done
		t.Fatalf("timed out waiting for stream events; got %d events, %d heartbeats", len(events), beats)
	}
	return events, beats
}

func openStream(t *testing.T, e *env, c *http.Client, lastID string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/events/stream", nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("stream status = %d", resp.StatusCode)
	}
	return resp
}

// openListStream opens the stream a list page opens (list: events, deliveries or transcripts),
// resuming after last when it is not empty.
func openListStream(t *testing.T, e *env, c *http.Client, list, last string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/events/stream?list="+list, nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open stream: %v %v", resp, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestStream covers the live stream: headers, heartbeats, a new event, a duplicate, a rejection,
// and resuming from Last-Event-ID.
func TestStream(t *testing.T) {
	e := newEnv(t)
	c := e.client("viewer")
	resp := openStream(t, e, c, "")

	for k, want := range map[string]string{"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(resp.Header.Get("Cache-Control"), "no-cache") {
		t.Errorf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}

	// Wait for a heartbeat, then deliver: new, duplicate, rejected.
	readEvents(t, resp, func(_ []sseEvent, beats int) bool { return beats >= 2 })
	go func() {
		e.post("/webhook", signed(signature.SchemeDevguide, b1, testNow), b1)
		e.post("/webhook", signed(signature.SchemeDevguide, b1, testNow), b1)
		e.post("/webhook", http.Header{}, []byte("unsigned"))
	}()
	events, _ := readEvents(t, resp, func(ev []sseEvent, _ int) bool { return len(ev) >= 5 })
	names := []string{}
	for _, ev := range events {
		names = append(names, ev.name)
		if ev.id == "" {
			t.Errorf("event %s has no id", ev.name)
		}
	}
	want := "delivery-verified event-new delivery-verified event-update delivery-rejected"
	if strings.Join(names, " ") != want {
		t.Fatalf("events = %v, want %s", names, want)
	}
	if !strings.Contains(events[1].data, `data-testid="event-row"`) || !strings.Contains(events[1].data, "transcription.completed") {
		t.Errorf("event-new data = %q, want the rendered row", events[1].data)
	}
	if !strings.Contains(events[3].data, `hx-swap-oob="outerHTML"`) || !strings.Contains(events[3].data, "received 2×") {
		t.Errorf("event-update data = %q, want an out-of-band replacement row", events[3].data)
	}

	// Reconnect with the id of the first delivery: the two after it arrive from the database.
	resumed := openStream(t, e, c, events[0].id)
	missed, _ := readEvents(t, resumed, func(ev []sseEvent, _ int) bool { return len(ev) >= 3 })
	if missed[0].name != "delivery-verified" || missed[1].name != "event-update" || missed[2].name != "delivery-rejected" {
		t.Fatalf("resumed events = %v, want the two missed deliveries in order", missed)
	}
	first, _ := strconv.Atoi(events[0].id)
	if got, _ := strconv.Atoi(missed[0].id); got != first+1 {
		t.Errorf("first resumed id = %d, want %d", got, first+1)
	}
}

// TestStreamResync checks a reconnect that missed more than the replay window is told to reload.
func TestStreamResync(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 1002; i++ {
		body := []byte(strconv.Itoa(i))
		e.db.CreateDelivery(context.Background(), &db.Ingest{Delivery: db.Delivery{EndpointID: 1,
			ReceivedAt: testNow, Method: "POST", Path: "/webhook", Body: body, Verdict: db.Rejected,
			Reason: "missing_signature"}})
	}
	resp := openStream(t, e, e.client("viewer"), "1")
	events, _ := readEvents(t, resp, func(ev []sseEvent, _ int) bool { return len(ev) >= 1 })
	if events[0].name != "resync" {
		t.Fatalf("first event = %s, want resync", events[0].name)
	}
}

// logout signs c out.
func logout(t *testing.T, e *env, c *http.Client) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/logout", nil)
	lr, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	lr.Body.Close()
}

// streamEnded is closed once the stream resp reads has ended.
func streamEnded(resp *http.Response) <-chan struct{} {
	ended := make(chan struct{})
	go func() {
		io.Copy(io.Discard, resp.Body)
		close(ended)
	}()
	return ended
}

// TestStreamEndsOnLogout checks a stream closes once its session is gone.
func TestStreamEndsOnLogout(t *testing.T) {
	e := newEnv(t)
	c := e.client("viewer")
	resp := openStream(t, e, c, "")
	logout(t, e, c)
	ended := streamEnded(resp)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open 5 s after logout")
	}
}

// TestStreamEndsAtLogout: signing out ends that session's streams at once, not at their next
// heartbeat; a stream of another session of the same user stays open.
func TestStreamEndsAtLogout(t *testing.T) {
	e := newEnv(t, func(c *webConfig) { c.Heartbeat = time.Hour })
	leaving, staying := e.client("viewer"), e.client("viewer")
	resp := openStream(t, e, leaving, "")
	openStream(t, e, staying, "")
	waitFor(t, "two open streams", func() bool { return e.srv.Hub().Len() == 2 })
	logout(t, e, leaving)
	ended := streamEnded(resp)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the signed-out session's stream is still open 5 s after logout (heartbeat: 1 h)")
	}
	waitFor(t, "the signed-out stream to leave", func() bool { return e.srv.Hub().Len() == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := e.srv.Hub().Len(); n != 1 {
		t.Errorf("open streams = %d, want the other session's one", n)
	}
}

// TestStreamBurst: under a burst a stream writes on its beat, only the newest rows a list can
// hold back, and counts the rest in "skipped" messages: every delivery is accounted for exactly
// once, in order, and a reconnect from the last id resumes after the burst, not inside it.
func TestStreamBurst(t *testing.T) {
	const burst = 150
	e := newEnv(t, func(c *webConfig) { c.StreamInterval = 2 * time.Second })
	c := e.client("viewer")
	open := func(last string) *http.Response { return openListStream(t, e, c, "deliveries", last) }
	resp := open("")
	waitFor(t, "the stream to open", func() bool { return e.srv.Hub().Len() == 1 })

	// A quiet stream writes the first row at once.
	sendDeliveries(t, e, e.ts.URL, 1, 64)
	first, _ := readEvents(t, resp, func(ev []sseEvent, _ int) bool { return len(ev) >= 1 })
	if first[0].name != "delivery-verified" {
		t.Fatalf("first message %+v, want the delivery row", first[0])
	}

	start := time.Now()
	sendDeliveries(t, e, e.ts.URL, burst, 256)
	sent := time.Since(start)
	rows, skipped, skips := 0, 0, 0
	var ids []int
	events, _ := readEvents(t, resp, func(ev []sseEvent, _ int) bool {
		if len(ev) == len(ids) {
			return false // a heartbeat
		}
		m := ev[len(ev)-1]
		switch {
		case m.name == "skipped":
			n, err := strconv.Atoi(strings.TrimSpace(m.data))
			if err != nil || n <= 0 {
				t.Errorf("skipped data %q", m.data)
			}
			skipped += n
			skips++
		case strings.HasPrefix(m.name, "delivery-"):
			rows++
		default:
			t.Errorf("a deliveries stream sent %q", m.name)
		}
		id, _ := strconv.Atoi(m.id)
		ids = append(ids, id)
		return rows+skipped >= burst
	})
	if rows+skipped != burst {
		t.Fatalf("rows %d + skipped %d, want %d", rows, skipped, burst)
	}
	for i := 1; i < len(ids); i++ {
		// Rows come in delivery order; a skipped message carries the newest id it accounts for.
		if ids[i] < ids[i-1] || ids[i] == ids[i-1] && events[i].name != "skipped" {
			t.Fatalf("ids not increasing: %v", ids)
		}
	}
	t.Logf("burst of %d sent in %v: %d rows written, %d counted in %d skipped messages", burst,
		sent.Round(time.Millisecond), rows, skipped, skips)
	if sent < 2*time.Second && (skipped == 0 || rows > streamRowsMaxForTest) {
		// The whole burst arrived between two beats: one write, the newest rows only.
		t.Errorf("a burst inside one interval wrote %d rows and skipped %d, want at most %d rows",
			rows, skipped, streamRowsMaxForTest)
	}

	// A reconnect from the last id gets nothing of the burst again, then the next delivery.
	last := events[len(events)-1].id
	resumed := open(last)
	sendDeliveries(t, e, e.ts.URL, 1, 64)
	next, _ := readEvents(t, resumed, func(ev []sseEvent, _ int) bool { return len(ev) >= 1 })
	if id, _ := strconv.Atoi(next[0].id); id != ids[len(ids)-1]+1 || !strings.HasPrefix(next[0].name, "delivery-") {
		t.Errorf("after reconnecting from %s the stream sent %+v first, want delivery %d", last, next[0], ids[len(ids)-1]+1)
	}
}

// streamRowsMaxForTest is the web package's limit of rows of one kind per stream write.
const streamRowsMaxForTest = 50
