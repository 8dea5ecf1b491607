package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"golang.org/x/crypto/bcrypt"
)

// advance moves the server's clock forward.
func advance(e *env, d time.Duration) { e.clock.Set(e.clock.Add(d)) }

// signInAttempt posts the sign-in form once and returns the response and its body.
func signInAttempt(t *testing.T, e *env, username, password string) (*http.Response, string) {
	t.Helper()
	resp, err := noFollow().PostForm(e.ts.URL+"/login",
		url.Values{"username": {username}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func countAudit(t *testing.T, e *env, prefix string) int {
	t.Helper()
	es, _, err := e.db.FindAuditEntries(context.Background(), db.AuditFilter{ActionPrefix: prefix, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestLoginThrottlePerUsername is C26's throttle: ten wrong passwords for one username within a
// minute, each answered 401 and audited, shut it for 30 s (even to the right password), with
// 429, Retry-After and a clear message; the back-off releases on time and doubles on the next
// failure; other users from the same address are not affected. An unknown username is
// throttled exactly alike.
func TestLoginThrottlePerUsername(t *testing.T) {
	e := newEnv(t)
	for i := range 10 {
		if resp, _ := signInAttempt(t, e, "viewer", "wrong password"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d, want 401", i+1, resp.StatusCode)
		}
		advance(e, 5*time.Second) // ten failures within a minute
	}
	if got := countAudit(t, e, "login.failed"); got != 10 {
		t.Errorf("login.failed entries after ten failures = %d, want 10", got)
	}

	// Engaged: the right password is refused too, before it is checked.
	resp, body := signInAttempt(t, e, "viewer", testPassword)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("sign-in after 10 failures = %d, want 429", resp.StatusCode)
	}
	if got := resp.Header.Get("Retry-After"); got != "25" {
		t.Errorf("Retry-After = %q, want 25 (30 s from the last failure, 5 s ago)", got)
	}
	if len(resp.Cookies()) != 0 {
		t.Error("a throttled sign-in set a cookie")
	}
	contains(t, body, "Too many failed sign-ins. Wait 25 seconds and try again.")

	// Another user from the same address is not held back by viewer's failures.
	if resp, _ := signInAttempt(t, e, "operator", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("operator during viewer's back-off = %d, want 303", resp.StatusCode)
	}

	// Still shut one second before the end; a refused attempt does not lengthen the wait.
	advance(e, 24*time.Second)
	resp, _ = signInAttempt(t, e, "viewer", testPassword)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("at 29 s = %d Retry-After %q, want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// Released: one more failure shuts it again, for twice as long.
	advance(e, 2*time.Second)
	if resp, _ := signInAttempt(t, e, "viewer", "wrong again"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after the back-off a wrong password = %d, want 401 (checked again)", resp.StatusCode)
	}
	resp, _ = signInAttempt(t, e, "viewer", testPassword)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("after an 11th failure = %d Retry-After %q, want 429 and 60", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	advance(e, 61*time.Second)
	if resp, _ := signInAttempt(t, e, "viewer", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the second back-off the right password = %d, want 303", resp.StatusCode)
	}

	// Every failure is audited; each back-off once, not each refused attempt.
	if got := countAudit(t, e, "login.failed"); got != 11 {
		t.Errorf("login.failed entries = %d, want 11", got)
	}
	if got := countAudit(t, e, "login.throttled"); got != 2 {
		t.Errorf("login.throttled entries = %d, want 2 (one per back-off)", got)
	}

	// An unknown username backs off exactly like a real one, with the same page. (An hour
	// apart, so that the address's own count, twenty, plays no part.)
	advance(e, time.Hour+time.Minute)
	for range 10 {
		signInAttempt(t, e, "nobody", "wrong password")
	}
	respU, bodyU := signInAttempt(t, e, "nobody", "wrong password")
	advance(e, time.Hour+time.Minute)
	for range 10 {
		signInAttempt(t, e, "operator", "wrong password")
	}
	respK, bodyK := signInAttempt(t, e, "operator", "wrong password")
	if respU.StatusCode != 429 || respK.StatusCode != 429 {
		t.Fatalf("unknown user = %d, known user = %d, want 429 both", respU.StatusCode, respK.StatusCode)
	}
	if strings.ReplaceAll(bodyU, "nobody", "") != strings.ReplaceAll(bodyK, "operator", "") {
		t.Error("the throttled page differs between an unknown and a known username")
	}
}

// TestLoginThrottlePerAddress: twenty failures from one address, each under a different
// username (so no username backs off), shut the address for every username; it releases after
// the back-off.
func TestLoginThrottlePerAddress(t *testing.T) {
	e := newEnv(t)
	for i := range 20 {
		name := "spray" + string(rune('a'+i%5))
		if resp, _ := signInAttempt(t, e, name, "wrong password"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp, body := signInAttempt(t, e, "admin", testPassword)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("admin from a throttled address = %d Retry-After %q, want 429 and 30", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	contains(t, body, "Too many failed sign-ins.")

	advance(e, 31*time.Second)
	if resp, _ := signInAttempt(t, e, "admin", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin after the back-off = %d, want 303", resp.StatusCode)
	}
}

// TestLoginThrottleBurst sends forty sign-ins for one username at once, one of them with the
// right password: no more passwords are checked than ten attempts in a row would allow, and the
// others are refused with 429 before their password is looked at. The user's hash is costly
// (as a real one should be), so that every attempt arrives while the first are still checked.
func TestLoginThrottleBurst(t *testing.T) {
	e := newEnv(t)
	slow, err := bcrypt.GenerateFromPassword([]byte(testPassword), 12)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.CreateUser(context.Background(), "slowpoke", string(slow), db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	const burst = 40
	codes := make(chan int, burst)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			password := "wrong password"
			if i == burst-1 {
				password = testPassword
			}
			resp, _ := signInAttempt(t, e, "slowpoke", password)
			codes <- resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusUnauthorized]+count[http.StatusSeeOther] > 10 || count[http.StatusTooManyRequests] < burst-10 {
		t.Errorf("burst answers = %v, want at most 10 passwords checked and the rest 429", count)
	}
	if got := countAudit(t, e, "login.failed"); got > 10 {
		t.Errorf("login.failed entries = %d, want at most 10", got)
	}
}
