package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Second-round attacks on the bearer-token API support, each written as a
// test that fails while the hole is open.

// The access_token-in-the-query refusal compares the key, once
// URL-decoded, with "access_token". claimedMethods already knows that
// backends read more spellings than that as one name (PHP turns "." and
// " " into "_" and reads "name[]" as name, some stacks decode twice), but
// hasQueryToken does not: each of these reaches the app as access_token,
// unchecked by the gateway.
func TestAttackQueryTokenOtherSpellings(t *testing.T) {
	fx := newBearerFixture(t, nil)
	for _, q := range []string{
		"?access.token=forged",        // PHP: "." read as "_"
		"?access+token=forged",        // PHP: " " read as "_"
		"?access%20token=forged",      // the same space, escaped
		"?access_token[]=forged",      // PHP, Rails: an array named access_token
		"?access_token%5B%5D=forged",  // the same, escaped
		"?access%255Ftoken=forged",    // decoded twice
		"?access_token%00x=forged",    // PHP ends the name at NUL
		"?a=1&access.token[x]=forged", // PHP: array access_token
	} {
		n := fx.upstreamCount()
		resp := fx.send(fx.h, "GET", "/public/x"+q, map[string]string{"Accept": "application/json"})
		if resp.StatusCode != http.StatusBadRequest || fx.upstreamCount() != n {
			t.Errorf("token in the query %s: %d, forwarded %v; want 400 and not forwarded", q, resp.StatusCode, fx.upstreamCount() != n)
		}
	}
}

// The introspection budget (100/s, burst 10) is one bucket for everyone,
// spent by tokens the gateway has never seen. An anonymous client sending
// a dozen distinct garbage strings a second spends it all, and every
// legitimate client with a new token then gets 503 for as long as the
// flood lasts: the limiter meant to protect the provider takes the API
// down. Garbage from one client must not make another client's good token
// fail.
func TestAttackIntrospectionLimiterStarvesGoodTokens(t *testing.T) {
	fx := newIntrospectionFixture(t, tokensIntrospection, 0)
	// The garbage comes from another address than the good token (an
	// X-Forwarded-For from an untrusted peer would be the attacker's to
	// rotate, so the peer's address is what tells clients apart).
	for i := range 20 {
		r := httptest.NewRequest("GET", "/api/x", nil)
		r.Host = gatewayURL.Host
		r.RemoteAddr = "198.51.100.66:4000"
		r.Header.Set("Authorization", fmt.Sprintf("Bearer garbage-%d", i))
		r.Header.Set("X-Forwarded-For", "203.0.113.66")
		fx.h.ServeHTTP(httptest.NewRecorder(), r)
	}
	good := mfaOpaque(fx)
	resp := fx.bearer("GET", "/api/x", "Bearer", good, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a good opaque MFA token from another client after 20 garbage tokens: %d (Retry-After %q); want 200",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
