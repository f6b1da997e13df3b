package proxy

import (
	"context"
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
	// The revocation is recorded first and the jti claimed after, so a
	// provider that retries after a 503 is not refused as a replay. That is
	// safe because applying one token twice changes nothing: a sid
	// revocation is the same one again, and a subject's is bounded by the
	// token's iat, not by when it arrives, so a replay (even one the jti
	// record missed, after a store restart) never ends a session signed in
	// after the logout.
	rev := store.Revocation{Expires: now.Add(h.sessions.Lifetime())}
	if tok.SID != "" {
		rev.IdPSID = tok.SID
	} else {
		// iat is whole seconds, as session issue times are: a session
		// issued in iat's second may be the one logged out, so it is
		// voided too (fail closed; a re-login that quick waits a second).
		rev.Subject, rev.Before = tok.Subject, tok.IssuedAt.Add(time.Second)
		if rev.Before.After(now) {
			rev.Before = now // iat may be a little ahead of our clock
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	if err := h.follower.Revoke(ctx, rev); err != nil {
		h.log.Error("revocation failed", "source", "backchannel", "err", err)
		h.metrics.revocation("backchannel", "failed")
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily_unavailable", Message: "The logout could not be recorded; send it again."})
		return
	}
	// The jti is kept for as long as the token could be accepted.
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
	h.auditRevocation(rev, "backchannel", "sub", tok.Subject)
	ev.subject, ev.reason = tok.Subject, "back-channel logout"
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged_out"})
}
