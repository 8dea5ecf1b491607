package live

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestPublishDelivers checks every open subscription gets every message, in order.
func TestPublishDelivers(t *testing.T) {
	h := NewHub(8)
	a, b := h.Subscribe(), h.Subscribe()
	defer a.Cancel()
	defer b.Cancel()
	for i := int64(1); i <= 3; i++ {
		h.Publish(Message{ID: i, Name: "event-new"})
	}
	for _, s := range []*Subscription{a, b} {
		for want := int64(1); want <= 3; want++ {
			if got := (<-s.C).ID; got != want {
				t.Fatalf("message id = %d, want %d", got, want)
			}
		}
	}
}

// TestSlowSubscriberDropped checks a full subscription is dropped instead of blocking the
// publisher, and the others keep receiving.
func TestSlowSubscriberDropped(t *testing.T) {
	h := NewHub(2)
	slow, fast := h.Subscribe(), h.Subscribe()
	defer fast.Cancel()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(1); i <= 5; i++ {
			h.Publish(Message{ID: i})
			<-fast.C
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	select {
	case <-slow.Dropped:
	default:
		t.Fatal("slow subscription was not dropped")
	}
	if h.Len() != 1 || h.DroppedCount() != 1 {
		t.Fatalf("open = %d, dropped = %d; want 1, 1", h.Len(), h.DroppedCount())
	}
}

// TestCancelIdempotent checks Cancel can run twice and after a drop.
func TestCancelIdempotent(t *testing.T) {
	h := NewHub(1)
	s := h.Subscribe()
	h.Publish(Message{ID: 1})
	h.Publish(Message{ID: 2}) // drops s
	s.Cancel()
	s.Cancel()
	if h.Len() != 0 {
		t.Fatalf("open = %d, want 0", h.Len())
	}
}

// TestConcurrentPublish runs publishers, subscribers and cancels together under -race.
func TestConcurrentPublish(t *testing.T) {
	h := NewHub(16)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				h.Publish(Message{ID: int64(j)})
			}
		}()
		go func() {
			defer wg.Done()
			s := h.Subscribe()
			for j := 0; j < 50; j++ {
				select {
				case <-s.C:
				case <-s.Dropped:
					return
				}
			}
			s.Cancel()
		}()
	}
	wg.Wait()
}

// BenchmarkPublish measures one publish to n open streams, each of which then takes its message
// (as the stream handlers do), so nothing is dropped.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{0, 10, 500} {
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) {
			h := NewHub(64)
			subs := make([]*Subscription, n)
			for i := range subs {
				subs[i] = h.Subscribe()
			}
			for b.Loop() {
				h.Publish(Message{ID: 1, Data: "<tr></tr>"})
				for _, s := range subs {
					<-s.C
				}
			}
			if h.DroppedCount() != 0 {
				b.Fatalf("dropped %d streams", h.DroppedCount())
			}
		})
	}
}

// TestFrame checks the wire form of a message: id, event name, one data line per line of the
// data (carriage returns dropped), a blank line; and that Publish hands every stream that form.
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
	if got := (<-s.C).Frame(); got != want {
		t.Fatalf("published Frame() = %q, want %q", got, want)
	}
}

// TestDropCounted checks that a stream dropped by its handler (its client stopped reading) is
// counted like one the hub dropped, and no longer receives.
func TestDropCounted(t *testing.T) {
	h := NewHub(4)
	s := h.Subscribe()
	s.Drop()
	s.Drop() // twice is harmless
	if h.Len() != 0 || h.DroppedCount() != 1 {
		t.Fatalf("open %d, dropped %d; want 0 and 1", h.Len(), h.DroppedCount())
	}
	select {
	case <-s.Dropped:
	default:
		t.Fatal("Dropped not closed")
	}
	h.Publish(Message{ID: 1})
	if len(s.C) != 0 {
		t.Fatal("a dropped stream still receives")
	}
}
