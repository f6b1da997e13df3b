package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
	"github.com/stepgate/stepgate/store"
)

const stepUpFailedMsg = "Additional verification could not be completed, so the request was not sent. Try again, or contact your administrator if this keeps happening."

// serveGateway serves the reserved /.stepgate/ endpoints.
func (h *Handler) serveGateway(w http.ResponseWriter, r *http.Request, t target, ev *event) {
	switch t.Path[len(reservedPrefix)-1:] {
	case "/callback":
		ev.action = "callback"
		h.callback(w, r, ev)
	case "/login":
		ev.action = "login"
		h.login(w, r, ev)
	case "/logout":
		ev.action = "logout"
		h.logout(w, r, ev)
	case "/confirm":
		ev.action = "confirm"
		h.confirm(w, r, ev)
	case "/backchannel-logout":
		ev.action = "backchannel_logout"
		h.backchannelLogout(w, r, ev)
	case "/session":
		ev.action = "session"
		h.sessionInfo(w, r, ev)
	case "/auth", forwardAuthSuffixed(t.Path):
		h.forwardAuth(w, r, t, ev)
	default:
		ev.action = "not_found"
		fail(w, r, http.StatusNotFound, "not_found", "Not found.")
	}
}

// startFlow begins a login (level nil) or a step-up round trip: a fresh
// state, nonce and PKCE verifier in a sealed pending cookie, then a redirect
// to the IdP carrying the level's parameters.
func (h *Handler) startFlow(w http.ResponseWriter, r *http.Request, level *policy.Level, rd string, f *policy.Facts) {
	name, kind := "", "login"
	if level != nil {
		name = level.Name
	}
	if f.Authenticated() {
		kind = "step_up"
	}
	c := h.oidc.Load()
	if c == nil || h.providerDown() {
		// Not discovered yet, or down: no redirect into it.
		h.metrics.flow(kind, name, "idp_unavailable")
		h.idpUnavailable(w, r)
		return
	}
	if rd == "" {
		rd = "/"
	}
	p, err := session.NewPending(name, rd, h.now())
	if err != nil {
		h.internalError(w, r, "cannot start login", err)
		return
	}
	ar := oidc.AuthRequest{State: p.State, Nonce: p.Nonce, Verifier: p.Verifier, Level: level,
		AuthorizationDetails: h.detailsFor(r, rd, f)}
	if f.Authenticated() {
		p.Issuer, p.Subject = f.Issuer, f.Subject
		ar.LoginHint = f.Email
		if ar.LoginHint == "" {
			ar.LoginHint = f.Subject
		}
	}
	// With PAR this is a call to the IdP. There is no fallback to an
	// unpushed URL, whose parameters the user could edit.
	u, err := c.AuthorizeURL(r.Context(), ar)
	if errors.Is(err, oidc.ErrUnavailable) {
		h.providerFailed(err)
		h.metrics.flow(kind, name, "idp_unavailable")
		h.idpUnavailable(w, r)
		return
	}
	if err != nil {
		h.log.Warn("cannot start login at the identity provider", "err", err)
		fail(w, r, http.StatusServiceUnavailable, "unavailable", "Sign-in is briefly unavailable. Try again in a moment.")
		return
	}
	if err := h.sessions.SavePending(w, r, p); err != nil {
		h.internalError(w, r, "cannot save login state", err)
		return
	}
	h.audit(kind+"_start", "level", name, "sub", p.Subject)
	h.metrics.flow(kind, name, "start")
	noStore(w)
	http.Redirect(w, r, u, http.StatusFound)
}

// callback completes a round trip: the state must match a pending flow of
// this browser (single use), the code is exchanged and the ID token
// verified, and only the claims that come back decide.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request, ev *event) {
	w.Header().Set("Referrer-Policy", "no-referrer") // the URL carries the code
	p, err := h.sessions.TakePending(w, r, r.URL.Query().Get("state"), h.now())
	if err != nil {
		h.failFlow(w, r, "callback", nil, errBadState)
		return
	}
	// The pending cookie is single use in this browser; the claim makes
	// the state single use on every replica, so a copy of the cookie and
	// the callback URL replayed elsewhere completes nothing.
	switch first, err := h.claim(r.Context(), "pending-state:"+p.State, session.PendingLifetime); {
	case err != nil:
		h.failFlow(w, r, p.Kind(), &p, errStoreUnavailable)
		return
	case !first:
		h.failFlow(w, r, p.Kind(), &p, errBadState.because("state already used on a replica"))
		return
	}
	res, fe := h.exchange(w, r, &p)
	if fe != nil {
		h.failFlow(w, r, p.Kind(), &p, fe)
		return
	}
	f := res.Facts
	now, ok := h.issueTime(r, f.Subject)
	if !ok {
		return // the browser went away while we waited
	}
	st, err := h.sessions.SaveWith(w, f, res.SID, now)
	if err != nil {
		h.internalError(w, r, "cannot save session", err)
		return
	}
	h.track(r.Context(), st)
	ev.subject = f.Subject
	h.audit(p.Kind()+"_success", "level", p.Level, "sub", f.Subject, "acr", f.ACR, "amr", f.AMR)
	h.metrics.flow(p.Kind(), p.Level, "success")
	rd := safeReturn(p.ReturnTo)
	if rd == "" {
		rd = "/"
	}
	noStore(w)
	http.Redirect(w, r, rd, http.StatusFound)
}

// exchange turns the callback of the round trip p into the facts of a new
// session, or says why it cannot: the IdP refused, the code is missing, the
// ID token is invalid, names another user, or does not meet the level.
func (h *Handler) exchange(w http.ResponseWriter, r *http.Request, p *session.Pending) (oidc.Result, *flowError) {
	q := r.URL.Query()
	var level *policy.Level
	if p.Level != "" {
		if level = h.routesOf(r).levels[p.Level]; level == nil {
			return oidc.Result{}, errLevelGone
		}
	}
	if e := q.Get("error"); e != "" {
		// The IdP refused (unmet_authentication_requirements, access_denied,
		// login_required...). The state is consumed; never redirect again.
		return oidc.Result{}, errIdP.with("error", oauthErrorCode(e))
	}
	c := h.oidc.Load()
	if c == nil {
		return oidc.Result{}, errNotReady
	}
	code := q.Get("code")
	if code == "" {
		return oidc.Result{}, errNoCode
	}
	want := oidc.Expect{Nonce: p.Nonce, Verifier: p.Verifier, Level: level}
	if p.Subject != "" {
		// A step-up for a held transaction sent its details; the token
		// response must carry exactly those (else 403).
		want.AuthorizationDetails = h.detailsFor(r, p.ReturnTo, &policy.Facts{Issuer: p.Issuer, Subject: p.Subject})
	}
	if p.Subject != "" {
		want.Session = &policy.Facts{Issuer: p.Issuer, Subject: p.Subject}
	}
	res, err := c.Exchange(r.Context(), code, want)
	var sue *oidc.StepUpError
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, oidc.ErrSubjectMismatch):
		// Someone completed the step-up as another account: the session
		// this flow started from can no longer be trusted (threat model case 55).
		h.sessions.Clear(w)
		return oidc.Result{}, errOtherSubject
	case errors.Is(err, oidc.ErrAuthorizationDetailsMismatch):
		return oidc.Result{}, errUnsatisfied.because("authorization_details in the token response differ from those sent")
	case errors.As(err, &sue):
		return oidc.Result{}, errUnsatisfied.because(sue.Reason)
	case errors.Is(err, oidc.ErrUnavailable):
		// The code may be fine; the provider could not be asked.
		h.providerFailed(err)
		return oidc.Result{}, errIdPUnavailable.because(err.Error())
	}
	return oidc.Result{}, errInvalidToken.because(err.Error())
}

// flowError ends a login or step-up round trip without a session. status,
// code and msg are all the client sees; outcome labels the flow metric, and
// reason and attrs go to the audit log only, never to the client.
type flowError struct {
	status    int
	code, msg string
	outcome   string // "" counts nothing
	reason    string
	attrs     []any
}

const tryAgainMsg = "Sign-in could not be completed. Go back to the page you wanted and try again."

var (
	errBadState = &flowError{status: http.StatusBadRequest, code: "invalid_state", outcome: "bad_state", reason: "no matching login state",
		msg: "This sign-in link is invalid or has expired. Go back to the page you wanted and try again."}
	errLevelGone    = &flowError{status: http.StatusForbidden, code: "step_up_failed", msg: stepUpFailedMsg, reason: "level no longer configured"}
	errIdP          = &flowError{status: http.StatusForbidden, code: "step_up_failed", msg: stepUpFailedMsg, outcome: "idp_error", reason: "idp error"}
	errNotReady     = &flowError{status: http.StatusServiceUnavailable, code: "invalid_request", msg: tryAgainMsg, reason: "identity provider not ready"}
	errNoCode       = &flowError{status: http.StatusBadRequest, code: "invalid_request", msg: tryAgainMsg, reason: "callback without code"}
	errOtherSubject = &flowError{status: http.StatusForbidden, code: "session_ended", outcome: "subject_mismatch", reason: "subject mismatch; session ended",
		msg: "The verification was completed by a different account, so you have been signed out."}
	errUnsatisfied    = &flowError{status: http.StatusForbidden, code: "step_up_failed", msg: stepUpFailedMsg, outcome: "unsatisfied"}
	errInvalidToken   = &flowError{status: http.StatusForbidden, code: "login_failed", msg: tryAgainMsg, outcome: "invalid_token"}
	errIdPUnavailable = &flowError{status: http.StatusServiceUnavailable, code: "idp_unavailable", outcome: "idp_unavailable",
		msg: "The sign-in service cannot be reached right now, so sign-in could not be completed. Go back to the page you wanted and try again in a minute."}
	errStoreUnavailable = &flowError{status: http.StatusServiceUnavailable, code: "unavailable", outcome: "store_unavailable", reason: "shared store unreachable",
		msg: "Sign-in is briefly unavailable. Go back to the page you wanted and try again in a few seconds."}
)

// because returns a copy of e whose audit reason is reason.
func (e *flowError) because(reason string) *flowError {
	c := *e
	c.reason = reason
	return &c
}

// with returns a copy of e with more audit attributes.
func (e *flowError) with(attrs ...any) *flowError {
	c := *e
	c.attrs = append(append([]any(nil), e.attrs...), attrs...)
	return &c
}

// failFlow audits and counts the failure of a round trip of kind (p is nil
// when no pending flow matched), then answers with e's public part.
func (h *Handler) failFlow(w http.ResponseWriter, r *http.Request, kind string, p *session.Pending, e *flowError) {
	attrs := []any{"reason", e.reason}
	if p != nil {
		attrs = append(attrs, "level", p.Level, "sub", p.Subject)
	}
	h.audit(kind+"_failure", append(attrs, e.attrs...)...)
	if e.outcome != "" {
		level := ""
		if p != nil {
			level = p.Level
		}
		h.metrics.flow(kind, level, e.outcome)
	}
	switch {
	case e.code == errIdPUnavailable.code:
		w.Header().Set("Retry-After", h.idpRetryAfter())
	case e.status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	fail(w, r, e.status, e.code, e.msg)
}

// internalError logs what went wrong inside the gateway and answers a
// fixed 500: internal error text never reaches a client.
func (h *Handler) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.log.Error(what, "err", err)
	fail(w, r, http.StatusInternalServerError, "internal", "Something went wrong.")
}

// oauthErrorCode keeps an IdP's error parameter loggable: error codes are
// short ASCII words (RFC 6749 §4.1.2.1); anything else is not echoed.
func oauthErrorCode(s string) string {
	if len(s) > 64 {
		return "(invalid)"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return "(invalid)"
		}
	}
	return s
}

// login starts a login or step-up explicitly: /.stepgate/login?level=NAME&rd=/path.
// SPAs open the login_url from a 401 body here.
func (h *Handler) login(w http.ResponseWriter, r *http.Request, ev *event) {
	q := r.URL.Query()
	rd := "/"
	if raw := q.Get("rd"); raw != "" {
		if rd = safeReturn(raw); rd == "" {
			fail(w, r, http.StatusBadRequest, "invalid_request", "The return address is not a local page.")
			return
		}
	}
	var level *policy.Level
	if name := q.Get("level"); name != "" {
		if level = h.routesOf(r).levels[name]; level == nil {
			fail(w, r, http.StatusBadRequest, "invalid_request", "Unknown verification level.")
			return
		}
	} else {
		level = h.levelFor(r, rd)
	}
	now := h.now()
	st := h.loadSession(r, now, ev)
	var f *policy.Facts
	if st != nil {
		f = &st.Facts
		if level == nil {
			http.Redirect(w, r, rd, http.StatusFound)
			return
		}
		// A once level whose step-up was spent is not met, whatever the
		// claims say: the next request needs a new step-up.
		if ok, _ := level.Satisfied(f, now); ok && !(level.Once && h.onceUsed(r, level, st)) {
			http.Redirect(w, r, rd, http.StatusFound)
			return
		}
	}
	h.startFlow(w, r, level, rd, f)
}

// levelFor is the level a GET of the local path rd needs, or nil. A sign-in
// link that names no level (ingress-nginx's auth-signin cannot carry the
// level of each 401) then still asks the IdP for what the page needs, in
// one round trip, instead of looping between a plain login and the page.
func (h *Handler) levelFor(r *http.Request, rd string) *policy.Level {
	path, _, _ := strings.Cut(rd, "?")
	host, err := policy.CanonicalHost(r.Host)
	if err != nil {
		return nil
	}
	rule := h.routesOf(r).table.Match(policy.Request{Method: http.MethodGet, Host: host, Path: path})
	if rule.Access == policy.Leveled {
		return rule.Level
	}
	return nil
}

// logout ends the session here and, where the IdP supports it, there. Only
// a same-origin POST ends it: a cross-site image, link or form must not sign
// a user out (threat model case 90). Anything else gets a page whose button
// makes that POST.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, ev *event) {
	noStore(w)
	if r.Method != http.MethodPost || !h.sameOrigin(r) {
		status := http.StatusForbidden
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			status = http.StatusOK
		}
		if acceptsHTML(r) {
			writePage(w, status, page{Title: "Sign out", Message: "Do you want to sign out?",
				Action: reservedPrefix + "logout", Button: "Sign out", Post: true})
			return
		}
		writeJSON(w, status, errorBody{Error: "same_origin_post_required", Message: "Sign out with a POST from this site."})
		return
	}
	// Revoke before clearing: a copy of the cookie must stop working on
	// every replica, not only this browser's (threat model case 86). If
	// that cannot be recorded, nothing is cleared, so the user can retry.
	// The cookie is opened without the revocation check: a logout whose
	// first try could not reach the store has already revoked the session
	// on this replica, and the retry must still tell the others.
	if st, err := h.sessions.Load(r, h.now()); err == nil {
		ev.subject = st.Facts.Subject
		rev := store.Revocation{SID: st.ID, Expires: st.Expires}
		if err := h.revoke(r.Context(), rev, "logout", "sub", st.Facts.Subject); err != nil {
			unavailable(w, r)
			return
		}
	}
	h.sessions.Clear(w)
	h.audit("logout")
	if c := h.oidc.Load(); c != nil {
		if u := c.EndSessionURL(h.origin() + "/"); u != "" {
			if !acceptsHTML(r) {
				// fetch() would follow a redirect cross-origin and fail;
				// the script navigates there itself.
				writeJSON(w, http.StatusOK, map[string]string{"status": "signed_out", "end_session_url": u})
				return
			}
			http.Redirect(w, r, u, http.StatusSeeOther)
			return
		}
	}
	if acceptsHTML(r) {
		writePage(w, http.StatusOK, page{Title: "Signed out", Message: "You are signed out.", Action: "/", Button: "Continue"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "signed_out"})
}

type sessionBody struct {
	Subject  string          `json:"subject"`
	Email    string          `json:"email,omitempty"`
	ACR      string          `json:"acr,omitempty"`
	AMR      []string        `json:"amr,omitempty"`
	AuthTime int64           `json:"auth_time,omitempty"`
	Expiry   int64           `json:"expiry"`
	Levels   map[string]bool `json:"levels"`
}

// sessionInfo describes the caller's session and which levels it satisfies now.
func (h *Handler) sessionInfo(w http.ResponseWriter, r *http.Request, ev *event) {
	now := h.now()
	st := h.loadSession(r, now, ev) // a revoked session is no session here either
	if st == nil {
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "login_required", LoginURL: loginPath(nil, "/")})
		return
	}
	b := sessionBody{
		Subject: st.Facts.Subject, Email: st.Facts.Email, ACR: st.Facts.ACR, AMR: st.Facts.AMR,
		Expiry: st.Expires.Unix(), Levels: map[string]bool{},
	}
	if !st.Facts.AuthTime.IsZero() {
		b.AuthTime = st.Facts.AuthTime.Unix()
	}
	for name, l := range h.routesOf(r).levels {
		b.Levels[name], _ = l.Satisfied(&st.Facts, now)
	}
	writeJSON(w, http.StatusOK, b)
}

// audit records a login or step-up event. Callers pass only identifiers and
// reasons: never tokens, codes, state, nonce or cookies.
func (h *Handler) audit(event string, attrs ...any) {
	h.log.Info("audit", append([]any{"event", event}, attrs...)...)
}
