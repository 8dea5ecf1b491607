package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// DNS record types the test server answers.
const (
	typeA    = 1
	typeAAAA = 28
)

// answerFunc returns the addresses for name (lowercase, with the trailing
// dot) and query type; n counts earlier queries for the same name and type.
// found false makes the server answer NXDOMAIN.
type answerFunc func(name string, qtype uint16, n int) (addrs []netip.Addr, found bool)

// testDNS is a tiny UDP DNS server on 127.0.0.1 for the Go resolver.
type testDNS struct {
	pc     net.PacketConn
	answer answerFunc

	mu    sync.Mutex // mu guards count
	count map[string]int
}

// mustStartDNS starts a DNS server and returns a resolver that only ever
// talks to it, so tests never send DNS queries off the machine.
func mustStartDNS(tb testing.TB, answer answerFunc) *net.Resolver {
	tb.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen dns: %v", err)
	}
	s := &testDNS{pc: pc, answer: answer, count: make(map[string]int)}
	go s.serve()
	tb.Cleanup(func() { pc.Close() })

	addr := pc.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp4", addr)
		},
	}
}

// serve answers queries until the socket is closed.
func (s *testDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		resp, ok := s.respond(buf[:n])
		if ok {
			s.pc.WriteTo(resp, from)
		}
	}
}

// respond builds the answer to one query message.
func (s *testDNS) respond(q []byte) ([]byte, bool) {
	if len(q) < 12 {
		return nil, false
	}

	// Read the single question: labels, type, class.
	off := 12
	var labels []string
	for {
		if off >= len(q) {
			return nil, false
		}
		l := int(q[off])
		off++
		if l == 0 {
			break
		}
		if l&0xc0 != 0 || off+l > len(q) {
			return nil, false
		}
		labels = append(labels, strings.ToLower(string(q[off:off+l])))
		off += l
	}
	if off+4 > len(q) {
		return nil, false
	}
	qtype := binary.BigEndian.Uint16(q[off:])
	qend := off + 4
	name := strings.Join(labels, ".") + "."

	// Count queries per name and type, for answers that change over time.
	s.mu.Lock()
	key := name + "/" + strconv.Itoa(int(qtype))
	n := s.count[key]
	s.count[key]++
	s.mu.Unlock()

	addrs, found := s.answer(name, qtype, n)
	var matching []netip.Addr
	for _, a := range addrs {
		if (qtype == typeA && a.Is4()) || (qtype == typeAAAA && a.Is6()) {
			matching = append(matching, a)
		}
	}

	// Header: same id, response + authoritative + recursion available,
	// RD copied, NXDOMAIN when the name is unknown.
	flags := uint16(0x8000|0x0400|0x0080) | binary.BigEndian.Uint16(q[2:])&0x0100
	if !found {
		flags |= 3
	}
	resp := make([]byte, 12, 512)
	copy(resp[0:2], q[0:2])
	binary.BigEndian.PutUint16(resp[2:], flags)
	binary.BigEndian.PutUint16(resp[4:], 1)
	binary.BigEndian.PutUint16(resp[6:], uint16(len(matching)))
	resp = append(resp, q[12:qend]...)

	// Answers point back at the question name (offset 12).
	for _, a := range matching {
		resp = binary.BigEndian.AppendUint16(resp, 0xc00c)
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = binary.BigEndian.AppendUint16(resp, 1) // class IN
		resp = binary.BigEndian.AppendUint32(resp, 0) // TTL
		b := a.AsSlice()
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(b)))
		resp = append(resp, b...)
	}
	return resp, true
}

// staticAnswers answers from a fixed name → addresses table.
func staticAnswers(table map[string][]string) answerFunc {
	return func(name string, _ uint16, _ int) ([]netip.Addr, bool) {
		list, ok := table[name]
		var out []netip.Addr
		for _, s := range list {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, ok
	}
}

// countingServer is an httptest server that counts accepted connections.
type countingServer struct {
	*httptest.Server
	conns atomic.Int64
}

// mustStartCounting starts handler on 127.0.0.1 (network "tcp4") or on
// [::1] ("tcp6"); it skips the test when IPv6 loopback is unavailable.
func mustStartCounting(tb testing.TB, network string, h http.Handler) *countingServer {
	tb.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		if network == "tcp6" {
			tb.Skipf("no IPv6 loopback: %v", err)
		}
		tb.Fatalf("listen: %v", err)
	}

	cs := &countingServer{Server: httptest.NewUnstartedServer(h)}
	cs.Listener.Close()
	cs.Listener = ln
	cs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			cs.conns.Add(1)
		}
	}
	cs.Start()
	tb.Cleanup(cs.Close)
	return cs
}

// port returns the server's port as a string.
func (cs *countingServer) port() string {
	_, p, _ := net.SplitHostPort(cs.Listener.Addr().String())
	return p
}

// okHandler answers 200 "ok".
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Write([]byte("ok"))
})

// errTestEgress is what the test dial hook returns for a non-loopback
// address the policy allowed. It is a RefusedError so Attempt reports it
// as a refusal whichever address the dialer tried first.
var errTestEgress = &RefusedError{Reason: "test: non-loopback address blocked"}

// dialRecord is one address the guarded dialer was asked to connect to.
type dialRecord struct {
	address string
	verdict error // the policy's verdict, before the test hook
}

// dialLog records dials; it is safe for concurrent use.
type dialLog struct {
	mu   sync.Mutex // mu guards recs
	recs []dialRecord
}

// records returns a copy of the log.
func (l *dialLog) records() []dialRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]dialRecord(nil), l.recs...)
}

// find returns the record for address, if any.
func (l *dialLog) find(address string) (dialRecord, bool) {
	for _, r := range l.records() {
		if r.address == address {
			return r, true
		}
	}
	return dialRecord{}, false
}

// newTestClient returns a Client whose dialer records every address and
// never connects anywhere but loopback, whatever the policy says.
func newTestClient(tb testing.TB, p Policy, r *net.Resolver) (*Client, *dialLog) {
	tb.Helper()
	log := &dialLog{}
	c := &Client{Policy: p, Resolver: r, UserAgent: "plaudhook-test/1"}
	c.dialHook = func(address string, verdict error) error {
		log.mu.Lock()
		log.recs = append(log.recs, dialRecord{address: address, verdict: verdict})
		log.mu.Unlock()
		if verdict != nil {
			return verdict
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			return errTestEgress
		}
		return nil
	}
	tb.Cleanup(c.CloseIdleConnections)
	return c, log
}

// reasonOf returns the RefusedError reason in err, or "" when err is nil,
// or "not refused: <err>" for any other error.
func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Reason
	}
	return "not refused: " + err.Error()
}
