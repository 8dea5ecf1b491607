package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/signature"
)

// buildBinary compiles the real plaudhook binary into a temporary folder, once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "plaudhook-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "plaudhook")
	cmd := exec.Command("go", "build", "-tags", "sqlite_fts5", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// process is the real binary running `serve` on a loopback port with a given database.
type process struct {
	cmd  *exec.Cmd
	base string
	log  *lockedWriter
	done chan struct{}
}

// startProcess starts the built binary on dbPath and waits until it answers /healthz.
func startProcess(t *testing.T, bin, dbPath string) *process {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := &process{base: "http://" + addr, log: &lockedWriter{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "--addr", addr, "--db", dbPath, "--log-level", "warn")
	p.cmd.Env = append(os.Environ(), "PLAUD_WEBHOOK_SECRET="+fixtureSecret,
		"PLAUDHOOK_ADMIN_PASSWORD="+adminPassword)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	if err := waitHealthy(context.Background(), p.base); err != nil {
		t.Fatalf("server did not start: %v\n%s", err, p.log)
	}
	return p
}

// acked is a delivery the server acknowledged: the event id it answered and the bytes sent.
type acked struct {
	eventID int64
	body    []byte
}

// sendUntilDead posts unique signed deliveries from several senders until the server stops
// answering, and returns every acknowledged one.
func sendUntilDead(p *process, senders int) []acked {
	var mu sync.Mutex
	var out []acked
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for seq := 0; ; seq++ {
				// Unique bodies of varied sizes, a few of them large.
				pad := bytes.Repeat([]byte{'a' + byte(seq%26)}, rng.IntN(4000))
				if seq%50 == 0 {
					pad = bytes.Repeat([]byte{'z'}, 200<<10)
				}
				body := fmt.Appendf(nil, `{"event":"crash.test","id":"c-%d-%d-%d","data":"%s"}`,
					time.Now().UnixNano(), w, seq, pad)
				req, _ := http.NewRequest(http.MethodPost, p.base+"/webhook", bytes.NewReader(body))
				req.Header = signature.Sign(signature.SchemeDevguide, []byte(fixtureSecret), time.Now(), body)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				reply, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					out = append(out, acked{eventID: replyEventID(reply), body: body})
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// TestCrashKill9 is the durability promise under the worst stop: the real binary is killed with
// SIGKILL while senders are mid-flight, twice; after a restart every delivery it acknowledged is
// stored byte-exact and SQLite's integrity check says ok.
func TestCrashKill9(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(t.TempDir(), "crash.db")

	var all []acked
	for round := range 2 {
		p := startProcess(t, bin, dbPath)

		// Load it, and kill it without warning once it has acknowledged a few hundred.
		got := make(chan []acked, 1)
		go func() { got <- sendUntilDead(p, 8) }()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			if n, _ := countEvents(dbPath); n >= int64(300*(round+1)) {
				break
			}
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
		acks := <-got
		if len(acks) == 0 {
			t.Fatalf("round %d: nothing acknowledged before the kill:\n%s", round, p.log)
		}
		all = append(all, acks...)
	}

	// Restart: it recovers the WAL, is ready, and takes deliveries again.
	p := startProcess(t, bin, dbPath)
	if resp, err := http.Get(p.base + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz after restart: %v %v", resp, err)
	}
	body := []byte(`{"event":"crash.after","id":"after-restart"}`)
	h := signature.Sign(signature.SchemeDevguide, []byte(fixtureSecret), time.Now(), body)
	hdr := map[string]string{}
	for k := range h {
		hdr[k] = h.Get(k)
	}
	if status, reply := postSigned(t, p.base+"/webhook", hdr, body); status != 200 {
		t.Fatalf("delivery after restart: %d %s", status, reply)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done

	// Every acknowledged delivery is there, byte for byte.
	ctx := context.Background()
	d, err := db.OpenReadOnly(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, err := d.IntegrityCheck(ctx); err != nil || got != "ok" {
		t.Fatalf("integrity_check = %q (%v), want ok", got, err)
	}
	missing := 0
	for _, a := range all {
		e, err := d.FindEventByID(ctx, a.eventID)
		if err != nil {
			missing++
			continue
		}
		del, err := d.FindDeliveryByID(ctx, e.BodyDeliveryID)
		if err != nil || !bytes.Equal(del.Body, a.body) {
			t.Errorf("event %d: stored body differs from the acknowledged one (%v)", a.eventID, err)
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged deliveries missing after SIGKILL", missing, len(all))
	}
	t.Logf("%d acknowledged deliveries across 2 SIGKILLs, all stored byte-exact", len(all))
}

// countEvents counts stored events through a read-only handle (0 while the file is new).
func countEvents(path string) (int64, error) {
	d, err := db.OpenReadOnly(context.Background(), path)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n, err := d.CountRecords(context.Background())
	return n.Events, err
}

// lockedWriter is a buffer that a child process's output copier writes while a test reads it.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
