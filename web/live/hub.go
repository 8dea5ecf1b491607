// Package live fans messages out to the browsers watching plaudhook. Publishing never waits: a
// stream whose buffer is full is dropped, and its browser reconnects with Last-Event-ID and gets
// what it missed from the database, not from memory.
package live

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Message is one server-sent event, already rendered.
type Message struct {
	ID   int64  // SSE id: the delivery id it is about
	Name string // SSE event name, e.g. "event-new"
	Data string // rendered HTML fragment or JSON

	// Facts for per-stream filtering.
	EndpointID int64
	EventType  string
	EventID    int64 // the event the delivery belongs to (0 when rejected)

	frame string // the encoded event, set once by Publish for every stream to share
}

// Frame returns the message as written on an event stream: its id, event name and data lines,
// ending with the blank line. Publish encodes it once for all streams.
func (m Message) Frame() string {
	if m.frame != "" {
		return m.frame
	}
	var b strings.Builder
	b.Grow(len(m.Data) + len(m.Name) + 40)
	b.WriteString("id: ")
	b.WriteString(strconv.FormatInt(m.ID, 10))
	b.WriteString("\nevent: ")
	b.WriteString(m.Name)
	b.WriteByte('\n')
	for line := range strings.SplitSeq(m.Data, "\n") {
		b.WriteString("data: ")
		b.WriteString(strings.TrimSuffix(line, "\r"))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.String()
}

// Subscription is one open stream.
type Subscription struct {
	C chan Message // messages to send; closed when the subscription is dropped or cancelled
	// Dropped is closed when the hub dropped this subscription for falling behind.
	Dropped chan struct{}
	hub     *Hub
	once    sync.Once
}

// Hub holds the open streams.
type Hub struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{} // mu guards subs

	buffer  int
	dropped atomic.Int64
}

// NewHub returns a hub whose subscriptions buffer up to buffer messages each.
func NewHub(buffer int) *Hub {
	if buffer <= 0 {
		buffer = 64
	}
	return &Hub{subs: map[*Subscription]struct{}{}, buffer: buffer}
}

// Subscribe opens a stream. The caller must call Cancel when it is done.
func (h *Hub) Subscribe() *Subscription {
	s := &Subscription{C: make(chan Message, h.buffer), Dropped: make(chan struct{}), hub: h}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Drop removes the subscription from the hub as one that fell behind (counted in
// DroppedCount): its stream could not take what was sent to it in time.
func (s *Subscription) Drop() { s.hub.remove(s, true) }

// Cancel removes the subscription from the hub. It is safe to call more than once.
func (s *Subscription) Cancel() { s.hub.remove(s, false) }

func (h *Hub) remove(s *Subscription, dropped bool) {
	h.mu.Lock()
	_, ok := h.subs[s]
	delete(h.subs, s)
	h.mu.Unlock()
	if !ok {
		return
	}
	s.once.Do(func() {
		if dropped {
			h.dropped.Add(1)
			close(s.Dropped)
		}
	})
}

// Publish hands m to every stream without waiting. A stream whose buffer is full is dropped.
// The message is encoded once here, not once per stream.
func (h *Hub) Publish(m Message) {
	m.frame = m.Frame()
	var slow []*Subscription
	h.mu.Lock()
	for s := range h.subs {
		select {
		case s.C <- m:
		default:
			slow = append(slow, s)
		}
	}
	h.mu.Unlock()
	for _, s := range slow {
		h.remove(s, true)
	}
}

// Len returns how many streams are open.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// DroppedCount returns how many streams were dropped for falling behind since start.
func (h *Hub) DroppedCount() int64 { return h.dropped.Load() }
