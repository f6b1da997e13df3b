package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stepgate/stepgate/demo"
	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/devidp/devidptest"
	"github.com/stepgate/stepgate/dpop"
)

const apiAudience = "https://api.bank.example"

// apiConfig is testConfig with an API: JWT access tokens checked locally,
// opaque ones introspected, DPoP optional except on /api/bound/.
const apiConfig = `
listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
upstream: "${UPSTREAM}"
public_url: "${PUBLIC_URL}"
insecure_allow_http: true
oidc:
  issuer: "${ISSUER}"
  client_id: stepgate
  client_secret: "${CLIENT_SECRET}"
session:
  secrets: ["0123456789abcdef0123456789abcdef-api"]
api:
  audience: "` + apiAudience + `"
  tokens: both
  introspection_cache_ttl: 1s
levels:
  mfa:
    acr_values: ["` + acrMFA + `"]
    max_age: 15m
    satisfied_by:
      - acr: ["` + acrMFA + `"]
routes:
  - name: bound
    path: /api/bound/**
    require: mfa
    api: {dpop: required}
  - name: api
    path: /api/**
    require: mfa
  - name: profile
    path: /profile/**
    require: authenticated
`

// apiRig is a gateway that accepts devidp's access tokens, and the
// clients that get them.
type apiRig struct {
	*gw
	jwtClient, opaqueClient devidptest.Request
}

func startAPI(t *testing.T) *apiRig {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	const app = "http://127.0.0.1:1/app-callback" // never contacted: the helper stops at the redirect
	p := serveIDP(t, devidp.Config{
		APIAudience: apiAudience,
		Clients: []devidp.Client{
			{ID: "stepgate", Secret: "stepgate-test-secret", RedirectURIs: []string{public + "/.stepgate/callback"}},
			{ID: "mobile", Secret: "mobile-secret", RedirectURIs: []string{app}, RefreshTokens: true},
			{ID: "mobile-opaque", Secret: "mobile-opaque-secret", RedirectURIs: []string{app}, AccessToken: devidp.AccessTokenOpaque},
		},
	})
	up := newUpstream(t)
	g := &gw{t: t, idp: p, up: up, url: public}
	g.launch("api.yaml", apiConfig, map[string]string{
		"UPSTREAM": up.srv.URL, "PUBLIC_URL": public, "ISSUER": p.url, "CLIENT_SECRET": "stepgate-test-secret",
	}, ln)
	return &apiRig{gw: g,
		jwtClient:    devidptest.Request{ClientID: "mobile", ClientSecret: "mobile-secret", RedirectURI: app},
		opaqueClient: devidptest.Request{ClientID: "mobile-opaque", ClientSecret: "mobile-opaque-secret", RedirectURI: app},
	}
}

// token logs in at the provider as l says and returns r's tokens.
func (a *apiRig) token(r devidptest.Request, l devidp.Login) devidptest.Tokens {
	a.t.Helper()
	a.script(l)
	tok, err := devidptest.Token(a.t.Context(), a.idp.url, r)
	if err != nil {
		a.t.Fatalf("token from devidp: %v", err)
	}
	return tok
}

// call sends method target with Authorization and extra headers.
func (a *apiRig) call(method, target, auth string, hdr ...string) *http.Response {
	a.t.Helper()
	req, err := http.NewRequestWithContext(a.t.Context(), method, a.url+target, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestAPIStepUpWithDevIDP(t *testing.T) {
	a := startAPI(t)
	for _, c := range []struct {
		name   string
		client devidptest.Request
	}{{"jwt", a.jwtClient}, {"opaque", a.opaqueClient}} {
		t.Run(c.name, func(t *testing.T) {
			weak := a.token(c.client, pwdLogin("alice"))
			resp := a.call("POST", "/api/transfers", "Bearer "+weak.AccessToken)
			want := `Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="` + acrMFA + `", max_age=900`
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
				t.Fatalf("password-only token: %d %q; want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
			}
			if resp := a.call("GET", "/profile/me", "Bearer "+weak.AccessToken); resp.StatusCode != http.StatusOK {
				t.Errorf("password-only token on an authenticated route: %d; want 200", resp.StatusCode)
			}

			// The client steps up with the challenge's acr_values and max_age.
			r := c.client
			r.ACRValues = []string{acrMFA}
			maxAge := 900 * time.Second
			r.MaxAge = &maxAge
			strong := a.token(r, mfaLogin("alice"))
			n := a.up.count()
			if resp := a.call("POST", "/api/transfers", "Bearer "+strong.AccessToken); resp.StatusCode != http.StatusOK {
				t.Fatalf("token after the step-up: %d %q; want 200", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			if a.up.count() != n+1 {
				t.Fatalf("the app got %d requests; want 1", a.up.count()-n)
			}
			got := a.up.last()
			if got.Header.Get("X-Stepgate-Subject") != "alice" || got.Header.Get("X-Stepgate-Acr") != acrMFA ||
				got.Header.Get("Authorization") != "Bearer "+strong.AccessToken {
				t.Errorf("app got subject %q acr %q; want alice with %s and the Authorization unchanged",
					got.Header.Get("X-Stepgate-Subject"), got.Header.Get("X-Stepgate-Acr"), acrMFA)
			}
		})
	}
}

func TestAPIRefusesBadTokens(t *testing.T) {
	a := startAPI(t)
	mfaClient := a.jwtClient
	mfaClient.ACRValues = []string{acrMFA}
	good := a.token(mfaClient, mfaLogin("alice")).AccessToken
	parts := strings.Split(good, ".")
	header := func(edit func(map[string]any)) string {
		raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
		h := map[string]any{}
		if err := json.Unmarshal(raw, &h); err != nil {
			t.Fatal(err)
		}
		edit(h)
		b, _ := json.Marshal(h)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	// HS256 keyed with the provider's published public key: the classic
	// algorithm confusion, with the key in the two forms libraries use.
	var hmacTokens []string
	jwks := fetchJWKS(t, a.idp.url)
	for _, key := range jwks {
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			t.Fatal(err)
		}
		input := header(func(h map[string]any) { h["alg"] = "HS256" }) + "." + parts[1]
		m := hmac.New(sha256.New, der)
		m.Write([]byte(input))
		hmacTokens = append(hmacTokens, input+"."+base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
	}

	// Tokens of another provider, and of this one for another API.
	other := serveIDP(t, devidp.Config{APIAudience: apiAudience,
		Clients: []devidp.Client{{ID: "mobile", Secret: "mobile-secret", RedirectURIs: []string{a.jwtClient.RedirectURI}}}})
	other.SetScript(func(devidp.Request) devidp.Login { return mfaLogin("alice") })
	foreign, err := devidptest.Token(t.Context(), other.url, a.jwtClient)
	if err != nil {
		t.Fatal(err)
	}
	otherAPI := serveIDP(t, devidp.Config{APIAudience: "https://another-api.example",
		Clients: []devidp.Client{{ID: "mobile", Secret: "mobile-secret", RedirectURIs: []string{a.jwtClient.RedirectURI}}}})
	otherAPI.SetScript(func(devidp.Request) devidp.Login { return mfaLogin("alice") })
	wrongAud, err := devidptest.Token(t.Context(), otherAPI.url, a.jwtClient)
	if err != nil {
		t.Fatal(err)
	}

	cases := map[string]string{
		"alg none":                 header(func(h map[string]any) { h["alg"] = "none" }) + "." + parts[1] + ".",
		"typ missing":              header(func(h map[string]any) { delete(h, "typ") }) + "." + parts[1] + "." + parts[2],
		"typ JWT":                  header(func(h map[string]any) { h["typ"] = "JWT" }) + "." + parts[1] + "." + parts[2],
		"another provider's token": foreign.AccessToken,
		"another API's token":      wrongAud.AccessToken,
		"an ID token":              a.token(mfaClient, mfaLogin("alice")).IDToken,
		"unknown opaque token":     "not-a-token-devidp-knows",
	}
	for i, tok := range hmacTokens {
		cases["HS256 with the public key "+string(rune('a'+i))] = tok
	}
	n := a.up.count()
	for name, tok := range cases {
		resp := a.call("GET", "/api/accounts", "Bearer "+tok)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
			t.Errorf("%s: %d %q; want 401 invalid_token", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if a.up.count() != n {
		t.Errorf("the app got %d requests with bad tokens; want none", a.up.count()-n)
	}

	// Expired: the gateway's clock moves past exp (devidp's tokens live an
	// hour); the cached verification does not outlive the token.
	if resp := a.call("GET", "/api/accounts", "Bearer "+good); resp.StatusCode != http.StatusOK {
		t.Fatalf("good token: %d", resp.StatusCode)
	}
	a.clock.Store(int64(2 * time.Hour))
	if resp := a.call("GET", "/api/accounts", "Bearer "+good); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired token: %d; want 401", resp.StatusCode)
	}
	a.clock.Store(0)
}

// fetchJWKS returns the provider's published RSA/EC public keys.
func fetchJWKS(t *testing.T, issuer string) []any {
	t.Helper()
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	resp, err = http.Get(meta.JWKS)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	json.NewDecoder(resp.Body).Decode(&set)
	var keys []any
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err == nil && k.Key != nil {
			keys = append(keys, k.Key)
		}
	}
	if len(keys) == 0 {
		t.Fatal("the provider publishes no keys")
	}
	return keys
}

func TestAPIIntrospectionEndsWithTheSession(t *testing.T) {
	a := startAPI(t)
	r := a.opaqueClient
	r.ACRValues = []string{acrMFA}
	tok := a.token(r, mfaLogin("alice")).AccessToken
	if resp := a.call("GET", "/api/accounts", "Bearer "+tok); resp.StatusCode != http.StatusOK {
		t.Fatalf("opaque mfa token: %d; want 200", resp.StatusCode)
	}
	if a.idp.SignOut("alice") == 0 {
		t.Fatal("devidp ended no session")
	}
	// Once the short introspection cache has run out, the provider says
	// inactive.
	a.clock.Store(int64(2 * time.Second))
	if resp := a.call("GET", "/api/accounts", "Bearer "+tok); resp.StatusCode != http.StatusUnauthorized ||
		!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
		t.Errorf("inactive token: %d %q; want 401 invalid_token", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestAPIDPoPWithDevIDP(t *testing.T) {
	a := startAPI(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r := a.jwtClient
	r.ACRValues, r.DPoPKey = []string{acrMFA}, key
	tok := a.token(r, mfaLogin("alice"))
	if tok.TokenType != "DPoP" {
		t.Fatalf("token_type %q; want DPoP", tok.TokenType)
	}
	at := tok.AccessToken
	proof := func(method, path, token string) string {
		p, err := dpop.NewProof(key, method, a.url+path, token, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := proof("POST", "/api/bound/transfers", at)
	if resp := a.call("POST", "/api/bound/transfers?amount=1", "DPoP "+at, "DPoP", good); resp.StatusCode != http.StatusOK {
		t.Fatalf("bound token with its proof: %d %q; want 200", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	plainClient := a.jwtClient
	plainClient.ACRValues = []string{acrMFA}
	plain := a.token(plainClient, mfaLogin("alice"))
	for _, tc := range []struct {
		name, auth string
		hdr        []string
		challenge  string
	}{
		// The route requires DPoP, so its challenges are DPoP's.
		{"bound token as Bearer", "Bearer " + at, nil, `DPoP error="invalid_token"`},
		{"without a proof", "DPoP " + at, nil, `DPoP error="invalid_dpop_proof"`},
		{"proof for another URL", "DPoP " + at, []string{"DPoP", proof("POST", "/api/bound/other", at)}, `DPoP error="invalid_dpop_proof"`},
		{"proof for another method", "DPoP " + at, []string{"DPoP", proof("GET", "/api/bound/transfers", at)}, `DPoP error="invalid_dpop_proof"`},
		{"replayed proof", "DPoP " + at, []string{"DPoP", good}, `DPoP error="invalid_dpop_proof"`},
		{"proof with a wrong ath", "DPoP " + at, []string{"DPoP", proof("POST", "/api/bound/transfers", plain.AccessToken)}, `DPoP error="invalid_dpop_proof"`},
		{"plain token on a dpop: required route", "Bearer " + plain.AccessToken, nil, `DPoP error="invalid_token"`},
	} {
		resp := a.call("POST", "/api/bound/transfers", tc.auth, tc.hdr...)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), tc.challenge) {
			t.Errorf("%s: %d %q; want 401 %s", tc.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tc.challenge)
		}
	}
	// A plain token is fine where DPoP is optional.
	if resp := a.call("POST", "/api/transfers", "Bearer "+plain.AccessToken); resp.StatusCode != http.StatusOK {
		t.Errorf("plain token where dpop is optional: %d; want 200", resp.StatusCode)
	}
}

// A browser session and a token in one request: decided on the token.
func TestAPICookieAndBearer(t *testing.T) {
	a := startAPI(t)
	b := a.browser()
	a.script(mfaLogin("bob"))
	if resp, _ := b.browse(a.url+"/api/accounts", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's mfa login: %d; want 200", resp.StatusCode)
	}
	weak := a.token(a.jwtClient, pwdLogin("alice")).AccessToken
	resp := b.do("GET", a.url+"/api/accounts", map[string]string{"Authorization": "Bearer " + weak})
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" {
		t.Errorf("bob's mfa cookie with alice's password-only token: %d; want 401 (decided on the token), no redirect", resp.StatusCode)
	}
	r := a.jwtClient
	r.ACRValues = []string{acrMFA}
	strong := a.token(r, mfaLogin("alice")).AccessToken
	resp = b.do("GET", a.url+"/api/accounts", map[string]string{"Authorization": "Bearer " + strong})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || a.up.last().Header.Get("X-Stepgate-Subject") != "alice" {
		t.Errorf("bob's cookie with alice's mfa token: %d, subject %q; want 200 as alice", resp.StatusCode, a.up.last().Header.Get("X-Stepgate-Subject"))
	}
}

// The README's walk-through, against the demo as a person at a terminal
// runs it: the CLI client's code shown by the provider, redeemed with the
// client secret, the 401 challenge, the step-up, the retry.
func TestDemoAPIWalkThrough(t *testing.T) {
	d := startTestDemo(t)
	alice := d.Users[0]
	client := devidptest.Request{ClientID: demo.CLIClientID, ClientSecret: demo.CLIClientSecret,
		RedirectURI: d.IDPURL + devidp.CLICodePath, Username: alice.Username, Password: alice.Password, TOTPSecret: alice.TOTPSecret}
	get := func(token string) *http.Response {
		req, _ := http.NewRequest("GET", d.GatewayURL+"/api/transfers", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	weak, err := devidptest.Token(t.Context(), d.IDPURL, client)
	if err != nil {
		t.Fatal(err)
	}
	resp := get(weak.AccessToken)
	challenge := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(challenge, `error="insufficient_user_authentication"`) {
		t.Fatalf("password-only token: %d %q; want 401 with the RFC 9470 challenge", resp.StatusCode, challenge)
	}
	// The client asks for what the challenge names.
	client.ACRValues = []string{strings.Split(strings.Split(challenge, `acr_values="`)[1], `"`)[0]}
	strong, err := devidptest.Token(t.Context(), d.IDPURL, client)
	if err != nil {
		t.Fatal(err)
	}
	resp = get(strong.AccessToken)
	var got struct{ Subject, ACR string }
	if err := json.NewDecoder(resp.Body).Decode(&got); resp.StatusCode != http.StatusOK || err != nil || got.Subject != alice.Username || got.ACR != acrMFA {
		t.Errorf("after the step-up: %d %+v (%v); want 200 for %s with %s", resp.StatusCode, got, err, alice.Username, acrMFA)
	}
}
