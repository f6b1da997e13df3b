package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/session"
)

const oneSecret = `"` + secretOld + `"`

func TestFirstLoginOnPlainRoute(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(pwdLogin("alice"))
	b := g.browser()

	resp, chain := b.browse(g.url+"/account?tab=1", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /account" {
		t.Fatalf("final answer %d %q; want 200 from upstream", resp.StatusCode, got)
	}
	if n := authorizeHops(chain, g.idp.url); n != 1 {
		t.Errorf("%d trips to the provider; want 1", n)
	}
	if reqs := g.idp.Requests(); len(reqs) != 1 || len(reqs[0].ACRValues) != 0 {
		t.Errorf("provider saw %+v; want one plain login without acr_values", reqs)
	}
	r := g.up.last()
	if r.URL.RawQuery != "tab=1" {
		t.Errorf("upstream query %q; want tab=1 (the original URL is restored after login)", r.URL.RawQuery)
	}
	for h, want := range map[string]string{
		"X-Stepgate-Subject": "alice", "X-Stepgate-Email": "alice@bank.example",
		"X-Stepgate-Amr": "pwd", "X-Stepgate-Acr": "",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("upstream %s = %q; want %q", h, got, want)
		}
	}
	if at := r.Header.Get("X-Stepgate-Auth-Time"); at == "" {
		t.Error("upstream got no X-Stepgate-Auth-Time")
	}
}

func TestStepUpOnSensitiveRoute(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(mfaLogin("alice"))
	b := g.browser()

	resp, _ := b.browse(g.url+"/account", nil)
	body(t, resp)
	if got := g.up.last().Header.Get("X-Stepgate-Acr"); got != "" {
		t.Fatalf("plain login gave acr %q; want none", got)
	}

	resp, chain := b.browse(g.url+"/api/transfers/new", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /api/transfers/new" {
		t.Fatalf("after step-up: %d %q; want the upstream's 200", resp.StatusCode, got)
	}
	if n := authorizeHops(chain, g.idp.url); n != 1 {
		t.Errorf("step-up took %d trips to the provider; want 1", n)
	}
	reqs := g.idp.Requests()
	if len(reqs) != 2 {
		t.Fatalf("provider saw %d authorize requests; want 2", len(reqs))
	}
	su := reqs[1]
	if len(su.ACRValues) != 1 || su.ACRValues[0] != acrMFA {
		t.Errorf("step-up acr_values %v; want [%s]", su.ACRValues, acrMFA)
	}
	if su.MaxAge == nil || *su.MaxAge != 15*time.Minute {
		t.Errorf("step-up max_age %v; want 15m", su.MaxAge)
	}
	if su.LoginHint != "alice@bank.example" {
		t.Errorf("step-up login_hint %q; want the current user", su.LoginHint)
	}
	r := g.up.last()
	if r.Header.Get("X-Stepgate-Acr") != acrMFA || r.Header.Get("X-Stepgate-Amr") != "pwd,otp,mfa" {
		t.Errorf("upstream identity acr %q amr %q; want the multi-factor ones",
			r.Header.Get("X-Stepgate-Acr"), r.Header.Get("X-Stepgate-Amr"))
	}

	// Within max_age a second sensitive request needs no trip.
	resp, chain = b.browse(g.url+"/api/transfers/2", nil)
	body(t, resp)
	if resp.StatusCode != 200 || len(chain) != 1 {
		t.Errorf("second transfer: %d after %d hops; want 200 directly", resp.StatusCode, len(chain))
	}
}

func TestFirstVisitToSensitiveRouteTakesOneTrip(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(mfaLogin("alice"))
	resp, chain := g.browser().browse(g.url+"/admin/users", nil)
	if body(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d; want 200", resp.StatusCode)
	}
	if n := authorizeHops(chain, g.idp.url); n != 1 {
		t.Errorf("%d trips to the provider; want 1", n)
	}
	if reqs := g.idp.Requests(); len(reqs) != 1 || len(reqs[0].ACRValues) == 0 {
		t.Errorf("the first login did not ask for the level: %+v", reqs)
	}
}

func TestIdPIgnoringACRValuesGets403NotALoop(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(pwdLogin("alice")) // never multi-factor, whatever is asked
	b := g.browser()
	resp, chain := b.browse(g.url+"/api/transfers/new", nil)
	text := body(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(text, "Additional verification could not be completed") {
		t.Fatalf("got %d %q; want the 403 step-up failure page", resp.StatusCode, text)
	}
	if n := authorizeHops(chain, g.idp.url); n != 1 {
		t.Errorf("%d trips to the provider; want exactly 1, no loop", n)
	}
	if g.up.count() != 0 {
		t.Errorf("upstream got %d requests; want none", g.up.count())
	}
}

func TestUserRemovingACRValuesGets403(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(mfaLogin("alice")) // honours acr_values only when they are sent
	resp, _ := g.browser().browse(g.url+"/api/transfers/new", func(u *url.URL) {
		if strings.HasPrefix(u.String(), g.idp.url) && u.Query().Has("acr_values") {
			q := u.Query()
			q.Del("acr_values")
			q.Del("max_age")
			u.RawQuery = q.Encode()
		}
	})
	if body(t, resp); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d; want 403", resp.StatusCode)
	}
	if g.up.count() != 0 {
		t.Errorf("upstream got %d requests; want none", g.up.count())
	}
}

func TestStepUpAsAnotherUserEndsSession(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(pwdLogin("alice"))
	b := g.browser()
	resp, _ := b.browse(g.url+"/account", nil)
	body(t, resp)

	g.script(mfaLogin("mallory"))
	resp, _ = b.browse(g.url+"/api/transfers/new", nil)
	if text := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(text, "different account") {
		t.Fatalf("got %d %q; want 403 naming the account switch", resp.StatusCode, text)
	}
	// The session is gone: the next request needs a login.
	resp = b.do(http.MethodGet, g.url+"/account", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), g.idp.url) {
		t.Errorf("after the switch /account gave %d %q; want a redirect to the provider", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, r := range g.up.reqs {
		if r.Header.Get("X-Stepgate-Subject") == "mallory" {
			t.Error("upstream received a request as mallory")
		}
	}
}

func TestStaleStepUpStepsUpAgain(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(mfaLogin("alice"))
	b := g.browser()
	resp, _ := b.browse(g.url+"/api/transfers/1", nil)
	if body(t, resp); resp.StatusCode != 200 {
		t.Fatalf("first step-up: %d", resp.StatusCode)
	}
	// 14 minutes later the step-up (max_age 15m, 60 s leeway) still holds...
	g.advance(14 * time.Minute)
	resp = b.do(http.MethodGet, g.url+"/api/transfers/2", nil)
	if body(t, resp); resp.StatusCode != 200 {
		t.Fatalf("within max_age: %d; want 200", resp.StatusCode)
	}
	// ...and 3 minutes after that it does not.
	g.advance(3 * time.Minute)
	resp = b.do(http.MethodGet, g.url+"/api/transfers/3", nil)
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), g.idp.url) {
		t.Fatalf("stale step-up: %d %q; want a redirect to the provider", resp.StatusCode, resp.Header.Get("Location"))
	}
	if loc.Query().Get("max_age") != "900" || loc.Query().Get("acr_values") != acrMFA {
		t.Errorf("renewed step-up asks %v; want acr_values and max_age=900", loc.Query())
	}
}

// startFlow begins a flow on path and returns the provider redirect's URL
// without following it.
func startFlow(t *testing.T, b *browser, g *gw, path string) string {
	t.Helper()
	resp := b.do(http.MethodGet, g.url+path, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: %d; want 302", path, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// toCallback follows an authorize URL through the provider and returns the
// gateway callback URL it ends at, without calling it.
func toCallback(t *testing.T, b *browser, g *gw, authorize string) *url.URL {
	t.Helper()
	next := authorize
	for range 8 {
		resp := b.do(http.MethodGet, next, nil)
		resp.Body.Close()
		u, err := url.Parse(next)
		if err != nil {
			t.Fatal(err)
		}
		lu, err := u.Parse(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode < 300 || resp.StatusCode > 399 {
			t.Fatalf("provider answered %d at %s", resp.StatusCode, next)
		}
		if strings.HasPrefix(lu.String(), g.url+"/.stepgate/callback") {
			return lu
		}
		next = lu.String()
	}
	t.Fatal("never reached the callback")
	return nil
}

func TestCallbackRejections(t *testing.T) {
	t.Run("state replay", func(t *testing.T) {
		g := startGateway(t, nil, nil, oneSecret)
		g.script(pwdLogin("alice"))
		b := g.browser()
		cb := toCallback(t, b, g, startFlow(t, b, g, "/account"))
		resp := b.do(http.MethodGet, cb.String(), nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("first callback %d; want 302", resp.StatusCode)
		}
		if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
			t.Errorf("callback Referrer-Policy %q; want no-referrer (its URL carries the code)", rp)
		}
		resp = b.do(http.MethodGet, cb.String(), nil)
		if body(t, resp); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("replayed callback %d; want 400", resp.StatusCode)
		}
	})
	t.Run("missing state", func(t *testing.T) {
		g := startGateway(t, nil, nil, oneSecret)
		g.script(pwdLogin("alice"))
		b := g.browser()
		cb := toCallback(t, b, g, startFlow(t, b, g, "/account"))
		q := cb.Query()
		q.Del("state")
		cb.RawQuery = q.Encode()
		resp := b.do(http.MethodGet, cb.String(), nil)
		if body(t, resp); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("callback without state %d; want 400", resp.StatusCode)
		}
		if g.up.count() != 0 {
			t.Error("upstream reached")
		}
	})
	t.Run("callback in another browser", func(t *testing.T) {
		// Login CSRF: the victim opens the attacker's callback URL.
		g := startGateway(t, nil, nil, oneSecret)
		g.script(pwdLogin("attacker"))
		attacker := g.browser()
		cb := toCallback(t, attacker, g, startFlow(t, attacker, g, "/account"))
		victim := g.browser()
		resp := victim.do(http.MethodGet, cb.String(), nil)
		if body(t, resp); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("foreign callback %d; want 400", resp.StatusCode)
		}
	})
	t.Run("wrong nonce", func(t *testing.T) {
		// Two flows in two tabs; the code of flow A is delivered with the
		// state of flow B, so its ID token carries A's nonce, not B's.
		g := startGateway(t, nil, nil, oneSecret)
		g.script(pwdLogin("alice"))
		b := g.browser()
		cbA := toCallback(t, b, g, startFlow(t, b, g, "/a"))
		cbB := toCallback(t, b, g, startFlow(t, b, g, "/b"))
		mixed := *cbB
		q := cbB.Query()
		q.Set("code", cbA.Query().Get("code"))
		mixed.RawQuery = q.Encode()
		resp := b.do(http.MethodGet, mixed.String(), nil)
		if body(t, resp); resp.StatusCode != http.StatusForbidden {
			t.Errorf("code with another flow's nonce: %d; want 403", resp.StatusCode)
		}
		if g.up.count() != 0 {
			t.Error("upstream reached")
		}
	})
	t.Run("wrong audience", func(t *testing.T) {
		// The user swaps client_id: the code is issued to another client.
		g := startGateway(t, nil, nil, oneSecret)
		g.script(mfaLogin("alice"))
		resp, _ := g.browser().browse(g.url+"/api/transfers/1", func(u *url.URL) {
			if strings.HasPrefix(u.String(), g.idp.url) && u.Query().Get("client_id") == "stepgate" {
				q := u.Query()
				q.Set("client_id", "other-app")
				u.RawQuery = q.Encode()
			}
		})
		if body(t, resp); resp.StatusCode != http.StatusForbidden {
			t.Errorf("code for another client: %d; want 403", resp.StatusCode)
		}
		if g.up.count() != 0 {
			t.Error("upstream reached")
		}
	})
	t.Run("idp error", func(t *testing.T) {
		g := startGateway(t, nil, nil, oneSecret)
		g.script(devidp.Login{Error: "unmet_authentication_requirements"})
		resp, chain := g.browser().browse(g.url+"/api/transfers/1", nil)
		if body(t, resp); resp.StatusCode != http.StatusForbidden {
			t.Errorf("idp error: %d; want 403", resp.StatusCode)
		}
		if n := authorizeHops(chain, g.idp.url); n != 1 {
			t.Errorf("%d trips; want 1", n)
		}
	})
}

func TestAPIRequestGetsRFC9470Challenge(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(pwdLogin("alice"))
	b := g.browser()
	resp, _ := b.browse(g.url+"/account", nil)
	body(t, resp)

	for _, hdr := range []map[string]string{
		{"Accept": "application/json"},
		{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"},
	} {
		resp = b.do(http.MethodGet, g.url+"/api/transfers/1", hdr)
		want := `Bearer realm="stepgate", error="insufficient_user_authentication", acr_values="` + acrMFA + `", max_age=900`
		if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || got != want {
			t.Errorf("%v: %d %q; want 401 %q", hdr, resp.StatusCode, got, want)
		}
		var v struct{ Error, Level, Login_URL string }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if v.Error != "step_up_required" || v.Level != "mfa" || v.Login_URL != "/.stepgate/login?level=mfa&rd=%2Fapi%2Ftransfers%2F1" {
			t.Errorf("body %+v; want step_up_required, level mfa and the login_url", v)
		}
	}
	// Without any session the challenge asks for a login.
	resp = newBrowser(t).do(http.MethodPost, g.url+"/api/transfers/1", map[string]string{"Accept": "application/json"})
	if body(t, resp); resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no session: %d %q; want 401 Bearer", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if g.up.count() != 1 {
		t.Errorf("upstream got %d requests; want only the login's", g.up.count())
	}
}

func TestFormPostIsNeverReplayed(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(pwdLogin("alice"))
	b := g.browser()
	resp, _ := b.browse(g.url+"/transfers", nil)
	body(t, resp)
	before := g.up.count()
	resp = b.do(http.MethodPost, g.url+"/api/transfers", map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Referer": g.url + "/transfers?x=1",
	})
	text := body(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(text, `/.stepgate/login?level=mfa&amp;rd=%2Ftransfers%3Fx%3D1`) {
		t.Errorf("form POST: %d %q; want the verification page returning to the form", resp.StatusCode, text)
	}
	if g.up.count() != before {
		t.Error("the POST reached the upstream")
	}
}

func TestBadCookiesAreNoSession(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(pwdLogin("alice"))
	b := g.browser()
	resp, _ := b.browse(g.url+"/account", nil)
	body(t, resp)
	u, _ := url.Parse(g.url)
	var value string
	for _, c := range b.jar.Cookies(u) {
		if c.Name == "stepgate" {
			value = c.Value
		}
	}
	if value == "" {
		t.Fatal("no session cookie after login")
	}
	// sealed returns a session cookie value for alice's facts from issuer
	// iss, sealed by a store for another secret or deployment.
	sealed := func(secret, issuer, client, iss string) string {
		t.Helper()
		s, err := session.New(session.Config{Secrets: [][]byte{[]byte(secret)}, Lifetime: time.Hour, Issuer: issuer, ClientID: client})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptestRecorder()
		f := factsOf("alice")
		f.Issuer = iss
		if _, err := s.Save(rec, f, time.Now()); err != nil {
			t.Fatal(err)
		}
		return rec.Result().Cookies()[0].Value
	}

	flip := []byte(value)
	flip[len(flip)/2] ^= 1
	for name, v := range map[string]string{
		"tampered":    string(flip),
		"foreign key": sealed(secretNew, g.idp.url, "stepgate", g.idp.url),
		"truncated":   value[:len(value)-4],
		// Threat model case 85: the same secret in another deployment.
		"other issuer, same secret":    sealed(secretOld, "https://staging.idp.example", "stepgate", g.idp.url),
		"other client_id, same secret": sealed(secretOld, g.idp.url, "other-app", g.idp.url),
		"same keys, another iss":       sealed(secretOld, g.idp.url, "stepgate", "https://staging.idp.example"),
	} {
		t.Run(name, func(t *testing.T) {
			c := newBrowser(t)
			resp := c.do(http.MethodGet, g.url+"/account", map[string]string{"Cookie": "stepgate=" + v})
			resp.Body.Close()
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), g.idp.url) {
				t.Errorf("%s cookie: %d; want a fresh login", name, resp.StatusCode)
			}
		})
	}
}

func TestSecretRotationKeepsSessions(t *testing.T) {
	up := newUpstream(t)
	old := startGateway(t, nil, up, oneSecret)
	old.script(pwdLogin("alice"))
	b := old.browser()
	resp, _ := b.browse(old.url+"/account", nil)
	body(t, resp)

	rotated := startGateway(t, old.idp, up, `"`+secretNew+`", "`+secretOld+`"`)
	// The jar sends the same cookie: cookies are not port-specific.
	resp = b.do(http.MethodGet, rotated.url+"/account", nil)
	if body(t, resp); resp.StatusCode != 200 {
		t.Fatalf("after rotation: %d; want the old cookie to open", resp.StatusCode)
	}
	onlyNew := startGateway(t, old.idp, up, `"`+secretNew+`"`)
	resp = b.do(http.MethodGet, onlyNew.url+"/account", nil)
	if body(t, resp); resp.StatusCode != http.StatusFound {
		t.Errorf("with the old secret removed: %d; want a fresh login", resp.StatusCode)
	}
}

func TestLoginRedirectsStayLocal(t *testing.T) {
	g := startGateway(t, nil, nil, oneSecret)
	g.script(pwdLogin("alice"))
	b := g.browser()
	resp, _ := b.browse(g.url+"/account", nil)
	body(t, resp)
	evil := []string{
		"//evil.com", "///evil.com", "/\\evil.com", "\\\\evil.com", "/\t/evil.com", "/\n/evil.com", "/\r/evil.com",
		"https:evil.com", "https:/evil.com", "https://evil.com", "HTTPS://evil.com", "javascript:alert(1)",
		"data:text/html,x", "https://bank.example.com.evil.com", "https://bank.example.com@evil.com",
		"https://evil.com#@bank.example.com", "https://evil.com\\.bank.example.com", "%2F%2Fevil.com",
		"/%2F/evil.com", "/%5Cevil.com", "／／evil.com", "/.stepgate/logout", "/.STEPGATE/callback?code=x",
		"/./.stepgate/login", "/a/../.stepgate/session", "evil.com", "",
	}
	for _, rd := range evil {
		resp := b.do(http.MethodGet, g.url+"/.stepgate/login?rd="+url.QueryEscape(rd), nil)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode == http.StatusFound {
			if loc != "/" {
				t.Errorf("rd=%q redirected to %q; want 400 or /", rd, loc)
			}
		} else if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("rd=%q: %d; want 400", rd, resp.StatusCode)
		}
	}
	for _, rd := range []string{"/account", "/api/transfers/1?amount=5"} {
		resp := b.do(http.MethodGet, g.url+"/.stepgate/login?rd="+url.QueryEscape(rd), nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != rd && !strings.HasPrefix(resp.Header.Get("Location"), g.idp.url) {
			t.Errorf("local rd=%q: %d %q", rd, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestCallbackReturnPathIsLocal(t *testing.T) {
	// Whatever path started the flow, the callback sends the browser to a
	// local path on the gateway.
	g := startGateway(t, nil, nil, oneSecret)
	g.script(pwdLogin("alice"))
	for _, p := range []string{"/account", "/a/b?c=d", "/x/%2e%2e/y"} {
		b := g.browser()
		cb := toCallback(t, b, g, startFlow(t, b, g, p))
		resp := b.do(http.MethodGet, cb.String(), nil)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") {
			t.Errorf("start %q: callback gave %d %q; want a local redirect", p, resp.StatusCode, loc)
		}
	}
}

func TestLoginInfersLevelFromReturnPath(t *testing.T) {
	// ingress-nginx's auth-signin names no level: the login must still ask
	// for what the return path needs, or the browser would loop.
	g := startGateway(t, nil, nil, oneSecret)
	g.script(pwdLogin("alice"))
	b := g.browser()
	resp, _ := b.browse(g.url+"/account", nil)
	body(t, resp)
	resp = b.do(http.MethodGet, g.url+"/.stepgate/login?rd="+url.QueryEscape("/api/transfers/1"), nil)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || loc.Query().Get("acr_values") != acrMFA {
		t.Fatalf("login without level for an mfa page: %d %q; want a redirect asking for acr_values", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A page that needs no level: an authenticated user goes straight back.
	resp = b.do(http.MethodGet, g.url+"/.stepgate/login?rd=%2Faccount", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/account" {
		t.Errorf("login for a plain page: %d %q; want /account", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestRedirectURIIgnoresForwardedHost(t *testing.T) {
	// threat model case 25: the callback comes from public_url, never from a
	// header the client controls, or the code would go to evil.example.
	g := startGateway(t, nil, nil, oneSecret)
	resp := g.browser().do(http.MethodGet, g.url+"/account", map[string]string{
		"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example",
	})
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d; want a redirect to the provider", resp.StatusCode)
	}
	if got := loc.Query().Get("redirect_uri"); got != g.url+"/.stepgate/callback" {
		t.Errorf("redirect_uri %q; want %q", got, g.url+"/.stepgate/callback")
	}
}
