package devidp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/devidp/devidptest"
)

const (
	opaqueClient = "opaque-app"
	// gatewayClient is the resource server: it introspects, it gets no tokens.
	gatewayClient, gatewaySecret = "gateway", "gateway-secret"
)

// startAPI serves a devidp with a JWT client (clientID), an opaque one and
// the gateway, logins scripted as multi-factor.
func startAPI(t *testing.T, cfg devidp.Config) *env {
	t.Helper()
	cfg.APIAudience = apiAudience
	cfg.Clients = []devidp.Client{
		{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}, Scopes: []string{"accounts:read"}},
		{ID: opaqueClient, Secret: clientSecret, RedirectURIs: []string{redirectURI}, AccessToken: devidp.AccessTokenOpaque,
			Scopes: []string{"accounts:read"}},
		{ID: gatewayClient, Secret: gatewaySecret, RedirectURIs: []string{"http://127.0.0.1:9/unused"}},
	}
	e := start(t, cfg)
	e.idp.SetScript(func(devidp.Request) devidp.Login {
		return devidp.Login{Subject: "alice", ACR: devidp.ACRMultiFactor, AMR: []string{"pwd", "otp", "mfa"},
			AuthTime: time.Now().Add(-time.Minute)}
	})
	return e
}

// tokens gets tokens for client; accounts:write is not among its Scopes, so
// it is dropped.
func (e *env) tokens(t *testing.T, client string) devidptest.Tokens {
	t.Helper()
	tok, err := devidptest.Token(t.Context(), e.issuer, devidptest.Request{ClientID: client, ClientSecret: clientSecret,
		RedirectURI: redirectURI, Scopes: []string{"openid", "accounts:read", "accounts:write"}})
	if err != nil {
		t.Fatalf("Token for %s: %v", client, err)
	}
	return tok
}

// introspection is a response of the introspection endpoint (RFC 7662 §2.2,
// RFC 9470 §6.2).
type introspection struct {
	Active    bool     `json:"active"`
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud"`
	Exp       int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope"`
	TokenType string   `json:"token_type"`
	ACR       string   `json:"acr"`
	AMR       []string `json:"amr"`
	AuthTime  int64    `json:"auth_time"`
	SID       string   `json:"sid"`
	JTI       string   `json:"jti"`
	Cnf       *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

// introspectURL is discovery's introspection_endpoint.
func (e *env) introspectURL(t *testing.T) string {
	t.Helper()
	var meta struct {
		URL     string   `json:"introspection_endpoint"`
		Methods []string `json:"introspection_endpoint_auth_methods_supported"`
	}
	if err := e.oidc.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if meta.URL != e.issuer+"/oauth/introspect" {
		t.Fatalf("introspection_endpoint = %q; want %s/oauth/introspect", meta.URL, e.issuer)
	}
	if !slices.Contains(meta.Methods, "client_secret_basic") || !slices.Contains(meta.Methods, "client_secret_post") {
		t.Errorf("introspection_endpoint_auth_methods_supported = %q; want basic and post", meta.Methods)
	}
	return meta.URL
}

// introspect posts token with the gateway's credentials, as basic or post.
func (e *env) introspect(t *testing.T, token, id, secret string, post bool) (int, []byte) {
	t.Helper()
	form := url.Values{"token": {token}}
	if post {
		form.Set("client_id", id)
		form.Set("client_secret", secret)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.introspectURL(t), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !post && id != "" {
		req.SetBasicAuth(id, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("introspection Cache-Control = %q; want no-store", cc)
	}
	return resp.StatusCode, body
}

func TestIntrospection(t *testing.T) {
	e := startAPI(t, devidp.Config{})
	for _, tt := range []struct {
		name, client string
		post         bool
	}{
		{"JWT token, client_secret_basic", clientID, false},
		{"opaque token, client_secret_post", opaqueClient, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Second)
			tok := e.tokens(t, tt.client)
			status, body := e.introspect(t, tok.AccessToken, gatewayClient, gatewaySecret, tt.post)
			if status != http.StatusOK {
				t.Fatalf("introspect = %d %s; want 200", status, body)
			}
			var got introspection
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("introspection %s: %v", body, err)
			}
			idt, err := e.oidc.Verifier(&gooidc.Config{ClientID: tt.client}).Verify(t.Context(), tok.IDToken)
			if err != nil {
				t.Fatalf("ID token: %v", err)
			}
			var idc struct {
				SID string `json:"sid"`
			}
			if err := idt.Claims(&idc); err != nil {
				t.Fatal(err)
			}
			sid := idc.SID
			want := introspection{Active: true, Issuer: e.issuer, Subject: "alice", Audience: []string{apiAudience},
				Exp: got.IssuedAt + 3600, IssuedAt: got.IssuedAt, ClientID: tt.client, Scope: "openid accounts:read",
				TokenType: "Bearer", ACR: devidp.ACRMultiFactor, AMR: []string{"pwd", "otp", "mfa"},
				AuthTime: got.AuthTime, SID: sid, JTI: got.JTI}
			if !reflect.DeepEqual(got, want) || sid == "" || got.JTI == "" {
				t.Errorf("introspection = %+v\nwant %+v (with a sid and a jti)", got, want)
			}
			if iat := time.Unix(got.IssuedAt, 0); iat.Before(before) || iat.After(time.Now()) {
				t.Errorf("iat = %v; want about now", iat)
			}
			if at := time.Unix(got.AuthTime, 0); at.After(before) || at.Before(before.Add(-2*time.Minute)) {
				t.Errorf("auth_time = %v; want the scripted login's, a minute ago", at)
			}
		})
	}
}

func TestIntrospectionClientAuthentication(t *testing.T) {
	e := startAPI(t, devidp.Config{})
	tok := e.tokens(t, clientID)
	tests := []struct {
		name       string
		id, secret string
		post       bool
	}{
		{"wrong secret, basic", gatewayClient, "wrong", false},
		{"wrong secret, post", gatewayClient, "wrong", true},
		{"unknown client", "nobody", gatewaySecret, false},
		{"no credentials", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.introspect(t, tok.AccessToken, tt.id, tt.secret, tt.post)
			var oe struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal(body, &oe)
			if status != http.StatusUnauthorized || oe.Error != "invalid_client" || strings.Contains(string(body), "alice") {
				t.Errorf("introspect = %d %s; want 401 invalid_client and nothing of the token", status, body)
			}
		})
	}
}

func TestIntrospectionInactive(t *testing.T) {
	e := startAPI(t, devidp.Config{AccessTokenLifetime: time.Second})
	jwt, opaque := e.tokens(t, clientID), e.tokens(t, opaqueClient)
	revoked := e.tokens(t, clientID)
	revoke(t, e, revoked.AccessToken, clientID)
	signedOut := e.tokens(t, opaqueClient)
	time.Sleep(1100 * time.Millisecond) // jwt and opaque expire
	fresh := e.tokens(t, opaqueClient)
	if n := e.idp.SignOut("alice"); n == 0 {
		t.Fatal("SignOut ended no session")
	}

	tests := []struct{ name, token string }{
		{"expired JWT", jwt.AccessToken},
		{"expired opaque", opaque.AccessToken},
		{"revoked at /revoke", revoked.AccessToken},
		{"session ended by SignOut", signedOut.AccessToken},
		{"session ended by SignOut, unexpired", fresh.AccessToken},
		{"unknown", "bm90IGEgdG9rZW4gZnJvbSBoZXJlIGF0IGFsbCwgbm8"},
		{"malformed JWT", "a.b.c"},
		{"empty", ""},
		{"the ID token", jwt.IDToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.introspect(t, tt.token, gatewayClient, gatewaySecret, false)
			if status != http.StatusOK || strings.TrimSpace(string(body)) != `{"active":false}` {
				t.Errorf("introspect = %d %s; want 200 {\"active\":false}", status, body)
			}
		})
	}
}

// revoke revokes token at discovery's revocation_endpoint (RFC 7009) as client.
func revoke(t *testing.T, e *env, token, client string) {
	t.Helper()
	var meta struct {
		URL string `json:"revocation_endpoint"`
	}
	if err := e.oidc.Claims(&meta); err != nil || meta.URL == "" {
		t.Fatalf("no revocation_endpoint in discovery (%v)", err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, meta.URL,
		strings.NewReader(url.Values{"token": {token}, "token_type_hint": {"access_token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, clientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke = %s %s; want 200", resp.Status, body)
	}
}
