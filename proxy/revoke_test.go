package proxy

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
	"github.com/stepgate/stepgate/store"
	"github.com/stepgate/stepgate/store/redistest"
)

// saveSession seals a session for f with the IdP session idpSID and
// returns it with its Cookie header value.
func (fx *flowFixture) saveSession(f policy.Facts, idpSID string) (session.State, string) {
	fx.t.Helper()
	f.Issuer = fx.idp.URL
	rec := httptest.NewRecorder()
	st, err := fx.sessions.SaveWith(rec, f, idpSID, fx.clock.Now())
	if err != nil {
		fx.t.Fatal(err)
	}
	c := rec.Result().Cookies()[0]
	return st, c.Name + "=" + c.Value
}

// with sends one request to fx's handler with exactly the cookie given
// (a copy of a cookie, as an attacker would replay it).
func (fx *flowFixture) with(cookie, method, target string, hdr map[string]string) *http.Response {
	fx.t.Helper()
	r := httptest.NewRequest(method, target, nil)
	r.Host = gatewayURL.Host
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	rec := httptest.NewRecorder()
	fx.h.ServeHTTP(rec, r)
	return rec.Result()
}

// admitted reports whether a copy of cookie still gets an authenticated
// page forwarded.
func (fx *flowFixture) admitted(cookie string) bool {
	fx.t.Helper()
	before := fx.upstreamCount()
	resp := fx.with(cookie, http.MethodGet, "/account", jsonHdr)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && fx.upstreamCount() == before+1
}

var alicePwd = policy.Facts{Subject: "alice", Email: "alice@example.test", AMR: []string{"pwd"}}

// Logout revokes the session on every replica before it clears the
// cookie: a copy taken earlier stops working (threat model case 86).
func TestLogoutRevokesCopies(t *testing.T) {
	fx := newFlowFixture(t, oidctest.Options{})
	_, cookie := fx.saveSession(alicePwd, "")
	_, other := fx.saveSession(alicePwd, "") // the same user in another browser
	if !fx.admitted(cookie) {
		t.Fatal("a fresh session is not admitted")
	}
	resp := fx.with(cookie, http.MethodPost, reservedPrefix+"logout", map[string]string{"Origin": "http://gateway.test", "Accept": "application/json"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || dispositionOf(resp, fx.sessions.CookieName()) != cookieCleared {
		t.Fatalf("logout: %d, cookie %v; want 200 and the cookie cleared", resp.StatusCode, dispositionOf(resp, fx.sessions.CookieName()))
	}
	if fx.admitted(cookie) {
		t.Error("a copy of the cookie still works after logout")
	}
	if !fx.admitted(other) {
		t.Error("logout in one browser ended the user's session in another")
	}
	if a := fx.audit("revocation"); a == nil || a["source"] != "logout" || a["sub"] != "alice" {
		t.Errorf("audit revocation %v; want source logout, sub alice", a)
	}
	if got := metric(t, fx.h, `stepgate_revocations_total{result="ok",source="logout"}`); got != 1 {
		t.Errorf("revocations metric %v; want 1", got)
	}
	fx.logOmits(t, strings.TrimPrefix(cookie, fx.sessions.CookieName()+"="))
}

// bclFixture is a gateway whose provider signs logout tokens, with three
// sessions: two of alice's IdP session "idp-1" and one of bob's.
type bclFixture struct {
	*flowFixture
	alice1, alice2, bob string
}

func newBCLFixture(t *testing.T) *bclFixture {
	fx := &bclFixture{flowFixture: newFlowFixture(t, oidctest.Options{SID: "idp-1"})}
	_, fx.alice1 = fx.saveSession(alicePwd, "idp-1")
	_, fx.alice2 = fx.saveSession(alicePwd, "idp-1")
	_, fx.bob = fx.saveSession(policy.Facts{Subject: "bob", AMR: []string{"pwd"}}, "idp-2")
	return fx
}

func (fx *bclFixture) post(token string) *http.Response {
	fx.t.Helper()
	r := httptest.NewRequest(http.MethodPost, reservedPrefix+"backchannel-logout", strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	r.Host = gatewayURL.Host
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	fx.h.ServeHTTP(rec, r)
	return rec.Result()
}

func (fx *bclFixture) token(edit func(*oidctest.Token)) string {
	fx.t.Helper()
	var tok oidctest.Token
	if edit != nil {
		edit(&tok)
	}
	s, err := fx.idp.LogoutToken(tok)
	if err != nil {
		fx.t.Fatal(err)
	}
	return s
}

// A back-channel logout token that verifies ends the IdP session's gateway
// sessions (its sid) or, without a sid, all of the subject's; one that does
// not verify, or is replayed, is a 400 that ends nothing.
func TestBackchannelLogout(t *testing.T) {
	claims := func(f func(map[string]any)) func(*oidctest.Token) {
		return func(tok *oidctest.Token) { tok.Claims = f }
	}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048) // NewKey would return the published key
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name string
		edit func(*oidctest.Token)
	}{
		{"with a nonce", claims(func(c map[string]any) { c["nonce"] = "n" })},
		{"wrong aud", claims(func(c map[string]any) { c["aud"] = "other-app" })},
		{"wrong iss", claims(func(c map[string]any) { c["iss"] = "https://idp.evil.example" })},
		{"missing events", claims(func(c map[string]any) { delete(c, "events") })},
		{"events without the logout member", claims(func(c map[string]any) { c["events"] = map[string]any{"x": map[string]any{}} })},
		{"stale iat", claims(func(c map[string]any) {
			c["iat"] = time.Now().Add(-time.Hour).Unix()
			c["exp"] = time.Now().Add(time.Minute).Unix()
		})},
		{"expired", claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })},
		{"no sid and no sub", claims(func(c map[string]any) { delete(c, "sid"); delete(c, "sub") })},
		{"no jti", claims(func(c map[string]any) { delete(c, "jti") })},
		{"bad signature", func(tok *oidctest.Token) { tok.Key = otherKey }},
		{"alg none", func(tok *oidctest.Token) { tok.Alg = "none" }},
		{"HS256 with the public key", func(tok *oidctest.Token) { tok.Alg = "HS256" }},
		{"an ID token's typ", func(tok *oidctest.Token) { tok.Header = func(h map[string]any) { h["typ"] = "JWT" } }},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			fx := newBCLFixture(t)
			resp := fx.post(fx.token(tc.edit))
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"error":"invalid_request"`) {
				t.Errorf("status %d %s; want 400 invalid_request", resp.StatusCode, body)
			}
			if resp.Header.Get("Location") != "" {
				t.Errorf("a redirect: %s", resp.Header.Get("Location"))
			}
			for name, c := range map[string]string{"alice": fx.alice1, "alice elsewhere": fx.alice2, "bob": fx.bob} {
				if !fx.admitted(c) {
					t.Errorf("a refused token ended %s's session", name)
				}
			}
		})
	}

	t.Run("sid ends that IdP session's sessions, replay refused", func(t *testing.T) {
		fx := newBCLFixture(t)
		tok := fx.token(nil)
		resp := fx.post(tok)
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %s; want 200", resp.StatusCode, body)
		}
		if fx.admitted(fx.alice1) || fx.admitted(fx.alice2) {
			t.Error("a session of the logged-out IdP session still works")
		}
		if !fx.admitted(fx.bob) {
			t.Error("another IdP session's session was ended")
		}
		// A fresh session of alice's, then the same token again.
		_, fresh := fx.saveSession(alicePwd, "idp-3")
		if resp := fx.post(tok); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("replayed token: %d; want 400", resp.StatusCode)
		}
		if !fx.admitted(fresh) {
			t.Error("a replayed token ended a later session")
		}
		if a := fx.audit("revocation"); a == nil || a["source"] != "backchannel" {
			t.Errorf("audit revocation %v; want source backchannel", a)
		}
	})

	t.Run("sub alone ends all of the subject's sessions issued before", func(t *testing.T) {
		fx := newBCLFixture(t)
		fx.clock.Advance(time.Second) // the sessions were issued before the logout
		resp := fx.post(fx.token(claims(func(c map[string]any) { delete(c, "sid") })))
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %s; want 200", resp.StatusCode, body)
		}
		if fx.admitted(fx.alice1) || fx.admitted(fx.alice2) {
			t.Error("a session of the logged-out subject still works")
		}
		if !fx.admitted(fx.bob) {
			t.Error("another subject's session was ended")
		}
		fx.clock.Advance(time.Second)
		if _, later := fx.saveSession(alicePwd, "idp-4"); !fx.admitted(later) {
			t.Error("a session issued after the logout was ended too")
		}
	})

	t.Run("method, form and rate limits", func(t *testing.T) {
		fx := newBCLFixture(t)
		// The limiter refills from the Handler's clock: stopped, the flood
		// arrives "at once" however slowly the machine sends it.
		fx.clock.Freeze()
		if resp := fx.with("", http.MethodGet, reservedPrefix+"backchannel-logout", nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d; want 405", resp.StatusCode)
		}
		if resp := fx.post(""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("empty token: %d; want 400", resp.StatusCode)
		}
		// flood posts n bad tokens and counts each status that came back.
		flood := func(n int) map[int]int {
			got := map[int]int{}
			for range n {
				resp := fx.post("garbage")
				got[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					t.Error("a rate-limited logout request has no Retry-After")
				}
			}
			return got
		}
		// The burst is 1000 and the empty token above took one.
		if got, want := flood(1100), (map[int]int{http.StatusBadRequest: 999, http.StatusTooManyRequests: 101}); !maps.Equal(got, want) {
			t.Errorf("1100 logout requests at once: statuses %v; want %v", got, want)
		}
		// A second refills 200 tokens, and no more.
		fx.clock.Advance(time.Second)
		if got, want := flood(300), (map[int]int{http.StatusBadRequest: 200, http.StatusTooManyRequests: 100}); !maps.Equal(got, want) {
			t.Errorf("300 logout requests a second later: statuses %v; want %v", got, want)
		}
	})
}

// adminFixture is a gateway with the admin API on, and its admin handler.
func newAdminFixture(t *testing.T) (*flowFixture, http.Handler) {
	fx := newFlowFixture(t, oidctest.Options{}, func(c *Config) { c.AdminToken = adminToken })
	return fx, Admin(fx.h)
}

const adminToken = "admin-token-0123456789abcdef0123456789"

func adminDo(t *testing.T, h http.Handler, method, target, token, body string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var m map[string]any
	json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

func TestAdminAPI(t *testing.T) {
	fx, admin := newAdminFixture(t)
	st1, a1 := fx.saveSession(alicePwd, "")
	_, a2 := fx.saveSession(alicePwd, "")
	_, b1 := fx.saveSession(policy.Facts{Subject: "bob", AMR: []string{"pwd"}}, "")
	for _, c := range []string{a1, a2, b1} {
		// Sessions are tracked when the callback saves them; these were
		// saved directly, so track them as the callback does.
		st, err := fx.sessions.Load(cookieRequest(c), fx.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		fx.h.track(t.Context(), st)
	}

	for _, tok := range []string{"", "wrong-token-0123456789abcdef0123456789", adminToken[:len(adminToken)-1]} {
		if code, _ := adminDo(t, admin, "GET", "/sessions?sub=alice", tok, ""); code != http.StatusUnauthorized {
			t.Errorf("token %q: %d; want 401", tok, code)
		}
		if code, _ := adminDo(t, admin, "POST", "/sessions/revoke", tok, `{"sub":"alice"}`); code != http.StatusUnauthorized {
			t.Errorf("revoke with token %q: %d; want 401", tok, code)
		}
	}
	if !fx.admitted(a1) {
		t.Fatal("an unauthorised revoke ended a session")
	}

	code, body := adminDo(t, admin, "GET", "/sessions?sub=alice", adminToken, "")
	if sessions, _ := body["sessions"].([]any); code != 200 || len(sessions) != 2 {
		t.Fatalf("GET /sessions?sub=alice: %d %v; want alice's two sessions", code, body)
	}
	for _, bad := range []string{`{}`, `{"sid":"a","sub":"b"}`, `{"sid":1}`, `{"who":"x"}`, `not json`} {
		if code, _ := adminDo(t, admin, "POST", "/sessions/revoke", adminToken, bad); code != http.StatusBadRequest {
			t.Errorf("revoke %s: %d; want 400", bad, code)
		}
	}

	if code, _ := adminDo(t, admin, "POST", "/sessions/revoke", adminToken, `{"sid":"`+st1.ID+`"}`); code != 200 {
		t.Fatalf("revoke sid: %d; want 200", code)
	}
	if fx.admitted(a1) || !fx.admitted(a2) {
		t.Errorf("after revoking one sid: first admitted %v, second %v; want only the second", fx.admitted(a1), fx.admitted(a2))
	}
	fx.clock.Advance(time.Second)
	if code, _ := adminDo(t, admin, "POST", "/sessions/revoke", adminToken, `{"sub":"alice"}`); code != 200 {
		t.Fatalf("revoke sub: %d; want 200", code)
	}
	if fx.admitted(a2) || !fx.admitted(b1) {
		t.Errorf("after log out everywhere for alice: alice %v, bob %v; want only bob", fx.admitted(a2), fx.admitted(b1))
	}
	found := false
	for _, a := range fx.audits() {
		found = found || a["event"] == "revocation" && a["source"] == "admin" && a["revoked_sub"] == "alice"
	}
	if !found {
		t.Errorf("no audit revocation by admin for alice in\n%s", fx.logs)
	}
	code, body = adminDo(t, admin, "GET", "/sessions?sub=alice", adminToken, "")
	for _, s := range body["sessions"].([]any) {
		if s.(map[string]any)["revoked"] != true {
			t.Errorf("listed session %v not marked revoked", s)
		}
	}

	// Without a token configured the API is not there at all.
	plain := Admin(newFlowFixture(t, oidctest.Options{}).h)
	if code, _ := adminDo(t, plain, "GET", "/sessions?sub=alice", adminToken, ""); code != http.StatusNotFound {
		t.Errorf("admin API without admin.token: %d; want 404", code)
	}
}

func cookieRequest(cookie string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", cookie)
	return r
}

// Two replicas sharing a store: a callback's state is single use on both,
// so a copy of the pending cookie and callback URL replayed to the other
// replica completes nothing.
func TestPendingStateSingleUseAcrossReplicas(t *testing.T) {
	shared := store.NewMemory()
	fx := newFlowFixture(t, oidctest.Options{}, func(c *Config) { c.Store = shared })
	resp := fx.get("/account", htmlHdr)
	saved := fx.jar.Cookies(gatewayURL)
	back, _ := fx.roundTrip(resp)
	callback := reservedPrefix + "callback?" + back.Encode()
	if resp := fx.get(callback, htmlHdr); resp.StatusCode != http.StatusFound {
		t.Fatalf("callback on A: %d; want 302", resp.StatusCode)
	}
	other := fx.restart(func(c *Config) { c.Store = shared }, false) // replica B
	r := httptest.NewRequest(http.MethodGet, callback, nil)
	r.Host = gatewayURL.Host
	r.Header.Set("Accept", "text/html")
	for _, c := range saved {
		r.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	other.ServeHTTP(rec, r)
	if rec.Code != http.StatusBadRequest || dispositionOf(rec.Result(), fx.sessions.CookieName()) == cookieSet {
		t.Errorf("the same callback on B: %d; want 400 and no session", rec.Code)
	}
}

// While the revocation list is out of touch with the shared store beyond
// the grace period, routes that need a session answer 503 with
// Retry-After, forward-auth refuses with a reason, public routes work,
// and /readyz says not ready; once the store is back, all is served again.
func TestStoreOutOfTouch(t *testing.T) {
	srv := redistest.Start(t)
	shared, err := store.NewRedis(t.Context(), srv.URL(), store.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	const grace = time.Second
	fx := newFlowFixture(t, oidctest.Options{}, func(c *Config) {
		c.Store, c.StoreGrace = shared, grace
		c.TrustedProxies = trustedLoopback
	})
	admin := Admin(fx.h)
	_, cookie := fx.saveSession(alicePwd, "")
	_, leaving := fx.saveSession(alicePwd, "") // signs out while the store is gone
	if !fx.admitted(cookie) || readyz(admin) != 200 {
		t.Fatal("not serving with the store up")
	}

	srv.Kill()
	deadline := time.Now().Add(grace + 5*time.Second)
	for fx.h.follower.Stale(fx.clock.Now()) <= grace {
		if time.Now().After(deadline) {
			t.Fatal("the follower never noticed the store was gone")
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := fx.upstreamCount()
	resp := fx.with(cookie, http.MethodGet, "/account", jsonHdr)
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "unavailable") {
		t.Errorf("authenticated route with the store gone: %d %q Retry-After %q; want 503 with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if resp := fx.with(cookie, http.MethodGet, "/feeds/x", jsonHdr); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("leveled route with the store gone: %d; want 503", resp.StatusCode)
	}
	if fx.upstreamCount() != before {
		t.Error("a request that needs a session was forwarded while the revocation list was stale")
	}
	if resp := fx.with("", http.MethodGet, "/public/x", jsonHdr); resp.StatusCode != http.StatusOK {
		t.Errorf("public route with the store gone: %d; want 200", resp.StatusCode)
	}
	if code := readyz(admin); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the store gone: %d; want 503", code)
	}
	if got := metric(t, fx.h, "stepgate_store_up"); got != 0 {
		t.Errorf("stepgate_store_up %v; want 0", got)
	}
	// Counted as what the client saw: the gateway could not decide.
	for series, want := range map[string]float64{
		`stepgate_decisions_total{action="unavailable",route="default"}`:              1,
		`stepgate_requests_total{class="5xx",decision="unavailable",route="default"}`: 1,
		`stepgate_decisions_total{action="invalid"}`:                                  0,
	} {
		if got := metricSum(t, fx.h, series); got != want {
			t.Errorf("%s = %v; want %v", series, got, want)
		}
	}
	// Forward-auth: nginx only understands 2xx, 401 and 403.
	fa := httptest.NewRequest(http.MethodGet, authPath, nil)
	fa.RemoteAddr = "127.0.0.1:5000"
	for k, v := range map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Host": "gateway.test", "X-Forwarded-Uri": "/account", "Cookie": cookie} {
		fa.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	fx.h.ServeHTTP(rec, fa)
	if rec.Code != http.StatusForbidden || rec.Header().Get(HeaderReason) != ReasonUnavailable {
		t.Errorf("forward-auth with the store gone: %d %s=%q; want 403 %s", rec.Code, HeaderReason, rec.Header().Get(HeaderReason), ReasonUnavailable)
	}
	// A logout cannot be recorded for the other replicas: nothing is
	// cleared, so the user can retry; this replica refuses the session
	// already.
	logout := func() *http.Response {
		return fx.with(leaving, http.MethodPost, reservedPrefix+"logout", map[string]string{"Origin": "http://gateway.test", "Accept": "application/json"})
	}
	resp = logout()
	if resp.StatusCode != http.StatusServiceUnavailable || dispositionOf(resp, fx.sessions.CookieName()) == cookieCleared {
		t.Errorf("logout with the store gone: %d, cookie %v; want 503 and the cookie kept", resp.StatusCode, dispositionOf(resp, fx.sessions.CookieName()))
	}

	srv.Restart()
	deadline = time.Now().Add(10 * time.Second)
	for !fx.admitted(cookie) {
		if time.Now().After(deadline) {
			t.Fatal("the session route never came back after the store did")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := readyz(admin); code != 200 {
		t.Errorf("/readyz after the store came back: %d; want 200", code)
	}
	// The retried logout reaches the store now, and the session it ends
	// is in the shared list for every replica.
	if resp := logout(); resp.StatusCode != http.StatusOK || dispositionOf(resp, fx.sessions.CookieName()) != cookieCleared {
		t.Errorf("retried logout: %d, cookie %v; want 200 and the cookie cleared", resp.StatusCode, dispositionOf(resp, fx.sessions.CookieName()))
	}
	st, err := fx.sessions.Load(cookieRequest(leaving), fx.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	list, err := shared.Revocations(t.Context())
	found := false
	for _, r := range list {
		found = found || r.SID == st.ID
	}
	if err != nil || !found {
		t.Errorf("the shared store does not hold the retried logout's revocation (%v)", err)
	}
}

var trustedLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

func readyz(admin http.Handler) int {
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	io.Copy(io.Discard, rec.Body)
	return rec.Code
}

func TestAdminTokenSchemeIsCaseInsensitive(t *testing.T) {
	_, admin := newAdminFixture(t)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		r := httptest.NewRequest(http.MethodGet, "/sessions?sub=alice", nil)
		r.Header.Set("Authorization", scheme+" "+adminToken)
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			t.Errorf("scheme %q: %d; want 200", scheme, rec.Code)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/sessions?sub=alice", nil)
	r.Header.Set("Authorization", "Basic "+adminToken)
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, r)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("scheme Basic: %d; want 401", rec.Code)
	}
}
