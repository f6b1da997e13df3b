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

	// A transfer needs the second factor: the gateway answers the form POST
	// with a page whose link steps up and returns to the transfers page.
	transfer := url.Values{"to": {"Bob"}, "amount": {"25.00"}}
	status, page, _ = fc.send(http.MethodPost, td.GatewayURL+"/api/transfers", transfer, td.GatewayURL+"/transfers")
	m := continueLink.FindStringSubmatch(page)
	if status != http.StatusUnauthorized || m == nil {
		t.Fatalf("transfer without step-up: %d %q; want 401 with a continue link", status, page)
	}
	if n := len(td.App.Transfers()); n != 0 {
		t.Fatalf("%d transfers reached the app before step-up; want 0", n)
	}
	link := strings.ReplaceAll(m[1], "&amp;", "&")
	_, page, at = fc.send(http.MethodGet, td.GatewayURL+link, nil, "")
	if !strings.Contains(page, `name="code"`) || strings.Contains(page, `name="password"`) {
		t.Fatalf("step-up page at %s: %q; want only the code (the SSO session spares the password)", at, page)
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
	if at.Path != "/transfers" || !strings.Contains(page, `id="transfer-form"`) || !strings.Contains(page, devidp.ACRMultiFactor) {
		t.Fatalf("after the code: at %s %q; want the transfers page with the multi-factor acr", at, page)
	}
	for i := range 2 {
		status, page, _ = fc.send(http.MethodPost, td.GatewayURL+"/api/transfers", transfer, td.GatewayURL+"/transfers")
		if status != 200 || !strings.Contains(page, `id="transfer-done"`) {
			t.Fatalf("transfer %d after step-up: %d %q; want the done page", i+1, status, page)
		}
	}
	got := td.App.Transfers()
	if len(got) != 2 || got[0].Subject != "alice" || got[0].ACR != devidp.ACRMultiFactor || got[0].Amount != "25.00" {
		t.Fatalf("app recorded %+v; want two multi-factor transfers by alice", got)
	}

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
	// Transfers (max_age 15m) still go through 3 minutes on.
	if status, _, _ = fc.send(http.MethodPost, td.GatewayURL+"/api/transfers", transfer, td.GatewayURL+"/transfers"); status != 200 {
		t.Errorf("transfer 3 minutes after step-up: %d; want 200", status)
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
