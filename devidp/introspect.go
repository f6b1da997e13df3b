package devidp

import (
	"net/http"
	"strings"
	"time"
)

// maxIntrospectBody bounds an introspection request: a token and client
// credentials.
const maxIntrospectBody = 16 << 10

// introspection is an introspection response (RFC 7662 §2.2) with the
// authentication members of RFC 9470 §6.2, sid, and cnf for a token bound
// to a DPoP key (RFC 9449 §6.2). An inactive token gets active alone.
type introspection struct {
	Active    bool     `json:"active"`
	Issuer    string   `json:"iss,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	Audience  []string `json:"aud,omitempty"`
	Expiry    int64    `json:"exp,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	ID        string   `json:"jti,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Scope     string   `json:"scope,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	ACR       string   `json:"acr,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	SID       string   `json:"sid,omitempty"`
	Cnf       *cnf     `json:"cnf,omitempty"`
}

// serveIntrospect is the introspection endpoint (RFC 7662), served by
// devidp rather than op: op's answers failed client authentication with
// its internal error text, accepts only client_secret_basic, and has no
// room for acr, amr and auth_time. Any authenticated client may introspect
// any token: the caller is a resource server, not the token's client.
func (p *Provider) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "devidp: POST the token to introspect")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxIntrospectBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "devidp: want a form of at most 16 KiB")
		return
	}
	_, ok := p.authenticateClient(w, r)
	if !ok {
		return
	}
	// token_type_hint is only a hint (RFC 7662 §2.1). Only access tokens
	// are described; a refresh token is for its client alone.
	writeJSON(w, http.StatusOK, p.store.introspect(r.PostForm.Get("token"), time.Now()))
}

// introspect describes the access token issued as value, or says it is
// not active: unknown, malformed, expired, revoked or its session ended.
func (s *storage) introspect(value string, now time.Time) introspection {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.live(value, now)
	if !ok {
		return introspection{}
	}
	in := introspection{
		Active: true, Issuer: s.issuer, Subject: t.subject, Audience: t.audience,
		Expiry: t.expires.Unix(), IssuedAt: t.issued.Unix(), ID: t.id, ClientID: t.clientID,
		Scope: strings.Join(t.scopes, " "), TokenType: "Bearer",
		ACR: t.acr, AMR: t.amr, SID: t.sid,
	}
	if !t.authTime.IsZero() {
		in.AuthTime = t.authTime.Unix()
	}
	if t.jkt != "" {
		in.TokenType, in.Cnf = "DPoP", &cnf{JKT: t.jkt}
	}
	return in
}

// endSession revokes the access and refresh tokens issued in SSO session
// sid, as a provider does when the user signs out. A JWT stays valid to whoever
// checks only its signature; introspection answers inactive.
func (s *storage) endSession(sid string) {
	if sid == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if t.sid == sid {
			s.dropToken(id)
		}
	}
	for v, rt := range s.refresh {
		if rt.login.sid == sid {
			delete(s.refresh, v)
		}
	}
}
