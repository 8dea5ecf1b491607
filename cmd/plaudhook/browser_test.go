package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// newBrowser starts headless Chromium for one test. Without a browser the test skips, except
// under CI=true, where a missing browser is a failure: CI must install it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no chromium on PATH: CI must install it (apt-get install chromium)")
		}
		t.Skip("browser test skipped: no chromium on PATH (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// signIn opens the sign-in page and signs in as admin with the first-run password.
func signIn(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`input[name=username]`),
		chromedp.SendKeys(`input[name=username]`, "admin"),
		chromedp.SendKeys(`input[name=password]`, adminPassword),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`[data-testid=current-user]`),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
}

// TestBrowserLiveList keeps the event list open in a real browser, sends webhooks, and sees the
// rows appear (and a duplicate update its row) without a reload.
func TestBrowserLiveList(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	ctx := newBrowser(t)
	signIn(t, ctx, m.URL())
	if err := chromedp.Do(ctx, chromedp.Navigate(m.URL()+"/events")); err != nil {
		t.Fatal(err)
	}

	// Mark the page, so a reload would be noticed.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload = true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`[data-testid=empty-state]`)); err != nil {
		t.Fatal(err)
	}
	// Give the event stream a moment to connect before sending.
	waitStreams(t, m, 1)

	var out, errOut = new(stringsBuilder), new(stringsBuilder)
	send := func(sample string) {
		if err := run(context.Background(), []string{"send", "--url", m.URL() + "/webhook",
			"--secret", fixtureSecret, "--sample", sample}, nil, out, errOut); err != nil {
			t.Fatalf("send %s: %v %s", sample, err, errOut)
		}
	}
	send("transcription.completed.short")
	err := chromedp.Do(ctx, chromedp.WaitVisible(`tr[data-event-type="transcription.completed"]`))
	if err != nil {
		t.Fatalf("row did not appear: %v", err)
	}
	send("device.synced")
	send("transcription.completed.short") // a duplicate: the existing row is updated
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`tr[data-event-type="device.synced"]`),
		chromedp.WaitVisible(`tr[data-event-type="transcription.completed"] [data-testid=delivery-count]`),
	); err != nil {
		t.Fatalf("live updates: %v", err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=event-row]").length`))
	if err != nil || rows != 2 {
		t.Fatalf("rows = %d (%v), want 2: a duplicate must not add a row", rows, err)
	}
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload === true`))
	if err != nil || !same {
		t.Fatalf("the page reloaded (%v)", err)
	}
	count, _ := chromedp.Run(ctx, chromedp.Text(`tr[data-event-type="transcription.completed"] [data-testid=delivery-count]`))
	if count != "received 2×" {
		t.Errorf("delivery count = %q, want received 2×", count)
	}
}

// waitStreams waits until n event streams are open on the server.
func waitStreams(t *testing.T, m *Main, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for m.Server.Hub().Len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("open streams = %d, want %d", m.Server.Hub().Len(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type stringsBuilder struct{ b []byte }

func (s *stringsBuilder) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *stringsBuilder) String() string              { return string(s.b) }
