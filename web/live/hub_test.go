package live

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ids takes what s has not read yet and returns the ids, newest first, and how many the ring
// lost.
func ids(s *Subscription) ([]int64, int, Batch) {
	var got []int64
	b := s.Take()
	lost := b.Newest(func(it *Item) bool {
		got = append(got, it.Head().ID)
		return true
	})
	return got, lost, b
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCursor checks each subscription reads from its own cursor: what was published since it
// subscribed, or since its last Take, newest first, each item once.
func TestCursor(t *testing.T) {
	h := NewHub(16)
	h.Publish(Message{ID: 1}) // before anyone subscribed: nobody gets it
	a := h.Subscribe()
	defer a.Cancel()
	h.Publish(Message{ID: 2})
	b := h.Subscribe()
	defer b.Cancel()
	h.Publish(Message{ID: 3})
	h.Publish(Message{ID: 4})

	if got, lost, batch := ids(a); !equal(got, []int64{4, 3, 2}) || lost != 0 || batch.Len() != 3 {
		t.Fatalf("a read %v (lost %d, len %d), want [4 3 2], none lost", got, lost, batch.Len())
	}
	if got, _, _ := ids(b); !equal(got, []int64{4, 3}) {
		t.Fatalf("b read %v, want [4 3]", got)
	}
	if got, _, batch := ids(a); len(got) != 0 || batch.Len() != 0 {
		t.Fatalf("a read %v again, want nothing", got)
	}
	h.Publish(Message{ID: 5})
	if got, _, _ := ids(a); !equal(got, []int64{5}) {
		t.Fatalf("a read %v, want [5]", got)
	}
}

// TestLostWhenRingWraps checks a subscription that fell behind the ring gets the items still
// there and the number the ring overwrote, and that the per-group counts include those.
func TestLostWhenRingWraps(t *testing.T) {
	h := NewHub(4)
	if h.Size() != 4 {
		t.Fatalf("size = %d, want 4", h.Size())
	}
	s := h.Subscribe()
	defer s.Cancel()
	for i := int64(1); i <= 10; i++ {
		h.Publish(Message{ID: i, Group: int(i % 2)})
	}
	got, lost, b := ids(s)
	if !equal(got, []int64{10, 9, 8, 7}) || lost != 6 {
		t.Fatalf("read %v, lost %d; want [10 9 8 7] and 6 lost", got, lost)
	}
	if b.Len() != 10 || b.Count(0) != 5 || b.Count(1) != 5 || b.Count(Groups) != 0 {
		t.Fatalf("len %d, counts %d/%d; want 10, 5/5", b.Len(), b.Count(0), b.Count(1))
	}

	// A stop from fn is not a loss.
	h.Publish(Message{ID: 11})
	h.Publish(Message{ID: 12})
	if lost := s.Take().Newest(func(*Item) bool { return false }); lost != 0 {
		t.Fatalf("lost = %d after stopping early, want 0", lost)
	}
}

// TestReadyBroadcast checks one publish wakes every waiting subscription at once, that Ready is
// ready at once while items wait, and not after they were taken.
func TestReadyBroadcast(t *testing.T) {
	h := NewHub(8)
	subs := make([]*Subscription, 50)
	waits := make([]<-chan struct{}, len(subs))
	for i := range subs {
		subs[i] = h.Subscribe()
		defer subs[i].Cancel()
		waits[i] = subs[i].Ready()
	}
	for i, c := range waits {
		select {
		case <-c:
			t.Fatalf("subscription %d ready before anything was published", i)
		default:
		}
	}
	h.Publish(Message{ID: 1})
	for i, c := range waits {
		select {
		case <-c:
		default:
			t.Fatalf("subscription %d not woken by the publish", i)
		}
	}
	// Still unread: ready at once. Read: waiting again.
	select {
	case <-subs[0].Ready():
	default:
		t.Fatal("Ready not ready with an item waiting")
	}
	subs[0].Take()
	select {
	case <-subs[0].Ready():
		t.Fatal("Ready ready with nothing left to take")
	default:
	}

	// Goroutines blocked in Ready all wake on one publish.
	var woke sync.WaitGroup
	for _, s := range subs[1:] {
		s.Take()
		c := s.Ready()
		woke.Add(1)
		go func() { defer woke.Done(); <-c }()
	}
	h.Publish(Message{ID: 2})
	done := make(chan struct{})
	go func() { woke.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("waiting subscriptions were not woken")
	}
}

// TestPublishNeverWaits checks a subscription that never reads neither blocks publishing nor
// gets dropped for it: it just loses what the ring overwrote.
func TestPublishNeverWaits(t *testing.T) {
	h := NewHub(8)
	idle := h.Subscribe()
	defer idle.Cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(1); i <= 10000; i++ {
			h.Publish(Message{ID: i})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscription that does not read")
	}
	if h.Len() != 1 || h.DroppedCount() != 0 {
		t.Fatalf("open = %d, dropped = %d; want 1, 0", h.Len(), h.DroppedCount())
	}
	got, lost, _ := ids(idle)
	if len(got) != 8 || got[0] != 10000 || lost != 10000-8 {
		t.Fatalf("read %d items from %v, lost %d; want the newest 8 and %d lost", len(got), got[:1], lost, 10000-8)
	}
}

// TestLazyRender checks an item is rendered once however many streams write it, concurrently,
// and never when no stream asks for its frame (even after the ring dropped it).
func TestLazyRender(t *testing.T) {
	h := NewHub(2)
	s := h.Subscribe()
	defer s.Cancel()

	var renders atomic.Int64
	render := func() (string, bool) { renders.Add(1); return "<tr>row</tr>", true }
	written := NewItem(Message{ID: 1, Name: "event-new", Data: "ignored"}, render)
	unwritten := NewItem(Message{ID: 2, Name: "event-new"}, render)
	h.Add(written)
	h.Add(unwritten)
	if renders.Load() != 0 || written.Rendered() {
		t.Fatal("publishing rendered an item")
	}

	want := "id: 1\nevent: event-new\ndata: <tr>row</tr>\n\n"
	var wg sync.WaitGroup
	frames := make([]string, 20)
	for i := range frames {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frames[i], _ = written.Frame()
		}()
	}
	wg.Wait()
	if renders.Load() != 1 || !written.Rendered() {
		t.Fatalf("rendered %d times, want once", renders.Load())
	}
	for i, f := range frames {
		if f != want {
			t.Fatalf("stream %d got frame %q, want %q", i, f, want)
		}
	}

	// The other item leaves the ring without anyone writing it: never rendered.
	h.Publish(Message{ID: 3})
	h.Publish(Message{ID: 4})
	_, lost, _ := ids(s)
	if lost != 2 {
		t.Fatalf("lost = %d, want 2", lost)
	}
	if renders.Load() != 1 || unwritten.Rendered() {
		t.Fatalf("an item nobody wrote was rendered (%d renders)", renders.Load())
	}

	// A render with nothing to send is asked once too, and yields no frame.
	var empty atomic.Int64
	none := NewItem(Message{ID: 5}, func() (string, bool) { empty.Add(1); return "", false })
	for range 3 {
		if f, ok := none.Frame(); ok || f != "" {
			t.Fatalf("Frame() = %q, %v; want nothing", f, ok)
		}
	}
	if empty.Load() != 1 {
		t.Fatalf("empty render ran %d times, want once", empty.Load())
	}
}

// TestFrame checks the wire form of a message: id, event name, one data line per line of the
// data (carriage returns dropped), a blank line; and that a published message has that form.
func TestFrame(t *testing.T) {
	m := Message{ID: 42, Name: "event-new", Data: "<tr>\r\n<td>a</td>\n</tr>"}
	want := "id: 42\nevent: event-new\ndata: <tr>\ndata: <td>a</td>\ndata: </tr>\n\n"
	if got := m.Frame(); got != want {
		t.Fatalf("Frame() = %q, want %q", got, want)
	}
	h := NewHub(4)
	s := h.Subscribe()
	defer s.Cancel()
	h.Publish(m)
	var got string
	s.Take().Newest(func(it *Item) bool { got, _ = it.Frame(); return true })
	if got != want {
		t.Fatalf("published frame = %q, want %q", got, want)
	}
}

// TestFrameLoneCR: a lone CR in the data (from a payload field) starts a new data line, as an
// event stream reads it, so it cannot end the data and add an id, a retry or an event of its own.
func TestFrameLoneCR(t *testing.T) {
	m := Message{ID: 7, Name: "event-new",
		Data: "<td>device.synced\r\rretry: 86400000\rid: 99\revent: resync\rdata: reload\r\r</td>"}
	got := m.Frame()
	if strings.ContainsRune(got, '\r') {
		t.Fatalf("frame keeps a CR: %q", got)
	}
	// Read it as a browser would: every line but the final blank one is a field of this event.
	lines := strings.Split(strings.TrimSuffix(got, "\n\n"), "\n")
	for _, l := range lines[2:] {
		if !strings.HasPrefix(l, "data: ") {
			t.Errorf("line %q is not a data line: the payload added a field", l)
		}
	}
	if lines[0] != "id: 7" || lines[1] != "event: event-new" {
		t.Errorf("frame starts %q, %q", lines[0], lines[1])
	}
}

// TestDropCounted checks that a stream dropped by its handler (its client stopped reading) is
// counted, once, and that Cancel after it changes nothing.
func TestDropCounted(t *testing.T) {
	h := NewHub(4)
	s := h.Subscribe()
	keep := h.Subscribe()
	defer keep.Cancel()
	s.Drop()
	s.Drop() // twice is harmless
	s.Cancel()
	if h.Len() != 1 || h.DroppedCount() != 1 {
		t.Fatalf("open %d, dropped %d; want 1 and 1", h.Len(), h.DroppedCount())
	}
	keep2 := h.Subscribe()
	keep2.Cancel()
	keep2.Cancel()
	if h.Len() != 1 || h.DroppedCount() != 1 {
		t.Fatalf("after cancels: open %d, dropped %d; want 1 and 1", h.Len(), h.DroppedCount())
	}
}

// TestConcurrentPublish runs publishers and readers together under -race: every reader sees
// ids in order, and accounts for every item, read or lost.
func TestConcurrentPublish(t *testing.T) {
	h := NewHub(64)
	const publishers, each = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		s := h.Subscribe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Cancel()
			var prev uint64
			total := 0
			for {
				select {
				case <-stop:
					b := s.Take()
					total += b.Len()
					if total != publishers*each {
						t.Errorf("reader accounted for %d items, want %d", total, publishers*each)
					}
					return
				case <-s.Ready():
				}
				b := s.Take()
				total += b.Len()
				b.Newest(func(it *Item) bool {
					if prev != 0 && it.seq >= prev {
						t.Errorf("items out of order: %d after %d", it.seq, prev)
					}
					prev = it.seq
					return true
				})
				prev = 0
			}
		}()
	}
	var pub sync.WaitGroup
	for p := range publishers {
		pub.Add(1)
		go func() {
			defer pub.Done()
			for j := range each {
				h.Publish(Message{ID: int64(p*each + j), Group: j % Groups})
			}
		}()
	}
	pub.Wait()
	close(stop)
	wg.Wait()
}

// BenchmarkPublish measures one publish with no stream, with 500 streams that do not read, and
// with 500 streams that read the way event streams do (wake, take the batch, write its newest
// rows, pause): the cost must not grow with the number of streams.
func BenchmarkPublish(b *testing.B) {
	run := func(b *testing.B, n int, reading bool) {
		h := NewHub(4096)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range n {
			s := h.Subscribe()
			if !reading {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-s.Ready():
					}
					k := 0
					s.Take().Newest(func(it *Item) bool { it.Frame(); k++; return k < 50 })
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}()
		}
		b.ReportAllocs()
		for b.Loop() {
			h.Add(NewItem(Message{ID: 1, Name: "event-new"}, func() (string, bool) { return "<tr></tr>", true }))
		}
		b.StopTimer()
		close(stop)
		wg.Wait()
	}
	for _, n := range []int{0, 500} {
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) { run(b, n, false) })
	}
	b.Run("streams=500-reading", func(b *testing.B) { run(b, 500, true) })
}
