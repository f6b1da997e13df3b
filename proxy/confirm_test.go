package proxy

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/store"
	"github.com/stepgate/stepgate/store/redistest"
)

var (
	payLevel = &policy.Level{Name: "pay", ACRValues: []string{"urn:mfa"}, MaxAge: 5 * time.Minute,
		SatisfiedBy: []policy.Alternative{{ACR: []string{"urn:mfa"}}}}
	onceLevel = &policy.Level{Name: "pay_once", ACRValues: []string{"urn:mfa"}, MaxAge: 5 * time.Minute, Once: true,
		SatisfiedBy: []policy.Alternative{{ACR: []string{"urn:mfa"}}}}
	sendMoney = &policy.Confirm{Title: "Send money", MaxBody: 1024, TTL: time.Minute, Fields: []policy.ConfirmField{
		{Name: "amount", Label: "Amount"}, {Name: "to", Label: "To"}, {Name: "payee.iban", Label: "IBAN"}}}
)

// confirmFixture is a gateway with a confirm route (/pay/**, level pay) and
// a once route (/once/**), in front of the recording upstream.
func newConfirmFixture(t *testing.T, edit func(*policy.Confirm)) *flowFixture {
	t.Helper()
	c := *sendMoney
	if edit != nil {
		edit(&c)
	}
	table, err := policy.NewTable([]policy.Rule{
		{Name: "pay", Path: "/pay/**", Access: policy.Leveled, Level: payLevel, Confirm: &c},
		{Name: "once", Path: "/once/**", Access: policy.Leveled, Level: onceLevel},
		{Name: "public", Path: "/public/**", Access: policy.Public},
	}, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return newFlowFixture(t, oidctest.Options{}, func(cfg *Config) {
		cfg.Table = table
		cfg.Levels = []*policy.Level{payLevel, onceLevel}
	})
}

var (
	strongFacts  = policy.Facts{Subject: "alice", ACR: "urn:mfa", AMR: []string{"pwd", "otp"}, AuthTime: time.Now()}
	sameOrigin   = map[string]string{"Origin": "http://gateway.test", "Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"}
	csrfField    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	transferForm = "amount=42.00&to=Bob+%3Cb%3E&payee.iban=DE89370400440532013000"
)

// hold POSTs body to /pay/x as the jar's browser and returns the hold ID
// from the redirect to the confirm page.
func (fx *flowFixture) hold(t *testing.T, body string, hdr map[string]string) (string, *http.Response) {
	t.Helper()
	resp := fx.sendBody(http.MethodPost, "/pay/x?ref=7", body, hdr)
	loc := resp.Header.Get("Location")
	if i := strings.Index(loc, "confirm?id="); i >= 0 {
		return loc[i+len("confirm?id="):], resp
	}
	if i := strings.Index(loc, "confirm%3Fid%3D"); i >= 0 {
		return loc[i+len("confirm%3Fid%3D"):], resp
	}
	return "", resp
}

func (fx *flowFixture) sendBody(method, target, body string, hdr map[string]string) *http.Response {
	fx.t.Helper()
	return fx.sendBodyTo(fx.h, method, target, body, hdr)
}

// page GETs the confirm page of id and returns its status, body and CSRF token.
func (fx *flowFixture) page(t *testing.T, id string) (int, string, string) {
	t.Helper()
	resp := fx.get(confirmPath+"?id="+id, htmlHdr)
	body := readBody(t, resp)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		return resp.StatusCode, body, ""
	}
	return resp.StatusCode, body, m[1]
}

func (fx *flowFixture) decide(t *testing.T, id, csrf, action string) *http.Response {
	t.Helper()
	form := url.Values{"id": {id}, "csrf": {csrf}, "action": {action}}
	return fx.sendBody(http.MethodPost, confirmPath, form.Encode(), sameOrigin)
}

func (fx *flowFixture) upstreamPaths() []string {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	var out []string
	for _, r := range fx.got {
		out = append(out, r.Method+" "+r.URL.RequestURI())
	}
	return out
}

// A held transaction is shown with the values that will be sent, released
// by its confirmation exactly once, and never by anything else.
func TestHeldTransactionConfirmedOnce(t *testing.T) {
	fx := newConfirmFixture(t, nil)
	fx.signIn(strongFacts)
	id, resp := fx.hold(t, transferForm, sameOrigin)
	if resp.StatusCode != http.StatusSeeOther || id == "" {
		t.Fatalf("POST to a confirm route: %d Location %q; want 303 to the confirm page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := fx.upstreamCount(); n != 0 {
		t.Fatalf("the held request reached the upstream (%d requests) before any confirmation", n)
	}
	status, body, csrf := fx.page(t, id)
	for _, want := range []string{"Send money", "42.00", "Bob &lt;b&gt;", "DE89370400440532013000", "POST /pay/x?ref=7"} {
		if !strings.Contains(body, want) {
			t.Errorf("confirm page lacks %q:\n%s", want, body)
		}
	}
	if status != 200 || csrf == "" || strings.Contains(body, "<b>") {
		t.Fatalf("confirm page: %d, csrf %q; want 200 with a token and escaped values", status, csrf)
	}

	resp = fx.decide(t, id, csrf, "confirm")
	if got := readBody(t, resp); resp.StatusCode != 200 || got != "upstream" {
		t.Fatalf("confirm: %d %q; want the upstream's answer", resp.StatusCode, got)
	}
	r := fx.lastUpstream()
	if r.Method != http.MethodPost || r.URL.RequestURI() != "/pay/x?ref=7" || r.Header.Get(HeaderConfirmation) != id ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.Header.Get(HeaderACR) != "urn:mfa" {
		t.Errorf("upstream got %s %s confirmation %q type %q acr %q; want the held POST with its confirmation and identity",
			r.Method, r.URL.RequestURI(), r.Header.Get(HeaderConfirmation), r.Header.Get("Content-Type"), r.Header.Get(HeaderACR))
	}

	// Replayed Confirm and a reload: 410, and still one transaction.
	if resp := fx.decide(t, id, csrf, "confirm"); resp.StatusCode != http.StatusGone {
		t.Errorf("replayed confirm: %d; want 410", resp.StatusCode)
	}
	if status, _, _ := fx.page(t, id); status != http.StatusGone {
		t.Errorf("reloaded confirm page: %d; want 410", status)
	}
	if got := fx.upstreamPaths(); len(got) != 1 {
		t.Errorf("upstream received %v; want exactly one transaction", got)
	}
	if metric(t, fx.h, `stepgate_held_transactions_total{outcome="confirmed"}`) != 1 {
		t.Error("the confirmation was not counted")
	}
}

func TestHeldTransactionRefusals(t *testing.T) {
	t.Run("cross-site requests are never held", func(t *testing.T) {
		fx := newConfirmFixture(t, nil)
		fx.signIn(strongFacts)
		for _, hdr := range []map[string]string{
			{"Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"},
			{"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
			{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"},
			{"Origin": "null", "Content-Type": "application/x-www-form-urlencoded"},
		} {
			if _, resp := fx.hold(t, transferForm, hdr); resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST with %v: %d; want 403", hdr, resp.StatusCode)
			}
		}
		if metric(t, fx.h, `stepgate_held_transactions_total{outcome="held"}`) != 0 || fx.upstreamCount() != 0 {
			t.Error("a cross-site request was held or forwarded")
		}
	})
	t.Run("body over max_body", func(t *testing.T) {
		fx := newConfirmFixture(t, nil)
		fx.signIn(strongFacts)
		if _, resp := fx.hold(t, "amount="+strings.Repeat("9", 2000), sameOrigin); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a 2 KB body on a 1 KiB route: %d; want 413", resp.StatusCode)
		}
	})
	t.Run("a field twice", func(t *testing.T) {
		fx := newConfirmFixture(t, nil)
		fx.signIn(strongFacts)
		if _, resp := fx.hold(t, "amount=1&amount=9000&to=Bob", sameOrigin); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("form with amount twice: %d; want 400", resp.StatusCode)
		}
		json := map[string]string{"Origin": "http://gateway.test", "Accept": "application/json", "Content-Type": "application/json"}
		if _, resp := fx.hold(t, `{"amount":"1","amount":"9000"}`, json); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("JSON with amount twice: %d; want 400", resp.StatusCode)
		}
	})
	t.Run("what the page could not show", func(t *testing.T) {
		fx := newConfirmFixture(t, nil)
		fx.signIn(strongFacts)
		hdr := func(ct string) map[string]string {
			return map[string]string{"Origin": "http://gateway.test", "Accept": "application/json", "Content-Type": ct}
		}
		for _, tc := range []struct {
			name, target, ct, body string
			status                 int
		}{
			{"text body", "/pay/x", "text/plain", "amount=9000", http.StatusUnsupportedMediaType},
			{"multipart body", "/pay/x", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"amount\"\r\n\r\n9000\r\n--x--", http.StatusUnsupportedMediaType},
			{"XML body", "/pay/x", "application/xml", "<amount>9000</amount>", http.StatusUnsupportedMediaType},
			{"a shown field in the query", "/pay/x?amount=9000", "application/x-www-form-urlencoded", "amount=1", http.StatusBadRequest},
			{"a JSON key that flattens onto a nested one", "/pay/x", "application/json", `{"payee.iban":"DE1","payee":{"iban":"DE2"}}`, http.StatusBadRequest},
			{"a duplicate key in a nested JSON object", "/pay/x", "application/json", `{"payee":{"iban":"DE1","iban":"DE2"}}`, http.StatusBadRequest},
			{"a form with ; separators", "/pay/x", "application/x-www-form-urlencoded", "amount=1;amount=9000", http.StatusBadRequest},
			{"JSON with a charset", "/pay/x", "application/json; charset=utf-8", `{"amount":"1"}`, http.StatusSeeOther},
		} {
			status := fx.sendBody(http.MethodPost, tc.target, tc.body, hdr(tc.ct)).StatusCode
			if tc.status == http.StatusSeeOther {
				tc.status = http.StatusAccepted // an API caller whose level is met
			}
			if status != tc.status {
				t.Errorf("%s: %d; want %d", tc.name, status, tc.status)
			}
		}
		if fx.upstreamCount() != 0 {
			t.Error("a request the page could not show reached the upstream")
		}
	})
	t.Run("method override", func(t *testing.T) {
		fx := newConfirmFixture(t, nil)
		fx.signIn(strongFacts)
		resp := fx.sendBody(http.MethodGet, "/pay/x?_method=POST", "", htmlHdr)
		if resp.StatusCode != http.StatusForbidden || fx.upstreamCount() != 0 {
			t.Errorf("GET ?_method=POST on a confirm route: %d; want 403 and nothing forwarded", resp.StatusCode)
		}
	})
	t.Run("expired hold", func(t *testing.T) {
		fx := newConfirmFixture(t, func(c *policy.Confirm) { c.TTL = time.Second })
		fx.signIn(strongFacts)
		id, _ := fx.hold(t, transferForm, sameOrigin)
		_, _, csrf := fx.page(t, id)
		time.Sleep(1100 * time.Millisecond)
		if resp := fx.decide(t, id, csrf, "confirm"); resp.StatusCode != http.StatusGone || fx.upstreamCount() != 0 {
			t.Errorf("confirm after the ttl: %d; want 410 and nothing sent", resp.StatusCode)
		}
	})
	t.Run("CSRF token missing or wrong", func(t *testing.T) {
		fx := newConfirmFixture(t, nil)
		fx.signIn(strongFacts)
		id, _ := fx.hold(t, transferForm, sameOrigin)
		_, _, csrf := fx.page(t, id)
		for _, bad := range []string{"", "x", csrf[:len(csrf)-2] + "AA"} {
			if resp := fx.decide(t, id, bad, "confirm"); resp.StatusCode != http.StatusForbidden {
				t.Errorf("csrf %q: %d; want 403", bad, resp.StatusCode)
			}
		}
		form := url.Values{"id": {id}, "csrf": {csrf}, "action": {"confirm"}}
		cross := map[string]string{"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}
		if resp := fx.sendBody(http.MethodPost, confirmPath, form.Encode(), cross); resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site confirm with the right token: %d; want 403", resp.StatusCode)
		}
		if fx.upstreamCount() != 0 {
			t.Error("a refused confirmation sent the transaction")
		}
		// The hold is still there for the real confirmation.
		if resp := fx.decide(t, id, csrf, "confirm"); resp.StatusCode != 200 {
			t.Errorf("the real confirmation after refused ones: %d; want 200", resp.StatusCode)
		}
	})
	t.Run("cancel sends nothing", func(t *testing.T) {
		fx := newConfirmFixture(t, nil)
		fx.signIn(strongFacts)
		id, _ := fx.hold(t, transferForm, sameOrigin)
		_, _, csrf := fx.page(t, id)
		if resp := fx.decide(t, id, csrf, "cancel"); resp.StatusCode != 200 {
			t.Errorf("cancel: %d; want 200", resp.StatusCode)
		}
		if resp := fx.decide(t, id, csrf, "confirm"); resp.StatusCode != http.StatusGone || fx.upstreamCount() != 0 {
			t.Errorf("confirm after cancel: %d; want 410 and nothing sent", resp.StatusCode)
		}
	})
	t.Run("another user or another browser", func(t *testing.T) {
		fx := newConfirmFixture(t, nil)
		fx.signIn(strongFacts)
		id, _ := fx.hold(t, transferForm, sameOrigin)
		aliceJar := fx.jar

		// Mallory, signed in, opens alice's confirm URL.
		fx.jar = newJar(t)
		fx.signIn(policy.Facts{Subject: "mallory", ACR: "urn:mfa", AMR: []string{"pwd", "otp"}, AuthTime: time.Now()})
		for _, c := range aliceJar.Cookies(gatewayURL) {
			if strings.Contains(c.Name, holdCookie) { // even with alice's hold cookie
				fx.jar.SetCookies(gatewayURL, []*http.Cookie{c})
			}
		}
		if status, _, _ := fx.page(t, id); status != http.StatusForbidden {
			t.Errorf("another user's confirm page: %d; want 403", status)
		}
		// Alice in another browser: her session, not the hold's browser.
		fx.jar = newJar(t)
		fx.signIn(strongFacts)
		if status, _, _ := fx.page(t, id); status != http.StatusForbidden {
			t.Errorf("the same user in another browser: %d; want 403", status)
		}
		if fx.upstreamCount() != 0 {
			t.Error("someone else's view sent the transaction")
		}
	})
}

// A session that does not meet the level yet: the browser is sent to the
// step-up, which comes back to the confirm page; an API client gets the
// RFC 9470 challenge and the confirm_url.
func TestHeldTransactionStepsUpFirst(t *testing.T) {
	fx := newConfirmFixture(t, nil)
	fx.signIn(policy.Facts{Subject: "alice", Email: "alice@example.test", AMR: []string{"pwd"}, AuthTime: time.Now()})
	id, resp := fx.hold(t, transferForm, sameOrigin)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, reservedPrefix+"login?") || id == "" {
		t.Fatalf("held with a weak session: %d %q; want 303 to the step-up", resp.StatusCode, loc)
	}
	resp = fx.get(loc, htmlHdr) // the login endpoint accepts the confirm page as rd
	if q := fx.authorize(resp); q.Get("acr_values") != "urn:mfa" {
		t.Fatalf("step-up asked acr_values %q; want urn:mfa", q.Get("acr_values"))
	}
	resp = fx.complete(resp)
	if got := resp.Header.Get("Location"); got != confirmPath+"?id="+id {
		t.Fatalf("after the step-up the browser goes to %q; want the confirm page", got)
	}
	status, _, csrf := fx.page(t, id)
	if status != 200 {
		t.Fatalf("confirm page after the step-up: %d", status)
	}
	if resp := fx.decide(t, id, csrf, "confirm"); resp.StatusCode != 200 || fx.upstreamCount() != 1 {
		t.Errorf("confirm after the step-up: %d, %d sent; want 200 and one", resp.StatusCode, fx.upstreamCount())
	}

	api := newConfirmFixture(t, nil)
	api.signIn(policy.Facts{Subject: "alice", AMR: []string{"pwd"}, AuthTime: time.Now()})
	_, resp = api.hold(t, `{"amount":"1"}`, map[string]string{"Origin": "http://gateway.test", "Accept": "application/json", "Content-Type": "application/json"})
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) ||
		!strings.Contains(body, `"error":"confirmation_required"`) || !strings.Contains(body, `"confirm_url":"/.stepgate/confirm?id=`) {
		t.Errorf("API hold with a weak session: %d %q %s; want 401 with the challenge and confirm_url", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
}

// A once level admits one request per step-up, also for a copy of the
// cookie; the next one steps up again.
func TestOnceLevel(t *testing.T) {
	fx := newConfirmFixture(t, nil)
	_, cookie := fx.saveSession(strongFacts, "")
	first := fx.with(cookie, http.MethodGet, "/once/x", jsonHdr)
	if first.StatusCode != 200 {
		t.Fatalf("first request after the step-up: %d; want 200", first.StatusCode)
	}
	for _, who := range []string{"the same browser", "a copy of the cookie"} {
		resp := fx.with(cookie, http.MethodGet, "/once/x", jsonHdr)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_user_authentication") {
			t.Errorf("%s, second request: %d; want 401 step-up", who, resp.StatusCode)
		}
	}
	if n := fx.upstreamCount(); n != 1 {
		t.Errorf("upstream got %d requests; want 1", n)
	}
	// A new step-up (a new session) admits one more.
	_, again := fx.saveSession(strongFacts, "")
	if resp := fx.with(again, http.MethodGet, "/once/x", jsonHdr); resp.StatusCode != 200 {
		t.Errorf("after a new step-up: %d; want 200", resp.StatusCode)
	}
}

func newJar(t *testing.T) http.CookieJar {
	t.Helper()
	j, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// Behind forward-auth the ingress forwards the body itself: a confirm route
// never lets a state-changing request through, and a once level is spent
// by the first allowed request there too.
func TestConfirmAndOnceBehindForwardAuth(t *testing.T) {
	fx := newConfirmFixture(t, nil)
	fx.h.trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} // httptest's RemoteAddr
	_, cookie := fx.saveSession(strongFacts, "")
	ask := func(method, uri string) *http.Response {
		r := httptest.NewRequest(http.MethodGet, authPath, nil)
		r.Host = gatewayURL.Host
		for k, v := range map[string]string{"X-Forwarded-Method": method, "X-Forwarded-Host": "gateway.test", "X-Forwarded-Uri": uri, "Cookie": cookie, "Accept": "application/json"} {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, r)
		return rec.Result()
	}
	if resp := ask("POST", "/pay/x"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("forward-auth POST to a confirm route: %d; want 403", resp.StatusCode)
	}
	if resp := ask("GET", "/once/x"); resp.StatusCode != http.StatusOK {
		t.Errorf("forward-auth first request on a once level: %d; want 200", resp.StatusCode)
	}
	if resp := ask("GET", "/once/x"); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get(HeaderSignin) == "" {
		t.Errorf("forward-auth second request on a once level: %d; want 401 with a sign-in URL", resp.StatusCode)
	}
}

// Two replicas sharing one Redis: a request held on A is confirmed on B,
// exactly once, even when both get the Confirm at the same moment.
func TestHeldTransactionAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	shared, err := store.NewRedis(t.Context(), srv.URL(), store.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	fx := newConfirmFixture(t, nil)
	a := fx.restart(func(c *Config) { c.Store = shared }, false)
	b := fx.restart(func(c *Config) { c.Store = shared }, false)
	fx.signIn(strongFacts)

	resp := fx.sendBodyTo(a, http.MethodPost, "/pay/x", transferForm, sameOrigin)
	loc := resp.Header.Get("Location")
	id, ok := strings.CutPrefix(loc, confirmPath+"?id=")
	if resp.StatusCode != http.StatusSeeOther || !ok {
		t.Fatalf("hold on A: %d %q", resp.StatusCode, loc)
	}

	fx.h = b
	_, _, csrf := fx.page(t, id)
	if csrf == "" {
		t.Fatal("B does not show the transaction held on A")
	}
	form := url.Values{"id": {id}, "csrf": {csrf}, "action": {"confirm"}}.Encode()
	codes := make(chan int, 2)
	for _, h := range []*Handler{a, b} {
		go func() { codes <- fx.sendBodyTo(h, http.MethodPost, confirmPath, form, sameOrigin).StatusCode }()
	}
	got := []int{<-codes, <-codes}
	if !(got[0] == 200 && got[1] == http.StatusGone || got[0] == http.StatusGone && got[1] == 200) {
		t.Errorf("concurrent Confirms on A and B: %v; want one 200 and one 410", got)
	}
	if n := fx.upstreamCount(); n != 1 {
		t.Errorf("upstream got %d transactions; want exactly 1", n)
	}
}

// With an authorization_details template, the step-up for a held
// transaction carries the details filled from its fields (as JSON strings:
// a field cannot change the structure), and a token response whose details
// differ is a 403 that sends nothing.
func TestHeldTransactionAuthorizationDetails(t *testing.T) {
	const tmpl = `[{"type":"payment_initiation","instructedAmount":{"amount":"{{amount}}","currency":"EUR"},"creditorAccount":{"iban":"{{payee.iban}}"}}]`
	form := `amount=42.00&to=Bob&payee.iban=DE89%22%7D%2C%22x%22%3A%221`
	for _, tc := range []struct {
		name   string
		answer func(string) string
		status int
	}{
		{"echoed", nil, http.StatusFound},
		{"altered by the provider", func(string) string {
			return `[{"type":"payment_initiation","instructedAmount":{"amount":"4200.00","currency":"EUR"}}]`
		}, http.StatusForbidden},
		{"dropped by the provider", func(string) string { return "" }, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newConfirmFixture(t, func(c *policy.Confirm) { c.AuthorizationDetails = tmpl })
			fx.idp.SetToken(oidctest.Token{AuthorizationDetails: tc.answer})
			fx.signIn(policy.Facts{Subject: "alice", Email: "alice@example.test", AMR: []string{"pwd"}, AuthTime: time.Now()})
			id, resp := fx.hold(t, form, sameOrigin)
			resp = fx.get(resp.Header.Get("Location"), htmlHdr)
			q := fx.authorize(resp)
			want := `[{"creditorAccount":{"iban":"DE89\"},\"x\":\"1"},"instructedAmount":{"amount":"42.00","currency":"EUR"},"type":"payment_initiation"}]`
			if got := q.Get("authorization_details"); got != want {
				t.Fatalf("authorization_details sent %s; want %s", got, want)
			}
			resp = fx.complete(resp)
			if resp.StatusCode != tc.status {
				t.Errorf("callback: %d; want %d", resp.StatusCode, tc.status)
			}
			if tc.status == http.StatusFound && resp.Header.Get("Location") != confirmPath+"?id="+id {
				t.Errorf("after the step-up: %q; want the confirm page", resp.Header.Get("Location"))
			}
			if fx.upstreamCount() != 0 {
				t.Error("the held transaction was sent before it was confirmed")
			}
		})
	}
}

// A confirm route on a once level: each transaction gets its own step-up,
// so the second one goes to the step-up, not straight to its confirm page.
func TestHeldTransactionOnceLevel(t *testing.T) {
	c := *sendMoney
	table, err := policy.NewTable([]policy.Rule{
		{Name: "pay", Path: "/pay/**", Access: policy.Leveled, Level: onceLevel, Confirm: &c},
	}, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fx := newFlowFixture(t, oidctest.Options{}, func(cfg *Config) { cfg.Table, cfg.Levels = table, []*policy.Level{onceLevel} })
	fx.signIn(strongFacts)
	id, resp := fx.hold(t, transferForm, sameOrigin)
	if resp.Header.Get("Location") != confirmPath+"?id="+id {
		t.Fatalf("first transaction after the step-up: %q; want its confirm page", resp.Header.Get("Location"))
	}
	_, _, csrf := fx.page(t, id)
	if resp := fx.decide(t, id, csrf, "confirm"); resp.StatusCode != 200 {
		t.Fatalf("first confirm: %d", resp.StatusCode)
	}
	_, resp = fx.hold(t, transferForm, sameOrigin)
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, reservedPrefix+"login?level=pay_once") {
		t.Errorf("second transaction on the same step-up: %q; want a new step-up first", loc)
	}
	if fx.upstreamCount() != 1 {
		t.Errorf("upstream got %d; want 1", fx.upstreamCount())
	}
}
