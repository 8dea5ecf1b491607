package web_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/signature"
)

// streamServer serves e's router again from a server with the given write timeout, as
// production does (the stream must clear it for itself).
func streamServer(t *testing.T, e *env, writeTimeout time.Duration) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(e.srv)
	ts.Config.WriteTimeout = writeTimeout
	ts.Config.ConnContext = e.srv.ConnContext
	ts.Config.RegisterOnShutdown(e.srv.CloseStreams)
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// sessionCookie signs in as username and returns the session cookie header value.
func sessionCookie(t *testing.T, e *env, username string) string {
	t.Helper()
	c := e.client(username)
	u, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/", nil)
	var parts []string
	for _, ck := range c.Jar.Cookies(u.URL) {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	return strings.Join(parts, "; ")
}

// follower reads one event stream like a browser's EventSource: it records every delivery id
// and, when the server ends the stream, reconnects with Last-Event-ID.
type follower struct {
	mu         sync.Mutex
	seen       map[string]bool // delivery ids of "delivery-*" messages
	reconnects int
	noID       int // messages without an id
}

func (f *follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

func (f *follower) run(client *http.Client, url, cookie, last string, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Cookie", cookie)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := client.Do(req)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		done := make(chan struct{})
		go func() {
			select {
			case <-stop:
				resp.Body.Close()
			case <-done:
			}
		}()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		id, name := "", ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "event: "):
				name = line[7:]
			case line == "" && name != "":
				f.mu.Lock()
				if id == "" {
					f.noID++
				}
				if strings.HasPrefix(name, "delivery-") {
					f.seen[id] = true
				}
				f.mu.Unlock()
				last, id, name = id, "", ""
			}
		}
		close(done)
		resp.Body.Close()
		f.mu.Lock()
		f.reconnects++
		f.mu.Unlock()
	}
}

// TestStreamScale holds 500 open streams while deliveries are ingested: every stream gets every
// delivery (resuming with Last-Event-ID if it was dropped), and a stream whose reader stopped
// reading is dropped and its connection closed, while the others carry on.
func TestStreamScale(t *testing.T) {
	const streams, deliveries = 500, 20
	e := newEnv(t, func(c *webConfig) {
		c.Heartbeat = 2 * time.Second
		c.StreamWriteTimeout = 300 * time.Millisecond
		c.MaxStreams, c.MaxStreamsPerUser = streams+10, streams+10 // all opened by one user
	})
	ts := streamServer(t, e, 2*time.Second)
	cookie := sessionCookie(t, e, "viewer")

	// One delivery first: followers resume after it, so one dropped before its first message
	// still gets everything (a browser in that case reloads the page).
	sendDeliveries(t, e, e.ts.URL, 1, 16)
	first := "1"

	// 500 followers, each on its own connection.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: streams}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	followers := make([]*follower, streams)
	for i := range followers {
		f := &follower{seen: map[string]bool{}}
		followers[i] = f
		wg.Add(1)
		go func() { defer wg.Done(); f.run(client, ts.URL+"/events/stream", cookie, first, stop) }()
	}
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopAll()
	waitFor(t, "500 open streams", func() bool { return e.srv.Hub().Len() >= streams })

	// One more stream whose reader never reads, on a socket with a tiny receive buffer.
	stalledStream(t, ts.URL, cookie)
	waitFor(t, "the stalled stream to open", func() bool { return e.srv.Hub().Len() >= streams+1 })

	// Ingest while all of them are open.
	sendDeliveries(t, e, ts.URL, deliveries, 2048)
	for i, f := range followers {
		waitFor(t, fmt.Sprintf("follower %d to see every delivery", i), func() bool {
			return f.count() >= deliveries
		})
		if f.noID > 0 {
			t.Fatalf("follower %d got %d messages without an id", i, f.noID)
		}
	}

	// The followers leave; keep ingesting until the stalled stream is dropped: its handler gives
	// up on the blocked write and leaves the hub.
	stopAll()
	waitFor(t, "followers to leave", func() bool { return e.srv.Hub().Len() <= 1 })
	deadline := time.Now().Add(30 * time.Second)
	for e.srv.Hub().Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stalled stream not dropped within 30 s (open streams %d)", e.srv.Hub().Len())
		}
		sendDeliveries(t, e, ts.URL, 50, 2048)
	}
	// Its handler has returned (nothing of the stream is left running or buffered for it),
	// although its client never read a byte.
	waitFor(t, "the stalled stream's handler to return", func() bool {
		buf := make([]byte, 4<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "handleEventStream")
	})
	if e.srv.Hub().DroppedCount() == 0 {
		t.Error("the hub counted no dropped stream")
	}
}

// stalledStream opens an event stream over a raw connection that is never read.
func stalledStream(t *testing.T, base, cookie string) *net.TCPConn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	tc := conn.(*net.TCPConn)
	tc.SetReadBuffer(4096)
	t.Cleanup(func() { tc.Close() })
	fmt.Fprintf(tc, "GET /events/stream HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n",
		strings.TrimPrefix(base, "http://"), cookie)
	return tc
}

// sendDeliveries posts n distinct signed deliveries of about size bytes from 8 senders.
func sendDeliveries(t *testing.T, e *env, base string, n, size int) {
	t.Helper()
	pad := strings.Repeat("p", size)
	sendBodies(t, base, n, func(i int) []byte {
		return fmt.Appendf(nil, `{"event":"scale.test","id":"scale-%d-%d","data":"%s"}`,
			time.Now().UnixNano(), i, pad)
	})
}

// sendBodies posts body(0) to body(n-1), signed, from 8 senders, and checks each is answered 200.
func sendBodies(t *testing.T, base string, n int, body func(i int) []byte) {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				b := body(i)
				req, _ := http.NewRequest(http.MethodPost, base+"/webhook", bytes.NewReader(b))
				req.Header = signed(signature.SchemeDevguide, b, time.Now())
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("delivery status %d", resp.StatusCode)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// waitFor polls cond for up to 120 s (the race detector slows 500 streams down).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestC19 is case C19 without the proxy: headers for proxies, heartbeats while idle, a stream
// that outlives the server's write timeout, ids on every message, and a reconnect from the
// third-newest id that gets the two missed deliveries in order and then live ones.
func TestC19(t *testing.T) {
	e := newEnv(t, func(c *webConfig) { c.Heartbeat = 100 * time.Millisecond })
	ts := streamServer(t, e, 300*time.Millisecond)
	cookie := sessionCookie(t, e, "viewer")
	open := func(last string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/events/stream", nil)
		req.Header.Set("Cookie", cookie)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("open stream: %v %v", resp, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	resp := open("")
	for k, want := range map[string]string{"Content-Type": "text/event-stream",
		"X-Accel-Buffering": "no", "Cache-Control": "no-cache"} {
		if got := resp.Header.Get(k); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	// Idle for several write timeouts: heartbeats keep coming and the stream stays open.
	_, beats := readEvents(t, resp, func(_ []sseEvent, beats int) bool { return beats >= 12 })
	if beats < 12 {
		t.Fatalf("heartbeats = %d", beats)
	}

	// Three deliveries arrive live, each message with an id.
	for i := range 3 {
		body := fmt.Appendf(nil, `{"event":"c19","id":"c19-%d"}`, i)
		if r, reply := e.post("/webhook", signed(signature.SchemeDevguide, body, testNow), body); r.StatusCode != 200 {
			t.Fatalf("delivery %d: %d %s", i, r.StatusCode, reply)
		}
	}
	events, _ := readEvents(t, resp, func(ev []sseEvent, _ int) bool { return countDeliveries(ev) >= 3 })
	var ids []string
	for _, ev := range events {
		if ev.id == "" {
			t.Fatalf("message %s without id", ev.name)
		}
		if strings.HasPrefix(ev.name, "delivery-") {
			ids = append(ids, ev.id)
		}
	}

	// Reconnect from the third-newest: the two after it, in order, then live.
	resumed := open(ids[0])
	body := []byte(`{"event":"c19","id":"c19-live"}`)
	go e.post("/webhook", signed(signature.SchemeDevguide, body, testNow), body)
	got, _ := readEvents(t, resumed, func(ev []sseEvent, _ int) bool { return countDeliveries(ev) >= 3 })
	var order []string
	for _, ev := range got {
		if strings.HasPrefix(ev.name, "delivery-") {
			order = append(order, ev.id)
		}
	}
	newest, _ := strconv.Atoi(ids[2])
	live, _ := strconv.Atoi(order[2])
	if order[0] != ids[1] || order[1] != ids[2] || live <= newest {
		t.Fatalf("resumed delivery ids = %v, want %s, %s, then the live one", order, ids[1], ids[2])
	}
}

func countDeliveries(ev []sseEvent) int {
	n := 0
	for _, e := range ev {
		if strings.HasPrefix(e.name, "delivery-") {
			n++
		}
	}
	return n
}

// TestStreamResumeStalled: a browser that reconnects with Last-Event-ID and then stops reading
// is dropped while its backlog is being written, as a live stream is, rather than holding its
// connection and the rows queued for it for ever.
func TestStreamResumeStalled(t *testing.T) {
	e := newEnv(t, func(c *webConfig) {
		c.Heartbeat = time.Second
		c.StreamWriteTimeout = 300 * time.Millisecond
	})
	ts := streamServer(t, e, 2*time.Second)
	cookie := sessionCookie(t, e, "viewer")

	// 300 events whose rows carry a 24 KB file id: some 7 MB to replay, more than the
	// connection's buffers hold.
	fileID := strings.Repeat("f", 24<<10)
	sendBodies(t, ts.URL, 300, func(i int) []byte {
		return fmt.Appendf(nil, `{"event":"resume.test","id":"resume-%d","data":{"file_id":"%s-%d"}}`, i, fileID, i)
	})

	// Resume from before the first of them, on a socket that is never read.
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	tc := conn.(*net.TCPConn)
	tc.SetReadBuffer(4096)
	t.Cleanup(func() { tc.Close() })
	first := int64(1 << 62)
	ds, err := e.db.FindDeliveries(t.Context(), db.DeliveryFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		first = min(first, d.ID)
	}
	fmt.Fprintf(tc, "GET /events/stream HTTP/1.1\r\nHost: x\r\nCookie: %s\r\nLast-Event-ID: %d\r\n\r\n", cookie, first)

	waitFor(t, "the resuming stream to be dropped", func() bool {
		return e.srv.Hub().DroppedCount() > 0 && e.srv.Hub().Len() == 0
	})
}

// TestStreamLimits: live streams are bounded per user and in all. Past a bound a new stream is
// answered 429 with Retry-After, and a stream that closes frees its place.
func TestStreamLimits(t *testing.T) {
	e := newEnv(t, func(c *webConfig) { c.MaxStreams, c.MaxStreamsPerUser = 3, 2 })
	viewer, admin, operator := e.client("viewer"), e.client("admin"), e.client("operator")
	open := func(c *http.Client) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/events/stream", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	refused := func(resp *http.Response, why string) {
		t.Helper()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: status %d, Retry-After %q; want 429 with Retry-After", why, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	first := open(viewer)
	if r := open(viewer); r.StatusCode != 200 || first.StatusCode != 200 {
		t.Fatalf("two streams of one user: %d, %d", first.StatusCode, r.StatusCode)
	}
	refused(open(viewer), "a third stream of one user")
	if r := open(admin); r.StatusCode != 200 {
		t.Fatalf("another user's stream: %d", r.StatusCode)
	}
	refused(open(operator), "a fourth stream in all")

	// The viewer closes one: its place is free again once the handler has noticed.
	first.Body.Close()
	waitFor(t, "the closed stream to leave", func() bool { return e.srv.Hub().Len() == 2 })
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := open(viewer)
		if r.StatusCode == 200 {
			break
		}
		r.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("after closing a stream, a new one is still refused (%d)", r.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
