package devidp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/devidp/devidptest"
)

func TestDPoPBoundToken(t *testing.T) {
	e := startAPI(t, devidp.Config{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, err := devidptest.Thumbprint(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, client := range []string{clientID, opaqueClient} {
		t.Run(client, func(t *testing.T) {
			tok, err := devidptest.Token(t.Context(), e.issuer, devidptest.Request{ClientID: client, ClientSecret: clientSecret,
				RedirectURI: redirectURI, DPoPKey: key})
			if err != nil {
				t.Fatalf("Token with a DPoP proof: %v", err)
			}
			if tok.TokenType != "DPoP" {
				t.Errorf("token_type = %q; want DPoP (RFC 9449 §5)", tok.TokenType)
			}
			if client == clientID {
				if _, c, _ := e.accessClaims(t, tok.AccessToken); c.Cnf == nil || c.Cnf.JKT != jkt {
					t.Errorf("access token cnf = %+v; want jkt %s", c.Cnf, jkt)
				}
			}
			_, body := e.introspect(t, tok.AccessToken, gatewayClient, gatewaySecret, false)
			var in introspection
			if err := json.Unmarshal(body, &in); err != nil {
				t.Fatal(err)
			}
			if !in.Active || in.TokenType != "DPoP" || in.Cnf == nil || in.Cnf.JKT != jkt {
				t.Errorf("introspection = %s; want active, token_type DPoP, cnf.jkt %s", body, jkt)
			}
		})
	}

	var meta struct {
		Algs []string `json:"dpop_signing_alg_values_supported"`
	}
	if err := e.oidc.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(meta.Algs, "ES256") || slices.ContainsFunc(meta.Algs, func(a string) bool { return strings.HasPrefix(a, "HS") }) {
		t.Errorf("dpop_signing_alg_values_supported = %q; want ES256 and no HMAC", meta.Algs)
	}
}

// rawProof signs claims with key as alg, header typ and jwk as given (nil
// = none), so a test can make any proof, however wrong.
func rawProof(t *testing.T, alg jose.SignatureAlgorithm, key any, typ string, jwk *jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	h := map[jose.HeaderKey]any{}
	if typ != "" {
		h[jose.HeaderType] = typ
	}
	if jwk != nil {
		h["jwk"] = jwk
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, &jose.SignerOptions{ExtraHeaders: h})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// redeem posts a code to the token endpoint with the given DPoP headers.
func (e *env) redeem(t *testing.T, f *flow, code string, proofs ...string) (int, []byte) {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {f.verifier}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.oidc.Endpoint().TokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func TestDPoPProofRefused(t *testing.T) {
	e := startAPI(t, devidp.Config{})
	tokenURL := e.oidc.Endpoint().TokenURL
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := &jose.JSONWebKey{Key: &key.PublicKey}
	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"jti": rand.Text(), "htm": "POST", "htu": tokenURL, "iat": now.Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	proof := func(method, u string, at time.Time) string {
		p, err := devidptest.Proof(key, method, u, "", at)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	tests := []struct {
		name   string
		proofs []string
		why    string // in error_description
	}{
		{"another htu", []string{proof("POST", e.issuer+"/userinfo", now)}, "htu"},
		{"another host in htu", []string{proof("POST", strings.Replace(tokenURL, "127.0.0.1", "localhost", 1), now)}, "htu"},
		{"another method", []string{proof("GET", tokenURL, now)}, "htm"},
		{"iat two minutes ago", []string{proof("POST", tokenURL, now.Add(-2*time.Minute))}, "iat"},
		{"iat two minutes ahead", []string{proof("POST", tokenURL, now.Add(2*time.Minute))}, "iat"},
		{"HS256", []string{rawProof(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "dpop+jwt", pub, claims(nil))}, "alg \"HS256\""},
		{"private key in jwk", []string{rawProof(t, jose.ES256, key, "dpop+jwt", &jose.JSONWebKey{Key: key}, claims(nil))}, "private member"},
		{"signed by another key than jwk", []string{rawProof(t, jose.ES256, other, "dpop+jwt", pub, claims(nil))}, "signature"},
		{"typ JWT", []string{rawProof(t, jose.ES256, key, "JWT", pub, claims(nil))}, "typ"},
		{"no typ", []string{rawProof(t, jose.ES256, key, "", pub, claims(nil))}, "typ"},
		{"no jwk", []string{rawProof(t, jose.ES256, key, "dpop+jwt", nil, claims(nil))}, "no jwk"},
		{"no jti", []string{rawProof(t, jose.ES256, key, "dpop+jwt", pub, claims(func(c map[string]any) { delete(c, "jti") }))}, "no jti"},
		{"no iat", []string{rawProof(t, jose.ES256, key, "dpop+jwt", pub, claims(func(c map[string]any) { delete(c, "iat") }))}, "no iat"},
		{"two proofs", []string{proof("POST", tokenURL, now), proof("POST", tokenURL, now)}, "2 DPoP headers"},
		{"empty", []string{""}, "not a compact JWS"},
		{"not a JWS", []string{"not-a-proof"}, "not a compact JWS"},
	}
	// A refused proof must not spend the code: the last step redeems it.
	f := e.newFlow(oauth2.AuthStyleInHeader)
	code := callback(t, browser(t), f.authURL()).Get("code")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.redeem(t, f, code, tt.proofs...)
			var oe struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			_ = json.Unmarshal(body, &oe)
			if status != http.StatusBadRequest || oe.Error != "invalid_dpop_proof" || strings.Contains(string(body), "access_token") {
				t.Errorf("token request = %d %s; want 400 invalid_dpop_proof", status, body)
			}
			if !strings.Contains(oe.Description, tt.why) {
				t.Errorf("error_description = %q; want it to say %q", oe.Description, tt.why)
			}
		})
	}

	good := proof("POST", tokenURL, now)
	if status, body := e.redeem(t, f, code, good); status != http.StatusOK || !strings.Contains(string(body), `"token_type":"DPoP"`) {
		t.Fatalf("token request with a good proof = %d %s; want 200 and a DPoP token", status, body)
	}
	t.Run("replayed jti", func(t *testing.T) {
		f := e.newFlow(oauth2.AuthStyleInHeader)
		code := callback(t, browser(t), f.authURL()).Get("code")
		status, body := e.redeem(t, f, code, good)
		if status != http.StatusBadRequest || !strings.Contains(string(body), "invalid_dpop_proof") || !strings.Contains(string(body), "jti already used") {
			t.Errorf("token request with a replayed proof = %d %s; want 400 invalid_dpop_proof, jti already used", status, body)
		}
	})
}
