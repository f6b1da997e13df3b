package oidc_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
)

// introspectionServer serves a provider with an introspection endpoint
// (opts.Introspection is set here) and a client of it.
func introspectionServer(t *testing.T, opts oidctest.Options, edit func(*oidc.Config)) (*oidctest.Server, *oidc.Client) {
	t.Helper()
	opts.Introspection, opts.Now = true, clock
	srv := oidctest.NewServer(t, opts)
	cfg := config(srv)
	if edit != nil {
		edit(&cfg)
	}
	c, err := oidc.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return srv, c
}

func TestIntrospect(t *testing.T) {
	srv, c := introspectionServer(t, oidctest.Options{SID: "sid-1"}, nil)
	raw := mustAccessToken(t, srv, oidctest.Token{Claims: edits(set("acr", "urn:stepgate:mfa"), set("amr", []string{"pwd", "otp"}),
		at("auth_time", -time.Minute), set("cnf", map[string]any{"jkt": testJKT}), set("token_type", "Bearer"))})
	got, err := c.Introspect(t.Context(), raw, oidctest.Audience)
	if err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	want := oidc.AccessToken{
		Facts: policy.Facts{Issuer: srv.URL, Subject: "alice", ACR: "urn:stepgate:mfa", AMR: []string{"pwd", "otp"},
			AuthTime: testNow.Add(-time.Minute), VerifiedAt: testNow},
		SID: "sid-1", ClientID: "stepgate", Scopes: []string{"openid", "email"}, JKT: testJKT, ID: got.ID,
		IssuedAt: testNow, Expires: testNow.Add(5 * time.Minute),
	}
	if got.ID == "" || !equalAccess(got, &want) {
		t.Errorf("Introspect() =\n%+v; want\n%+v", *got, want)
	}
	// RFC 7662 §2.1: the token, the hint, and the client's credentials as
	// at the token endpoint (basic when the provider lists no methods).
	reqs := srv.Introspections()
	if len(reqs) != 1 {
		t.Fatalf("%d introspection requests; want 1", len(reqs))
	}
	if f := reqs[0].Form; f.Get("token") != raw || f.Get("token_type_hint") != "access_token" || reqs[0].AuthMethod != "client_secret_basic" {
		t.Errorf("introspection request: form %v by %s; want the token, token_type_hint=access_token, client_secret_basic", f, reqs[0].AuthMethod)
	}

	// An opaque token with only what RFC 7662 requires and the audience.
	opaque := srv.OpaqueToken(edits(del("iss"), del("exp"), del("iat"), del("jti"), del("client_id"), del("scope"), del("auth_time"), del("amr"), del("sid")))
	got, err = c.Introspect(t.Context(), opaque, oidctest.Audience)
	if err != nil {
		t.Fatalf("Introspect(minimal opaque token): %v", err)
	}
	want = oidc.AccessToken{Facts: policy.Facts{Issuer: srv.URL, Subject: "alice", VerifiedAt: testNow}}
	if !equalAccess(got, &want) {
		t.Errorf("Introspect(minimal) =\n%+v; want\n%+v", *got, want)
	}
}

// The client authenticates as the provider's
// introspection_endpoint_auth_methods_supported says.
func TestIntrospectClientAuth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		methods []string
		want    string
	}{
		{"nothing listed", nil, "client_secret_basic"},
		{"both listed", []string{"client_secret_post", "client_secret_basic"}, "client_secret_basic"},
		{"post only", []string{"private_key_jwt", "client_secret_post"}, "client_secret_post"},
		{"basic only", []string{"client_secret_basic"}, "client_secret_basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A secret that form-encoding changes (RFC 6749 §2.3.1).
			srv, c := introspectionServer(t, oidctest.Options{IntrospectionAuthMethods: tc.methods, ClientSecret: "s3cr:t/+é%"}, nil)
			raw := srv.OpaqueToken(nil)
			if _, err := c.Introspect(t.Context(), raw, oidctest.Audience); err != nil {
				t.Fatalf("Introspect: %v", err)
			}
			if reqs := srv.Introspections(); len(reqs) != 1 || reqs[0].AuthMethod != tc.want {
				t.Errorf("introspection requests %+v; want one by %s", reqs, tc.want)
			}
		})
	}
}

func TestIntrospectRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		claims  func(map[string]any)
		token   string // instead of an opaque token with claims
		wantErr string
	}{
		{name: "inactive", token: "unknown-token", wantErr: "introspected token: the provider says it is not active"},
		{name: "another issuer", claims: set("iss", "https://idp.evil.test"), wantErr: `iss: want "http://127.0.0.1:`},
		{name: "iss a number", claims: set("iss", 1), wantErr: "iss: want"},
		{name: "no aud", claims: del("aud"), wantErr: "aud: want a string or an array of strings, got nothing"},
		{name: "another API", claims: set("aud", "https://other.example.test"), wantErr: `aud: want "https://api.example.test" among the audiences`},
		{name: "expired", claims: at("exp", -2*time.Minute), wantErr: "expired at 2030-01-02T03:02:05Z"},
		{name: "not yet valid", claims: at("nbf", 2*time.Minute), wantErr: "not valid before"},
		{name: "a refresh token", claims: set("token_type", "refresh_token"), wantErr: `token_type: want an access token, got "refresh_token"`},
		{name: "a refresh token in capitals", claims: set("token_type", "Refresh_Token"), wantErr: "token_type: want an access token"},
		{name: "a refresh token by URN", claims: set("token_type", "urn:ietf:params:oauth:token-type:refresh_token"), wantErr: "token_type: want an access token"},
		{name: "token_type a number", claims: set("token_type", 1), wantErr: "token_type: want a string, got 1"},
		{name: "no sub", claims: del("sub"), wantErr: "sub: want a non-empty string, got nothing"},
		{name: "auth_time in the future", claims: at("auth_time", 2*time.Minute), wantErr: "auth_time 2030-01-02T03:06:05Z is more than 1m0s after now"},
		{name: "acr a number", claims: set("acr", 3), wantErr: "acr: want a string, got 3"},
		{name: "amr a string", claims: set("amr", "mfa"), wantErr: "amr: want an array of strings"},
		{name: "bound to a TLS certificate", claims: set("cnf", map[string]any{"x5t#S256": testJKT}), wantErr: `cnf: want a "jkt" member`},
		{name: "empty token", token: "-", wantErr: "introspected token is empty"},
		{name: "token too long", token: strings.Repeat("t", 20000), wantErr: "want at most 16384 bytes, got 20000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := introspectionServer(t, oidctest.Options{}, nil)
			raw := tc.token
			switch raw {
			case "":
				raw = srv.OpaqueToken(tc.claims)
			case "-":
				raw = ""
			}
			got, err := c.Introspect(t.Context(), raw, oidctest.Audience)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Introspect() = %+v, %v; want error containing %q", got, err, tc.wantErr)
			}
			t.Log(err)
			if !errors.Is(err, oidc.ErrInvalidToken) || errors.Is(err, oidc.ErrIntrospectionUnavailable) {
				t.Errorf("error %q: want ErrInvalidToken, not ErrIntrospectionUnavailable", err)
			}
			if len(raw) > 8 && strings.Contains(err.Error(), raw) {
				t.Errorf("error %q quotes the token", err)
			}
			if got != nil {
				t.Errorf("Introspect returned %+v with an error", got)
			}
		})
	}
}

// The provider failing is not the token's fault: the proxy answers 503,
// not 401, and the error says what went wrong without the token or the
// client secret.
func TestIntrospectUnavailable(t *testing.T) {
	answer := func(status int, contentType, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			w.Write([]byte(body))
		}
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tc := range []struct {
		name    string
		opts    oidctest.Options
		cfg     func(*oidc.Config)
		answer  http.HandlerFunc
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		wantErr string
	}{
		{name: "server error", answer: answer(500, "application/json", `{"error":"server_error"}`), wantErr: "status 500; want 200"},
		{name: "wrong client secret", cfg: func(c *oidc.Config) { c.ClientSecret = "wrong" }, wantErr: "status 401; want 200"},
		{name: "HTML", answer: answer(200, "text/html", `{"active":true}`), wantErr: `Content-Type: want application/json, got "text/html"`},
		{name: "no content type", answer: answer(200, "", `{"active":true}`), wantErr: "Content-Type: want application/json"},
		{name: "a signed JWT response (RFC 9701)", answer: answer(200, "application/token-introspection+jwt", "eyJ.eyJ.sig"), wantErr: "Content-Type: want application/json"},
		{name: "not JSON", answer: answer(200, "application/json", `active=true`), wantErr: "want a JSON object"},
		{name: "a JSON array", answer: answer(200, "application/json", `[{"active":true}]`), wantErr: "want a JSON object"},
		{name: "null", answer: answer(200, "application/json", `null`), wantErr: "want a JSON object"},
		{name: "no active", answer: answer(200, "application/json", `{"sub":"alice"}`), wantErr: "active: want true or false, got nothing"},
		{name: "active a string", answer: answer(200, "application/json", `{"active":"true"}`), wantErr: `active: want true or false, got "true"`},
		{name: "over 1 MiB", answer: answer(200, "application/json; charset=utf-8", `{"active":true,"x":"`+strings.Repeat("x", 1<<20)+`"}`),
			wantErr: "want at most 1048576 bytes"},
		{name: "unreachable", cfg: func(c *oidc.Config) { c.IntrospectionURL = closed.URL + "/introspect" }, wantErr: "connect"},
		{name: "too slow", answer: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 100*time.Millisecond)
			}, wantErr: "deadline exceeded"},
		{name: "no endpoint advertised or configured", opts: oidctest.Options{HideIntrospection: true},
			wantErr: "the provider advertises no introspection_endpoint and none is configured"},
		{name: "no client auth method in common", opts: oidctest.Options{IntrospectionAuthMethods: []string{"private_key_jwt"}},
			wantErr: `introspection_endpoint_auth_methods_supported: want client_secret_basic or client_secret_post, got ["private_key_jwt"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := introspectionServer(t, tc.opts, tc.cfg)
			if tc.answer != nil {
				srv.SetIntrospection(tc.answer)
			}
			raw := srv.OpaqueToken(nil)
			ctx, cancel := t.Context(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx(ctx)
			}
			defer cancel()
			got, err := c.Introspect(ctx, raw, oidctest.Audience)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Introspect() = %+v, %v; want error containing %q", got, err, tc.wantErr)
			}
			t.Log(err)
			if !errors.Is(err, oidc.ErrIntrospectionUnavailable) || errors.Is(err, oidc.ErrInvalidToken) {
				t.Errorf("error %q: want ErrIntrospectionUnavailable, not ErrInvalidToken", err)
			}
			if strings.Contains(err.Error(), raw) || strings.Contains(err.Error(), srv.ClientSecret) {
				t.Errorf("error %q quotes the token or the client secret", err)
			}
			if got != nil {
				t.Errorf("Introspect returned %+v with an error", got)
			}
		})
	}
}

// Config.IntrospectionURL takes the place of discovery's endpoint.
func TestIntrospectionURLConfigured(t *testing.T) {
	var srvURL string
	srv, c := introspectionServer(t, oidctest.Options{HideIntrospection: true}, func(c *oidc.Config) {
		srvURL = c.Issuer
		c.IntrospectionURL = c.Issuer + "/introspect"
	})
	if _, err := c.Introspect(t.Context(), srv.OpaqueToken(nil), oidctest.Audience); err != nil {
		t.Fatalf("Introspect at %s/introspect: %v", srvURL, err)
	}
	if n := len(srv.Introspections()); n != 1 {
		t.Errorf("%d introspection requests; want 1", n)
	}
	if _, err := c.Introspect(t.Context(), srv.OpaqueToken(nil), ""); err == nil || errors.Is(err, oidc.ErrInvalidToken) {
		t.Errorf("Introspect(audience \"\") = %v; want an error about the audience, not ErrInvalidToken", err)
	}
}
