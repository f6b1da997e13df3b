package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/stepgate/stepgate/demo"
	"github.com/stepgate/stepgate/devidp"
)

// testDemo starts the demo's parts on free loopback ports with a gateway
// clock the test can move forward.
type testDemo struct {
	*demo.Demo
	clock atomic.Int64 // nanoseconds added to the real time
}

func startTestDemo(t *testing.T) *testDemo {
	t.Helper()
	return startTestDemoWith(t, nil)
}

// startTestDemoWith lets edit change the options first.
func startTestDemoWith(t *testing.T, edit func(*demo.Options)) *testDemo {
	t.Helper()
	td := &testDemo{}
	opt := demo.Options{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", IDPListen: "127.0.0.1:0", AppListen: "127.0.0.1:0",
		AdminMaxAge: 2 * time.Minute,
		Now:         func() time.Time { return time.Now().Add(time.Duration(td.clock.Load())) },
	}
	if edit != nil {
		edit(&opt)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := demo.Start(ctx, opt)
	if err != nil {
		cancel()
		t.Fatalf("demo.Start: %v", err)
	}
	td.Demo = d
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.Done():
		case <-time.After(10 * time.Second):
			t.Error("demo did not shut down within 10s of ctx cancel")
		}
	})
	return td
}

func (td *testDemo) advance(d time.Duration) { td.clock.Add(int64(d)) }

func (td *testDemo) user(t *testing.T, name string) demo.User {
	t.Helper()
	for _, u := range td.Users {
		if u.Username == name {
			return u
		}
	}
	t.Fatalf("no demo user %q", name)
	return demo.User{}
}

// formClient is a cookie-jar client that follows redirects and submits the
// demo's forms as a browser would.
type formClient struct {
	t *testing.T
	c *http.Client

	origin string // sent as Origin when set, as a browser does for a form POST
}

func newFormClient(t *testing.T) *formClient {
	jar, _ := cookiejar.New(nil)
	return &formClient{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (fc *formClient) send(method, rawURL string, form url.Values, referer string) (int, string, *url.URL) {
	fc.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		fc.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if referer != "" {
		req.Header.Set("Referer", referer)
	}
	if fc.origin != "" {
		req.Header.Set("Origin", fc.origin)
	}
	resp, err := fc.c.Do(req)
	if err != nil {
		fc.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Request.URL
}

var (
	csrfField    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	reqIDField   = regexp.MustCompile(`name="authRequestID" value="([^"]+)"`)
	continueLink = regexp.MustCompile(`id="stepgate-continue" href="([^"]+)"`)
)

// submitLogin posts the password or code form on page (an IdP page at at).
func (fc *formClient) submitLogin(page string, at *url.URL, v url.Values) (int, string, *url.URL) {
	fc.t.Helper()
	m := reqIDField.FindStringSubmatch(page)
	if m == nil {
		fc.t.Fatalf("page at %s is not a login form: %q", at, page)
	}
	v.Set("authRequestID", m[1])
	return fc.send(http.MethodPost, at.Scheme+"://"+at.Host+"/login", v, "")
}

func TestDemoFlow(t *testing.T) {
	td := startTestDemo(t)
	alice := td.user(t, "alice")
	fc := newFormClient(t)

	// Password-only login for the account page.
	_, page, at := fc.send(http.MethodGet, td.GatewayURL+"/account", nil, "")
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("GET /account ended at %s with %q; want the provider's password page", at, page)
	}
	status, page, at := fc.submitLogin(page, at, url.Values{"step": {"password"}, "username": {"alice"}, "password": {alice.Password}})
	if status != 200 || !strings.Contains(page, `id="balance"`) || !strings.Contains(page, "<code>pwd</code>") || strings.Contains(page, devidp.ACRMultiFactor) {
		t.Fatalf("after password: %d at %s %q; want the account page with amr pwd and no acr", status, at, page)
	}

	// A transfer is held: the gateway steps up with the one-time code
	// (through PAR, carrying the transaction as authorization_details),
	// shows what will be sent, and sends it once on Confirm.
	transfer := url.Values{"to": {"Bob"}, "amount": {"42.00"}, "currency": {"EUR"}, "payee_iban": {"DE89370400440532013000"}}
	fc.origin = td.GatewayURL // a browser's form POST carries its origin
	status, page, at = fc.send(http.MethodPost, td.GatewayURL+"/api/transfers", transfer, td.GatewayURL+"/transfers")
	if !strings.Contains(page, `name="code"`) || strings.Contains(page, `name="password"`) {
		t.Fatalf("transfer with a password session: %d at %s %q; want the provider's code page (the SSO session spares the password)", status, at, page)
	}
	if !strings.Contains(page, "Send 42.00 EUR to DE89370400440532013000") {
		t.Errorf("the code page does not show the transaction (dynamic linking): %q", page)
	}
	if reqs := td.IDP.Requests(); !reqs[len(reqs)-1].Pushed {
		t.Errorf("the step-up was not pushed (PAR): %+v", reqs[len(reqs)-1])
	}
	if n := len(td.App.Transfers()); n != 0 {
		t.Fatalf("%d transfers reached the app before step-up; want 0", n)
	}

	t.Run("wrong code", func(t *testing.T) {
		status, page, _ := fc.submitLogin(page, at, url.Values{"step": {"code"}, "code": {"000000"}})
		if status != http.StatusUnauthorized || !strings.Contains(page, "Wrong code") {
			t.Errorf("wrong code: %d %q; want 401 with an error", status, page)
		}
		if n := len(td.App.Transfers()); n != 0 {
			t.Errorf("%d transfers reached the app after a wrong code; want 0", n)
		}
	})

	code, _ := totp.GenerateCode(alice.TOTPSecret, time.Now())
	_, page, at = fc.submitLogin(page, at, url.Values{"step": {"code"}, "code": {code}})
	m := csrfField.FindStringSubmatch(page)
	if at.Path != "/.stepgate/confirm" || m == nil || !strings.Contains(page, "42.00") || !strings.Contains(page, "DE89370400440532013000") {
		t.Fatalf("after the code: at %s %q; want the confirm page showing the transfer", at, page)
	}
	id := at.Query().Get("id")
	confirm := url.Values{"id": {id}, "csrf": {m[1]}, "action": {"confirm"}}
	status, page, _ = fc.send(http.MethodPost, td.GatewayURL+"/.stepgate/confirm", confirm, "")
	if status != 200 || !strings.Contains(page, `id="transfer-done"`) {
		t.Fatalf("confirm: %d %q; want the bank's done page", status, page)
	}
	// A replayed Confirm and a reload: 410, still one transfer.
	if status, _, _ = fc.send(http.MethodPost, td.GatewayURL+"/.stepgate/confirm", confirm, ""); status != http.StatusGone {
		t.Errorf("replayed confirm: %d; want 410", status)
	}
	if status, _, _ = fc.send(http.MethodGet, td.GatewayURL+"/.stepgate/confirm?id="+id, nil, ""); status != http.StatusGone {
		t.Errorf("reloaded confirm page: %d; want 410", status)
	}
	got := td.App.Transfers()
	if len(got) != 1 || got[0].Subject != "alice" || got[0].ACR != devidp.ACRMultiFactor || got[0].Amount != "42.00" ||
		got[0].IBAN != "DE89370400440532013000" || got[0].Confirmation != id {
		t.Fatalf("app recorded %+v; want one multi-factor transfer of 42.00 by alice, confirmed as %s", got, id)
	}

	// The once level: the next transfer gets its own code; Cancel sends nothing.
	_, page, at = fc.send(http.MethodPost, td.GatewayURL+"/api/transfers", transfer, td.GatewayURL+"/transfers")
	if !strings.Contains(page, `name="code"`) {
		t.Fatalf("second transfer: at %s %q; want the code page again (once level)", at, page)
	}
	_, page, at = fc.submitLogin(page, at, url.Values{"step": {"code"}, "code": {code}})
	if m = csrfField.FindStringSubmatch(page); m == nil {
		t.Fatalf("second transfer after the code: at %s %q; want its confirm page", at, page)
	}
	cancel := url.Values{"id": {at.Query().Get("id")}, "csrf": {m[1]}, "action": {"cancel"}}
	if status, page, _ = fc.send(http.MethodPost, td.GatewayURL+"/.stepgate/confirm", cancel, ""); status != 200 || !strings.Contains(page, "Nothing was sent") {
		t.Errorf("cancel: %d %q; want the cancelled page", status, page)
	}
	if n := len(td.App.Transfers()); n != 1 {
		t.Errorf("%d transfers after a cancel; want still 1", n)
	}
	fc.origin = ""

	// Admin (mfa_recent, max_age 2m): the step-up of a moment ago is
	// recent enough; once max_age has passed it asks again, with
	// prompt=login, so the password too.
	if _, _, at = fc.send(http.MethodGet, td.GatewayURL+"/admin", nil, ""); at.Path != "/admin" || at.Host != mustHost(t, td.GatewayURL) {
		t.Errorf("admin within max_age of the step-up went to %s; want it directly", at)
	}
	td.advance(3 * time.Minute)
	if _, page, _ = fc.send(http.MethodGet, td.GatewayURL+"/admin", nil, ""); !strings.Contains(page, `name="password"`) {
		t.Errorf("admin after max_age: %q; want the password page again (prompt=login)", page)
	}
	// Without its origin a transfer is never held (a cross-site form).
	if status, _, _ = fc.send(http.MethodPost, td.GatewayURL+"/api/transfers", transfer, td.GatewayURL+"/transfers"); status != http.StatusForbidden {
		t.Errorf("transfer without Origin: %d; want 403", status)
	}
	if n := len(td.App.Transfers()); n != 1 {
		t.Errorf("%d transfers; want still 1", n)
	}

	// Logout ends the gateway session and the provider's.
	// A GET only asks (threat model case 90); the form's same-origin POST
	// signs out.
	if _, page, _ = fc.send(http.MethodGet, td.GatewayURL+"/.stepgate/logout", nil, ""); !strings.Contains(page, `<form method="post" action="/.stepgate/logout"`) {
		t.Errorf("GET logout: %q; want a page with the sign-out form", page)
	}
	if _, page, _ = fc.send(http.MethodGet, td.GatewayURL+"/account", nil, ""); !strings.Contains(page, `id="balance"`) {
		t.Errorf("account after GET logout: %q; want the account page (still signed in)", page)
	}
	fc.origin = td.GatewayURL
	fc.send(http.MethodPost, td.GatewayURL+"/.stepgate/logout", url.Values{}, "")
	fc.origin = ""
	if _, page, _ = fc.send(http.MethodGet, td.GatewayURL+"/account", nil, ""); !strings.Contains(page, `name="password"`) {
		t.Errorf("account after logout: %q; want the password page", page)
	}
}

func TestDemoAdminAsksPasswordAndCode(t *testing.T) {
	td := startTestDemo(t)
	bob := td.user(t, "bob")
	fc := newFormClient(t)
	_, page, at := fc.send(http.MethodGet, td.GatewayURL+"/account", nil, "")
	fc.submitLogin(page, at, url.Values{"username": {"bob"}, "password": {bob.Password}})

	// The SSO session is seconds old, yet prompt=login asks the password.
	_, page, at = fc.send(http.MethodGet, td.GatewayURL+"/admin", nil, "")
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("admin: %q; want the password page (prompt=login)", page)
	}
	_, page, at = fc.submitLogin(page, at, url.Values{"username": {"bob"}, "password": {bob.Password}})
	if !strings.Contains(page, `name="code"`) {
		t.Fatalf("admin after password: %q; want the code page", page)
	}
	code, _ := totp.GenerateCode(bob.TOTPSecret, time.Now())
	_, page, at = fc.submitLogin(page, at, url.Values{"code": {code}})
	if at.Path != "/admin" || !strings.Contains(page, `id="all-transfers"`) || !strings.Contains(page, "<code>pwd,otp,mfa</code>") {
		t.Fatalf("admin after the code: at %s %q; want the back office with amr pwd,otp,mfa", at, page)
	}
}

func mustHost(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
