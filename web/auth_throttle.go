package web

import (
	"strings"
	"sync"
	"time"
)

// Sign-in throttling, per client address and per username (OWASP: limit both, back off
// exponentially, never lock an account for good). A key gets a few free failures; after that
// each failure shuts it for a back-off that doubles, from loginBackoff up to loginMaxBackoff.
// While shut, every attempt is refused with 429 before the password is looked at, and refused
// attempts do not lengthen the back-off. Failures are forgotten loginForget after the last one;
// a successful sign-in clears its username (not its address: one good account must not open
// the door to guessing many others from the same place).
const (
	loginFreeUser   = 10 // failures for one username before it backs off (C26: the 11th is refused)
	loginFreeAddr   = 20 // failures from one address (an office shares one) before it backs off
	loginBackoff    = 30 * time.Second
	loginMaxBackoff = 15 * time.Minute
	loginForget     = time.Hour
	// loginMaxKeys bounds memory: past it, forgotten keys are swept on every failure.
	loginMaxKeys = 10000
)

// loginThrottle counts failed sign-ins. Its zero value is ready to use. It lives in memory: a
// restart forgets the counts, which only an administrator can cause.
type loginThrottle struct {
	mu        sync.Mutex
	keys      map[string]*loginFailures // guarded by mu
	inflight  map[string]int            // attempts between begin and end, per key; guarded by mu
	lastSweep time.Time                 // guarded by mu
}

// loginFailures is the record of one key (an address or a username).
type loginFailures struct {
	n       int
	last    time.Time
	free    int
	audited time.Time // the end of the back-off whose first refusal was already reported
}

// until returns when f's back-off ends (zero while failures are still free).
func (f *loginFailures) until() time.Time {
	if f.n < f.free {
		return time.Time{}
	}
	d := loginBackoff
	for i := f.free; i < f.n && d < loginMaxBackoff; i++ {
		d *= 2
	}
	return f.last.Add(min(d, loginMaxBackoff))
}

func addrKey(addr string) string { return "addr " + addr }
func userKey(u string) string    { return "user " + strings.ToLower(strings.TrimSpace(u)) }

// wait returns how long a sign-in from addr for username must still wait (0: go ahead), and
// whether this is the first refusal of that back-off (the one to report).
func (t *loginThrottle) wait(addr, username string, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.waitLocked(addr, username, now)
}

// begin is wait for a sign-in that is about to check a password. When neither key is backing
// off it reserves the attempt until end is called, and it refuses (for a second) an attempt
// that would pass the free failures once the attempts already in flight are counted, or, past
// them, any attempt while another is in flight: a burst sent all at once checks no more
// passwords than the same attempts sent one after another.
func (t *loginThrottle) begin(addr, username string, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if wait, first := t.waitLocked(addr, username, now); wait > 0 {
		return wait, first
	}
	keys := [2]struct {
		key  string
		free int
	}{{addrKey(addr), loginFreeAddr}, {userKey(username), loginFreeUser}}
	for _, k := range keys {
		failures := 0
		if f := t.keys[k.key]; f != nil && now.Sub(f.last) <= loginForget {
			failures = f.n
		}
		// Past the free failures (a back-off just ended), one attempt at a time.
		if t.inflight[k.key] >= max(k.free-failures, 1) {
			return time.Second, false
		}
	}
	if t.inflight == nil {
		t.inflight = map[string]int{}
	}
	for _, k := range keys {
		t.inflight[k.key]++
	}
	return 0, false
}

// end releases an attempt reserved by begin, after its outcome was recorded (fail, succeed).
func (t *loginThrottle) end(addr, username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range []string{addrKey(addr), userKey(username)} {
		if t.inflight[k]--; t.inflight[k] <= 0 {
			delete(t.inflight, k)
		}
	}
}

// waitLocked is wait; caller must hold mu.
func (t *loginThrottle) waitLocked(addr, username string, now time.Time) (time.Duration, bool) {
	var wait time.Duration
	var first bool
	for _, k := range []string{addrKey(addr), userKey(username)} {
		f := t.keys[k]
		if f == nil {
			continue
		}
		u := f.until()
		if d := u.Sub(now); d > wait {
			wait = d
			first = !f.audited.Equal(u)
			f.audited = u
		}
	}
	return wait, first
}

// fail records a failed sign-in from addr for username.
func (t *loginThrottle) fail(addr, username string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.keys == nil {
		t.keys = map[string]*loginFailures{}
	}
	if len(t.keys) >= loginMaxKeys && now.Sub(t.lastSweep) > time.Second {
		t.sweep(now)
	}
	for _, k := range []struct {
		key  string
		free int
	}{{addrKey(addr), loginFreeAddr}, {userKey(username), loginFreeUser}} {
		f := t.keys[k.key]
		if f == nil || now.Sub(f.last) > loginForget {
			f = &loginFailures{free: k.free}
			t.keys[k.key] = f
		}
		f.n++
		f.last = now
	}
}

// succeed clears the failures of username after a correct password.
func (t *loginThrottle) succeed(username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, userKey(username))
}

// sweep drops keys whose failures are forgotten. Caller must hold mu.
func (t *loginThrottle) sweep(now time.Time) {
	t.lastSweep = now
	for k, f := range t.keys {
		if now.Sub(f.last) > loginForget {
			delete(t.keys, k)
		}
	}
}
