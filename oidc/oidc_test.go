package oidc_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
)

// testNow is the shared clock of the test provider and the client, so
// every time check is deterministic.
var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func clock() time.Time { return testNow }

func config(srv *oidctest.Server) oidc.Config {
	return oidc.Config{
		Issuer:       srv.URL,
		ClientID:     srv.ClientID,
		ClientSecret: srv.ClientSecret,
		RedirectURL:  "https://app.example.test/.stepgate/callback",
		Scopes:       []string{"openid", "email"},
		Now:          clock,
	}
}

func newClient(t *testing.T, srv *oidctest.Server) *oidc.Client {
	t.Helper()
	c, err := oidc.New(t.Context(), config(srv))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestAuthCodeURL(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{Now: clock})
	c := newClient(t, srv)
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 Appendix B
	base := oidc.AuthRequest{State: "the-state", Nonce: "the-nonce", Verifier: verifier}
	level := &policy.Level{
		Name:      "mfa",
		ACRValues: []string{"urn:stepgate:mfa", "urn:stepgate:hwk"},
		Claims:    `{"id_token":{"acr":{"essential":true}}}`,
		Prompt:    "login",
		MaxAge:    5*time.Minute + 999*time.Millisecond, // whole seconds only
	}

	// S256 computed here rather than with oauth2's helper, and checked
	// against the RFC's own example value.
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	if challenge != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Fatalf("S256(%q) = %q; want the RFC 7636 value", verifier, challenge)
	}
	common := map[string]string{
		"response_type":         "code",
		"client_id":             srv.ClientID,
		"redirect_uri":          "https://app.example.test/.stepgate/callback",
		"scope":                 "openid email",
		"state":                 "the-state",
		"nonce":                 "the-nonce",
		"code_challenge_method": "S256",
		"code_challenge":        challenge,
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	for _, tc := range []struct {
		name  string
		level *policy.Level
		hint  string
		want  map[string]string // every parameter, and nothing else
	}{
		{"plain login", nil, "", common},
		{"plain login with hint", nil, "alice", with(map[string]string{"login_hint": "alice"})},
		{"step-up", level, "alice", with(map[string]string{
			"acr_values": "urn:stepgate:mfa urn:stepgate:hwk",
			"claims":     `{"id_token":{"acr":{"essential":true}}}`,
			"max_age":    "300",
			"prompt":     "login",
			"login_hint": "alice",
		})},
		{"empty level", &policy.Level{Name: "empty"}, "", common},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := base
			a.Level, a.LoginHint = tc.level, tc.hint
			raw := c.AuthCodeURL(a)
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("AuthCodeURL = %q: %v", raw, err)
			}
			if got, want := u.Scheme+"://"+u.Host+u.Path, srv.URL+"/authorize"; got != want {
				t.Errorf("endpoint = %q; want %q", got, want)
			}
			q := u.Query()
			for k, want := range tc.want {
				if got := q[k]; len(got) != 1 || got[0] != want {
					t.Errorf("param %s = %q; want [%q]", k, got, want)
				}
			}
			for k := range q {
				if _, ok := tc.want[k]; !ok {
					t.Errorf("unexpected param %s = %q", k, q[k])
				}
			}
		})
	}
}

func TestEndSessionURL(t *testing.T) {
	t.Run("not advertised", func(t *testing.T) {
		c := newClient(t, oidctest.NewServer(t, oidctest.Options{}))
		if got := c.EndSessionURL("https://app.example.test/"); got != "" {
			t.Errorf("EndSessionURL = %q; want \"\"", got)
		}
	})
	srv := oidctest.NewServer(t, oidctest.Options{EndSession: true})
	c := newClient(t, srv)
	for _, tc := range []struct {
		name, redirect string
		want           url.Values
	}{
		{"with redirect", "https://app.example.test/bye?x=1", url.Values{
			"client_id":                {srv.ClientID},
			"post_logout_redirect_uri": {"https://app.example.test/bye?x=1"},
		}},
		{"without redirect", "", url.Values{"client_id": {srv.ClientID}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(c.EndSessionURL(tc.redirect))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := u.Scheme+"://"+u.Host+u.Path, srv.URL+"/logout"; got != want {
				t.Errorf("endpoint = %q; want %q", got, want)
			}
			if got := u.Query(); got.Encode() != tc.want.Encode() {
				t.Errorf("query = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{})
	hsOnly := oidctest.NewServer(t, oidctest.Options{Algs: []string{"HS256", "none"}})
	jwtAuthOnly := oidctest.NewServer(t, oidctest.Options{AuthMethods: []string{"private_key_jwt"}})
	for _, tc := range []struct {
		name    string
		edit    func(*oidc.Config)
		wantErr string
	}{
		{"no issuer", func(c *oidc.Config) { c.Issuer = "" }, "missing issuer"},
		{"no client id", func(c *oidc.Config) { c.ClientID = "" }, "missing client_id"},
		{"no redirect", func(c *oidc.Config) { c.RedirectURL = "" }, "missing redirect_url"},
		{"no scopes", func(c *oidc.Config) { c.Scopes = nil }, `must start with "openid"`},
		{"openid not first", func(c *oidc.Config) { c.Scopes = []string{"email", "openid"} }, `must start with "openid"`},
		// Issuers must match exactly (Discovery §4.3): a trailing slash is a
		// different issuer.
		{"issuer mismatch", func(c *oidc.Config) { c.Issuer = srv.URL + "/" }, "did not match"},
		{"symmetric algs only", func(c *oidc.Config) { c.Issuer = hsOnly.URL }, "want an asymmetric algorithm"},
		{"no secret auth method", func(c *oidc.Config) { c.Issuer = jwtAuthOnly.URL }, "want client_secret_basic or client_secret_post"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(srv)
			tc.edit(&cfg)
			c, err := oidc.New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New() = %v, %v; want error containing %q", c, err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "oidc: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestDialRetries(t *testing.T) {
	const failures = 2
	srv := oidctest.NewServer(t, oidctest.Options{FailDiscovery: failures})
	var waits []time.Duration
	c, err := oidc.Dial(t.Context(), config(srv), func(err error, wait time.Duration) {
		if err == nil {
			t.Error("onRetry got a nil error")
		}
		waits = append(waits, wait)
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if c == nil {
		t.Fatal("Dial returned a nil client")
	}
	if len(waits) != failures {
		t.Fatalf("onRetry called %d times; want %d", len(waits), failures)
	}
	// 250ms doubling, each jittered into [half, full].
	for i, w := range waits {
		full := 250 * time.Millisecond << i
		if w < full/2 || w > full {
			t.Errorf("wait %d = %v; want within [%v, %v]", i, w, full/2, full)
		}
	}
}

func TestDialStopsWithContext(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{FailDiscovery: 1 << 30})
	ctx, cancel := context.WithTimeout(t.Context(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	retries := 0
	c, err := oidc.Dial(ctx, config(srv), func(error, time.Duration) { retries++ })
	if err == nil {
		t.Fatalf("Dial = %v, nil; want an error", c)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial error %q does not wrap context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "503") {
		t.Errorf("Dial error %q does not carry the last discovery error", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Dial took %v after a 600ms deadline", took)
	}
	if retries == 0 {
		t.Error("Dial never retried")
	}
}

func TestDialConfigErrorIsNotRetried(t *testing.T) {
	_, err := oidc.Dial(t.Context(), oidc.Config{}, func(error, time.Duration) {
		t.Error("onRetry called for a configuration error")
	})
	if err == nil {
		t.Fatal("Dial(empty config) = nil error; want one")
	}
}
