package web

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/plaudhook/plaudhook/db"
)

// Exports stream: rows are read from storage a page at a time and written as they come, through
// a small buffer flushed every exportFlushRows rows, so memory stays flat however many rows
// match. An export outlives the server's write timeout by design; each flush gets its own
// deadline instead, so a reader that stops reading cannot hold the handler.
const (
	exportFlushRows = 500
	exportBuffer    = 64 << 10
)

// exportWriter writes one export response.
type exportWriter struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	buf  *bufio.Writer
	rows int
}

func (s *Server) newExport(w http.ResponseWriter, r *http.Request, name, format string) *exportWriter {
	h := w.Header()
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	stamp := s.now().UTC().Format("20060102-150405")
	h.Set("Content-Disposition", `attachment; filename="`+name+"-"+stamp+"."+format+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	ew := &exportWriter{w: w, rc: http.NewResponseController(w), buf: bufio.NewWriterSize(w, exportBuffer)}
	ew.rc.SetWriteDeadline(time.Now().Add(s.exportWriteTimeout()))
	return ew
}

// exportWriteTimeout is how long one flush of an export may take.
func (s *Server) exportWriteTimeout() time.Duration { return 30 * time.Second }

// row notes one more row written and flushes every exportFlushRows rows.
func (ew *exportWriter) row(s *Server) error {
	ew.rows++
	if ew.rows%exportFlushRows != 0 {
		return nil
	}
	return ew.flush(s)
}

func (ew *exportWriter) flush(s *Server) error {
	if err := ew.buf.Flush(); err != nil {
		return err
	}
	if err := ew.rc.Flush(); err != nil && err != http.ErrNotSupported {
		return err
	}
	ew.rc.SetWriteDeadline(time.Now().Add(s.exportWriteTimeout()))
	return nil
}

// finish flushes the rest and logs how the export ended. An error after the first byte cannot
// change the status any more: it is logged, and the reader sees a short file.
func (ew *exportWriter) finish(s *Server, r *http.Request, kind string, err error) {
	if err == nil {
		err = ew.flush(s)
	}
	if err != nil {
		s.log.Warn("export ended early", "export", kind, "rows", ew.rows, "error", err,
			slogRequest(r))
		return
	}
	s.log.Debug("export done", "export", kind, "rows", ew.rows, slogRequest(r))
}

// exportEvents writes every event matching f as NDJSON (the API's event objects, with the body
// when withBody) or CSV. The API's GET /api/v1/events?format= calls it too.
func (s *Server) exportEvents(w http.ResponseWriter, r *http.Request, f db.EventFilter, format string, withBody bool) {
	s.audit(r, "events.export", "", "format "+format+exportFilterText(r))
	ew := s.newExport(w, r, "events", format)
	var cw *csv.Writer
	var enc *json.Encoder
	if format == "csv" {
		cw = csv.NewWriter(ew.buf)
		cw.Write([]string{"id", "endpoint", "event_type", "envelope_id", "file_id",
			"transcription_id", "device_id", "received_at", "last_received_at",
			"delivery_count", "size", "is_json", "summary"})
	} else {
		enc = json.NewEncoder(ew.buf)
	}

	err := s.store.ExportEvents(r.Context(), f, func(e db.Event) error {
		if cw != nil {
			cw.Write(csvSafe([]string{strconv.FormatInt(e.ID, 10), e.Endpoint, e.EventType,
				e.EnvelopeID, e.FileID, e.TranscriptionID, e.DeviceID,
				e.FirstReceivedAt.Format(time.RFC3339Nano), e.LastReceivedAt.Format(time.RFC3339Nano),
				strconv.Itoa(e.DeliveryCount), strconv.FormatInt(e.Size, 10),
				strconv.FormatBool(e.JSON), e.Summary}))
			if err := cw.Error(); err != nil {
				return err
			}
			return ew.row(s)
		}
		line := exportedEvent{apiEvent: toAPIEvent(e)}
		if withBody {
			body, err := s.store.FindBody(r.Context(), e.BodyDeliveryID)
			if err != nil {
				return err
			}
			line.setBody(body, e.JSON)
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
		return ew.row(s)
	})
	if cw != nil {
		cw.Flush()
	}
	ew.finish(s, r, "events", err)
}

// exportedEvent is one NDJSON line: the API's event, and its body when asked for (as JSON when
// it is, else as text, or base64 when it is not UTF-8).
type exportedEvent struct {
	apiEvent
	Body       json.RawMessage `json:"body,omitempty"`
	BodyText   *string         `json:"body_text,omitempty"`
	BodyBase64 []byte          `json:"body_base64,omitempty"`
}

func (x *exportedEvent) setBody(body []byte, isJSON bool) {
	switch {
	case isJSON && json.Valid(body):
		x.Body = body
	case strings.ToValidUTF8(string(body), "") == string(body):
		t := string(body)
		x.BodyText = &t
	default:
		x.BodyBase64 = body
	}
}

// exportDeliveries writes every delivery matching f (without bodies) as NDJSON (the API's
// delivery objects) or CSV.
func (s *Server) exportDeliveries(w http.ResponseWriter, r *http.Request, f db.DeliveryFilter, format string) {
	s.audit(r, "deliveries.export", "", "format "+format+exportFilterText(r))
	ew := s.newExport(w, r, "deliveries", format)
	var cw *csv.Writer
	var enc *json.Encoder
	if format == "csv" {
		cw = csv.NewWriter(ew.buf)
		cw.Write([]string{"id", "endpoint", "event_id", "received_at", "verdict", "reason",
			"scheme", "duplicate", "size", "body_sha256", "method", "path", "remote_addr",
			"ack_ms"})
	} else {
		enc = json.NewEncoder(ew.buf)
	}

	err := s.store.ExportDeliveries(r.Context(), f, func(d db.Delivery) error {
		if cw != nil {
			event := ""
			if d.EventID != 0 {
				event = strconv.FormatInt(d.EventID, 10)
			}
			cw.Write(csvSafe([]string{strconv.FormatInt(d.ID, 10), d.Endpoint, event,
				d.ReceivedAt.Format(time.RFC3339Nano), string(d.Verdict), d.Reason, d.Scheme,
				strconv.FormatBool(d.Duplicate), strconv.FormatInt(d.Size, 10), d.BodySHA256,
				d.Method, d.Path, d.RemoteAddr,
				strconv.FormatFloat(float64(d.AckMicros)/1000, 'f', 3, 64)}))
			if err := cw.Error(); err != nil {
				return err
			}
			return ew.row(s)
		}
		if err := enc.Encode(toAPIDelivery(d)); err != nil {
			return err
		}
		return ew.row(s)
	})
	if cw != nil {
		cw.Flush()
	}
	ew.finish(s, r, "deliveries", err)
}

// csvSafe neutralises cells a spreadsheet would run as a formula (payload text is the
// sender's): a leading =, +, -, @, tab or carriage return gets a quote in front.
func csvSafe(cells []string) []string {
	for i, c := range cells {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			cells[i] = "'" + c
		}
	}
	return cells
}

// exportFilterText renders the filter of an export for its audit entry.
func exportFilterText(r *http.Request) string {
	q := r.URL.Query()
	q.Del("format")
	if len(q) == 0 {
		return ", everything"
	}
	return ", filter " + q.Encode()
}
