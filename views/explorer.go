package views

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
)

// NoType is the type filter value that selects events whose body names no type.
const NoType = "(none)"

// ListFilter is the filter of the event or delivery list as its URL carries it, so a filtered
// list can be shared, bookmarked and paged, and the live stream applies the same filter.
type ListFilter struct {
	Q        string // search box: a Plaud id, "#<event number>" or words of the payload
	Endpoint string // endpoint slug
	Type     string // event type, or NoType
	Verdict  string // deliveries only: "verified" or "rejected"
	Reason   string // deliveries only: rejection reason
	Dup      bool   // only duplicates
	Range    string // "15m", "1h", "24h", "7d", "30d": the last such span (wins over Since)
	Since    string // absolute start as typed (2026-03-24T09:00, RFC 3339 or Unix seconds)
	Until    string // absolute end, exclusive
}

// Values returns the filter's URL parameters; unset fields are left out.
func (f ListFilter) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("q", f.Q)
	set("endpoint", f.Endpoint)
	set("type", f.Type)
	set("verdict", f.Verdict)
	set("reason", f.Reason)
	if f.Dup {
		v.Set("dup", "1")
	}
	set("range", f.Range)
	if f.Range == "" {
		set("since", f.Since)
		set("until", f.Until)
	}
	return v
}

// IsZero reports whether no filter is set.
func (f ListFilter) IsZero() bool { return len(f.Values()) == 0 }

// ListURL is the address of a list page under filter f, starting below cursor before (0: the
// newest).
func ListURL(path string, f ListFilter, before int64) string {
	v := f.Values()
	if before > 0 {
		v.Set("before", strconv.FormatInt(before, 10))
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// ListExportURL is the address of the export of a list ("events" or "deliveries") under filter f, in
// format "ndjson" or "csv".
func ListExportURL(list string, f ListFilter, format string) string {
	v := f.Values()
	v.Set("format", format)
	return "/" + list + "/export?" + v.Encode()
}

// StreamURL is the address of the live stream of a list ("events" or "deliveries"): it sends
// only rows that match filter f.
func StreamURL(list string, f ListFilter) string {
	v := f.Values()
	v.Set("list", list)
	return "/events/stream?" + v.Encode()
}

// FilterOptions are the choices the filter form offers.
type FilterOptions struct {
	Endpoints []EndpointOption
	Types     []string
}

// EndpointOption is one endpoint in the filter form.
type EndpointOption struct {
	Slug, Name string
}

// Ranges are the relative time ranges the filter form offers, with their labels.
var Ranges = []struct{ Value, Label string }{
	{"15m", "last 15 min"}, {"1h", "last hour"}, {"24h", "last 24 h"}, {"7d", "last 7 days"},
	{"30d", "last 30 days"},
}

// Reasons are the rejection reasons the filter form offers.
var Reasons = []string{"signature_mismatch", "missing_signature", "malformed_signature",
	"timestamp_out_of_tolerance", "bad_timestamp", "missing_timestamp", "no_secret_configured",
	"payload_too_large", "unsupported_encoding", "bad_encoding", "scheme_downgrade", "unreadable_body"}

// typeLabel names a type filter option.
func typeLabel(t string) string {
	if t == "" {
		return NoType
	}
	return t
}

// typeValue is the filter value of a stored type.
func typeValue(t string) string {
	if t == "" {
		return NoType
	}
	return t
}

// RelTime renders t for a <time> element: exact UTC text (the script may turn it into "3 min
// ago", keeping the exact time as its title).
func RelTime(t time.Time) string { return FormatTime(t) }

// Percent renders a share as a percentage with one decimal.
func Percent(x float64) string { return strconv.FormatFloat(x*100, 'f', 1, 64) + " %" }

// Millis renders a duration in milliseconds with up to one decimal.
func Millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms >= 100 {
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	}
	return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
}

// driftTitle is the one-line summary of an event's drift, for a badge's title.
func driftTitle(d db.Drift) string {
	var parts []string
	for _, f := range d.Missing {
		parts = append(parts, "missing "+f.Path)
	}
	for _, f := range d.Added {
		parts = append(parts, "new "+f.Path)
	}
	return "Fields differ from this type's usual ones: " + strings.Join(parts, ", ")
}

// fieldShare says how usual a field is: "in 9 of 11 events (81.8 %)".
func fieldShare(f db.FieldCount) string {
	return fmt.Sprintf("in %d of %d events (%s)", f.Events, f.Of, Percent(f.Share()))
}

// CompareURL is the address of the comparison of two events.
func CompareURL(a, b int64) string { return fmt.Sprintf("/compare?e=%d&e=%d", a, b) }

// idText renders an id for display.
func idText(id int64) string { return "#" + strconv.FormatInt(id, 10) }
