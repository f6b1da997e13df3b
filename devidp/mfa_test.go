package devidp_test

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/devidp"
)

const aliceTOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// post submits a login form and follows redirects until a page or the
// client's redirect URI; it returns the status, the body, and the callback
// query when the login ended.
func post(t *testing.T, hc *http.Client, issuer string, v url.Values) (int, string, url.Values) {
	t.Helper()
	resp, err := hc.PostForm(issuer+"/login", v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if loc, err := resp.Location(); err == nil && isRedirectURI(loc) {
		return resp.StatusCode, string(body), loc.Query()
	}
	return resp.StatusCode, string(body), nil
}

func code(t *testing.T) string {
	t.Helper()
	c, err := totp.GenerateCode(aliceTOTP, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// badCode is a code the provider rejects now: it accepts the previous,
// current and next 30 s window.
func badCode(t *testing.T) string {
	t.Helper()
	var valid []string
	for _, d := range []time.Duration{-time.Minute, -30 * time.Second, 0, 30 * time.Second, time.Minute} {
		c, err := totp.GenerateCode(aliceTOTP, time.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		valid = append(valid, c)
	}
	for _, c := range []string{"000000", "111111", "222222", "333333", "444444", "555555"} {
		if !slices.Contains(valid, c) {
			return c
		}
	}
	t.Fatal("no rejected code found")
	return ""
}

type mfaEnv struct {
	*env
	t *testing.T
}

// login runs one flow with hc: it opens authURL and, for each page the
// provider shows, submits the next of steps ("password" or "code" or
// "badcode"). It returns the pages seen and the callback query.
func (m mfaEnv) login(hc *http.Client, f *flow, authURL string, steps ...string) (pages []string, q url.Values) {
	t := m.t
	t.Helper()
	resp, err := hc.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if loc, err := resp.Location(); err == nil && isRedirectURI(loc) {
		return nil, loc.Query()
	}
	page := string(body)
	for _, s := range steps {
		id := authRequestIDField.FindStringSubmatch(page)
		if id == nil {
			t.Fatalf("expected a login page before step %q, got %q", s, page)
		}
		pages = append(pages, page)
		v := url.Values{"authRequestID": {id[1]}}
		switch s {
		case "password":
			v.Set("step", "password")
			v.Set("username", "alice")
			v.Set("password", "correct horse")
		case "code":
			v.Set("step", "code")
			v.Set("code", code(t))
		case "badcode":
			v.Set("step", "code")
			v.Set("code", badCode(t))
		}
		var status int
		status, page, q = post(t, hc, m.issuer, v)
		if q != nil {
			return pages, q
		}
		if s == "badcode" && status != http.StatusUnauthorized {
			t.Errorf("wrong code answered %d; want 401", status)
		}
	}
	return append(pages, page), nil
}

func isPasswordPage(p string) bool { return strings.Contains(p, `name="password"`) }
func isCodePage(p string) bool     { return strings.Contains(p, `name="code"`) }

func kinds(pages []string) []string {
	var k []string
	for _, p := range pages {
		switch {
		case isPasswordPage(p):
			k = append(k, "password")
		case isCodePage(p):
			k = append(k, "code")
		default:
			k = append(k, "other")
		}
	}
	return k
}

// claims exchanges the callback's code and returns the verified claims and
// the set of claim names.
func (m mfaEnv) claims(f *flow, q url.Values) (idClaims, map[string]any) {
	t := m.t
	t.Helper()
	if q.Get("state") != f.state || q.Get("code") == "" {
		t.Fatalf("callback query %v; want a code and the state", q)
	}
	tok, err := f.exchange(t.Context(), q.Get("code"))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	_, c, all := m.verify(t, tok)
	return c, all
}

func startMFA(t *testing.T, showCodes bool) mfaEnv {
	e := start(t, devidp.Config{ShowCodes: showCodes, Users: []devidp.User{
		{Username: "alice", Password: "correct horse", Subject: "sub-alice", Email: "alice@example.test", TOTPSecret: aliceTOTP},
	}})
	return mfaEnv{env: e, t: t}
}

func TestMultiFactorLogin(t *testing.T) {
	mfa := oauth2.SetAuthURLParam("acr_values", devidp.ACRMultiFactor)
	for _, tt := range []struct {
		name      string
		opts      []oauth2.AuthCodeOption
		wantPages []string
		wantACR   string
		wantAMR   []string
	}{
		{"plain request: password only", nil, []string{"password"}, "", []string{"pwd"}},
		{"multi-factor acr_values: password then code", []oauth2.AuthCodeOption{mfa}, []string{"password", "code"}, devidp.ACRMultiFactor, []string{"pwd", "otp", "mfa"}},
		{"prompt=login: password then code", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login")}, []string{"password", "code"}, devidp.ACRMultiFactor, []string{"pwd", "otp", "mfa"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := startMFA(t, false)
			m.t = t
			f := m.newFlow(oauth2.AuthStyleInHeader)
			before := time.Now().Add(-time.Second)
			pages, q := m.login(browser(t), f, f.authURL(tt.opts...), "password", "code")
			if got := kinds(pages); !slices.Equal(got, tt.wantPages) {
				t.Errorf("pages %v; want %v", got, tt.wantPages)
			}
			c, all := m.claims(f, q)
			if _, has := all["acr"]; c.ACR != tt.wantACR || (tt.wantACR == "" && has) || !slices.Equal(c.AMR, tt.wantAMR) {
				t.Errorf("acr %q (present %v) amr %v; want %q %v", c.ACR, has, c.AMR, tt.wantACR, tt.wantAMR)
			}
			if at := time.Unix(c.AuthTime, 0); at.Before(before.Truncate(time.Second)) || at.After(time.Now()) {
				t.Errorf("auth_time %v; want the time of this login", at)
			}
		})
	}
}

func TestWrongCode(t *testing.T) {
	m := startMFA(t, false)
	hc := browser(t)
	f := m.newFlow(oauth2.AuthStyleInHeader)
	pages, q := m.login(hc, f, f.authURL(oauth2.SetAuthURLParam("acr_values", devidp.ACRMultiFactor)), "password", "badcode")
	if q != nil {
		t.Fatalf("a wrong code ended the login with %v; want the code page again", q)
	}
	last := pages[len(pages)-1]
	if !isCodePage(last) || !strings.Contains(last, "Wrong code") {
		t.Fatalf("after a wrong code the page is %q; want the code page with an error", last)
	}
	// The right code still works after one wrong one.
	id := authRequestIDField.FindStringSubmatch(last)[1]
	_, _, q = post(t, hc, m.issuer, url.Values{"authRequestID": {id}, "step": {"code"}, "code": {code(t)}})
	if c, _ := m.claims(f, q); c.ACR != devidp.ACRMultiFactor {
		t.Errorf("acr %q after the right code; want multi-factor", c.ACR)
	}

	t.Run("a POST for the code step while at the password step logs nobody in", func(t *testing.T) {
		f := m.newFlow(oauth2.AuthStyleInHeader)
		_, id := openLoginPage(t, browser(t), f.authURL(oauth2.SetAuthURLParam("acr_values", devidp.ACRMultiFactor)))
		status, page, q := post(t, browser(t), m.issuer, url.Values{"authRequestID": {id}, "step": {"code"}, "code": {code(t)}})
		if q != nil || !isPasswordPage(page) {
			t.Errorf("got %d, callback %v; want the password page and no login", status, q)
		}
	})

	t.Run("five wrong codes end the login with access_denied", func(t *testing.T) {
		f := m.newFlow(oauth2.AuthStyleInHeader)
		_, q := m.login(browser(t), f, f.authURL(oauth2.SetAuthURLParam("acr_values", devidp.ACRMultiFactor)),
			"password", "badcode", "badcode", "badcode", "badcode", "badcode")
		if q.Get("error") != "access_denied" || q.Has("code") || q.Get("state") != f.state {
			t.Errorf("callback %v; want error=access_denied with the state and no code", q)
		}
	})
}

func TestSSOSession(t *testing.T) {
	mfa := oauth2.SetAuthURLParam("acr_values", devidp.ACRMultiFactor)
	m := startMFA(t, false)
	hc := browser(t)

	f := m.newFlow(oauth2.AuthStyleInHeader)
	_, q := m.login(hc, f, f.authURL(), "password")
	first, _ := m.claims(f, q)

	t.Run("a second plain login is silent with the same auth_time", func(t *testing.T) {
		f := m.newFlow(oauth2.AuthStyleInHeader)
		pages, q := m.login(hc, f, f.authURL())
		if len(pages) != 0 || q == nil {
			t.Fatalf("pages %v; want none", kinds(pages))
		}
		c, _ := m.claims(f, q)
		if c.AuthTime != first.AuthTime || !slices.Equal(c.AMR, []string{"pwd"}) {
			t.Errorf("auth_time %d amr %v; want %d [pwd] (the time of the last active login)", c.AuthTime, c.AMR, first.AuthTime)
		}
	})

	t.Run("prompt=none with a session is silent", func(t *testing.T) {
		f := m.newFlow(oauth2.AuthStyleInHeader)
		if _, q := m.login(hc, f, f.authURL(oauth2.SetAuthURLParam("prompt", "none"))); q.Get("code") == "" {
			t.Errorf("callback %v; want a code", q)
		}
	})

	t.Run("step-up with a session asks only the code", func(t *testing.T) {
		f := m.newFlow(oauth2.AuthStyleInHeader)
		pages, q := m.login(hc, f, f.authURL(mfa), "code")
		if got := kinds(pages); !slices.Equal(got, []string{"code"}) {
			t.Errorf("pages %v; want [code]", got)
		}
		if c, _ := m.claims(f, q); c.ACR != devidp.ACRMultiFactor {
			t.Errorf("acr %q; want multi-factor", c.ACR)
		}
	})

	t.Run("a second step-up within max_age is silent", func(t *testing.T) {
		f := m.newFlow(oauth2.AuthStyleInHeader)
		pages, q := m.login(hc, f, f.authURL(mfa, oauth2.SetAuthURLParam("max_age", "600")))
		if len(pages) != 0 || q == nil {
			t.Fatalf("pages %v; want none", kinds(pages))
		}
		if c, _ := m.claims(f, q); c.ACR != devidp.ACRMultiFactor {
			t.Errorf("acr %q; want multi-factor", c.ACR)
		}
	})

	t.Run("a session older than max_age asks password and code", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond)
		f := m.newFlow(oauth2.AuthStyleInHeader)
		pages, q := m.login(hc, f, f.authURL(oauth2.SetAuthURLParam("max_age", "1")), "password", "code")
		if got := kinds(pages); !slices.Equal(got, []string{"password", "code"}) {
			t.Errorf("pages %v; want [password code]", got)
		}
		if c, _ := m.claims(f, q); c.ACR != devidp.ACRMultiFactor || time.Since(time.Unix(c.AuthTime, 0)) > 2*time.Second {
			t.Errorf("acr %q auth_time %d; want multi-factor, now", c.ACR, c.AuthTime)
		}
	})

	t.Run("another browser has no session", func(t *testing.T) {
		f := m.newFlow(oauth2.AuthStyleInHeader)
		if pages, _ := m.login(browser(t), f, f.authURL()); !slices.Equal(kinds(pages), []string{"password"}) {
			t.Errorf("pages %v; want [password]", kinds(pages))
		}
	})

	t.Run("end_session ends the session", func(t *testing.T) {
		target := "http://127.0.0.1:9/"
		noFollow := &http.Client{Jar: hc.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(m.issuer + "/end_session?client_id=" + clientID + "&post_logout_redirect_uri=" + url.QueryEscape(target))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Location"); got != target {
			t.Errorf("end_session redirected to %q; want %q", got, target)
		}
		f := m.newFlow(oauth2.AuthStyleInHeader)
		if pages, _ := m.login(hc, f, f.authURL()); !slices.Equal(kinds(pages), []string{"password"}) {
			t.Errorf("after end_session pages %v; want [password]", kinds(pages))
		}
	})
}

func TestSSOCookie(t *testing.T) {
	m := startMFA(t, false)
	hc := browser(t)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	f := m.newFlow(oauth2.AuthStyleInHeader)
	_, id := openLoginPage(t, browser(t), f.authURL())
	resp, err := hc.PostForm(m.issuer+"/login", url.Values{"authRequestID": {id}, "username": {"alice"}, "password": {"correct horse"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var sso *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "devidp_sso" {
			sso = c
		}
	}
	if sso == nil || !sso.HttpOnly || sso.SameSite != http.SameSiteLaxMode || len(sso.Value) < 32 || sso.Path != "/" {
		t.Fatalf("SSO cookie %+v; want HttpOnly, SameSite=Lax, Path=/, a long random value", sso)
	}

	t.Run("a guessed cookie gives no session", func(t *testing.T) {
		hc := browser(t)
		u, _ := url.Parse(m.issuer)
		hc.Jar.SetCookies(u, []*http.Cookie{{Name: "devidp_sso", Value: "guess"}})
		f := m.newFlow(oauth2.AuthStyleInHeader)
		if pages, _ := m.login(hc, f, f.authURL()); !slices.Equal(kinds(pages), []string{"password"}) {
			t.Errorf("pages %v; want [password]", kinds(pages))
		}
	})
}

func TestEndSessionRedirect(t *testing.T) {
	m := startMFA(t, false)
	hc := browser(t)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tt := range []struct{ name, client, target, want string }{
		{"same origin as a redirect URI", clientID, "http://127.0.0.1:9/", "http://127.0.0.1:9/"},
		{"other origin", clientID, "http://evil.example/", ""},
		{"unknown client", "nobody", "http://127.0.0.1:9/", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := hc.Get(m.issuer + "/end_session?" + url.Values{"client_id": {tt.client}, "post_logout_redirect_uri": {tt.target}}.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Location"); got != tt.want {
				t.Errorf("Location %q; want %q", got, tt.want)
			}
		})
	}
}

func TestShowCodes(t *testing.T) {
	for _, show := range []bool{false, true} {
		m := startMFA(t, show)
		f := m.newFlow(oauth2.AuthStyleInHeader)
		pages, _ := m.login(browser(t), f, f.authURL(oauth2.SetAuthURLParam("acr_values", devidp.ACRMultiFactor)), "password")
		last := pages[len(pages)-1]
		if got := strings.Contains(last, `id="demo-code"`); got != show {
			t.Errorf("ShowCodes %v: code shown %v", show, got)
		}
	}
}

func TestBadTOTPSecret(t *testing.T) {
	_, err := devidp.New(devidp.Config{
		Issuer:  "http://127.0.0.1:1",
		Clients: []devidp.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}}},
		Users:   []devidp.User{{Username: "a", Password: "p", Subject: "s", TOTPSecret: "not base32!"}},
	})
	if err == nil || !strings.Contains(err.Error(), "TOTPSecret") {
		t.Errorf("New with a bad TOTP secret = %v; want an error naming TOTPSecret", err)
	}
}
