package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserEndpointSecretDebugger: in a real browser an admin creates an endpoint, adds its
// secret, and sends a test event from the endpoint page while a second tab shows the event list,
// where the event arrives live; then a delivery signed with a wrong secret arrives live on the
// rejected list, and its page explains the failure with the signature debugger.
func TestBrowserEndpointSecretDebugger(t *testing.T) {
	m := mustRunMain(t, time.Time{})
	ctx := newBrowser(t)
	base := m.URL()
	signIn(t, ctx, base)

	// Create the endpoint through the form.
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/endpoints"),
		chromedp.Click(`[data-testid=new-endpoint]`),
		chromedp.WaitVisible(`[data-testid=endpoint-form]`),
		chromedp.SendKeys(`[data-testid=endpoint-form] input[name=name]`, "Meetings"),
		chromedp.SendKeys(`[data-testid=endpoint-form] input[name=slug]`, "meetings"),
		chromedp.SendKeys(`[data-testid=endpoint-form] textarea[name=expected_types]`, "transcription.completed"),
		chromedp.Submit(`[data-testid=endpoint-form] input[name=name]`),
		chromedp.WaitVisible(`[data-testid=endpoint-title]`),
	)
	if err != nil {
		t.Fatalf("create endpoint: %v", err)
	}
	url, _ := chromedp.Run(ctx, chromedp.Text(`[data-testid=endpoint-url]`))
	if !strings.HasSuffix(url, "/webhook/meetings") {
		t.Fatalf("endpoint URL = %q", url)
	}

	// Add its secret, pasted with leading spaces as people do.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`[data-testid=add-secret-form] input[name=value]`, "  "+caseSecret),
		chromedp.SendKeys(`[data-testid=add-secret-form] input[name=label]`, "portal"),
		chromedp.Click(`[data-testid=add-secret]`),
		chromedp.WaitVisible(`[data-testid=secret-row][data-label=portal]`),
	)
	if err != nil {
		t.Fatalf("add secret: %v", err)
	}
	notice, _ := chromedp.Run(ctx, chromedp.Text(`[data-testid=notice]`))
	if !strings.Contains(notice, "whitespace removed") {
		t.Errorf("notice = %q, want the whitespace notice", notice)
	}

	// A second tab watches the event list live.
	list, cancel := chromedp.NewContext(ctx)
	defer cancel()
	if err := chromedp.Do(list,
		chromedp.Navigate(base+"/events"),
		chromedp.WaitVisible(`[data-testid=live-indicator]`),
	); err != nil {
		t.Fatalf("open the event list: %v", err)
	}
	if _, err := chromedp.Run(list, chromedp.Evaluate[bool](`window.__noReload = true`)); err != nil {
		t.Fatal(err)
	}
	waitStreams(t, m, 1)

	// Send the test event from the endpoint page; it arrives in the other tab without a reload.
	// The page is opened afresh, so the notice waited for is the test event's, not the secret's.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/endpoints/meetings"),
		chromedp.WaitVisible(`[data-testid=send-test]`),
		chromedp.SetValue(`[data-testid=test-event] select[name=sample]`, "transcription.completed.short"),
		chromedp.Click(`[data-testid=send-test]`),
		chromedp.WaitVisible(`[data-testid=notice]`),
	)
	if err != nil {
		t.Fatalf("send test event: %v", err)
	}
	notice, _ = chromedp.Run(ctx, chromedp.Text(`[data-testid=notice]`))
	if !strings.Contains(notice, "answered HTTP 200") {
		t.Fatalf("test event notice = %q", notice)
	}
	if err := chromedp.Do(list, chromedp.WaitVisible(`tr[data-event-type="transcription.completed"]`)); err != nil {
		t.Fatalf("the test event did not arrive live: %v", err)
	}
	if same, err := chromedp.Run(list, chromedp.Evaluate[bool](`window.__noReload === true`)); err != nil || !same {
		t.Fatalf("the list reloaded (%v)", err)
	}

	// Watch the rejected list, and send a delivery signed with a wrong secret.
	if err := chromedp.Do(list,
		chromedp.Navigate(base+"/deliveries?verdict=rejected"),
		chromedp.WaitVisible(`[data-testid=live-indicator]`),
	); err != nil {
		t.Fatal(err)
	}
	waitStreams(t, m, 1)
	var out, errOut stringsBuilder
	err = run(context.Background(), []string{"send", "--url", base + "/webhook/meetings",
		"--secret", "not_the_portal_secret", "--sample", "transcription.completed"}, nil, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "signature_mismatch") {
		t.Fatalf("send with a wrong secret: %v %s", err, out.String())
	}
	err = chromedp.Do(list,
		chromedp.WaitVisible(`tr[data-testid=delivery-row][data-verdict=rejected] a`),
		chromedp.Click(`tr[data-testid=delivery-row][data-verdict=rejected] a`),
		chromedp.WaitVisible(`[data-testid=debugger]`),
	)
	if err != nil {
		t.Fatalf("open the rejected delivery: %v", err)
	}

	// The debugger names the scheme, the secret tried with its outcome, and what that means.
	scheme, _ := chromedp.Run(list, chromedp.Text(`[data-testid=debugger-scheme]`))
	if !strings.Contains(scheme, "embedded") || !strings.Contains(scheme, "Plaud-Timestamp") {
		t.Errorf("scheme = %q, want embedded because of Plaud-Timestamp", scheme)
	}
	try, _ := chromedp.Run(list, chromedp.Text(`[data-testid=debugger-try][data-label=portal]`))
	if !strings.Contains(try, "no match") {
		t.Errorf("secret tried = %q, want portal: no match", try)
	}
	explain, _ := chromedp.Run(list, chromedp.Text(`[data-testid=no-hints]`))
	if !strings.Contains(explain, "signs with a secret this endpoint does not have") {
		t.Errorf("explanation = %q", explain)
	}
	reason, _ := chromedp.Run(list, chromedp.Text(`[data-testid=reason-text]`))
	if !strings.Contains(reason, "does not match") {
		t.Errorf("reason = %q", reason)
	}
}
