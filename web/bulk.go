package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/live"
)

// Bulk replay: every stored event matching a filter, sent to one destination at a rate limit
// with bounded concurrency. A job is a row in SQLite; its events are taken in id order a page at
// a time, and each attempt is recorded with the job's id, so a job resumed after a restart skips
// what it already sent. Cancelling stops it at once; attempts in flight are dropped unrecorded.

// bulkPage is how many events a job takes from the database at a time.
const bulkPage = 100

// bulkPreviewRows is how many events a dry run lists.
const bulkPreviewRows = 20

// bulkTimeLayout is the form's time format (an HTML datetime-local input), read as UTC.
const bulkTimeLayout = "2006-01-02T15:04"

// bulkStore is what bulk replays need from storage.
type bulkStore interface {
	CountBulkEvents(ctx context.Context, f db.BulkFilter) (int, error)
	FindBulkEvents(ctx context.Context, f db.BulkFilter, jobID, after, upTo int64, limit int) ([]db.Event, error)
	CreateBulkJob(ctx context.Context, j *db.BulkJob) error
	FindBulkJobByID(ctx context.Context, id int64) (db.BulkJob, error)
	FindBulkJobs(ctx context.Context, state db.BulkState, limit int) ([]db.BulkJob, error)
	RecordBulkTry(ctx context.Context, jobID int64, a *db.Attempt) error
	UpdateBulkCursor(ctx context.Context, id, cursor int64) error
	FinishBulkJob(ctx context.Context, id int64, state db.BulkState) error
}

// bulkRunner tracks the background work of replays: the forwarding worker and running jobs.
type bulkRunner struct {
	mu      sync.Mutex
	root    context.Context              // mu guards root, stop and running; nil until started
	stop    context.CancelFunc           // cancels root
	running map[int64]context.CancelFunc // cancels one job
	wg      sync.WaitGroup               // every worker and job goroutine
}

// StartReplayWorkers starts the forwarding worker and resumes the bulk replays a previous
// process left running. StopReplayWorkers stops them.
func (s *Server) StartReplayWorkers() {
	b := &s.rp.bulk
	b.mu.Lock()
	if b.root != nil {
		b.mu.Unlock()
		return
	}
	b.root, b.stop = context.WithCancel(context.Background())
	b.running = map[int64]context.CancelFunc{}
	root := b.root
	b.mu.Unlock()

	// The forwarding worker.
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		s.runForwarder(root)
	}()

	// Jobs left running by the last process.
	jobs, err := s.store.FindBulkJobs(root, db.BulkRunning, 1000)
	if err != nil {
		s.log.Error("resume bulk replays", "error", err)
	}
	for _, j := range jobs {
		s.log.Info("resuming bulk replay", "bulk_job_id", j.ID, "done", j.Done, "total", j.Total)
		s.startBulkJob(j.ID)
	}
}

// StopReplayWorkers stops the forwarding worker and every running bulk replay and waits for
// them. Attempts in flight are abandoned unrecorded: their forwards stay due and their jobs stay
// running, so the next start sends them again.
func (s *Server) StopReplayWorkers() {
	b := &s.rp.bulk
	b.mu.Lock()
	stop := b.stop
	b.root, b.stop, b.running = nil, nil, nil
	b.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	b.wg.Wait()
	s.rp.mu.Lock()
	if s.rp.client != nil {
		s.rp.client.CloseIdleConnections()
	}
	s.rp.mu.Unlock()
}

// startBulkJob runs job id in the background, unless the workers are stopped (it then stays
// running in the database and starts with them).
func (s *Server) startBulkJob(id int64) {
	b := &s.rp.bulk
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.root == nil {
		return
	}
	if _, ok := b.running[id]; ok {
		return
	}
	ctx, cancel := context.WithCancel(b.root)
	b.running[id] = cancel
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() {
			b.mu.Lock()
			if b.running != nil {
				delete(b.running, id)
			}
			b.mu.Unlock()
			cancel()
		}()
		if err := s.runBulkJob(ctx, id); err != nil && ctx.Err() == nil {
			s.log.Error("bulk replay stopped", "bulk_job_id", id, "error", err)
		}
	}()
}

// cancelBulkJob stops job id if it runs in this process.
func (s *Server) cancelBulkJob(id int64) {
	b := &s.rp.bulk
	b.mu.Lock()
	defer b.mu.Unlock()
	if cancel, ok := b.running[id]; ok {
		cancel()
	}
}

// runBulkJob sends the job's remaining events, a page at a time, until none is left (then
// marks it done) or ctx ends (it stays running, to resume).
func (s *Server) runBulkJob(ctx context.Context, id int64) error {
	j, err := s.store.FindBulkJobByID(ctx, id)
	if err != nil || j.State != db.BulkRunning {
		return err
	}

	// The destination, as when the job was created.
	spec, err := s.bulkSpec(ctx, j)
	if err != nil {
		return err
	}
	who := Actor{Name: j.Actor, ID: j.ActorID}
	p := newPacer(j.Rate)
	job := j // read by the senders, never changed
	var mu sync.Mutex
	progress := j // mu guards progress: its counters move as the senders finish

	for cursor := j.Cursor; ; {
		evs, err := s.store.FindBulkEvents(ctx, job.Filter, job.ID, cursor, job.LastEventID, bulkPage)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			break
		}

		// Send the page: paced, at most Concurrency at once.
		sem := make(chan struct{}, max(1, job.Concurrency))
		var wg sync.WaitGroup
		for _, ev := range evs {
			if err := p.wait(ctx); err != nil {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				a, ok := s.bulkSend(ctx, job, ev, spec)
				if !ok {
					return
				}
				if err := s.store.RecordBulkTry(context.WithoutCancel(ctx), job.ID, &a); err != nil {
					s.log.Error("record bulk replay attempt", "bulk_job_id", job.ID, "error", err)
					return
				}
				s.attemptRecorded(ctx, a, who)
				mu.Lock()
				progress.Done++
				if !a.OK() {
					progress.Failed++
				}
				snapshot := progress
				mu.Unlock()
				s.publishBulkProgress(ctx, snapshot)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}

		// The whole page is handled: a restart resumes after it.
		cursor = evs[len(evs)-1].ID
		if err := s.store.UpdateBulkCursor(ctx, job.ID, cursor); err != nil {
			return err
		}
	}

	// Done: every matching event has an attempt of this job.
	if err := s.store.FinishBulkJob(ctx, job.ID, db.BulkDone); err != nil {
		var ve *db.ValidationError
		if errors.As(err, &ve) {
			return nil // cancelled meanwhile
		}
		return err
	}
	progress.State = db.BulkDone
	s.publishBulkProgress(ctx, progress)
	s.log.Info("bulk replay done", "bulk_job_id", job.ID, "done", progress.Done,
		"failed", progress.Failed)
	return nil
}

// bulkSend prepares and sends one event of a job. ok is false when ctx ended mid-way: nothing
// is recorded then, and a resumed job sends it again. A request that cannot be prepared is a
// failed attempt, explained.
func (s *Server) bulkSend(ctx context.Context, j db.BulkJob, ev db.Event, spec sendSpec) (db.Attempt, bool) {
	a := db.Attempt{EventID: ev.ID, URL: j.URL, Mode: j.Mode, StartedAt: s.now()}
	if spec.target != nil {
		a.TargetID, a.TargetName = spec.target.ID, spec.target.Name
	}
	first, err := s.store.FindDeliveryByID(ctx, ev.BodyDeliveryID)
	if err == nil {
		var out outbound
		if out, err = s.prepareReplay(ctx, ev, first, spec); err == nil {
			a = s.sendReplay(ctx, out)
		}
	}
	if ctx.Err() != nil {
		return a, false
	}
	if err != nil {
		a.ErrorKind, a.Error = "invalid", "not sent: "+errorMessage(err)
	}
	a.Source, a.Actor, a.ActorID = "bulk", j.Actor, j.ActorID
	return a, true
}

// errorMessage is the user-safe text of err.
func errorMessage(err error) string {
	_, _, msg := statusOf(err)
	return msg
}

// publishBulkProgress sends a job's progress bar to the streams of its page.
func (s *Server) publishBulkProgress(ctx context.Context, j db.BulkJob) {
	var buf bytes.Buffer
	if err := views.BulkProgress(j).Render(ctx, &buf); err != nil {
		return
	}
	s.rp.topics.publish(bulkTopic(j.ID), live.Message{ID: int64(j.Done), Name: "bulk-progress",
		Data: buf.String()})
}

func bulkTopic(id int64) string { return "bulk " + strconv.FormatInt(id, 10) }

// pacer spaces requests at most rate per second apart, on the wall clock.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		rate = 1
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the next request may start, or ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	var d time.Duration
	d, p.next = nextSlot(time.Now(), p.next, p.interval)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// nextSlot returns how long to wait at now for a slot that opens at next, and when the slot
// after it opens: one interval later, never earlier than one interval after now.
func nextSlot(now, next time.Time, interval time.Duration) (time.Duration, time.Time) {
	start := now
	if next.After(now) {
		start = next
	}
	return start.Sub(now), start.Add(interval)
}

// handleBulkIndex lists bulk replays.
func (s *Server) handleBulkIndex(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.store.FindBulkJobs(r.Context(), "", 100)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	s.render(w, r, views.BulkIndexPage(s.page(r, "Bulk replay", "replay"),
		views.BulkIndexProps{Jobs: jobs}))
}

// handleBulkNew is the bulk replay form; with preview=1 it is a dry run: the count of matching
// events and the first of them. It changes nothing.
func (s *Server) handleBulkNew(w http.ResponseWriter, r *http.Request) {
	form := bulkFormOf(r.URL.Query())
	props := views.BulkNewProps{Form: form}
	var err error
	if props.Targets, err = s.store.FindTargets(r.Context()); err != nil {
		s.respondError(w, r, err)
		return
	}
	if r.URL.Query().Get("preview") == "" {
		s.render(w, r, views.BulkNewPage(s.page(r, "New bulk replay", "replay"), props))
		return
	}

	// The dry run.
	j, err := s.bulkJobOf(r.Context(), form)
	if err == nil {
		props.Preview = true
		if props.Count, err = s.store.CountBulkEvents(r.Context(), j.Filter); err == nil {
			props.First, err = s.store.FindBulkEvents(r.Context(), j.Filter, 0, 0, 0, bulkPreviewRows)
		}
	}
	if err != nil {
		msg, ok := formError(err)
		if !ok {
			s.respondError(w, r, err)
			return
		}
		props.Error, props.Preview = msg, false
		s.renderStatus(w, r, http.StatusUnprocessableEntity,
			views.BulkNewPage(s.page(r, "New bulk replay", "replay"), props))
		return
	}
	s.render(w, r, views.BulkNewPage(s.page(r, "New bulk replay", "replay"), props))
}

// handleBulkCreate starts a bulk replay from the form, after checking that its first event can
// be prepared and that the destination is not refused outright by the address policy.
func (s *Server) handleBulkCreate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.ParseForm()
	form := bulkFormOf(r.PostForm)
	who := actorOf(r)
	refuse := func(err error) {
		msg, ok := formError(err)
		if !ok {
			s.respondError(w, r, err)
			return
		}
		targets, _ := s.store.FindTargets(ctx)
		s.renderStatus(w, r, http.StatusUnprocessableEntity, views.BulkNewPage(
			s.page(r, "New bulk replay", "replay"),
			views.BulkNewProps{Form: form, Targets: targets, Error: msg}))
	}

	j, err := s.bulkJobOf(ctx, form)
	if err != nil {
		refuse(err)
		return
	}
	j.Actor, j.ActorID = who.Name, who.ID

	// Refuse a destination the policy refuses without DNS (scheme, literal address): audited.
	c, err := s.replayClient(ctx)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if err := c.Check(j.URL); err != nil {
		s.auditAs(ctx, who, "replay.refused", j.URL, "bulk replay: "+err.Error())
		refuse(&db.ValidationError{Message: err.Error()})
		return
	}

	// Prepare the first event once, so a missing secret or a bad scheme is said now.
	evs, err := s.store.FindBulkEvents(ctx, j.Filter, 0, 0, 0, 1)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if len(evs) > 0 {
		first, err := s.store.FindDeliveryByID(ctx, evs[0].BodyDeliveryID)
		if err != nil {
			s.respondError(w, r, err)
			return
		}
		spec, err := s.bulkSpec(ctx, j)
		if err != nil {
			s.respondError(w, r, err)
			return
		}
		if _, err := s.prepareReplay(ctx, evs[0], first, spec); err != nil {
			refuse(err)
			return
		}
	}

	if err := s.store.CreateBulkJob(ctx, &j); err != nil {
		refuse(err)
		return
	}
	s.audit(r, "bulk.start", fmt.Sprintf("bulk %d", j.ID), fmt.Sprintf(
		"%d events to %s (%s), %.3g/s, %d at once", j.Total, j.URL, j.Mode, j.Rate, j.Concurrency))
	s.startBulkJob(j.ID)
	http.Redirect(w, r, fmt.Sprintf("/bulk/%d", j.ID), http.StatusSeeOther)
}

// bulkSpec is the send spec of job j: its target (looked up again) or its URL.
func (s *Server) bulkSpec(ctx context.Context, j db.BulkJob) (sendSpec, error) {
	spec := sendSpec{url: j.URL, mode: j.Mode, scheme: j.Scheme, secret: j.Secret}
	if j.TargetID != 0 {
		t, err := s.store.FindTargetByID(ctx, j.TargetID)
		if err != nil {
			return spec, err
		}
		spec.target = &t
	}
	return spec, nil
}

// handleBulkView shows a job's progress, live while it runs.
func (s *Server) handleBulkView(w http.ResponseWriter, r *http.Request) {
	j, err := s.bulkJobFromPath(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	s.render(w, r, views.BulkJobPage(s.page(r, fmt.Sprintf("Bulk replay #%d", j.ID), "replay"), j))
}

// handleBulkCancel stops a running job; what it sent stays recorded.
func (s *Server) handleBulkCancel(w http.ResponseWriter, r *http.Request) {
	j, err := s.bulkJobFromPath(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if err := s.store.FinishBulkJob(r.Context(), j.ID, db.BulkCancelled); err != nil {
		s.respondError(w, r, err)
		return
	}
	s.cancelBulkJob(j.ID)
	s.audit(r, "bulk.cancel", fmt.Sprintf("bulk %d", j.ID),
		fmt.Sprintf("after %d of %d events", j.Done, j.Total))
	j.State = db.BulkCancelled
	s.publishBulkProgress(r.Context(), j)
	http.Redirect(w, r, fmt.Sprintf("/bulk/%d", j.ID), http.StatusSeeOther)
}

// handleBulkStream is GET /bulk/{id}/stream: the job's progress bar, live.
func (s *Server) handleBulkStream(w http.ResponseWriter, r *http.Request) {
	j, err := s.bulkJobFromPath(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	topic := bulkTopic(j.ID)
	sub := s.rp.topics.subscribe(topic)
	defer s.rp.topics.unsubscribe(topic, sub)
	rc := s.startStream(w, r)

	// The current state first (read after subscribing, so no update falls between).
	if j, err = s.store.FindBulkJobByID(r.Context(), j.ID); err != nil {
		return
	}
	var buf bytes.Buffer
	views.BulkProgress(j).Render(r.Context(), &buf)
	if err := s.writeMessage(w, rc, live.Message{ID: int64(j.Done), Name: "bulk-progress",
		Data: buf.String()}); err != nil {
		return
	}
	s.pumpStream(w, r, rc, sub, 0)
}

func (s *Server) bulkJobFromPath(r *http.Request) (db.BulkJob, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return db.BulkJob{}, errBadID
	}
	return s.store.FindBulkJobByID(r.Context(), id)
}

// bulkFormOf reads the bulk form from query or form values.
func bulkFormOf(v url.Values) views.BulkForm {
	f := views.BulkForm{Endpoint: strings.TrimSpace(v.Get("endpoint")),
		Type: strings.TrimSpace(v.Get("type")), From: v.Get("from"), To: v.Get("to"),
		Target: v.Get("target"), URL: strings.TrimSpace(v.Get("url")), Mode: v.Get("mode"),
		Scheme: v.Get("scheme"), Secret: strings.TrimSpace(v.Get("secret")),
		Rate: v.Get("rate"), Concurrency: v.Get("concurrency")}
	if f.Rate == "" {
		f.Rate = "2"
	}
	if f.Concurrency == "" {
		f.Concurrency = "2"
	}
	return f
}

// bulkJobOf validates a bulk form into a job (not stored).
func (s *Server) bulkJobOf(ctx context.Context, f views.BulkForm) (db.BulkJob, error) {
	var j db.BulkJob
	invalid := func(msg string) (db.BulkJob, error) { return j, &db.ValidationError{Message: msg} }

	// Which events.
	if f.Endpoint != "" {
		id, err := s.store.EndpointIDBySlug(ctx, f.Endpoint)
		if errors.Is(err, db.ErrNotFound) {
			return invalid("There is no endpoint " + f.Endpoint + ".")
		}
		if err != nil {
			return j, err
		}
		j.Filter.EndpointID = &id
	}
	if f.Type != "" {
		typ := f.Type
		j.Filter.EventType = &typ
	}
	for _, tv := range []struct {
		raw string
		dst **time.Time
	}{{f.From, &j.Filter.From}, {f.To, &j.Filter.To}} {
		if tv.raw == "" {
			continue
		}
		t, err := time.ParseInLocation(bulkTimeLayout, tv.raw, time.UTC)
		if err != nil {
			return invalid("Times are like 2026-12-03T12:00 (UTC).")
		}
		*tv.dst = &t
	}

	// Where to, and how.
	j.Mode, j.Scheme, j.Secret = db.ReplayMode(f.Mode), f.Scheme, f.Secret
	switch {
	case f.Target != "":
		t, err := s.findTarget(ctx, f.Target)
		if err != nil {
			return j, err
		}
		j.TargetID, j.URL = t.ID, t.URL
		if j.Mode == "" {
			j.Mode = t.DefaultMode
		}
	case f.URL != "":
		j.URL = f.URL
	default:
		return invalid("Choose a target or type a URL.")
	}
	if j.Mode == "" {
		j.Mode = db.ModeOriginal
	}
	if j.Mode != db.ModeOriginal && j.Mode != db.ModeResign {
		return invalid("A bulk replay's mode is original or resign.")
	}

	// How fast.
	var err error
	if j.Rate, err = strconv.ParseFloat(f.Rate, 64); err != nil || j.Rate < 0.1 || j.Rate > 100 {
		return invalid("Requests per second: from 0.1 to 100.")
	}
	if j.Concurrency, err = strconv.Atoi(f.Concurrency); err != nil || j.Concurrency < 1 || j.Concurrency > 10 {
		return invalid("At most at once: from 1 to 10.")
	}
	return j, nil
}
