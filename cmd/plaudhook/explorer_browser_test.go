package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/plaudhook/plaudhook/web/signature"
)

// postSigned sends body to the webhook signed with the fixture secret (devguide scheme).
func postFixtureSigned(t *testing.T, base string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/webhook", bytes.NewReader(body))
	req.Header = signature.Sign(signature.SchemeDevguide, []byte(fixtureSecret), time.Now(), body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("post = %d", resp.StatusCode)
	}
}

// TestBrowserExplorer drives the event explorer in a real browser: filter by type with the
// form, move with the keyboard, open an event from its row's link in a second tab, compare two
// ticked events, watch a burst collapse into "N new events — show", and check the list at
// phone width and in dark mode.
func TestBrowserExplorer(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	ctx := newBrowser(t)
	signIn(t, ctx, m.URL())

	// Some events of different types, one of them twice.
	var out, errOut = new(stringsBuilder), new(stringsBuilder)
	for _, sample := range []string{"device.synced", "transcription.completed.short", "device.battery_low",
		"device.connected", "device.synced"} {
		if err := run(context.Background(), []string{"send", "--url", m.URL() + "/webhook",
			"--secret", fixtureSecret, "--sample", sample}, nil, out, errOut); err != nil {
			t.Fatalf("send %s: %v %s", sample, err, errOut)
		}
	}
	postFixtureSigned(t, m.URL(), []byte(`{"event":"device.synced","id":"evt_browser_2","data":{"deviceId":"dev_2","fileId":"file_b2"}}`))

	// Filter by type with the form: the URL carries the filter, every row has the type.
	err := chromedp.Do(ctx,
		chromedp.Navigate(m.URL()+"/events"),
		chromedp.WaitVisible(`[data-testid=filter-form]`),
		chromedp.SetValue(`select[name=type]`, "device.synced"),
		chromedp.Click(`[data-testid=filter-apply]`),
		chromedp.WaitVisible(`[data-testid=filter-clear]`),
	)
	if err != nil {
		t.Fatalf("filter by type: %v", err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	types, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#event-rows tr")).map(r => r.dataset.eventType)`))
	if err != nil || !strings.Contains(loc, "type=device.synced") || len(types) != 2 {
		t.Fatalf("after filtering: %s, rows %v (%v), want 2 device.synced rows", loc, types, err)
	}
	for _, ty := range types {
		if ty != "device.synced" {
			t.Errorf("row of type %s under the device.synced filter", ty)
		}
	}

	// Keyboard: "/" focuses the search box, Escape leaves it, j selects the first row and gives
	// its link the focus.
	for i, step := range []chromedp.Action[chromedp.Void]{
		chromedp.KeyEvent("/"),
		chromedp.Poll[chromedp.Void](`document.activeElement && document.activeElement.id === "q"`, chromedp.WithPollingTimeout(5*time.Second)),
		chromedp.KeyEvent(kb.Escape),
		chromedp.KeyEvent("j"),
		chromedp.Poll[chromedp.Void](`document.activeElement && document.activeElement.matches("#event-rows tr.selected a[data-nav-link]")`, chromedp.WithPollingTimeout(5*time.Second)),
		chromedp.KeyEvent("j"),
	} {
		if err := chromedp.Do(ctx, step); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("keyboard navigation, step %d: %v (at %s)", i, err, loc)
		}
	}
	selected, _ := chromedp.Run(ctx, chromedp.Evaluate[int](
		`Array.from(document.querySelectorAll("#event-rows tr")).findIndex(r => r.classList.contains("selected"))`))
	if selected != 1 {
		t.Errorf("after j, j the selected row is %d, want 1", selected)
	}

	// The row is a real link: open it in a second tab of the same browser.
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(`#event-rows tr.selected a[data-nav-link]`, "href"))
	href := attr.Value
	if err != nil || !strings.HasPrefix(href, "/events/") {
		t.Fatalf("row link = %q (%v)", href, err)
	}
	tab, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()
	err = chromedp.Do(tab,
		chromedp.Navigate(m.URL()+href),
		chromedp.WaitVisible(`[data-testid=event-title]`),
		chromedp.WaitVisible(`[data-testid=json-tree]`),
	)
	if err != nil {
		t.Fatalf("open %s in a new tab: %v", href, err)
	}
	title, _ := chromedp.Run(tab, chromedp.Text(`[data-testid=event-title]`))
	if !strings.Contains(title, "device.synced") {
		t.Errorf("new tab shows %q", title)
	}
	// Copy buttons are shown by the script; Enter on the first tab's row opens the same page.
	copies, _ := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll("button.copy:not([hidden])").length`))
	if copies == 0 {
		t.Errorf("no copy button visible")
	}
	err = chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(`[data-testid=event-title]`))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, href) {
		t.Errorf("Enter opened %s (%v), want %s", loc, err, href)
	}

	// Compare the two device.synced events: tick both, press Compare.
	err = chromedp.Do(ctx,
		chromedp.Navigate(m.URL()+"/events?type=device.synced"),
		chromedp.WaitVisible(`#event-rows tr`),
		chromedp.Click(`#event-rows tr:nth-child(1) [data-testid=compare-pick]`),
		chromedp.Click(`#event-rows tr:nth-child(2) [data-testid=compare-pick]`),
		chromedp.Click(`[data-testid=compare-selected]`),
		chromedp.WaitVisible(`[data-testid=diff-table]`),
	)
	if err != nil {
		t.Fatalf("compare two events: %v", err)
	}
	paths, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("[data-testid=diff-path]")).map(e => e.textContent)`))
	if !containsString(paths, "id") || !containsString(paths, "data.deviceId") {
		t.Errorf("diff paths = %v, want id and data.deviceId among them", paths)
	}
	headers, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=header-pair]").length`))
	if headers == 0 {
		t.Errorf("no headers side by side")
	}

	// A burst while the list is open collapses into one "N new events — show" bar.
	err = chromedp.Do(ctx, chromedp.Navigate(m.URL()+"/events"), chromedp.WaitVisible(`#event-rows tr`))
	if err != nil {
		t.Fatal(err)
	}
	waitStreams(t, m, 1)
	before, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#event-rows tr").length`))
	for i := 0; i < 12; i++ {
		postFixtureSigned(t, m.URL(), []byte(fmt.Sprintf(`{"event":"device.battery_low","id":"evt_burst_%d","data":{"level":%d}}`, i, i)))
	}
	err = chromedp.Do(ctx,
		chromedp.WaitVisible(`[data-testid=new-bar]`),
		chromedp.Poll[chromedp.Void](`document.querySelector("[data-new-count]").textContent === "12"`, chromedp.WithPollingTimeout(10*time.Second)),
	)
	if err != nil {
		count, _ := chromedp.Run(ctx, chromedp.Text(`[data-new-count]`))
		t.Fatalf("burst bar: %v (count %q)", err, count)
	}
	shown, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#event-rows tr").length`))
	if shown != before {
		t.Errorf("rows before showing = %d, want %d: the burst was rendered into the list", shown, before)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(`[data-show-new]`),
		chromedp.WaitNotVisible(`[data-testid=new-bar]`),
	)
	shown, _ = chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#event-rows tr").length`))
	if err != nil || shown != before+12 {
		t.Errorf("after show: %d rows (%v), want %d", shown, err, before+12)
	}

	// Phone width: nothing overflows sideways; dark mode follows the system.
	err = chromedp.Do(ctx,
		chromedp.EmulateViewport(375, 800, chromedp.EmulateMobile),
		chromedp.Navigate(m.URL()+"/events"),
		chromedp.WaitVisible(`#event-rows tr`),
	)
	if err != nil {
		t.Fatal(err)
	}
	overflow, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if overflow {
		w, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		t.Errorf("the list is %d px wide at a 375 px phone width", w)
	}
	light, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	_, err = chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
	dark, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	if err != nil || dark == light {
		t.Errorf("background light %s, dark %s (%v): dark mode does not apply", light, dark, err)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
