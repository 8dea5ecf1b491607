package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/jsondiff"
	"github.com/plaudhook/plaudhook/web/live"
)

// explorerStore is what the event explorer needs from storage: filtered lists, live matching,
// schema drift, the dashboard and exports.
type explorerStore interface {
	FindEndpoints(ctx context.Context) ([]db.Endpoint, error)
	EndpointIDBySlug(ctx context.Context, slug string) (int64, error)
	FindEventTypes(ctx context.Context) ([]string, error)
	FillDrift(ctx context.Context, events []db.Event) error
	FindSchemaTypes(ctx context.Context) ([]db.SchemaType, error)
	EventMatches(ctx context.Context, f db.EventFilter, id int64) (bool, error)
	DeliveryMatches(ctx context.Context, f db.DeliveryFilter, id int64) (bool, error)
	FindDashboard(ctx context.Context, f db.DashboardFilter) (db.Dashboard, error)
	ExportEvents(ctx context.Context, f db.EventFilter, fn func(db.Event) error) error
	ExportDeliveries(ctx context.Context, f db.DeliveryFilter, fn func(db.Delivery) error) error
	FindBody(ctx context.Context, deliveryID int64) ([]byte, error)
}

// listPage is how many rows one page of a list holds; a live list holds at most twice that.
const listPage = 100

// parseListFilter reads a list's filter from its URL parameters (the names views.ListFilter
// writes, which are also the API's).
func parseListFilter(q url.Values) views.ListFilter {
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	dup := get("dup")
	return views.ListFilter{Q: get("q"), Endpoint: get("endpoint"), Type: get("type"),
		Verdict: get("verdict"), Reason: get("reason"), Range: get("range"),
		Since: get("since"), Until: get("until"),
		Dup: dup == "1" || dup == "true" || dup == "on"}
}

// parseRange reads a relative range: a whole number of minutes, hours or days ("15m", "24h",
// "7d"), at most a year.
func parseRange(s string) (time.Duration, error) {
	bad := &db.ValidationError{Message: "range must look like 15m, 24h or 7d (at most 365d)"}
	if len(s) < 2 {
		return 0, bad
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 {
		return 0, bad
	}
	unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 || time.Duration(n)*unit > 365*24*time.Hour {
		return 0, bad
	}
	return time.Duration(n) * unit, nil
}

// parseTime reads an absolute time as a person or a script writes it: the form's
// 2026-03-24T09:30 (UTC, like every time plaudhook shows), a date, RFC 3339, or Unix seconds.
func parseTime(name, s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		t := time.Unix(secs, 0).UTC()
		return &t, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04",
		"2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, &db.ValidationError{Message: name +
		" must be a time like 2026-03-24T09:30 (UTC), RFC 3339 or Unix seconds"}
}

// timeRange turns the filter's range or since/until into absolute bounds.
func (s *Server) timeRange(lf views.ListFilter) (since, until *time.Time, err error) {
	if lf.Range != "" {
		d, err := parseRange(lf.Range)
		if err != nil {
			return nil, nil, err
		}
		t := s.now().UTC().Add(-d)
		return &t, nil, nil
	}
	if since, err = parseTime("since", lf.Since); err != nil {
		return nil, nil, err
	}
	if until, err = parseTime("until", lf.Until); err != nil {
		return nil, nil, err
	}
	return since, until, nil
}

// eventFilter converts a list filter into the event query. Verdict and reason do not apply to
// events (every event is verified); the event list sends them to the delivery list instead.
func (s *Server) eventFilter(lf views.ListFilter) (db.EventFilter, error) {
	var f db.EventFilter
	var err error
	if f.Since, f.Until, err = s.timeRange(lf); err != nil {
		return f, err
	}
	if lf.Endpoint != "" {
		f.EndpointSlug = &lf.Endpoint
	}
	if lf.Type != "" {
		t := lf.Type
		if t == views.NoType {
			t = ""
		}
		f.EventType = &t
	}
	if lf.Dup {
		f.Duplicates = ptrTo(true)
	}
	if lf.Q != "" {
		f.Search = &lf.Q
	}
	return f, nil
}

// deliveryFilter converts a list filter into the delivery query.
func (s *Server) deliveryFilter(lf views.ListFilter) (db.DeliveryFilter, error) {
	ef, err := s.eventFilter(lf)
	if err != nil {
		return db.DeliveryFilter{}, err
	}
	f := db.DeliveryFilter{EndpointSlug: ef.EndpointSlug, EventType: ef.EventType,
		Since: ef.Since, Until: ef.Until, Duplicates: ef.Duplicates, Search: ef.Search}
	switch v := db.Verdict(lf.Verdict); v {
	case db.Verified, db.Rejected:
		f.Verdict = &v
	case "":
	default:
		return f, &db.ValidationError{Message: "verdict must be verified or rejected"}
	}
	if lf.Reason != "" {
		f.Reason = &lf.Reason
	}
	return f, nil
}

func ptrTo[T any](v T) *T { return &v }

// parseBefore reads a list's keyset cursor.
func parseBefore(q url.Values) (int64, error) {
	v := q.Get("before")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, &db.ValidationError{Message: "before must be an event or delivery number"}
	}
	return n, nil
}

// filterOptions gathers the choices of the filter form. A failure leaves a choice empty
// rather than failing the page: the list itself is what matters.
func (s *Server) filterOptions(ctx context.Context) views.FilterOptions {
	var o views.FilterOptions
	if eps, err := s.store.FindEndpoints(ctx); err != nil {
		s.log.Warn("list endpoints for filters", "error", err)
	} else {
		for _, e := range eps {
			o.Endpoints = append(o.Endpoints, views.EndpointOption{Slug: e.Slug, Name: e.Name})
		}
	}
	types, err := s.store.FindEventTypes(ctx)
	if err != nil {
		s.log.Warn("list event types for filters", "error", err)
	}
	o.Types = types
	return o
}

// handleEventIndex lists events newest first under the filters of its URL; the first page
// updates live with matching rows only.
func (s *Server) handleEventIndex(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lf := parseListFilter(q)

	// Verdict and reason are delivery facts: show the delivery list with the same filters.
	if lf.Verdict == string(db.Rejected) || lf.Reason != "" {
		http.Redirect(w, r, views.ListURL("/deliveries", lf, 0), http.StatusSeeOther)
		return
	}
	lf.Verdict = ""
	f, err := s.eventFilter(lf)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if f.Before, err = parseBefore(q); err != nil {
		s.respondError(w, r, err)
		return
	}
	f.Limit = listPage

	events, next, err := s.store.FindEvents(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if err := s.store.FillDrift(r.Context(), events); err != nil {
		s.log.Warn("mark schema drift", "error", err)
	}
	props := views.EventListProps{Events: events, Next: next, Before: f.Before, Filter: lf,
		Options: s.filterOptions(r.Context()), Live: f.Before == 0,
		SendCommand: s.cfg.SendCommand}
	s.render(w, r, views.EventList(s.page(r, "Events", "events"), props))
}

// handleDeliveryIndex lists deliveries, verified and rejected, under the filters of its URL.
func (s *Server) handleDeliveryIndex(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lf := parseListFilter(q)
	f, err := s.deliveryFilter(lf)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	before, err := parseBefore(q)
	if err != nil {
		s.respondError(w, r, err)
		return
	}

	// One row more than shown tells whether an older page exists.
	f.Before, f.Limit = before, listPage+1
	ds, err := s.store.FindDeliveries(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props := views.DeliveryListProps{Filter: lf, Before: before, Live: before == 0,
		Options: s.filterOptions(r.Context())}
	if len(ds) > listPage {
		ds = ds[:listPage]
		props.Next = ds[len(ds)-1].ID
	}
	props.Deliveries = ds
	nav := "deliveries"
	if lf.Verdict == string(db.Rejected) {
		nav = "rejected"
	}
	s.render(w, r, views.DeliveryList(s.page(r, "Deliveries", nav), props))
}

// streamFilter is the filter a list page passed to its live stream: only matching rows of that
// list are sent.
type streamFilter struct {
	list       string // "events" or "deliveries"
	all        bool   // no filter: every row of the list matches
	events     db.EventFilter
	deliveries db.DeliveryFilter
}

// parseStreamFilter reads the list and filter of GET /events/stream. Without a list parameter
// the stream sends everything, as before filters existed (nil).
func (s *Server) parseStreamFilter(q url.Values) (*streamFilter, error) {
	list := q.Get("list")
	if list == "" {
		return nil, nil
	}
	if list == "transcripts" {
		// The transcript list shows only new transcripts, unfiltered (its filters apply on
		// reload): none of the event and delivery rows every delivery brings.
		return &streamFilter{list: list, all: true}, nil
	}
	lf := parseListFilter(q)
	sf := &streamFilter{list: list, all: lf.IsZero()}
	var err error
	switch list {
	case "events":
		sf.events, err = s.eventFilter(lf)
	case "deliveries":
		sf.deliveries, err = s.deliveryFilter(lf)
	default:
		err = &db.ValidationError{Message: "list must be events, deliveries or transcripts"}
	}
	return sf, err
}

// streamWants decides whether a live message goes to a filtered stream: rows of the other list
// (and messages of other pages) never do, rows of its list only when they match. The message's
// facts answer when they can; otherwise the database is asked, so a live row matches exactly
// when the page would show it.
func (s *Server) streamWants(ctx context.Context, sf *streamFilter, m live.Message) bool {
	if sf == nil {
		return true
	}
	if ok, decided := sf.matchFacts(&m); decided {
		return ok
	}
	var ok bool
	var err error
	if sf.list == "events" {
		ok, err = s.store.EventMatches(ctx, sf.events, m.EventID)
	} else {
		ok, err = s.store.DeliveryMatches(ctx, sf.deliveries, m.ID)
	}
	if err != nil {
		s.log.Warn("match live row against filter", "error", err)
		return false
	}
	return ok
}

// wantsGroup reports whether a stream with this filter may want live messages of group g (see
// stream.go): a list's stream wants only the rows of that list.
func (sf *streamFilter) wantsGroup(g int) bool {
	switch {
	case sf == nil:
		return true
	case sf.list == "events":
		return g == groupEventNew || g == groupEventUpdate
	case sf.list == "transcripts":
		return g == groupTranscript
	default:
		return g == groupDelivery
	}
}

// matchFacts decides from a live message's facts alone whether it belongs on the stream.
// decided is false when they cannot tell: a search, or a fact the message does not carry. It
// mirrors the conditions of db.EventMatches and db.DeliveryMatches.
func (sf *streamFilter) matchFacts(m *live.Message) (ok, decided bool) {
	switch {
	case m.Name == "transcript-new":
		return sf.list == "transcripts", true
	case strings.HasPrefix(m.Name, "event-"):
		if sf.list != "events" {
			return false, true
		}
		if sf.all {
			return true, true
		}
		f := sf.events
		return rowFacts(m, f.EndpointID, f.EndpointSlug, f.EventType, f.Since, f.Until,
			f.Duplicates, f.Search)
	case strings.HasPrefix(m.Name, "delivery-"):
		if sf.list != "deliveries" {
			return false, true
		}
		if sf.all {
			return true, true
		}
		f := sf.deliveries
		if f.Verdict != nil && string(*f.Verdict) != m.Verdict {
			return false, true
		}
		if f.Reason != nil && (m.Verdict != string(db.Rejected) || m.Reason != *f.Reason) {
			return false, true
		}
		if f.EventID != nil && m.EventID != *f.EventID {
			return false, true
		}
		return rowFacts(m, f.EndpointID, f.EndpointSlug, f.EventType, f.Since, f.Until,
			f.Duplicates, f.Search)
	default:
		return false, true // a list shows only its own rows
	}
}

// rowFacts checks the conditions events and deliveries share against a message's facts.
func rowFacts(m *live.Message, endpointID *int64, slug, typ *string, since, until *time.Time,
	dup *bool, search *string) (ok, decided bool) {
	decided = search == nil
	if endpointID != nil {
		if m.EndpointID == 0 {
			decided = false
		} else if m.EndpointID != *endpointID {
			return false, true
		}
	}
	if slug != nil {
		if m.Endpoint == "" {
			decided = false
		} else if m.Endpoint != *slug {
			return false, true
		}
	}
	if typ != nil {
		if !m.TypeKnown {
			decided = false
		} else if m.EventType != *typ {
			return false, true
		}
	}
	if since != nil || until != nil {
		if m.Received.IsZero() {
			decided = false
		} else {
			at := m.Received.UnixMicro() // stored as microseconds
			if since != nil && at < since.UnixMicro() || until != nil && at >= until.UnixMicro() {
				return false, true
			}
		}
	}
	if dup != nil && *dup != m.Duplicate {
		return false, true
	}
	return decided, decided
}

// listExportFormat reads the format parameter of a list export.
func listExportFormat(q url.Values) (string, error) {
	switch f := q.Get("format"); f {
	case "ndjson", "csv":
		return f, nil
	case "":
		return "ndjson", nil
	}
	return "", &db.ValidationError{Message: "format must be ndjson or csv"}
}

// handleEventExport streams the filtered events as NDJSON or CSV (GET /events/export).
func (s *Server) handleEventExport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lf := parseListFilter(q)
	f, err := s.eventFilter(lf)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	format, err := listExportFormat(q)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	s.exportEvents(w, r, f, format, q.Get("body") == "1")
}

// handleDeliveryExport streams the filtered deliveries as NDJSON or CSV.
func (s *Server) handleDeliveryExport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := s.deliveryFilter(parseListFilter(q))
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	format, err := listExportFormat(q)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	s.exportDeliveries(w, r, f, format)
}

// handleSchemaIndex lists the fields seen per event type (GET /schema?type=...).
func (s *Server) handleSchemaIndex(w http.ResponseWriter, r *http.Request) {
	types, err := s.store.FindSchemaTypes(r.Context())
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props := views.SchemaPageProps{Types: types, Selected: r.URL.Query().Get("type")}
	s.render(w, r, views.SchemaPage(s.page(r, "Fields", ""), props))
}

// compareRef names one side of a comparison.
type compareRef struct {
	delivery bool
	id       int64
}

// compareRefs reads the two sides: e=1&e=2 (events), d=3&d=4 (deliveries), a mix, or the
// form's kind=e&a=1&b=2. "#12" is read as 12.
func compareRefs(q url.Values) ([]compareRef, error) {
	var refs []compareRef
	read := func(v string, delivery bool) error {
		n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(v), "#"), 10, 64)
		if err != nil || n < 1 {
			return &db.ValidationError{Message: fmt.Sprintf("%q is not an event or delivery number", v)}
		}
		refs = append(refs, compareRef{delivery: delivery, id: n})
		return nil
	}
	for _, v := range q["e"] {
		if err := read(v, false); err != nil {
			return nil, err
		}
	}
	for _, v := range q["d"] {
		if err := read(v, true); err != nil {
			return nil, err
		}
	}
	for _, k := range []string{"a", "b"} {
		if v := q.Get(k); v != "" {
			if err := read(v, q.Get("kind") == "d"); err != nil {
				return nil, err
			}
		}
	}
	return refs, nil
}

// handleCompare compares two events or deliveries: a structural diff of their bodies and their
// headers side by side. Without exactly two, it shows the form that picks them.
func (s *Server) handleCompare(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	refs, err := compareRefs(q)
	form := views.CompareFormProps{A: q.Get("a"), B: q.Get("b"), Kind: q.Get("kind")}
	if err != nil {
		form.Message = err.Error()
		w.WriteHeader(http.StatusUnprocessableEntity)
		s.render(w, r, views.CompareForm(s.page(r, "Compare", ""), form))
		return
	}
	if len(refs) != 2 {
		status := http.StatusOK
		if len(refs) > 0 {
			form.Message = fmt.Sprintf("Pick exactly two to compare (%d were given).", len(refs))
			status = http.StatusUnprocessableEntity
		}
		w.WriteHeader(status)
		s.render(w, r, views.CompareForm(s.page(r, "Compare", ""), form))
		return
	}

	// Load both sides, then diff their bodies.
	var sides [2]views.CompareSide
	for i, ref := range refs {
		if sides[i], err = s.compareSide(r.Context(), ref); err != nil {
			s.respondError(w, r, err)
			return
		}
	}
	props := views.CompareProps{A: sides[0], B: sides[1]}
	changes, truncated, err := jsondiff.Diff(sides[0].Body, sides[1].Body)
	switch {
	case errors.Is(err, jsondiff.ErrNotJSON):
		props.NotJSON = "No field-by-field comparison: the " + strings.SplitN(err.Error(), " ", 2)[0] +
			" body is not JSON. Both are shown in full below."
	case err != nil:
		s.respondError(w, r, err)
		return
	}
	for _, c := range changes {
		props.Changes = append(props.Changes, views.DiffChange{Path: c.Path, Kind: string(c.Kind),
			Old: c.Old, New: c.New})
	}
	props.Truncated = truncated
	s.render(w, r, views.ComparePage(s.page(r, "Compare", ""), props))
}

// compareSide loads one side: an event (its body, and the headers of its first delivery) or a
// delivery.
func (s *Server) compareSide(ctx context.Context, ref compareRef) (views.CompareSide, error) {
	var side views.CompareSide
	if ref.delivery {
		d, err := s.store.FindDeliveryByID(ctx, ref.id)
		if err != nil {
			return side, err
		}
		side = views.CompareSide{Label: "Delivery #" + strconv.FormatInt(d.ID, 10),
			URL: views.DeliveryURL(d.ID), Endpoint: d.Endpoint, ReceivedAt: d.ReceivedAt,
			Size: d.Size, SHA256: d.BodySHA256, Verdict: string(d.Verdict), Reason: d.Reason,
			Header: d.Header, Body: d.Body}
		if d.EventID != 0 {
			if e, err := s.store.FindEventByID(ctx, d.EventID); err == nil {
				side.EventType = views.EventTypeLabel(e)
			}
		}
		return side, nil
	}
	e, err := s.store.FindEventByID(ctx, ref.id)
	if err != nil {
		return side, err
	}
	first, err := s.store.FindDeliveryByID(ctx, e.BodyDeliveryID)
	if err != nil {
		return side, err
	}
	return views.CompareSide{Label: "Event #" + strconv.FormatInt(e.ID, 10),
		URL: views.EventURL(e.ID), EventType: views.EventTypeLabel(e), Endpoint: e.Endpoint,
		ReceivedAt: e.FirstReceivedAt, Size: e.Size, SHA256: first.BodySHA256,
		Verdict: string(first.Verdict), Header: first.Header, Body: first.Body}, nil
}

// dashboardSpans maps the dashboard's ranges to their span and bar width.
var dashboardSpans = map[string]struct{ span, bucket time.Duration }{
	"24h": {24 * time.Hour, time.Hour},
	"7d":  {7 * 24 * time.Hour, 6 * time.Hour},
	"30d": {30 * 24 * time.Hour, 24 * time.Hour},
}

// handleDashboard is the home page: traffic, failures, duplicates and latency per endpoint and
// event type over the last 24 hours (or 7 or 30 days).
func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rng := q.Get("range")
	if rng == "" {
		rng = "24h"
	}
	span, ok := dashboardSpans[rng]
	if !ok {
		s.respondError(w, r, &db.ValidationError{Message: "range must be 24h, 7d or 30d"})
		return
	}
	f := db.DashboardFilter{Bucket: span.bucket}
	slug := q.Get("endpoint")
	if slug != "" {
		id, err := s.store.EndpointIDBySlug(r.Context(), slug)
		if err != nil {
			s.respondError(w, r, err)
			return
		}
		f.EndpointID = &id
	}

	// Whole bars only: the last one holds now.
	f.Until = s.now().UTC().Truncate(span.bucket).Add(span.bucket)
	f.Since = f.Until.Add(-span.span)
	d, err := s.store.FindDashboard(r.Context(), f)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props := views.DashboardProps{D: d, Range: rng, Endpoint: slug,
		Endpoints: s.filterOptions(r.Context()).Endpoints}
	props.Events, props.Traffic = dashboardCharts(d, span.bucket)
	s.render(w, r, views.Dashboard(s.page(r, "Dashboard", "dashboard"), props))
}

// dashboardCharts builds the two volume charts: events by type (the six most frequent, then
// the rest together) and deliveries by verdict.
func dashboardCharts(d db.Dashboard, bucket time.Duration) (views.Chart, views.Chart) {
	labels := make([]string, len(d.Buckets))
	for i, t := range d.Buckets {
		switch {
		case bucket >= 24*time.Hour:
			labels[i] = t.Format("Jan 2")
		case bucket > time.Hour:
			labels[i] = t.Format("Mon 15:04")
		default:
			labels[i] = t.Format("15:04")
		}
	}
	per := "hour"
	switch {
	case bucket >= 24*time.Hour:
		per = "day"
	case bucket > time.Hour:
		per = strconv.Itoa(int(bucket/time.Hour)) + " hours"
	}
	events := views.Chart{Title: "Events per " + per + " by type (UTC)", Labels: labels}
	var other []int
	for i, tv := range d.Types {
		if i < 6 {
			name := tv.EventType
			if name == "" {
				name = views.NoType
			}
			events.Series = append(events.Series, views.Series{Name: name, Values: tv.Counts})
			continue
		}
		if other == nil {
			other = make([]int, len(d.Buckets))
		}
		for k, v := range tv.Counts {
			other[k] += v
		}
	}
	if other != nil {
		events.Series = append(events.Series, views.Series{Name: "other types", Values: other})
	}
	traffic := views.Chart{Title: "Deliveries per " + per + " by verdict (UTC)", Labels: labels,
		Series: []views.Series{{Name: "verified", Values: d.Verified},
			{Name: "rejected", Values: d.Rejected}}}
	return events, traffic
}

// eventExplorer adds the explorer's parts of an event page: the event's schema drift, its body
// as a foldable JSON tree, and the previous event of the same type to compare it with.
func (s *Server) eventExplorer(ctx context.Context, props *views.EventPageProps) {
	es := []db.Event{props.Event}
	if err := s.store.FillDrift(ctx, es); err != nil {
		s.log.Warn("mark schema drift", "event_id", props.Event.ID, "error", err)
	}
	props.Event = es[0]
	if tree, ok := views.ParseJSON(props.Body); ok {
		props.Tree = tree
	}
	typ := props.Event.EventType
	prev, _, err := s.store.FindEvents(ctx, db.EventFilter{EventType: &typ,
		Before: props.Event.ID, Limit: 1})
	if err != nil {
		s.log.Warn("find previous event of a type", "event_id", props.Event.ID, "error", err)
	}
	if len(prev) == 1 {
		props.PreviousSameType = prev[0].ID
	}
}

// apiEventFilter adds the explorer's filters to an API event query: q (a Plaud id, "#12" or
// payload words), dup=1, range (wins over since) and type=(none) for events that name no type.
func (s *Server) apiEventFilter(q url.Values, f *db.EventFilter) error {
	lf := parseListFilter(q)
	if f.EventType != nil && *f.EventType == views.NoType {
		f.EventType = ptrTo("")
	}
	if lf.Q != "" {
		f.Search = &lf.Q
	}
	if lf.Dup {
		f.Duplicates = ptrTo(true)
	}
	if lf.Range != "" {
		d, err := parseRange(lf.Range)
		if err != nil {
			return badRequest(err.Error())
		}
		f.Since, f.Until = ptrTo(s.now().UTC().Add(-d)), nil
	}
	return nil
}

// apiDeliveryFilter adds the explorer's filters to an API delivery query: endpoint, type,
// reason, q, dup and since, until or range.
func (s *Server) apiDeliveryFilter(q url.Values, f *db.DeliveryFilter) error {
	lf := parseListFilter(q)
	lf.Verdict = "" // read by the API handler
	df, err := s.deliveryFilter(lf)
	if err != nil {
		return badRequest(err.Error())
	}
	df.Verdict, df.Before, df.Limit = f.Verdict, f.Before, f.Limit
	*f = df
	return nil
}

// apiExport answers ?format= on an API list: the whole filtered set, streamed (cursor and limit
// do not apply).
func (s *Server) apiExport(w http.ResponseWriter, r *http.Request, format string, export func(string)) {
	if format != "ndjson" && format != "csv" {
		s.respondError(w, r, badRequest("format must be ndjson or csv"))
		return
	}
	export(format)
}
