package devidp_test

import (
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/devidp"
)

func TestCodeFlowClaims(t *testing.T) {
	e := start(t, devidp.Config{})
	past := time.Now().Add(-3 * time.Minute).Truncate(time.Second)

	tests := []struct {
		name      string
		style     oauth2.AuthStyle
		acrValues string // sent as acr_values when not empty
		login     devidp.Login
		wantACR   string // "" = no acr claim
		wantAMR   []string
		wantAuth  time.Time // zero = about now
		wantEmail string    // "" = no email claim
	}{{
		name:  "scripted claims, client_secret_basic",
		style: oauth2.AuthStyleInHeader,
		login: devidp.Login{Subject: "alice", Email: "alice@example.test", ACR: devidp.ACRMultiFactor,
			AMR: []string{"pwd", "hwk"}, AuthTime: past},
		wantACR: devidp.ACRMultiFactor, wantAMR: []string{"pwd", "hwk"}, wantAuth: past, wantEmail: "alice@example.test",
	}, {
		name:    "scripted claims, client_secret_post",
		style:   oauth2.AuthStyleInParams,
		login:   devidp.Login{Subject: "bob", Email: "bob@example.test", ACR: "urn:test:silver", AMR: []string{"pwd"}, AuthTime: past},
		wantACR: "urn:test:silver", wantAMR: []string{"pwd"}, wantAuth: past, wantEmail: "bob@example.test",
	}, {
		name:  "no acr, amr or email; auth_time defaults to now",
		style: oauth2.AuthStyleInHeader,
		login: devidp.Login{Subject: "carol"},
	}, {
		name:      "HonourACRValues issues the first requested acr",
		style:     oauth2.AuthStyleInHeader,
		acrValues: devidp.ACRMultiFactor + " urn:test:silver",
		login:     devidp.Login{Subject: "alice", ACR: "urn:test:ignored", AMR: []string{"pwd"}, HonourACRValues: true},
		wantACR:   devidp.ACRMultiFactor, wantAMR: []string{"pwd", "otp", "mfa"},
	}, {
		name:    "HonourACRValues without acr_values issues the scripted acr",
		style:   oauth2.AuthStyleInHeader,
		login:   devidp.Login{Subject: "alice", ACR: "urn:test:low", AMR: []string{"pwd"}, HonourACRValues: true},
		wantACR: "urn:test:low", wantAMR: []string{"pwd"},
	}, {
		name:      "acr_values not honoured: an IdP ignoring step-up",
		style:     oauth2.AuthStyleInHeader,
		acrValues: devidp.ACRMultiFactor,
		login:     devidp.Login{Subject: "alice", AMR: []string{"pwd"}},
		wantAMR:   []string{"pwd"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.idp.SetScript(func(devidp.Request) devidp.Login { return tt.login })
			f := e.newFlow(tt.style)
			var extra []oauth2.AuthCodeOption
			if tt.acrValues != "" {
				extra = append(extra, oauth2.SetAuthURLParam("acr_values", tt.acrValues))
			}
			before := time.Now().Truncate(time.Second)
			q := callback(t, browser(t), f.authURL(extra...))
			after := time.Now()
			if q.Get("state") != f.state || q.Get("code") == "" {
				t.Fatalf("callback query = %v; want code and the state sent", q)
			}
			tok, err := f.exchange(t.Context(), q.Get("code"))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			idt, c, all := e.verify(t, tok)

			if idt.Subject != tt.login.Subject {
				t.Errorf("sub = %q; want %q", idt.Subject, tt.login.Subject)
			}
			if c.Nonce != f.nonce {
				t.Errorf("nonce = %q; want %q", c.Nonce, f.nonce)
			}
			if _, has := all["acr"]; has != (tt.wantACR != "") || c.ACR != tt.wantACR {
				t.Errorf("acr = %q (present %v); want %q", c.ACR, has, tt.wantACR)
			}
			if !slices.Equal(c.AMR, tt.wantAMR) {
				t.Errorf("amr = %q; want %q", c.AMR, tt.wantAMR)
			}
			if _, has := all["email"]; has != (tt.wantEmail != "") || c.Email != tt.wantEmail {
				t.Errorf("email = %q (present %v); want %q", c.Email, has, tt.wantEmail)
			}
			got := time.Unix(c.AuthTime, 0)
			if !tt.wantAuth.IsZero() && !got.Equal(tt.wantAuth) {
				t.Errorf("auth_time = %v; want %v", got, tt.wantAuth)
			}
			if tt.wantAuth.IsZero() && (got.Before(before) || got.After(after)) {
				t.Errorf("auth_time = %v; want between %v and %v", got, before, after)
			}

			// The access token works at /userinfo and names the same user.
			ui, err := e.oidc.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("UserInfo: %v", err)
			}
			if ui.Subject != tt.login.Subject || ui.Email != tt.wantEmail {
				t.Errorf("userinfo = {sub %q, email %q}; want {%q, %q}", ui.Subject, ui.Email, tt.login.Subject, tt.wantEmail)
			}
		})
	}
}

func TestRequestsRecorded(t *testing.T) {
	e := start(t, devidp.Config{})
	c := &counter{login: devidp.Login{Subject: "alice"}}
	e.idp.SetScript(c.script)

	// A real ID token to send back as id_token_hint.
	f := e.newFlow(oauth2.AuthStyleInHeader)
	tok, err := f.exchange(t.Context(), callback(t, browser(t), f.authURL()).Get("code"))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	hint := tok.Extra("id_token").(string)

	fiveMin := 5 * time.Minute
	zero := time.Duration(0)
	claims := `{"id_token":{"acr":{"essential":true,"values":["urn:test:gold"]}}}`
	tests := []struct {
		name   string
		params map[string]string
		want   devidp.Request
	}{{
		name:   "no step-up parameters",
		params: nil,
		want:   devidp.Request{ClientID: clientID},
	}, {
		name: "acr_values, max_age, prompt, login_hint",
		params: map[string]string{
			"acr_values": devidp.ACRMultiFactor + " urn:test:silver", "max_age": "300",
			"prompt": "login consent", "login_hint": "alice@example.test",
		},
		want: devidp.Request{ClientID: clientID, ACRValues: []string{devidp.ACRMultiFactor, "urn:test:silver"},
			MaxAge: &fiveMin, Prompt: []string{"login", "consent"}, LoginHint: "alice@example.test"},
	}, {
		name:   "max_age=0 is kept, not dropped",
		params: map[string]string{"max_age": "0"},
		want:   devidp.Request{ClientID: clientID, MaxAge: &zero},
	}, {
		name:   "claims raw and id_token_hint",
		params: map[string]string{"claims": claims, "id_token_hint": hint},
		want:   devidp.Request{ClientID: clientID, Claims: claims, IDTokenHint: hint},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.newFlow(oauth2.AuthStyleInHeader)
			var extra []oauth2.AuthCodeOption
			for k, v := range tt.params {
				extra = append(extra, oauth2.SetAuthURLParam(k, v))
			}
			seen := len(e.idp.Requests())
			calls, _ := c.calls()
			if q := callback(t, browser(t), f.authURL(extra...)); q.Get("code") == "" {
				t.Fatalf("callback query = %v; want a code", q)
			}
			reqs := e.idp.Requests()
			if len(reqs) != seen+1 {
				t.Fatalf("len(Requests()) = %d after one round trip; want %d", len(reqs), seen+1)
			}
			if got := reqs[len(reqs)-1]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Requests()[last] = %+v; want %+v", got, tt.want)
			}
			n, last := c.calls()
			if n != calls+1 || !reflect.DeepEqual(last, tt.want) {
				t.Errorf("script called %d times with %+v; want once with %+v", n-calls, last, tt.want)
			}
		})
	}
}

func TestLoginError(t *testing.T) {
	e := start(t, devidp.Config{})
	for _, code := range []string{"unmet_authentication_requirements", "access_denied", "login_required"} {
		t.Run(code, func(t *testing.T) {
			e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{Subject: "alice", Error: code} })
			f := e.newFlow(oauth2.AuthStyleInHeader)
			q := callback(t, browser(t), f.authURL(oauth2.SetAuthURLParam("acr_values", devidp.ACRMultiFactor)))
			if q.Get("error") != code || q.Get("state") != f.state || q.Has("code") {
				t.Errorf("callback query = %v; want error=%s, state=%s and no code", q, code, f.state)
			}
		})
	}

	t.Run("invalid error code fails closed", func(t *testing.T) {
		e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{Error: "bad\"code"} })
		resp, err := browser(t).Get(e.newFlow(oauth2.AuthStyleInHeader).authURL())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("status = %s; want 500", resp.Status)
		}
	})
	t.Run("no subject and no error fails closed", func(t *testing.T) {
		e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{ACR: devidp.ACRMultiFactor} })
		resp, err := browser(t).Get(e.newFlow(oauth2.AuthStyleInHeader).authURL())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Location") != "" {
			t.Errorf("status = %s, Location %q; want 500 and no redirect", resp.Status, resp.Header.Get("Location"))
		}
	})
}

func TestPKCE(t *testing.T) {
	e := start(t, devidp.Config{})
	c := &counter{login: devidp.Login{Subject: "alice"}}
	e.idp.SetScript(c.script)

	t.Run("token request", func(t *testing.T) {
		for _, tt := range []struct {
			name     string
			verifier []oauth2.AuthCodeOption
			wantErr  string
		}{
			{"wrong verifier", []oauth2.AuthCodeOption{oauth2.VerifierOption(oauth2.GenerateVerifier())}, "invalid_grant"},
			{"no verifier", nil, "invalid_request"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				f := e.newFlow(oauth2.AuthStyleInHeader)
				code := callback(t, browser(t), f.authURL()).Get("code")
				_, err := f.conf.Exchange(t.Context(), code, tt.verifier...)
				if got := errorCode(err); got != tt.wantErr {
					t.Errorf("Exchange error = %v (code %q); want %q", err, got, tt.wantErr)
				}
			})
		}
	})

	t.Run("authorization request", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			params []oauth2.AuthCodeOption
		}{
			{"no code_challenge", nil},
			{"plain method", []oauth2.AuthCodeOption{
				oauth2.SetAuthURLParam("code_challenge", oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("code_challenge_method", "plain")}},
			{"unknown method", []oauth2.AuthCodeOption{
				oauth2.SetAuthURLParam("code_challenge", oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("code_challenge_method", "S512")}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				f := e.newFlow(oauth2.AuthStyleInHeader)
				before, _ := c.calls()
				u := f.conf.AuthCodeURL(f.state, append([]oauth2.AuthCodeOption{gooidc.Nonce(f.nonce)}, tt.params...)...)
				q := callback(t, browser(t), u)
				if q.Get("error") != "invalid_request" || q.Has("code") {
					t.Errorf("callback query = %v; want error=invalid_request and no code", q)
				}
				if after, _ := c.calls(); after != before {
					t.Errorf("script ran %d times; want 0: the request must fail before login", after-before)
				}
			})
		}
	})
}

func TestClientAuthentication(t *testing.T) {
	e := start(t, devidp.Config{Clients: []devidp.Client{
		{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}},
		{ID: "other", Secret: "other-secret", RedirectURIs: []string{redirectURI}},
	}})
	e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{Subject: "alice"} })

	tests := []struct {
		name, id, secret string
		style            oauth2.AuthStyle
	}{
		{"wrong secret, basic", clientID, "wrong", oauth2.AuthStyleInHeader},
		{"wrong secret, post", clientID, "wrong", oauth2.AuthStyleInParams},
		{"empty secret", clientID, "", oauth2.AuthStyleInParams},
		{"unknown client", "nobody", clientSecret, oauth2.AuthStyleInHeader},
		{"another client's code", "other", "other-secret", oauth2.AuthStyleInHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.newFlow(tt.style)
			code := callback(t, browser(t), f.authURL()).Get("code")
			f.conf.ClientID, f.conf.ClientSecret = tt.id, tt.secret
			tok, err := f.exchange(t.Context(), code)
			if err == nil {
				t.Fatalf("Exchange as %q/%q = token (id_token %v); want an error", tt.id, tt.secret, tok.Extra("id_token") != nil)
			}
			if got := errorCode(err); got != "invalid_client" && got != "invalid_grant" && got != "unauthorized_client" {
				t.Errorf("Exchange error code = %q (%v); want invalid_client, invalid_grant or unauthorized_client", got, err)
			}
		})
	}
}

func TestRedirectURIRefused(t *testing.T) {
	e := start(t, devidp.Config{})
	c := &counter{login: devidp.Login{Subject: "alice"}}
	e.idp.SetScript(c.script)

	tests := []struct{ name, clientID, redirect string }{
		{"unregistered", clientID, "http://127.0.0.1:9/evil"},
		{"registered plus path", clientID, redirectURI + "/x"},
		{"registered plus query", clientID, redirectURI + "?next=http://evil.test"},
		{"other host", clientID, "http://evil.test/oauth2/callback"},
		{"unknown client", "nobody", redirectURI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.newFlow(oauth2.AuthStyleInHeader)
			f.conf.ClientID, f.conf.RedirectURL = tt.clientID, tt.redirect
			hc := browser(t)
			hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := hc.Get(f.authURL())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("authorize = %s, Location %q; want 400 and no redirect", resp.Status, resp.Header.Get("Location"))
			}
		})
	}
	if n, _ := c.calls(); n != 0 {
		t.Errorf("script ran %d times; want 0", n)
	}
}

func TestCodeSingleUse(t *testing.T) {
	e := start(t, devidp.Config{})
	e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{Subject: "alice", Email: "a@example.test"} })
	f := e.newFlow(oauth2.AuthStyleInHeader)
	code := callback(t, browser(t), f.authURL()).Get("code")

	tok, err := f.exchange(t.Context(), code)
	if err != nil {
		t.Fatalf("first Exchange: %v", err)
	}
	if _, err := e.oidc.UserInfo(t.Context(), oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatalf("UserInfo before replay: %v", err)
	}
	if _, err := f.exchange(t.Context(), code); errorCode(err) != "invalid_grant" {
		t.Fatalf("second Exchange error = %v; want invalid_grant", err)
	}
	// RFC 6749 §4.1.2: tokens issued for a replayed code are revoked.
	if _, err := e.oidc.UserInfo(t.Context(), oauth2.StaticTokenSource(tok)); err == nil {
		t.Error("UserInfo after code replay succeeded; want the access token revoked")
	}
}

func TestCallbackSingleUse(t *testing.T) {
	e := start(t, devidp.Config{})
	e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{Subject: "alice"} })
	f := e.newFlow(oauth2.AuthStyleInHeader)

	// Stop at op's callback to learn the auth request's URLs.
	resp, err := browser(t, "/authorize/callback").Get(f.authURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := resp.Location()
	if err != nil || cb.Path != "/authorize/callback" {
		t.Fatalf("login ended with %s %q; want a redirect to /authorize/callback", resp.Status, resp.Header.Get("Location"))
	}
	if first := callback(t, browser(t), cb.String()); first.Get("code") == "" {
		t.Fatalf("first callback query = %v; want a code", first)
	}
	if second := callback(t, browser(t), cb.String()); second.Has("code") {
		t.Errorf("second callback query = %v; want no second code", second)
	}
	// Nor can the login be replayed to swap the identity.
	login := e.issuer + "/login?authRequestID=" + url.QueryEscape(cb.Query().Get("id"))
	resp, err = browser(t).Get(login)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed login = %s; want 400", resp.Status)
	}
}

func TestUnsupportedGrants(t *testing.T) {
	e := start(t, devidp.Config{})
	e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{Subject: "alice"} })

	for _, grant := range []string{"client_credentials", "refresh_token", "password", "urn:ietf:params:oauth:grant-type:jwt-bearer"} {
		t.Run(grant, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.oidc.Endpoint().TokenURL,
				strings.NewReader(url.Values{"grant_type": {grant}, "refresh_token": {"x"}, "assertion": {"x"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(clientID, clientSecret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 || strings.Contains(string(body), "access_token") {
				t.Errorf("grant %s = %s %s; want an error", grant, resp.Status, body)
			}
		})
	}

	t.Run("offline_access gets no refresh token without Client.RefreshTokens", func(t *testing.T) {
		f := e.newFlow(oauth2.AuthStyleInHeader)
		f.conf.Scopes = append(f.conf.Scopes, gooidc.ScopeOfflineAccess)
		tok, err := f.exchange(t.Context(), callback(t, browser(t), f.authURL()).Get("code"))
		if err != nil {
			t.Fatalf("Exchange: %v", err)
		}
		if tok.RefreshToken != "" {
			t.Error("token response has a refresh_token; want none")
		}
	})
	t.Run("implicit response type", func(t *testing.T) {
		f := e.newFlow(oauth2.AuthStyleInHeader)
		resp, err := browser(t).Get(f.authURL(oauth2.SetAuthURLParam("response_type", "id_token")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			// op refuses http redirect URIs outright for implicit requests.
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("authorize = %s with no redirect; want 400", resp.Status)
			}
			return
		}
		// Implicit responses travel in the fragment.
		frag, _ := url.ParseQuery(loc.Fragment)
		q := loc.Query()
		if q.Get("error")+frag.Get("error") == "" || q.Has("code") || frag.Has("id_token") || frag.Has("code") {
			t.Errorf("implicit request answered with %s; want an error and no token", loc)
		}
	})
}

func TestNew(t *testing.T) {
	client := []devidp.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}}}
	tests := []struct {
		name    string
		cfg     devidp.Config
		wantErr string // "" = no error
	}{
		{"127.0.0.1", devidp.Config{Issuer: "http://127.0.0.1:8080", Clients: client}, ""},
		{"localhost https", devidp.Config{Issuer: "https://localhost:8443", Clients: client}, ""},
		{"::1 without port", devidp.Config{Issuer: "http://[::1]", Clients: client}, ""},
		{"public host", devidp.Config{Issuer: "https://idp.example.com", Clients: client}, "not loopback"},
		{"private address", devidp.Config{Issuer: "http://10.0.0.1:8080", Clients: client}, "not loopback"},
		{"all interfaces", devidp.Config{Issuer: "http://0.0.0.0:8080", Clients: client}, "not loopback"},
		{"loopback-looking name", devidp.Config{Issuer: "http://127.0.0.1.evil.test", Clients: client}, "not loopback"},
		{"empty", devidp.Config{Clients: client}, "scheme"},
		{"ftp", devidp.Config{Issuer: "ftp://127.0.0.1", Clients: client}, "scheme"},
		{"path", devidp.Config{Issuer: "http://127.0.0.1:1/idp", Clients: client}, "no user info, path"},
		{"trailing slash", devidp.Config{Issuer: "http://127.0.0.1:1/", Clients: client}, "no user info, path"},
		{"query", devidp.Config{Issuer: "http://127.0.0.1:1?a=b", Clients: client}, "no user info, path"},
		{"user info", devidp.Config{Issuer: "http://u:p@127.0.0.1:1", Clients: client}, "no user info, path"},
		{"client without secret", devidp.Config{Issuer: "http://127.0.0.1:1",
			Clients: []devidp.Client{{ID: "c", RedirectURIs: []string{redirectURI}}}}, "empty Secret"},
		{"duplicate client", devidp.Config{Issuer: "http://127.0.0.1:1", Clients: append(client, client...)}, "duplicate ID"},
		{"relative redirect", devidp.Config{Issuer: "http://127.0.0.1:1",
			Clients: []devidp.Client{{ID: "c", Secret: "s", RedirectURIs: []string{"/cb"}}}}, "redirect URI"},
		{"user without subject", devidp.Config{Issuer: "http://127.0.0.1:1", Clients: client,
			Users: []devidp.User{{Username: "a", Password: "p"}}}, "Subject are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := devidp.New(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New(%q) = %v; want no error", tt.cfg.Issuer, err)
			case tt.wantErr == "" && p.Issuer() != tt.cfg.Issuer:
				t.Errorf("Issuer() = %q; want %q", p.Issuer(), tt.cfg.Issuer)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("New(%q) error = %v; want one containing %q", tt.cfg.Issuer, err, tt.wantErr)
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	e := start(t, devidp.Config{})
	var meta struct {
		Issuer      string   `json:"issuer"`
		Userinfo    string   `json:"userinfo_endpoint"`
		JWKS        string   `json:"jwks_uri"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
		PKCE        []string `json:"code_challenge_methods_supported"`
		Algs        []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := e.oidc.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	ep := e.oidc.Endpoint()
	got := []string{meta.Issuer, ep.AuthURL, ep.TokenURL, meta.Userinfo, meta.JWKS}
	want := []string{e.issuer, e.issuer + "/authorize", e.issuer + "/oauth/token", e.issuer + "/userinfo", e.issuer + "/keys"}
	if !slices.Equal(got, want) {
		t.Errorf("discovery endpoints = %q; want %q", got, want)
	}
	if !slices.Contains(meta.AuthMethods, "client_secret_basic") || !slices.Contains(meta.AuthMethods, "client_secret_post") {
		t.Errorf("token_endpoint_auth_methods_supported = %q; want basic and post", meta.AuthMethods)
	}
	if !slices.Contains(meta.PKCE, "S256") || !slices.Equal(meta.Algs, []string{"RS256"}) {
		t.Errorf("code_challenge_methods_supported = %q, id_token_signing_alg_values_supported = %q; want S256 and [RS256]", meta.PKCE, meta.Algs)
	}
}
