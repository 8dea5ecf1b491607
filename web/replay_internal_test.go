package web

import (
	"testing"
	"time"
)

// TestBulkPacerSlots checks the bulk replay rate limit on a fixed clock: at 4 requests per
// second the slots open 250 ms apart whatever the caller's timing, a caller that falls behind
// is not allowed to catch up with a burst, and a rate of 0 or less is read as 1 per second.
func TestBulkPacerSlots(t *testing.T) {
	start := time.Unix(1796299200, 0)
	interval := newPacer(4).interval
	if interval != 250*time.Millisecond {
		t.Fatalf("interval at 4/s = %v, want 250ms", interval)
	}

	steps := []struct {
		at   time.Duration // when the caller asks, after start
		want time.Duration // how long it must wait
	}{
		{0, 0},                      // the first request goes at once
		{0, 250 * time.Millisecond}, // the next asks at once and waits its slot
		{10 * time.Millisecond, 490 * time.Millisecond},
		{500 * time.Millisecond, 250 * time.Millisecond},
		{2 * time.Second, 0},                      // idle for a while: no wait...
		{2 * time.Second, 250 * time.Millisecond}, // ...but no burst either
		{2100 * time.Millisecond, 400 * time.Millisecond},
	}
	var next time.Time
	for i, st := range steps {
		var wait time.Duration
		wait, next = nextSlot(start.Add(st.at), next, interval)
		if wait != st.want {
			t.Errorf("request %d at +%v waits %v, want %v", i, st.at, wait, st.want)
		}
	}

	for _, rate := range []float64{0, -3} {
		if got := newPacer(rate).interval; got != time.Second {
			t.Errorf("interval at rate %v = %v, want 1s", rate, got)
		}
	}
}
