package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stepgate/stepgate/store"
)

// Admin serves /healthz, /readyz and /metrics and, when an admin token is
// configured, the session API: GET /sessions?sub=S lists a subject's
// sessions, POST /sessions/revoke ends one ({"sid": ...}) or all of a
// subject's ({"sub": ...}: "log out everywhere"). It belongs on
// admin_listen, never on the public listener.
func Admin(h *Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := h.notReady(); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.metrics.reg, promhttp.HandlerOpts{}))
	if h.adminToken != nil {
		mux.Handle("GET /sessions", h.adminOnly(h.listSessions))
		mux.Handle("POST /sessions/revoke", h.adminOnly(h.revokeSessions))
	}
	return mux
}

// notReady says why the gateway cannot serve every route now, or "".
func (h *Handler) notReady() string {
	switch {
	case !h.Ready():
		return "identity provider discovery has not succeeded yet"
	case h.providerDown():
		return "identity provider unreachable; logins and step-ups answer 503 until a probe succeeds"
	case h.storeStale(h.now()):
		return "the shared session store cannot be reached; routes that need a session answer 503"
	}
	return ""
}

// adminOnly lets through requests that carry the admin token as a bearer
// token, compared in constant time (as hashes, so that the length of the
// token leaks nothing either).
func (h *Handler) adminOnly(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer") // the scheme is case-insensitive (RFC 9110 §11.1)
		sum := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(sum[:], h.adminToken) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="stepgate-admin"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "invalid_token", Message: "The admin API needs the admin token."})
			return
		}
		next(w, r)
	})
}

// sessionJSON is one session as the admin API lists it.
type sessionJSON struct {
	SID      string   `json:"sid"`
	Subject  string   `json:"sub"`
	IdPSID   string   `json:"idp_sid,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	Created  int64    `json:"created"`
	AuthTime int64    `json:"auth_time,omitempty"`
	LastSeen int64    `json:"last_seen"`
	Expires  int64    `json:"expires"`
	Revoked  bool     `json:"revoked"`
}

func (h *Handler) listSessions(w http.ResponseWriter, r *http.Request) {
	sub := r.URL.Query().Get("sub")
	if sub == "" {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid_request", Message: "Name the subject: ?sub=..."})
		return
	}
	list, err := h.shared.Sessions(r.Context(), sub)
	if err != nil {
		h.log.Error("admin: listing sessions failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "unavailable", Message: "The session store cannot be reached."})
		return
	}
	out := make([]sessionJSON, 0, len(list))
	for _, s := range list {
		out = append(out, sessionJSON{
			SID: s.SID, Subject: s.Subject, IdPSID: s.IdPSID, ACR: s.ACR, AMR: s.AMR,
			Created: s.Created.Unix(), AuthTime: unixOrZero(s.AuthTime), LastSeen: s.LastSeen.Unix(), Expires: s.Expires.Unix(),
			Revoked: h.follower.Revoked(s.SID, s.IdPSID, s.Subject, s.Created),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sub": sub, "sessions": out})
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func (h *Handler) revokeSessions(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SID string `json:"sid"`
		Sub string `json:"sub"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || (req.SID == "") == (req.Sub == "") {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid_request", Message: `Send {"sid": "..."} or {"sub": "..."}, not both.`})
		return
	}
	now := h.now()
	rev := store.Revocation{SID: req.SID, Expires: now.Add(h.sessions.Lifetime())}
	if req.Sub != "" {
		rev = store.Revocation{Subject: req.Sub, Before: now, Expires: now.Add(h.sessions.Lifetime())}
	}
	// A session lives at most the lifetime it was saved with, and no
	// longer once the lifetime is raised, so now + Lifetime outlives every
	// session a revocation made now can match.
	if err := h.revoke(r.Context(), rev, "admin"); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "unavailable", Message: "The revocation could not be recorded; try again."})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "revoked"})
}
