package oidc_test

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
)

// logoutCase is one logout token from the test provider. The token is
// built by srv.LogoutToken(tok), or by raw when set.
type logoutCase struct {
	name string
	opts oidctest.Options
	tok  oidctest.Token
	raw  func(t *testing.T, srv *oidctest.Server) string
}

// verify serves a provider, builds the case's token and verifies it at
// testNow with a client of that provider.
func (lc logoutCase) verify(t *testing.T) (oidc.LogoutToken, string, error) {
	t.Helper()
	opts := lc.opts
	opts.Now = clock
	srv := oidctest.NewServer(t, opts)
	c := newClient(t, srv)
	var raw string
	if lc.raw != nil {
		raw = lc.raw(t, srv)
	} else {
		var err error
		if raw, err = srv.LogoutToken(lc.tok); err != nil {
			t.Fatalf("LogoutToken: %v", err)
		}
	}
	lt, err := c.VerifyLogoutToken(t.Context(), raw, testNow)
	return lt, raw, err
}

func TestVerifyLogoutToken(t *testing.T) {
	const sid = "08a5019c-17e1-4977-8f42-65a12843ea02"
	// A token without exp is accepted until iat + 5m + the clock skew; with
	// one, until the earlier of that and exp + skew.
	untilExp := func(d time.Duration) time.Time { return testNow.Add(d + time.Minute) }
	for _, tc := range []struct {
		logoutCase
		want oidc.LogoutToken // JTI is checked to be non-empty, not compared
	}{
		{logoutCase{name: "sub only"}, oidc.LogoutToken{Subject: "alice", IssuedAt: testNow, Expires: untilExp(2 * time.Minute)}},
		{logoutCase{name: "sid only", opts: oidctest.Options{SID: sid}, tok: oidctest.Token{Claims: del("sub")}},
			oidc.LogoutToken{SID: sid, IssuedAt: testNow, Expires: untilExp(2 * time.Minute)}},
		{logoutCase{name: "sid and sub", opts: oidctest.Options{SID: sid}},
			oidc.LogoutToken{Subject: "alice", SID: sid, IssuedAt: testNow, Expires: untilExp(2 * time.Minute)}},
		{logoutCase{name: "several audiences, ours among them", tok: oidctest.Token{Claims: set("aud", []string{"other-app", "stepgate"})}},
			oidc.LogoutToken{Subject: "alice", IssuedAt: testNow, Expires: untilExp(2 * time.Minute)}},
		{logoutCase{name: "no exp", tok: oidctest.Token{Claims: del("exp")}},
			oidc.LogoutToken{Subject: "alice", IssuedAt: testNow, Expires: untilExp(5 * time.Minute)}},
		{logoutCase{name: "exp later than the age bound", tok: oidctest.Token{Claims: at("exp", time.Hour)}},
			oidc.LogoutToken{Subject: "alice", IssuedAt: testNow, Expires: untilExp(5 * time.Minute)}},
		{logoutCase{name: "iat 4m ago", tok: oidctest.Token{Claims: edits(at("iat", -4*time.Minute), del("exp"))}},
			oidc.LogoutToken{Subject: "alice", IssuedAt: testNow.Add(-4 * time.Minute), Expires: untilExp(time.Minute)}},
		{logoutCase{name: "iat 30s ahead (clock skew)", tok: oidctest.Token{Claims: at("iat", 30*time.Second)}},
			oidc.LogoutToken{Subject: "alice", IssuedAt: testNow.Add(30 * time.Second), Expires: untilExp(2 * time.Minute)}},
		{logoutCase{name: "exp 30s ago (clock skew)", tok: oidctest.Token{Claims: edits(at("iat", -time.Minute), at("exp", -30*time.Second))}},
			oidc.LogoutToken{Subject: "alice", IssuedAt: testNow.Add(-time.Minute), Expires: untilExp(-30 * time.Second)}},
		{logoutCase{name: "typ application/logout+jwt", tok: oidctest.Token{Header: hset("typ", "application/logout+jwt")}},
			oidc.LogoutToken{Subject: "alice", IssuedAt: testNow, Expires: untilExp(2 * time.Minute)}},
		{logoutCase{name: "typ in capitals", tok: oidctest.Token{Header: hset("typ", "Logout+JWT")}},
			oidc.LogoutToken{Subject: "alice", IssuedAt: testNow, Expires: untilExp(2 * time.Minute)}},
		{logoutCase{name: "no typ", tok: oidctest.Token{Header: hdel("typ")}},
			oidc.LogoutToken{Subject: "alice", IssuedAt: testNow, Expires: untilExp(2 * time.Minute)}},
		{logoutCase{name: "events member with content", tok: oidctest.Token{Claims: set("events",
			map[string]any{oidctest.BackchannelLogoutEvent: map[string]any{"reason": "x"}, "urn:other": true})}},
			oidc.LogoutToken{Subject: "alice", IssuedAt: testNow, Expires: untilExp(2 * time.Minute)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := tc.verify(t)
			if err != nil {
				t.Fatalf("VerifyLogoutToken: %v", err)
			}
			if got.JTI == "" {
				t.Errorf("JTI is empty")
			}
			w := tc.want
			if got.Subject != w.Subject || got.SID != w.SID || !got.IssuedAt.Equal(w.IssuedAt) || !got.Expires.Equal(w.Expires) {
				t.Errorf("VerifyLogoutToken() = %+v; want %+v", got, w)
			}
		})
	}
}

// TestVerifyLogoutTokenRejects breaks one rule of OIDC Back-Channel Logout
// 1.0 §2.4/§2.6 per case.
func TestVerifyLogoutTokenRejects(t *testing.T) {
	attacker := otherKey(t)
	tooLong := strings.Repeat("x", 256)
	for _, tc := range []struct {
		logoutCase
		wantErr string
	}{
		// Signature and algorithm: the ID token allow-list, keys from the
		// issuer's JWKS only.
		{logoutCase{name: "wrong signing key", tok: oidctest.Token{Key: attacker}}, "signature"},
		{logoutCase{name: "alg none", tok: oidctest.Token{Alg: "none"}}, `unexpected signature algorithm "none"`},
		{logoutCase{name: "HS256 keyed with the public key", tok: oidctest.Token{Alg: "HS256"}}, `unexpected signature algorithm "HS256"`},
		{logoutCase{name: "HS256 though advertised", opts: oidctest.Options{Algs: []string{"HS256", "RS256"}}, tok: oidctest.Token{Alg: "HS256"}},
			`unexpected signature algorithm "HS256"`},
		{logoutCase{name: "embedded jwk", tok: oidctest.Token{Key: attacker, Header: hset("jwk", map[string]any{
			"kty": "RSA", "kid": "test-key-1", "n": b64(attacker.N.Bytes()), "e": "AQAB"})}}, "signature"},
		{logoutCase{name: "payload swapped after signing", raw: func(t *testing.T, srv *oidctest.Server) string {
			good := mustLogoutToken(t, srv, oidctest.Token{})
			evil := mustLogoutToken(t, srv, oidctest.Token{Claims: set("sub", "bob")})
			g, e := strings.Split(good, "."), strings.Split(evil, ".")
			return g[0] + "." + e[1] + "." + g[2]
		}}, "signature"},
		{logoutCase{name: "token from another provider", raw: func(t *testing.T, _ *oidctest.Server) string {
			other := oidctest.NewServer(t, oidctest.Options{Now: clock}) // same shared key, own issuer
			return mustLogoutToken(t, other, oidctest.Token{})
		}}, "iss: want"},
		{logoutCase{name: "another provider's key and issuer", raw: func(t *testing.T, _ *oidctest.Server) string {
			other := oidctest.NewServer(t, oidctest.Options{Now: clock})
			return mustLogoutToken(t, other, oidctest.Token{Key: attacker})
		}}, "signature"},

		// Explicit typing (§2.4): an ID token or access token is not a
		// logout token.
		{logoutCase{name: "typ JWT", tok: oidctest.Token{Header: hset("typ", "JWT")}}, `typ header: want "logout+jwt", got "JWT"`},
		{logoutCase{name: "typ at+jwt", tok: oidctest.Token{Header: hset("typ", "at+jwt")}}, `got "at+jwt"`},
		{logoutCase{name: "typ with a suffix", tok: oidctest.Token{Header: hset("typ", "logout+jwt+x")}}, `got "logout+jwt+x"`},
		{logoutCase{name: "typ other prefix", tok: oidctest.Token{Header: hset("typ", "text/logout+jwt")}}, `got "text/logout+jwt"`},
		{logoutCase{name: "typ a number", tok: oidctest.Token{Header: hset("typ", 1)}}, `got 1`},

		// iss and aud.
		{logoutCase{name: "wrong iss", tok: oidctest.Token{Claims: set("iss", "https://idp.evil.test")}}, `iss: want "http://127.0.0.1:`},
		{logoutCase{name: "iss with a trailing slash", raw: func(t *testing.T, srv *oidctest.Server) string {
			return mustLogoutToken(t, srv, oidctest.Token{Claims: set("iss", srv.URL+"/")})
		}}, "iss: want"},
		{logoutCase{name: "no iss", tok: oidctest.Token{Claims: del("iss")}}, "iss: want"},
		{logoutCase{name: "wrong aud", tok: oidctest.Token{Claims: set("aud", "other-app")}}, `aud: want "stepgate" among the audiences, got "other-app"`},
		{logoutCase{name: "aud array without us", tok: oidctest.Token{Claims: set("aud", []string{"a", "b"})}}, `aud: want "stepgate"`},
		{logoutCase{name: "aud empty array", tok: oidctest.Token{Claims: set("aud", []string{})}}, `aud: want "stepgate"`},
		{logoutCase{name: "aud a number", tok: oidctest.Token{Claims: set("aud", 7)}}, "aud: want a string or an array of strings, got 7"},
		{logoutCase{name: "aud array of numbers", tok: oidctest.Token{Claims: set("aud", []int{1})}}, "aud: want a string or an array of strings"},
		{logoutCase{name: "no aud", tok: oidctest.Token{Claims: del("aud")}}, "aud: want a string or an array of strings, got nothing"},

		// iat and exp.
		{logoutCase{name: "no iat", tok: oidctest.Token{Claims: del("iat")}}, "no iat"},
		{logoutCase{name: "iat a string", tok: oidctest.Token{Claims: set("iat", "1893553445")}}, "iat: want seconds since the epoch"},
		{logoutCase{name: "stale iat", tok: oidctest.Token{Claims: edits(at("iat", -7*time.Minute), del("exp"))}}, "iat 2030-01-02T02:57:05Z is more than 6m0s before now"},
		{logoutCase{name: "future iat", tok: oidctest.Token{Claims: at("iat", 2*time.Minute)}}, "iat 2030-01-02T03:06:05Z is more than 1m0s after now"},
		{logoutCase{name: "expired exp", tok: oidctest.Token{Claims: edits(at("iat", -3*time.Minute), at("exp", -2*time.Minute))}}, "expired at 2030-01-02T03:02:05Z"},
		{logoutCase{name: "exp before iat", tok: oidctest.Token{Claims: at("exp", -10*time.Second)}}, "exp 2030-01-02T03:03:55Z is before iat"},
		{logoutCase{name: "exp a string", tok: oidctest.Token{Claims: set("exp", "soon")}}, "exp: want seconds since the epoch"},

		// jti.
		{logoutCase{name: "no jti", tok: oidctest.Token{Claims: del("jti")}}, "jti: want a non-empty string, got nothing"},
		{logoutCase{name: "empty jti", tok: oidctest.Token{Claims: set("jti", "")}}, "jti: want a non-empty string"},
		{logoutCase{name: "jti a number", tok: oidctest.Token{Claims: set("jti", 12)}}, "jti: want a string, got 12"},
		{logoutCase{name: "jti too long", tok: oidctest.Token{Claims: set("jti", tooLong)}}, "jti: want a string of at most 255 bytes, got 256 bytes"},

		// events (§2.4): an object with the back-channel logout member,
		// whose value is an object.
		{logoutCase{name: "no events", tok: oidctest.Token{Claims: del("events")}}, "events: want a JSON object, got nothing"},
		{logoutCase{name: "events a string", tok: oidctest.Token{Claims: set("events", oidctest.BackchannelLogoutEvent)}}, "events: want a JSON object"},
		{logoutCase{name: "events an array", tok: oidctest.Token{Claims: set("events", []string{oidctest.BackchannelLogoutEvent})}}, "events: want a JSON object"},
		{logoutCase{name: "events without the member", tok: oidctest.Token{Claims: set("events", map[string]any{"urn:other": map[string]any{}})}},
			`events: want member "http://schemas.openid.net/event/backchannel-logout"`},
		{logoutCase{name: "events member null", tok: oidctest.Token{Claims: set("events", map[string]any{oidctest.BackchannelLogoutEvent: nil})}},
			"backchannel-logout: want a JSON object, got null"},
		{logoutCase{name: "events member a string", tok: oidctest.Token{Claims: set("events", map[string]any{oidctest.BackchannelLogoutEvent: "{}"})}},
			"backchannel-logout: want a JSON object"},
		{logoutCase{name: "events member true", tok: oidctest.Token{Claims: set("events", map[string]any{oidctest.BackchannelLogoutEvent: true})}},
			"backchannel-logout: want a JSON object, got true"},

		// nonce (§2.4): an ID token must never pass as a logout token.
		{logoutCase{name: "with nonce", tok: oidctest.Token{Claims: set("nonce", "n-0S6_WzA2Mj")}}, "nonce: want no nonce claim"},
		{logoutCase{name: "with nonce null", tok: oidctest.Token{Claims: set("nonce", nil)}}, "nonce: want no nonce claim"},
		{logoutCase{name: "with empty nonce", tok: oidctest.Token{Claims: set("nonce", "")}}, "nonce: want no nonce claim"},

		// sub and sid.
		{logoutCase{name: "neither sid nor sub", tok: oidctest.Token{Claims: del("sub")}}, "want a sub or a sid claim, got neither"},
		{logoutCase{name: "empty sub, no sid", tok: oidctest.Token{Claims: set("sub", "")}}, "want a sub or a sid claim, got neither"},
		{logoutCase{name: "sub a number", tok: oidctest.Token{Claims: set("sub", 5)}}, "sub: want a string, got 5"},
		{logoutCase{name: "sub too long", tok: oidctest.Token{Claims: set("sub", tooLong)}}, "sub: want a string of at most 255 bytes"},
		{logoutCase{name: "sid an object", tok: oidctest.Token{Claims: set("sid", map[string]any{})}}, "sid: want a string, got {}"},
		{logoutCase{name: "sid too long", tok: oidctest.Token{Claims: set("sid", tooLong)}}, "sid: want a string of at most 255 bytes"},

		// Not a signed JWT at all.
		{logoutCase{name: "empty", raw: rawToken("")}, "logout token is empty"},
		{logoutCase{name: "garbage", raw: rawToken("not a token")}, "want a compact JWS"},
		{logoutCase{name: "two parts", raw: rawToken("eyJhbGciOiJSUzI1NiJ9.e30")}, "want a compact JWS"},
		{logoutCase{name: "five parts (JWE)", raw: rawToken("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d")}, "want a compact JWS"},
		{logoutCase{name: "bad base64", raw: rawToken("eyJ!.e30.c2ln")}, "want a compact JWS"},
		{logoutCase{name: "JSON serialization", raw: rawToken(`{"payload":"e30","protected":"eyJhbGciOiJSUzI1NiJ9","signature":"c2ln"}`)}, "want a compact JWS"},
		{logoutCase{name: "header not JSON", raw: rawToken(b64([]byte("alg")) + ".e30.c2ln")}, "want a compact JWS"},
		{logoutCase{name: "too long", raw: rawToken(strings.Repeat("a", 20000))}, "want at most 16384 bytes, got 20000"},
		{logoutCase{name: "claims not an object", raw: func(t *testing.T, srv *oidctest.Server) string {
			return signRaw(t, srv.Key, srv.KeyID, "logout+jwt", []byte(`["iss"]`))
		}}, "claims: want a JSON object"},
		{logoutCase{name: "claims not JSON", raw: func(t *testing.T, srv *oidctest.Server) string {
			return signRaw(t, srv.Key, srv.KeyID, "logout+jwt", []byte(`iss=me`))
		}}, "claims: want a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, raw, err := tc.verify(t)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("VerifyLogoutToken() = %+v, %v; want error containing %q", got, err, tc.wantErr)
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "oidc: logout token") {
				t.Errorf("error %q lacks the prefix \"oidc: logout token\"", err)
			}
			// The error may quote a claim, never the token itself.
			if len(raw) > 40 && strings.Contains(err.Error(), raw[:40]) {
				t.Errorf("error %q quotes the token", err)
			}
			if got != (oidc.LogoutToken{}) {
				t.Errorf("VerifyLogoutToken returned %+v with an error", got)
			}
		})
	}
}

// FuzzVerifyLogoutToken feeds VerifyLogoutToken arbitrary strings: it must
// never panic, and fail with a prefixed error and a zero LogoutToken. What
// lies behind the signature check is fuzzed by FuzzLogoutClaims.
func FuzzVerifyLogoutToken(f *testing.F) {
	srv := oidctest.NewServer(f, oidctest.Options{Now: clock, SID: "s-1"})
	c, err := oidc.New(f.Context(), config(srv))
	if err != nil {
		f.Fatal(err)
	}
	good, err := srv.LogoutToken(oidctest.Token{})
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(good, ".")
	for _, seed := range []string{
		good, good + "x", parts[0] + "." + parts[1] + ".", parts[0] + "..", "..", "a.b.c", "", " ",
		"eyJhbGciOiJub25lIn0.e30.", `{"payload":"e30","signatures":[]}`, strings.Repeat(".", 5),
	} {
		f.Add(seed)
	}
	want, err := c.VerifyLogoutToken(f.Context(), good, testNow)
	if err != nil {
		f.Fatalf("VerifyLogoutToken(the provider's own token) = %v", err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		lt, err := c.VerifyLogoutToken(t.Context(), raw, testNow)
		if err == nil {
			// The fuzzer cannot forge a signature; at most it re-spells the
			// provider's token (base64 with other unused bits), which says
			// the same and has the same jti.
			if lt != want {
				t.Fatalf("VerifyLogoutToken(%q) = %+v; want an error, or %+v", raw, lt, want)
			}
			return
		}
		if !strings.HasPrefix(err.Error(), "oidc: logout token") {
			t.Errorf("error %q lacks the prefix", err)
		}
		if lt != (oidc.LogoutToken{}) {
			t.Errorf("VerifyLogoutToken returned %+v with an error", lt)
		}
	})
}

func mustLogoutToken(t *testing.T, srv *oidctest.Server, tok oidctest.Token) string {
	t.Helper()
	raw, err := srv.LogoutToken(tok)
	if err != nil {
		t.Fatalf("LogoutToken: %v", err)
	}
	return raw
}

func rawToken(s string) func(*testing.T, *oidctest.Server) string {
	return func(*testing.T, *oidctest.Server) string { return s }
}

// signRaw signs payload as it is, which oidctest.Sign (taking a claims map)
// cannot: a payload that is not a JSON object. typ "" leaves typ out.
func signRaw(t testing.TB, key *rsa.PrivateKey, kid, typ string, payload []byte) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func hset(k string, v any) func(map[string]any) {
	return func(h map[string]any) { h[k] = v }
}

func hdel(k string) func(map[string]any) {
	return func(h map[string]any) { delete(h, k) }
}

// Tokens whose signature no known key verifies make the gateway fetch the
// provider's keys again (they may have rotated), but at most every few
// seconds: anyone can post logout tokens, and each must not cost the
// provider a request.
func TestBadSignaturesDoNotRefetchKeys(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{Now: func() time.Time { return testNow }})
	c, err := oidc.New(t.Context(), config(srv))
	if err != nil {
		t.Fatal(err)
	}
	good, err := srv.LogoutToken(oidctest.Token{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyLogoutToken(t.Context(), good, testNow); err != nil {
		t.Fatalf("a good token: %v", err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	before := srv.JWKSHits()
	for range 50 {
		bad, err := srv.LogoutToken(oidctest.Token{Key: other})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.VerifyLogoutToken(t.Context(), bad, testNow); err == nil {
			t.Fatal("a token signed with another key verified")
		}
	}
	if n := srv.JWKSHits() - before; n > 1 {
		t.Errorf("50 badly signed tokens made %d key fetches; want at most 1", n)
	}
	if _, err := c.VerifyLogoutToken(t.Context(), good, testNow); err != nil {
		t.Errorf("a good token after the flood: %v", err)
	}
}
