package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
)

// Attacks on the bearer-token API support, each written as a test that
// fails while the hole is open.

// newIntrospectionFixture is a gateway that reads tokens by asking fx.idp's
// introspection endpoint, as tokens says ("introspection" or "both"), with
// a token cache of size entries.
func newIntrospectionFixture(t *testing.T, tokens string, size int) *flowFixture {
	t.Helper()
	return newFlowFixture(t, oidctest.Options{Introspection: true}, func(c *Config) {
		rules := []policy.Rule{
			{Name: "public", Path: "/public/**", Access: policy.Public},
			{Name: "mfa", Path: "/api/**", Access: policy.Leveled, Level: mfa},
		}
		table, err := policy.NewTable(rules, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.Table = table
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		c.API = &APIConfig{Audience: apiAudience, Tokens: tokens, CacheSize: size}
	})
}

// mfaOpaque is an opaque MFA token for apiAudience that fx.idp's
// introspection endpoint answers for.
func mfaOpaque(fx *flowFixture) string {
	return fx.idp.OpaqueToken(func(c map[string]any) {
		c["aud"], c["acr"], c["amr"] = apiAudience, "urn:mfa", []string{"pwd", "otp"}
	})
}

// A once level admits one request per step-up. A token refreshed from the
// same authentication (same sub, sid, acr and auth_time; only jti, iat and
// exp new: RFC 9470 §6 and OIDC Core §12.2 keep auth_time unchanged) is not
// a new step-up, yet the once record is keyed by the token's hash: a client
// holding a refresh token pays as many times as it refreshes, after one MFA.
func TestAttackOnceLevelRefreshedToken(t *testing.T) {
	fx := newBearerFixture(t, nil)
	authTime := time.Now().Add(-10 * time.Second).Unix()
	fromOneLogin := func(iat time.Time) string {
		return fx.accessToken(func(_, c map[string]any) {
			c["auth_time"], c["iat"] = authTime, iat.Unix()
		})
	}
	first := fromOneLogin(time.Now().Add(-5 * time.Second))
	if resp := fx.bearer("POST", "/pay/1", "Bearer", first, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first payment: %d; want 200", resp.StatusCode)
	}
	for i, refreshed := range []string{fromOneLogin(time.Now().Add(-2 * time.Second)), fromOneLogin(time.Now())} {
		n := fx.upstreamCount()
		resp := fx.bearer("POST", fmt.Sprintf("/pay/%d", i+2), "Bearer", refreshed, nil)
		wantRefused(t, fmt.Sprintf("payment %d with a token refreshed from the same MFA", i+2), resp,
			http.StatusUnauthorized, `Bearer error="insufficient_user_authentication"`)
		if fx.upstreamCount() != n {
			t.Errorf("payment %d reached the app on the step-up spent by payment 1", i+2)
		}
	}
}

// credentialOf splits the scheme at a space only. "Bearer<TAB>token" (and
// other whitespace a backend's parser folds, such as strings.Fields or
// \s+) is then "another scheme", left to the cookie path and passed to the
// app unchanged: an unverified, forged token reaches an app told that the
// gateway verifies tokens, on the identity of whatever cookie came along
// (or none, on a public route).
func TestAttackBearerSchemeWithOtherWhitespace(t *testing.T) {
	fx := newBearerFixture(t, nil)
	forged, err := oidctest.Sign(map[string]any{"alg": "RS256", "typ": "at+jwt"},
		map[string]any{"iss": fx.idp.URL, "sub": "victim", "aud": apiAudience, "acr": "urn:mfa"}, oidctest.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range []string{
		"Bearer\t" + forged,
		"bearer\t" + forged,
		"DPoP\t" + forged,
		"Bearer\t " + forged,
	} {
		n := fx.upstreamCount()
		resp := fx.send(fx.h, "GET", "/public/x", map[string]string{"Authorization": auth, "Accept": "application/json"})
		if resp.StatusCode != http.StatusBadRequest || fx.upstreamCount() != n {
			t.Errorf("Authorization %.10q…: %d, forwarded %v; want 400 and not forwarded: a forged token must not reach the app",
				auth, resp.StatusCode, fx.upstreamCount() != n)
		}
	}
}

// The negative cache of inactive tokens shares the LRU with verified
// tokens: a client sending garbage evicts every good token, and each
// legitimate request then costs the provider an introspection again (the
// cache exists so that it does not).
func TestAttackIntrospectionGarbageEvictsGoodTokens(t *testing.T) {
	const size = 8
	fx := newIntrospectionFixture(t, tokensIntrospection, size)
	good := mfaOpaque(fx)
	if resp := fx.bearer("GET", "/api/x", "Bearer", good, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("opaque MFA token: %d; want 200", resp.StatusCode)
	}
	for i := range size {
		resp := fx.bearer("GET", "/api/x", "Bearer", fmt.Sprintf("garbage-%d", i), nil)
		wantRefused(t, "garbage token", resp, http.StatusUnauthorized, `Bearer error="invalid_token"`)
	}
	before := len(fx.idp.Introspections())
	if resp := fx.bearer("GET", "/api/x", "Bearer", good, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("opaque MFA token again: %d; want 200", resp.StatusCode)
	}
	if n := len(fx.idp.Introspections()) - before; n != 0 {
		t.Errorf("the good token was introspected %d more times after %d garbage tokens; want 0: garbage must not evict it", n, size)
	}
}

// Every distinct garbage token in introspection or both mode (any token
// without exactly two dots) costs a call to the provider's introspection
// endpoint, with no bound: the gateway relays an anonymous flood to the
// provider, and the negative cache, keyed by token, does not help against
// tokens that are all different. A gateway in front of a bank's API must
// cap what unauthenticated clients can make it ask.
func TestAttackIntrospectionFloodIsBounded(t *testing.T) {
	for _, mode := range []string{tokensIntrospection, tokensBoth} {
		t.Run(mode, func(t *testing.T) {
			fx := newIntrospectionFixture(t, mode, 0)
			const flood = 200
			for i := range flood {
				fx.bearer("GET", "/api/x", "Bearer", fmt.Sprintf("garbage-%d", i), nil)
			}
			// A generous budget: a tenth of the flood in one instant of the
			// gateway's clock.
			if n := len(fx.idp.Introspections()); n > flood/10 {
				t.Errorf("%d distinct garbage tokens at one instant made %d introspection calls; want at most %d", flood, n, flood/10)
			}
		})
	}
}
