package oidc_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
)

// accessCase is one access token from the test provider, built by
// srv.AccessToken(tok), or by raw when set, and verified for audience
// (oidctest.Audience when "").
type accessCase struct {
	name     string
	opts     oidctest.Options
	tok      oidctest.Token
	raw      func(t *testing.T, srv *oidctest.Server) string
	audience string
}

func (ac accessCase) verify(t *testing.T) (*oidc.AccessToken, string, error) {
	t.Helper()
	opts := ac.opts
	opts.Now = clock
	srv := oidctest.NewServer(t, opts)
	c := newClient(t, srv)
	raw := ""
	if ac.raw != nil {
		raw = ac.raw(t, srv)
	} else {
		raw = mustAccessToken(t, srv, ac.tok)
	}
	aud := ac.audience
	if aud == "" {
		aud = oidctest.Audience
	}
	at, err := c.VerifyAccessToken(t.Context(), raw, aud)
	return at, raw, err
}

func mustAccessToken(t testing.TB, srv *oidctest.Server, tok oidctest.Token) string {
	t.Helper()
	raw, err := srv.AccessToken(tok)
	if err != nil {
		t.Fatalf("AccessToken: %v", err)
	}
	return raw
}

// A thumbprint of the shape RFC 7638 gives (base64url SHA-256).
const testJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

func TestVerifyAccessToken(t *testing.T) {
	const sid = "08a5019c-17e1-4977-8f42-65a12843ea02"
	base := func(edit func(*oidc.AccessToken)) oidc.AccessToken {
		a := oidc.AccessToken{
			Facts: policy.Facts{
				Subject: "alice", AMR: []string{"pwd"}, AuthTime: testNow, VerifiedAt: testNow,
			},
			ClientID: "stepgate",
			Scopes:   []string{"openid", "email"},
			IssuedAt: testNow,
			Expires:  testNow.Add(5 * time.Minute),
		}
		if edit != nil {
			edit(&a)
		}
		return a
	}
	for _, tc := range []struct {
		accessCase
		want oidc.AccessToken // Facts.Issuer is the server's; ID is checked to be non-empty
	}{
		{accessCase{name: "plain"}, base(nil)},
		{accessCase{name: "step-up claims", opts: oidctest.Options{SID: sid}, tok: oidctest.Token{Claims: edits(
			set("acr", "urn:stepgate:mfa"), set("amr", []string{"pwd", "otp"}), set("acrs", []string{"c1", "c2"}),
			set("email", "alice@example.test"), at("auth_time", -2*time.Minute))}},
			base(func(a *oidc.AccessToken) {
				a.Facts.ACR, a.Facts.AMR, a.Facts.ACRS = "urn:stepgate:mfa", []string{"pwd", "otp"}, []string{"c1", "c2"}
				a.Facts.Email, a.Facts.AuthTime, a.SID = "alice@example.test", testNow.Add(-2*time.Minute), sid
			})},
		{accessCase{name: "no auth_time, amr or scope", tok: oidctest.Token{Claims: edits(del("auth_time"), del("amr"), del("scope"))}},
			base(func(a *oidc.AccessToken) { a.Facts.AuthTime, a.Facts.AMR, a.Scopes = time.Time{}, nil, nil })},
		{accessCase{name: "DPoP-bound", tok: oidctest.Token{Claims: set("cnf", map[string]any{"jkt": testJKT})}},
			base(func(a *oidc.AccessToken) { a.JKT = testJKT })},
		{accessCase{name: "aud array with ours", tok: oidctest.Token{Claims: set("aud", []string{"https://other.example.test", oidctest.Audience})}}, base(nil)},
		{accessCase{name: "typ application/at+jwt", tok: oidctest.Token{Header: hset("typ", "application/at+jwt")}}, base(nil)},
		{accessCase{name: "typ in capitals", tok: oidctest.Token{Header: hset("typ", "AT+JWT")}}, base(nil)},
		{accessCase{name: "scp array (Okta)", tok: oidctest.Token{Claims: edits(del("scope"), set("scp", []string{"read", "write"}))}},
			base(func(a *oidc.AccessToken) { a.Scopes = []string{"read", "write"} })},
		{accessCase{name: "scp string (Entra ID)", tok: oidctest.Token{Claims: edits(del("scope"), set("scp", "User.Read  Mail.Send"))}},
			base(func(a *oidc.AccessToken) { a.Scopes = []string{"User.Read", "Mail.Send"} })},
		{accessCase{name: "exp 30s ago (clock skew)", tok: oidctest.Token{Claims: edits(at("iat", -5*time.Minute), at("exp", -30*time.Second), del("auth_time"))}},
			base(func(a *oidc.AccessToken) {
				a.IssuedAt, a.Expires, a.Facts.AuthTime = testNow.Add(-5*time.Minute), testNow.Add(-30*time.Second), time.Time{}
			})},
		{accessCase{name: "iat 30s ahead (clock skew)", tok: oidctest.Token{Claims: edits(at("iat", 30*time.Second), at("auth_time", 30*time.Second))}},
			base(func(a *oidc.AccessToken) {
				a.IssuedAt, a.Facts.AuthTime = testNow.Add(30*time.Second), testNow.Add(30*time.Second)
			})},
		{accessCase{name: "nbf 30s ahead (clock skew)", tok: oidctest.Token{Claims: at("nbf", 30*time.Second)}}, base(nil)},
		{accessCase{name: "an old token, not yet expired", tok: oidctest.Token{Claims: edits(at("iat", -50*time.Minute), at("auth_time", -3*time.Hour), at("exp", 10*time.Minute))}},
			base(func(a *oidc.AccessToken) {
				a.IssuedAt, a.Facts.AuthTime, a.Expires = testNow.Add(-50*time.Minute), testNow.Add(-3*time.Hour), testNow.Add(10*time.Minute)
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := tc.verify(t)
			if err != nil {
				t.Fatalf("VerifyAccessToken: %v", err)
			}
			w := tc.want
			if !strings.HasPrefix(got.Facts.Issuer, "http://127.0.0.1:") || got.ID == "" {
				t.Errorf("Issuer %q, ID %q; want the test provider's URL and a jti", got.Facts.Issuer, got.ID)
			}
			w.Facts.Issuer, w.ID = got.Facts.Issuer, got.ID
			if !equalAccess(got, &w) {
				t.Errorf("VerifyAccessToken() =\n%+v; want\n%+v", *got, w)
			}
		})
	}
}

func equalAccess(a, b *oidc.AccessToken) bool {
	fa, fb := a.Facts, b.Facts
	return fa.Issuer == fb.Issuer && fa.Subject == fb.Subject && fa.Email == fb.Email && fa.ACR == fb.ACR &&
		slices.Equal(fa.AMR, fb.AMR) && slices.Equal(fa.ACRS, fb.ACRS) &&
		fa.AuthTime.Equal(fb.AuthTime) && fa.VerifiedAt.Equal(fb.VerifiedAt) &&
		a.SID == b.SID && a.ClientID == b.ClientID && slices.Equal(a.Scopes, b.Scopes) && a.JKT == b.JKT &&
		a.ID == b.ID && a.IssuedAt.Equal(b.IssuedAt) && a.Expires.Equal(b.Expires)
}

// TestVerifyAccessTokenRejects breaks one rule of RFC 9068 §4 (or of the
// claims stepgate reads) per case.
func TestVerifyAccessTokenRejects(t *testing.T) {
	attacker := otherKey(t)
	tooLong := strings.Repeat("x", 256)
	for _, tc := range []struct {
		accessCase
		wantErr string
	}{
		// Signature and algorithm: the ID token allow-list, keys from the
		// issuer's JWKS only (threat model case 57).
		{accessCase{name: "wrong signing key", tok: oidctest.Token{Key: attacker}}, "signature"},
		{accessCase{name: "alg none", tok: oidctest.Token{Alg: "none"}}, `unexpected signature algorithm "none"`},
		{accessCase{name: "HS256 keyed with the public key", tok: oidctest.Token{Alg: "HS256"}}, `unexpected signature algorithm "HS256"`},
		{accessCase{name: "HS256 though advertised", opts: oidctest.Options{Algs: []string{"HS256", "RS256"}}, tok: oidctest.Token{Alg: "HS256"}},
			`unexpected signature algorithm "HS256"`},
		{accessCase{name: "embedded jwk", tok: oidctest.Token{Key: attacker, Header: hset("jwk", map[string]any{
			"kty": "RSA", "kid": "test-key-1", "n": b64(attacker.N.Bytes()), "e": "AQAB"})}}, "signature"},
		{accessCase{name: "jku pointing elsewhere", tok: oidctest.Token{Key: attacker, Header: hset("jku", "https://evil.example.test/jwks")}}, "signature"},
		{accessCase{name: "payload swapped after signing", raw: func(t *testing.T, srv *oidctest.Server) string {
			good := mustAccessToken(t, srv, oidctest.Token{})
			evil := mustAccessToken(t, srv, oidctest.Token{Claims: set("acr", "urn:stepgate:mfa")})
			g, e := strings.Split(good, "."), strings.Split(evil, ".")
			return g[0] + "." + e[1] + "." + g[2]
		}}, "signature"},
		{accessCase{name: "token from another provider", raw: func(t *testing.T, _ *oidctest.Server) string {
			other := oidctest.NewServer(t, oidctest.Options{Now: clock}) // same shared key, own issuer
			return mustAccessToken(t, other, oidctest.Token{})
		}}, "iss: want"},
		{accessCase{name: "another provider's key and issuer", raw: func(t *testing.T, _ *oidctest.Server) string {
			other := oidctest.NewServer(t, oidctest.Options{Now: clock})
			return mustAccessToken(t, other, oidctest.Token{Key: attacker})
		}}, "signature"},

		// Explicit typing (RFC 9068 §4 step 1, RFC 8725 §3.11): an ID
		// token, which has typ JWT, is not an access token.
		{accessCase{name: "no typ", tok: oidctest.Token{Header: hdel("typ")}}, `typ header: want "at+jwt", got nothing`},
		{accessCase{name: "typ JWT (an ID token)", tok: oidctest.Token{Header: hset("typ", "JWT")}}, `typ header: want "at+jwt", got "JWT"`},
		{accessCase{name: "typ logout+jwt", tok: oidctest.Token{Header: hset("typ", "logout+jwt")}}, `got "logout+jwt"`},
		{accessCase{name: "typ dpop+jwt", tok: oidctest.Token{Header: hset("typ", "dpop+jwt")}}, `got "dpop+jwt"`},
		{accessCase{name: "typ with a suffix", tok: oidctest.Token{Header: hset("typ", "at+jwt+x")}}, `got "at+jwt+x"`},
		{accessCase{name: "typ other prefix", tok: oidctest.Token{Header: hset("typ", "text/at+jwt")}}, `got "text/at+jwt"`},
		{accessCase{name: "typ a number", tok: oidctest.Token{Header: hset("typ", 1)}}, "got 1"},
		{accessCase{name: "an ID token of the same provider", raw: func(t *testing.T, srv *oidctest.Server) string {
			// What the token endpoint would return as id_token, audience
			// and all: typ JWT.
			return signRaw(t, srv.Key, srv.KeyID, "JWT", []byte(`{"iss":"`+srv.URL+`","sub":"alice","aud":"`+oidctest.Audience+
				`","client_id":"stepgate","jti":"j","iat":1893553445,"exp":1893553745}`))
		}}, `typ header: want "at+jwt", got "JWT"`},

		// iss and aud.
		{accessCase{name: "wrong iss", tok: oidctest.Token{Claims: set("iss", "https://idp.evil.test")}}, `iss: want "http://127.0.0.1:`},
		{accessCase{name: "iss with a trailing slash", raw: func(t *testing.T, srv *oidctest.Server) string {
			return mustAccessToken(t, srv, oidctest.Token{Claims: set("iss", srv.URL+"/")})
		}}, "iss: want"},
		{accessCase{name: "no iss", tok: oidctest.Token{Claims: del("iss")}}, "iss: want"},
		{accessCase{name: "iss a number", tok: oidctest.Token{Claims: set("iss", 1)}}, "iss: want"},
		{accessCase{name: "token for another API", tok: oidctest.Token{Claims: set("aud", "https://other.example.test")}},
			`aud: want "https://api.example.test" among the audiences, got "https://other.example.test"`},
		{accessCase{name: "token for the gateway's client (like an ID token)", tok: oidctest.Token{Claims: set("aud", "stepgate")}}, `aud: want "https://api.example.test"`},
		{accessCase{name: "aud empty array", tok: oidctest.Token{Claims: set("aud", []string{})}}, "aud: want"},
		{accessCase{name: "aud a number", tok: oidctest.Token{Claims: set("aud", 7)}}, "aud: want a string or an array of strings, got 7"},
		{accessCase{name: "no aud", tok: oidctest.Token{Claims: del("aud")}}, "aud: want a string or an array of strings, got nothing"},
		{accessCase{name: "audience a prefix of aud", audience: "https://api.example", tok: oidctest.Token{}}, `aud: want "https://api.example" among`},

		// exp, nbf, iat.
		{accessCase{name: "no exp", tok: oidctest.Token{Claims: del("exp")}}, "exp: want the time it expires, got nothing"},
		{accessCase{name: "expired", tok: oidctest.Token{Claims: edits(at("iat", -10*time.Minute), at("exp", -61*time.Second))}},
			"expired at 2030-01-02T03:03:04Z, more than 1m0s before now 2030-01-02T03:04:05Z"},
		{accessCase{name: "exp a string", tok: oidctest.Token{Claims: set("exp", "soon")}}, "exp: want seconds since the epoch"},
		{accessCase{name: "exp null", tok: oidctest.Token{Claims: set("exp", nil)}}, "exp: want the time it expires"},
		{accessCase{name: "nbf in the future", tok: oidctest.Token{Claims: at("nbf", 2*time.Minute)}}, "not valid before 2030-01-02T03:06:05Z, more than 1m0s after now"},
		{accessCase{name: "nbf a string", tok: oidctest.Token{Claims: set("nbf", "now")}}, "nbf: want seconds since the epoch"},
		{accessCase{name: "no iat", tok: oidctest.Token{Claims: del("iat")}}, "iat: want the time it was issued, got nothing"},
		{accessCase{name: "iat in the future", tok: oidctest.Token{Claims: edits(at("iat", 2*time.Minute), del("auth_time"))}}, "iat 2030-01-02T03:06:05Z is more than 1m0s after now"},
		{accessCase{name: "iat a string", tok: oidctest.Token{Claims: set("iat", "1893553445")}}, "iat: want seconds since the epoch"},

		// Required identifiers (RFC 9068 §2.2).
		{accessCase{name: "no sub", tok: oidctest.Token{Claims: del("sub")}}, "sub: want a non-empty string, got nothing"},
		{accessCase{name: "empty sub", tok: oidctest.Token{Claims: set("sub", "")}}, "sub: want a non-empty string"},
		{accessCase{name: "sub a number", tok: oidctest.Token{Claims: set("sub", 5)}}, "sub: want a string, got 5"},
		{accessCase{name: "sub too long", tok: oidctest.Token{Claims: set("sub", tooLong)}}, "sub: want a string of at most 255 bytes"},
		{accessCase{name: "no client_id", tok: oidctest.Token{Claims: del("client_id")}}, "client_id: want a non-empty string, got nothing"},
		{accessCase{name: "client_id an array", tok: oidctest.Token{Claims: set("client_id", []string{"stepgate"})}}, "client_id: want a string"},
		{accessCase{name: "no jti", tok: oidctest.Token{Claims: del("jti")}}, "jti: want a non-empty string, got nothing"},
		{accessCase{name: "empty jti", tok: oidctest.Token{Claims: set("jti", "")}}, "jti: want a non-empty string"},

		// What the levels are judged on.
		{accessCase{name: "auth_time in the future", tok: oidctest.Token{Claims: at("auth_time", 2*time.Minute)}}, "auth_time 2030-01-02T03:06:05Z is more than 1m0s after now"},
		{accessCase{name: "auth_time after iat", tok: oidctest.Token{Claims: edits(at("iat", -5*time.Minute), at("auth_time", 0))}},
			"auth_time 2030-01-02T03:04:05Z is more than 1m0s after iat 2030-01-02T02:59:05Z"},
		{accessCase{name: "auth_time a string", tok: oidctest.Token{Claims: set("auth_time", "yesterday")}}, "auth_time: want seconds since the epoch"},
		{accessCase{name: "acr a number", tok: oidctest.Token{Claims: set("acr", 2)}}, "acr: want a string, got 2"},
		{accessCase{name: "acr an array", tok: oidctest.Token{Claims: set("acr", []string{"urn:stepgate:mfa"})}}, "acr: want a string"},
		{accessCase{name: "amr a string", tok: oidctest.Token{Claims: set("amr", "otp")}}, `amr: want an array of strings, got "otp"`},
		{accessCase{name: "amr with a number", tok: oidctest.Token{Claims: set("amr", []any{"pwd", 1})}}, "amr: want an array of strings"},
		{accessCase{name: "acrs a string", tok: oidctest.Token{Claims: set("acrs", "c1")}}, `acrs: want an array of strings, got "c1"`},
		{accessCase{name: "email a number", tok: oidctest.Token{Claims: set("email", 1)}}, "email: want a string, got 1"},
		{accessCase{name: "sid an object", tok: oidctest.Token{Claims: set("sid", map[string]any{})}}, "sid: want a string, got {}"},
		{accessCase{name: "sid too long", tok: oidctest.Token{Claims: set("sid", tooLong)}}, "sid: want a string of at most 255 bytes"},
		{accessCase{name: "scope an array", tok: oidctest.Token{Claims: set("scope", []string{"a"})}}, "scope: want a space-separated string"},
		{accessCase{name: "scp a number", tok: oidctest.Token{Claims: edits(del("scope"), set("scp", 1))}}, "scp: want a space-separated string or an array of strings, got 1"},

		// Sender constraint (RFC 9449 §6.1): a binding the gateway cannot
		// check must not pass as a bearer token.
		{accessCase{name: "cnf a string", tok: oidctest.Token{Claims: set("cnf", testJKT)}}, "cnf: want a JSON object"},
		{accessCase{name: "cnf.jkt a number", tok: oidctest.Token{Claims: set("cnf", map[string]any{"jkt": 1})}}, "cnf.jkt: want a string, got 1"},
		{accessCase{name: "cnf.jkt empty", tok: oidctest.Token{Claims: set("cnf", map[string]any{"jkt": ""})}}, "cnf.jkt: want a base64url SHA-256 thumbprint"},
		{accessCase{name: "cnf.jkt not base64url", tok: oidctest.Token{Claims: set("cnf", map[string]any{"jkt": strings.Repeat("+", 43)})}}, "cnf.jkt: want a base64url SHA-256 thumbprint"},
		{accessCase{name: "cnf.jkt too short", tok: oidctest.Token{Claims: set("cnf", map[string]any{"jkt": testJKT[:40]})}}, "cnf.jkt: want a base64url SHA-256 thumbprint"},
		{accessCase{name: "bound to a TLS certificate", tok: oidctest.Token{Claims: set("cnf", map[string]any{"x5t#S256": testJKT})}},
			`cnf: want a "jkt" member (a DPoP key binding), got only "x5t#S256"`},

		// Not a signed JWT at all.
		{accessCase{name: "empty", raw: rawToken("")}, "access token is empty"},
		{accessCase{name: "garbage", raw: rawToken("not a token")}, "want a compact JWS"},
		{accessCase{name: "two parts", raw: rawToken("eyJhbGciOiJSUzI1NiJ9.e30")}, "want a compact JWS"},
		{accessCase{name: "five parts (JWE)", raw: rawToken("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d")}, "want a compact JWS"},
		{accessCase{name: "JSON serialization", raw: rawToken(`{"payload":"e30","protected":"eyJhbGciOiJSUzI1NiJ9","signature":"c2ln"}`)}, "want a compact JWS"},
		{accessCase{name: "too long", raw: rawToken(strings.Repeat("a", 20000))}, "want at most 16384 bytes, got 20000"},
		{accessCase{name: "claims not an object", raw: func(t *testing.T, srv *oidctest.Server) string {
			return signRaw(t, srv.Key, srv.KeyID, "at+jwt", []byte(`["iss"]`))
		}}, "claims: want a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, raw, err := tc.verify(t)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("VerifyAccessToken() = %+v, %v; want error containing %q", got, err, tc.wantErr)
			}
			t.Log(err)
			if !errors.Is(err, oidc.ErrInvalidToken) {
				t.Errorf("error %q does not wrap ErrInvalidToken", err)
			}
			if !strings.HasPrefix(err.Error(), "oidc: access token") {
				t.Errorf("error %q lacks the prefix \"oidc: access token\"", err)
			}
			// The error may quote a claim, never the token itself.
			if len(raw) > 40 && strings.Contains(err.Error(), raw[:40]) {
				t.Errorf("error %q quotes the token", err)
			}
			if got != nil {
				t.Errorf("VerifyAccessToken returned %+v with an error", got)
			}
		})
	}
}

// An empty audience is the caller's mistake: it must not verify anything,
// and is not reported as the token's fault.
func TestVerifyAccessTokenNeedsAudience(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{Now: clock})
	c := newClient(t, srv)
	raw := mustAccessToken(t, srv, oidctest.Token{Claims: set("aud", "")})
	at, err := c.VerifyAccessToken(t.Context(), raw, "")
	if err == nil || errors.Is(err, oidc.ErrInvalidToken) || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("VerifyAccessToken(audience \"\") = %+v, %v; want an error about the audience, not ErrInvalidToken", at, err)
	}
}

// A flood of badly signed access tokens costs the provider at most one
// JWKS fetch (the key set is shared with ID and logout tokens).
func TestBadAccessTokensDoNotRefetchKeys(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{Now: clock})
	c := newClient(t, srv)
	good := mustAccessToken(t, srv, oidctest.Token{})
	if _, err := c.VerifyAccessToken(t.Context(), good, oidctest.Audience); err != nil {
		t.Fatalf("a good token: %v", err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	before := srv.JWKSHits()
	for range 50 {
		bad := mustAccessToken(t, srv, oidctest.Token{Key: other})
		if _, err := c.VerifyAccessToken(t.Context(), bad, oidctest.Audience); !errors.Is(err, oidc.ErrInvalidToken) {
			t.Fatalf("a token signed with another key: %v; want ErrInvalidToken", err)
		}
	}
	if n := srv.JWKSHits() - before; n > 1 {
		t.Errorf("50 badly signed tokens made %d key fetches; want at most 1", n)
	}
	if _, err := c.VerifyAccessToken(t.Context(), good, oidctest.Audience); err != nil {
		t.Errorf("a good token after the flood: %v", err)
	}
}

// FuzzVerifyAccessToken feeds VerifyAccessToken arbitrary strings against
// the test provider's fixed key set: it must never panic, fail with
// ErrInvalidToken and a nil result, and accept nothing but the provider's
// own token (the fuzzer cannot sign; at most it re-spells the token).
func FuzzVerifyAccessToken(f *testing.F) {
	srv := oidctest.NewServer(f, oidctest.Options{Now: clock, SID: "s-1"})
	c, err := oidc.New(f.Context(), config(srv))
	if err != nil {
		f.Fatal(err)
	}
	// A fixed jti, so every fuzzing worker's seed says the same.
	good := mustAccessToken(f, srv, oidctest.Token{Claims: edits(set("jti", "the-seed-token"), set("cnf", map[string]any{"jkt": testJKT}))})
	want, err := c.VerifyAccessToken(f.Context(), good, oidctest.Audience)
	if err != nil {
		f.Fatalf("VerifyAccessToken(the provider's own token) = %v", err)
	}
	parts := strings.Split(good, ".")
	for _, seed := range []string{
		good, good + "x", parts[0] + "." + parts[1] + ".", parts[0] + "..", "..", "a.b.c", "", " ",
		mustAccessToken(f, srv, oidctest.Token{Alg: "none"}), mustAccessToken(f, srv, oidctest.Token{Alg: "HS256"}),
		mustAccessToken(f, srv, oidctest.Token{Header: hset("typ", "JWT")}),
		"eyJhbGciOiJub25lIn0.e30.", `{"payload":"e30","signatures":[]}`, strings.Repeat(".", 5),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		at, err := c.VerifyAccessToken(t.Context(), raw, oidctest.Audience)
		if err == nil {
			if !equalAccess(at, want) {
				t.Fatalf("VerifyAccessToken(%q) = %+v; want an error, or %+v", raw, at, want)
			}
			return
		}
		if !errors.Is(err, oidc.ErrInvalidToken) {
			t.Errorf("error %q does not wrap ErrInvalidToken", err)
		}
		if at != nil {
			t.Errorf("VerifyAccessToken returned %+v with an error", at)
		}
	})
}

// BenchmarkVerifyAccessToken is what a bearer request costs on a cache
// miss: one RS256 access token, keys already fetched.
func BenchmarkVerifyAccessToken(b *testing.B) {
	srv := oidctest.NewServer(b, oidctest.Options{Now: clock})
	c, err := oidc.New(b.Context(), config(srv))
	if err != nil {
		b.Fatal(err)
	}
	raw := mustAccessToken(b, srv, oidctest.Token{Claims: set("acr", "urn:stepgate:mfa")})
	if _, err := c.VerifyAccessToken(b.Context(), raw, oidctest.Audience); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.VerifyAccessToken(b.Context(), raw, oidctest.Audience); err != nil {
			b.Fatal(err)
		}
	}
}

// A provider whose keys cannot be fetched is the provider's failure, not
// the token's: the error says unavailable (the gateway answers 503), never
// invalid (401, which makes a client throw a good token away).
func TestVerifyAccessTokenKeysUnreachable(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{Now: clock})
	c := newClient(t, srv)
	raw := mustAccessToken(t, srv, oidctest.Token{})
	srv.FailWith(http.StatusServiceUnavailable, "/jwks")
	_, err := c.VerifyAccessToken(t.Context(), raw, oidctest.Audience)
	if !errors.Is(err, oidc.ErrUnavailable) || errors.Is(err, oidc.ErrInvalidToken) {
		t.Fatalf("VerifyAccessToken with the JWKS down: %v; want ErrUnavailable, not ErrInvalidToken", err)
	}
}
