package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/plaudhook/plaudhook/db"
	"github.com/plaudhook/plaudhook/views"
	"github.com/plaudhook/plaudhook/web/replay"
	"github.com/plaudhook/plaudhook/web/signature"
)

// Admins manage replay targets and the outbound address policy here. A target's secret and
// extra header values go from the form straight to storage, which seals them; they are never
// shown again, logged or audited.

// reservedHeaders cannot be set as a target's extra headers: net/http owns some, and the others
// would break signing or the replay marker.
var reservedHeaders = map[string]bool{"Host": true, "Content-Length": true,
	"Transfer-Encoding": true, "Connection": true, "User-Agent": true,
	signature.HeaderSignature: true, signature.HeaderTimestamp: true,
	ReplayMarkerHeader: true}

// handleTargetIndex lists the targets with the add form and the address policy.
func (s *Server) handleTargetIndex(w http.ResponseWriter, r *http.Request) {
	s.renderTargets(w, r, http.StatusOK, views.TargetsProps{
		Form: views.TargetForm{DefaultMode: string(db.ModeOriginal)}})
}

// renderTargets renders the targets page with the stored targets and policy.
func (s *Server) renderTargets(w http.ResponseWriter, r *http.Request, status int, props views.TargetsProps) {
	var err error
	if props.Targets, err = s.store.FindTargets(r.Context()); err != nil {
		s.respondError(w, r, err)
		return
	}
	pc, _, err := s.replayPolicy(r.Context())
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	props.PolicyMode = pc.Mode
	props.PolicyAllow = strings.Join(pc.Allow, "\n")
	props.PolicyDeny = strings.Join(pc.Deny, "\n")
	s.renderStatus(w, r, status, views.TargetsPage(s.page(r, "Replay targets", "targets"), props))
}

// handleTargetCreate adds a target from the form.
func (s *Server) handleTargetCreate(w http.ResponseWriter, r *http.Request) {
	in, form, err := parseTargetForm(r, false)
	if err == nil {
		var t db.Target
		if t, err = s.store.CreateTarget(r.Context(), in); err == nil {
			s.audit(r, "target.create", "target "+t.Name, targetAuditDetail(in))
			http.Redirect(w, r, "/targets", http.StatusSeeOther)
			return
		}
	}

	// Refused: show the form again with what was typed (never the secret).
	msg, ok := formError(err)
	if !ok {
		s.respondError(w, r, err)
		return
	}
	s.renderTargets(w, r, http.StatusUnprocessableEntity, views.TargetsProps{Error: msg, Form: form})
}

// handleTargetView shows a target's edit form.
func (s *Server) handleTargetView(w http.ResponseWriter, r *http.Request) {
	t, err := s.targetFromPath(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	s.render(w, r, views.TargetPage(s.page(r, "Target "+t.Name, "targets"),
		views.TargetPageProps{Target: t, Form: targetFormOf(t)}))
}

// handleTargetUpdate saves a target's edit form; blank secret and headers keep the stored ones.
func (s *Server) handleTargetUpdate(w http.ResponseWriter, r *http.Request) {
	t, err := s.targetFromPath(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	in, form, err := parseTargetForm(r, true)
	if err == nil {
		if err = s.store.UpdateTarget(r.Context(), t.ID, in); err == nil {
			s.audit(r, "target.update", "target "+in.Name, targetAuditDetail(in))
			http.Redirect(w, r, "/targets", http.StatusSeeOther)
			return
		}
	}
	msg, ok := formError(err)
	if !ok {
		s.respondError(w, r, err)
		return
	}
	s.renderStatus(w, r, http.StatusUnprocessableEntity, views.TargetPage(
		s.page(r, "Target "+t.Name, "targets"), views.TargetPageProps{Target: t, Form: form, Error: msg}))
}

// handleTargetDelete deletes a target and its forwarding rules.
func (s *Server) handleTargetDelete(w http.ResponseWriter, r *http.Request) {
	t, err := s.targetFromPath(r)
	if err != nil {
		s.respondError(w, r, err)
		return
	}
	if err := s.store.DeleteTarget(r.Context(), t.ID); err != nil {
		s.respondError(w, r, err)
		return
	}
	s.audit(r, "target.delete", "target "+t.Name, t.URL)
	http.Redirect(w, r, "/targets", http.StatusSeeOther)
}

// handlePolicyUpdate saves the outbound address policy; it applies to the next attempt.
func (s *Server) handlePolicyUpdate(w http.ResponseWriter, r *http.Request) {
	pc := PolicyConfig{Mode: r.PostFormValue("mode"), Allow: formLines(r.PostFormValue("allow")),
		Deny: formLines(r.PostFormValue("deny"))}
	if err := s.UpdateReplayPolicy(r.Context(), pc); err != nil {
		msg, ok := formError(err)
		if !ok {
			s.respondError(w, r, err)
			return
		}
		s.renderTargets(w, r, http.StatusUnprocessableEntity, views.TargetsProps{Error: msg,
			Form: views.TargetForm{DefaultMode: string(db.ModeOriginal)}})
		return
	}
	s.audit(r, "replay.policy", "outbound address policy", fmt.Sprintf("mode %s; allow %s; deny %s",
		pc.Mode, orNone(pc.Allow), orNone(pc.Deny)))
	http.Redirect(w, r, "/targets", http.StatusSeeOther)
}

// targetFromPath loads the target named by the {id} path value.
func (s *Server) targetFromPath(r *http.Request) (db.Target, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return db.Target{}, errBadID
	}
	return s.store.FindTargetByID(r.Context(), id)
}

// parseTargetForm reads a target form. When editing, a blank secret or header field keeps the
// stored value; "remove_secret" and a headers field of "-" remove it.
func parseTargetForm(r *http.Request, editing bool) (db.TargetInput, views.TargetForm, error) {
	form := views.TargetForm{Name: strings.TrimSpace(r.PostFormValue("name")),
		URL: strings.TrimSpace(r.PostFormValue("url")), DefaultMode: r.PostFormValue("default_mode"),
		Scheme: r.PostFormValue("scheme"), FollowRedirects: r.PostFormValue("follow_redirects") != ""}
	in := db.TargetInput{Name: form.Name, URL: form.URL, DefaultMode: db.ReplayMode(form.DefaultMode),
		Scheme: form.Scheme, FollowRedirects: form.FollowRedirects}

	// The URL must at least be http(s) with a host; addresses are checked when dialled.
	if _, err := replay.CheckURL(in.URL); err != nil {
		var re *replay.RefusedError
		if errors.As(err, &re) {
			return in, form, &db.ValidationError{Message: "URL: " + re.Error()}
		}
		return in, form, &db.ValidationError{Message: "URL: not a valid http:// or https:// URL"}
	}

	// The secret: trimmed like endpoint secrets, never kept in the form.
	switch raw := r.PostFormValue("secret"); {
	case r.PostFormValue("remove_secret") != "":
		empty := ""
		in.Secret = &empty
	case raw != "":
		v, _, err := db.CleanSecretValue(raw)
		if err != nil {
			return in, form, err
		}
		in.Secret = &v
	case !editing:
		empty := ""
		in.Secret = &empty
	}

	// Extra headers, one per line.
	switch raw := strings.TrimSpace(r.PostFormValue("headers")); {
	case raw == "-":
		h := http.Header{}
		in.Headers = &h
	case raw != "":
		h, err := parseHeaderLines(raw)
		if err != nil {
			return in, form, err
		}
		in.Headers = &h
	case !editing:
		h := http.Header{}
		in.Headers = &h
	}
	return in, form, nil
}

// parseHeaderLines reads "Name: value" lines into a header, refusing names net/http or signing
// own and values with control characters.
func parseHeaderLines(raw string) (http.Header, error) {
	h := http.Header{}
	for _, line := range strings.Split(raw, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || !validHeaderName(name) {
			return nil, &db.ValidationError{Message: fmt.Sprintf(
				"Extra headers: %q is not a \"Name: value\" line.", truncate(line, 40))}
		}
		if reservedHeaders[http.CanonicalHeaderKey(name)] {
			return nil, &db.ValidationError{Message: fmt.Sprintf(
				"Extra headers: %s is set by plaudhook itself.", name)}
		}
		if strings.ContainsFunc(value, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			return nil, &db.ValidationError{Message: fmt.Sprintf(
				"Extra headers: the value of %s contains control characters.", name)}
		}
		h.Add(name, value)
	}
	return h, nil
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if c > 0x7e || c <= 0x20 || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

// targetFormOf fills the edit form from a stored target.
func targetFormOf(t db.Target) views.TargetForm {
	return views.TargetForm{Name: t.Name, URL: t.URL, DefaultMode: string(t.DefaultMode),
		Scheme: t.Scheme, FollowRedirects: t.FollowRedirects}
}

// targetAuditDetail describes a target change without any secret value.
func targetAuditDetail(in db.TargetInput) string {
	d := fmt.Sprintf("%s, mode %s", in.URL, in.DefaultMode)
	if in.Secret != nil {
		if *in.Secret == "" {
			d += ", no own secret"
		} else {
			d += ", own secret set"
		}
	}
	if in.Headers != nil {
		var names []string
		for k := range *in.Headers {
			names = append(names, k)
		}
		d += ", extra headers [" + strings.Join(names, " ") + "]"
	}
	return d
}

// formError returns the user-safe message of a validation error or conflict.
func formError(err error) (string, bool) {
	var ve *db.ValidationError
	switch {
	case errors.As(err, &ve):
		return ve.Message, true
	case errors.Is(err, db.ErrConflict):
		return "That name is already taken.", true
	}
	return "", false
}

// formLines splits a textarea into its non-empty trimmed lines.
func formLines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, " ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
