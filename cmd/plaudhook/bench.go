package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/plaudhook/plaudhook/web/signature"
)

// The goals the bench reports against (issue 8), all with synchronous=FULL and 2 KB bodies.
const (
	goalRatio64   = 0.50                  // acknowledged/s at 64 senders vs the bare handler
	goalP99       = 25 * time.Millisecond // p99 at 64 senders
	goalRate1     = 1500.0                // acknowledged/s at 1 sender
	goalPeakRSS   = 150 << 20             // server's peak resident memory
	goalStreamsOK = 0.90                  // with 500 open streams: at least 90% of the rate without
)

const benchSecret = "plaudhook_bench_secret_not_for_production"
const benchPassword = "bench-admin-password"

// benchPoint is one measured configuration.
type benchPoint struct {
	size, senders int
	streams       int
	bare          *loadResult
	hook          *loadResult
	peakRSS       int64 // bytes, of the plaudhook server process
	streamsOpen   int   // streams still open at the end (streams point only)
}

// runBench is `plaudhook bench`: for every body size and sender count, a fresh plaudhook server
// (a child process with its own database, synchronous=FULL) and a bare net/http handler (a child
// process that only reads the body) are each loaded for the same time by the same load
// generator; the table shows both rates and their ratio, latency, whether every acknowledged
// event was stored, and the server's peak memory.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("duration", 3*time.Second, "load time per point (at most 1m)")
	concs := fs.String("concurrency", "1,16,64", "comma-separated sender counts")
	sizes := fs.String("sizes", "2KiB,40KiB", "comma-separated body sizes")
	streams := fs.Int("streams", 500, "open event streams for the streams point (0: skip it)")
	syncMode := fs.String("synchronous", "FULL", "SQLite synchronous mode of the server")
	bare := fs.String("serve-bare", "", "internal: serve the bare handler on this address")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: plaudhook bench [flags]\n\nLoads a fresh server (synchronous=FULL, its own database) and a bare net/http handler\nwith the same load generator, point by point, and prints both rates, their ratio,\nlatency, stored vs acknowledged and peak memory against the project's goals.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bare != "" {
		return serveBare(ctx, *bare, stdout)
	}
	if *dur <= 0 || *dur > time.Minute {
		return fmt.Errorf("--duration %s: want more than 0 and at most 1m", *dur)
	}
	var senders, bodySizes []int
	for _, f := range strings.Split(*concs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxLoadConcurrency {
			return fmt.Errorf("--concurrency %q: want numbers from 1 to %d", *concs, maxLoadConcurrency)
		}
		senders = append(senders, n)
	}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := parseSize(strings.TrimSpace(f))
		if err != nil || n < 64 || n > 25<<20 {
			return fmt.Errorf("--sizes %q: want sizes from 64B to 25MiB", *sizes)
		}
		bodySizes = append(bodySizes, int(n))
	}

	// The bare handler runs for the whole bench, in its own process like the server.
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: find own binary: %w", err)
	}
	tmp, err := os.MkdirTemp("", "plaudhook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bareProc, err := startChild(ctx, exe, []string{"bench", "--serve-bare", "127.0.0.1:0"}, nil,
		filepath.Join(tmp, "bare.log"))
	if err != nil {
		return fmt.Errorf("bench: start bare handler: %w", err)
	}
	defer bareProc.stop()

	fmt.Fprintf(stdout, "plaudhook bench: %s per point, synchronous=%s, %d CPUs, loopback, load generator in this process\n\n",
		*dur, *syncMode, runtime.NumCPU())
	var points []*benchPoint
	for _, size := range bodySizes {
		for _, n := range senders {
			p := &benchPoint{size: size, senders: n}
			if err := p.measure(ctx, exe, tmp, bareProc.addr, *syncMode, *dur, 0); err != nil {
				return err
			}
			points = append(points, p)
			fmt.Fprintf(stderr, "  measured %s × %d senders\n", sizeLabel(size), n)
		}
	}

	// One point with many open streams, against the same point without them.
	var streamsPoint *benchPoint
	if *streams > 0 {
		streamsPoint = &benchPoint{size: 2048, senders: 16, streams: *streams}
		if err := streamsPoint.measure(ctx, exe, tmp, bareProc.addr, *syncMode, *dur, *streams); err != nil {
			return err
		}
		points = append(points, streamsPoint)
	}

	printBench(stdout, points, streamsPoint)
	return nil
}

// measure loads the bare handler and then a fresh plaudhook server with the same options.
func (p *benchPoint) measure(ctx context.Context, exe, tmp, bareAddr, sync string, dur time.Duration, streams int) error {
	o := loadOptions{Secret: []byte(benchSecret), Scheme: signature.SchemeDevguide,
		Concurrency: p.senders, Duration: dur, Size: p.size}

	// The bare handler first, so both see the machine in the same state.
	o.URL = "http://" + bareAddr + "/webhook"
	var err error
	if p.bare, err = runLoad(ctx, o); err != nil {
		return err
	}

	// A fresh server with its own database file.
	name := fmt.Sprintf("s%d-c%d-st%d", p.size, p.senders, streams)
	dbPath := filepath.Join(tmp, name+".db")
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	// The streams point opens all its streams as the one bench user.
	srv, err := startChild(ctx, exe, []string{"serve", "--addr", addr, "--db", dbPath,
		"--synchronous", sync, "--body-limit", "25MiB",
		"--max-streams", strconv.Itoa(streams + 100), "--max-streams-per-user", strconv.Itoa(streams + 100)},
		[]string{"PLAUD_WEBHOOK_SECRET=" + benchSecret, "PLAUDHOOK_ADMIN_PASSWORD=" + benchPassword},
		filepath.Join(tmp, name+".log"))
	if err != nil {
		return fmt.Errorf("bench: start server: %w", err)
	}
	defer srv.stop()
	srv.addr = addr
	if err := waitHealthy(ctx, "http://"+addr); err != nil {
		return fmt.Errorf("bench: server did not start (log %s): %w", srv.logPath, err)
	}

	// Open streams that read everything, as browsers would.
	var open atomic.Int64
	stopStreams := func() {}
	if streams > 0 {
		if stopStreams, err = openStreams(ctx, "http://"+addr, streams, &open); err != nil {
			return fmt.Errorf("bench: open streams: %w", err)
		}
	}

	o.URL = "http://" + addr + "/webhook"
	if p.hook, err = runLoad(ctx, o); err != nil {
		stopStreams()
		return err
	}
	p.streamsOpen = int(open.Load())
	stopStreams()
	p.hook.verify(ctx, dbPath)
	p.peakRSS = peakRSS(srv.cmd.Process.Pid)
	return nil
}

// printBench writes the table and the verdict on every goal.
func printBench(w io.Writer, points []*benchPoint, streams *benchPoint) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "body\tsenders\tstreams\tbare/s\tplaudhook/s\tratio\tp50\tp90\tp99\tstored/acked\tcodes\tpeak RSS\t")
	for _, p := range points {
		h := p.hook
		stored := "unchecked"
		if h.Checked {
			stored = fmt.Sprintf("%d/%d", h.Stored, h.Acked)
		}
		st := "-"
		if p.streams > 0 {
			st = fmt.Sprintf("%d/%d", p.streamsOpen, p.streams)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.0f\t%.0f%%\t%s\t%s\t%s\t%s\t%s\t%.1f MB\t\n",
			sizeLabel(p.size), p.senders, st, p.bare.AckedPerSecond(), h.AckedPerSecond(),
			100*ratio(h.AckedPerSecond(), p.bare.AckedPerSecond()),
			fmtDur(percentile(h.Latencies, 50)), fmtDur(percentile(h.Latencies, 90)),
			fmtDur(percentile(h.Latencies, 99)), stored, h.codes(), float64(p.peakRSS)/(1<<20))
	}
	tw.Flush()

	// Goals.
	fmt.Fprintln(w, "\ngoals (synchronous=FULL, 2 KB bodies):")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	for _, p := range points {
		if p.size != 2048 || p.streams > 0 {
			continue
		}
		switch p.senders {
		case 64:
			r := ratio(p.hook.AckedPerSecond(), p.bare.AckedPerSecond())
			fmt.Fprintf(w, "  64 senders: %.0f/s = %.0f%% of bare (goal ≥ %.0f%%): %s\n",
				p.hook.AckedPerSecond(), 100*r, 100*goalRatio64, verdict(r >= goalRatio64))
			p99 := percentile(p.hook.Latencies, 99)
			fmt.Fprintf(w, "  64 senders: p99 %s (goal < %s): %s\n", fmtDur(p99), fmtDur(goalP99),
				verdict(p99 < goalP99))
		case 1:
			fmt.Fprintf(w, "  1 sender: %.0f/s (goal ≥ %.0f/s): %s\n", p.hook.AckedPerSecond(),
				goalRate1, verdict(p.hook.AckedPerSecond() >= goalRate1))
		}
	}
	allStored, maxRSS := true, int64(0)
	for _, p := range points {
		if !p.hook.Checked || p.hook.Stored != p.hook.Acked || p.hook.CheckError != "" {
			allStored = false
		}
		maxRSS = max(maxRSS, p.peakRSS)
	}
	fmt.Fprintf(w, "  stored == acknowledged in every run: %s\n", verdict(allStored))
	fmt.Fprintf(w, "  peak server memory %.1f MB (goal < %d MB): %s\n", float64(maxRSS)/(1<<20),
		goalPeakRSS>>20, verdict(maxRSS > 0 && maxRSS < goalPeakRSS))
	if streams != nil {
		var base *benchPoint
		for _, p := range points {
			if p.size == streams.size && p.senders == streams.senders && p.streams == 0 {
				base = p
			}
		}
		if base != nil {
			r := ratio(streams.hook.AckedPerSecond(), base.hook.AckedPerSecond())
			fmt.Fprintf(w, "  %d open streams, %d senders: %.0f/s = %.0f%% of the rate without streams (goal ≥ %.0f%%): %s\n",
				streams.streams, streams.senders, streams.hook.AckedPerSecond(), 100*r,
				100*goalStreamsOK, verdict(r >= goalStreamsOK))
		}
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// sizeLabel renders a body size like "2KiB".
func sizeLabel(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// serveBare is the reference: a net/http handler that reads the body and answers a small JSON,
// with nothing else. It prints its address on stdout and serves until ctx ends.
func serveBare(ctx context.Context, addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"success"}` + "\n"))
	}), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// child is a process the bench started.
type child struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	done    chan struct{}
}

// startChild starts exe with args; its stderr goes to logPath. A child that prints
// "listening ADDR" on stdout has addr set.
func startChild(ctx context.Context, exe string, args, env []string, logPath string) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	c := &child{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				select {
				case addrCh <- a:
				default:
				}
			}
		}
	}()
	go func() {
		cmd.Wait()
		logFile.Close()
		close(c.done)
	}()

	// Only the bare handler announces itself on stdout; wait for it briefly.
	if len(args) > 1 && args[1] == "--serve-bare" {
		select {
		case c.addr = <-addrCh:
		case <-c.done:
			return nil, fmt.Errorf("%s exited", exe)
		case <-time.After(10 * time.Second):
			c.stop()
			return nil, fmt.Errorf("%s did not start", exe)
		}
	}
	return c, nil
}

// stop ends the child gracefully (SIGTERM), then for good after 10 s.
func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitHealthy polls /healthz until it answers 200.
func waitHealthy(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no healthy answer from %s: %v", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openStreams signs in as the bench admin and opens n event streams that read everything, each
// the stream of an open event list (/events, the page a team keeps open). It returns a function that closes them all; open counts the streams still open.
func openStreams(ctx context.Context, base string, n int, open *atomic.Int64) (func(), error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{DialContext: loopbackDial,
		MaxIdleConnsPerHost: n}}
	resp, err := c.PostForm(base+"/login", url.Values{"username": {"admin"}, "password": {benchPassword}})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ready := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events/stream?list=events", nil)
			resp, err := c.Do(req)
			if err == nil && resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				err = fmt.Errorf("stream answered %s", resp.Status)
			}
			ready <- err
			if err != nil {
				return
			}
			open.Add(1)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if ctx.Err() == nil {
				open.Add(-1) // ended before the bench closed it
			}
		}()
	}
	for range n {
		if err := <-ready; err != nil {
			cancel()
			wg.Wait()
			return nil, err
		}
	}
	return func() { cancel(); wg.Wait() }, nil
}

// peakRSS reads a process's peak resident set size (VmHWM) from /proc; 0 when unknown.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
