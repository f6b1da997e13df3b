package devidp_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/devidp"
)

var authRequestIDField = regexp.MustCompile(`name="authRequestID" value="([^"]+)"`)

// openLoginPage follows authURL to the login form and returns the page and
// the auth request ID it carries.
func openLoginPage(t *testing.T, hc *http.Client, authURL string) (page, id string) {
	t.Helper()
	resp, err := hc.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := authRequestIDField.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("authorize ended with %s %q; want the login form", resp.Status, body)
	}
	return string(body), string(m[1])
}

func TestLoginPage(t *testing.T) {
	e := start(t, devidp.Config{Users: []devidp.User{
		{Username: "alice", Password: "correct horse", Subject: "sub-alice", Email: "alice@example.test"},
		{Username: "bob", Password: "battery staple", Subject: "sub-bob"},
	}})
	loginURL := e.issuer + "/login"

	t.Run("login_hint prefills the username", func(t *testing.T) {
		f := e.newFlow(oauth2.AuthStyleInHeader)
		page, _ := openLoginPage(t, browser(t), f.authURL(oauth2.SetAuthURLParam("login_hint", `al"ice`)))
		if !strings.Contains(page, `value="al&#34;ice"`) {
			t.Errorf("login page does not carry the escaped login_hint:\n%s", page)
		}
	})

	for _, tt := range []struct{ name, user, password string }{
		{"wrong password", "alice", "wrong"},
		{"unknown user", "mallory", "correct horse"},
		{"another user's password", "bob", "correct horse"},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hc := browser(t)
			f := e.newFlow(oauth2.AuthStyleInHeader)
			_, id := openLoginPage(t, hc, f.authURL())
			resp, err := hc.PostForm(loginURL, url.Values{"authRequestID": {id}, "username": {tt.user}, "password": {tt.password}})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "Wrong username or password") {
				t.Errorf("POST /login as %q = %s %q; want 401 with the form again", tt.user, resp.Status, body)
			}
		})
	}

	for _, tt := range []struct {
		name, user, password, wantSub, wantEmail string
	}{
		{"password login with email", "alice", "correct horse", "sub-alice", "alice@example.test"},
		{"password login without email", "bob", "battery staple", "sub-bob", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hc := browser(t)
			f := e.newFlow(oauth2.AuthStyleInHeader)
			_, id := openLoginPage(t, hc, f.authURL(oauth2.SetAuthURLParam("acr_values", devidp.ACRMultiFactor)))
			resp, err := hc.PostForm(loginURL, url.Values{"authRequestID": {id}, "username": {tt.user}, "password": {tt.password}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, err := resp.Location()
			if err != nil || !isRedirectURI(loc) || loc.Query().Get("state") != f.state {
				t.Fatalf("POST /login = %s %q; want a redirect to the client with the state", resp.Status, resp.Header.Get("Location"))
			}
			tok, err := f.exchange(t.Context(), loc.Query().Get("code"))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			idt, c, all := e.verify(t, tok)
			// A password alone never claims the multi-factor acr it was asked for.
			if _, has := all["acr"]; has || !slices.Equal(c.AMR, []string{"pwd"}) {
				t.Errorf("acr = %q (present %v), amr = %q; want no acr and [pwd]", c.ACR, has, c.AMR)
			}
			if idt.Subject != tt.wantSub || c.Email != tt.wantEmail || c.Nonce != f.nonce || c.AuthTime == 0 {
				t.Errorf("sub %q, email %q, nonce %q, auth_time %d; want %q, %q, %q, set",
					idt.Subject, c.Email, c.Nonce, c.AuthTime, tt.wantSub, tt.wantEmail, f.nonce)
			}
		})
	}

	t.Run("prompt=none answers login_required", func(t *testing.T) {
		f := e.newFlow(oauth2.AuthStyleInHeader)
		q := callback(t, browser(t), f.authURL(oauth2.SetAuthURLParam("prompt", "none")))
		if q.Get("error") != "login_required" || q.Get("state") != f.state || q.Has("code") {
			t.Errorf("callback query = %v; want error=login_required with the state", q)
		}
	})

	t.Run("unknown auth request", func(t *testing.T) {
		resp, err := browser(t).PostForm(loginURL, url.Values{"authRequestID": {"nope"}, "username": {"alice"}, "password": {"correct horse"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("POST /login with unknown ID = %s; want 400 and no redirect", resp.Status)
		}
	})

	t.Run("a script replaces the page", func(t *testing.T) {
		e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{Subject: "scripted"} })
		defer e.idp.SetScript(nil)
		f := e.newFlow(oauth2.AuthStyleInHeader)
		if q := callback(t, browser(t), f.authURL()); q.Get("code") == "" {
			t.Errorf("callback query = %v; want a code with no page", q)
		}
	})
}
