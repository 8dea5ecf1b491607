package web_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/web"
	"github.com/plaudhook/plaudhook/web/signature"
)

// gatedStore is the real database, except that normalising waits at a gate and may fail.
type gatedStore struct {
	*db.DB
	entered chan struct{} // receives once per normalisation started
	release chan struct{} // closed to let normalisations go on
	fail    error         // returned instead of storing, when set
}

func (g *gatedStore) CreateRecordingEvent(ctx context.Context, ev db.RecordingEvent) (db.RecordingEventResult, error) {
	g.entered <- struct{}{}
	<-g.release
	if g.fail != nil {
		return db.RecordingEventResult{}, g.fail
	}
	return g.DB.CreateRecordingEvent(ctx, ev)
}

// newGatedEnv serves webhooks over a gatedStore.
func newGatedEnv(t *testing.T, fail error) (*env, *gatedStore) {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "web.db"),
		db.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	g := &gatedStore{DB: d, entered: make(chan struct{}, 16), release: make(chan struct{}), fail: fail}
	srv := web.NewServer(web.Config{
		Secrets: func(context.Context, int64) []signature.Secret {
			return []signature.Secret{{Label: "S", Key: []byte(testSecret)}}
		},
		SessionKeys: [][]byte{bytes.Repeat([]byte{1}, 64), bytes.Repeat([]byte{2}, 32)},
		Now:         func() time.Time { return testNow },
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, g)
	t.Cleanup(srv.Wait)
	t.Cleanup(func() { closeOnce(g.release) })
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &env{t: t, db: d, srv: srv, ts: ts}, g
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

// TestNormaliseAfterAck holds normalisation at a gate: the webhook is answered 200 while it
// waits, and the transcript appears once it goes on.
func TestNormaliseAfterAck(t *testing.T) {
	e, g := newGatedEnv(t, nil)
	body := mustReadFixture(t, "transcription.completed.short.json")
	resp, out := e.post("/webhook", signed(signature.SchemeDevguide, body, testNow), body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post = %d %s", resp.StatusCode, out)
	}

	// The sender has its answer; normalising started and is still held.
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("normalising never started")
	}
	ctx := context.Background()
	if ts, _, _ := e.db.FindTranscripts(ctx, db.TranscriptFilter{}); len(ts) != 0 {
		t.Fatalf("transcripts before release = %d, want 0", len(ts))
	}

	close(g.release)
	e.srv.Wait()
	ts, _, err := e.db.FindTranscripts(ctx, db.TranscriptFilter{})
	if err != nil || len(ts) != 1 || ts[0].SegmentCount != 3 {
		t.Fatalf("transcripts after release = %+v (%v), want one of 3 segments", ts, err)
	}

	// A repeat of the event is not normalised again.
	e.post("/webhook", signed(signature.SchemeDevguide, body, testNow), body)
	e.srv.Wait()
	select {
	case <-g.entered:
		t.Errorf("a duplicate delivery was normalised again")
	default:
	}
}

// TestNormaliseFailureAndReindex makes normalising fail: the webhook is still acknowledged and
// stored, and a reindex over the stored events builds the transcripts; a second one changes
// nothing.
func TestNormaliseFailureAndReindex(t *testing.T) {
	e, g := newGatedEnv(t, errors.New("disk on fire"))
	close(g.release)
	names := []string{"transcription.completed.long-multispeaker.json", "device.synced.json",
		"device.recording_completed.json", "device.battery_low.json", "transcription.failed.json"}
	for _, name := range names {
		body := mustReadFixture(t, name)
		if resp, out := e.post("/webhook", signed(signature.SchemeDevguide, body, testNow), body); resp.StatusCode != 200 {
			t.Fatalf("post %s = %d %s", name, resp.StatusCode, out)
		}
	}
	e.srv.Wait()
	ctx := context.Background()
	events, _, _ := e.db.FindEvents(ctx, db.EventFilter{})
	ts, _, _ := e.db.FindTranscripts(ctx, db.TranscriptFilter{})
	if len(events) != len(names) || len(ts) != 0 {
		t.Fatalf("events = %d, transcripts = %d; want %d stored events and no transcript",
			len(events), len(ts), len(names))
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := web.Reindex(ctx, e.db, log)
	if err != nil {
		t.Fatal(err)
	}
	want := web.ReindexStats{Events: 5, Recordings: 4, Transcripts: 3, Created: 3, Unreferenced: 1}
	if st != want {
		t.Errorf("first reindex = %+v, want %+v", st, want)
	}
	ts, _, _ = e.db.FindTranscripts(ctx, db.TranscriptFilter{})
	if len(ts) != 3 {
		t.Errorf("transcripts after reindex = %d, want 3", len(ts))
	}

	st, err = web.Reindex(ctx, e.db, log)
	want.Created = 0
	if err != nil || st != want {
		t.Errorf("second reindex = %+v (%v), want %+v", st, err, want)
	}
}

// TestTranscriptLive opens the event stream that /transcripts listens to: a new transcript is
// published as a rendered row (and nothing else: none of the delivery and event rows the other
// lists get), and a reconnecting stream gets it from the database.
func TestTranscriptLive(t *testing.T) {
	e := newEnv(t)
	c := e.client("viewer")
	openList := func(last string) *http.Response { return openListStream(t, e, c, "transcripts", last) }
	resp := openList("")
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.Hub().Len() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	battery := mustReadFixture(t, "device.battery_low.json")
	e.post("/webhook", signed(signature.SchemeDevguide, battery, testNow), battery)
	body := mustReadFixture(t, "audio_transcribe.completed.cjk-ja.json")
	e.post("/webhook", signed(signature.SchemeDevguide, body, testNow), body)
	events, _ := readEvents(t, resp, func(ev []sseEvent, _ int) bool {
		return len(ev) > 0 && ev[len(ev)-1].name == "transcript-new"
	})
	live := events[len(events)-1]
	if !strings.Contains(live.data, `data-testid="transcript-row"`) || !strings.Contains(live.data, "ja") {
		t.Errorf("transcript-new data = %q, want the rendered row", live.data)
	}
	if len(events) != 1 {
		t.Errorf("the transcript list's stream sent %d messages, want only the transcript: %+v", len(events), events)
	}
	e.srv.Wait()

	// Reconnecting after the battery report's delivery replays the transcript too.
	ds, err := e.db.FindDeliveries(context.Background(), db.DeliveryFilter{})
	if err != nil || len(ds) != 2 {
		t.Fatalf("deliveries %d (%v)", len(ds), err)
	}
	resumed := openList(strconv.FormatInt(min(ds[0].ID, ds[1].ID), 10))
	missed, _ := readEvents(t, resumed, func(ev []sseEvent, _ int) bool {
		return len(ev) > 0 && ev[len(ev)-1].name == "transcript-new"
	})
	if got := missed[len(missed)-1]; got.id != live.id || got.data != live.data {
		t.Errorf("replayed transcript-new = %+v, want %+v", got, live)
	}
}
