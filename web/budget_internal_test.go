package web

import "testing"

// TestBodyBudgetShares: one client address holds a quarter of the main pool at most, the pool
// as a whole is bounded, small bodies still fit on the reserve when it is full, and everything
// is handed back on release.
func TestBodyBudgetShares(t *testing.T) {
	var b bodyBudget
	b.setMax(1 << 20) // a quarter is 256 KiB; the reserve 64 KiB
	charge := func(addr string, n int64) (*bodyCharge, bool) {
		c := &bodyCharge{b: &b, addr: addr}
		return c, b.take(c, n)
	}

	a, ok := charge("10.0.0.1", 256<<10)
	if !ok {
		t.Fatal("a quarter of the pool from one address was refused")
	}
	if b.take(a, 1) {
		t.Error("one address got past its quarter")
	}
	if _, ok := charge("10.0.0.1", 1); ok {
		t.Error("a second request from the same full address was let in")
	}

	// Three more addresses fill the main pool.
	var held []*bodyCharge
	for _, addr := range []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"} {
		c, ok := charge(addr, 256<<10)
		if !ok {
			t.Fatalf("%s: refused with room in the pool", addr)
		}
		held = append(held, c)
	}

	// A small delivery from elsewhere still fits, on the reserve, up to its size.
	small, ok := charge("203.0.113.9", 4<<10)
	if !ok {
		t.Fatal("a small delivery was refused while large ones filled the pool")
	}
	if _, ok := charge("203.0.113.10", 60<<10); !ok {
		t.Fatal("the reserve refused a second small body while it had room")
	}
	if _, ok := charge("203.0.113.11", 4<<10); ok {
		t.Error("the reserve went past its size")
	}
	if b.take(small, smallBody) {
		t.Error("a body past smallBody grew on the reserve")
	}

	// Released, everything is back.
	a.release()
	small.release()
	for _, c := range held {
		c.release()
	}
	if got := b.inUse(); got != 60<<10 {
		t.Errorf("in use after release = %d, want only the small body still held (%d)", got, 60<<10)
	}
	if len(b.byAddr) != 1 {
		t.Errorf("addresses still charged = %v, want one", b.byAddr)
	}
}
