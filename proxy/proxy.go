// Package proxy is stepgate's HTTP edge: it canonicalizes each request,
// matches it against the route table, loads the session, asks policy what to
// do, and then forwards the canonical request, starts a login or step-up, or
// refuses. It also serves the gateway's own endpoints under /.stepgate/.
package proxy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
	"github.com/stepgate/stepgate/store"
)

// reservedPrefix is the gateway's own path space on the public listener.
// Requests under it are never forwarded.
const reservedPrefix = "/.stepgate/"

// Config is what a Handler needs; package gateway builds it from a
// config.Config.
type Config struct {
	Table       *policy.Table
	PathOptions policy.PathOptions
	Levels      []*policy.Level
	Sessions    *session.Store

	Upstream  *url.URL // nil: forward-auth only; proxied requests get 502
	PublicURL *url.URL // origin browsers use; the callback lives under it

	IdentityHeaders []string       // extra header names clients may never send upstream
	TrustedProxies  []netip.Prefix // whose X-Forwarded-* describe a request (forward-auth), whose X-Forwarded-For chain is kept (proxy)

	// BodyIdleTimeout is how long a forwarded request body may send
	// nothing before the request is cut with 408; a body that keeps
	// arriving may take as long as it needs. Zero means 60s.
	BodyIdleTimeout time.Duration
	// BodyDiscardTimeout is how long the gateway reads the body of a
	// request it answers itself (401, 403, 302, 400...) before answering;
	// a body that takes longer is left unread and the connection closed.
	// Zero means 5s.
	BodyDiscardTimeout time.Duration

	// Store is the state replicas share: revocations, single-use records,
	// tracked sessions. nil means this process's memory (store.NewMemory).
	Store store.Store
	// StoreGrace is how long the revocation list may be out of touch with
	// Store before requests that need a session answer 503. Zero means 30s.
	StoreGrace time.Duration
	// AdminToken turns on the admin session API on Admin(h); "" leaves it off.
	AdminToken string
	// API turns on bearer access tokens; nil leaves Authorization to the
	// app.
	API *APIConfig
	// ProviderProbeInterval is how often the provider's discovery document
	// is fetched to learn whether it is up; logins and step-ups answer 503
	// while the last probe failed. Zero means 10s.
	ProviderProbeInterval time.Duration

	Transport http.RoundTripper // optional; defaults to newTransport()
	Logger    *slog.Logger      // optional; defaults to slog.Default()
	Now       func() time.Time  // optional clock (tests)
}

// Handler is the public-listener handler. Create it with New.
type Handler struct {
	routes    atomic.Pointer[routes] // what a reload may change; see routesOf
	sessions  *session.Store
	publicURL *url.URL
	upstream  *url.URL
	filter    *headerFilter
	trusted   []netip.Prefix
	log       *slog.Logger
	metrics   *metrics
	now       func() time.Time
	rp        *httputil.ReverseProxy
	oidc      atomic.Pointer[oidc.Client]

	probeEvery   time.Duration // see Config.ProviderProbeInterval; never zero
	idpDownSince atomic.Int64  // unix nanoseconds; 0 while the provider answers

	bodyIdle, bodyDiscard time.Duration // see Config; never zero
	tunnels               tunnels

	shared     store.Store
	follower   *store.Follower // the revocation list, followed from shared
	storeGrace time.Duration
	adminToken []byte // SHA-256 of Config.AdminToken; nil: no admin API
	bclLimit   *limiter
	api        *APIConfig // nil: tokens are not accepted
	// verified tokens, the provider's inactive answers, verifications
	// under way, and the introspection budget; nil when api is
	tokens, inactive *tokenCache
	verifying        singleflight.Group
	introspections   *limiter
	// each client's introspection budget, by address
	clientIntrospections *lru.Cache[string, *limiter]
	stop                 context.CancelFunc // ends the follower and the tunnel watch
}

// New builds a Handler. It has no OIDC client until SetOIDC is called:
// until then flows that need the IdP answer 503 and Ready reports false.
func New(cfg Config) (*Handler, error) {
	if cfg.Table == nil || cfg.Sessions == nil || cfg.PublicURL == nil {
		return nil, errors.New("proxy: Table, Sessions and PublicURL are required")
	}
	if cfg.BodyIdleTimeout < 0 || cfg.BodyDiscardTimeout < 0 {
		return nil, fmt.Errorf("proxy: BodyIdleTimeout %v, BodyDiscardTimeout %v; want zero (the default) or positive",
			cfg.BodyIdleTimeout, cfg.BodyDiscardTimeout)
	}
	h := &Handler{
		sessions:  cfg.Sessions,
		publicURL: cfg.PublicURL,
		upstream:  cfg.Upstream,
		filter:    newHeaderFilter(cfg.IdentityHeaders),
		trusted:   cfg.TrustedProxies,
		log:       cfg.Logger,
		now:       cfg.Now,

		bodyIdle:    cmp.Or(cfg.BodyIdleTimeout, defaultBodyIdleTimeout),
		bodyDiscard: cmp.Or(cfg.BodyDiscardTimeout, defaultBodyDiscardTimeout),

		shared:     cfg.Store,
		storeGrace: cmp.Or(cfg.StoreGrace, defaultStoreGrace),
		// A bound on CPU only: bad tokens no longer cost the provider a key
		// fetch each (oidc.keySet), so the bucket is deep enough that a flood
		// of garbage cannot crowd out the provider's own deliveries.
		bclLimit: newLimiter(200, 1000),
	}
	if cfg.StoreGrace < 0 {
		return nil, fmt.Errorf("proxy: StoreGrace %v; want zero (the default) or positive", cfg.StoreGrace)
	}
	if cfg.API != nil {
		if cfg.API.Audience == "" {
			return nil, errors.New("proxy: API.Audience is required")
		}
		api := *cfg.API
		api.CacheTTL = cmp.Or(api.CacheTTL, 5*time.Minute)
		api.IntrospectionTTL = cmp.Or(api.IntrospectionTTL, 30*time.Second)
		api.Tokens = cmp.Or(api.Tokens, tokensJWT)
		api.DPoP = cmp.Or(api.DPoP, dpopOptional)
		api.IntrospectionRate = cmp.Or(api.IntrospectionRate, defaultIntrospectionRate)
		h.api = &api
		h.tokens = newTokenCache(cmp.Or(api.CacheSize, 10000))
		h.inactive = newTokenCache(cmp.Or(api.CacheSize, 10000))
		h.introspections = newLimiter(api.IntrospectionRate, min(api.IntrospectionRate, introspectionBurst))
		h.clientIntrospections, _ = lru.New[string, *limiter](clientIntrospectionsKept)
	}
	if cfg.ProviderProbeInterval < 0 {
		return nil, fmt.Errorf("proxy: ProviderProbeInterval %v; want zero (the default) or positive", cfg.ProviderProbeInterval)
	}
	h.probeEvery = cmp.Or(cfg.ProviderProbeInterval, defaultProbeInterval)
	if cfg.AdminToken != "" {
		sum := sha256.Sum256([]byte(cfg.AdminToken))
		h.adminToken = sum[:]
	}
	rt := Routes{Table: cfg.Table, PathOptions: cfg.PathOptions, Levels: cfg.Levels}
	if cfg.API != nil {
		rt.DPoP = cfg.API.RouteDPoP
	}
	if err := h.SetRoutes(rt); err != nil {
		return nil, err
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.metrics = newMetrics(h.now())
	if h.shared == nil {
		h.shared = store.NewMemory()
	}
	ctx, stop := context.WithCancel(context.Background())
	h.stop = stop
	h.follower = store.Follow(ctx, h.shared, h.log, h.now)
	// Session routes answer 503 until the revocation list is complete. A
	// store in this process syncs at once; a reachable Redis within a round
	// trip; an unreachable one leaves the gateway up but not ready.
	for deadline := time.Now().Add(time.Second); h.follower.Stale(h.now()) != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	go h.watchTunnels(ctx)
	go h.watchProvider(ctx)
	h.metrics.registerProviderGauge(func() bool { return h.Ready() && !h.providerDown() })
	h.metrics.watchStore(func() time.Duration { return h.follower.Stale(h.now()) }, h.storeGrace)
	if h.upstream != nil {
		tr := cfg.Transport
		if tr == nil {
			tr = newTransport()
		}
		h.rp = &httputil.ReverseProxy{
			Rewrite:      h.rewrite,
			Transport:    tr,
			ErrorHandler: h.upstreamError,
			BufferPool:   bufferPool{},
			ErrorLog:     slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
		}
	}
	return h, nil
}

// bufferPool recycles the buffers ReverseProxy copies bodies through; without
// one it allocates 32 KiB per request.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (bufferPool) Get() []byte { return buffers.Get().(*[32 << 10]byte)[:] }
func (bufferPool) Put(b []byte) {
	if cap(b) == 32<<10 {
		buffers.Put((*[32 << 10]byte)(b[:32<<10]))
	}
}

// Close stops following the shared store and watching tunnels. It does not
// close the store, which the caller owns.
func (h *Handler) Close() {
	h.stop()
	<-h.follower.Done()
}

// SetOIDC installs the relying-party client once discovery has succeeded.
func (h *Handler) SetOIDC(c *oidc.Client) {
	h.oidc.Store(c)
	h.providerAnswered() // discovery just did
}

// Ready reports whether the handler can start logins.
func (h *Handler) Ready() bool { return h.oidc.Load() != nil }

// newTransport returns the transport used to reach the upstream, with every
// timeout and limit chosen deliberately rather than left at zero.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // never send the protected app's traffic through an environment proxy
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  60 * time.Second,
		ExpectContinueTimeout:  1 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// ServeHTTP is the request pipeline: canonicalize, match, load the session,
// decide, act.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	r = h.withRoutes(r) // one generation of routes for the whole request
	rec := &recorder{ResponseWriter: w}
	if hasBody(r) {
		// Until the request is handed to the upstream, an answer is the
		// gateway's own, and its body is settled first.
		rec.settle = func() { h.settleBody(w, r) }
	}
	var ev event
	defer func() { h.logRequest(r, rec, &ev, start) }()

	t, err := h.canonical(r)
	if err != nil {
		ev.action, ev.reason = "reject", rejectReason(err)
		status := http.StatusBadRequest
		if r.Method == http.MethodConnect || r.Method == http.MethodTrace {
			status = http.StatusMethodNotAllowed
		}
		fail(rec, r, status, "bad_request", "The request could not be understood.")
		return
	}
	ev.path = t.Path
	if isReserved(t.Path) {
		ev.route = "stepgate"
		h.serveGateway(rec, r, t, &ev)
		return
	}
	if !upgradeAllowed(r.Header) {
		ev.action, ev.reason = "reject", "upgrade other than websocket"
		fail(rec, r, http.StatusBadRequest, "bad_request", "This upgrade is not allowed.")
		return
	}

	st, bearer, p := h.authenticate(r, t, start, &ev)
	if p != nil {
		ev.action = "reject"
		ev.reason = p.reason
		refuseBearer(rec, p)
		return
	}
	var facts *policy.Facts
	if st != nil {
		facts = &st.Facts
	}
	rule, d, ok := h.decide(r, t, nil, facts, start, &ev)
	if !ok {
		ev.action = "unavailable"
		unavailable(rec, r)
		return
	}
	ev.action = d.Action.String()

	if rule.Report {
		ev.action = wouldAction(d)
		if d.Action != policy.Allow {
			r = r.WithContext(context.WithValue(r.Context(), reportKey{}, strings.ReplaceAll(ev.action, "_", "-")))
		}
		h.forward(rec, r, t, facts)
		return
	}
	if bearer != nil && rule.Confirm != nil && holds(rule, t.Method) {
		// A held transaction is confirmed in the browser of the session
		// that sent it; a token has no such browser. Refused, not let
		// through unconfirmed.
		ev.action, ev.reason = "deny", "confirm route: bearer token"
		fail(rec, r, http.StatusForbidden, "forbidden", "This request must be confirmed in the browser; it cannot be sent with an access token.")
		return
	}
	if rule.Confirm != nil && d.Action != policy.Deny {
		if len(claimedMethods(r.Header, t.Query)) > 0 {
			// Which method would the app run? Whatever it is, the user
			// would not have confirmed that one: refuse the ambiguity.
			ev.action, ev.reason = "deny", "confirm route: method override"
			fail(rec, r, http.StatusForbidden, "forbidden", "This request cannot be confirmed.")
			return
		}
		if holds(rule, t.Method) {
			if d.Action == policy.Allow && rule.Level != nil && rule.Level.Once && h.onceUsed(r, rule.Level, st) {
				d = onceUsedDecision(rule.Level) // this transaction gets its own step-up
			}
			h.holdRequest(rec, r, t, rule, d, st, &ev)
			return
		}
	}
	if d.Action == policy.Allow && rule.Level != nil && rule.Level.Once {
		if d, ok = h.consumeOnce(r, rule.Level, st, d); !ok {
			unavailable(rec, r)
			return
		}
		ev.action, ev.reason = d.Action.String(), d.Reason
	}

	switch d.Action {
	case policy.Allow:
		if r.Header.Get("Upgrade") != "" {
			// A tunnel outlives the request it was decided on (see
			// tunnelEnd). The end is on the handler's clock, the deadline
			// on the real one: what counts is the time left.
			if end := tunnelEnd(rule, st); !end.IsZero() {
				ctx, done := h.tunnels.add(r.Context(), st, end.Sub(start))
				defer done()
				r = r.WithContext(ctx)
			}
		}
		h.forward(rec, r, t, facts)
	case policy.Login, policy.StepUp:
		if bearer != nil {
			// Never a redirect: the client gets the challenge, steps up at
			// the provider itself and comes back with a new token.
			bearerStepUp(rec, bearer.scheme, d)
			return
		}
		h.needAuth(rec, r, t, d, facts)
	default:
		fail(rec, r, http.StatusForbidden, "forbidden", "You do not have access to this page.")
	}
}

// upgradeAllowed reports whether every Upgrade token is websocket. An h2c
// upgrade would turn the connection into a tunnel the gateway no longer
// inspects (threat model case 76).
func upgradeAllowed(h http.Header) bool {
	for _, v := range h["Upgrade"] {
		for tok := range strings.SplitSeq(v, ",") {
			if !strings.EqualFold(strings.TrimSpace(tok), "websocket") {
				return false
			}
		}
	}
	return true
}

// loadFacts returns the session's facts, or nil when there is no valid
// session. An invalid cookie is treated exactly like no cookie.
func (h *Handler) loadFacts(r *http.Request, now time.Time, ev *event) *policy.Facts {
	if st := h.loadSession(r, now, ev); st != nil {
		return &st.Facts
	}
	return nil
}

// loadSession is loadFacts with the rest of the session: its ID and end.
func (h *Handler) loadSession(r *http.Request, now time.Time, ev *event) *session.State {
	st, err := h.sessions.Load(r, now)
	if err != nil {
		if !errors.Is(err, session.ErrNoSession) {
			ev.session = "invalid"
			h.log.Debug("session ignored", "err", err)
		}
		return nil
	}
	if h.revoked(&st) {
		// Ended by a logout, a back-channel logout or an operator: a copy
		// of the cookie is no session (threat model case 86).
		ev.session = "revoked"
		return nil
	}
	ev.subject = st.Facts.Subject
	return &st
}

// decide asks policy about t, as both the proxy and forward-auth do: the
// methods the request also claims (override headers, _method) and any extra
// levels are decided too, and the strictest outcome wins. It records the
// outcome in the access line and the metrics.
//
// ok is false when the decision involves a session while the revocation
// list may be out of date beyond the grace period: the caller answers 503
// rather than trust a session that may have been revoked, or start a login
// that could not be made single use. Public routes are unaffected.
func (h *Handler) decide(r *http.Request, t target, extra []*policy.Level, f *policy.Facts, now time.Time, ev *event) (rule *policy.Rule, d policy.Decision, ok bool) {
	q := policy.Question{Request: t.Request, Claimed: claimedMethods(r.Header, t.Query), Extra: extra}
	rule, d = h.routesOf(r).table.Decide(q, f, now)
	ev.route, ev.reason = rule.Name, d.Reason
	if rule.Report {
		// Report-only: what would have happened is logged and counted, and
		// the caller forwards the request whatever it is.
		ev.action = wouldAction(d)
		h.metrics.decisions.WithLabelValues(rule.Name, ev.action).Inc()
		return rule, d, true
	}
	if d.Action != policy.Deny && (rule.Access != policy.Public || len(extra) > 0) && h.storeStale(now) {
		ev.reason = "shared store out of touch beyond session.store_grace"
		h.metrics.decisions.WithLabelValues(rule.Name, "unavailable").Inc()
		return rule, d, false
	}
	h.metrics.decision(rule.Name, d.Action)
	return rule, d, true
}

// wouldAction names, for a report-only rule, what the decision would have
// done: "allow", or "would_login", "would_step_up", "would_deny".
func wouldAction(d policy.Decision) string {
	if d.Action == policy.Allow {
		return "allow"
	}
	return "would_" + strings.ReplaceAll(d.Action.String(), "-", "_")
}

// reportKey carries a report-only rule's X-Stepgate-Report value from
// ServeHTTP to rewrite in the request's context, where no client can put it.
type reportKey struct{}

// HeaderReport marks a request that a report-only rule forwarded although
// it would not have let it through: "would-login", "would-step-up",
// "would-deny".
const HeaderReport = "X-Stepgate-Report"

func rejectReason(err error) string {
	var rej *policy.Rejection
	if errors.As(err, &rej) {
		return rej.Reason
	}
	return "invalid request"
}

// needAuth answers a request that needs a login or a step-up first.
func (h *Handler) needAuth(w http.ResponseWriter, r *http.Request, t target, d policy.Decision, f *policy.Facts) {
	if h.providerDown() {
		h.idpUnavailable(w, r) // neither a redirect nor a login_url into it
		return
	}
	if isNavigation(r.Method, r) {
		h.startFlow(w, r, d.Level, t.returnPath(), f)
		return
	}
	if acceptsHTML(r) {
		// An HTML form POST: never replayed after the round trip
		// (threat model case 50). Offer a step-up that returns to the page the
		// form was on, so the user submits it again, verified.
		writePage(w, http.StatusUnauthorized, page{
			Title:   "Verification needed",
			Message: "This action needs you to verify your identity again. Continue, then submit the form once more.",
			Action:  loginPath(d.Level, h.refererPath(r)),
			Button:  "Verify and go back",
		})
		return
	}
	challenge(w, d, loginPath(d.Level, t.returnPath()))
}

// loginPath is the /.stepgate/login URL that starts a flow for level and
// comes back to rd.
func loginPath(l *policy.Level, rd string) string {
	v := url.Values{}
	if l != nil {
		v.Set("level", l.Name)
	}
	if rd == "" {
		rd = "/"
	}
	v.Set("rd", rd)
	return reservedPrefix + "login?" + v.Encode()
}

// refererPath returns the local path of a same-origin Referer, else "/".
func (h *Handler) refererPath(r *http.Request) string {
	u, err := url.Parse(r.Header.Get("Referer"))
	if err != nil || u.Scheme != h.publicURL.Scheme || !strings.EqualFold(u.Host, h.publicURL.Host) {
		return "/"
	}
	if rd := localRedirect(u.RequestURI()); rd != "" {
		return rd
	}
	return "/"
}

// forward sends the canonical request upstream with the gateway's identity
// headers and nothing a client could forge.
func (h *Handler) forward(w *recorder, r *http.Request, t target, f *policy.Facts) {
	if h.rp == nil {
		h.metrics.upstreamError("no_upstream")
		fail(w, r, http.StatusBadGateway, "bad_gateway", "No upstream is configured.")
		return
	}
	// Forward exactly what was matched: Path is the decoded form Go needs,
	// RawPath the canonical bytes for the wire. Left empty, RawPath would
	// let net/url escape the path its own way, which turns the sub-delims
	// ! ' ( ) * into %21 %27 %28 %29 %2A.
	r.URL.Path, r.URL.RawPath = t.Path, t.Path
	if strings.IndexByte(t.Path, '%') >= 0 {
		p, err := url.PathUnescape(t.Path)
		if err != nil {
			fail(w, r, http.StatusBadRequest, "bad_request", "The request could not be understood.")
			return
		}
		r.URL.Path = p
	}
	// The values go on the inbound request, replacing any client copy under
	// the canonical names; rewrite strips every other spelling from the
	// outbound copy and takes the values from here.
	setIdentity(r.Header, f)
	// From here the upstream reads the body, at the client's pace, which may
	// be slow but not stalled.
	w.settle = nil
	w.clock, w.forwarded = h.now, h.now()
	if hasBody(r) && r.Header.Get("Upgrade") == "" {
		w.body = &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: h.bodyIdle}
		r.Body = w.body
	}
	h.rp.ServeHTTP(w, r)
}

// rewrite runs after ReverseProxy has removed hop-by-hop headers from the
// outbound copy. That removal honours the client's Connection header, so a
// client could name a header there to delete the gateway's value; every
// header the gateway owns is therefore stripped and set again here, after
// the removal: the identity headers from the inbound request, where forward
// put them, and X-Forwarded-For, -Host and -Proto from the connection.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(h.upstream)
	// ReverseProxy rewrites a query net/url cannot parse (a ";" separator,
	// a bad escape), dropping pairs. The decision read every pair however a
	// backend splits it, so the app gets the query exactly as it came.
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	h.filter.strip(pr.Out.Header)
	stripOwnCookies(pr.Out.Header, h.sessions.CookieName())
	for _, name := range identityHeaders {
		pr.Out.Header[name] = pr.In.Header[name]
	}
	if v, ok := pr.In.Context().Value(reportKey{}).(string); ok {
		pr.Out.Header[HeaderReport] = []string{v}
	}
	// An ingress in trusted_proxies keeps its X-Forwarded-For chain, so an
	// app behind it still sees the client's address; anyone else's is
	// replaced by the peer's address alone.
	if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 && h.trustedPeer(pr.In.RemoteAddr) {
		pr.Out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
}

func (h *Handler) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if stalledBody(w) {
		// The client's fault, not the upstream's: checked first, as the
		// failed read also cancels the request's context.
		h.log.Info("request body stalled", "idle", h.bodyIdle.String())
		h.metrics.upstreamError("body_stalled")
		w.Header().Set("Connection", "close")
		fail(w, r, http.StatusRequestTimeout, "request_timeout", "The request body stopped arriving.")
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away mid-request: not the upstream's failure.
		// 499 (nginx's "client closed request") keeps it out of 5xx metrics;
		// nobody reads the answer.
		h.log.Debug("client closed request", "err", err)
		h.metrics.upstreamError("client_closed")
		w.WriteHeader(499)
		return
	}
	h.log.Warn("upstream error", "err", err)
	h.metrics.upstreamError(upstreamErrorKind(err))
	fail(w, r, http.StatusBadGateway, "bad_gateway", "The application is not reachable right now.")
}

// origin is the public origin, for building absolute URLs.
func (h *Handler) origin() string {
	return fmt.Sprintf("%s://%s", h.publicURL.Scheme, h.publicURL.Host)
}
