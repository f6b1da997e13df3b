package proxy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/stepgate/stepgate/dpop"
	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

// APIConfig turns on bearer access tokens (RFC 6750, RFC 9068, RFC 7662,
// RFC 9449): a request carrying Authorization: Bearer or DPoP is decided on
// its token alone, whatever cookie it also carries, and is never
// redirected.
type APIConfig struct {
	Audience string
	// Introspect says how a token is checked: never (JWTs only), always, or
	// for tokens that are not JWTs (TokensBoth).
	Tokens string // "jwt", "introspection" or "both"
	// DPoP is the default for routes that set none. RouteDPoP, by rule
	// name, is the routes' own at the start; reloads change it with the
	// routes (Routes.DPoP).
	DPoP      string // "off", "optional" or "required"
	RouteDPoP map[string]string

	CacheTTL, IntrospectionTTL time.Duration
	CacheSize                  int
	// IntrospectionRate bounds the calls to the introspection endpoint, per
	// second, for tokens not in the cache; zero means 100. Beyond it a new
	// token gets 503 and Retry-After.
	IntrospectionRate float64
}

// The introspection budgets: the gateway's (api.IntrospectionRate a
// second), and each client's within it, both for new tokens only.
const (
	defaultIntrospectionRate = 100
	introspectionBurst       = 100
	clientIntrospectionRate  = 5
	clientIntrospectionBurst = 10
	clientIntrospectionsKept = 4096
)

// The values of APIConfig.Tokens and DPoP, as routes.yaml spells them.
const (
	tokensJWT           = "jwt"
	tokensIntrospection = "introspection"
	tokensBoth          = "both"
	dpopOff             = "off"
	dpopOptional        = "optional"
	dpopRequired        = "required"
)

// maxTokenLen bounds an Authorization credential before anything is done
// with it. Real access tokens are a few KiB at most.
const maxTokenLen = 16 << 10

// proofWindow is how far a DPoP proof's iat may be from now (RFC 9449
// §11.1). A proof's jti is remembered for twice as long, which covers every
// moment at which it would still be accepted.
const proofWindow = 60 * time.Second

// dpopAlgs is the algs parameter of DPoP challenges: what proofs may be
// signed with.
var dpopAlgs = dpop.Algorithms()

// credential is a request's access token and the scheme it came with.
type credential struct {
	scheme string // schemeBearer or schemeDPoP
	token  string
}

var errCredential = errors.New("malformed Authorization header")

// credentialOf finds the access token in h. present is false when there is
// none, including an Authorization of another scheme (Basic, for an app
// that uses it), which is left to the cookie path. Anything that starts
// like a Bearer or DPoP credential must be exactly one, "scheme" SP
// token68 (RFC 9110 §11.4, RFC 6750 §2.1), else it is an error: an app
// parsing more loosely ("Bearer<TAB>token", "bearer,token") would read a
// token the gateway never checked. So is a second Authorization header:
// which of two tokens would the app read?
func credentialOf(h http.Header) (c credential, present bool, err error) {
	vals := h.Values("Authorization")
	if len(vals) == 0 {
		return credential{}, false, nil
	}
	for i, v := range vals {
		scheme := tokenScheme(v)
		if scheme == "" {
			continue
		}
		if i > 0 || len(vals) > 1 {
			return credential{scheme: scheme}, true, errCredential
		}
		token, ok := strings.CutPrefix(v[len(scheme):], " ")
		token = strings.TrimLeft(token, " ")
		if !ok || !isToken68(token) || len(token) > maxTokenLen {
			return credential{scheme: scheme}, true, errCredential
		}
		return credential{scheme: scheme, token: token}, true, nil
	}
	return credential{}, false, nil
}

// tokenScheme returns schemeBearer or schemeDPoP when v starts with either
// name in any case, whatever follows it; else "".
func tokenScheme(v string) string {
	switch {
	case len(v) >= len(schemeBearer) && strings.EqualFold(v[:len(schemeBearer)], schemeBearer):
		return schemeBearer
	case len(v) >= len(schemeDPoP) && strings.EqualFold(v[:len(schemeDPoP)], schemeDPoP):
		return schemeDPoP
	}
	return ""
}

// hasQueryToken reports whether a raw query carries access_token (RFC 6750
// §2.3), in any spelling a backend might decode: any case, decoded once or
// twice, "." or " " or "+" for "_" (PHP folds them), a "[...]" suffix or a
// NUL cut off. The gateway reads tokens from Authorization only; one in the
// query would reach the app unchecked.
func hasQueryToken(rawQuery string) bool {
	for _, pair := range strings.FieldsFunc(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		key, _, _ := strings.Cut(pair, "=")
		for range 3 {
			if isTokenKey(key) {
				return true
			}
			k, err := url.QueryUnescape(key)
			if err != nil || k == key {
				break
			}
			key = k
		}
	}
	return false
}

// isTokenKey reports whether a query key reads as access_token.
func isTokenKey(key string) bool {
	const want = "access_token"
	key = strings.TrimLeft(key, " ")
	if i := strings.IndexAny(key, "\x00["); i >= 0 {
		key = key[:i]
	}
	if len(key) != len(want) {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i] | 0x20 // lower-case letters; '_' and '.' and ' ' are kept apart below
		switch w := want[i]; {
		case w == '_':
			if key[i] != '_' && key[i] != '.' && key[i] != ' ' && key[i] != '+' {
				return false
			}
		case c != w:
			return false
		}
	}
	return true
}

// isToken68 reports whether s is an RFC 9110 token68: 1*( ALPHA / DIGIT /
// "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// tokenKey is a token's cache key: its SHA-256, so the cache never holds
// the token itself.
type tokenKey [sha256.Size]byte

// cachedToken is a verification result and how long it may be reused.
type cachedToken struct {
	tok   *oidc.AccessToken // nil in the cache of inactive tokens
	until time.Time
}

// tokenCache remembers verified tokens, so that a bearer request costs a
// hash and a map lookup, like a cookie, rather than a signature check or a
// round trip to the provider.
type tokenCache struct {
	c *lru.Cache[tokenKey, cachedToken]
}

func newTokenCache(size int) *tokenCache {
	c, err := lru.New[tokenKey, cachedToken](max(size, 1))
	if err != nil {
		panic(err) // only for size < 1, which max prevents
	}
	return &tokenCache{c: c}
}

func (tc *tokenCache) get(k tokenKey, now time.Time) (cachedToken, bool) {
	e, ok := tc.c.Get(k)
	if !ok || !now.Before(e.until) {
		return cachedToken{}, false
	}
	return e, true
}

func (tc *tokenCache) put(k tokenKey, e cachedToken) { tc.c.Add(k, e) }

// bearerProblem is why a bearer request is refused before any decision.
type bearerProblem struct {
	status int    // 400, 401 or 503
	code   string // the RFC 6750 / RFC 9449 error code
	desc   string // a short, fixed description for the client
	reason string // for the access line
	scheme string // the challenge's scheme
}

var (
	errNoProvider = errors.New("proxy: the provider has not been discovered yet")
)

// errIntrospectionBusy is a new token that would need the provider's word
// while the introspection budget is spent.
var errIntrospectionBusy = errors.New("proxy: introspection rate limit reached")

// verifyToken returns what raw says, from the cache when it was verified
// recently. The error wraps oidc.ErrInvalidToken for a token that is no
// good, anything else when the provider could not be asked.
//
// Concurrent requests with one token share one verification. Introspection
// calls are rate limited, as each distinct garbage token would otherwise
// be one call to the provider that any client could make the gateway send;
// and the provider's "inactive" answers are remembered in a cache of their
// own, so that a flood of them cannot push good tokens out.
func (h *Handler) verifyToken(ctx context.Context, raw, client string, now time.Time) (*oidc.AccessToken, error) {
	key := tokenKey(sha256.Sum256([]byte(raw)))
	if e, ok := h.tokens.get(key, now); ok {
		return e.tok, nil
	}
	if _, ok := h.inactive.get(key, now); ok {
		return nil, oidc.ErrInvalidToken
	}
	c := h.oidc.Load()
	if c == nil {
		return nil, errNoProvider
	}
	v, err, _ := h.verifying.Do(string(key[:]), func() (any, error) {
		// Not the request's context: the verification is shared, and one
		// caller leaving must not fail the others.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		introspect := h.api.Tokens == tokensIntrospection || (h.api.Tokens == tokensBoth && strings.Count(raw, ".") != 2)
		if !introspect {
			tok, err := c.VerifyAccessToken(ctx, raw, h.api.Audience)
			if err == nil {
				h.remember(key, tok, now, h.api.CacheTTL)
			}
			return tok, err
		}
		if !h.introspectionAllowed(client, time.Now()) {
			return nil, errIntrospectionBusy
		}
		tok, err := c.Introspect(ctx, raw, h.api.Audience)
		switch {
		case errors.Is(err, oidc.ErrInvalidToken):
			// Inactive: remembered as long as an active answer would be,
			// so a client repeating a dead token costs the provider nothing.
			h.inactive.put(key, cachedToken{until: now.Add(h.api.IntrospectionTTL)})
		case err == nil:
			h.remember(key, tok, now, h.api.IntrospectionTTL)
		}
		return tok, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*oidc.AccessToken), nil
}

// introspectionAllowed spends one introspection of a new token for client:
// from the client's own budget first, so that one client's garbage cannot
// spend what other clients' new tokens need, then from the gateway's,
// which bounds what all clients together make the provider do.
func (h *Handler) introspectionAllowed(client string, now time.Time) bool {
	l, ok := h.clientIntrospections.Get(client)
	if !ok {
		l = newLimiter(clientIntrospectionRate, clientIntrospectionBurst)
		h.clientIntrospections.Add(client, l)
	}
	return l.allow(now) && h.introspections.allow(now)
}

// clientAddr is who sent r, for per-client budgets: the address the
// nearest trusted proxy saw (the last X-Forwarded-For hop) when the peer
// is one, else the peer. An untrusted peer's X-Forwarded-For is its own
// to write, so it names nobody.
func (h *Handler) clientAddr(r *http.Request) string {
	if h.trustedPeer(r.RemoteAddr) {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			hops := strings.Split(xff[len(xff)-1], ",")
			if hop := strings.TrimSpace(hops[len(hops)-1]); hop != "" {
				return hop
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// remember caches tok for ttl, and never past its exp.
func (h *Handler) remember(key tokenKey, tok *oidc.AccessToken, now time.Time, ttl time.Duration) {
	until := now.Add(ttl)
	if !tok.Expires.IsZero() && tok.Expires.Before(until) {
		until = tok.Expires
	}
	h.tokens.put(key, cachedToken{tok: tok, until: until})
}

// dpopModes returns which credential kinds every rule the request touches
// accepts: the rule it matches, and the rules of the methods it also
// claims (override headers, _method), as decide weighs them all.
func (h *Handler) dpopAccepts(r *http.Request, t target) (plain, bound bool) {
	plain, bound = true, true
	rt := h.routesOf(r)
	if len(rt.dpop) == 0 {
		// No route sets its own: the gateway's setting, without matching.
		return h.api.DPoP != dpopRequired, h.api.DPoP != dpopOff
	}
	check := func(rule *policy.Rule) {
		mode := h.api.DPoP
		if m, ok := rt.dpop[rule.Name]; ok {
			mode = m
		}
		switch mode {
		case dpopOff:
			bound = false
		case dpopRequired:
			plain = false
		}
	}
	check(rt.table.Match(t.Request))
	for _, m := range claimedMethods(r.Header, t.Query) {
		req := t.Request
		req.Method = m
		check(rt.table.Match(req))
	}
	return plain, bound
}

// htu is the URL a DPoP proof for t must name (RFC 9449 §4.2): the public
// scheme, the request's host and the canonical path, without the query.
func (h *Handler) htu(t target) string {
	host := t.Host
	if host == "" {
		host = h.publicURL.Host
	}
	return h.publicURL.Scheme + "://" + host + t.Path
}

// authenticateBearer checks c's token, and its DPoP proof when it is bound
// or sent as DPoP, for a request to t whose method is method (in
// forward-auth, the original request's). It returns the token, or the
// problem to answer with.
func (h *Handler) authenticateBearer(r *http.Request, t target, c credential, now time.Time) (*oidc.AccessToken, *bearerProblem) {
	plain, bound := h.dpopAccepts(r, t)
	scheme := c.scheme
	if !plain {
		scheme = schemeDPoP
	}
	invalid := func(desc, reason string) *bearerProblem {
		return &bearerProblem{status: http.StatusUnauthorized, code: "invalid_token", desc: desc, reason: reason, scheme: scheme}
	}
	tok, err := h.verifyToken(r.Context(), c.token, h.clientAddr(r), now)
	switch {
	case errors.Is(err, oidc.ErrInvalidToken):
		return nil, invalid("The access token is not valid.", "bearer: "+err.Error())
	case errors.Is(err, errIntrospectionBusy):
		return nil, &bearerProblem{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			desc: "The token cannot be checked right now. Try again in a few seconds.", reason: "bearer: introspection rate limit", scheme: scheme}
	case err != nil:
		h.log.Warn("access token could not be checked", "err", err)
		return nil, &bearerProblem{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			desc: "The token cannot be checked right now. Try again in a few seconds.", reason: "bearer: provider unavailable", scheme: scheme}
	case !tok.Expires.IsZero() && !now.Before(tok.Expires):
		// An introspection answer may leave exp out; then the provider's
		// word lasts as long as the introspection cache.
		return nil, invalid("The access token has expired.", "bearer: expired")
	}
	if h.follower.Revoked("", tok.SID, tok.Facts.Subject, tok.IssuedAt) {
		return nil, invalid("The access token has been revoked.", "bearer: revoked")
	}
	switch {
	case c.scheme == schemeBearer && tok.JKT != "":
		// RFC 9449 §7.1: a bound token is only ever used with its proof.
		// Accepting it as a plain bearer token would make the binding
		// worthless to a thief.
		return nil, invalid("The access token is DPoP-bound; send it with the DPoP scheme and a proof.", "bearer: bound token as Bearer")
	case c.scheme == schemeDPoP && tok.JKT == "":
		return nil, invalid("The access token is not DPoP-bound.", "bearer: unbound token as DPoP")
	case c.scheme == schemeBearer && !plain:
		return nil, invalid("This resource requires a DPoP-bound access token.", "bearer: dpop required")
	case c.scheme == schemeDPoP && !bound:
		return nil, &bearerProblem{status: http.StatusUnauthorized, code: "invalid_token", desc: "This resource does not accept DPoP-bound access tokens.",
			reason: "bearer: dpop off", scheme: schemeBearer}
	}
	if c.scheme == schemeDPoP {
		if p := h.checkProof(r, t, c.token, tok.JKT, now); p != nil {
			return nil, p
		}
	}
	return tok, nil
}

// checkProof verifies the request's DPoP proof for the bound token and
// spends its jti, so that a proof seen once, on any replica, is refused.
func (h *Handler) checkProof(r *http.Request, t target, token, jkt string, now time.Time) *bearerProblem {
	bad := func(desc, reason string) *bearerProblem {
		return &bearerProblem{status: http.StatusUnauthorized, code: "invalid_dpop_proof", desc: desc, reason: reason, scheme: schemeDPoP}
	}
	proofs := r.Header.Values("DPoP")
	switch {
	case len(proofs) == 0:
		return bad("A DPoP proof is required.", "dpop: no proof")
	case len(proofs) > 1:
		return bad("Send exactly one DPoP proof.", "dpop: several proofs")
	}
	p, err := dpop.Verify(proofs[0], dpop.Expect{Method: t.Method, URL: h.htu(t), AccessToken: token, JKT: jkt, Now: now, Window: proofWindow})
	if err != nil {
		return bad("The DPoP proof is not valid.", "dpop: "+err.Error())
	}
	sum := sha256.Sum256([]byte(p.JKT + "\x00" + p.JTI))
	first, err := h.claim(r.Context(), "dpop:"+base64.RawURLEncoding.EncodeToString(sum[:]), 2*proofWindow)
	switch {
	case err != nil:
		return &bearerProblem{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			desc: "The proof cannot be checked right now. Try again in a few seconds.", reason: "dpop: store unavailable", scheme: schemeDPoP}
	case !first:
		return bad("The DPoP proof was used before.", "dpop: replayed jti")
	}
	return nil
}

// refuseBearer answers a bearer request refused before any decision.
func refuseBearer(w http.ResponseWriter, p *bearerProblem) {
	if p.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, p.status, bearerError{Error: p.code, Description: p.desc})
		return
	}
	c := authChallenge{scheme: p.scheme}
	c.add("error", p.code)
	c.add("error_description", p.desc)
	if p.scheme == schemeDPoP {
		c.add("algs", dpopAlgs)
	}
	w.Header().Set("WWW-Authenticate", c.String())
	writeJSON(w, p.status, bearerError{Error: p.code, Description: p.desc})
}

// bearerError is the JSON body of a bearer refusal, in RFC 6749's terms.
type bearerError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	Level       string `json:"level,omitempty"`
}

// bearerStepUp answers a valid token that does not satisfy d's level: 401
// with the RFC 9470 challenge, in the scheme the token came with.
func bearerStepUp(w http.ResponseWriter, scheme string, d policy.Decision) {
	c := stepUpChallenge(scheme, d.Level)
	if scheme == schemeDPoP {
		c.add("algs", dpopAlgs)
	}
	w.Header().Set("WWW-Authenticate", c.String())
	body := bearerError{Error: c.params[0].value, Description: c.params[1].value}
	if d.Level != nil {
		body.Level = d.Level.Name
	}
	writeJSON(w, http.StatusUnauthorized, body)
}

// tokenState is the session-shaped view of a token, for what works on
// sessions: revocation of its websocket tunnels, the once record. Its ID
// names the authentication the token came from (issuer, subject, provider
// session, auth_time), not the token: a token refreshed from the same
// login is no new step-up, and must not admit another request to a once
// level.
func tokenState(tok *oidc.AccessToken) *session.State {
	sum := sha256.Sum256([]byte(strings.Join([]string{tok.Facts.Issuer, tok.Facts.Subject, tok.SID,
		strconv.FormatInt(tok.Facts.AuthTime.Unix(), 10)}, "\x00")))
	return &session.State{
		ID:      tokenStatePrefix + base64.RawURLEncoding.EncodeToString(sum[:16]),
		IdPSID:  tok.SID,
		Facts:   tok.Facts,
		Issued:  tok.IssuedAt,
		Expires: tok.Expires,
	}
}

// tokenStatePrefix starts the ID of every tokenState.
const tokenStatePrefix = "tok:"

// tokenOnceTTL is how long the once record of a token's authentication is
// kept when its level sets no max_age. A session's record lasts as long as
// the session; a token's authentication lives on in refreshed tokens as
// long as the provider's refresh tokens do, which the gateway cannot know.
const tokenOnceTTL = 30 * 24 * time.Hour

// onceTTL is how long st's once record for l must be kept.
func onceTTL(l *policy.Level, st *session.State, now time.Time) time.Duration {
	if !strings.HasPrefix(st.ID, tokenStatePrefix) {
		return max(st.Expires.Sub(now), time.Second)
	}
	if l.MaxAge > 0 && !st.Facts.AuthTime.IsZero() {
		// Past max_age the authentication satisfies the level no more.
		return max(st.Facts.AuthTime.Add(l.MaxAge+policy.ClockSkew).Sub(now), time.Second)
	}
	return tokenOnceTTL
}

// authenticate finds who is asking: the bearer token when the gateway
// accepts tokens and the request carries one (the cookie is then not
// looked at: a request is decided on one identity), else the session.
// bearer is true for a token; p, when set, is the refusal to send.
func (h *Handler) authenticate(r *http.Request, t target, now time.Time, ev *event) (st *session.State, bearer *credential, p *bearerProblem) {
	if h.api != nil {
		if hasQueryToken(t.Query) {
			ev.session = "bearer"
			return nil, &credential{scheme: schemeBearer}, &bearerProblem{status: http.StatusBadRequest, code: "invalid_request",
				desc: "Send the access token in the Authorization header, not the query.", reason: "bearer: access_token in the query", scheme: schemeBearer}
		}
		c, present, err := credentialOf(r.Header)
		if present {
			ev.session = "bearer"
			if err != nil {
				return nil, &c, &bearerProblem{status: http.StatusBadRequest, code: "invalid_request",
					desc: "The Authorization header is malformed.", reason: "bearer: malformed Authorization", scheme: cmp.Or(c.scheme, schemeBearer)}
			}
			tok, p := h.authenticateBearer(r, t, c, now)
			if p != nil {
				return nil, &c, p
			}
			ev.subject = tok.Facts.Subject
			return tokenState(tok), &c, nil
		}
	}
	return h.loadSession(r, now, ev), nil, nil
}
