package web

import (
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestLoginThrottleSchedule checks the back-off schedule: free failures, then 30 s doubling up
// to 15 minutes, and failures forgotten an hour after the last one.
func TestLoginThrottleSchedule(t *testing.T) {
	var th loginThrottle
	now := time.Unix(1796299200, 0)
	want := []time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0, 30 * time.Second, time.Minute,
		2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute}
	for i, w := range want {
		th.fail("10.0.0.1", "ann", now)
		got, _ := th.wait("10.0.0.2", "ANN ", now) // usernames match case-insensitively
		if got != w {
			t.Errorf("after %d failures wait = %v, want %v", i+1, got, w)
		}
	}

	// An hour and a bit after the last failure the slate is clean: the free failures again.
	now = now.Add(loginForget + time.Second)
	for range loginFreeUser - 1 {
		th.fail("10.0.0.1", "ann", now)
	}
	if got, _ := th.wait("10.0.0.3", "ann", now); got != 0 {
		t.Errorf("%d failures after forgetting: wait = %v, want 0", loginFreeUser-1, got)
	}

	// A successful sign-in clears the username but not the address.
	th.fail("10.0.0.1", "ann", now)
	th.succeed("ann")
	if got, _ := th.wait("10.0.0.3", "ann", now); got != 0 {
		t.Errorf("after success: wait = %v, want 0", got)
	}
	for range loginFreeAddr {
		th.fail("10.0.0.9", "x"+now.String(), now)
		now = now.Add(time.Millisecond)
	}
	th.succeed("x")
	if got, first := th.wait("10.0.0.9", "bob", now); got <= 0 || !first {
		t.Errorf("address after %d failures: wait = %v first = %v, want > 0 and first", loginFreeAddr, got, first)
	}
	if _, first := th.wait("10.0.0.9", "bob", now); first {
		t.Error("the second refusal of one back-off was reported as first")
	}
}

// TestLoginThrottleSweep checks that forgotten keys are dropped once the map is large.
func TestLoginThrottleSweep(t *testing.T) {
	var th loginThrottle
	now := time.Unix(1796299200, 0)
	for i := range loginMaxKeys {
		th.fail("10.0.0.1", "user"+time.Duration(i).String(), now)
	}
	later := now.Add(loginForget + 2*time.Second)
	th.fail("10.0.0.2", "fresh", later)
	if n := len(th.keys); n != 2 {
		t.Errorf("keys after sweep = %d, want 2 (the fresh address and username)", n)
	}
}

// TestBcryptCost checks the production work factor (OWASP: bcrypt cost 10 or more) and that
// new hashes use the cost in force.
func TestBcryptCost(t *testing.T) {
	if defaultBcryptCost < 10 {
		t.Errorf("defaultBcryptCost = %d, want at least 10", defaultBcryptCost)
	}
	h, err := HashPassword("long enough password")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := bcrypt.Cost([]byte(h)); got != bcryptCost {
		t.Errorf("hash cost = %d, want %d", got, bcryptCost)
	}
}

// BenchmarkCheckPassword measures one password check at the production cost: what each sign-in
// attempt, right or wrong, costs the server's CPU (and why sign-in is throttled).
func BenchmarkCheckPassword(b *testing.B) {
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse battery"), defaultBcryptCost)
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		checkPassword(string(hash), "wrong horse battery")
	}
}

// TestSafeNext keeps every post-login redirect on this site, including the spellings browsers
// turn into another host (tabs and line breaks dropped, a backslash read as a slash).
func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/events?type=x", "/events?type=x"},
		{"/transcripts/3#seg-2", "/transcripts/3#seg-2"},
		{"", "/"},
		{"https://evil.example/", "/"},
		{"//evil.example", "/"},
		{"/\\evil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/\r\n/evil.example", "/"},
		{"/x\\y", "/"},
		{"/\x7f/evil.example", "/"},
		{"events", "/"},
	}
	for _, tt := range tests {
		if got := safeNext(tt.in); got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestLoginThrottleInFlight: attempts in flight count against the free failures, so a burst
// cannot check more passwords at once than a sequence of attempts could.
func TestLoginThrottleInFlight(t *testing.T) {
	var th loginThrottle
	now := time.Unix(1796299200, 0)
	for i := range loginFreeUser {
		if wait, _ := th.begin("10.0.0.1", "ann", now); wait != 0 {
			t.Fatalf("attempt %d in flight: wait %v, want 0", i+1, wait)
		}
	}
	if wait, _ := th.begin("10.0.0.2", "ann", now); wait <= 0 {
		t.Fatalf("attempt %d with %d in flight: wait 0, want a refusal", loginFreeUser+1, loginFreeUser)
	}

	// One ends without failing (a right password): room for one more. The others fail: the
	// username backs off as after ten failures in a row.
	th.succeed("ann")
	th.end("10.0.0.1", "ann")
	if wait, _ := th.begin("10.0.0.2", "ann", now); wait != 0 {
		t.Fatalf("after one attempt ended: wait %v, want 0", wait)
	}
	th.end("10.0.0.2", "ann")
	for range loginFreeUser - 1 {
		th.fail("10.0.0.1", "ann", now)
		th.end("10.0.0.1", "ann")
	}
	th.fail("10.0.0.2", "ann", now)
	if wait, _ := th.begin("10.0.0.3", "ann", now); wait != loginBackoff {
		t.Errorf("after %d failures: wait %v, want %v", loginFreeUser, wait, loginBackoff)
	}
	if len(th.inflight) != 0 {
		t.Errorf("in flight after every attempt ended: %v", th.inflight)
	}
}
