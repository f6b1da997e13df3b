package oidc_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
)

// payment is an RFC 9396 authorization_details value as the proxy fills it
// from a held transfer.
const payment = `[{"type":"payment_initiation","instructedAmount":{"amount":"100.00","currency":"EUR"},"creditorAccount":{"iban":"DE02100100109307118603"}}]`

func newRequest(details string) oidc.AuthRequest {
	return oidc.AuthRequest{
		State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier(),
		Level: mfa, LoginHint: "alice", AuthorizationDetails: details,
	}
}

// query returns the query of raw, failing the test if it is no URL.
func query(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", raw, err)
	}
	return u.Query()
}

func withoutSecret(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		if k != "client_secret" {
			c[k] = vs
		}
	}
	return c
}

// TestAuthorizeURLPushes checks RFC 9126 §2 and §4: every parameter goes to
// the PAR endpoint, with client authentication as at the token endpoint,
// and the browser sees only client_id and request_uri.
func TestAuthorizeURLPushes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		methods    []string // token_endpoint_auth_methods_supported
		wantMethod string
		details    string
	}{
		{"client_secret_basic", []string{"client_secret_basic"}, "client_secret_basic", ""},
		{"client_secret_post, with authorization_details", []string{"client_secret_post"}, "client_secret_post", payment},
		{"both advertised", nil, "client_secret_basic", payment},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := oidctest.NewServer(t, oidctest.Options{Now: clock, PAR: true, AuthMethods: tc.methods})
			c := newClient(t, srv)
			a := newRequest(tc.details)
			raw, err := c.AuthorizeURL(t.Context(), a)
			if err != nil {
				t.Fatalf("AuthorizeURL: %v", err)
			}
			pushed := srv.Pushed()
			if len(pushed) != 1 {
				t.Fatalf("PAR endpoint got %d requests; want 1", len(pushed))
			}
			p := pushed[0]
			if p.AuthMethod != tc.wantMethod {
				t.Errorf("client authenticated at the PAR endpoint with %s; want %s", p.AuthMethod, tc.wantMethod)
			}
			wantSecret := []string(nil)
			if tc.wantMethod == "client_secret_post" {
				wantSecret = []string{srv.ClientSecret}
			}
			if got := p.Form["client_secret"]; strings.Join(got, ",") != strings.Join(wantSecret, ",") {
				t.Errorf("pushed client_secret = %q; want %q", got, wantSecret)
			}
			// Exactly what the unpushed URL would carry, nothing more.
			if got, want := withoutSecret(p.Form).Encode(), query(t, c.AuthCodeURL(a)).Encode(); got != want {
				t.Errorf("pushed parameters\n  %s\nwant\n  %s", got, want)
			}
			if got := p.Form.Get("authorization_details"); got != tc.details {
				t.Errorf("pushed authorization_details = %q; want %q", got, tc.details)
			}

			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := u.Scheme+"://"+u.Host+u.Path, srv.URL+"/authorize"; got != want {
				t.Errorf("endpoint = %q; want %q", got, want)
			}
			want := url.Values{"client_id": {srv.ClientID}, "request_uri": {p.RequestURI}}
			if got := u.Query(); got.Encode() != want.Encode() {
				t.Errorf("browser URL query = %v; want only %v", got, want)
			}
			if !strings.HasPrefix(p.RequestURI, oidctest.RequestURIPrefix) {
				t.Errorf("request_uri = %q; want the provider's", p.RequestURI)
			}

			code := srv.Login(t, raw)
			res, err := c.Exchange(t.Context(), code, oidc.Expect{
				Nonce: a.Nonce, Verifier: a.Verifier, Level: a.Level, AuthorizationDetails: tc.details,
			})
			if err != nil {
				t.Fatalf("Exchange after a pushed request: %v", err)
			}
			if res.Facts.ACR != "urn:stepgate:mfa" {
				t.Errorf("ACR = %q; want the pushed acr_values' urn:stepgate:mfa", res.Facts.ACR)
			}
		})
	}
}

// TestPushedRequestIgnoresURLEdits is why PAR is on by default: whatever
// the user adds to or changes in the browser URL, the provider uses the
// pushed parameters, so the step-up parameters cannot be stripped.
func TestPushedRequestIgnoresURLEdits(t *testing.T) {
	altered := strings.Replace(payment, "100.00", "9100.00", 1)
	for _, tc := range []struct {
		name string
		edit func(q url.Values)
	}{
		{"as issued", func(url.Values) {}},
		{"weaker acr_values and a long max_age", func(q url.Values) {
			q.Set("acr_values", "urn:stepgate:pwd")
			q.Set("max_age", "86400")
			q.Set("prompt", "none")
		}},
		{"state, nonce and redirect_uri replaced", func(q url.Values) {
			q.Set("state", "attacker-state")
			q.Set("nonce", "attacker-nonce")
			q.Set("redirect_uri", "https://evil.example/cb")
		}},
		{"PKCE challenge replaced", func(q url.Values) {
			q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
			q.Set("code_challenge_method", "S256")
		}},
		{"authorization_details replaced", func(q url.Values) { q.Set("authorization_details", altered) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := oidctest.NewServer(t, oidctest.Options{Now: clock, PAR: true})
			c := newClient(t, srv)
			a := newRequest(payment)
			raw, err := c.AuthorizeURL(t.Context(), a)
			if err != nil {
				t.Fatalf("AuthorizeURL: %v", err)
			}
			u, _ := url.Parse(raw)
			q := u.Query()
			tc.edit(q)
			u.RawQuery = q.Encode()

			back := srv.Redirect(t, u.String())
			if got, want := back.Scheme+"://"+back.Host+back.Path, config(srv).RedirectURL; got != want {
				t.Errorf("provider redirected to %q; want the pushed redirect_uri %q", got, want)
			}
			if got := back.Query().Get("state"); got != a.State {
				t.Errorf("state came back as %q; want the pushed %q", got, a.State)
			}
			used, pushed := srv.Authorized(), srv.Pushed()
			if len(used) != 1 || len(pushed) != 1 || used[0].Encode() != withoutSecret(pushed[0].Form).Encode() {
				t.Fatalf("provider authorized with %v; want the pushed %v", used, pushed)
			}
			res, err := c.Exchange(t.Context(), back.Query().Get("code"), oidc.Expect{
				Nonce: a.Nonce, Verifier: a.Verifier, Level: a.Level, AuthorizationDetails: payment,
			})
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if res.Facts.ACR != "urn:stepgate:mfa" {
				t.Errorf("ACR = %q; want urn:stepgate:mfa", res.Facts.ACR)
			}
		})
	}
}

// TestPushedRequestURIOnce pins the test provider's request_uri rules that
// the tests above rely on: single use, expiring, bound to its client.
func TestPushedRequestURIOnce(t *testing.T) {
	var mu sync.Mutex
	now := testNow
	srvClock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := oidctest.NewServer(t, oidctest.Options{Now: srvClock, PAR: true})
	c := newClient(t, srv)
	status := func(raw string) int {
		t.Helper()
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(raw)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	push := func() string {
		t.Helper()
		raw, err := c.AuthorizeURL(t.Context(), newRequest(""))
		if err != nil {
			t.Fatalf("AuthorizeURL: %v", err)
		}
		return raw
	}

	raw := push()
	if got := status(raw); got != http.StatusFound {
		t.Fatalf("first use: status %d; want 302", got)
	}
	if got := status(raw); got != http.StatusBadRequest {
		t.Errorf("second use: status %d; want 400", got)
	}

	raw = push()
	u, _ := url.Parse(raw)
	q := u.Query()
	q.Set("client_id", "other-client")
	u.RawQuery = q.Encode()
	if got := status(u.String()); got != http.StatusBadRequest {
		t.Errorf("other client_id: status %d; want 400", got)
	}

	raw = push()
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	if got := status(raw); got != http.StatusBadRequest {
		t.Errorf("after expires_in: status %d; want 400", got)
	}
}

// TestPARModes covers oidc.Config.PAR against what discovery advertises.
func TestPARModes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		par      string
		opts     oidctest.Options
		wantPush bool
		wantErr  string // from New; "" = none
	}{
		{"default with endpoint", "", oidctest.Options{PAR: true}, true, ""},
		{"auto with endpoint", "auto", oidctest.Options{PAR: true}, true, ""},
		{"auto without endpoint", "auto", oidctest.Options{}, false, ""},
		{"auto, endpoint not advertised", "auto", oidctest.Options{PAR: true, HidePAR: true}, false, ""},
		{"auto, provider requires PAR", "auto", oidctest.Options{PAR: true, RequirePAR: true}, true, ""},
		{"off with endpoint", "off", oidctest.Options{PAR: true}, false, ""},
		{"required with endpoint", "required", oidctest.Options{PAR: true}, true, ""},
		{"required without endpoint", "required", oidctest.Options{},
			false, `par is "required" but the provider advertises no pushed_authorization_request_endpoint`},
		{"required, endpoint not advertised", "required", oidctest.Options{PAR: true, HidePAR: true},
			false, "advertises no pushed_authorization_request_endpoint"},
		{"off, provider requires PAR", "off", oidctest.Options{PAR: true, RequirePAR: true},
			false, `require_pushed_authorization_requests, but par is "off"`},
		{"provider requires PAR it does not offer", "auto", oidctest.Options{RequirePAR: true},
			false, "requires pushed authorization requests but advertises no pushed_authorization_request_endpoint"},
		{"unknown mode", "yes", oidctest.Options{PAR: true}, false, `par: want "auto", "required" or "off", got "yes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Now = clock
			srv := oidctest.NewServer(t, tc.opts)
			cfg := config(srv)
			cfg.PAR = tc.par
			c, err := oidc.New(t.Context(), cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New(par %q) = %v, %v; want error containing %q", tc.par, c, err, tc.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "oidc: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(par %q): %v", tc.par, err)
			}
			raw, err := c.AuthorizeURL(t.Context(), newRequest(""))
			if err != nil {
				t.Fatalf("AuthorizeURL: %v", err)
			}
			q := query(t, raw)
			if pushed := len(srv.Pushed()) == 1 && q.Has("request_uri") && !q.Has("acr_values"); pushed != tc.wantPush {
				t.Errorf("AuthorizeURL = %s (pushes %d); want pushed %v", raw, len(srv.Pushed()), tc.wantPush)
			}
			if !tc.wantPush && q.Get("acr_values") != "urn:stepgate:mfa" {
				t.Errorf("unpushed URL %s lacks the level's acr_values", raw)
			}
		})
	}
}

// TestDialPARRequiredWithoutEndpoint: a provider that answers but cannot
// serve par: required is no reason to retry: Dial returns the conflict at
// once (ErrIncompatible), so the gateway can refuse to start.
func TestDialPARRequiredWithoutEndpoint(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{})
	cfg := config(srv)
	cfg.PAR = "required"
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	retried := 0
	start := time.Now()
	_, err := oidc.Dial(ctx, cfg, func(error, time.Duration) { retried++ })
	const want = "advertises no pushed_authorization_request_endpoint"
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, oidc.ErrIncompatible) {
		t.Fatalf("Dial = %v; want an ErrIncompatible error containing %q", err, want)
	}
	if retried != 0 || time.Since(start) > 2*time.Second {
		t.Errorf("Dial retried %d times over %v; want it to return at once", retried, time.Since(start))
	}
}

// parProvider is a bare discovery document whose PAR endpoint answers as
// the test says; no login ever completes against it.
func parProvider(t *testing.T, par http.HandlerFunc) string {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                srv.URL,
			"authorization_endpoint":                srv.URL + "/authorize",
			"token_endpoint":                        srv.URL + "/token",
			"jwks_uri":                              srv.URL + "/jwks",
			"pushed_authorization_request_endpoint": srv.URL + "/par",
		})
	})
	mux.HandleFunc("POST /par", par)
	return srv.URL
}

func answer(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

// TestAuthorizeURLFailures: when pushing fails there is no URL at all,
// never a fallback to an unpushed one the user could edit.
func TestAuthorizeURLFailures(t *testing.T) {
	const js = "application/json"
	const secret = "the-client-secret"
	for _, tc := range []struct {
		name    string
		par     http.HandlerFunc
		wantErr string // "" = success
	}{
		{"201 Created", answer(201, js, `{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}`), ""},
		{"200 OK", answer(200, js, `{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}`), ""},
		{"OAuth error", answer(400, js, `{"error":"invalid_request","error_description":"acr_values not supported"}`),
			`answered 400 invalid_request: "acr_values not supported"`},
		{"client refused", answer(401, js, `{"error":"invalid_client"}`), "answered 401 invalid_client"},
		{"HTML error page", answer(502, "text/html", `<h1>Bad Gateway</h1>`), "answered 502"},
		{"redirect", answer(302, "text/html", ``), "answered 302"},
		{"not JSON", answer(201, "text/plain", `request_uri=x`), "want JSON"},
		{"no request_uri", answer(201, js, `{"expires_in":60}`), "want request_uri"},
		{"request_uri a number", answer(201, js, `{"request_uri":5,"expires_in":60}`), "want JSON"},
		{"huge request_uri", answer(201, js, `{"request_uri":"`+strings.Repeat("u", 5000)+`","expires_in":60}`), "want request_uri"},
		{"no expires_in", answer(201, js, `{"request_uri":"urn:x"}`), "want a positive expires_in"},
		{"expires_in zero", answer(201, js, `{"request_uri":"urn:x","expires_in":0}`), "want a positive expires_in"},
		{"huge body", answer(201, js, `{"request_uri":"urn:x","expires_in":60,"pad":"`+strings.Repeat("p", 100<<10)+`"}`), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issuer := parProvider(t, tc.par)
			c, err := oidc.New(t.Context(), oidc.Config{
				Issuer: issuer, ClientID: "stepgate", ClientSecret: secret,
				RedirectURL: "https://app.example.test/.stepgate/callback", Scopes: []string{"openid"},
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			raw, err := c.AuthorizeURL(t.Context(), newRequest(payment))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("AuthorizeURL: %v", err)
				}
				if q := query(t, raw); q.Get("request_uri") != "urn:ietf:params:oauth:request_uri:abc" || len(q) != 2 {
					t.Errorf("AuthorizeURL = %s; want client_id and the request_uri only", raw)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("AuthorizeURL = %q, %v; want error containing %q", raw, err, tc.wantErr)
			}
			if raw != "" {
				t.Errorf("AuthorizeURL returned %q with an error; want no URL", raw)
			}
			if !strings.HasPrefix(err.Error(), "oidc: ") || strings.Contains(err.Error(), secret) {
				t.Errorf("error %q lacks the package prefix or leaks the secret", err)
			}
		})
	}
}

// TestAuthorizeURLRejectsBadRequests: nothing is pushed or built for a
// request the callback could not check.
func TestAuthorizeURLRejectsBadRequests(t *testing.T) {
	for _, par := range []bool{false, true} {
		srv := oidctest.NewServer(t, oidctest.Options{Now: clock, PAR: par})
		c := newClient(t, srv)
		for _, tc := range []struct {
			name    string
			edit    func(*oidc.AuthRequest)
			wantErr string
		}{
			{"no state", func(a *oidc.AuthRequest) { a.State = "" }, "state, nonce and PKCE verifier are required"},
			{"no nonce", func(a *oidc.AuthRequest) { a.Nonce = "" }, "state, nonce and PKCE verifier are required"},
			{"no verifier", func(a *oidc.AuthRequest) { a.Verifier = "" }, "state, nonce and PKCE verifier are required"},
			{"details not JSON", func(a *oidc.AuthRequest) { a.AuthorizationDetails = "[{" }, "authorization_details"},
			{"details an object", func(a *oidc.AuthRequest) { a.AuthorizationDetails = `{"type":"x"}` }, "want a JSON array"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := newRequest("")
				tc.edit(&a)
				raw, err := c.AuthorizeURL(t.Context(), a)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("AuthorizeURL (PAR %v) = %q, %v; want error containing %q", par, raw, err, tc.wantErr)
				}
				if n := len(srv.Pushed()); n != 0 {
					t.Errorf("%d requests pushed; want none", n)
				}
			})
		}
	}
}

func TestAuthCodeURLAuthorizationDetails(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{Now: clock})
	c := newClient(t, srv)
	for _, details := range []string{"", payment} {
		q := query(t, c.AuthCodeURL(newRequest(details)))
		if got := q["authorization_details"]; (details == "" && got != nil) || (details != "" && (len(got) != 1 || got[0] != details)) {
			t.Errorf("authorization_details = %q; want %q", got, details)
		}
	}
}

func TestCheckAuthorizationDetails(t *testing.T) {
	for _, tc := range []struct {
		details string
		wantErr string // "" = valid
	}{
		{payment, ""},
		{`[{"type":"a"},{"type":"b","locations":["https://x.example"],"n":123.45,"big":999999999999999,"ok":true,"none":null}]`, ""},
		{` [ {"type" : "a"} ] `, ""},
		{"", "want a JSON array"},
		{"null", "want a JSON array"},
		{`{"type":"a"}`, "want a JSON array"},
		{`[]`, "want at least one"},
		{`[1]`, "authorization_details[0]: want an object"},
		{`[{}]`, `authorization_details[0]: want a non-empty string "type"`},
		{`[{"type":"a"},{"type":""}]`, `authorization_details[1]: want a non-empty string "type"`},
		{`[{"type":5}]`, `want a non-empty string "type"`},
		{`[{"type":"a"}] [1]`, "after the array"},
		{`[{"type":"a"`, "authorization_details"},
		// Compared after decoding to float64, where these would collide
		// with their neighbours: 12345678901234567 == 12345678901234568.
		{`[{"type":"a","amount":12345678901234567}]`, "more than 15 significant digits"},
		{`[{"type":"a","amount":1e400}]`, "authorization_details"},
		{`[{"type":"a","amount":1e-320}]`, "authorization_details"},
	} {
		err := oidc.CheckAuthorizationDetails(tc.details)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("CheckAuthorizationDetails(%.60q) = %v; want nil", tc.details, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("CheckAuthorizationDetails(%.60q) = %v; want error containing %q", tc.details, err, tc.wantErr)
		}
	}
}

// TestPAREndpointScheme: the PAR endpoint receives the client secret, so
// it must be an absolute URL and never plain http behind an https issuer.
func TestPAREndpointScheme(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tls     bool
		par     func(issuer string) string
		wantErr string // "" = accepted
	}{
		{"https issuer, https endpoint", true, func(iss string) string { return iss + "/par" }, ""},
		{"http issuer, http endpoint", false, func(iss string) string { return iss + "/par" }, ""},
		{"https issuer, http endpoint", true, func(iss string) string { return "http" + strings.TrimPrefix(iss, "https") + "/par" }, "want an absolute URL with the issuer's scheme"},
		{"relative endpoint", false, func(string) string { return "/par" }, "want an absolute URL"},
		{"other scheme", false, func(string) string { return "ftp://idp.example/par" }, "want an absolute URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			srv := httptest.NewUnstartedServer(mux)
			if tc.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]any{
					"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize",
					"token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/jwks",
					"pushed_authorization_request_endpoint": tc.par(srv.URL),
				})
			})
			_, err := oidc.New(t.Context(), oidc.Config{
				Issuer: srv.URL, ClientID: "stepgate", ClientSecret: "s", HTTPClient: srv.Client(),
				RedirectURL: "https://app.example.test/.stepgate/callback", Scopes: []string{"openid"},
			})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New = %v; want error containing %q", err, tc.wantErr)
			}
		})
	}
}
