package web

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
)

// streamSlots bounds the live streams held open: in all, and per user. Each stream holds a
// connection (a file descriptor), a goroutine and its buffers for as long as its client likes,
// so without a bound one signed-in account could open them until the server has no file
// descriptors left and stops accepting webhooks.
//
// It also knows each stream's credentials, so that signing out ends the streams of that session
// at once rather than at their next heartbeat's session check.
type streamSlots struct {
	mu     sync.Mutex
	byUser map[int64]int
	ends   map[*streamEnd]struct{} // one per open stream
}

// streamEnd is one open stream's credentials and the way to end it.
type streamEnd struct {
	user   int64
	token  string // the session cookie's or API token's
	cancel context.CancelFunc
}

// endStreams ends the open streams whose credentials match.
func (s *Server) endStreams(match func(user int64, token string) bool) {
	sl := &s.streamSlots
	sl.mu.Lock()
	defer sl.mu.Unlock()
	for e := range sl.ends {
		if match(e.user, e.token) {
			e.cancel()
		}
	}
}

// limitStreams admits a stream request only while its user and the server are under their
// limits (Config.MaxStreams, Config.MaxStreamsPerUser); otherwise it answers 429 with
// Retry-After, which a browser's EventSource takes as final rather than retrying at once.
func (s *Server) limitStreams(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, _ := r.Context().Value(authKey{}).(*auth)
		var user int64
		var token string
		if a != nil {
			user, token = a.user.ID, a.token
		}
		sl := &s.streamSlots
		sl.mu.Lock()
		switch {
		case len(sl.ends) >= s.cfg.MaxStreams:
			sl.mu.Unlock()
			s.log.Warn("stream refused: the server holds its most open streams", "open_streams", s.cfg.MaxStreams, slogRequest(r))
			s.refuseStream(w, "The server holds as many live streams as it allows; close some pages or try again shortly.")
			return
		case sl.byUser[user] >= s.cfg.MaxStreamsPerUser:
			sl.mu.Unlock()
			s.log.Warn("stream refused: the user holds their most open streams", "user_streams", s.cfg.MaxStreamsPerUser, slogRequest(r))
			s.refuseStream(w, "This account has as many live pages open as it may; close some tabs and reload.")
			return
		}
		if sl.byUser == nil {
			sl.byUser, sl.ends = map[int64]int{}, map[*streamEnd]struct{}{}
		}
		ctx, cancel := context.WithCancel(r.Context())
		end := &streamEnd{user: user, token: token, cancel: cancel}
		sl.byUser[user]++
		sl.ends[end] = struct{}{}
		sl.mu.Unlock()
		defer func() {
			cancel()
			sl.mu.Lock()
			delete(sl.ends, end)
			if sl.byUser[user]--; sl.byUser[user] <= 0 {
				delete(sl.byUser, user)
			}
			sl.mu.Unlock()
		}()
		h(w, r.WithContext(ctx))
	}
}

func (s *Server) refuseStream(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "30")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusTooManyRequests)
	w.Write([]byte(msg + "\n"))
}

// streamSendBuffer caps the kernel's send buffer of a connection that carries an event stream.
// A client that stops reading is noticed only when a write blocks, and on loopback the kernel
// would first buffer up to 4 MB for it; with this cap a stalled stream blocks, and is dropped
// after StreamWriteTimeout, a few dozen rows after it stalled. It is ample for a live list.
const streamSendBuffer = 64 << 10

// connKey carries a request's connection in its context (ConnContext).
type connKey struct{}

// ConnContext is for http.Server.ConnContext: it keeps each connection within reach of the
// event streams it carries, which cap its send buffer (capSendBuffer).
func (s *Server) ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// capSendBuffer caps the send buffer of the TCP connection r came on, when ConnContext put it
// within reach (directly or under TLS).
func capSendBuffer(r *http.Request) {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetWriteBuffer(streamSendBuffer)
	}
}
