package devidp_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/devidp"
)

const apiAudience = "https://api.bank.example.test"

// atClaims are the claims of an RFC 9068 access token.
type atClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	Exp      int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	JTI      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	SID      string   `json:"sid"`
	Cnf      *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

// accessClaims checks raw's signature against the provider's JWKS and
// returns its typ header, its claims and the set of claim names.
func (e *env) accessClaims(t *testing.T, raw string) (typ string, c atClaims, all map[string]any) {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("access token %.20q… is not a JWS: %v", raw, err)
	}
	typ, _ = jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType].(string)
	payload, err := gooidc.NewRemoteKeySet(t.Context(), e.issuer+"/keys").VerifySignature(t.Context(), raw)
	if err != nil {
		t.Fatalf("access token signature: %v", err)
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("access token claims %s: %v", payload, err)
	}
	if err := json.Unmarshal(payload, &all); err != nil {
		t.Fatal(err)
	}
	return typ, c, all
}

func TestJWTAccessToken(t *testing.T) {
	past := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	tests := []struct {
		name     string
		cfg      devidp.Config
		login    devidp.Login
		wantAud  []string
		wantACR  string // "" = no acr claim
		wantAMR  []string
		wantAuth time.Time
	}{{
		name: "multi-factor login, APIAudience set",
		cfg:  devidp.Config{APIAudience: apiAudience},
		login: devidp.Login{Subject: "alice", ACR: devidp.ACRMultiFactor, AMR: []string{"pwd", "otp", "mfa"},
			AuthTime: past},
		wantAud: []string{apiAudience}, wantACR: devidp.ACRMultiFactor, wantAMR: []string{"pwd", "otp", "mfa"},
		wantAuth: past,
	}, {
		name:    "password-only login, APIAudience set",
		cfg:     devidp.Config{APIAudience: apiAudience},
		login:   devidp.Login{Subject: "bob", AMR: []string{"pwd"}, AuthTime: past},
		wantAud: []string{apiAudience}, wantAMR: []string{"pwd"}, wantAuth: past,
	}, {
		name:    "no APIAudience: aud is the client",
		login:   devidp.Login{Subject: "carol", ACR: "urn:test:silver", AMR: []string{"pwd"}, AuthTime: past},
		wantAud: []string{clientID}, wantACR: "urn:test:silver", wantAMR: []string{"pwd"}, wantAuth: past,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, tt.cfg)
			e.idp.SetScript(func(devidp.Request) devidp.Login { return tt.login })
			f := e.newFlow(oauth2.AuthStyleInHeader)
			before := time.Now().Truncate(time.Second)
			tok, err := f.exchange(t.Context(), callback(t, browser(t), f.authURL()).Get("code"))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			after := time.Now()
			// The ID token still verifies, its at_hash over the token issued.
			idt, idc, _ := e.verify(t, tok)
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("ID token at_hash does not match the access token: %v", err)
			}
			if tok.TokenType != "Bearer" {
				t.Errorf("token_type = %q; want Bearer", tok.TokenType)
			}

			typ, c, all := e.accessClaims(t, tok.AccessToken)
			if typ != "at+jwt" {
				t.Errorf("access token typ = %q; want at+jwt (RFC 9068 §2.1)", typ)
			}
			if c.Issuer != e.issuer || c.Subject != tt.login.Subject || c.ClientID != clientID {
				t.Errorf("iss, sub, client_id = %q, %q, %q; want %q, %q, %q", c.Issuer, c.Subject, c.ClientID, e.issuer, tt.login.Subject, clientID)
			}
			if !slices.Equal(c.Audience, tt.wantAud) {
				t.Errorf("aud = %q; want %q", c.Audience, tt.wantAud)
			}
			if iat := time.Unix(c.IssuedAt, 0); iat.Before(before) || iat.After(after) {
				t.Errorf("iat = %v; want between %v and %v", iat, before, after)
			}
			if exp := time.Unix(c.Exp, 0); exp.Sub(time.Unix(c.IssuedAt, 0)) != time.Hour {
				t.Errorf("exp - iat = %v; want 1h", exp.Sub(time.Unix(c.IssuedAt, 0)))
			}
			if len(c.JTI) < 16 {
				t.Errorf("jti = %q; want a random ID", c.JTI)
			}
			if got := strings.Fields(c.Scope); !slices.Equal(got, []string{"openid", "email"}) {
				t.Errorf("scope = %q; want \"openid email\"", c.Scope)
			}
			if _, has := all["acr"]; has != (tt.wantACR != "") || c.ACR != tt.wantACR {
				t.Errorf("acr = %q (present %v); want %q", c.ACR, has, tt.wantACR)
			}
			if !slices.Equal(c.AMR, tt.wantAMR) {
				t.Errorf("amr = %q; want %q", c.AMR, tt.wantAMR)
			}
			if !time.Unix(c.AuthTime, 0).Equal(tt.wantAuth) {
				t.Errorf("auth_time = %v; want %v", time.Unix(c.AuthTime, 0), tt.wantAuth)
			}
			var idAll map[string]any
			if err := idt.Claims(&idAll); err != nil {
				t.Fatal(err)
			}
			if c.SID == "" || c.SID != idAll["sid"] {
				t.Errorf("sid = %q; want the ID token's %q", c.SID, idAll["sid"])
			}
			if c.Cnf != nil {
				t.Errorf("cnf = %+v; want none for a token requested without DPoP", *c.Cnf)
			}
			if idc.ACR != tt.wantACR {
				t.Errorf("ID token acr = %q; want %q", idc.ACR, tt.wantACR)
			}
		})
	}
}

func TestOpaqueAccessToken(t *testing.T) {
	e := start(t, devidp.Config{Clients: []devidp.Client{{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{redirectURI}, AccessToken: devidp.AccessTokenOpaque}}})
	e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{Subject: "alice", Email: "alice@example.test"} })
	f := e.newFlow(oauth2.AuthStyleInHeader)
	tok, err := f.exchange(t.Context(), callback(t, browser(t), f.authURL()).Get("code"))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if strings.Count(tok.AccessToken, ".") != 0 || len(tok.AccessToken) < 32 {
		t.Errorf("access token = %q; want an opaque handle (no dots, at least 32 characters)", tok.AccessToken)
	}
	idt, _, _ := e.verify(t, tok)
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("ID token at_hash does not match the access token: %v", err)
	}
	ui, err := e.oidc.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("UserInfo with the opaque token: %v", err)
	}
	if ui.Subject != "alice" {
		t.Errorf("userinfo sub = %q; want alice", ui.Subject)
	}
}

func TestAccessTokenKindChecked(t *testing.T) {
	_, err := devidp.New(devidp.Config{Issuer: "http://127.0.0.1:1", Clients: []devidp.Client{{ID: "c", Secret: "s",
		RedirectURIs: []string{redirectURI}, AccessToken: "reference"}}})
	if err == nil || !strings.Contains(err.Error(), `AccessToken "reference"`) {
		t.Errorf("New with AccessToken \"reference\" = %v; want an error naming it", err)
	}
}
