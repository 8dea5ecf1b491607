package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserFirstRun is a fresh install as a person meets it: no PLAUDHOOK_ADMIN_PASSWORD, so
// the first start prints a random admin password in its log. A real browser signs in with the
// password read from that log, sees the live event list receive a webhook, creates an API
// token (shown once) that then reads the API, and finds the sign-in in the audit log.
func TestBrowserFirstRun(t *testing.T) {
	m, logs := mustRunMainLogged(t, func(c *Config) { c.AdminPass = "" })
	line := regexp.MustCompile(`msg="first run: created user admin[^"]*" username=admin password=(\S+)`).
		FindStringSubmatch(logs.String())
	if line == nil {
		t.Fatalf("no first-run password in the log:\n%s", logs)
	}
	password := line[1]
	ctx := newBrowser(t)

	// Sign in with the logged password; the live list is empty and connected.
	err := chromedp.Do(ctx,
		chromedp.Navigate(m.URL()+"/events"),
		chromedp.WaitVisible(`input[name=username]`),
		chromedp.SendKeys(`input[name=username]`, "admin"),
		chromedp.SendKeys(`input[name=password]`, password),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`[data-testid=current-user]`),
		chromedp.WaitVisible(`[data-testid=empty-state]`),
	)
	if err != nil {
		t.Fatalf("sign in with the first-run password: %v", err)
	}
	waitStreams(t, m, 1)
	if _, err := cli(t, logs, "", "send", "--url", m.URL()+"/webhook", "--secret", fixtureSecret,
		"--sample", "transcription.completed.short"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`tr[data-event-type="transcription.completed"]`)); err != nil {
		t.Fatalf("the live list did not show the webhook: %v", err)
	}

	// The user menu leads to the account page, where a token is created and shown once.
	err = chromedp.Do(ctx,
		chromedp.Click(`[data-testid=user-menu] a`),
		chromedp.WaitVisible(`input[name=label]`),
		chromedp.SendKeys(`input[name=label]`, "browser test"),
		chromedp.Submit(`input[name=label]`),
		chromedp.WaitVisible(`[data-testid=new-token]`),
	)
	var token string
	if err == nil {
		token, err = chromedp.Run(ctx, chromedp.Text(`[data-testid=new-token]`))
	}
	if err != nil {
		t.Fatalf("create a token in the UI: %v", err)
	}
	token = strings.TrimSpace(token)
	if status, body := bearerGet(t, m.URL(), token, "/api/v1/events"); status != 200 || !strings.Contains(body, "transcription.completed") {
		t.Fatalf("the UI token on the API = %d %s", status, body)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(m.URL()+"/account"),
		chromedp.WaitVisible(`[data-testid=token-row]`),
	)
	var again string
	if err == nil {
		again, err = chromedp.Run(ctx, chromedp.Text(`#tokens`))
	}
	if err != nil || strings.Contains(again, token) {
		t.Fatalf("the token was shown again after a reload (%v)", err)
	}

	// Admins see the audit log in the navigation, with this sign-in in it.
	var actions []string
	err = chromedp.Do(ctx,
		chromedp.Click(`[data-testid=nav-audit]`),
		chromedp.WaitVisible(`[data-testid=audit-table]`),
	)
	if err == nil {
		actions, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`[...document.querySelectorAll("[data-testid=audit-row]")].map(r => r.dataset.action)`))
	}
	if err != nil {
		t.Fatalf("audit page: %v", err)
	}
	if strings.Join(actions, " ") != "token.create login.ok" {
		t.Errorf("audit actions = %v, want token.create login.ok", actions)
	}
}
