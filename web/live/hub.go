// Package live carries what plaudhook publishes to the browsers watching it.
//
// A hub keeps its newest messages in one ring that every open stream shares. Publishing puts
// one item in the ring and wakes the waiting streams with a single broadcast, so it costs the
// same whether nobody or five hundred browsers watch. Each stream reads the ring from its own
// cursor, at its own pace; one that falls so far behind that the ring overwrote messages it had
// not read yet learns how many it lost, and its browser gets them from the database
// (Last-Event-ID) or by reloading. Memory is bounded by the ring, not by the number of streams.
//
// A message may be published before it is rendered: its item carries the facts streams filter
// on, and its data is rendered the first time a stream writes it, once for all streams. A
// message no stream writes is never rendered.
package live

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Groups is how many groups of messages a hub counts apart (Message.Group): a stream limits
// what it writes at once per group, and needs to know how many of each it did not write.
const Groups = 8

// Message is one server-sent event.
type Message struct {
	ID   int64  // SSE id: the delivery id it is about
	Name string // SSE event name, e.g. "event-new"
	Data string // rendered HTML fragment or JSON

	// Group sorts the message for the per-stream limits (0 to Groups-1; out of range counts as
	// 0 once published). The web package uses one group per kind of row: deliveries, new events, ...
	Group int

	// Facts for per-stream filtering, known before the message is rendered. Empty means not
	// known, except Duplicate, which the publisher always sets for delivery and event rows.
	EndpointID int64
	Endpoint   string // endpoint slug
	EventType  string
	TypeKnown  bool  // EventType is the event's type ("" included), not merely unset
	EventID    int64 // the event the delivery belongs to (0 when rejected)
	Verdict    string
	Reason     string    // rejection reason
	Duplicate  bool      // a repeat of an event already stored
	Received   time.Time // when the delivery (for a new event: the event) was received
}

// Frame returns the message as written on an event stream: its id, event name and data lines,
// ending with the blank line.
func (m Message) Frame() string {
	var b strings.Builder
	b.Grow(len(m.Data) + len(m.Name) + 40)
	b.WriteString("id: ")
	b.WriteString(strconv.FormatInt(m.ID, 10))
	b.WriteString("\nevent: ")
	b.WriteString(m.Name)
	b.WriteByte('\n')
	// An event stream ends a line at CR, LF or CRLF: every one of them must start a new data
	// line here, or text from a payload (a lone CR in an event type) could end the data early
	// and add fields of its own (an id, a retry, another event).
	data := m.Data
	if strings.IndexByte(data, '\r') >= 0 {
		data = strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n")
	}
	for line := range strings.SplitSeq(data, "\n") {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.String()
}

// Item is one message in a hub's ring: its facts, known when it is published, and its data,
// rendered when a stream first asks for it. Publish an item once.
type Item struct {
	head   Message
	render func() (data string, ok bool)
	seq    uint64 // position in the ring, set by Publish before any stream can see the item

	once     sync.Once
	frame    string // encoded when rendered; the data itself is not kept
	ok       bool
	rendered atomic.Bool
}

// NewItem returns an item whose data render produces when a stream first writes it. head
// holds everything but the data. render runs at most once, on the goroutine of the first
// stream that wants the item; ok false means there is nothing to send after all (the item is
// then skipped by every stream).
func NewItem(head Message, render func() (data string, ok bool)) *Item {
	head.Data = ""
	if head.Group < 0 || head.Group >= Groups {
		head.Group = 0
	}
	return &Item{head: head, render: render}
}

// Ready returns an item for a message already rendered.
func Ready(m Message) *Item {
	data := m.Data
	return NewItem(m, func() (string, bool) { return data, true })
}

// Head returns the item's facts (its data is empty). The caller must not change it.
func (it *Item) Head() *Message { return &it.head }

// Frame renders the item if nobody did yet and returns it as written on a stream.
func (it *Item) Frame() (string, bool) {
	it.once.Do(func() {
		data, ok := it.render()
		it.render = nil // let go of what the render held
		it.rendered.Store(true)
		if !ok {
			return
		}
		m := it.head
		m.Data = data
		it.frame, it.ok = m.Frame(), true
	})
	return it.frame, it.ok
}

// Rendered reports whether the item has been rendered (for tests and benchmarks).
func (it *Item) Rendered() bool { return it.rendered.Load() }

// Hub holds the ring and the open streams.
type Hub struct {
	slots []atomic.Pointer[Item]
	mask  uint64
	last  atomic.Uint64 // sequence of the newest item; 0 before the first

	mu      sync.Mutex // serialises publishers; guards counts, wake and waiting
	counts  [Groups]uint64
	wake    chan struct{} // closed (and replaced) when an item is published
	waiting bool          // some stream holds wake: the next publish must close it

	open    atomic.Int64
	dropped atomic.Int64
}

// closed is a channel that is always ready, for a stream that already has items to read.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// NewHub returns a hub whose ring keeps the newest size messages (rounded up to a power of two,
// at least 2).
func NewHub(size int) *Hub {
	n := 2
	for n < size {
		n <<= 1
	}
	return &Hub{slots: make([]atomic.Pointer[Item], n), mask: uint64(n - 1),
		wake: make(chan struct{})}
}

// Size returns how many messages the ring keeps.
func (h *Hub) Size() int { return len(h.slots) }

// Publish puts a rendered message in the ring.
func (h *Hub) Publish(m Message) { h.Add(Ready(m)) }

// Add puts it in the ring and wakes the streams waiting for one. It never waits for a stream,
// and costs the same however many are open.
func (h *Hub) Add(it *Item) {
	g := it.head.Group // in range: NewItem saw to it
	h.mu.Lock()
	seq := h.last.Load() + 1
	it.seq = seq
	h.counts[g]++
	h.slots[seq&h.mask].Store(it)
	h.last.Store(seq)
	if h.waiting {
		close(h.wake)
		h.wake = make(chan struct{})
		h.waiting = false
	}
	h.mu.Unlock()
}

// at returns the item with sequence seq, or nil when the ring no longer (or not yet) holds it.
func (h *Hub) at(seq uint64) *Item {
	it := h.slots[seq&h.mask].Load()
	if it == nil || it.seq != seq {
		return nil
	}
	return it
}

// Len returns how many streams are open.
func (h *Hub) Len() int { return int(h.open.Load()) }

// DroppedCount returns how many streams were dropped since start because their client stopped
// reading.
func (h *Hub) DroppedCount() int64 { return h.dropped.Load() }

// Subscription is one open stream's place in the ring.
type Subscription struct {
	hub    *Hub
	cursor uint64 // the newest item taken
	counts [Groups]uint64
	gone   atomic.Bool
}

// Subscribe opens a stream: it gets the items published from now on. The caller must call
// Cancel (or Drop) when it is done.
func (h *Hub) Subscribe() *Subscription {
	s := &Subscription{hub: h}
	h.mu.Lock()
	s.cursor, s.counts = h.last.Load(), h.counts
	h.mu.Unlock()
	h.open.Add(1)
	return s
}

// Ready returns a channel that is closed once an item the stream has not taken is in the ring
// (at once, if one is already there). Call it again after each Take.
func (s *Subscription) Ready() <-chan struct{} {
	h := s.hub
	if h.last.Load() > s.cursor {
		return closed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last.Load() > s.cursor {
		return closed
	}
	h.waiting = true
	return h.wake
}

// Take moves the cursor past every item published so far and returns the batch it passed.
func (s *Subscription) Take() Batch {
	h := s.hub
	h.mu.Lock()
	to, counts := h.last.Load(), h.counts
	h.mu.Unlock()
	b := Batch{hub: h, from: s.cursor, to: to}
	for g := range counts {
		b.counts[g] = counts[g] - s.counts[g]
	}
	s.cursor, s.counts = to, counts
	return b
}

// Drop removes the subscription as one whose client stopped reading (counted in DroppedCount).
func (s *Subscription) Drop() { s.remove(true) }

// Cancel removes the subscription. It is safe to call more than once, and after Drop.
func (s *Subscription) Cancel() { s.remove(false) }

func (s *Subscription) remove(dropped bool) {
	if s.gone.Swap(true) {
		return
	}
	s.hub.open.Add(-1)
	if dropped {
		s.hub.dropped.Add(1)
	}
}

// Batch is the run of items one Take passed over.
type Batch struct {
	hub      *Hub
	from, to uint64 // sequences (from, to]
	counts   [Groups]uint64
}

// Len returns how many items were published in the batch, those the ring lost included.
func (b Batch) Len() int { return int(b.to - b.from) }

// Count returns how many items of group g were published in the batch, lost ones included.
func (b Batch) Count(g int) int {
	if g < 0 || g >= Groups {
		return 0
	}
	return int(b.counts[g])
}

// Newest calls fn for the batch's items, newest first, until fn returns false or it reaches an
// item the ring has overwritten (then every older one is gone too). It returns how many items
// of the batch were lost that way: 0 when fn stopped first or it saw them all.
func (b Batch) Newest(fn func(*Item) bool) (lost int) {
	for seq := b.to; seq > b.from; seq-- {
		it := b.hub.at(seq)
		if it == nil {
			return int(seq - b.from)
		}
		if !fn(it) {
			return 0
		}
	}
	return 0
}
