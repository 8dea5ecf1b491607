package web

import (
	"errors"
	"io"
	"sync"
)

// errBodyBudget means the bodies being read by all webhook requests together reached the
// memory budget: this request is answered 503, and its sender retries.
var errBodyBudget = errors.New("webhook bodies in memory reached the budget")

// Sizes of the body budget's parts, as fractions of its main pool.
const (
	// smallBody is how large a body may grow on the reserve: Plaud's usual deliveries are a few
	// kilobytes, and they go on arriving while large ones fill the main pool.
	smallBody = 256 << 10
	// budgetReserveShare and budgetAddrShare divide the main pool: the reserve for small
	// bodies is a sixteenth of it, and one client address may hold a quarter at most.
	budgetReserveShare = 16
	budgetAddrShare    = 4
)

// bodyBudget bounds the bytes of webhook bodies held in memory at once, over every request in
// flight. A body is read whole before it is verified (the signature covers all of it), so
// without a bound a few hundred concurrent requests of the largest size, or small gzip bodies
// that inflate to it, would exhaust the server's memory. Since the bytes are charged before
// anything is verified, one sender must not be able to take it all from the others: one client
// address may hold a quarter of it at most, and small bodies have a reserve of their own, so a
// flood of large or stalled bodies cannot starve Plaud's small deliveries. Its zero value has
// no room: setMax sizes it.
type bodyBudget struct {
	mu      sync.Mutex
	max     int64            // the main pool
	used    int64            // guarded by mu
	reserve int64            // the reserve for small bodies
	inRes   int64            // guarded by mu
	byAddr  map[string]int64 // bytes held per client address, both pools; guarded by mu
}

// setMax sizes the budget: max bytes in the main pool, and a reserve beside it.
func (b *bodyBudget) setMax(max int64) {
	b.max = max
	b.reserve = max / budgetReserveShare
}

// take charges n more bytes to c, or reports that they do not fit.
func (b *bodyBudget) take(c *bodyCharge, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byAddr[c.addr]+n > b.max/budgetAddrShare {
		return false
	}
	switch {
	case b.used+n <= b.max:
		b.used += n
		c.main += n
	case c.main+c.res+n <= smallBody && b.inRes+n <= b.reserve:
		b.inRes += n
		c.res += n
	default:
		return false
	}
	if b.byAddr == nil {
		b.byAddr = map[string]int64{}
	}
	b.byAddr[c.addr] += n
	return true
}

// give returns everything c holds.
func (b *bodyBudget) give(c *bodyCharge) {
	if c.main+c.res == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= c.main
	b.inRes -= c.res
	if b.byAddr[c.addr] -= c.main + c.res; b.byAddr[c.addr] <= 0 {
		delete(b.byAddr, c.addr)
	}
	c.main, c.res = 0, 0
}

// inUse is how many bytes are charged now, in both pools.
func (b *bodyBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used + b.inRes
}

// bodyCharge is what one request, from one client address, holds of the budget: every byte
// read through its readers, until release.
type bodyCharge struct {
	b    *bodyBudget
	addr string
	main int64 // charged to the main pool
	res  int64 // charged to the reserve
}

// wrap returns r with every byte read charged to c; a read past the budget fails with
// errBodyBudget.
func (c *bodyCharge) wrap(r io.Reader) io.Reader { return &chargedReader{r: r, c: c} }

// release gives back everything the request was charged.
func (c *bodyCharge) release() { c.b.give(c) }

type chargedReader struct {
	r io.Reader
	c *bodyCharge
}

func (cr *chargedReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if n > 0 && !cr.c.b.take(cr.c, int64(n)) {
		return 0, errBodyBudget
	}
	return n, err
}
