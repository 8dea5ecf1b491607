package replay

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// publicAddr is a public address the test DNS server hands out. No test
// ever connects to it: newTestClient's dial hook blocks non-loopback dials.
const publicAddr = "93.184.215.14"

// c25Modes are the three policies case C25 is run under.
func c25Modes(tb testing.TB) []struct {
	name   string
	policy Policy
} {
	return []struct {
		name   string
		policy Policy
	}{
		{"default", Policy{}},
		{"public_only", mustParsePolicy(tb, "public_only", nil, nil)},
		{"public_only+allow_10.0.0.0/24", mustParsePolicy(tb, "public_only", []string{"10.0.0.0/24"}, nil)},
	}
}

// TestC25Loopback runs every C25 input that can be pointed at a loopback
// listener through Send, in each mode, and counts the connections the
// listener accepted: 0 when refused, 1 when allowed.
func TestC25Loopback(t *testing.T) {
	resolver := mustStartDNS(t, staticAnswers(map[string][]string{
		"localhost.":   {"127.0.0.1"},
		"rebind.test.": {publicAddr, "127.0.0.1"},
	}))

	type want struct {
		reason string // refusal reason; "" when the request must arrive
		conns  int64
		status int
	}
	allowed := want{conns: 1, status: 200}
	loopback := want{reason: reasonLoopback}
	unspec := want{reason: reasonUnspec}
	scheme := want{reason: reasonScheme}

	tests := []struct {
		name    string
		network string // listener: "tcp4" on 127.0.0.1 or "tcp6" on [::1]
		url     string // %PORT% is replaced by the listener's port
		follow  bool
		modes   [3]want // default, public_only, public_only+allow 10.0.0.0/24
	}{
		{"127.0.0.1", "tcp4", "http://127.0.0.1:%PORT%/", false,
			[3]want{allowed, loopback, loopback}},
		{"[::1]", "tcp6", "http://[::1]:%PORT%/", false,
			[3]want{allowed, loopback, loopback}},
		{"0x7f000001", "tcp4", "http://0x7f000001:%PORT%/", false,
			[3]want{allowed, loopback, loopback}},
		{"2130706433", "tcp4", "http://2130706433:%PORT%/", false,
			[3]want{allowed, loopback, loopback}},
		{"127.1", "tcp4", "http://127.1:%PORT%/", false,
			[3]want{allowed, loopback, loopback}},
		{"[::ffff:127.0.0.1]", "tcp4", "http://[::ffff:127.0.0.1]:%PORT%/", false,
			[3]want{allowed, loopback, loopback}},
		{"localhost", "tcp4", "http://localhost:%PORT%/", false,
			[3]want{allowed, loopback, loopback}},
		{"0.0.0.0", "tcp4", "http://0.0.0.0:%PORT%/", false,
			[3]want{unspec, unspec, unspec}},
		{"file", "tcp4", "file:///etc/passwd", false,
			[3]want{scheme, scheme, scheme}},
		{"gopher", "tcp4", "gopher://x:%PORT%/", false,
			[3]want{scheme, scheme, scheme}},
		// The rebinding host answers a public address and then 127.0.0.1:
		// the public one is never connected to (the test dial hook blocks
		// it), 127.0.0.1 is refused at dial time in public_only.
		{"rebinding host", "tcp4", "http://rebind.test:%PORT%/", false,
			[3]want{allowed, loopback, loopback}},
		// The redirector lives on loopback, so public_only refuses the
		// first hop; in default mode the hop to metadata is refused.
		{"redirect to metadata (followed)", "tcp4", "http://127.0.0.1:%PORT%/redirect", true,
			[3]want{{reason: reasonMetadata, conns: 1, status: 302}, loopback, loopback}},
		// Not followed, the 302 is the answer, reported as refused since it points at metadata.
		{"redirect to metadata (not followed)", "tcp4", "http://127.0.0.1:%PORT%/redirect", false,
			[3]want{{reason: reasonMetadata, conns: 1, status: 302}, loopback, loopback}},
	}

	mux := http.NewServeMux()
	mux.Handle("/", okHandler)
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	})

	for _, mode := range c25Modes(t) {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				w := tt.modes[modeIndex(mode.name)]
				srv := mustStartCounting(t, tt.network, mux)
				c, _ := newTestClient(t, mode.policy, resolver)

				url := strings.ReplaceAll(tt.url, "%PORT%", srv.port())
				a := c.Send(context.Background(), Request{URL: url, Body: []byte("{}"), FollowRedirects: tt.follow})

				if w.reason == "" {
					if a.ErrorKind != KindNone {
						t.Fatalf("ErrorKind = %q (%s), want none", a.ErrorKind, a.Error)
					}
				} else {
					if a.ErrorKind != KindRefusedByPolicy {
						t.Fatalf("ErrorKind = %q (%s), want %q", a.ErrorKind, a.Error, KindRefusedByPolicy)
					}
					if !strings.HasSuffix(a.Error, "target not allowed: "+w.reason) {
						t.Errorf("Error = %q, want suffix %q", a.Error, "target not allowed: "+w.reason)
					}
				}
				if a.StatusCode != w.status {
					t.Errorf("StatusCode = %d, want %d", a.StatusCode, w.status)
				}
				if got := srv.conns.Load(); got != w.conns {
					t.Errorf("listener connections = %d, want %d", got, w.conns)
				}

				// Nothing from a refused target is echoed.
				if w.conns == 0 && len(a.ResponseBody) != 0 {
					t.Errorf("ResponseBody = %q, want empty", a.ResponseBody)
				}
			})
		}
	}
}

// modeIndex maps a c25Modes name to its column in the want arrays.
func modeIndex(name string) int {
	switch name {
	case "default":
		return 0
	case "public_only":
		return 1
	}
	return 2
}

// TestC25Remote covers the C25 inputs that are not on this machine. They are
// never sent traffic: allowed ones are only run through Policy.Check and the
// dial control hook; refused ones also go through Send, which refuses them
// before a socket exists.
func TestC25Remote(t *testing.T) {
	tests := []struct {
		name  string
		url   string
		addr  string // the address the dialer would see
		modes [3]string
	}{
		{"metadata", "http://169.254.169.254/latest/meta-data/", "169.254.169.254:80",
			[3]string{reasonMetadata, reasonMetadata, reasonMetadata}},
		{"aws v6 metadata", "http://[fd00:ec2::254]/", "[fd00:ec2::254]:80",
			[3]string{reasonMetadata, reasonMetadata, reasonMetadata}},
		{"10.0.0.5", "http://10.0.0.5/", "10.0.0.5:80",
			[3]string{"", reasonPrivate, ""}},
		{"10.0.1.5 outside allow-list", "http://10.0.1.5/", "10.0.1.5:80",
			[3]string{"", reasonPrivate, reasonPrivate}},
	}
	for _, mode := range c25Modes(t) {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				want := tt.modes[modeIndex(mode.name)]

				// Policy.Check on the address.
				ap := netip.MustParseAddrPort(tt.addr)
				if got := reasonOf(mode.policy.Check(ap.Addr())); got != want {
					t.Errorf("Check reason = %q, want %q", got, want)
				}

				// The dialer's control hook, called directly.
				g := &guard{policy: mode.policy}
				if got := reasonOf(g.control(context.Background(), "tcp", tt.addr, nil)); got != want {
					t.Errorf("control reason = %q, want %q", got, want)
				}

				if want == "" {
					return
				}

				// Refused: Send stops before any socket (the dial log stays empty).
				c, log := newTestClient(t, mode.policy, nil)
				a := c.Send(context.Background(), Request{URL: tt.url})
				if a.ErrorKind != KindRefusedByPolicy || a.Error != "target not allowed: "+want {
					t.Errorf("Send = %q %q, want %q %q", a.ErrorKind, a.Error,
						KindRefusedByPolicy, "target not allowed: "+want)
				}
				if n := len(log.records()); n != 0 {
					t.Errorf("dial attempts = %d, want 0", n)
				}
			})
		}
	}
}

// TestDialerRefusesLiteralSpellings bypasses Send's early literal check and
// drives the transport directly, proving the dial-time check alone refuses
// every spelling of 127.0.0.1 in public_only mode.
func TestDialerRefusesLiteralSpellings(t *testing.T) {
	srv := mustStartCounting(t, "tcp4", okHandler)
	c, log := newTestClient(t, mustParsePolicy(t, "public_only", nil, nil), nil)
	c.setup()

	hosts := []string{"127.0.0.1", "0x7f000001", "2130706433", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]"}
	for _, h := range hosts {
		t.Run(h, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "http://"+h+":"+srv.port()+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("RoundTrip err = nil, want a refusal")
			}
			if got := reasonOf(err); got != reasonLoopback {
				t.Errorf("reason = %q, want %q", got, reasonLoopback)
			}
		})
	}
	if got := srv.conns.Load(); got != 0 {
		t.Errorf("listener connections = %d, want 0", got)
	}

	// Every spelling reached the control hook as 127.0.0.1.
	for _, r := range log.records() {
		if ap := netip.MustParseAddrPort(r.address); ap.Addr().Unmap() != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("dialled %s, want 127.0.0.1", r.address)
		}
	}
	if got, want := len(log.records()), len(hosts); got != want {
		t.Errorf("dial checks = %d, want %d", got, want)
	}
}

// TestRebinding has the test DNS server answer a public address to the first
// A query and 127.0.0.1 to every later one, the classic rebinding sequence.
// The check runs on each dial, so the second lookup's loopback answer is
// refused in public_only mode and reached in default mode.
func TestRebinding(t *testing.T) {
	for _, mode := range c25Modes(t)[:2] {
		t.Run(mode.name, func(t *testing.T) {
			resolver := mustStartDNS(t, func(name string, qtype uint16, n int) ([]netip.Addr, bool) {
				if name != "rebind.test." {
					return nil, false
				}
				if qtype == typeA && n == 0 {
					return []netip.Addr{netip.MustParseAddr(publicAddr)}, true
				}
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, true
			})
			srv := mustStartCounting(t, "tcp4", okHandler)
			c, log := newTestClient(t, mode.policy, resolver)
			url := "http://rebind.test:" + srv.port() + "/"

			// First lookup: the public address passes the policy (and is
			// then stopped by the test hook, so nothing leaves the machine).
			a := c.Send(context.Background(), Request{URL: url})
			rec, ok := log.find(net.JoinHostPort(publicAddr, srv.port()))
			if !ok || rec.verdict != nil {
				t.Fatalf("first dial = %+v (found %v), want %s allowed by policy", rec, ok, publicAddr)
			}
			if a.ErrorKind != KindRefusedByPolicy {
				t.Fatalf("first ErrorKind = %q (%s), want the test hook's refusal", a.ErrorKind, a.Error)
			}

			// Second lookup: 127.0.0.1, checked again at dial time.
			a = c.Send(context.Background(), Request{URL: url})
			rec, ok = log.find(net.JoinHostPort("127.0.0.1", srv.port()))
			if !ok {
				t.Fatalf("127.0.0.1 never reached the dial check; log %+v", log.records())
			}
			if mode.name == "default" {
				if rec.verdict != nil || a.ErrorKind != KindNone || srv.conns.Load() != 1 {
					t.Errorf("default: verdict %v, ErrorKind %q, conns %d; want allowed, none, 1",
						rec.verdict, a.ErrorKind, srv.conns.Load())
				}
				return
			}
			if got := reasonOf(rec.verdict); got != reasonLoopback {
				t.Errorf("dial-time reason = %q, want %q", got, reasonLoopback)
			}
			if a.ErrorKind != KindRefusedByPolicy || a.Error != "target not allowed: loopback address" {
				t.Errorf("Send = %q %q, want refused loopback", a.ErrorKind, a.Error)
			}
			if got := srv.conns.Load(); got != 0 {
				t.Errorf("listener connections = %d, want 0", got)
			}
		})
	}
}

// TestRedirectHopsChecked follows redirects from an allowed loopback origin
// to refused targets: a literal (refused by the early check), a host name
// (refused by the dial check) and a non-HTTP scheme.
func TestRedirectHopsChecked(t *testing.T) {
	resolver := mustStartDNS(t, staticAnswers(map[string][]string{
		"metadata.test.": {"169.254.169.254"},
		"lo2.test.":      {"127.0.0.2"},
	}))
	// public_only, with only the origin's own address opened.
	policy := mustParsePolicy(t, "public_only", []string{"127.0.0.1"}, nil)

	tests := []struct {
		name     string
		location string
		want     string // the full Attempt.Error
		wantDial string // the address that must have been refused at dial time
	}{
		{"literal metadata", "http://169.254.169.254/latest/meta-data/",
			"redirect to http://169.254.169.254/latest/meta-data/: target not allowed: cloud metadata address", ""},
		{"name resolving to metadata", "http://metadata.test/",
			"redirect to http://metadata.test/: target not allowed: cloud metadata address", "169.254.169.254:80"},
		{"other loopback literal", "http://127.0.0.2:9/",
			"redirect to http://127.0.0.2:9/: target not allowed: loopback address", ""},
		{"name resolving to other loopback", "http://lo2.test:9/",
			"redirect to http://lo2.test:9/: target not allowed: loopback address", "127.0.0.2:9"},
		{"file scheme", "file:///etc/passwd",
			"redirect to file:///etc/passwd: target not allowed: scheme not allowed", ""},
		{"gopher scheme", "gopher://x/",
			"redirect to gopher://x/: target not allowed: scheme not allowed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mustStartCounting(t, "tcp4", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, tt.location, http.StatusFound)
			}))
			c, log := newTestClient(t, policy, resolver)

			a := c.Send(context.Background(), Request{URL: srv.URL, FollowRedirects: true})
			if a.ErrorKind != KindRefusedByPolicy || a.Error != tt.want {
				t.Errorf("Send = %q %q, want %q %q", a.ErrorKind, a.Error, KindRefusedByPolicy, tt.want)
			}
			if a.StatusCode != http.StatusFound || a.ResponseHeader.Get("Location") != tt.location {
				t.Errorf("StatusCode, Location = %d, %q; want 302, %q",
					a.StatusCode, a.ResponseHeader.Get("Location"), tt.location)
			}
			if tt.wantDial != "" {
				rec, ok := log.find(tt.wantDial)
				if !ok || rec.verdict == nil {
					t.Errorf("dial record for %s = %+v (found %v), want a refusal", tt.wantDial, rec, ok)
				}
			}
			if got := srv.conns.Load(); got != 1 {
				t.Errorf("origin connections = %d, want 1", got)
			}

			// Not followed, a redirect to a literal address or scheme the policy refuses is
			// reported as refused too; one to a host name is left as the answer (it is never
			// resolved, since nothing goes there).
			a = c.Send(context.Background(), Request{URL: srv.URL})
			if tt.wantDial == "" && (a.ErrorKind != KindRefusedByPolicy || a.Error != tt.want) {
				t.Errorf("not followed: Send = %q %q, want %q %q", a.ErrorKind, a.Error, KindRefusedByPolicy, tt.want)
			}
			if tt.wantDial != "" && a.ErrorKind != KindNone {
				t.Errorf("not followed, to a host name: Send = %q %q, want the 302 as the answer", a.ErrorKind, a.Error)
			}
			if a.StatusCode != http.StatusFound {
				t.Errorf("not followed: StatusCode = %d, want 302", a.StatusCode)
			}
		})
	}
}
