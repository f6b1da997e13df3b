package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stepgate/stepgate/session"
	"github.com/stepgate/stepgate/store"
)

// Sessions that end (threat model cases 71, 86, 89): a sealed cookie cannot
// be taken back, so every request checks the session against the revocation
// list that replicas share. The check reads the in-memory copy a
// store.Follower keeps; the hot path never waits on the store. When that
// copy may be out of date beyond the grace period, routes that need a
// session answer 503 rather than trust it.

// defaultStoreGrace is how long the revocation list may be out of touch with
// the store before session routes answer 503.
const defaultStoreGrace = 30 * time.Second

// storeTimeout bounds each write to the store on a request's behalf (a
// revocation, a single-use claim): an unreachable store fails the request
// quickly, never hangs it.
const storeTimeout = 2 * time.Second

var (
	errTunnelRevoked = errors.New("proxy: the session that admitted the websocket tunnel was revoked")
	errStoreDown     = errors.New("proxy: the shared store cannot be reached")
)

// revoked reports whether st has been ended: by its own ID, by its IdP
// session, or by a "log out everywhere" of its subject issued after it.
func (h *Handler) revoked(st *session.State) bool {
	return h.follower.Revoked(st.ID, st.IdPSID, st.Facts.Subject, st.Issued)
}

// storeStale reports whether the revocation list may be missing revocations
// for longer than the grace period allows.
func (h *Handler) storeStale(now time.Time) bool {
	return h.follower.Stale(now) > h.storeGrace
}

// revoke ends sessions on every replica, through the follower so that this
// replica refuses them at once. source names who asked, for the audit event
// and the metric.
func (h *Handler) revoke(ctx context.Context, r store.Revocation, source string, attrs ...any) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := h.follower.Revoke(ctx, r); err != nil {
		h.log.Error("revocation failed", "source", source, "err", err)
		h.metrics.revocation(source, "failed")
		return errStoreDown
	}
	h.auditRevocation(r, source, attrs...)
	return nil
}

// auditRevocation writes the audit event of a recorded revocation and
// counts it.
func (h *Handler) auditRevocation(r store.Revocation, source string, attrs ...any) {
	what := []any{"source", source}
	switch {
	case r.SID != "":
		what = append(what, "revoked_sid", shortID(r.SID))
	case r.IdPSID != "":
		what = append(what, "revoked_idp_sid", shortID(r.IdPSID))
	default:
		what = append(what, "revoked_sub", r.Subject, "before", r.Before.UTC().Format(time.RFC3339))
	}
	h.audit("revocation", append(what, attrs...)...)
	h.metrics.revocation(source, "ok")
}

// shortID names a session in logs without handing out its ID: the first
// 48 bits of its SHA-256, enough to tell sessions apart.
func shortID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:6])
}

// claim records key as used in the shared store for ttl and reports
// whether this was its first use, on any replica.
func (h *Handler) claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	first, err := h.shared.Claim(ctx, key, ttl)
	if err != nil {
		h.log.Error("single-use claim failed", "err", err)
		return false, errStoreDown
	}
	return first, nil
}

// track records a new session for the admin API. A failure is logged, not
// fatal: the session works, and revocation does not depend on tracking.
func (h *Handler) track(ctx context.Context, st session.State) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	f := st.Facts
	info := store.SessionInfo{
		SID: st.ID, Subject: f.Subject, IdPSID: st.IdPSID, ACR: f.ACR, AMR: f.AMR,
		Created: st.Issued, AuthTime: f.AuthTime, LastSeen: st.Issued, Expires: st.Expires,
	}
	if err := h.shared.Track(ctx, info, st.Expires.Sub(h.now())); err != nil {
		h.log.Warn("session tracking failed", "err", err)
	}
}

// issueTime is the time to seal a new session of subject with. Sessions
// keep it in whole seconds, and a "log out everywhere" voids the sessions
// issued before it: a session made after such a revocation but in the same
// second would be born void, and the browser sent to the provider and back
// in a loop until the second is over. So that one case waits for the next
// second, at most a second; the stamp is then after the revocation and
// still never later than the session was made, so a later revocation in
// that second voids it, as it must. ok is false if the request ended first.
func (h *Handler) issueTime(r *http.Request, subject string) (now time.Time, ok bool) {
	now = h.now()
	second := time.Unix(now.Unix(), 0)
	if !h.follower.Revoked("", "", subject, second) || h.follower.Revoked("", "", subject, now) {
		// Not voided, or voided by a revocation stamped after now (another
		// replica's clock ahead of ours), which waiting a second may not cure.
		return now, true
	}
	t := time.NewTimer(second.Add(time.Second).Sub(now))
	defer t.Stop()
	select {
	case <-t.C:
		return h.now(), true
	case <-r.Context().Done():
		return time.Time{}, false
	}
}

// unavailable answers a request that needs a session while the revocation
// list cannot be trusted: 503 with Retry-After, a page or JSON.
func unavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	fail(w, r, http.StatusServiceUnavailable, "unavailable", "The service is briefly unavailable. Try again in a few seconds.")
}

const retryAfterSeconds = 5

// watchTunnels closes the tunnels of revoked sessions until ctx ends. A
// tunnel outlives the request it was decided on, so the revocation list is
// checked again for it, twice a second.
func (h *Handler) watchTunnels(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.tunnels.end(h.revoked, errTunnelRevoked)
		}
	}
}

// limiter is a token bucket for endpoints anyone may call that cost the
// gateway or the provider work (the back-channel logout endpoint fetches
// the provider's keys when a signature does not verify).
type limiter struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
	rate   float64 // tokens per second
	burst  float64
}

func newLimiter(perSecond, burst float64) *limiter {
	return &limiter{rate: perSecond, burst: burst, tokens: burst}
}

// allow takes one token at now, if there is one.
func (l *limiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
