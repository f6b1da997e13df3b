package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepgate/stepgate/devidp"
)

// Sessions that end, seen from outside: a copied cookie stops working after
// logout, a back-channel logout from the provider ends the session, and an
// operator can end one session or all of a subject's through the admin API.
// The same checks run against one gateway in memory mode (this file) and
// against two gateway processes sharing a Redis (replicas_test.go).

const (
	sessionCookie = "stepgate" // the session cookie's name without https (no __Host- prefix)
	adminToken    = "admin-token-0123456789abcdef0123456789"
	storeGrace    = 2 * time.Second // session.store_grace of the Redis replicas
	transferPath  = "/api/transfers/1"
	propagation   = time.Second // revocations reach every replica within this
)

// sessionsConfig is the harness configuration with its listeners taken from
// ${LISTEN} and ${ADMIN_LISTEN}, the admin token from ${ADMIN_TOKEN} and, when
// withStore, session.store from ${STORE} with a short store_grace.
func sessionsConfig(t *testing.T, withStore bool) string {
	t.Helper()
	cfg := mustReplace(t, testConfig, "SECRETS_LIST", `"${SECRET}"`)
	cfg = mustReplace(t, cfg, "listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\n",
		"listen: \"${LISTEN}\"\nadmin_listen: \"${ADMIN_LISTEN}\"\n")
	if withStore {
		cfg = mustReplace(t, cfg, "  lifetime: 1h\n", "  lifetime: 1h\n  store: \"${STORE}\"\n  store_grace: "+storeGrace.String()+"\n")
	}
	return cfg + "admin:\n  token: \"${ADMIN_TOKEN}\"\n"
}

// mustReplace replaces old, which must occur exactly once, so that a change
// to the harness configuration breaks this test loudly rather than silently.
func mustReplace(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("configuration template: want exactly one %q, found %d", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// timedUpstream is the harness upstream, with its checks, behind a server
// that notes when each request arrived: the store outage test compares
// those times with the moment Redis was killed.
type timedUpstream struct {
	*upstream
	url string

	mu   sync.Mutex
	hits []upstreamHit
}

type upstreamHit struct {
	at            time.Time
	path, subject string
}

func newTimedUpstream(t *testing.T) *timedUpstream {
	u := &timedUpstream{upstream: newUpstream(t)}
	inner := u.upstream.srv.Config.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit := upstreamHit{at: time.Now(), path: r.URL.Path, subject: r.Header.Get("X-Stepgate-Subject")}
		u.mu.Lock()
		u.hits = append(u.hits, hit)
		u.mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

func (u *timedUpstream) arrivals() []upstreamHit {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.hits)
}

// replica is one gateway as the tests reach it, whether it runs as a
// process or in this one.
type replica struct {
	name     string
	url      string // public_url
	adminURL string
	up       *timedUpstream
	logs     *lockedBuffer
}

// cluster is one deployment: its replicas (in memory mode a and b are the
// same gateway) and the provider users sign in at.
type cluster struct {
	t    *testing.T
	idp  *idp
	a, b *replica

	mu       sync.Mutex
	browsers []*browser
	secrets  []string // logout tokens sent: never to be logged
	revoked  []string // session cookies that must stay refused, whatever happens to the store
}

// checkLogs fails the test if a configured secret, a cookie, a code or a
// logout token reached any replica's log. Register it before the replicas
// start, so that it runs after they stopped.
func (c *cluster) checkLogs() {
	c.mu.Lock()
	defer c.mu.Unlock()
	secrets := append([]string{"stepgate-test-secret", secretOld, adminToken}, c.secrets...)
	for _, b := range c.browsers {
		secrets = append(secrets, b.secret...)
	}
	for _, r := range []*replica{c.a, c.b} {
		if r == nil || r.logs == nil {
			continue
		}
		logs := r.logs.String()
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				c.t.Errorf("replica %s logged a secret, cookie, code or token (%d bytes)", r.name, len(s))
			}
		}
	}
}

func (c *cluster) browser(t *testing.T) *browser {
	b := newBrowser(t)
	c.mu.Lock()
	c.browsers = append(c.browsers, b)
	c.mu.Unlock()
	return b
}

func (c *cluster) mustStayRevoked(cookie string) {
	c.mu.Lock()
	c.revoked = append(c.revoked, cookie)
	c.mu.Unlock()
}

func (c *cluster) secret(s string) {
	c.mu.Lock()
	c.secrets = append(c.secrets, s)
	c.mu.Unlock()
}

// signIn signs login's user in at r with a fresh browser (so a fresh
// provider session) on a multi-factor route, and returns the browser and
// the value of its session cookie.
func (c *cluster) signIn(t *testing.T, r *replica, login devidp.Login) (*browser, string) {
	t.Helper()
	c.idp.SetScript(func(devidp.Request) devidp.Login { return login })
	b := c.browser(t)
	return b, signInWith(t, b, r)
}

// signInWith signs b in at r on a multi-factor route, with whatever
// provider r uses, and returns the session cookie.
func signInWith(t *testing.T, b *browser, r *replica) string {
	t.Helper()
	resp, _ := b.browse(r.url+transferPath, nil)
	if got := body(t, resp); resp.StatusCode != http.StatusOK || got != "upstream: "+transferPath {
		t.Fatalf("sign-in at %s: %d %q; want the upstream's 200", r.name, resp.StatusCode, got)
	}
	u, _ := url.Parse(r.url)
	for _, ck := range b.jar.Cookies(u) {
		if ck.Name == sessionCookie {
			return ck.Value
		}
	}
	t.Fatalf("sign-in at %s left no %s cookie", r.name, sessionCookie)
	return ""
}

// plain sends requests as a script would: no cookie jar, no redirects
// followed, so a copied cookie is exactly what is sent.
var plain = &http.Client{
	Timeout:       5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// call GETs the multi-factor route at r with cookie as the session, as an
// API client would, and returns the status and body.
func call(t *testing.T, r *replica, cookie string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.url+transferPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatalf("GET %s at %s: %v", transferPath, r.name, err)
	}
	return resp.StatusCode, body(t, resp)
}

// works checks that cookie's session is forwarded by every replica.
func works(t *testing.T, cookie string, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		if status, got := call(t, r, cookie); status != http.StatusOK || got != "upstream: "+transferPath {
			t.Errorf("live session at %s: %d %.200q; want the upstream's 200", r.name, status, got)
		}
	}
}

// refusedWithin polls each replica until cookie's session is refused (401
// login_required: no session, so not forwarded) and fails if any replica
// still forwards it after d.
func refusedWithin(t *testing.T, d time.Duration, cookie string, rs ...*replica) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, r := range rs {
		for {
			status, got := call(t, r, cookie)
			if status == http.StatusUnauthorized && strings.Contains(got, `"login_required"`) {
				break
			}
			if status != http.StatusOK {
				t.Errorf("ended session at %s: %d %.200q; want 401 login_required", r.name, status, got)
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("ended session still forwarded by %s after %v; want it refused within %v of its end", r.name, d, d)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// admin calls the admin API of r with authorization as the Authorization
// header ("" sends none).
func admin(t *testing.T, r *replica, method, path, authorization, reqBody string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, r.adminURL+path, strings.NewReader(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if reqBody != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatalf("%s %s at %s: %v", method, path, r.name, err)
	}
	return resp, body(t, resp)
}

type adminSession struct {
	SID     string `json:"sid"`
	Subject string `json:"sub"`
	ACR     string `json:"acr"`
	Revoked bool   `json:"revoked"`
}

// sessionsOf lists sub's sessions through r's admin API.
func sessionsOf(t *testing.T, r *replica, sub string) []adminSession {
	t.Helper()
	resp, got := admin(t, r, http.MethodGet, "/sessions?sub="+url.QueryEscape(sub), "Bearer "+adminToken, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sessions?sub=%s at %s: %d %.200q; want 200", sub, r.name, resp.StatusCode, got)
	}
	var list struct {
		Sub      string         `json:"sub"`
		Sessions []adminSession `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(got), &list); err != nil || list.Sub != sub {
		t.Fatalf("GET /sessions?sub=%s at %s: %.200q; want JSON naming the subject (%v)", sub, r.name, got, err)
	}
	return list.Sessions
}

// revokeVia asks r's admin API to revoke what reqBody names.
func revokeVia(t *testing.T, r *replica, reqBody string) {
	t.Helper()
	resp, got := admin(t, r, http.MethodPost, "/sessions/revoke", "Bearer "+adminToken, reqBody)
	if resp.StatusCode != http.StatusOK || !strings.Contains(got, `"revoked"`) {
		t.Fatalf("POST /sessions/revoke %s at %s: %d %.200q; want 200 revoked", reqBody, r.name, resp.StatusCode, got)
	}
}

// revocations reads r's stepgate_revocations_total for source with result
// ok; 0 when the series does not exist yet.
func revocations(t *testing.T, r *replica, source string) int {
	t.Helper()
	resp, got := admin(t, r, http.MethodGet, "/metrics", "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics at %s: %d", r.name, resp.StatusCode)
	}
	for line := range strings.SplitSeq(got, "\n") {
		if strings.HasPrefix(line, "stepgate_revocations_total{") && strings.Contains(line, `result="ok"`) && strings.Contains(line, `source="`+source+`"`) {
			n, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			return int(n)
		}
	}
	return 0
}

// postLogoutToken sends token to r's back-channel logout endpoint, as a
// provider does.
func postLogoutToken(t *testing.T, r *replica, token string) (int, string) {
	t.Helper()
	resp, err := plain.PostForm(r.url+"/.stepgate/backchannel-logout", url.Values{"logout_token": {token}})
	if err != nil {
		t.Fatalf("back-channel logout at %s: %v", r.name, err)
	}
	return resp.StatusCode, body(t, resp)
}

// endSessionURL reads the provider's end_session_endpoint from discovery.
func endSessionURL(t *testing.T, p *idp) string {
	t.Helper()
	resp, err := plain.Get(p.url + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := json.Unmarshal([]byte(body(t, resp)), &doc); err != nil || doc.EndSession == "" {
		t.Fatalf("provider discovery has no end_session_endpoint (%v)", err)
	}
	return doc.EndSession
}

// checkLogout: a logout at A (a same-origin POST) revokes the session
// before clearing the cookie, so a copy of the cookie is refused by every
// replica within a second, without the provider's back channel.
func checkLogout(t *testing.T, c *cluster) {
	deliveries := len(c.idp.LogoutDeliveries())
	b, cookie := c.signIn(t, c.a, mfaLogin("alice"))
	works(t, cookie, c.b)
	if hits := c.b.up.arrivals(); len(hits) == 0 || hits[len(hits)-1].subject != "alice" || hits[len(hits)-1].path != transferPath {
		t.Fatalf("%s's upstream got %d requests, not alice's %s last; want the copied cookie forwarded there", c.b.name, len(hits), transferPath)
	}

	resp := b.do(http.MethodPost, c.a.url+"/.stepgate/logout", map[string]string{"Origin": c.a.url})
	resp.Body.Close()
	// Not followed: the provider's end-session page would send a logout
	// token, and this checks the gateway's own revocation alone.
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, c.idp.url) {
		t.Fatalf("logout at %s: %d to %q; want 303 to the provider's end-session endpoint", c.a.name, resp.StatusCode, loc)
	}
	refusedWithin(t, propagation, cookie, c.a, c.b)
	if n := len(c.idp.LogoutDeliveries()); n != deliveries {
		t.Errorf("the provider sent %d logout tokens during the gateway logout; want none", n-deliveries)
	}
	c.mustStayRevoked(cookie)
}

// checkBackchannel: RP-initiated logout at the provider makes it POST a
// logout token to A, which ends that provider session's gateway sessions on
// every replica; the same token replayed to B is refused with 400 and
// revokes nothing.
func checkBackchannel(t *testing.T, c *cluster) {
	deliveries := len(c.idp.LogoutDeliveries())
	b, cookie := c.signIn(t, c.a, mfaLogin("bob"))
	works(t, cookie, c.a, c.b)

	resp := b.do(http.MethodGet, endSessionURL(t, c.idp)+"?client_id=stepgate", nil)
	if got := body(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("end_session at the provider: %d %.200q; want its signed-out page", resp.StatusCode, got)
	}
	sent := c.idp.LogoutDeliveries()[deliveries:]
	if len(sent) != 1 {
		t.Fatalf("the provider sent %d logout tokens; want 1: %+v", len(sent), sent)
	}
	d := sent[0]
	c.secret(d.Token)
	if want := c.a.url + "/.stepgate/backchannel-logout"; d.URI != want || d.Subject != "bob" || d.Status != http.StatusOK || d.Err != nil {
		t.Fatalf("logout token delivery %s for %q: status %d err %v; want 200 at %s for bob", d.URI, d.Subject, d.Status, d.Err, want)
	}
	refusedWithin(t, propagation, cookie, c.a, c.b)
	c.mustStayRevoked(cookie)

	// The same, real, token replayed to B: its jti was used at A.
	_, fresh := c.signIn(t, c.a, mfaLogin("bob"))
	before := revocations(t, c.b, "backchannel")
	status, got := postLogoutToken(t, c.b, d.Token)
	if status != http.StatusBadRequest || !strings.Contains(got, `"invalid_request"`) || strings.Contains(got, "oidc:") {
		t.Errorf("replayed logout token at %s: %d %.200q; want 400 invalid_request without internal detail", c.b.name, status, got)
	}
	if after := revocations(t, c.b, "backchannel"); after != before {
		t.Errorf("replayed logout token: %s counted %d back-channel revocations; want none", c.b.name, after-before)
	}
	works(t, fresh, c.a, c.b)
}

// checkAdmin: the admin API lists a subject's sessions on any replica and
// ends one session by sid or all of a subject's by sub ("log out
// everywhere") on every replica; without the right token it answers 401
// and does nothing.
func checkAdmin(t *testing.T, c *cluster) {
	_, carol1 := c.signIn(t, c.a, mfaLogin("carol"))
	_, carol2 := c.signIn(t, c.b, mfaLogin("carol"))
	_, dave := c.signIn(t, c.a, mfaLogin("dave"))

	list := sessionsOf(t, c.b, "carol")
	if len(list) != 2 || list[0].SID == list[1].SID {
		t.Fatalf("%s lists carol's sessions %+v; want the two made at %s and %s", c.b.name, list, c.a.name, c.b.name)
	}
	for _, s := range list {
		if s.Subject != "carol" || s.ACR != acrMFA || s.Revoked {
			t.Errorf("%s lists %+v; want carol's live multi-factor session", c.b.name, s)
		}
	}

	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminToken))
	for _, tc := range []struct{ name, authorization string }{
		{"no Authorization header", ""},
		{"an empty bearer token", "Bearer "},
		{"a wrong token of the same length", "Bearer " + strings.Repeat("x", len(adminToken))},
		{"the token less its last byte", "Bearer " + adminToken[:len(adminToken)-1]},
		{"the token and one byte more", "Bearer " + adminToken + "x"},
		{"the token under the Basic scheme", basic},
	} {
		for _, r := range []*replica{c.a, c.b} {
			for _, req := range []struct{ method, path, body string }{
				{http.MethodGet, "/sessions?sub=dave", ""},
				{http.MethodPost, "/sessions/revoke", `{"sub":"dave"}`},
			} {
				resp, got := admin(t, r, req.method, req.path, tc.authorization, req.body)
				if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") || strings.Contains(got, "dave") {
					t.Errorf("admin API with %s: %s %s at %s: %d %.200q; want 401 with a Bearer challenge and nothing listed", tc.name, req.method, req.path, r.name, resp.StatusCode, got)
				}
			}
		}
	}
	works(t, dave, c.a, c.b) // the refused revocations did nothing

	// One session by sid: the third of carol's, found by its absence from
	// the first listing.
	_, carol3 := c.signIn(t, c.a, mfaLogin("carol"))
	var sid3 string
	for _, s := range sessionsOf(t, c.a, "carol") {
		if s.SID != list[0].SID && s.SID != list[1].SID {
			sid3 = s.SID
		}
	}
	if sid3 == "" {
		t.Fatalf("%s lists no new session of carol after a third sign-in", c.a.name)
	}
	revokeVia(t, c.b, `{"sid":"`+sid3+`"}`)
	refusedWithin(t, propagation, carol3, c.a, c.b)
	works(t, carol1, c.a, c.b)
	works(t, carol2, c.a, c.b)

	// Everywhere, by subject.
	revokeVia(t, c.a, `{"sub":"carol"}`)
	refusedWithin(t, propagation, carol1, c.a, c.b)
	refusedWithin(t, propagation, carol2, c.a, c.b)
	works(t, dave, c.a, c.b)
	for _, s := range sessionsOf(t, c.b, "carol") {
		if !s.Revoked {
			t.Errorf("%s lists %+v after carol was logged out everywhere; want it marked revoked", c.b.name, s)
		}
	}
	c.mustStayRevoked(carol1)
	c.mustStayRevoked(carol2)
	c.mustStayRevoked(carol3)

	// "Sessions issued before now are void" leaves later ones alone. The
	// store keeps microseconds; the session's issue time is taken after the
	// revocation's, on this machine's clock.
	_, carol4 := c.signIn(t, c.b, mfaLogin("carol"))
	works(t, carol4, c.a, c.b)
}

// TestMemoryModeSessionsEnd runs the checks against one in-process gateway
// without session.store: the revocation list, the single-use records and
// the session tracking all live in its memory.
func TestMemoryModeSessionsEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	p := startIDPWith(t, devidp.Client{
		ID: "stepgate", Secret: "stepgate-test-secret",
		RedirectURIs:         []string{public + "/.stepgate/callback"},
		BackchannelLogoutURI: public + "/.stepgate/backchannel-logout",
	})
	up := newTimedUpstream(t)
	g := &gw{t: t, idp: p, up: up.upstream, url: public}
	g.launch("memory.yaml", sessionsConfig(t, false), map[string]string{
		"LISTEN": "127.0.0.1:0", "ADMIN_LISTEN": "127.0.0.1:0",
		"UPSTREAM": up.url, "PUBLIC_URL": public, "ISSUER": p.url,
		"CLIENT_SECRET": "stepgate-test-secret", "SECRET": secretOld, "ADMIN_TOKEN": adminToken,
	}, ln)
	r := &replica{name: "the gateway", url: public, adminURL: g.adminURL, up: up, logs: g.logs}
	c := &cluster{t: t, idp: p, a: r, b: r}
	t.Cleanup(c.checkLogs)

	t.Run("logout revokes a copied cookie", func(t *testing.T) { checkLogout(t, c) })
	t.Run("back-channel logout", func(t *testing.T) { checkBackchannel(t, c) })
	t.Run("admin revoke by sid and by sub", func(t *testing.T) { checkAdmin(t, c) })
	t.Run("ended sessions stay ended", func(t *testing.T) {
		for _, cookie := range c.revoked {
			refusedWithin(t, 0, cookie, r)
		}
	})
}

// startIDPWith is startIDP with the given clients, for back-channel logout
// URIs.
func startIDPWith(t *testing.T, clients ...devidp.Client) *idp {
	t.Helper()
	return serveIDP(t, devidp.Config{Clients: clients})
}
