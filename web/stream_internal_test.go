package web

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web/live"
)

// sseFrame is one event as a browser's EventSource would dispatch it.
type sseFrame struct {
	id   int64
	name string
	data string
}

func parseFrames(t *testing.T, out []byte) []sseFrame {
	t.Helper()
	var frames []sseFrame
	for _, block := range strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n") {
		if block == "" {
			continue
		}
		var f sseFrame
		for _, line := range strings.Split(block, "\n") {
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "id":
				f.id, _ = strconv.ParseInt(v, 10, 64)
			case "event":
				f.name = v
			case "data":
				f.data = v
			default:
				t.Fatalf("unexpected line %q in %q", line, block)
			}
		}
		frames = append(frames, f)
	}
	return frames
}

// publishRows puts n deliveries in the hub, ids from+1..from+n, each with its event's row: odd
// ids verified (a new event), even ids rejected. It returns the items, oldest first.
func publishRows(h *live.Hub, from, n int) []*live.Item {
	var items []*live.Item
	for id := int64(from + 1); id <= int64(from+n); id++ {
		row := live.Message{ID: id, Name: "delivery-verified", Group: groupDelivery,
			Verdict: string(db.Verified), EventID: id, TypeKnown: true, EventType: "t"}
		if id%2 == 0 {
			row.Name, row.Verdict, row.EventID = "delivery-rejected", string(db.Rejected), 0
		}
		row.Data = fmt.Sprintf("<tr>d%d</tr>", id)
		it := live.Ready(row)
		h.Add(it)
		items = append(items, it)
		if row.EventID != 0 {
			ev := live.Message{ID: id, Name: "event-new", Group: groupEventNew, EventID: id,
				Verdict: string(db.Verified), TypeKnown: true, EventType: "t",
				Data: fmt.Sprintf("<tr>e%d</tr>", id)}
			it := live.Ready(ev)
			h.Add(it)
			items = append(items, it)
		}
	}
	return items
}

// drain returns what the stream's next write would carry (nil: it would not write).
func drain(st *eventStream) []byte {
	if !st.take() {
		return nil
	}
	var b bytes.Buffer
	st.writeTo(&b)
	return b.Bytes()
}

func newTestStream(h *live.Hub, sf *streamFilter) *eventStream {
	return &eventStream{s: &Server{}, ctx: context.Background(), sf: sf, sub: h.Subscribe(),
		updated: map[int64]bool{}}
}

// TestStreamWriteKeepsNewest: a burst larger than a list holds back is written as its newest
// streamRowsMax rows of each kind, oldest first, and one "skipped" message counting the rest,
// whose id lets a reconnect resume after the whole burst. Rows left out are never rendered.
func TestStreamWriteKeepsNewest(t *testing.T) {
	h := live.NewHub(4096)
	st := newTestStream(h, nil)
	items := publishRows(h, 0, 240) // 240 delivery rows, 120 event rows

	frames := parseFrames(t, drain(st))
	var deliveries, events []int64
	var skipped []sseFrame
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f.name, "delivery-"):
			deliveries = append(deliveries, f.id)
		case f.name == "event-new":
			events = append(events, f.id)
		case f.name == "skipped":
			skipped = append(skipped, f)
		default:
			t.Errorf("unexpected message %q", f.name)
		}
	}
	if len(deliveries) != streamRowsMax || deliveries[0] != 191 || deliveries[len(deliveries)-1] != 240 {
		t.Errorf("delivery rows %v, want the newest %d (191..240)", deliveries, streamRowsMax)
	}
	for i := 1; i < len(deliveries); i++ {
		if deliveries[i] <= deliveries[i-1] {
			t.Fatalf("delivery rows out of order: %v", deliveries)
		}
	}
	// Event rows come from odd ids only: the newest 50 of them are 141, 143, ..., 239.
	if len(events) != streamRowsMax || events[0] != 141 || events[len(events)-1] != 239 {
		t.Errorf("event rows %v, want the newest %d (141..239)", events, streamRowsMax)
	}
	if len(skipped) != 1 || frames[len(frames)-1].name != "skipped" {
		t.Fatalf("want one skipped message, last: %+v", frames)
	}
	if want := (240 - streamRowsMax) + (120 - streamRowsMax); skipped[0].data != strconv.Itoa(want) || skipped[0].id != 240 {
		t.Errorf("skipped = %+v, want %d rows left out, id 240", skipped[0], want)
	}
	for i, it := range items {
		if id := it.Head().ID; id < 141 && it.Rendered() {
			t.Fatalf("item %d (delivery %d) left out but rendered", i, id)
		}
	}

	// Nothing new: nothing to write. A trickle afterwards goes out whole, without a count.
	if out := drain(st); out != nil {
		t.Errorf("second write with nothing published: %q", out)
	}
	publishRows(h, 240, 3)
	frames = parseFrames(t, drain(st))
	if len(frames) != 5 { // 3 delivery rows, 2 event rows (241, 243)
		t.Errorf("trickle wrote %+v, want 5 rows", frames)
	}
	for _, f := range frames {
		if f.name == "skipped" {
			t.Errorf("trickle wrote a skipped message: %+v", frames)
		}
	}
}

// TestStreamWriteFiltered: a list's stream counts only its own rows, decided from the rows'
// facts; rows already sent from the database are neither resent nor counted, and repeats of one
// event are written once, as its newest replacement row.
func TestStreamWriteFiltered(t *testing.T) {
	h := live.NewHub(4096)
	rejected := db.Rejected
	st := newTestStream(h, &streamFilter{list: "deliveries",
		deliveries: db.DeliveryFilter{Verdict: &rejected}})
	st.replayed = 20 // the backlog sent rows up to 20
	publishRows(h, 0, 240)

	frames := parseFrames(t, drain(st))
	var rows int
	for _, f := range frames[:len(frames)-1] {
		if f.name != "delivery-rejected" {
			t.Fatalf("a rejected-deliveries stream wrote %q", f.name)
		}
		rows++
	}
	last := frames[len(frames)-1]
	// 120 rejected, 10 of them (2..20) already sent: 50 written, 60 counted.
	if rows != streamRowsMax || last.name != "skipped" || last.data != "60" {
		t.Errorf("wrote %d rows and %+v, want %d rows and 60 skipped", rows, last, streamRowsMax)
	}

	// Event updates: three repeats of event 7 and one of event 9 in one write.
	st = newTestStream(h, &streamFilter{list: "events", all: true})
	for i, ev := range []int64{7, 9, 7, 7} {
		h.Add(live.Ready(live.Message{ID: int64(300 + i), Name: "event-update", Group: groupEventUpdate,
			EventID: ev, Data: fmt.Sprintf("u%d", i)}))
	}
	frames = parseFrames(t, drain(st))
	if len(frames) != 2 || frames[0].data != "u1" || frames[1].data != "u3" {
		t.Errorf("updates wrote %+v, want event 9's and event 7's newest (u1, u3) and no count", frames)
	}
}

// TestStreamWriteRingLost: a stream that comes to read after the ring overwrote what it had not
// read yet counts the lost rows as skipped, so the list asks for a reload.
func TestStreamWriteRingLost(t *testing.T) {
	h := live.NewHub(64)
	st := newTestStream(h, nil)
	publishRows(h, 0, 200) // 300 items through a ring of 64

	frames := parseFrames(t, drain(st))
	var rows int
	for _, f := range frames {
		if f.name != "skipped" {
			rows++
		}
	}
	last := frames[len(frames)-1]
	n, _ := strconv.Atoi(last.data)
	if last.name != "skipped" || rows+n != 300 || rows > 64 {
		t.Errorf("wrote %d rows and %+v, want at most 64 rows and the rest of 300 counted", rows, last)
	}
}
