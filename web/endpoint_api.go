package web

import (
	"net/http"
	"time"
)

// apiEndpoint is an endpoint as the API shows it: never a secret value.
type apiEndpoint struct {
	ID             int64       `json:"id"`
	Slug           string      `json:"slug"`
	Name           string      `json:"name"`
	Path           string      `json:"path"`
	ExpectedTypes  []string    `json:"expected_types"`
	Note           string      `json:"note"`
	CreatedAt      time.Time   `json:"created_at"`
	LastDeliveryAt *time.Time  `json:"last_delivery_at"`
	Verified24h    int         `json:"verified_24h"`
	Rejected24h    int         `json:"rejected_24h"`
	Secrets        []apiSecret `json:"secrets"`
}

// apiSecret is a secret as the API shows it: label and fingerprint, never the value.
type apiSecret struct {
	ID            int64      `json:"id"`
	Label         string     `json:"label"`
	Fingerprint   string     `json:"fingerprint"`
	Source        string     `json:"source"`
	State         string     `json:"state"` // active, retiring, retired, revoked
	RetireAt      *time.Time `json:"retire_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
	CreatedAt     *time.Time `json:"created_at"`
	CreatedBy     string     `json:"created_by"`
	LastMatchedAt *time.Time `json:"last_matched_at"`
	MatchCount    int64      `json:"match_count"`
}

// handleAPIEndpointIndex is GET /api/v1/endpoints: every endpoint with its secrets' labels,
// fingerprints and states, and its traffic over 24 hours.
func (s *Server) handleAPIEndpointIndex(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	endpoints, err := s.store.FindEndpoints(ctx)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	now := s.now()
	out := make([]apiEndpoint, 0, len(endpoints))
	for _, e := range endpoints {
		h, err := s.store.FindEndpointTraffic(ctx, e.ID, now)
		if err != nil {
			s.respondError(w, r, err)
			return
		}
		rows, err := s.secretRows(ctx, e.ID, now)
		if err != nil {
			s.respondError(w, r, err)
			return
		}
		a := apiEndpoint{ID: e.ID, Slug: e.Slug, Name: e.Name, Path: e.Path(),
			ExpectedTypes: e.ExpectedTypes, Note: e.Note, CreatedAt: e.CreatedAt,
			LastDeliveryAt: timePtr(h.LastDeliveryAt), Verified24h: h.Verified24h,
			Rejected24h: h.Rejected24h, Secrets: []apiSecret{}}
		if a.ExpectedTypes == nil {
			a.ExpectedTypes = []string{}
		}
		for _, row := range rows {
			x := row.Secret
			a.Secrets = append(a.Secrets, apiSecret{ID: x.ID, Label: x.Label,
				Fingerprint: x.Fingerprint, Source: string(x.Source), State: row.Status,
				RetireAt: timePtr(x.RetireAt), RevokedAt: timePtr(x.RevokedAt),
				CreatedAt: timePtr(x.CreatedAt), CreatedBy: x.CreatedBy,
				LastMatchedAt: timePtr(x.LastMatchedAt), MatchCount: x.MatchCount})
		}
		out = append(out, a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": out})
}

// timePtr is nil for the zero time, so the API says null rather than year 1.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
