package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runMainEnv, when "1", makes this test binary act as the plaudhook binary: `plaudhook bench`
// starts its bare handler and its servers by running its own executable (os.Executable),
// which under `go test` is the test binary.
const runMainEnv = "PLAUDHOOK_TEST_RUN_MAIN"

func init() {
	if os.Getenv(runMainEnv) != "1" {
		return
	}
	main() // exits with status 2 on an error
	os.Exit(0)
}

// TestBenchSmoke runs `plaudhook bench` with the smallest settings its flags allow (one short
// point: one sender, one small body size, no streams point) and reads the table: the bare
// handler's rate and plaudhook's side by side, their ratio, and every acknowledged delivery
// stored.
func TestBenchSmoke(t *testing.T) {
	// The bench's children are this test binary, told by the environment to act as plaudhook.
	// t.Setenv also keeps this test from running beside parallel ones, whose children would
	// inherit it.
	t.Setenv(runMainEnv, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut stringsBuilder
	err := run(ctx, []string{"bench", "--duration", "300ms", "--concurrency", "1",
		"--sizes", "64B", "--streams", "0"}, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	text := out.String()
	t.Logf("bench output:\n%s", text)

	// The header names both rates, the ratio and the storage check; the one row fills them.
	var header, row []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "body":
			header = f
		case header != nil && row == nil && len(f) > 0 && f[0] == "64B":
			row = f
		}
	}
	if header == nil || row == nil {
		t.Fatalf("no table with a 64B row in:\n%s", text)
	}
	col := func(name string) string {
		t.Helper()
		for i, h := range header {
			if h == name && i < len(row) {
				return row[i]
			}
		}
		t.Fatalf("table has no %s column: %q", name, header)
		return ""
	}
	for _, name := range []string{"bare/s", "plaudhook/s"} {
		if n, err := strconv.ParseFloat(col(name), 64); err != nil || n <= 0 {
			t.Errorf("%s = %q, want a positive rate", name, col(name))
		}
	}
	if r, err := strconv.ParseFloat(strings.TrimSuffix(col("ratio"), "%"), 64); err != nil ||
		!strings.HasSuffix(col("ratio"), "%") || r <= 0 {
		t.Errorf("ratio = %q, want a positive percentage", col("ratio"))
	}
	stored, acked, ok := strings.Cut(col("stored/acked"), "/")
	if !ok || stored != acked || acked == "0" {
		t.Errorf("stored/acked = %q, want every acknowledged delivery stored", col("stored/acked"))
	}
	if want := "stored == acknowledged in every run: met"; !strings.Contains(text, want) {
		t.Errorf("bench output lacks %q", want)
	}
}

// TestSynchronousWarning starts `plaudhook serve` with each synchronous mode: a mode weaker
// than FULL logs the loud durability warning at start-up, FULL and EXTRA do not.
func TestSynchronousWarning(t *testing.T) {
	tests := []struct {
		name string
		mode string
		warn bool
	}{
		{"NORMAL", "NORMAL", true},
		{"normal, lower case", "normal", true},
		{"FULL", "FULL", false},
		{"EXTRA", "EXTRA", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := runServeUntilListening(t, "--synchronous", tt.mode)
			var warning string
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, "DURABILITY REDUCED") {
					warning = line
				}
			}
			if got := warning != ""; got != tt.warn {
				t.Fatalf("durability warning logged = %v, want %v; log:\n%s", got, tt.warn, logs)
			}
			if !tt.warn {
				return
			}
			for _, want := range []string{"level=WARN", "synchronous=NORMAL", "power failure"} {
				if !strings.Contains(warning, want) {
					t.Errorf("warning %q lacks %q", warning, want)
				}
			}
		})
	}
}

// runServeUntilListening runs `plaudhook serve` in-process on a loopback port with a temporary
// database and extra flags, as main would (its logger built from the flags, writing to
// stderr), until it logs that it listens; then it stops it and returns everything logged.
func runServeUntilListening(t *testing.T, flags ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "p.db"),
		"--log-level", "info"}, flags...)
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, nil, &stringsBuilder{}, logs) }()

	deadline := time.After(30 * time.Second)
	for !strings.Contains(logs.String(), `msg=listening`) {
		select {
		case err := <-done:
			t.Fatalf("serve ended before listening: %v\n%s", err, logs)
		case <-deadline:
			t.Fatalf("serve did not listen within 30 s:\n%s", logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30 s")
	}
	return logs.String()
}
