package devidptest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/devidp/devidptest"
)

const (
	clientID     = "api-client"
	clientSecret = "s3cret-for-tests"
	redirectURI  = "http://127.0.0.1:9/callback"
	aliceTOTP    = "JBSWY3DPEHPK3PXP"
)

// start serves a devidp with one client and one user on a loopback port.
func start(t *testing.T) *devidp.Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := devidp.New(devidp.Config{
		Issuer:      "http://" + ln.Addr().String(),
		APIAudience: "https://api.example.test",
		Clients:     []devidp.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}}},
		Users: []devidp.User{{Username: "alice", Password: "correct horse", Subject: "alice-sub",
			Email: "alice@example.test", TOTPSecret: aliceTOTP}},
	})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

func request() devidptest.Request {
	return devidptest.Request{ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
}

// payload decodes a JWT's claims without checking its signature (devidp's
// own tests do that).
func payload(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("token %.30q… is not a compact JWS", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JWT payload %s: %v", b, err)
	}
	return m
}

func TestToken(t *testing.T) {
	p := start(t)
	fiveMin := 5 * time.Minute
	claims := `{"id_token":{"acr":{"essential":true}}}`
	tests := []struct {
		name    string
		script  func(devidp.Request) devidp.Login // nil = the login form
		req     func(*devidptest.Request)
		wantACR any // nil = no acr claim
		wantAMR []any
		wantReq devidp.Request // what the provider saw; zero = not checked
	}{{
		name:   "scripted step-up, with acr_values, max_age and claims sent",
		script: func(devidp.Request) devidp.Login { return devidp.Login{Subject: "alice-sub", HonourACRValues: true} },
		req: func(r *devidptest.Request) {
			r.ACRValues, r.MaxAge, r.Claims = []string{devidp.ACRMultiFactor}, &fiveMin, claims
		},
		wantACR: devidp.ACRMultiFactor, wantAMR: []any{"pwd", "otp", "mfa"},
		wantReq: devidp.Request{ClientID: clientID, ACRValues: []string{devidp.ACRMultiFactor}, MaxAge: &fiveMin, Claims: claims},
	}, {
		name:    "scripted password-only login",
		script:  func(devidp.Request) devidp.Login { return devidp.Login{Subject: "alice-sub", AMR: []string{"pwd"}} },
		wantAMR: []any{"pwd"},
	}, {
		name: "login form, password and one-time code",
		req: func(r *devidptest.Request) {
			r.ACRValues = []string{devidp.ACRMultiFactor}
			r.Username, r.Password, r.TOTPSecret = "alice", "correct horse", aliceTOTP
		},
		wantACR: devidp.ACRMultiFactor, wantAMR: []any{"pwd", "otp", "mfa"},
	}, {
		name:    "login form, password only",
		req:     func(r *devidptest.Request) { r.Username, r.Password = "alice", "correct horse" },
		wantAMR: []any{"pwd"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.SetScript(tt.script)
			r := request()
			if tt.req != nil {
				tt.req(&r)
			}
			tok, err := devidptest.Token(t.Context(), p.Issuer(), r)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			if tok.TokenType != "Bearer" || tok.ExpiresIn < 3500 || tok.ExpiresIn > 3600 || tok.IDToken == "" {
				t.Errorf("Tokens = {token_type %q, expires_in %d, id_token %q}; want Bearer, about 3600 and an ID token",
					tok.TokenType, tok.ExpiresIn, tok.IDToken)
			}
			at := payload(t, tok.AccessToken)
			if at["sub"] != "alice-sub" || at["acr"] != tt.wantACR || !reflect.DeepEqual(at["amr"], tt.wantAMR) {
				t.Errorf("access token sub, acr, amr = %v, %v, %v; want alice-sub, %v, %v", at["sub"], at["acr"], at["amr"], tt.wantACR, tt.wantAMR)
			}
			if tt.wantReq.ClientID != "" {
				reqs := p.Requests()
				if got := reqs[len(reqs)-1]; !reflect.DeepEqual(got, tt.wantReq) {
					t.Errorf("provider saw %+v; want %+v", got, tt.wantReq)
				}
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	p := start(t)
	tests := []struct {
		name       string
		script     func(devidp.Request) devidp.Login
		req        func(*devidptest.Request)
		wantCode   string // the *Error's Code; "" = not an *Error
		wantStatus int
		wantText   string
	}{{
		name:     "wrong client secret",
		script:   func(devidp.Request) devidp.Login { return devidp.Login{Subject: "alice-sub"} },
		req:      func(r *devidptest.Request) { r.ClientSecret = "wrong" },
		wantCode: "invalid_client", wantStatus: http.StatusUnauthorized,
	}, {
		name:     "login refused",
		script:   func(devidp.Request) devidp.Login { return devidp.Login{Error: "access_denied"} },
		wantCode: "access_denied",
	}, {
		name:     "password page without credentials",
		wantText: "password page",
	}, {
		name: "code page without TOTPSecret",
		req: func(r *devidptest.Request) {
			r.Username, r.Password, r.ACRValues = "alice", "correct horse", []string{devidp.ACRMultiFactor}
		},
		wantText: "one-time code page",
	}, {
		name:     "wrong password",
		req:      func(r *devidptest.Request) { r.Username, r.Password = "alice", "wrong" },
		wantText: "401 Unauthorized",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.SetScript(tt.script)
			r := request()
			if tt.req != nil {
				tt.req(&r)
			}
			_, err := devidptest.Token(t.Context(), p.Issuer(), r)
			var oe *devidptest.Error
			switch {
			case err == nil:
				t.Fatal("Token succeeded; want an error")
			case tt.wantCode != "" && (!errors.As(err, &oe) || oe.Code != tt.wantCode || oe.Status != tt.wantStatus):
				t.Errorf("Token error = %v; want an *Error with code %s, status %d", err, tt.wantCode, tt.wantStatus)
			case tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText):
				t.Errorf("Token error = %v; want one containing %q", err, tt.wantText)
			}
		})
	}
}

func TestProof(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name    string
		key     crypto.Signer
		alg     jose.SignatureAlgorithm
		token   string
		wantATH string
	}{
		{"P-256 at the token endpoint", ec, jose.ES256, "", ""},
		// ath of "token", computed by hand: base64url(SHA-256("token")).
		{"P-384 with an access token", ec384, jose.ES384, "token", "PEaenWxYddN6Q_NT1PiOYfz4EsZu7jRXRlpAsNpBU-A"},
		{"RSA", rk, jose.PS256, "", ""},
		{"Ed25519", ed, jose.EdDSA, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proof, err := devidptest.Proof(tt.key, "GET", "https://api.example.test/accounts", tt.token, now)
			if err != nil {
				t.Fatal(err)
			}
			jws, err := jose.ParseSigned(proof, []jose.SignatureAlgorithm{tt.alg})
			if err != nil {
				t.Fatalf("proof is not a JWS signed with %s: %v", tt.alg, err)
			}
			h := jws.Signatures[0].Protected
			if h.ExtraHeaders[jose.HeaderType] != "dpop+jwt" || h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
				t.Fatalf("proof header typ %v, jwk %v; want dpop+jwt and a public key", h.ExtraHeaders[jose.HeaderType], h.JSONWebKey)
			}
			b, err := jws.Verify(h.JSONWebKey)
			if err != nil {
				t.Fatalf("proof does not verify with its own jwk: %v", err)
			}
			var c devidptest.ProofClaims
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			if c.HTM != "GET" || c.HTU != "https://api.example.test/accounts" || c.IAT != now.Unix() || len(c.JTI) < 16 || c.ATH != tt.wantATH {
				t.Errorf("proof claims = %+v; want GET, the URL, iat %d, a random jti and ath %q", c, now.Unix(), tt.wantATH)
			}
			again, _ := devidptest.Proof(tt.key, "GET", "https://api.example.test/accounts", tt.token, now)
			if again == proof {
				t.Error("two proofs are identical; want a fresh jti each")
			}
		})
	}
}

// TestThumbprint checks Thumbprint against RFC 7638 §3 done by hand for a
// P-256 key: SHA-256 of {"crv","kty","x","y"} in that order, no spaces.
func TestThumbprint(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, err := k.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	canon := `{"crv":"P-256","kty":"EC","x":"` + b64(pub[1:33]) + `","y":"` + b64(pub[33:]) + `"}`
	sum := sha256.Sum256([]byte(canon))
	got, err := devidptest.Thumbprint(&k.PublicKey)
	if err != nil || got != b64(sum[:]) {
		t.Errorf("Thumbprint = %q, %v; want %q", got, err, b64(sum[:]))
	}
	if _, err := devidptest.Thumbprint("not a key"); err == nil {
		t.Error("Thumbprint of a string succeeded; want an error")
	}
}
