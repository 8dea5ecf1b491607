package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
)

// TestLoadtestRefusesRemote checks the load tool never targets anything off this machine.
func TestLoadtestRefusesRemote(t *testing.T) {
	for _, u := range []string{"http://10.0.0.5/webhook", "http://example.com/webhook",
		"https://93.184.216.34/webhook", "http://[2001:db8::1]/webhook", "ftp://127.0.0.1/x",
		"http://0x7f000001.example/webhook"} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"loadtest", "--url", u, "--secret", "s",
			"--duration", "1s"}, nil, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "--url") {
			t.Errorf("loadtest --url %s: err = %v, want a refusal naming --url", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1/webhook", "http://localhost:1/webhook",
		"http://[::1]:1/webhook", "http://127.8.9.10:1/webhook"} {
		if err := checkLoopbackURL(u); err != nil {
			t.Errorf("checkLoopbackURL(%s) = %v, want accepted", u, err)
		}
	}
}

// TestLoadtestStored runs the load tool against the real server and checks its report: what
// it says was acknowledged is what the database holds.
func TestLoadtestStored(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"loadtest", "--url", m.URL() + "/webhook",
		"--secret", fixtureSecret, "--concurrency", "8", "--duration", "1s", "--requests", "400",
		"--size", "2KiB", "--db", m.Config.DB}, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("loadtest: %v\n%s%s", err, out.String(), errOut.String())
	}
	report := out.String()
	match := regexp.MustCompile(`stored: (\d+) of (\d+) acknowledged`).FindStringSubmatch(report)
	if match == nil {
		t.Fatalf("report lacks the stored line:\n%s", report)
	}
	stored, _ := strconv.Atoi(match[1])
	ack, _ := strconv.Atoi(match[2])
	n, err := m.DB.CountRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Requests cut off when the run ended may be stored without having been counted: at most
	// one per sender.
	if stored != ack || ack == 0 || n.Events < int64(ack) || n.Events > int64(ack)+8 || ack > 400 {
		t.Fatalf("stored %d, acknowledged %d, events in the database %d (at most 400 sent):\n%s",
			stored, ack, n.Events, report)
	}
	for _, want := range []string{"status codes: 200×", "latency: p50", "p99"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "refused:") {
		t.Errorf("a run with every delivery acknowledged reports refusals:\n%s", report)
	}

	// With the wrong secret nothing is acknowledged: the report says why, and the run fails.
	out.Reset()
	err = run(context.Background(), []string{"loadtest", "--url", m.URL() + "/webhook",
		"--secret", "not-the-secret", "--concurrency", "2", "--requests", "6"}, nil, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "refused: signature_mismatch×6") {
		t.Errorf("loadtest with a wrong secret: err %v, report:\n%s", err, out.String())
	}
}

// TestBackupWhileIngesting takes a backup while senders keep the writer busy: the copy is a
// sound database whose events all have their bodies, and it opens as a plaudhook database.
func TestBackupWhileIngesting(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runLoad(ctx, loadOptions{URL: m.URL() + "/webhook", Secret: []byte(fixtureSecret),
			Scheme: "devguide", Concurrency: 4, Duration: 20 * time.Second, Size: 4096})
	}()
	waitEvents(t, m, 50)

	dst := filepath.Join(t.TempDir(), "copy", "backup.db")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"backup", "--db", m.Config.DB, dst}, nil, &out, &errOut)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "integrity ok") || !strings.Contains(out.String(), "master key") {
		t.Errorf("backup output = %q, want integrity ok and the master-key reminder", out.String())
	}
	if st, err := os.Stat(dst); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode = %v, want 0600", st.Mode().Perm())
	}

	// The copy: sound, every event's body present, and it serves as a database (restore).
	b, err := db.Open(context.Background(), dst, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if v, err := b.IntegrityCheck(context.Background()); v != "ok" {
		t.Fatalf("backup integrity = %q (%v)", v, err)
	}
	events, _, err := b.FindEvents(context.Background(), db.EventFilter{Limit: 500})
	if err != nil || len(events) < 50 {
		t.Fatalf("backup holds %d events (%v), want at least 50", len(events), err)
	}
	ids := make([]int64, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	bodies, err := b.FindStoredBodies(context.Background(), ids)
	if err != nil || len(bodies) != len(ids) {
		t.Fatalf("bodies in backup = %d of %d (%v)", len(bodies), len(ids), err)
	}

	// A second backup to the same file is refused rather than overwriting it.
	if err := run(context.Background(), []string{"backup", "--db", m.Config.DB, dst}, nil, &out, &errOut); err == nil {
		t.Error("backup over an existing file succeeded")
	}
}

// waitEvents waits until the server stored at least n events.
func waitEvents(t *testing.T, m *Main, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := m.DB.CountRecords(context.Background())
		if err == nil && c.Events >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events = %d, want %d", c.Events, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTLS serves HTTPS from --tls-cert/--tls-key: webhooks verify over TLS and the session
// cookie is Secure.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	m := mustRunMain(t, time.Time{}, func(c *Config) {
		c.Ops.TLSCert, c.Ops.TLSKey = certFile, keyFile
	})
	if !strings.HasPrefix(m.URL(), "https://") {
		t.Fatalf("URL = %s, want https", m.URL())
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(m.URL()+"/login", url.Values{"username": {"admin"}, "password": {adminPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil {
		t.Fatal("answer not over TLS")
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "plaudhook_session" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.Secure || !cookie.HttpOnly {
		t.Fatalf("session cookie = %+v, want Secure and HttpOnly", cookie)
	}

	// Plain HTTP on the TLS port gets nothing useful.
	plain, err := http.Get("http://" + strings.TrimPrefix(m.URL(), "https://") + "/healthz")
	if err == nil && plain.StatusCode == 200 {
		t.Error("plain HTTP answered 200 on the TLS listener")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns a pool trusting it.
func selfSigned(t *testing.T) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plaudhook test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestWebhookListener checks --webhook-addr serves the webhook and health, and nothing of the
// dashboard.
func TestWebhookListener(t *testing.T) {
	m := mustRunMain(t, time.Time{}, func(c *Config) { c.Ops.WebhookAddr = "127.0.0.1:0" })
	base := m.WebhookURL()
	if base == "" || base == m.URL() {
		t.Fatalf("webhook URL = %q beside %q", base, m.URL())
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"send", "--url", base + "/webhook", "--secret",
		fixtureSecret, "--sample", "device.synced"}, nil, &out, &errOut); err != nil {
		t.Fatalf("send to webhook listener: %v %s", err, out.String())
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/": 404,
		"/login": 404, "/events/stream": 404, "/metrics": 404, "/deliveries": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s on the webhook listener = %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestShutdownEndsStreams checks a graceful shutdown with an open event stream ends the stream
// and returns without hitting its deadline, and that every delivery acknowledged while shutting
// down is stored.
func TestShutdownEndsStreams(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(m.URL()+"/login", url.Values{"username": {"admin"}, "password": {adminPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stream, err := c.Get(m.URL() + "/events/stream")
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("stream: %v %v", stream, err)
	}
	ended := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
		}
		close(ended)
	}()
	waitStreams(t, m, 1)

	// Deliveries in flight while shutting down.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loaded := make(chan *loadResult, 1)
	go func() {
		r, _ := runLoad(ctx, loadOptions{URL: m.URL() + "/webhook", Secret: []byte(fixtureSecret),
			Scheme: "devguide", Concurrency: 4, Duration: 5 * time.Second, Size: 1024})
		loaded <- r
	}()
	waitEvents(t, m, 20)

	dbPath := m.Config.DB
	if err := m.Close(); err != nil {
		t.Fatalf("Close = %v, want a clean shutdown (streams must not hold it up)", err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("event stream still open after shutdown")
	}
	cancel()
	r := <-loaded
	r.verify(context.Background(), dbPath)
	if r.Acked == 0 || r.Stored != r.Acked {
		t.Fatalf("acknowledged %d, stored %d: every acknowledged delivery must survive shutdown", r.Acked, r.Stored)
	}
}

// TestOpsConfig checks the operations flags: defaults, env fallbacks and one message listing
// every problem.
func TestOpsConfig(t *testing.T) {
	env := map[string]string{"PLAUDHOOK_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16",
		"PLAUDHOOK_METRICS_TOKEN": " tok \n", "PLAUDHOOK_RETAIN_DAYS": "30"}
	c, err := parseServeFlags([]string{"--webhook-addr", "127.0.0.1:9443"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Ops.TrustedProxies) != 2 || c.Ops.TrustedProxies[0].String() != "10.0.0.1/32" ||
		c.Ops.MetricsToken != "tok" || c.Ops.RetainDays != 30 || c.Ops.WebhookAddr != "127.0.0.1:9443" {
		t.Errorf("ops = %+v", c.Ops)
	}
	if c.Ops.RejectedMax != 10000 || c.Ops.RejectedMaxBytes != 256<<20 || c.Ops.RetainPerEndpoint != 0 || c.Ops.DiskWarn != 1<<30 {
		t.Errorf("defaults = %+v", c.Ops)
	}
	_, err = parseServeFlags([]string{"--tls-cert", "x.pem", "--trusted-proxies", "nope",
		"--retain-days", "-1", "--webhook-addr", "bad", "--rejected-max-bytes", "1KiB",
		"--max-streams", "0", "--max-streams-per-user", "x"},
		func(string) string { return "" }, &bytes.Buffer{})
	if err == nil {
		t.Fatal("bad operations flags accepted")
	}
	for _, want := range []string{"--tls-cert", "--trusted-proxies", "--retain-days", "--webhook-addr", "--rejected-max-bytes",
		`--max-streams "0": want a whole number, at least 1`, `--max-streams-per-user "x"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}

// TestBaseURLSecureCookie: behind a TLS-terminating proxy plaudhook itself speaks plain HTTP,
// and an https:// --base-url is what marks the session cookie Secure.
func TestBaseURLSecureCookie(t *testing.T) {
	for _, tt := range []struct {
		base   string
		secure bool
	}{{"https://plaudhook.office.example", true}, {"http://plaudhook.office.example", false}, {"", false}} {
		m := mustRunMain(t, time.Time{}, func(c *Config) { c.BaseURL = tt.base })
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.PostForm(m.URL()+"/login", url.Values{"username": {"admin"}, "password": {adminPassword}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var cookie *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == "plaudhook_session" {
				cookie = ck
			}
		}
		if cookie == nil || cookie.Secure != tt.secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
			t.Errorf("base URL %q: session cookie = %+v, want Secure=%v, HttpOnly, SameSite=Lax", tt.base, cookie, tt.secure)
		}
	}
}
