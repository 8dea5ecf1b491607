package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/signature"
)

// Bounds of one load run: it always stops by itself.
const (
	maxLoadDuration    = 10 * time.Minute
	maxLoadRequests    = 5_000_000
	maxLoadConcurrency = 1024
)

// loadOptions describe one load run.
type loadOptions struct {
	URL         string
	Secret      []byte
	Scheme      signature.Scheme
	Concurrency int
	Duration    time.Duration // stop after this long...
	Requests    int           // ...or after this many requests (0: only the duration counts)
	Size        int           // body size in bytes
}

// ack is one acknowledged delivery: the event id the server answered and the digest of the
// body that was sent, to be found again in the database.
type ack struct {
	eventID int64
	sum     [32]byte
	size    int
}

// loadResult is what a load run measured.
type loadResult struct {
	Sent       int
	Acked      int // 2xx answers
	Errors     int // requests that got no answer at all
	FirstError string
	Codes      map[int]int
	Reasons    map[string]int // the reason codes of answers that were not 2xx
	Elapsed    time.Duration
	Latencies  []time.Duration // of every answered request, sorted
	acks       []ack

	// Filled by verify.
	Checked    bool
	Stored     int // acknowledged deliveries found stored byte-exact
	Missing    int // acknowledged, but no such event
	Differing  int // acknowledged, stored, but not byte-exact
	NoEventID  int // acknowledged without an event id in the answer
	CheckError string
}

// runLoadtest is `plaudhook loadtest`: send signed, unique events to a plaudhook server on this
// machine as fast as the senders can, then report what was acknowledged and, with --db, how much
// of it the server really stored.
func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "http://127.0.0.1:8080/webhook", "webhook URL (loopback only)")
	secret := fs.String("secret", "", "signing secret (default $PLAUD_WEBHOOK_SECRET)")
	secretFile := fs.String("secret-file", "", "read the signing secret from this file")
	conc := fs.Int("concurrency", 16, "parallel senders (1-1024)")
	dur := fs.Duration("duration", 10*time.Second, "how long to send (at most 10m)")
	reqs := fs.Int("requests", 0, "stop after this many requests (0: only --duration)")
	size := fs.String("size", "2KiB", "body size, e.g. 2KiB or 40KiB")
	scheme := fs.String("scheme", "devguide", "signing scheme: devguide or embedded")
	dbPath := fs.String("db", "", "the server's SQLite file: check that every acknowledged event is stored byte-exact")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: plaudhook loadtest [flags]\n\nSends signed, unique events to a plaudhook server on this machine and reports\nacknowledged/s, latency percentiles, status codes and (with --db) how many acknowledged\nevents were really stored.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, err := signingSecret(*secret, *secretFile, os.Getenv)
	if err != nil {
		return err
	}
	*secret = key
	n, err := parseSize(*size)
	if err != nil {
		return fmt.Errorf("--size %q: %w", *size, err)
	}
	o := loadOptions{URL: *target, Secret: []byte(*secret), Scheme: signature.Scheme(*scheme),
		Concurrency: *conc, Duration: *dur, Requests: *reqs, Size: int(n)}
	if err := o.validate(); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "loadtest: %d senders, %d-byte bodies, %s, %s\n", o.Concurrency, o.Size,
		o.Duration, o.URL)
	res, err := runLoad(ctx, o)
	if err != nil {
		return err
	}
	if *dbPath != "" {
		res.verify(ctx, *dbPath)
	}
	res.print(stdout)
	if res.Checked && (res.Stored != res.Acked || res.CheckError != "") {
		return fmt.Errorf("stored %d of %d acknowledged deliveries", res.Stored, res.Acked)
	}
	if res.Acked == 0 && res.Sent+res.Errors > 0 {
		return fmt.Errorf("no delivery was acknowledged (see the reasons above)")
	}
	return nil
}

// validate checks the options are bounded and point at this machine.
func (o *loadOptions) validate() error {
	var problems []string
	if err := checkLoopbackURL(o.URL); err != nil {
		problems = append(problems, err.Error())
	}
	if len(o.Secret) == 0 {
		problems = append(problems, "no secret: pass --secret, --secret-file or set PLAUD_WEBHOOK_SECRET")
	}
	if o.Scheme != signature.SchemeDevguide && o.Scheme != signature.SchemeEmbedded {
		problems = append(problems, fmt.Sprintf("--scheme %q: want devguide or embedded", o.Scheme))
	}
	if o.Concurrency < 1 || o.Concurrency > maxLoadConcurrency {
		problems = append(problems, fmt.Sprintf("--concurrency %d: want 1 to %d", o.Concurrency, maxLoadConcurrency))
	}
	if o.Duration <= 0 || o.Duration > maxLoadDuration {
		problems = append(problems, fmt.Sprintf("--duration %s: want more than 0 and at most %s", o.Duration, maxLoadDuration))
	}
	if o.Requests < 0 || o.Requests > maxLoadRequests {
		problems = append(problems, fmt.Sprintf("--requests %d: want 0 to %d", o.Requests, maxLoadRequests))
	}
	if o.Size < 64 || o.Size > 25<<20 {
		problems = append(problems, fmt.Sprintf("--size %d: want 64 bytes to 25MiB", o.Size))
	}
	if len(problems) > 0 {
		return errors.New("loadtest:\n  - " + strings.Join(problems, "\n  - "))
	}
	return nil
}

// checkLoopbackURL refuses any target that is not an http(s) URL on this machine: a load test
// never sends traffic anywhere else.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want an http:// URL on this machine", raw)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("--url %q: only loopback addresses (127.0.0.0/8, [::1], localhost) may be load-tested", raw)
	}
	return nil
}

// loopbackDial connects only to loopback addresses, whatever a name resolved to.
func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	d.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			return fmt.Errorf("loadtest: refusing to connect to %s: not a loopback address", address)
		}
		return nil
	}
	return d.DialContext(ctx, network, addr)
}

// newLoadClient returns an HTTP client that keeps one connection per sender, to loopback only.
func newLoadClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         loopbackDial,
			MaxIdleConns:        concurrency * 2,
			MaxIdleConnsPerHost: concurrency * 2,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
}

// runLoad sends until the duration or the request count is reached, from o.Concurrency senders,
// each with its own connection.
func runLoad(ctx context.Context, o loadOptions) (*loadResult, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	client := newLoadClient(o.Concurrency)
	defer client.CloseIdleConnections()

	// A run id keeps event ids unique across runs against the same database.
	runID := make([]byte, 6)
	rand.Read(runID)
	run := hex.EncodeToString(runID)

	type worker struct {
		lat   []time.Duration
		acks  []ack
		codes map[int]int
		why   map[string]int
		errs  int
		first string
		sent  int
	}
	workers := make([]*worker, o.Concurrency)
	var issued atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{codes: map[int]int{}, why: map[string]int{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				if o.Requests > 0 && issued.Add(1) > int64(o.Requests) {
					return
				}
				body := loadBody(o.Size, run, i, seq)
				t0 := time.Now()
				status, eventID, reason, err := sendOne(ctx, client, o, body)
				if err != nil {
					if ctx.Err() != nil {
						return // the run ended mid-request: not an error of the server
					}
					w.errs++
					if w.first == "" {
						w.first = err.Error()
					}
					continue
				}
				w.sent++
				w.lat = append(w.lat, time.Since(t0))
				w.codes[status]++
				if status/100 == 2 {
					w.acks = append(w.acks, ack{eventID: eventID, sum: sha256.Sum256(body), size: len(body)})
				} else {
					w.why[reason]++
				}
			}
		}()
	}
	wg.Wait()

	// Merge what every sender saw.
	res := &loadResult{Codes: map[int]int{}, Reasons: map[string]int{}, Elapsed: time.Since(start)}
	for _, w := range workers {
		res.Sent += w.sent
		res.Errors += w.errs
		if res.FirstError == "" {
			res.FirstError = w.first
		}
		res.Latencies = append(res.Latencies, w.lat...)
		res.acks = append(res.acks, w.acks...)
		for c, n := range w.codes {
			res.Codes[c] += n
		}
		for r, n := range w.why {
			res.Reasons[r] += n
		}
	}
	res.Acked = len(res.acks)
	slices.Sort(res.Latencies)
	return res, nil
}

// loadBody builds a unique JSON event of exactly size bytes (when size allows).
func loadBody(size int, run string, worker, seq int) []byte {
	head := fmt.Sprintf(`{"event":"loadtest.ping","id":"lt-%s-%d-%d","data":{"pad":"`, run, worker, seq)
	const tail = `"}}`
	pad := max(0, size-len(head)-len(tail))
	b := make([]byte, 0, len(head)+pad+len(tail))
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte{'x'}, pad)...)
	return append(b, tail...)
}

// sendOne posts one signed body and returns the status, the event id answered and, for an
// answer that is not 2xx, its reason code.
func sendOne(ctx context.Context, c *http.Client, o loadOptions, body []byte) (int, int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", err
	}
	req.Header = signature.Sign(o.Scheme, o.Secret, time.Now(), body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "plaudhook-loadtest/"+version)
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, 0, "", err
	}
	if resp.StatusCode/100 != 2 {
		var r struct{ Reason string }
		if json.Unmarshal(reply, &r) != nil || r.Reason == "" {
			r.Reason = "no reason given"
		}
		return resp.StatusCode, 0, r.Reason, nil
	}
	return resp.StatusCode, replyEventID(reply), "", nil
}

// replyEventID finds "event_id":N in an ingest reply without a full JSON decode, which would cost
// the senders CPU that the server under test needs on a small machine.
func replyEventID(reply []byte) int64 {
	const key = `"event_id":`
	i := bytes.Index(reply, []byte(key))
	if i < 0 {
		return 0
	}
	rest := reply[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	id, _ := strconv.ParseInt(string(rest[:j]), 10, 64)
	return id
}

// verify looks up every acknowledged event in the server's database (opened read-only, so it
// can run beside the server) and counts what is stored byte-exact.
func (r *loadResult) verify(ctx context.Context, path string) {
	r.Checked = true
	d, err := db.OpenReadOnly(ctx, path)
	if err != nil {
		r.CheckError = err.Error()
		r.Missing = r.Acked
		return
	}
	defer d.Close()
	ids := make([]int64, 0, len(r.acks))
	for _, a := range r.acks {
		if a.eventID != 0 {
			ids = append(ids, a.eventID)
		}
	}
	stored, err := d.FindStoredBodies(ctx, ids)
	if err != nil {
		r.CheckError = err.Error()
		r.Missing = r.Acked
		return
	}
	for _, a := range r.acks {
		s, ok := stored[a.eventID]
		switch {
		case a.eventID == 0:
			r.NoEventID++
		case !ok:
			r.Missing++
		case s.SHA256 != a.sum || s.Size != a.size:
			r.Differing++
		default:
			r.Stored++
		}
	}
}

// percentile returns the p-th percentile (0-100) of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// AckedPerSecond is acknowledged deliveries per second of the run.
func (r *loadResult) AckedPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acked) / r.Elapsed.Seconds()
}

// codes renders the status code counts, e.g. "200×1234 503×2".
func (r *loadResult) codes() string {
	keys := make([]int, 0, len(r.Codes))
	for c := range r.Codes {
		keys = append(keys, c)
	}
	slices.Sort(keys)
	var parts []string
	for _, c := range keys {
		parts = append(parts, fmt.Sprintf("%d×%d", c, r.Codes[c]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// print writes the report of a run.
func (r *loadResult) print(w io.Writer) {
	fmt.Fprintf(w, "sent %d, acknowledged %d (%.1f/s over %s), no answer %d\n", r.Sent, r.Acked,
		r.AckedPerSecond(), r.Elapsed.Round(time.Millisecond), r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
	fmt.Fprintf(w, "status codes: %s\n", r.codes())
	if len(r.Reasons) > 0 {
		var parts []string
		for _, reason := range slices.Sorted(maps.Keys(r.Reasons)) {
			parts = append(parts, fmt.Sprintf("%s×%d", reason, r.Reasons[reason]))
		}
		fmt.Fprintf(w, "refused: %s\n", strings.Join(parts, " "))
	}
	fmt.Fprintf(w, "latency: p50 %s  p90 %s  p99 %s  max %s\n", fmtDur(percentile(r.Latencies, 50)),
		fmtDur(percentile(r.Latencies, 90)), fmtDur(percentile(r.Latencies, 99)),
		fmtDur(percentile(r.Latencies, 100)))
	if !r.Checked {
		fmt.Fprintln(w, "stored: not checked (pass --db with the server's database file)")
		return
	}
	if r.CheckError != "" {
		fmt.Fprintf(w, "stored: check failed: %s\n", r.CheckError)
		return
	}
	fmt.Fprintf(w, "stored: %d of %d acknowledged, byte-exact (missing %d, differing %d, no event id %d)\n",
		r.Stored, r.Acked, r.Missing, r.Differing, r.NoEventID)
}

// fmtDur renders a latency with two decimals of milliseconds.
func fmtDur(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }
