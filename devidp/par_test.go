package devidp_test

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/policy"
)

const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// payment is an RFC 9396 payment_initiation, as stepgate's confirm
// template fills it.
const payment = `[{"type":"payment_initiation","instructedAmount":{"amount":"100.00","currency":"EUR"},"creditorAccount":{"iban":"DE02100100109307118603"}}]`

// stepUp is the level a transfer asks for.
var stepUp = &policy.Level{
	Name:        "mfa",
	ACRValues:   []string{devidp.ACRMultiFactor},
	MaxAge:      5 * time.Minute,
	SatisfiedBy: []policy.Alternative{{ACR: []string{devidp.ACRMultiFactor}}},
}

func stepUpRequest(details string) oidc.AuthRequest {
	return oidc.AuthRequest{
		State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier(),
		Level: stepUp, LoginHint: "alice", AuthorizationDetails: details,
	}
}

func expect(a oidc.AuthRequest) oidc.Expect {
	return oidc.Expect{Nonce: a.Nonce, Verifier: a.Verifier, Level: a.Level, AuthorizationDetails: a.AuthorizationDetails}
}

func honour(devidp.Request) devidp.Login {
	return devidp.Login{Subject: "alice", AMR: []string{"pwd"}, HonourACRValues: true}
}

// TestPARRoundTrip runs stepgate's relying party against devidp with PAR:
// the parameters are pushed, the browser URL carries client_id and
// request_uri only, and the login completes on the pushed parameters.
func TestPARRoundTrip(t *testing.T) {
	for _, par := range []string{"auto", "required"} {
		t.Run(par, func(t *testing.T) {
			e := start(t, devidp.Config{PAR: true})
			e.idp.SetScript(honour)
			c, err := oidc.New(t.Context(), oidc.Config{
				Issuer: e.issuer, ClientID: clientID, ClientSecret: clientSecret,
				RedirectURL: redirectURI, Scopes: []string{"openid", "email"}, PAR: par,
			})
			if err != nil {
				t.Fatalf("oidc.New(par %s): %v", par, err)
			}
			a := stepUpRequest(payment)
			raw, err := c.AuthorizeURL(t.Context(), a)
			if err != nil {
				t.Fatalf("AuthorizeURL: %v", err)
			}
			u, _ := url.Parse(raw)
			if q := u.Query(); len(q) != 2 || q.Get("client_id") != clientID || !strings.HasPrefix(q.Get("request_uri"), requestURIPrefix) {
				t.Fatalf("browser URL %s; want only client_id and a request_uri", raw)
			}
			back := callback(t, browser(t), raw)
			if back.Get("state") != a.State {
				t.Errorf("state came back as %q; want the pushed %q", back.Get("state"), a.State)
			}
			res, err := c.Exchange(t.Context(), back.Get("code"), expect(a))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if res.Facts.ACR != devidp.ACRMultiFactor || res.Facts.Subject != "alice" {
				t.Errorf("facts %+v; want alice with the multi-factor acr", res.Facts)
			}
			reqs := e.idp.Requests()
			last := reqs[len(reqs)-1]
			if !last.Pushed || !slices.Equal(last.ACRValues, stepUp.ACRValues) || last.MaxAge == nil || *last.MaxAge != stepUp.MaxAge ||
				last.LoginHint != "alice" || last.AuthorizationDetails != payment {
				t.Errorf("provider saw %+v; want the pushed request", last)
			}
		})
	}
}

// TestPARIgnoresURLEdits: what the user changes in the browser URL does
// not reach the login; the pushed parameters do.
func TestPARIgnoresURLEdits(t *testing.T) {
	e := start(t, devidp.Config{PAR: true})
	e.idp.SetScript(honour)
	c := rp(t, e, clientID, clientSecret)
	for _, tc := range []struct {
		name string
		edit func(url.Values)
	}{
		{"acr_values and max_age dropped in favour of weaker ones", func(q url.Values) {
			q.Set("acr_values", "urn:test:weak")
			q.Set("max_age", "86400")
		}},
		{"state and redirect_uri replaced", func(q url.Values) {
			q.Set("state", "attacker")
			q.Set("redirect_uri", "http://127.0.0.1:9/evil")
		}},
		{"authorization_details replaced", func(q url.Values) {
			q.Set("authorization_details", strings.Replace(payment, "100.00", "9100.00", 1))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := stepUpRequest(payment)
			raw, err := c.AuthorizeURL(t.Context(), a)
			if err != nil {
				t.Fatalf("AuthorizeURL: %v", err)
			}
			u, _ := url.Parse(raw)
			q := u.Query()
			tc.edit(q)
			u.RawQuery = q.Encode()
			back := callback(t, browser(t), u.String()) // fails unless it ends at redirectURI
			if back.Get("state") != a.State {
				t.Errorf("state came back as %q; want the pushed %q", back.Get("state"), a.State)
			}
			if _, err := c.Exchange(t.Context(), back.Get("code"), expect(a)); err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			reqs := e.idp.Requests()
			if last := reqs[len(reqs)-1]; !slices.Equal(last.ACRValues, stepUp.ACRValues) || last.AuthorizationDetails != payment {
				t.Errorf("provider saw %+v; want the pushed parameters", last)
			}
		})
	}
}

// parResponse is the PAR endpoint's answer: success or an OAuth error.
type parResponse struct {
	RequestURI string `json:"request_uri"`
	ExpiresIn  int    `json:"expires_in"`
	Error      string `json:"error"`
}

// pushRaw posts form to the PAR endpoint, with Basic credentials when user
// is not "".
func pushRaw(t *testing.T, e *env, form url.Values, user, pass string) (*http.Response, parResponse) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.issuer+"/par", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var pr parResponse
	if err := json.Unmarshal(body, &pr); err != nil && resp.StatusCode != http.StatusNotFound {
		t.Fatalf("PAR endpoint answered %d %q; want JSON", resp.StatusCode, body)
	}
	return resp, pr
}

// authorizeForm is a complete authorization request of the stepgate client.
func authorizeForm() url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"scope": {"openid"}, "state": {"s"}, "nonce": {"n"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
	}
}

func TestPAREndpoint(t *testing.T) {
	e := start(t, devidp.Config{PAR: true})
	with := func(k, v string) url.Values {
		f := authorizeForm()
		f.Set(k, v)
		return f
	}
	without := func(k string) url.Values {
		f := authorizeForm()
		f.Del(k)
		return f
	}
	for _, tc := range []struct {
		name       string
		form       url.Values
		user, pass string // Basic credentials; "" = none
		wantStatus int
		wantError  string // "" = success
	}{
		{"client_secret_basic", authorizeForm(), clientID, clientSecret, http.StatusCreated, ""},
		{"client_secret_post", with("client_secret", clientSecret), "", "", http.StatusCreated, ""},
		{"with authorization_details", with("authorization_details", payment), clientID, clientSecret, http.StatusCreated, ""},
		{"client_id from the credentials only", without("client_id"), clientID, clientSecret, http.StatusCreated, ""},
		{"wrong secret", authorizeForm(), clientID, "wrong", http.StatusUnauthorized, "invalid_client"},
		{"wrong posted secret", with("client_secret", "wrong"), "", "", http.StatusUnauthorized, "invalid_client"},
		{"no credentials", authorizeForm(), "", "", http.StatusUnauthorized, "invalid_client"},
		{"unknown client", with("client_id", "other"), "other", clientSecret, http.StatusUnauthorized, "invalid_client"},
		{"two methods at once", with("client_secret", clientSecret), clientID, clientSecret, http.StatusBadRequest, "invalid_request"},
		{"client_id differs from the credentials", with("client_id", "other"), clientID, clientSecret, http.StatusBadRequest, "invalid_request"},
		{"request_uri pushed", with("request_uri", requestURIPrefix+"x"), clientID, clientSecret, http.StatusBadRequest, "invalid_request"},
		{"unregistered redirect_uri", with("redirect_uri", "http://127.0.0.1:9/evil"), clientID, clientSecret, http.StatusBadRequest, "invalid_request"},
		{"no redirect_uri", without("redirect_uri"), clientID, clientSecret, http.StatusBadRequest, "invalid_request"},
		{"authorization_details not an array", with("authorization_details", `{"type":"payment_initiation"}`), clientID, clientSecret,
			http.StatusBadRequest, "invalid_authorization_details"},
		{"authorization_details without type", with("authorization_details", `[{"amount":"1"}]`), clientID, clientSecret,
			http.StatusBadRequest, "invalid_authorization_details"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, pr := pushRaw(t, e, tc.form, tc.user, tc.pass)
			if resp.StatusCode != tc.wantStatus || pr.Error != tc.wantError {
				t.Fatalf("PAR endpoint answered %d %+v; want %d error %q", resp.StatusCode, pr, tc.wantStatus, tc.wantError)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q; want no-store", cc)
			}
			if tc.wantError != "" {
				return
			}
			if !strings.HasPrefix(pr.RequestURI, requestURIPrefix) || len(pr.RequestURI) < len(requestURIPrefix)+32 || pr.ExpiresIn != 60 {
				t.Errorf("answer %+v; want a random %s… request_uri for 60 s", pr, requestURIPrefix)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		resp, err := http.Get(e.issuer + "/par")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /par: %d; want 405", resp.StatusCode)
		}
	})
}

// authorizeStatus opens /authorize?q and returns the status and whether it
// redirected to the client.
func authorizeStatus(t *testing.T, e *env, q url.Values) (int, bool) {
	t.Helper()
	resp, err := browser(t).Get(e.issuer + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	return resp.StatusCode, err == nil && isRedirectURI(loc)
}

// TestRequestURIRules: a request_uri is single use, for its own client,
// and only what the PAR endpoint issued.
func TestRequestURIRules(t *testing.T) {
	e := start(t, devidp.Config{PAR: true})
	e.idp.SetScript(honour)
	push := func() string {
		t.Helper()
		_, pr := pushRaw(t, e, authorizeForm(), clientID, clientSecret)
		if pr.RequestURI == "" {
			t.Fatalf("push failed: %+v", pr)
		}
		return pr.RequestURI
	}

	uri := push()
	ref := url.Values{"client_id": {clientID}, "request_uri": {uri}}
	if status, ok := authorizeStatus(t, e, ref); !ok {
		t.Fatalf("first use: %d; want the login to complete", status)
	}
	if status, ok := authorizeStatus(t, e, ref); ok || status != http.StatusBadRequest {
		t.Errorf("second use: %d (completed %v); want 400", status, ok)
	}

	uri = push()
	if status, ok := authorizeStatus(t, e, url.Values{"client_id": {"other"}, "request_uri": {uri}}); ok || status != http.StatusBadRequest {
		t.Errorf("other client_id: %d (completed %v); want 400", status, ok)
	}
	// The attempt with the wrong client used it up.
	if status, ok := authorizeStatus(t, e, url.Values{"client_id": {clientID}, "request_uri": {uri}}); ok || status != http.StatusBadRequest {
		t.Errorf("after a wrong client_id: %d (completed %v); want 400", status, ok)
	}
	for _, q := range []url.Values{
		{"client_id": {clientID}, "request_uri": {requestURIPrefix + "made-up"}},
		{"client_id": {clientID}, "request_uri": {"https://attacker.example/request.jwt"}},
	} {
		if status, ok := authorizeStatus(t, e, q); ok || status != http.StatusBadRequest {
			t.Errorf("%v: %d (completed %v); want 400", q, status, ok)
		}
	}
}

func TestPARDiscoveryAndRequirement(t *testing.T) {
	for _, tc := range []struct {
		name             string
		cfg              devidp.Config
		wantEndpoint     bool
		wantRequired     bool
		unpushedAccepted bool
		pushedAccepted   bool
	}{
		{"PAR off", devidp.Config{}, false, false, true, false},
		{"PAR on", devidp.Config{PAR: true}, true, false, true, true},
		{"PAR required", devidp.Config{RequirePAR: true}, true, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, tc.cfg)
			e.idp.SetScript(honour)
			var doc struct {
				Endpoint string `json:"pushed_authorization_request_endpoint"`
				Required bool   `json:"require_pushed_authorization_requests"`
				Issuer   string `json:"issuer"`
			}
			if err := e.oidc.Claims(&doc); err != nil {
				t.Fatal(err)
			}
			if (doc.Endpoint == e.issuer+"/par") != tc.wantEndpoint || doc.Required != tc.wantRequired || doc.Issuer != e.issuer {
				t.Errorf("discovery %+v; want endpoint %v, required %v", doc, tc.wantEndpoint, tc.wantRequired)
			}
			if _, ok := authorizeStatus(t, e, authorizeForm()); ok != tc.unpushedAccepted {
				t.Errorf("unpushed request completed %v; want %v", ok, tc.unpushedAccepted)
			}
			resp, pr := pushRaw(t, e, authorizeForm(), clientID, clientSecret)
			if (resp.StatusCode == http.StatusCreated) != tc.pushedAccepted {
				t.Fatalf("push answered %d; want accepted %v", resp.StatusCode, tc.pushedAccepted)
			}
			if tc.pushedAccepted {
				if _, ok := authorizeStatus(t, e, url.Values{"client_id": {clientID}, "request_uri": {pr.RequestURI}}); !ok {
					t.Error("pushed request did not complete")
				}
			} else if status, ok := authorizeStatus(t, e, url.Values{"client_id": {clientID}, "request_uri": {requestURIPrefix + "x"}}); ok || status != http.StatusBadRequest {
				t.Errorf("request_uri without PAR: %d (completed %v); want 400", status, ok)
			}
		})
	}
	t.Run("stepgate with par off against a provider that requires it", func(t *testing.T) {
		e := start(t, devidp.Config{RequirePAR: true})
		_, err := oidc.New(t.Context(), oidc.Config{
			Issuer: e.issuer, ClientID: clientID, ClientSecret: clientSecret,
			RedirectURL: redirectURI, Scopes: []string{"openid"}, PAR: "off",
		})
		if err == nil || !strings.Contains(err.Error(), "require_pushed_authorization_requests") {
			t.Errorf("oidc.New = %v; want the PAR conflict", err)
		}
	})
}

// TestAuthorizationDetailsEcho: what the request carried comes back as
// the token response's authorization_details, pushed or in the URL, unless
// the script alters or drops it.
func TestAuthorizationDetailsEcho(t *testing.T) {
	altered := strings.Replace(payment, "100.00", "9100.00", 1)
	for _, tc := range []struct {
		name     string
		par      bool
		login    devidp.Login
		mismatch bool
	}{
		{"in the URL, echoed", false, devidp.Login{}, false},
		{"pushed, echoed", true, devidp.Login{}, false},
		{"altered by the provider", true, devidp.Login{AuthorizationDetails: altered}, true},
		{"altered, in the URL", false, devidp.Login{AuthorizationDetails: altered}, true},
		{"dropped by the provider", true, devidp.Login{OmitAuthorizationDetails: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, devidp.Config{PAR: tc.par})
			e.idp.SetScript(func(r devidp.Request) devidp.Login {
				l := tc.login
				l.Subject, l.AMR, l.HonourACRValues = "alice", []string{"pwd"}, true
				return l
			})
			c := rp(t, e, clientID, clientSecret)
			a := stepUpRequest(payment)
			raw, err := c.AuthorizeURL(t.Context(), a)
			if err != nil {
				t.Fatalf("AuthorizeURL: %v", err)
			}
			back := callback(t, browser(t), raw)
			_, err = c.Exchange(t.Context(), back.Get("code"), expect(a))
			if tc.mismatch != errors.Is(err, oidc.ErrAuthorizationDetailsMismatch) || (!tc.mismatch && err != nil) {
				t.Fatalf("Exchange error %v; want mismatch %v", err, tc.mismatch)
			}
			reqs := e.idp.Requests()
			if got := reqs[len(reqs)-1]; got.AuthorizationDetails != payment || got.Pushed != tc.par {
				t.Errorf("provider saw details %q (pushed %v); want %q (pushed %v)", got.AuthorizationDetails, got.Pushed, payment, tc.par)
			}
		})
	}

	t.Run("token response member", func(t *testing.T) {
		e := start(t, devidp.Config{})
		e.idp.SetScript(honour)
		f := e.newFlow(oauth2.AuthStyleInParams)
		back := callback(t, browser(t), f.authURL(oauth2.SetAuthURLParam("authorization_details", payment)))
		tok, err := f.exchange(t.Context(), back.Get("code"))
		if err != nil {
			t.Fatalf("Exchange: %v", err)
		}
		got, _ := json.Marshal(tok.Extra("authorization_details"))
		var want any
		json.Unmarshal([]byte(payment), &want)
		if w, _ := json.Marshal(want); string(got) != string(w) {
			t.Errorf("token response authorization_details = %s; want %s", got, w)
		}
		e.verify(t, tok) // the rest of the response is intact
	})

	t.Run("none requested, none returned", func(t *testing.T) {
		e := start(t, devidp.Config{})
		e.idp.SetScript(honour)
		f := e.newFlow(oauth2.AuthStyleInHeader)
		tok, err := f.exchange(t.Context(), callback(t, browser(t), f.authURL()).Get("code"))
		if err != nil {
			t.Fatalf("Exchange: %v", err)
		}
		if v := tok.Extra("authorization_details"); v != nil {
			t.Errorf("token response authorization_details = %v; want none", v)
		}
	})

	t.Run("invalid in the URL", func(t *testing.T) {
		e := start(t, devidp.Config{})
		e.idp.SetScript(honour)
		f := e.newFlow(oauth2.AuthStyleInHeader)
		back := callback(t, browser(t), f.authURL(oauth2.SetAuthURLParam("authorization_details", `[{"no":"type"}]`)))
		if back.Get("error") != "invalid_authorization_details" || back.Has("code") {
			t.Errorf("callback %v; want error=invalid_authorization_details and no code", back)
		}
	})
}
