package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

// gatewayURL is the public origin of newFixture's Handler; the IdP sends
// browsers back to its callback.
var gatewayURL = &url.URL{Scheme: "http", Host: "gateway.test"}

// strict asks for more than mfa: a hardware key, within five minutes, with
// a fresh prompt and an essential acr claim.
var strict = &policy.Level{
	Name:        "strict",
	ACRValues:   []string{"urn:hwk", "urn:mfa"},
	Claims:      `{"id_token":{"acr":{"essential":true,"values":["urn:hwk"]}}}`,
	Prompt:      "login",
	MaxAge:      5 * time.Minute,
	SatisfiedBy: []policy.Alternative{{ACR: []string{"urn:hwk"}}},
}

// flowFixture is newFixture's Handler with a real OpenID provider behind
// it (oidctest, reached through a real oidc.Client) and a browser in front:
// a cookie jar that keeps what the gateway sets and sends it back, so a
// round trip runs exactly as it would for a user.
type flowFixture struct {
	*fixture
	idp      *oidctest.Server
	rp       *oidc.Client
	sessions *session.Store // the Handler's store; sessions it seals name idp's issuer
	clock    *flowClock
	logs     *syncBuffer
	jar      http.CookieJar
	cfg      Config // what the Handler was built from, for restart
}

// newFlowFixture starts a provider with opts and a gateway that uses it;
// edits adjust the gateway's Config, as newFixture's options do.
func newFlowFixture(t *testing.T, opts oidctest.Options, edits ...func(*Config)) *flowFixture {
	t.Helper()
	fx := &flowFixture{idp: oidctest.NewServer(t, opts), clock: new(flowClock), logs: new(syncBuffer)}
	fx.sessions = flowStore(t, fx.idp)
	base := func(c *Config) {
		c.Sessions = fx.sessions
		c.Levels = []*policy.Level{mfa, weak, strict}
		c.Now = fx.clock.Now
		c.Logger = slog.New(slog.NewJSONHandler(fx.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	capture := func(c *Config) { fx.cfg = *c }
	fx.fixture = newFixture(t, append(append([]func(*Config){base}, edits...), capture)...)
	var err error
	fx.rp, err = oidc.New(t.Context(), oidc.Config{
		Issuer: fx.idp.URL, ClientID: fx.idp.ClientID, ClientSecret: fx.idp.ClientSecret,
		RedirectURL: gatewayURL.String() + reservedPrefix + "callback",
		Scopes:      []string{"openid", "email"},
	})
	if err != nil {
		t.Fatal(err)
	}
	fx.h.SetOIDC(fx.rp)
	if fx.jar, err = cookiejar.New(nil); err != nil {
		t.Fatal(err)
	}
	return fx
}

// flowStore is the session store of a gateway whose provider is idp. The
// gateway needs its own rather than newFixture's: a step-up must start
// from a session of idp's issuer, which only idp's URL names.
func flowStore(t *testing.T, idp *oidctest.Server) *session.Store {
	t.Helper()
	s, err := session.New(session.Config{Secrets: [][]byte{[]byte(strings.Repeat("f", 32))}, Lifetime: time.Hour,
		Issuer: idp.URL, ClientID: idp.ClientID})
	if err != nil {
		t.Fatalf("session store for issuer %s: %v", idp.URL, err)
	}
	return s
}

// restart builds a second Handler over the same store, clock and log, as a
// gateway restarted or reloaded between the start of a round trip and its
// callback would be. edit adjusts its Config; offline leaves it without a
// provider, as it is until discovery succeeds.
func (fx *flowFixture) restart(edit func(*Config), offline bool) *Handler {
	fx.t.Helper()
	cfg := fx.cfg
	if edit != nil {
		edit(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		fx.t.Fatal(err)
	}
	if !offline {
		h.SetOIDC(fx.rp)
	}
	return h
}

// signIn puts a session for f, as of the provider's issuer, in the jar.
func (fx *flowFixture) signIn(f policy.Facts) session.State {
	fx.t.Helper()
	f.Issuer = fx.idp.URL
	rec := httptest.NewRecorder()
	st, err := fx.sessions.Save(rec, f, fx.clock.Now())
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.jar.SetCookies(gatewayURL, rec.Result().Cookies())
	return st
}

var (
	htmlHdr = map[string]string{"Accept": "text/html,application/xhtml+xml"} // a browser page
	jsonHdr = map[string]string{"Accept": "application/json"}                // fetch or an API client
)

// send serves one request from the browser to h: the jar's cookies go
// with it, and what the answer sets goes back into the jar.
func (fx *flowFixture) send(h http.Handler, method, target string, hdr map[string]string) *http.Response {
	fx.t.Helper()
	return fx.sendBodyTo(h, method, target, "", hdr)
}

// sendBodyTo is send with a request body, to any replica h.
func (fx *flowFixture) sendBodyTo(h http.Handler, method, target, body string, hdr map[string]string) *http.Response {
	fx.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Host = gatewayURL.Host
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	for _, c := range fx.jar.Cookies(gatewayURL) {
		r.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	resp := rec.Result()
	fx.jar.SetCookies(gatewayURL, resp.Cookies())
	return resp
}

func (fx *flowFixture) get(target string, hdr map[string]string) *http.Response {
	fx.t.Helper()
	return fx.send(fx.h, http.MethodGet, target, hdr)
}

// authorize returns the query of the authorization request resp redirects
// to, failing the test unless resp is a 302 to the provider.
func (fx *flowFixture) authorize(resp *http.Response) url.Values {
	fx.t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, fx.idp.URL+"/authorize?") {
		fx.t.Fatalf("got %d to %q; want 302 to the provider's authorization endpoint %s/authorize", resp.StatusCode, loc, fx.idp.URL)
	}
	u, err := url.Parse(loc)
	if err != nil {
		fx.t.Fatal(err)
	}
	return u.Query()
}

// roundTrip plays the provider's part of the round trip resp started and
// returns what the provider sends the browser back with: the query of the
// callback, and the nonce the gateway asked for.
func (fx *flowFixture) roundTrip(resp *http.Response) (back url.Values, nonce string) {
	fx.t.Helper()
	q := fx.authorize(resp)
	code := fx.idp.Login(fx.t, resp.Header.Get("Location"))
	return url.Values{"code": {code}, "state": {q.Get("state")}, "iss": {fx.idp.URL}}, q.Get("nonce")
}

// complete finishes the round trip resp started and returns the callback's
// answer.
func (fx *flowFixture) complete(resp *http.Response) *http.Response {
	fx.t.Helper()
	back, _ := fx.roundTrip(resp)
	return fx.get(reservedPrefix+"callback?"+back.Encode(), htmlHdr)
}

// jarHas reports whether the jar holds a cookie called name.
func (fx *flowFixture) jarHas(name string) bool {
	for _, c := range fx.jar.Cookies(gatewayURL) {
		if c.Name == name {
			return true
		}
	}
	return false
}

// pendingInJar reports whether the jar holds a pending round trip's cookie.
func (fx *flowFixture) pendingInJar() bool {
	for _, c := range fx.jar.Cookies(gatewayURL) {
		if strings.HasPrefix(c.Name, fx.sessions.CookieName()+"-p-") {
			return true
		}
	}
	return false
}

// audits returns the audit records the gateway logged, in order.
func (fx *flowFixture) audits() []map[string]any {
	fx.t.Helper()
	var out []map[string]any
	for line := range strings.Lines(fx.logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			fx.t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		if rec["msg"] == "audit" {
			out = append(out, rec)
		}
	}
	return out
}

// audit returns the first audit record of event, or nil.
func (fx *flowFixture) audit(event string) map[string]any {
	fx.t.Helper()
	for _, a := range fx.audits() {
		if a["event"] == event {
			return a
		}
	}
	return nil
}

// logOmits fails the test if the gateway's log holds any of secrets.
func (fx *flowFixture) logOmits(t *testing.T, secrets ...string) {
	t.Helper()
	logs := fx.logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("log holds %q:\n%s", s, logs)
		}
	}
}

// metric reads one sample from h's /metrics, as Prometheus scrapes it; 0
// when the series has no sample yet.
func metric(t *testing.T, h *Handler, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	Admin(h).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

func flowSeries(kindOutcome string) string {
	kind, outcome, _ := strings.Cut(kindOutcome, "/")
	return `stepgate_auth_flows_total{kind="` + kind + `",outcome="` + outcome + `"}`
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sessionCookie returns the session cookie resp sets, or nil.
func sessionCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// flowClock is the Handler's clock: real time plus what a test adds. Until
// a test moves it, it agrees with the provider's and the relying party's
// clocks, which are real time. A test that counts on time not passing on
// its own (a rate limit's refill, say) freezes it; Advance still moves it.
type flowClock struct {
	offset atomic.Int64
	frozen atomic.Pointer[time.Time]
}

func (c *flowClock) Now() time.Time {
	base := time.Now()
	if f := c.frozen.Load(); f != nil {
		base = *f
	}
	return base.Add(time.Duration(c.offset.Load()))
}

func (c *flowClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Freeze stops the clock at real time now; from then on only Advance moves it.
func (c *flowClock) Freeze() {
	now := time.Now()
	c.frozen.Store(&now)
}

// syncBuffer is a log sink that servers' goroutines may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// disposition is what an answer does to the session cookie.
type disposition int

const (
	cookieUntouched disposition = iota // no Set-Cookie for the session
	cookieSet                          // a new session
	cookieCleared                      // the session is ended
)

func (d disposition) String() string { return [...]string{"untouched", "set", "cleared"}[d] }

func dispositionOf(resp *http.Response, name string) disposition {
	c := sessionCookie(resp, name)
	switch {
	case c == nil:
		return cookieUntouched
	case c.MaxAge < 0:
		return cookieCleared
	}
	return cookieSet
}

// TestCallbackOutcomes runs one round trip per case through the real
// provider and judges the callback's answer: only a verified ID token whose
// returned claims satisfy what was asked for makes a session, every other
// outcome is a short 4xx or 503 that never redirects again, and nothing the
// round trip carried (code, state, nonce, token) reaches the log.
func TestCallbackOutcomes(t *testing.T) {
	pwd := policy.Facts{Subject: "alice", Email: "alice@example.test", AMR: []string{"pwd"}, AuthTime: time.Now()}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048) // not the one in the provider's JWKS
	if err != nil {
		t.Fatal(err)
	}
	const (
		invalidState = "This sign-in link is invalid or has expired."
		notCompleted = "Sign-in could not be completed."
		otherAccount = "The verification was completed by a different account"
	)
	tests := []struct {
		name    string
		session *policy.Facts // the session the round trip starts from; nil for a first login
		start   string        // the page the browser navigates to first
		idp     oidctest.Options
		tok     oidctest.Token
		// query edits what the provider sends the browser back with.
		query func(q url.Values)
		// before runs between the provider's answer and the callback, which
		// is served by a Handler built with restart (when set) or offline.
		before  func(t *testing.T, fx *flowFixture, callback string)
		restart func(*Config)
		offline bool

		status   int
		location string // exact; "" means none
		body     string // part of the page
		cookie   disposition
		pending  bool   // the pending cookie outlives the callback
		event    string // audit event logged; "" for none
		reason   string // part of that event's reason
		flow     string // kind/outcome counted in stepgate_auth_flows_total
	}{
		{name: "login", start: "/account",
			status: http.StatusFound, location: "/account", cookie: cookieSet, event: "login_success", flow: "login/success"},
		{name: "login to a leveled route", start: "/feeds/live?since=3",
			status: http.StatusFound, location: "/feeds/live?since=3", cookie: cookieSet, event: "login_success", flow: "login/success"},
		{name: "step-up", session: &pwd, start: "/feeds/live?since=3",
			status: http.StatusFound, location: "/feeds/live?since=3", cookie: cookieSet, event: "step_up_success", flow: "step_up/success"},

		{name: "missing state", start: "/account", query: func(q url.Values) { q.Del("state") },
			status: http.StatusBadRequest, body: invalidState, pending: true,
			event: "callback_failure", reason: "no matching login state", flow: "callback/bad_state"},
		{name: "unknown state", start: "/account", query: func(q url.Values) { q.Set("state", rand.Text()) },
			status: http.StatusBadRequest, body: invalidState, pending: true,
			event: "callback_failure", reason: "no matching login state", flow: "callback/bad_state"},
		{name: "replayed callback", start: "/account",
			before: func(t *testing.T, fx *flowFixture, callback string) {
				if resp := fx.get(callback, htmlHdr); resp.StatusCode != http.StatusFound {
					t.Fatalf("first callback: %d; want 302", resp.StatusCode)
				}
			},
			status: http.StatusBadRequest, body: invalidState,
			event: "callback_failure", reason: "no matching login state", flow: "callback/bad_state"},
		{name: "replayed callback with a copy of the pending cookie", start: "/account",
			before: func(t *testing.T, fx *flowFixture, callback string) {
				saved := fx.jar.Cookies(gatewayURL)
				if resp := fx.get(callback, htmlHdr); resp.StatusCode != http.StatusFound {
					t.Fatalf("first callback: %d; want 302", resp.StatusCode)
				}
				// The pending cookie is back, the session it made is not. The
				// state is single use in the shared store, so the replay is
				// refused before the code is even tried again (the code is
				// single use at the provider too).
				fx.jar, _ = cookiejar.New(nil)
				fx.jar.SetCookies(gatewayURL, saved)
			},
			status: http.StatusBadRequest, body: invalidState,
			event: "login_failure", reason: "already used", flow: "login/bad_state"},
		{name: "pending flow expired", start: "/account",
			before: func(t *testing.T, fx *flowFixture, callback string) {
				fx.clock.Advance(session.PendingLifetime + time.Second)
			},
			status: http.StatusBadRequest, body: invalidState,
			event: "callback_failure", reason: "no matching login state", flow: "callback/bad_state"},

		{name: "provider refused", session: &pwd, start: "/feeds/live",
			query:  func(q url.Values) { q.Del("code"); q.Set("error", "unmet_authentication_requirements") },
			status: http.StatusForbidden, body: stepUpFailedMsg,
			event: "step_up_failure", reason: "idp error", flow: "step_up/idp_error"},
		{name: "provider error with junk", start: "/account",
			query: func(q url.Values) {
				q.Del("code")
				q.Set("error", "access_denied\n{\"level\":\"ERROR\",\"msg\":\"injected-by-client\"}")
			},
			status: http.StatusForbidden, body: stepUpFailedMsg,
			event: "login_failure", reason: "idp error", flow: "login/idp_error"},
		{name: "provider error too long", start: "/account",
			query:  func(q url.Values) { q.Del("code"); q.Set("error", strings.Repeat("access_denied_", 5)) },
			status: http.StatusForbidden, body: stepUpFailedMsg,
			event: "login_failure", reason: "idp error", flow: "login/idp_error"},
		{name: "missing code", start: "/account", query: func(q url.Values) { q.Del("code") },
			status: http.StatusBadRequest, body: notCompleted},

		{name: "signed by another key", start: "/account", tok: oidctest.Token{Key: otherKey},
			status: http.StatusForbidden, body: notCompleted,
			event: "login_failure", reason: "signature", flow: "login/invalid_token"},
		{name: "alg none", start: "/account", idp: oidctest.Options{Algs: []string{"RS256", "none"}}, tok: oidctest.Token{Alg: "none"},
			status: http.StatusForbidden, body: notCompleted,
			event: "login_failure", reason: "id token rejected", flow: "login/invalid_token"},
		{name: "HS256 keyed with the public key", start: "/account", idp: oidctest.Options{Algs: []string{"RS256", "HS256"}}, tok: oidctest.Token{Alg: "HS256"},
			status: http.StatusForbidden, body: notCompleted,
			event: "login_failure", reason: "id token rejected", flow: "login/invalid_token"},
		{name: "wrong nonce", start: "/account", tok: oidctest.Token{Claims: func(c map[string]any) { c["nonce"] = "not-the-nonce-sent" }},
			status: http.StatusForbidden, body: notCompleted,
			event: "login_failure", reason: "nonce does not match", flow: "login/invalid_token"},
		{name: "wrong audience", start: "/account", tok: oidctest.Token{Claims: func(c map[string]any) { c["aud"] = "another-client" }},
			status: http.StatusForbidden, body: notCompleted,
			event: "login_failure", reason: "audience", flow: "login/invalid_token"},
		{name: "no id_token", start: "/account", tok: oidctest.Token{OmitIDToken: true},
			status: http.StatusForbidden, body: notCompleted,
			event: "login_failure", reason: "no id_token", flow: "login/invalid_token"},
		{name: "no auth_time although max_age was sent", session: &pwd, start: "/feeds/live",
			tok:    oidctest.Token{Claims: func(c map[string]any) { delete(c, "auth_time") }},
			status: http.StatusForbidden, body: notCompleted,
			event: "step_up_failure", reason: "no auth_time", flow: "step_up/invalid_token"},
		{name: "step-up completed by another subject", session: &pwd, start: "/feeds/live", idp: oidctest.Options{Subject: "mallory"},
			status: http.StatusForbidden, body: otherAccount, cookie: cookieCleared,
			event: "step_up_failure", reason: "subject mismatch; session ended", flow: "step_up/subject_mismatch"},
		{name: "returned acr does not satisfy the level", session: &pwd, start: "/feeds/live",
			tok:    oidctest.Token{Claims: func(c map[string]any) { c["acr"] = "urn:pwd" }},
			status: http.StatusForbidden, body: stepUpFailedMsg,
			event: "step_up_failure", reason: `acr "urn:pwd"`, flow: "step_up/unsatisfied"},

		{name: "provider not ready", start: "/account", offline: true,
			status: http.StatusServiceUnavailable, body: notCompleted},
		{name: "level removed between start and callback", start: "/feeds/live",
			restart: func(c *Config) { c.Levels = []*policy.Level{weak} },
			status:  http.StatusForbidden, body: stepUpFailedMsg,
			event: "login_failure", reason: "level no longer configured"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFlowFixture(t, tc.idp)
			fx.idp.SetToken(tc.tok)
			var before session.State
			if tc.session != nil {
				before = fx.signIn(*tc.session)
			}
			back, nonce := fx.roundTrip(fx.get(tc.start, htmlHdr))
			code, state := back.Get("code"), back.Get("state")
			if tc.query != nil {
				tc.query(back)
			}
			callback := reservedPrefix + "callback?" + back.Encode()
			if tc.before != nil {
				tc.before(t, fx, callback)
			}
			h := fx.h
			if tc.restart != nil || tc.offline {
				h = fx.restart(tc.restart, tc.offline)
			}

			resp := fx.send(h, http.MethodGet, callback, htmlHdr)
			body := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d; want %d\n%s", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("Location"); got != tc.location {
				t.Errorf("Location %q; want %q", got, tc.location)
			}
			if !strings.Contains(body, tc.body) {
				t.Errorf("page does not say %q:\n%s", tc.body, body)
			}
			// The callback URL carries the code: no Referer may leak it,
			// and no cache may keep the answer.
			if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
				t.Errorf("Referrer-Policy %q; want no-referrer", got)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q; want no-store", got)
			}
			if got := dispositionOf(resp, fx.sessions.CookieName()); got != tc.cookie {
				t.Errorf("session cookie %v; want %v", got, tc.cookie)
			}
			if got := fx.pendingInJar(); got != tc.pending {
				t.Errorf("pending cookie kept = %v; want %v (each round trip completes at most once)", got, tc.pending)
			}
			if tc.event != "" {
				a := fx.audit(tc.event)
				if a == nil {
					t.Fatalf("no audit event %q in\n%s", tc.event, fx.logs)
				}
				if r, _ := a["reason"].(string); !strings.Contains(r, tc.reason) {
					t.Errorf("audit %s reason %q; want it to say %q", tc.event, r, tc.reason)
				}
			}
			if tc.flow != "" {
				if got := metric(t, h, flowSeries(tc.flow)); got != 1 {
					t.Errorf("%s = %v; want 1", flowSeries(tc.flow), got)
				}
			}
			for _, leak := range []string{"oidc:", "session:", code, "eyJ"} {
				if strings.Contains(body, leak) {
					t.Errorf("page holds %q:\n%s", leak, body)
				}
			}
			// "eyJ" starts every JWT: base64url of `{"`.
			fx.logOmits(t, code, state, nonce, "eyJ", "injected-by-client", `\"ERROR\"`)

			switch {
			case tc.cookie == cookieSet:
				c := sessionCookie(resp, fx.sessions.CookieName())
				if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 3600 {
					t.Errorf("session cookie %s; want HttpOnly, SameSite=Lax, Path=/, Max-Age=3600", c)
				}
				// The new session is what the provider proved: the page
				// it returns to is forwarded with the returned identity.
				page := fx.get(tc.location, htmlHdr)
				if page.StatusCode != http.StatusOK {
					t.Fatalf("after the callback, %s: %d; want 200", tc.location, page.StatusCode)
				}
				up := fx.lastUpstream()
				wantACR := ""
				if strings.HasPrefix(tc.location, "/feeds/") {
					wantACR = "urn:mfa"
				}
				if up.URL.RequestURI() != tc.location || up.Header.Get(HeaderSubject) != "alice" ||
					up.Header.Get(HeaderEmail) != "alice@example.test" || up.Header.Get(HeaderACR) != wantACR {
					t.Errorf("upstream got %s with subject %q, email %q, acr %q; want %s as alice, acr %q",
						up.URL.RequestURI(), up.Header.Get(HeaderSubject), up.Header.Get(HeaderEmail), up.Header.Get(HeaderACR), tc.location, wantACR)
				}
			case tc.session != nil && tc.cookie == cookieUntouched:
				// A failed step-up leaves the session as it was.
				st, err := fx.sessions.Load(fx.jarRequest(), fx.clock.Now())
				if err != nil || st.ID != before.ID {
					t.Errorf("session after a failed step-up: %v, %v; want the one it started from", st.ID, err)
				}
			case tc.cookie == cookieCleared:
				if fx.jarHas(fx.sessions.CookieName()) {
					t.Error("the jar still holds the session")
				}
				if resp := fx.get("/account", jsonHdr); resp.StatusCode != http.StatusUnauthorized || fx.upstreamCount() != 0 {
					t.Errorf("after the session ended, /account: %d, upstream reached %v; want 401", resp.StatusCode, fx.upstreamCount() != 0)
				}
			}
			if tc.cookie != cookieSet && fx.upstreamCount() != 0 {
				t.Errorf("the upstream was reached %d times; want never", fx.upstreamCount())
			}
		})
	}
}

// jarRequest is a request carrying the jar's cookies.
func (fx *flowFixture) jarRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range fx.jar.Cookies(gatewayURL) {
		r.AddCookie(c)
	}
	return r
}

// TestCallbackErrorCodeIsLoggedClean pins what the audit line says of the
// provider's error parameter: a well-formed code as sent, anything else as
// "(invalid)", so that a crafted callback cannot write into the log.
func TestCallbackErrorCodeIsLoggedClean(t *testing.T) {
	for _, tc := range []struct{ sent, logged string }{
		{"access_denied", "access_denied"},
		{"unmet_authentication_requirements", "unmet_authentication_requirements"},
		{"login_required", "login_required"},
		{"Access_Denied", "(invalid)"},
		{"access-denied", "(invalid)"},
		{"access_denied\nlevel=ERROR", "(invalid)"},
		{"<script>", "(invalid)"},
		{"dénied", "(invalid)"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), "(invalid)"},
	} {
		t.Run(tc.sent, func(t *testing.T) {
			fx := newFlowFixture(t, oidctest.Options{})
			back, _ := fx.roundTrip(fx.get("/account", htmlHdr))
			back.Del("code")
			back.Set("error", tc.sent)
			if resp := fx.get(reservedPrefix+"callback?"+back.Encode(), htmlHdr); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d; want 403", resp.StatusCode)
			}
			a := fx.audit("login_failure")
			if a == nil || a["error"] != tc.logged {
				t.Errorf("audit login_failure error = %v; want %q\n%s", a["error"], tc.logged, fx.logs)
			}
		})
	}
}

// TestGatewayUnknownEndpoint: the gateway's own path space is never
// forwarded, so what it does not serve is a 404 here.
func TestGatewayUnknownEndpoint(t *testing.T) {
	fx := newFlowFixture(t, oidctest.Options{})
	for _, target := range []string{"/.stepgate/", "/.stepgate/nope", "/.stepgate/callback/x", "/.stepgate/login.php"} {
		resp := fx.get(target, jsonHdr)
		if body := readBody(t, resp); resp.StatusCode != http.StatusNotFound || !sameJSON(t, body, `{"error":"not_found","message":"Not found."}`) {
			t.Errorf("%s: %d %s; want 404 not_found", target, resp.StatusCode, body)
		}
	}
	if fx.upstreamCount() != 0 {
		t.Errorf("the upstream was reached %d times; want never", fx.upstreamCount())
	}
}

// TestLogin covers /.stepgate/login: the return address must be a local
// page, the level a configured one; a session that already satisfies what
// is asked goes straight back; anything else goes to the provider asking
// for the level (named, or the one the return page needs) and comes back
// to the return address.
func TestLogin(t *testing.T) {
	pwd := policy.Facts{Subject: "alice", Email: "alice@example.test", AMR: []string{"pwd"}, AuthTime: time.Now()}
	noEmail := policy.Facts{Subject: "alice", AMR: []string{"pwd"}, AuthTime: time.Now()}
	strong := policy.Facts{Subject: "alice", ACR: "urn:mfa", AMR: []string{"pwd", "otp"}, AuthTime: time.Now()}
	// absent marks a parameter the authorization request must not carry.
	const absent = "\x00absent"
	plain := map[string]string{"acr_values": absent, "max_age": absent, "prompt": absent, "claims": absent, "login_hint": absent}
	mfaAsked := map[string]string{"acr_values": "urn:mfa", "max_age": "900", "prompt": absent, "claims": absent, "login_hint": absent}
	tests := []struct {
		name    string
		session *policy.Facts
		query   string

		status   int
		location string            // exact, for an answer that stays here
		body     string            // part of an error's message
		asked    map[string]string // for an answer that goes to the provider: what it asks for
		kind     string            // login or step_up, for such an answer
		back     string            // where completing that round trip lands
	}{
		{name: "absolute rd", query: "rd=https://evil.example/", status: http.StatusBadRequest, body: "The return address is not a local page."},
		{name: "scheme-relative rd", query: "rd=//evil.example/x", status: http.StatusBadRequest, body: "The return address is not a local page."},
		{name: "backslash rd", query: "rd=/%5Cevil.example", status: http.StatusBadRequest, body: "The return address is not a local page."},
		{name: "rd to the gateway itself", query: "rd=/.stepgate/logout", status: http.StatusBadRequest, body: "The return address is not a local page."},
		{name: "javascript rd", query: "rd=javascript:alert(1)", status: http.StatusBadRequest, body: "The return address is not a local page."},
		{name: "unknown level", query: "level=root&rd=/account", status: http.StatusBadRequest, body: "Unknown verification level."},
		{name: "unknown level, signed in", session: &pwd, query: "level=%3Cscript%3E", status: http.StatusBadRequest, body: "Unknown verification level."},

		{name: "level already satisfied", session: &strong, query: "level=mfa&rd=/feeds/live", status: http.StatusFound, location: "/feeds/live"},
		{name: "signed in, no level", session: &pwd, query: "rd=/account?tab=2", status: http.StatusFound, location: "/account?tab=2"},
		{name: "signed in, rd satisfied", session: &strong, query: "rd=/feeds/live", status: http.StatusFound, location: "/feeds/live"},

		{name: "plain login", status: http.StatusFound, asked: plain, kind: "login", back: "/"},
		{name: "login to an authenticated page", query: "rd=/account", status: http.StatusFound, asked: plain, kind: "login", back: "/account"},
		{name: "no level, rd to a leveled route", query: "rd=/feeds/live?since=3", status: http.StatusFound, asked: mfaAsked, kind: "login", back: "/feeds/live?since=3"},
		{name: "no level, rd canonicalized before its level is looked up", query: "rd=/public/../feeds/./live", status: http.StatusFound, asked: mfaAsked, kind: "login", back: "/feeds/live"},
		// GET of the page is what the browser does on coming back, and the
		// read rule lets GET in with any session.
		{name: "no level, rd whose GET needs less", query: "rd=/admin/transfer/1", status: http.StatusFound, asked: plain, kind: "login", back: "/admin/transfer/1"},
		{name: "named level beyond what rd needs", query: "level=mfa&rd=/account", status: http.StatusFound, asked: mfaAsked, kind: "login", back: "/account"},
		{name: "step-up names the user", session: &pwd, query: "rd=/feeds/live", status: http.StatusFound,
			asked: with(mfaAsked, "login_hint", "alice@example.test"), kind: "step_up", back: "/feeds/live"},
		{name: "step-up hint falls back to the subject", session: &noEmail, query: "level=mfa", status: http.StatusFound,
			asked: with(mfaAsked, "login_hint", "alice"), kind: "step_up", back: "/"},
		{name: "every parameter of a level", session: &strong, query: "level=strict&rd=/account", status: http.StatusFound,
			asked: map[string]string{"acr_values": "urn:hwk urn:mfa", "max_age": "300", "prompt": "login", "claims": strict.Claims, "login_hint": "alice"},
			kind:  "step_up", back: "/account"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFlowFixture(t, oidctest.Options{})
			if tc.session != nil {
				fx.signIn(*tc.session)
			}
			resp := fx.get(reservedPrefix+"login?"+tc.query, htmlHdr)
			body := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d; want %d\n%s", resp.StatusCode, tc.status, body)
			}
			if tc.asked == nil {
				if got := resp.Header.Get("Location"); got != tc.location {
					t.Errorf("Location %q; want %q", got, tc.location)
				}
				if !strings.Contains(body, tc.body) {
					t.Errorf("page does not say %q:\n%s", tc.body, body)
				}
				if strings.Contains(body, "evil") || strings.Contains(body, "<script") {
					t.Errorf("page echoes the request:\n%s", body)
				}
				if fx.pendingInJar() {
					t.Error("a pending round trip was started")
				}
				return
			}

			q := fx.authorize(resp)
			for k, want := range map[string]string{
				"client_id": fx.idp.ClientID, "response_type": "code", "scope": "openid email",
				"redirect_uri": "http://gateway.test/.stepgate/callback", "code_challenge_method": "S256",
			} {
				if got := q.Get(k); got != want {
					t.Errorf("authorization request %s=%q; want %q", k, got, want)
				}
			}
			for _, k := range []string{"state", "nonce", "code_challenge"} {
				if len(q.Get(k)) < 22 { // 128 bits, base64url
					t.Errorf("authorization request %s=%q; want a fresh random value", k, q.Get(k))
				}
			}
			for k, want := range tc.asked {
				got, ok := q.Get(k), q.Has(k)
				if want == absent && ok {
					t.Errorf("authorization request carries %s=%q; want none", k, got)
				} else if want != absent && got != want {
					t.Errorf("authorization request %s=%q; want %q", k, got, want)
				}
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q; want no-store", got)
			}
			a := fx.audit(tc.kind + "_start")
			if a == nil {
				t.Errorf("no audit event %s_start in\n%s", tc.kind, fx.logs)
			}
			if got := metric(t, fx.h, flowSeries(tc.kind+"/start")); got != 1 {
				t.Errorf("%s = %v; want 1", flowSeries(tc.kind+"/start"), got)
			}

			done := fx.complete(resp)
			if done.StatusCode != http.StatusFound || done.Header.Get("Location") != tc.back {
				t.Errorf("callback: %d to %q; want 302 to %q\n%s", done.StatusCode, done.Header.Get("Location"), tc.back, readBody(t, done))
			}
		})
	}

	t.Run("provider not ready", func(t *testing.T) {
		fx := newFlowFixture(t, oidctest.Options{})
		resp := fx.send(fx.restart(nil, true), http.MethodGet, reservedPrefix+"login?rd=/account", jsonHdr)
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"idp_unavailable"`) || resp.Header.Get("Retry-After") == "" {
			t.Errorf("got %d %s (Retry-After %q); want 503 idp_unavailable with a Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
		if fx.pendingInJar() {
			t.Error("a pending round trip was started without a provider")
		}
	})
}

// TestLogoutEndsProviderSession covers a provider that advertises
// end_session_endpoint: a same-origin POST ends the session here and sends
// the browser there (a page navigates, fetch gets the URL to navigate to);
// without one, the signed-out answer stays here.
func TestLogoutEndsProviderSession(t *testing.T) {
	pwd := policy.Facts{Subject: "alice", AMR: []string{"pwd"}, AuthTime: time.Now()}
	for _, tc := range []struct {
		name       string
		endSession bool
		hdr        map[string]string
		status     int
		redirect   bool   // the answer is a 303 to the provider's end-session URL
		json       string // the JSON answer, with the URL for {end}
		page       string // part of the page
	}{
		{name: "page, provider ends sessions", endSession: true, hdr: htmlHdr, status: http.StatusSeeOther, redirect: true},
		{name: "fetch, provider ends sessions", endSession: true, hdr: jsonHdr, status: http.StatusOK,
			json: `{"end_session_url":"{end}","status":"signed_out"}`},
		{name: "page, provider without end_session", hdr: htmlHdr, status: http.StatusOK, page: "You are signed out."},
		{name: "fetch, provider without end_session", hdr: jsonHdr, status: http.StatusOK, json: `{"status":"signed_out"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFlowFixture(t, oidctest.Options{EndSession: tc.endSession})
			fx.signIn(pwd)
			hdr := map[string]string{"Origin": "http://gateway.test"}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			resp := fx.send(fx.h, http.MethodPost, reservedPrefix+"logout", hdr)
			body := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d; want %d\n%s", resp.StatusCode, tc.status, body)
			}
			end := fx.idp.URL + "/logout?" + url.Values{"client_id": {fx.idp.ClientID}, "post_logout_redirect_uri": {"http://gateway.test/"}}.Encode()
			wantLoc := ""
			if tc.redirect {
				wantLoc = end
			}
			if got := resp.Header.Get("Location"); got != wantLoc {
				t.Errorf("Location %q; want %q", got, wantLoc)
			}
			if want := strings.ReplaceAll(tc.json, "{end}", end); tc.json != "" && !sameJSON(t, body, want) {
				t.Errorf("body %s; want %s", body, want)
			}
			if !strings.Contains(body, tc.page) {
				t.Errorf("page does not say %q:\n%s", tc.page, body)
			}
			if got := dispositionOf(resp, fx.sessions.CookieName()); got != cookieCleared {
				t.Errorf("session cookie %v; want cleared", got)
			}
			if fx.audit("logout") == nil {
				t.Errorf("no audit event logout in\n%s", fx.logs)
			}
			// Signed out here: the next navigation is a fresh login.
			fx.authorize(fx.get("/account", htmlHdr))
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestSessionInfo covers /.stepgate/session: without a usable session a 401
// naming where to sign in; with one, who it is and which level it satisfies
// now.
func TestSessionInfo(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		session *policy.Facts
		cookie  string // a raw session cookie value instead
		status  int
		levels  map[string]bool
	}{
		{name: "no session", status: http.StatusUnauthorized},
		{name: "forged cookie", cookie: "bm90IGEgc2Vzc2lvbg", status: http.StatusUnauthorized},
		{name: "password", session: &policy.Facts{Subject: "alice", Email: "alice@example.test", AMR: []string{"pwd"}, AuthTime: now},
			status: http.StatusOK, levels: map[string]bool{"mfa": false, "weak": true, "strict": false}},
		{name: "fresh multi-factor", session: &policy.Facts{Subject: "alice", ACR: "urn:mfa", AMR: []string{"pwd", "otp"}, AuthTime: now},
			status: http.StatusOK, levels: map[string]bool{"mfa": true, "weak": true, "strict": false}},
		{name: "multi-factor older than max_age", session: &policy.Facts{Subject: "alice", ACR: "urn:mfa", AMR: []string{"pwd", "otp"}, AuthTime: now.Add(-20 * time.Minute)},
			status: http.StatusOK, levels: map[string]bool{"mfa": false, "weak": true, "strict": false}},
		{name: "hardware key", session: &policy.Facts{Subject: "alice", ACR: "urn:hwk", AuthTime: now},
			status: http.StatusOK, levels: map[string]bool{"mfa": false, "weak": false, "strict": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFlowFixture(t, oidctest.Options{})
			var st session.State
			if tc.session != nil {
				st = fx.signIn(*tc.session)
			}
			if tc.cookie != "" {
				fx.jar.SetCookies(gatewayURL, []*http.Cookie{{Name: fx.sessions.CookieName(), Value: tc.cookie}})
			}
			resp := fx.get(reservedPrefix+"session", jsonHdr)
			body := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d; want %d\n%s", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q; want no-store", got)
			}
			if tc.session == nil {
				if want := `{"error":"login_required","login_url":"/.stepgate/login?rd=%2F"}`; !sameJSON(t, body, want) {
					t.Errorf("body %s; want %s", body, want)
				}
				return
			}
			var got sessionBody
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			want := sessionBody{
				Subject: "alice", Email: tc.session.Email, ACR: tc.session.ACR, AMR: tc.session.AMR,
				AuthTime: tc.session.AuthTime.Unix(), Expiry: st.Expires.Unix(), Levels: tc.levels,
			}
			if g, w := mustJSON(got), mustJSON(want); g != w {
				t.Errorf("body %s; want %s", g, w)
			}
		})
	}
}

// The ID token's sid is kept in the session, so a back-channel logout that
// names the IdP session can end it; a token without one keeps none.
func TestCallbackKeepsIdPSessionID(t *testing.T) {
	for _, sid := range []string{"idp-session-7", ""} {
		fx := newFlowFixture(t, oidctest.Options{SID: sid})
		resp := fx.complete(fx.get("/account", htmlHdr))
		resp.Body.Close()
		st, err := fx.sessions.Load(fx.jarRequest(), fx.clock.Now())
		if err != nil {
			t.Fatalf("sid %q: no session after the callback: %v", sid, err)
		}
		if st.IdPSID != sid {
			t.Errorf("session IdPSID %q; want %q", st.IdPSID, sid)
		}
		if st.Issued.IsZero() || !st.Expires.Equal(st.Issued.Add(time.Hour)) {
			t.Errorf("session issued %v expires %v; want expiry one lifetime after issue", st.Issued, st.Expires)
		}
	}
}
