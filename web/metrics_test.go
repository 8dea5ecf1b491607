package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/signature"
)

// TestMetrics checks /metrics access (loopback without a proxy, or the token) and that the
// series move when deliveries arrive.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.post("/webhook", signed(signature.SchemeDevguide, b1, testNow), b1)
	e.post("/webhook", signed(signature.SchemeDevguide, b1, testNow), b1)
	e.post("/webhook", http.Header{}, []byte("unsigned"))

	// The test server listens on loopback: a direct scrape works.
	resp, body := get(t, http.DefaultClient, e.ts.URL+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	for _, want := range []string{
		`plaudhook_deliveries_total{endpoint="default",verdict="verified"} 1`,
		`plaudhook_deliveries_total{endpoint="default",verdict="duplicate"} 1`,
		`plaudhook_deliveries_total{endpoint="default",verdict="rejected"} 1`,
		`plaudhook_ack_seconds_count 2`,
		`plaudhook_commit_batch_size_count 3`,
		`plaudhook_open_streams 0`,
		`plaudhook_replay_attempts_total`,
		`plaudhook_database_bytes`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, `plaudhook_database_bytes 0`) {
		t.Error("database size reported as 0")
	}

	// A loopback connection naming another host is a page that rebound its name to this
	// machine (DNS rebinding): refused. Addresses, localhost and the machine's name are not.
	hostname, _ := os.Hostname()
	for host, want := range map[string]int{"attacker.example:80": 403, "evil.example": 403,
		"localhost:8080": 200, "app.localhost": 200, "[::1]:8080": 200, "127.0.0.1": 200, hostname: 200} {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/metrics", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("scrape with Host %q = %d, want %d", host, resp.StatusCode, want)
		}
	}

	// Through a proxy (forwarding headers) it is refused, even from loopback.
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/metrics", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("proxied scrape = %v %v, want 403", resp, err)
	}
}

// TestMetricsToken checks that with a token configured, only the token opens /metrics.
func TestMetricsToken(t *testing.T) {
	e := newEnv(t, func(c *webConfig) { c.MetricsToken = "s3cret-metrics" })
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"NoToken", "", http.StatusForbidden},
		{"WrongToken", "Bearer nope", http.StatusForbidden},
		{"Token", "Bearer s3cret-metrics", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/metrics", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// TestReady checks /readyz reports whether the database takes writes.
func TestReady(t *testing.T) {
	e := newEnv(t)
	if resp, _ := get(t, http.DefaultClient, e.ts.URL+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz = %d, want 200", resp.StatusCode)
	}
	if err := e.db.SetQueryOnly(true); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, http.DefaultClient, e.ts.URL+"/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("readyz with a read-only database = %d %q, want 503 with Retry-After", resp.StatusCode, body)
	}
	e.db.SetQueryOnly(false)
	if resp, _ := get(t, http.DefaultClient, e.ts.URL+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz = %d, want 200", resp.StatusCode)
	}
}

// TestTrustedProxies is the X-Forwarded-For table: the forwarded client address is believed
// only from configured proxies, and only as far as the chain of trusted hops goes.
func TestTrustedProxies(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		trusted    []netip.Prefix
		want       string
	}{
		{"NoProxiesConfigured", "127.0.0.1:5000", []string{"198.51.100.7"}, nil, "127.0.0.1"},
		{"UntrustedPeer", "203.0.113.5:5000", []string{"198.51.100.7"}, proxies, "203.0.113.5"},
		{"TrustedPeer", "127.0.0.1:5000", []string{"198.51.100.7"}, proxies, "198.51.100.7"},
		{"SpoofedLeftmost", "127.0.0.1:5000", []string{"1.2.3.4, 198.51.100.7"}, proxies, "198.51.100.7"},
		{"TrustedChain", "127.0.0.1:5000", []string{"198.51.100.7, 10.1.2.3"}, proxies, "198.51.100.7"},
		{"SeveralHeaders", "127.0.0.1:5000", []string{"198.51.100.7", "10.1.2.3"}, proxies, "198.51.100.7"},
		{"AllTrusted", "127.0.0.1:5000", []string{"10.9.9.9, 10.1.2.3"}, proxies, "10.9.9.9"},
		{"Garbage", "127.0.0.1:5000", []string{"not-an-ip, 10.1.2.3"}, proxies, "10.1.2.3"},
		{"NoHeader", "127.0.0.1:5000", nil, proxies, "127.0.0.1"},
		{"IPv6Client", "127.0.0.1:5000", []string{"2001:db8::7"}, proxies, "2001:db8::7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *webConfig) { c.TrustedProxies = tc.trusted })
			req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(string(b1)))
			req.RemoteAddr = tc.peer
			req.Header = signed(signature.SchemeDevguide, b1, testNow)
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			w := httptest.NewRecorder()
			e.srv.ServeHTTP(w, req)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body.String())
			}
			ds, err := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{Limit: 1})
			if err != nil || len(ds) == 0 {
				t.Fatalf("deliveries: %v", err)
			}
			if got := ds[0].RemoteAddr; got != tc.want {
				t.Errorf("stored client address = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDiskWarning shows the low-disk warning on the event list when free space is under the
// threshold, and not otherwise.
func TestDiskWarning(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold int64
		want      bool
	}{
		{"Low", 1 << 62, true}, // more than any disk has free
		{"Plenty", 1, false},
		{"Off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *webConfig) { c.DiskWarnBytes = tc.threshold })
			_, body := get(t, e.client("viewer"), e.ts.URL+"/")
			if got := strings.Contains(body, `data-testid="disk-warning"`); got != tc.want {
				t.Errorf("warning shown = %v, want %v", got, tc.want)
			}
		})
	}
}
