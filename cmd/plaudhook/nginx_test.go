package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// c19Idle is how long C19 keeps the stream idle behind nginx: well past nginx's default
// proxy_read_timeout (60 s), which would end a stream that sent nothing.
const c19Idle = 150 * time.Second

// TestC19Nginx is C19 with a real nginx in front, configured with its defaults for proxying
// (proxy_buffering on, proxy_read_timeout 60s): the stream stays open through 150 s of idle on
// the server's default 15 s heartbeat, a webhook then arrives on it, and a reconnect with the
// Last-Event-ID of the 3rd-newest event gets the 2 it missed, in order, then live ones.
func TestC19Nginx(t *testing.T) {
	t.Parallel()
	nginx := findNginx(t)

	// The server's own heartbeat, not the 1 s that mustRunMain sets for quick tests.
	want := 15 * time.Second
	if got := defaultConfig().Heartbeat; got != want {
		t.Fatalf("default heartbeat = %s, want %s", got, want)
	}
	m := mustRunMain(t, time.Time{}, func(c *Config) { c.Heartbeat = defaultConfig().Heartbeat })
	proxy := startNginx(t, nginx, m.ln.Addr().String())
	base := proxy.base

	// The server's stream headers, as sent to nginx. nginx consumes X-Accel-Buffering itself
	// (it never passes X-Accel-* on to the client), so that one is checked here.
	jar := browserClient()
	if got := httpSignIn(t, jar, base, "admin", adminPassword); got != http.StatusSeeOther {
		t.Fatalf("sign in through nginx = %d, want 303", got)
	}
	direct := openSSE(t, jar, m.URL(), "")
	for k, want := range map[string]string{"Content-Type": "text/event-stream",
		"Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := direct.resp.Header.Get(k); !strings.Contains(got, want) {
			t.Errorf("direct %s = %q, want %q", k, got, want)
		}
	}
	direct.close()

	// Through nginx: the same stream type and caching rules.
	s := openSSE(t, jar, base, "")
	if got := s.resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/event-stream") {
		t.Errorf("Content-Type through nginx = %q, want text/event-stream", got)
	}
	if got := s.resp.Header.Get("Cache-Control"); !strings.Contains(got, "no-cache") {
		t.Errorf("Cache-Control through nginx = %q, want no-cache", got)
	}
	t.Logf("X-Accel-Buffering through nginx = %q (nginx hides X-Accel-* from clients)",
		s.resp.Header.Get("X-Accel-Buffering"))

	// Idle: heartbeats must come through one by one (nginx buffering would hold them back)
	// often enough that nginx's 60 s read timeout never ends the stream.
	start := time.Now()
	beats, maxGap, last := 0, time.Duration(0), start
	for end := start.Add(c19Idle); time.Now().Before(end); {
		f, ok := s.next(time.Until(end))
		if !ok {
			if s.ended() {
				t.Fatalf("stream through nginx ended after %s idle: %v\nnginx error log:\n%s",
					time.Since(start).Round(time.Second), s.err, proxy.log())
			}
			break
		}
		if f.comment == "heartbeat" {
			beats++
			maxGap, last = max(maxGap, f.at.Sub(last)), f.at
		}
	}
	maxGap = max(maxGap, time.Since(last))
	t.Logf("idle %s through nginx: %d heartbeats, longest gap %s", c19Idle, beats,
		maxGap.Round(time.Millisecond))
	if beats < 4 {
		t.Errorf("heartbeats in %s idle = %d, want at least 4", c19Idle, beats)
	}
	if maxGap > 30*time.Second {
		t.Errorf("longest gap between heartbeats = %s, want at most 30 s", maxGap)
	}

	// Still open: a webhook posted to plaudhook directly arrives through nginx, with its id.
	var ids []int64
	for i := range 5 {
		body := fmt.Appendf(nil, `{"event":"device.synced","id":"evt_c19_%d","data":{"deviceId":"dev_c19"}}`, i)
		if err := sendSigned(m.URL(), body); err != nil {
			t.Fatalf("webhook %d: %v", i, err)
		}
		sent := time.Now()
		ids = append(ids, s.waitEvent(t, "event-new"))
		if i == 0 {
			t.Logf("first event after the idle arrived through nginx %s after its 2xx",
				time.Since(sent).Round(time.Microsecond))
		}
	}
	s.close()

	// Reconnect with the 3rd-newest id: the 2 missed arrive in order, then live ones.
	r := openSSE(t, jar, base, strconv.FormatInt(ids[len(ids)-3], 10))
	for _, want := range ids[len(ids)-2:] {
		if got := r.waitEvent(t, "event-new"); got != want {
			t.Fatalf("replayed event id = %d, want %d (sent %v)", got, want, ids)
		}
	}
	if err := sendSigned(m.URL(), []byte(`{"event":"device.synced","id":"evt_c19_live"}`)); err != nil {
		t.Fatal(err)
	}
	if got := r.waitEvent(t, "event-new"); got <= ids[len(ids)-1] {
		t.Errorf("live event id after the replay = %d, want more than %d", got, ids[len(ids)-1])
	}
}

// findNginx returns the nginx binary. Without one the test skips, except under CI=true, where
// a missing nginx is a failure: CI must install it.
func findNginx(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no nginx on PATH: CI must install it (apt-get install nginx)")
	}
	t.Skip("nginx test skipped: no nginx on PATH (apt-get install nginx)")
	return ""
}

// nginxProxy is a running nginx: its base URL and the folder holding its configuration, logs
// and temporary files.
type nginxProxy struct {
	base, dir string
}

// log returns nginx's error log, for a failure message.
func (p *nginxProxy) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "error.log"))
	return string(b)
}

// startNginx runs nginx in the foreground as a reverse proxy to upstream with nginx's proxy
// defaults, everything it writes kept in a temporary folder. It is stopped when the test ends.
func startNginx(t *testing.T, bin, upstream string) *nginxProxy {
	t.Helper()
	dir := t.TempDir()

	// A free port can be taken by another test between closing it and nginx binding it: try
	// a few.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		conf := nginxConf(dir, addr, upstream)
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		errLog := filepath.Join(dir, "error.log")
		cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", errLog, "-g", "daemon off;")
		out := &lockedWriter{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		stop := func() {
			// SIGTERM: nginx's fast shutdown, which also ends its worker.
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}

		// Ready once the port accepts connections; an exit means it could not start.
		deadline := time.Now().Add(15 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				t.Cleanup(stop)
				return &nginxProxy{base: "http://" + addr, dir: dir}
			}
			select {
			case <-done:
				log, _ := os.ReadFile(errLog)
				lastErr = fmt.Errorf("nginx exited: %s\n%s", out, log)
			case <-time.After(50 * time.Millisecond):
				if time.Now().Before(deadline) {
					continue
				}
				stop()
				lastErr = fmt.Errorf("nginx did not listen on %s in 15 s", addr)
			}
			break
		}
	}
	t.Fatal(lastErr)
	return nil
}

// nginxConf is a minimal nginx configuration: one server on addr proxying to upstream with
// what a typical site sets for keep-alive to the upstream, and nothing else. proxy_buffering
// and proxy_read_timeout keep their defaults (on, 60s), as C19 demands.
func nginxConf(dir, addr, upstream string) string {
	user := ""
	if os.Geteuid() == 0 {
		// As root, nginx would run its worker as nobody, which cannot enter the test's
		// private temporary folder.
		user = "user root;\n"
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	return user + `worker_processes 1;
pid ` + p("nginx.pid") + `;
error_log ` + p("error.log") + ` info;
events { worker_connections 64; }
http {
    access_log ` + p("access.log") + `;
    client_body_temp_path ` + p("client_body") + `;
    proxy_temp_path ` + p("proxy") + `;
    fastcgi_temp_path ` + p("fastcgi") + `;
    uwsgi_temp_path ` + p("uwsgi") + `;
    scgi_temp_path ` + p("scgi") + `;
    server {
        listen ` + addr + `;
        location / {
            proxy_pass http://` + upstream + `;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`
}

// sseFrame is one server-sent message, or a comment such as a heartbeat.
type sseFrame struct {
	at      time.Time
	id      string
	hasID   bool
	event   string
	comment string
}

// sseStream reads an open event stream in the background, one frame at a time.
type sseStream struct {
	resp   *http.Response
	frames chan sseFrame
	done   chan struct{}
	err    error // why the stream ended; set before done is closed
	cancel context.CancelFunc
}

// openSSE opens base's event stream with client c (signed in), sending lastID as Last-Event-ID
// unless empty, and checks that it answers 200. It is closed when the test ends.
func openSSE(t *testing.T, c *http.Client, base, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*c19Idle)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events/stream", nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s/events/stream = %s, want 200", base, resp.Status)
	}
	s := &sseStream{resp: resp, frames: make(chan sseFrame, 256), done: make(chan struct{}),
		cancel: cancel}
	go s.read(ctx)
	t.Cleanup(s.close)
	return s
}

// read parses frames until the stream ends.
func (s *sseStream) read(ctx context.Context) {
	defer close(s.done)
	br := bufio.NewReader(s.resp.Body)
	var f sseFrame
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.err = err
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if f.hasID || f.event != "" || f.comment != "" {
				f.at = time.Now()
				select {
				case s.frames <- f:
				case <-ctx.Done():
					s.err = ctx.Err()
					return
				}
			}
			f = sseFrame{}
		case strings.HasPrefix(line, ":"):
			f.comment = strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "id:"):
			f.id, f.hasID = strings.TrimSpace(line[3:]), true
		case strings.HasPrefix(line, "event:"):
			f.event = strings.TrimSpace(line[6:])
		}
	}
}

// next returns the next frame, or false when none came within d or the stream ended.
func (s *sseStream) next(d time.Duration) (sseFrame, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case f := <-s.frames:
		return f, true
	case <-s.done:
		// Frames read before the end are still delivered.
		select {
		case f := <-s.frames:
			return f, true
		default:
			return sseFrame{}, false
		}
	case <-timer.C:
		return sseFrame{}, false
	}
}

// ended reports whether the stream has ended.
func (s *sseStream) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitEvent waits (at most 30 s) for the next message named name and returns its id. Every
// message on the way must carry an id.
func (s *sseStream) waitEvent(t *testing.T, name string) int64 {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		f, ok := s.next(time.Until(end))
		if !ok {
			break
		}
		if f.event == "" {
			continue // a heartbeat
		}
		if !f.hasID {
			t.Fatalf("message %q has no id: line", f.event)
		}
		if f.event != name {
			continue
		}
		id, err := strconv.ParseInt(f.id, 10, 64)
		if err != nil || id <= 0 {
			t.Fatalf("message %q id = %q, want a delivery id", f.event, f.id)
		}
		return id
	}
	t.Fatalf("no %s message within 30 s (stream ended: %v, %v)", name, s.ended(), s.err)
	return 0
}

// close ends the stream and waits for its reader.
func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
	<-s.done
}
