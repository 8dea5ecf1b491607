package replay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// received is what a test receiver saw.
type received struct {
	method string
	header http.Header
	sum    [32]byte
	n      int
}

// mustStartRecorder starts a loopback receiver that reports each request.
func mustStartRecorder(tb testing.TB, status int) (*countingServer, <-chan received) {
	tb.Helper()
	ch := make(chan received, 8)
	srv := mustStartCounting(tb, "tcp4", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- received{method: r.Method, header: r.Header.Clone(), sum: sha256.Sum256(body), n: len(body)}
		w.WriteHeader(status)
		w.Write([]byte("answer"))
	}))
	return srv, ch
}

func TestSendByteExact(t *testing.T) {
	// A body with every byte value, CRLFs and NULs, larger than one read.
	var body []byte
	for i := 0; i < 100_000; i++ {
		body = append(body, byte(i*7))
	}
	body = append(body, "\r\n\r\n\x00{\"id\":\"évènement\"}"...)

	header := http.Header{
		"Content-Type":    {"application/json; charset=utf-8"},
		"Plaud-Signature": {"900c6c17ce86b12d78aefbe8d361508fb578c3193c8636c635a6b59400bf0e7f"},
		"X-Replay-Of":     {"evt_123"},
		"X-Multi":         {"b", "a", "b"},
		"X-Empty":         {""},
	}

	srv, got := mustStartRecorder(t, http.StatusOK)
	c, _ := newTestClient(t, Policy{}, nil)
	a := c.Send(context.Background(), Request{URL: srv.URL + "/hook?x=1", Header: header, Body: body})

	if a.ErrorKind != KindNone || a.StatusCode != http.StatusOK {
		t.Fatalf("Send = %q %q status %d, want success", a.ErrorKind, a.Error, a.StatusCode)
	}
	r := <-got
	if r.sum != sha256.Sum256(body) || r.n != len(body) {
		t.Errorf("body sha256 = %x (%d bytes), want %x (%d bytes)", r.sum, r.n, sha256.Sum256(body), len(body))
	}
	if r.method != http.MethodPost {
		t.Errorf("method = %q, want POST", r.method)
	}
	for k, want := range header {
		if g := r.header.Values(k); fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("header %s = %q, want %q", k, g, want)
		}
	}
	if g, want := r.header.Get("User-Agent"), "plaudhook-test/1"; g != want {
		t.Errorf("User-Agent = %q, want %q", g, want)
	}
	if g := r.header.Get("Accept-Encoding"); g != "" {
		t.Errorf("Accept-Encoding = %q, want none", g)
	}

	// The attempt records what was sent, and the caller's header is untouched.
	if g := a.RequestHeader.Get("User-Agent"); g != "plaudhook-test/1" {
		t.Errorf("RequestHeader User-Agent = %q, want plaudhook-test/1", g)
	}
	if _, ok := header["User-Agent"]; ok {
		t.Errorf("caller's header was modified: %v", header)
	}
	if string(a.ResponseBody) != "answer" || a.Truncated {
		t.Errorf("ResponseBody, Truncated = %q, %v; want \"answer\", false", a.ResponseBody, a.Truncated)
	}
	if a.URL != srv.URL+"/hook?x=1" || a.Duration <= 0 {
		t.Errorf("URL, Duration = %q, %v", a.URL, a.Duration)
	}
}

// mustStartRawReceiver accepts one connection on loopback and returns the
// request head exactly as it came off the wire.
func mustStartRawReceiver(tb testing.TB) (string, <-chan string) {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	tb.Cleanup(func() { ln.Close() })

	ch := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			head.WriteString(line)
			if err != nil || line == "\r\n" {
				break
			}
		}
		ch <- head.String()
		io.WriteString(conn, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
	}()
	return "http://" + ln.Addr().String(), ch
}

func TestSendWireHeaders(t *testing.T) {
	tests := []struct {
		name      string
		header    http.Header
		userAgent string
		want      []string // substrings of the request head
		wantNot   []string
	}{
		{
			name:   "spelling and order kept",
			header: http.Header{"x-lower": {"v1"}, "X-Multi": {"b", "a"}, "webhook-id": {"msg_1"}},
			want: []string{
				"POST / HTTP/1.1\r\n", "\r\nx-lower: v1\r\n", "\r\nX-Multi: b\r\nX-Multi: a\r\n",
				"\r\nwebhook-id: msg_1\r\n", "\r\nUser-Agent: plaudhook-test/1\r\n",
			},
			wantNot: []string{"Accept-Encoding", "gzip"},
		},
		{
			name:    "caller's user agent kept",
			header:  http.Header{"User-Agent": {"Plaud-Webhook/1.0"}},
			want:    []string{"\r\nUser-Agent: Plaud-Webhook/1.0\r\n"},
			wantNot: []string{"plaudhook-test", "Go-http-client"},
		},
		{
			name:    "lower-case user agent not doubled",
			header:  http.Header{"user-agent": {"Plaud-Webhook/1.0"}},
			want:    []string{"\r\nuser-agent: Plaud-Webhook/1.0\r\n"},
			wantNot: []string{"plaudhook-test", "Go-http-client", "User-Agent:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, heads := mustStartRawReceiver(t)
			c, _ := newTestClient(t, Policy{}, nil)
			a := c.Send(context.Background(), Request{URL: url + "/", Header: tt.header, Body: []byte("x")})
			if a.ErrorKind != KindNone || a.StatusCode != http.StatusNoContent {
				t.Fatalf("Send = %q %q status %d, want 204", a.ErrorKind, a.Error, a.StatusCode)
			}
			head := <-heads
			if v, ok := a.RequestHeader["User-Agent"]; ok && v[0] == "" {
				t.Errorf("RequestHeader records an empty User-Agent: %v", a.RequestHeader)
			}
			for _, s := range tt.want {
				if !strings.Contains(head, s) {
					t.Errorf("request head lacks %q:\n%s", s, head)
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(head, s) {
					t.Errorf("request head has %q:\n%s", s, head)
				}
			}
		})
	}
}

func TestSendMethod(t *testing.T) {
	tests := []struct {
		method string
		want   string
	}{
		{"", http.MethodPost},
		{http.MethodPut, http.MethodPut},
		{http.MethodGet, http.MethodGet},
	}
	for _, tt := range tests {
		t.Run("method "+tt.want, func(t *testing.T) {
			srv, got := mustStartRecorder(t, http.StatusAccepted)
			c, _ := newTestClient(t, Policy{}, nil)
			a := c.Send(context.Background(), Request{URL: srv.URL, Method: tt.method})
			if a.StatusCode != http.StatusAccepted {
				t.Fatalf("StatusCode = %d (%s), want 202", a.StatusCode, a.Error)
			}
			if r := <-got; r.method != tt.want {
				t.Errorf("method = %q, want %q", r.method, tt.want)
			}
		})
	}
}

func TestSendOutcomes(t *testing.T) {
	resolver := mustStartDNS(t, staticAnswers(nil))

	// A port with nothing behind it.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String() + "/"
	ln.Close()

	status500, _ := mustStartRecorder(t, http.StatusInternalServerError)
	slow := mustStartCounting(t, "tcp4", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	slowBody := mustStartCounting(t, "tcp4", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	tlsSrv := httptest.NewUnstartedServer(okHandler)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	plain := mustStartCounting(t, "tcp4", okHandler)

	tests := []struct {
		name       string
		url        string
		timeout    time.Duration
		wantKind   ErrorKind
		wantStatus int
		wantBody   string
		wantError  string // substring of Attempt.Error
	}{
		{name: "500 reported with status", url: status500.URL, wantStatus: 500, wantBody: "answer"},
		{name: "timeout waiting for headers", url: slow.URL, timeout: 200 * time.Millisecond,
			wantKind: KindTimeout, wantError: "no complete answer within 200ms"},
		{name: "timeout reading body", url: slowBody.URL, timeout: 200 * time.Millisecond,
			wantKind: KindTimeout, wantStatus: 200, wantBody: "partial",
			wantError: "no complete answer within 200ms"},
		{name: "closed port", url: closedURL, wantKind: KindConnectionRefused,
			wantError: "connection refused"},
		{name: "unresolvable host", url: "http://nothing.invalid/", wantKind: KindDNS,
			wantError: `host "nothing.invalid" not found`},
		{name: "untrusted certificate", url: tlsSrv.URL, wantKind: KindTLS,
			wantError: "certificate signed by unknown authority"},
		{name: "https to plain http", url: strings.Replace(plain.URL, "http:", "https:", 1),
			wantKind: KindTLS, wantError: "TLS handshake failed"},
		{name: "bad method", url: plain.URL, wantKind: KindOther, wantError: "invalid method"},
		{name: "unparsable url", url: "http://exa mple.com/", wantKind: KindOther,
			wantError: "invalid character"},
		{name: "missing host", url: "http:///x", wantKind: KindRefusedByPolicy,
			wantError: "target not allowed: host required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, Policy{}, resolver)
			c.Timeout = tt.timeout
			r := Request{URL: tt.url}
			if tt.name == "bad method" {
				r.Method = "BAD METHOD"
			}

			// The slow handlers answer after 5 s if nobody hangs up, so a timeout kind
			// proves the client's own deadline ended the exchange.
			a := c.Send(context.Background(), r)
			if a.ErrorKind != tt.wantKind {
				t.Errorf("ErrorKind = %q (%s), want %q", a.ErrorKind, a.Error, tt.wantKind)
			}
			if !strings.Contains(a.Error, tt.wantError) || (tt.wantError == "") != (a.Error == "") {
				t.Errorf("Error = %q, want it to contain %q", a.Error, tt.wantError)
			}
			if a.StatusCode != tt.wantStatus {
				t.Errorf("StatusCode = %d, want %d", a.StatusCode, tt.wantStatus)
			}
			if string(a.ResponseBody) != tt.wantBody {
				t.Errorf("ResponseBody = %q, want %q", a.ResponseBody, tt.wantBody)
			}
		})
	}
}

// TestClientDefaults checks what a zero Client uses: a 10 s timeout for the whole exchange and a
// 64 KiB response cap, as the attempt log promises.
func TestClientDefaults(t *testing.T) {
	var c Client
	if got := c.timeout(); got != 10*time.Second {
		t.Errorf("default timeout = %v, want 10s", got)
	}
	if got := c.maxResponse(); got != 64<<10 {
		t.Errorf("default response cap = %d, want %d", got, 64<<10)
	}
	c.Timeout, c.MaxResponse = time.Second, 10
	if c.timeout() != time.Second || c.maxResponse() != 10 {
		t.Errorf("configured timeout, cap = %v, %d; want 1s, 10", c.timeout(), c.maxResponse())
	}
}

func TestSendTruncates(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16) // 200 KiB
	srv := mustStartCounting(t, "tcp4", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(big[:n])
	}))

	tests := []struct {
		name          string
		maxResponse   int64
		n             int
		wantLen       int
		wantTruncated bool
	}{
		{"200 KiB with default cap", 0, 200 << 10, DefaultMaxResponse, true},
		{"exactly the cap", 0, DefaultMaxResponse, DefaultMaxResponse, false},
		{"one byte over", 0, DefaultMaxResponse + 1, DefaultMaxResponse, true},
		{"custom cap", 10, 200 << 10, 10, true},
		{"small body", 10, 5, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, Policy{}, nil)
			c.MaxResponse = tt.maxResponse
			a := c.Send(context.Background(), Request{URL: srv.URL + "/?n=" + strconv.Itoa(tt.n)})
			if a.ErrorKind != KindNone {
				t.Fatalf("ErrorKind = %q (%s), want none", a.ErrorKind, a.Error)
			}
			if len(a.ResponseBody) != tt.wantLen || a.Truncated != tt.wantTruncated {
				t.Errorf("len, Truncated = %d, %v; want %d, %v",
					len(a.ResponseBody), a.Truncated, tt.wantLen, tt.wantTruncated)
			}
			if !bytes.Equal(a.ResponseBody, big[:len(a.ResponseBody)]) {
				t.Errorf("ResponseBody is not a prefix of what was sent")
			}
		})
	}
}

func TestSendRedirects(t *testing.T) {
	// /hop/N redirects to /hop/N-1; /hop/0 answers "done". POSTs are
	// redirected with 307 so the body follows.
	var mu sync.Mutex
	var bodies []string
	srv := mustStartCounting(t, "tcp4", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
		if n == 0 {
			w.Write([]byte("done"))
			return
		}
		http.Redirect(w, r, "/hop/"+strconv.Itoa(n-1), http.StatusTemporaryRedirect)
	}))

	tests := []struct {
		name       string
		hops       int
		follow     bool
		wantKind   ErrorKind
		wantStatus int
		wantBody   string
		wantCalls  int
	}{
		{"not followed by default", 1, false, KindNone, 307, "", 1},
		{"one hop", 1, true, KindNone, 200, "done", 2},
		{"five hops", MaxRedirects, true, KindNone, 200, "done", MaxRedirects + 1},
		{"six hops", MaxRedirects + 1, true, KindTooManyRedirects, 307, "", MaxRedirects + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			bodies = nil
			mu.Unlock()

			c, _ := newTestClient(t, Policy{}, nil)
			url := srv.URL + "/hop/" + strconv.Itoa(tt.hops)
			a := c.Send(context.Background(), Request{URL: url, Body: []byte("payload"), FollowRedirects: tt.follow})
			if a.ErrorKind != tt.wantKind || a.StatusCode != tt.wantStatus {
				t.Errorf("ErrorKind, StatusCode = %q (%s), %d; want %q, %d",
					a.ErrorKind, a.Error, a.StatusCode, tt.wantKind, tt.wantStatus)
			}
			if tt.wantKind == KindTooManyRedirects && a.Error != "stopped after 5 redirects" {
				t.Errorf("Error = %q, want %q", a.Error, "stopped after 5 redirects")
			}
			if tt.wantBody != "" && string(a.ResponseBody) != tt.wantBody {
				t.Errorf("ResponseBody = %q, want %q", a.ResponseBody, tt.wantBody)
			}
			if a.URL != url {
				t.Errorf("URL = %q, want the requested %q", a.URL, url)
			}

			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != tt.wantCalls {
				t.Errorf("requests = %d, want %d", len(bodies), tt.wantCalls)
			}
			for i, b := range bodies {
				if b != "payload" {
					t.Errorf("request %d body = %q, want %q", i, b, "payload")
				}
			}
		})
	}
}

func TestSendConcurrent(t *testing.T) {
	srv, got := mustStartRecorder(t, http.StatusOK)
	go func() {
		for range got {
		}
	}()
	c := &Client{}

	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Go(func() {
			a := c.Send(context.Background(), Request{URL: srv.URL, Body: []byte(strconv.Itoa(i))})
			if a.ErrorKind != KindNone || a.StatusCode != http.StatusOK {
				t.Errorf("Send %d = %q %q %d", i, a.ErrorKind, a.Error, a.StatusCode)
			}
		})
	}
	wg.Wait()
	c.CloseIdleConnections()
}

func TestSendCancelled(t *testing.T) {
	srv := mustStartCounting(t, "tcp4", okHandler)
	c, _ := newTestClient(t, Policy{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := c.Send(ctx, Request{URL: srv.URL})
	if a.ErrorKind != KindOther || a.Error != "request cancelled" {
		t.Errorf("Send = %q %q, want %q %q", a.ErrorKind, a.Error, KindOther, "request cancelled")
	}
}
