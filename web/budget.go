package web

import (
	"errors"
	"io"
	"sync"
)

// errBodyBudget means the bodies being read by all webhook requests together reached the
// memory budget: this request is answered 503, and its sender retries.
var errBodyBudget = errors.New("webhook bodies in memory reached the budget")

// bodyBudget bounds the bytes of webhook bodies held in memory at once, over every request in
// flight. A body is read whole before it is verified (the signature covers all of it), so
// without a bound a few hundred concurrent requests of the largest size, or small gzip bodies
// that inflate to it, would exhaust the server's memory. Its zero value has no room: NewServer
// sets max.
type bodyBudget struct {
	mu   sync.Mutex
	used int64 // guarded by mu
	max  int64
}

// take charges n bytes, or reports that they do not fit.
func (b *bodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

// give returns n bytes to the budget.
func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// inUse is how many bytes are charged now.
func (b *bodyBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// bodyCharge is what one request holds of the budget: every byte read through its readers,
// until release.
type bodyCharge struct {
	b     *bodyBudget
	taken int64
}

// wrap returns r with every byte read charged to c; a read past the budget fails with
// errBodyBudget.
func (c *bodyCharge) wrap(r io.Reader) io.Reader { return &chargedReader{r: r, c: c} }

// release gives back everything the request was charged.
func (c *bodyCharge) release() {
	c.b.give(c.taken)
	c.taken = 0
}

type chargedReader struct {
	r io.Reader
	c *bodyCharge
}

func (cr *chargedReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if n > 0 {
		if !cr.c.b.take(int64(n)) {
			return 0, errBodyBudget
		}
		cr.c.taken += int64(n)
	}
	return n, err
}
