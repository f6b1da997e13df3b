package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/stepgate/stepgate/store"
)

// maxLogoutBody bounds the back-channel logout request: a form with one
// signed token.
const maxLogoutBody = 32 << 10

// backchannelLogout serves OpenID Connect Back-Channel Logout 1.0: the
// provider POSTs a signed logout token when a user's session there ends,
// and the gateway ends that IdP session's gateway sessions (the token's
// sid), or, when it names only a subject, all of the subject's, on every
// replica. It answers 200 or a 400 with a JSON error, never a redirect; the
// token's jti is single use across replicas.
func (h *Handler) backchannelLogout(w http.ResponseWriter, r *http.Request, ev *event) {
	noStore(w)
	bad := func(reason string) {
		ev.reason = "back-channel logout: " + reason
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid_request", Message: "The logout token was not accepted."})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "invalid_request", Message: "POST a logout_token."})
		return
	}
	now := h.now()
	if !h.bclLimit.allow(now) {
		// Each token whose signature fails makes the key set fetch the
		// provider's keys again: bound what an anonymous caller can cause.
		ev.reason = "back-channel logout: rate limited"
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, errorBody{Error: "slow_down", Message: "Too many logout requests."})
		return
	}
	c := h.oidc.Load()
	if c == nil {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily_unavailable", Message: "The gateway is not ready yet."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		bad("unreadable form")
		return
	}
	raw := r.PostForm["logout_token"]
	if len(raw) != 1 || raw[0] == "" {
		bad("want exactly one logout_token")
		return
	}
	tok, err := c.VerifyLogoutToken(r.Context(), raw[0], now)
	if err != nil {
		h.log.Info("back-channel logout token refused", "err", err)
		bad("token refused")
		return
	}
	// The jti is kept for as long as the token could be accepted, so a
	// replay, on this replica or another, is refused.
	first, err := h.claim(r.Context(), "logout-jti:"+tok.JTI, max(tok.Expires.Sub(now), time.Second))
	switch {
	case err != nil:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily_unavailable", Message: "The logout could not be recorded; send it again."})
		return
	case !first:
		bad("replayed jti")
		return
	}
	rev := store.Revocation{Expires: now.Add(h.sessions.Lifetime())}
	if tok.SID != "" {
		rev.IdPSID = tok.SID
	} else {
		rev.Subject, rev.Before = tok.Subject, now
	}
	if err := h.revoke(r.Context(), rev, "backchannel", "sub", tok.Subject); err != nil {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily_unavailable", Message: "The logout could not be recorded; send it again."})
		return
	}
	ev.subject, ev.reason = tok.Subject, "back-channel logout"
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged_out"})
}
