package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
)

// Forwarding: a trigger in the database queues every newly stored event that a rule matches,
// inside the ingest transaction (db/migrations/0008_replay.sql). The worker here sends what is
// due, one attempt per try, and moves each forward along its retry schedule: delivered on a
// 2xx, dead once the schedule runs out. Everything lives in SQLite, so a restart resumes where
// the last process stopped; a try cut short by shutdown is not counted and is sent again.

// DefaultForwardSchedule is the wait before each retry of a failed forward, like Plaud's own.
var DefaultForwardSchedule = []time.Duration{30 * time.Second, 5 * time.Minute,
	30 * time.Minute, 2 * time.Hour, 24 * time.Hour}

// forwardBatch is how many due forwards one pass takes, and forwardParallel how many of them
// are in flight at once, so one slow target cannot hold up all the others.
const (
	forwardBatch    = 50
	forwardParallel = 4
)

// forwardStore is what forwarding needs from storage.
type forwardStore interface {
	CreateForwardingRule(ctx context.Context, r *db.ForwardingRule) error
	UpdateForwardingRuleEnabled(ctx context.Context, id int64, enabled bool) error
	DeleteForwardingRule(ctx context.Context, id int64) error
	FindForwardingRules(ctx context.Context) ([]db.ForwardingRule, error)
	FindForwards(ctx context.Context, f db.ForwardFilter) ([]db.Forward, error)
	FindDueForwards(ctx context.Context, now time.Time, limit int) ([]db.Forward, error)
	NextForwardAt(ctx context.Context) (time.Time, bool, error)
	CountForwards(ctx context.Context) (map[db.ForwardState]int, error)
	RecordForwardTry(ctx context.Context, a *db.Attempt, f db.Forward) error
	RetryForward(ctx context.Context, id int64) error
}

// forwarder is the forwarding worker's state.
type forwarder struct {
	wake chan struct{} // buffered: a pending wake-up is never lost, never blocks
	once sync.Once
}

func (f *forwarder) init() { f.once.Do(func() { f.wake = make(chan struct{}, 1) }) }

// wakeForwarder tells the worker that new forwards may be due (after a commit that stored new
// events, or a retry). It never blocks.
func (s *Server) wakeForwarder() {
	s.rp.fwd.init()
	select {
	case s.rp.fwd.wake <- struct{}{}:
	default:
	}
}

// forwardSchedule is the configured retry schedule, or the default.
func (s *Server) forwardSchedule() []time.Duration {
	if len(s.cfg.ForwardSchedule) > 0 {
		return s.cfg.ForwardSchedule
	}
	return DefaultForwardSchedule
}

// runForwarder sends due forwards until ctx ends: at once when woken, else when the next one
// falls due (checked at least every minute, so a clock change or another process's retry is
// noticed).
func (s *Server) runForwarder(ctx context.Context) {
	s.rp.fwd.init()
	for {
		n, err := s.ForwardDue(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Error("forwarding", "error", err)
		}

		// A full batch means more may be due already.
		wait := time.Minute
		if n == forwardBatch && err == nil {
			wait = 0
		} else if next, ok, err := s.store.NextForwardAt(ctx); err == nil && ok {
			wait = min(max(next.Sub(s.now()), time.Second), time.Minute)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.rp.fwd.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// ForwardDue sends every forward due at the server clock's now (up to one batch) and returns
// how many it handled. The background worker calls it; tests call it with a fake clock.
func (s *Server) ForwardDue(ctx context.Context) (int, error) {
	due, err := s.store.FindDueForwards(ctx, s.now(), forwardBatch)
	if err != nil {
		return 0, err
	}

	// Several at once, in due order.
	sem := make(chan struct{}, forwardParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, f := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.forwardOne(ctx, f); err != nil && !errors.Is(err, errReplayCancelled) {
				mu.Lock()
				firstErr = cmpOr(firstErr, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(due), firstErr
}

// forwardOne makes one try of f and records it with the forward's new state.
func (s *Server) forwardOne(ctx context.Context, f db.Forward) error {
	system := Actor{Name: "system"}

	// Prepare the request as the rule says; a request that cannot be built (the target lost its
	// secret, say) is a failed try like any other, explained in the attempt.
	a, err := s.prepareForward(ctx, f)
	if err != nil {
		var ve *db.ValidationError
		if !errors.As(err, &ve) {
			return fmt.Errorf("forward %d: %w", f.ID, err)
		}
		a.ErrorKind, a.Error = "invalid", ve.Message
	}
	if ctx.Err() != nil {
		return errReplayCancelled
	}

	// Next state: delivered, retried later, or dead.
	f.Tries++
	switch sched := s.forwardSchedule(); {
	case a.OK():
		f.State, f.LastError = db.ForwardDelivered, ""
	case f.Tries > len(sched):
		f.State, f.LastError = db.ForwardDead, attemptResult(a)
	default:
		f.NextAt, f.LastError = s.now().Add(sched[f.Tries-1]), attemptResult(a)
	}
	if err := s.store.RecordForwardTry(ctx, &a, f); err != nil {
		if errors.Is(err, db.ErrNotFound) || errors.Is(err, db.ErrConflict) {
			return nil // the event or target was deleted meanwhile
		}
		return fmt.Errorf("forward %d: %w", f.ID, err)
	}
	s.attemptRecorded(ctx, a, system)
	if f.State == db.ForwardDead {
		s.log.Warn("forward dead after its last retry", "forward_id", f.ID, "event_id", f.EventID,
			"tries", f.Tries)
	}
	return nil
}

// prepareForward builds and sends one forward's request. It returns errReplayCancelled when
// ctx ended mid-way, and the attempt (with its event, target and mode) even when it could not
// be prepared.
func (s *Server) prepareForward(ctx context.Context, f db.Forward) (db.Attempt, error) {
	a := db.Attempt{EventID: f.EventID, TargetID: f.TargetID, TargetName: f.TargetName,
		Mode: f.Mode, Source: "forward", Actor: "system", StartedAt: s.now()}
	ev, first, err := s.eventWithBody(ctx, f.EventID)
	if err != nil {
		return a, err
	}
	t, err := s.store.FindTargetByID(ctx, f.TargetID)
	if err != nil {
		return a, err
	}
	a.URL = t.URL
	out, err := s.prepareReplay(ctx, ev, first, sendSpec{target: &t, mode: f.Mode})
	if err != nil {
		return a, err
	}
	out.attempt.Source, out.attempt.Actor = "forward", "system"
	sent := s.sendReplay(ctx, out)
	if ctx.Err() != nil {
		return sent, errReplayCancelled
	}
	return sent, nil
}

// handleForwardingIndex shows the rules and the queue.
func (s *Server) handleForwardingIndex(w http.ResponseWriter, r *http.Request) {
	s.renderForwarding(w, r, http.StatusOK, "")
}

func (s *Server) renderForwarding(w http.ResponseWriter, r *http.Request, status int, msg string) {
	ctx := r.Context()
	u, _ := userFrom(ctx)
	props := views.ForwardingProps{IsAdmin: u.Role == db.RoleAdmin, Error: msg,
		Schedule: scheduleText(s.forwardSchedule())}
	state := r.URL.Query().Get("state")
	switch db.ForwardState(state) {
	case "", db.ForwardPending, db.ForwardDelivered, db.ForwardDead:
		props.State = state
	default:
		s.respondError(w, r, badRequest("state must be pending, delivered or dead"))
		return
	}

	var err error
	if props.Rules, err = s.store.FindForwardingRules(ctx); err != nil {
		s.respondError(w, r, err)
		return
	}
	if props.Targets, err = s.store.FindTargets(ctx); err != nil {
		s.respondError(w, r, err)
		return
	}
	if props.Forwards, err = s.store.FindForwards(ctx, db.ForwardFilter{
		State: db.ForwardState(state), Limit: 200}); err != nil {
		s.respondError(w, r, err)
		return
	}
	if props.Counts, err = s.store.CountForwards(ctx); err != nil {
		s.respondError(w, r, err)
		return
	}
	s.renderStatus(w, r, status, views.ForwardingPage(s.page(r, "Forwarding", "replay"), props))
}

// handleForwardingRuleCreate adds a forwarding rule from the form.
func (s *Server) handleForwardingRuleCreate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rule := db.ForwardingRule{Mode: db.ReplayMode(r.PostFormValue("mode")), Enabled: true}
	var err error
	rule.TargetID, err = strconv.ParseInt(r.PostFormValue("target"), 10, 64)
	if err != nil {
		s.renderForwarding(w, r, http.StatusUnprocessableEntity, "Choose a target.")
		return
	}
	for _, t := range strings.FieldsFunc(r.PostFormValue("types"), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t'
	}) {
		rule.EventTypes = append(rule.EventTypes, t)
	}
	if slug := strings.TrimSpace(r.PostFormValue("endpoint")); slug != "" {
		if rule.EndpointID, err = s.store.EndpointIDBySlug(ctx, slug); err != nil {
			if errors.Is(err, db.ErrNotFound) {
				s.renderForwarding(w, r, http.StatusUnprocessableEntity, "There is no endpoint "+slug+".")
				return
			}
			s.respondError(w, r, err)
			return
		}
	}

	if err := s.store.CreateForwardingRule(ctx, &rule); err != nil {
		msg, ok := formError(err)
		if errors.Is(err, db.ErrConflict) {
			msg, ok = "That target no longer exists.", true
		}
		if !ok {
			s.respondError(w, r, err)
			return
		}
		s.renderForwarding(w, r, http.StatusUnprocessableEntity, msg)
		return
	}
	s.audit(r, "forwarding.rule.create", fmt.Sprintf("rule %d", rule.ID), fmt.Sprintf(
		"target %d, types [%s], mode %s", rule.TargetID, strings.Join(rule.EventTypes, " "), rule.Mode))
	http.Redirect(w, r, "/forwarding", http.StatusSeeOther)
}

// handleForwardingRuleEnabled pauses or resumes a rule.
func (s *Server) handleForwardingRuleEnabled(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	enabled := r.PostFormValue("enabled") == "true"
	if err := s.store.UpdateForwardingRuleEnabled(r.Context(), id, enabled); err != nil {
		s.respondError(w, r, err)
		return
	}
	s.audit(r, "forwarding.rule.update", fmt.Sprintf("rule %d", id), "enabled "+strconv.FormatBool(enabled))
	http.Redirect(w, r, "/forwarding", http.StatusSeeOther)
}

// handleForwardingRuleDelete deletes a rule; what it queued stays in the queue.
func (s *Server) handleForwardingRuleDelete(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	if err := s.store.DeleteForwardingRule(r.Context(), id); err != nil {
		s.respondError(w, r, err)
		return
	}
	s.audit(r, "forwarding.rule.delete", fmt.Sprintf("rule %d", id), "")
	http.Redirect(w, r, "/forwarding", http.StatusSeeOther)
}

// handleForwardRetry is the one-click retry: the forward is due again at once, with a fresh
// retry schedule.
func (s *Server) handleForwardRetry(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.respondError(w, r, errBadID)
		return
	}
	if err := s.store.RetryForward(r.Context(), id); err != nil {
		s.respondError(w, r, err)
		return
	}
	s.audit(r, "forwarding.retry", fmt.Sprintf("forward %d", id), "")
	s.wakeForwarder()
	http.Redirect(w, r, "/forwarding?state=pending", http.StatusSeeOther)
}

// scheduleText says a retry schedule in words: "30s, 5m, 30m, 2h and 24h".
func scheduleText(sched []time.Duration) string {
	parts := make([]string, len(sched))
	for i, d := range sched {
		parts[i] = shortDuration(d)
	}
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func shortDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// cmpOr returns a unless it is nil, else b.
func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
