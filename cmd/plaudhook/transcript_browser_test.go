package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/plaudhook/plaudhook/web/plaud"
	"github.com/plaudhook/plaudhook/web/sample"
)

// TestBrowserTranscript keeps the transcript list open while the long multi-speaker transcript
// arrives (it appears live), opens it, reads it in speaker blocks, searches within it (the
// count updates as you type, Enter jumps to each match), downloads its SRT and checks the
// file, and finally blurs the text for a shared screen and reveals a block with a click.
func TestBrowserTranscript(t *testing.T) {
	const name = "transcription.completed.long-multispeaker"
	body, _, err := sample.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	sent, ok := plaud.ParseTranscript(body)
	if !ok || len(sent.Segments) != 200 {
		t.Fatalf("fixture %s: %d segments", name, len(sent.Segments))
	}

	m := mustRunMain(t, time.Time{})
	ctx := newBrowser(t)
	signIn(t, ctx, m.URL())

	// The list is live: the transcript appears without a reload.
	if err := chromedp.Do(ctx, chromedp.Navigate(m.URL()+"/transcripts"),
		chromedp.WaitVisible(`[data-testid=live-indicator]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload = true`)); err != nil {
		t.Fatal(err)
	}
	waitStreams(t, m, 1)
	var out, errOut = new(stringsBuilder), new(stringsBuilder)
	if err := run(context.Background(), []string{"send", "--url", m.URL() + "/webhook",
		"--secret", fixtureSecret, "--sample", name}, nil, out, errOut); err != nil {
		t.Fatalf("send %s: %v %s", name, err, errOut)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`[data-testid=transcript-row] a.type`)); err != nil {
		t.Fatalf("the transcript did not appear live: %v", err)
	}
	if still, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload === true`)); !still {
		t.Fatalf("the list reloaded instead of adding the row live")
	}

	// Open it: 200 segments in speaker blocks, four speakers with a colour each.
	if err := chromedp.Do(ctx, chromedp.Click(`[data-testid=transcript-row] a.type`),
		chromedp.WaitVisible(`[data-testid=transcript-body]`)); err != nil {
		t.Fatal(err)
	}
	// The page is parsed as it arrives: count once it has all arrived, not at its first part.
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](`document.readyState === "complete"`)); err != nil {
		t.Fatalf("the transcript page did not finish loading: %v", err)
	}
	segments, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`document.querySelectorAll("[data-testid=segment]").length`))
	if err != nil || segments != 200 {
		t.Fatalf("segments on the page = %d (%v), want 200", segments, err)
	}
	colours, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => {
		const out = {};
		for (const b of document.querySelectorAll("[data-testid=block]")) {
			out[b.querySelector(".who").textContent] = getComputedStyle(b).borderLeftColor;
		}
		return out;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for _, c := range colours {
		distinct[c] = true
	}
	if len(colours) != 4 || len(distinct) != 4 {
		t.Errorf("speaker colours = %v, want 4 speakers in 4 colours", colours)
	}

	// Search within it as you type: the count and the highlights follow the input.
	want := 0
	for _, s := range sent.Segments {
		want += strings.Count(strings.ToLower(s.Text), "budget")
	}
	if want < 2 {
		t.Fatalf("the fixture mentions budget %d times; the test needs at least 2", want)
	}
	wantCount := fmt.Sprintf("%d matches", want)
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`[data-testid=page-search]`, "budget"),
		chromedp.Poll[chromedp.Void](`document.querySelector("[data-testid=search-count]").textContent === `+
			strconv.Quote(wantCount)),
	)
	if err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Text(`[data-testid=search-count]`))
		t.Fatalf("search count = %q, want %q: %v", text, wantCount, err)
	}
	marks, _ := chromedp.Run(ctx, chromedp.Evaluate[int](
		`document.querySelectorAll("[data-testid=transcript-body] mark").length`))
	if marks != want {
		t.Errorf("highlights = %d, want %d", marks, want)
	}
	// Enter jumps to the first match and then the second, without leaving the page.
	for i := 1; i <= 2; i++ {
		wantNth := fmt.Sprintf("%d of %s", i, wantCount)
		err = chromedp.Do(ctx,
			chromedp.SendKeys(`[data-testid=page-search]`, "\r"),
			chromedp.Poll[chromedp.Void](`document.querySelector("[data-testid=search-count]").textContent === `+
				strconv.Quote(wantNth)),
		)
		if err != nil {
			t.Fatalf("after Enter %d, search count is not %q: %v", i, wantNth, err)
		}
	}
	current, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll(
		"[data-testid=transcript-body] mark")].findIndex(m => m.classList.contains("current"))`))
	if current != 1 {
		t.Errorf("current match = %d, want the second (1)", current)
	}
	if href, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search`)); href != "?q=budget" {
		t.Errorf("page address query = %q, want ?q=budget", href)
	}

	// Download the SRT into a directory of the test's and read it.
	dir := t.TempDir()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	err = chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior:      browser.SetDownloadBehaviorBehaviorAllow,
				DownloadPath:  dir,
				EventsEnabled: ptr(true),
			})
			return err
		}),
		chromedp.Click(`[data-testid=export-srt]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatalf("download canceled")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			break
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.srt"))
	if len(files) != 1 {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("downloaded files = %v, want one .srt", entries)
	}
	srt, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	cues := strings.Split(strings.TrimSuffix(string(srt), "\n\n"), "\n\n")
	if len(cues) != 200 {
		t.Fatalf("SRT %s has %d cues, want 200", filepath.Base(files[0]), len(cues))
	}
	for _, i := range []int{0, 99, 199} {
		s := sent.Segments[i]
		want := fmt.Sprintf("%d\n%s --> %s\n%s: %s", i+1, srtTime(s.StartMS), srtTime(s.EndMS),
			s.Speaker, s.Text)
		if cues[i] != want {
			t.Errorf("cue %d = %q, want %q", i+1, cues[i], want)
		}
	}

	// Blur for a shared screen: the text is unreadable until its block is clicked.
	err = chromedp.Do(ctx,
		chromedp.Click(`[data-testid=blur-toggle]`),
		chromedp.WaitVisible(`[data-testid=transcript-body].blurred`),
	)
	if err != nil {
		t.Fatal(err)
	}
	filter := func(block int) string {
		f, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`getComputedStyle(
			document.querySelectorAll("[data-testid=block]")[%d].querySelector(".tx-text")).filter`, block)))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := filter(1); !strings.HasPrefix(f, "blur(") {
		t.Fatalf("blurred text filter = %q, want blur(...)", f)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`[data-testid=block]:nth-child(2) .who`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`[data-testid=transcript-title]`)); err != nil {
		t.Fatal(err) // move focus away: the click, not the focus, keeps it revealed
	}
	// The blur fades out (a CSS transition): wait for it to end.
	err = chromedp.Do(ctx, chromedp.Poll[chromedp.Void](`getComputedStyle(document.querySelectorAll(
		"[data-testid=block]")[1].querySelector(".tx-text")).filter === "none"`))
	if err != nil {
		t.Errorf("clicked block filter = %q, want none: %v", filter(1), err)
	}
	if f := filter(2); !strings.HasPrefix(f, "blur(") {
		t.Errorf("another block's filter = %q, want it still blurred", f)
	}
}

// srtTime is an SRT timestamp, HH:MM:SS,mmm.
func srtTime(ms int64) string {
	return fmt.Sprintf("%02d:%02d:%02d,%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

func ptr[T any](v T) *T { return &v }
