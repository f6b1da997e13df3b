package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stepgate/stepgate/dpop"
	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/store"
)

const apiAudience = "https://api.gateway.test"

var mfaOnceAPI = &policy.Level{Name: "mfa_once", ACRValues: []string{"urn:mfa"}, Once: true,
	SatisfiedBy: []policy.Alternative{{ACR: []string{"urn:mfa"}}}}

// claimsLevel is a level expressed as a claims request, as Entra ID's
// authentication contexts are.
var claimsLevel = &policy.Level{Name: "c1", Claims: `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`,
	SatisfiedBy: []policy.Alternative{{ACRS: []string{"c1"}}}}

// newBearerFixture is a gateway that accepts access tokens of fx.idp for
// apiAudience, in front of a recording app.
func newBearerFixture(t *testing.T, edit func(*APIConfig)) *flowFixture {
	t.Helper()
	return newFlowFixture(t, oidctest.Options{}, func(c *Config) {
		rules := []policy.Rule{
			{Name: "public", Path: "/public/**", Access: policy.Public},
			{Name: "reports", Path: "/reports/**", Access: policy.Leveled, Level: mfa, Report: true},
			{Name: "pay", Path: "/pay/**", Access: policy.Leveled, Level: mfaOnceAPI},
			{Name: "confirm", Path: "/confirm/**", Methods: []string{"POST"}, Access: policy.Leveled, Level: mfa,
				Confirm: &policy.Confirm{Title: "Send", MaxBody: 1024, TTL: time.Minute}},
			{Name: "bound", Path: "/bound/**", Access: policy.Leveled, Level: mfa},
			{Name: "unbound", Path: "/unbound/**", Methods: []string{"GET"}, Access: policy.Authenticated},
			{Name: "unbound-write", Path: "/unbound/**", Methods: []string{"DELETE"}, Access: policy.Authenticated},
			{Name: "entra", Path: "/entra/**", Access: policy.Leveled, Level: claimsLevel},
			{Name: "blocked", Path: "/blocked/**", Access: policy.Denied},
			{Name: "mfa", Path: "/api/**", Access: policy.Leveled, Level: mfa},
		}
		table, err := policy.NewTable(rules, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.Table = table
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		c.Levels = append(c.Levels, mfaOnceAPI, claimsLevel)
		c.API = &APIConfig{Audience: apiAudience, RouteDPoP: map[string]string{"bound": dpopRequired, "unbound": dpopOff, "unbound-write": dpopRequired}}
		if edit != nil {
			edit(c.API)
		}
	})
}

// accessToken signs an RFC 9068 access token of fx.idp for an MFA login
// just now; edit changes its header and claims before signing.
func (fx *flowFixture) accessToken(edit func(header, claims map[string]any)) string {
	fx.t.Helper()
	now := time.Now()
	header := map[string]any{"alg": "RS256", "kid": fx.idp.KeyID, "typ": "at+jwt"}
	claims := map[string]any{
		"iss": fx.idp.URL, "sub": "alice", "aud": apiAudience, "client_id": "mobile-app",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": rand.Text(),
		"acr": "urn:mfa", "amr": []string{"pwd", "otp"}, "auth_time": now.Unix(), "sid": "idp-sid-1", "scope": "payments",
	}
	if edit != nil {
		edit(header, claims)
	}
	tok, err := oidctest.Sign(header, claims, fx.idp.Key)
	if err != nil {
		fx.t.Fatal(err)
	}
	return tok
}

// weakToken is an access token of a password-only login.
func weakToken(_, c map[string]any) { c["acr"], c["amr"] = "urn:pwd", []string{"pwd"} }

// bearerGet sends a GET with the token, and extra headers, to fx's gateway.
func (fx *flowFixture) bearer(method, target, scheme, token string, hdr map[string]string) *http.Response {
	fx.t.Helper()
	all := map[string]string{"Authorization": scheme + " " + token, "Accept": "application/json"}
	for k, v := range hdr {
		all[k] = v
	}
	return fx.send(fx.h, method, target, all)
}

func wantRefused(t *testing.T, name string, resp *http.Response, status int, challenge string) {
	t.Helper()
	got := resp.Header.Get("WWW-Authenticate")
	// A challenge without its scheme may be in either.
	match := strings.HasPrefix(got, challenge) || strings.HasPrefix(got, schemeBearer+" "+challenge) || strings.HasPrefix(got, schemeDPoP+" "+challenge)
	if resp.StatusCode != status || !match {
		t.Errorf("%s: %d %q; want %d with a challenge starting %q", name, resp.StatusCode, got, status, challenge)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		t.Errorf("%s: redirected to %s; a bearer request is never redirected", name, loc)
	}
}

func TestBearerStepUpChallenge(t *testing.T) {
	fx := newBearerFixture(t, nil)

	weak := fx.accessToken(weakToken)
	resp := fx.bearer("GET", "/api/accounts", "Bearer", weak, nil)
	want := `Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:mfa", max_age=900`
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("weak token on an mfa route: %d %q; want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["error"] != "insufficient_user_authentication" || body["level"] != "mfa" {
		t.Errorf("body %v (%v); want the error and the level", body, err)
	}
	if fx.upstreamCount() != 0 {
		t.Fatalf("the app got %d requests; want none", fx.upstreamCount())
	}

	// After the step-up at the provider, the new token passes, and the app
	// sees who it is and the token unchanged.
	strong := fx.accessToken(nil)
	resp = fx.bearer("GET", "/api/accounts", "Bearer", strong, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mfa token: %d %s; want 200", resp.StatusCode, readBody(t, resp))
	}
	up := fx.lastUpstream()
	if up.Header.Get(HeaderSubject) != "alice" || up.Header.Get(HeaderACR) != "urn:mfa" || up.Header.Get("Authorization") != "Bearer "+strong {
		t.Errorf("app got subject %q acr %q authorization %q; want alice, urn:mfa and the token unchanged",
			up.Header.Get(HeaderSubject), up.Header.Get(HeaderACR), up.Header.Get("Authorization"))
	}

	// A token too old for max_age steps up too.
	old := fx.accessToken(func(_, c map[string]any) { c["auth_time"] = time.Now().Add(-time.Hour).Unix() })
	wantRefused(t, "stale auth_time", fx.bearer("GET", "/api/accounts", "Bearer", old, nil), http.StatusUnauthorized, `Bearer error="insufficient_user_authentication"`)

	// A level that is a claims request gets Entra ID's challenge.
	wantRefused(t, "claims level", fx.bearer("GET", "/entra/x", "Bearer", strong, nil), http.StatusUnauthorized,
		`Bearer error="insufficient_claims", error_description="More claims are required", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"`)

	// A browser navigation with a token is still an API call: no redirect.
	resp = fx.send(fx.h, "GET", "/api/accounts", map[string]string{"Authorization": "Bearer " + weak, "Accept": "text/html"})
	wantRefused(t, "navigation with a token", resp, http.StatusUnauthorized, `Bearer error="insufficient_user_authentication"`)

	// Deny is a 403 whatever the token.
	if resp := fx.bearer("GET", "/blocked/x", "Bearer", strong, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("deny route: %d; want 403", resp.StatusCode)
	}
	fx.logOmits(t, weak, strong, old)
}

func TestBearerInvalidTokens(t *testing.T) {
	fx := newBearerFixture(t, nil)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signedBy := func(key *rsa.PrivateKey, edit func(h, c map[string]any)) string {
		h := map[string]any{"alg": "RS256", "kid": fx.idp.KeyID, "typ": "at+jwt"}
		c := map[string]any{"iss": fx.idp.URL, "sub": "alice", "aud": apiAudience, "client_id": "x",
			"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(), "jti": rand.Text(), "acr": "urn:mfa"}
		if edit != nil {
			edit(h, c)
		}
		tok, err := oidctest.Sign(h, c, key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"expired", fx.accessToken(func(_, c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })},
		{"wrong audience", fx.accessToken(func(_, c map[string]any) { c["aud"] = "https://other-api.test" })},
		{"wrong issuer", fx.accessToken(func(_, c map[string]any) { c["iss"] = "https://evil.test/" })},
		{"alg none", fx.accessToken(func(h, _ map[string]any) { h["alg"] = "none" })},
		{"HS256 keyed with the public key", fx.accessToken(func(h, _ map[string]any) { h["alg"] = "HS256" })},
		{"typ missing", fx.accessToken(func(h, _ map[string]any) { delete(h, "typ") })},
		{"typ JWT (an ID token's)", fx.accessToken(func(h, _ map[string]any) { h["typ"] = "JWT" })},
		{"another provider's token", signedBy(other, func(_, c map[string]any) { c["iss"] = "https://other-idp.test/" })},
		{"another key under this issuer", signedBy(other, nil)},
		{"not a JWT", "opaque-garbage"},
		{"tampered payload", func() string {
			p := strings.Split(fx.accessToken(weakToken), ".")
			good := strings.Split(fx.accessToken(nil), ".")
			return p[0] + "." + good[1] + "." + p[2]
		}()},
	} {
		for _, path := range []string{"/api/x", "/public/x"} {
			resp := fx.bearer("GET", path, "Bearer", tc.token, nil)
			wantRefused(t, tc.name+" on "+path, resp, http.StatusUnauthorized, `Bearer error="invalid_token"`)
		}
	}
	if n := fx.upstreamCount(); n != 0 {
		t.Errorf("the app got %d requests with bad tokens; want none", n)
	}

	// RFC 6750's query form is refused, with or without a header: the app
	// might read it, and the gateway checks the header only.
	for _, q := range []string{"?access_token=forged", "?a=1&ACCESS_TOKEN=forged", "?x=1;access%5Ftoken=forged"} {
		for _, auth := range []string{"", "Bearer " + fx.accessToken(nil)} {
			hdr := map[string]string{"Accept": "application/json"}
			if auth != "" {
				hdr["Authorization"] = auth
			}
			resp := fx.send(fx.h, "GET", "/public/x"+q, hdr)
			wantRefused(t, "token in the query "+q, resp, http.StatusBadRequest, `Bearer error="invalid_request"`)
		}
	}
	for _, auth := range []string{"Bearer", "Bearer a b", "DPoP ", "Bearer x\"y"} {
		resp := fx.send(fx.h, "GET", "/api/x", map[string]string{"Authorization": auth})
		wantRefused(t, "malformed "+auth, resp, http.StatusBadRequest, `error="invalid_request"`)
	}
}

// A request with both a session cookie and a token is decided on the token
// alone: a strong session cannot lift a weak token, and the app sees the
// token's subject.
func TestBearerWinsOverCookie(t *testing.T) {
	fx := newBearerFixture(t, nil)
	fx.signIn(policy.Facts{Subject: "bob", ACR: "urn:mfa", AMR: []string{"otp"}, AuthTime: time.Now()})
	if resp := fx.get("/api/x", jsonHdr); resp.StatusCode != http.StatusOK {
		t.Fatalf("the session alone: %d; want 200", resp.StatusCode)
	}
	wantRefused(t, "mfa cookie, weak token", fx.bearer("GET", "/api/x", "Bearer", fx.accessToken(weakToken), nil),
		http.StatusUnauthorized, `Bearer error="insufficient_user_authentication"`)

	resp := fx.bearer("GET", "/api/x", "Bearer", fx.accessToken(nil), nil)
	if resp.StatusCode != http.StatusOK || fx.lastUpstream().Header.Get(HeaderSubject) != "alice" {
		t.Errorf("mfa token with bob's cookie: %d, subject %q; want 200 for alice", resp.StatusCode, fx.lastUpstream().Header.Get(HeaderSubject))
	}
}

func TestBearerCacheAndRevocation(t *testing.T) {
	fx := newBearerFixture(t, nil)
	tok := fx.accessToken(nil)
	for range 3 {
		if resp := fx.bearer("GET", "/api/x", "Bearer", tok, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("token: %d; want 200", resp.StatusCode)
		}
	}
	if hits := fx.idp.JWKSHits(); hits != 1 {
		t.Errorf("the provider's keys were fetched %d times; want once", hits)
	}

	// The cache never outlives the token: once exp has passed on the
	// gateway's clock, the token is refused though it is cached.
	fx.clock.Advance(6 * time.Minute)
	wantRefused(t, "cached but expired", fx.bearer("GET", "/api/x", "Bearer", tok, nil), http.StatusUnauthorized, `Bearer error="invalid_token"`)
	fx.clock.Advance(-6 * time.Minute)

	// Revoking the provider session, or the subject, ends its tokens at once,
	// cached or not.
	if err := fx.h.follower.Revoke(t.Context(), store.Revocation{IdPSID: "idp-sid-1", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "idp session revoked", fx.bearer("GET", "/api/x", "Bearer", tok, nil), http.StatusUnauthorized, `Bearer error="invalid_token"`)
	other := fx.accessToken(func(_, c map[string]any) { c["sid"] = "idp-sid-2"; c["iat"] = time.Now().Add(-time.Minute).Unix() })
	if resp := fx.bearer("GET", "/api/x", "Bearer", other, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("another session's token: %d; want 200", resp.StatusCode)
	}
	if err := fx.h.follower.Revoke(t.Context(), store.Revocation{Subject: "alice", Before: time.Now(), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "subject revoked", fx.bearer("GET", "/api/x", "Bearer", other, nil), http.StatusUnauthorized, `Bearer error="invalid_token"`)
}

func TestBearerRoutesThatNeedASession(t *testing.T) {
	fx := newBearerFixture(t, nil)
	tok := fx.accessToken(nil)
	// A once level admits one request per step-up; the next needs a new
	// step-up, and so a token of a new authentication.
	if resp := fx.bearer("POST", "/pay/1", "Bearer", tok, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first payment: %d; want 200", resp.StatusCode)
	}
	wantRefused(t, "second payment with the same token", fx.bearer("POST", "/pay/2", "Bearer", tok, nil),
		http.StatusUnauthorized, `Bearer error="insufficient_user_authentication"`)
	stepped := fx.accessToken(func(_, c map[string]any) { c["auth_time"] = time.Now().Add(time.Second).Unix() })
	if resp := fx.bearer("POST", "/pay/2", "Bearer", stepped, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("payment with the token of a new step-up: %d; want 200", resp.StatusCode)
	}

	// A held transaction is confirmed in a browser: never through a token.
	n := fx.upstreamCount()
	if resp := fx.bearer("POST", "/confirm/1", "Bearer", tok, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("confirm route with a token: %d; want 403", resp.StatusCode)
	}
	if fx.upstreamCount() != n {
		t.Errorf("a confirm route's request with a token reached the app")
	}

	// Report-only: forwarded and marked.
	resp := fx.bearer("GET", "/reports/1", "Bearer", fx.accessToken(weakToken), nil)
	if resp.StatusCode != http.StatusOK || fx.lastUpstream().Header.Get(HeaderReport) != "would-step-up" {
		t.Errorf("report-only route: %d, %s %q; want 200 marked would-step-up", resp.StatusCode, HeaderReport, fx.lastUpstream().Header.Get(HeaderReport))
	}
}

func TestBearerDPoP(t *testing.T) {
	fx := newBearerFixture(t, nil)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(&jose.JSONWebKey{Key: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	bound := fx.accessToken(func(_, c map[string]any) { c["cnf"] = map[string]any{"jkt": jkt} })
	proof := func(method, url, token string, at time.Time) map[string]string {
		p, err := dpop.NewProof(key, method, url, token, at)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"DPoP": p}
	}
	base := gatewayURL.String()
	now := time.Now()

	ok := proof("GET", base+"/api/x", bound, now)
	if resp := fx.bearer("GET", "/api/x", "DPoP", bound, ok); resp.StatusCode != http.StatusOK {
		t.Fatalf("bound token with its proof: %d %q; want 200", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if got := fx.lastUpstream().Header.Get("Authorization"); got != "DPoP "+bound {
		t.Errorf("app got Authorization %q; want the request's", got)
	}

	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign, _ := dpop.NewProof(otherKey, "GET", base+"/api/x", bound, now)
	for _, tc := range []struct {
		name, scheme string
		hdr          map[string]string
		challenge    string
	}{
		{"as Bearer", "Bearer", nil, `Bearer error="invalid_token"`},
		{"as Bearer with a proof", "Bearer", proof("GET", base+"/api/x", bound, now), `Bearer error="invalid_token"`},
		{"without a proof", "DPoP", nil, `DPoP error="invalid_dpop_proof"`},
		{"proof for another URL", "DPoP", proof("GET", base+"/api/y", bound, now), `DPoP error="invalid_dpop_proof"`},
		{"proof for another method", "DPoP", proof("POST", base+"/api/x", bound, now), `DPoP error="invalid_dpop_proof"`},
		{"proof for another token", "DPoP", proof("GET", base+"/api/x", fx.accessToken(nil), now), `DPoP error="invalid_dpop_proof"`},
		{"proof without ath", "DPoP", proof("GET", base+"/api/x", "", now), `DPoP error="invalid_dpop_proof"`},
		{"proof by another key", "DPoP", map[string]string{"DPoP": foreign}, `DPoP error="invalid_dpop_proof"`},
		{"old proof", "DPoP", proof("GET", base+"/api/x", bound, now.Add(-5*time.Minute)), `DPoP error="invalid_dpop_proof"`},
		{"replayed proof", "DPoP", ok, `DPoP error="invalid_dpop_proof"`},
	} {
		wantRefused(t, tc.name, fx.bearer("GET", "/api/x", tc.scheme, bound, tc.hdr), http.StatusUnauthorized, tc.challenge)
	}

	// Two proofs: which would count?
	r := httptest.NewRequest("GET", "/api/x", nil)
	r.Host = gatewayURL.Host
	r.Header.Set("Authorization", "DPoP "+bound)
	r.Header.Add("DPoP", proof("GET", base+"/api/x", bound, now)["DPoP"])
	r.Header.Add("DPoP", proof("GET", base+"/api/x", bound, now)["DPoP"])
	rec := httptest.NewRecorder()
	fx.h.ServeHTTP(rec, r)
	wantRefused(t, "two DPoP headers", rec.Result(), http.StatusUnauthorized, `DPoP error="invalid_dpop_proof"`)

	// dpop: required on a route refuses a plain token; off refuses a bound one.
	plain := fx.accessToken(nil)
	wantRefused(t, "plain token on a dpop: required route", fx.bearer("GET", "/bound/x", "Bearer", plain, nil), http.StatusUnauthorized, `DPoP error="invalid_token"`)
	if resp := fx.bearer("GET", "/bound/x", "DPoP", bound, proof("GET", base+"/bound/x", bound, now)); resp.StatusCode != http.StatusOK {
		t.Errorf("bound token on a dpop: required route: %d; want 200", resp.StatusCode)
	}
	wantRefused(t, "bound token on a dpop: off route", fx.bearer("GET", "/unbound/x", "DPoP", bound, proof("GET", base+"/unbound/x", bound, now)),
		http.StatusUnauthorized, `Bearer error="invalid_token"`)
	// A request that also claims a method is held to every rule it reaches:
	// here, off for GET and required for DELETE, which no token satisfies.
	if resp := fx.bearer("GET", "/unbound/x", "Bearer", plain, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("plain token on a dpop: off route: %d; want 200", resp.StatusCode)
	}
	override := map[string]string{"X-HTTP-Method-Override": "DELETE"}
	wantRefused(t, "plain token, override into a dpop: required rule", fx.bearer("GET", "/unbound/x", "Bearer", plain, override),
		http.StatusUnauthorized, `DPoP error="invalid_token"`)
	override["DPoP"] = proof("GET", base+"/unbound/x", bound, now)["DPoP"]
	wantRefused(t, "bound token, override from a dpop: off rule", fx.bearer("GET", "/unbound/x", "DPoP", bound, override),
		http.StatusUnauthorized, `Bearer error="invalid_token"`)
	fx.logOmits(t, bound, plain, ok["DPoP"])
}

// Forward-auth decides bearer requests as the proxy does: the ingress
// passes Authorization (and DPoP) with its auth request.
func TestForwardAuthBearer(t *testing.T) {
	fx := newBearerFixture(t, nil)
	ask := func(method, uri, auth string, extra ...string) *http.Response {
		r := httptest.NewRequest("GET", "/.stepgate/auth", nil)
		r.RemoteAddr = "10.0.0.7:5555"
		r.Header.Set("X-Forwarded-Method", method)
		r.Header.Set("X-Forwarded-Host", gatewayURL.Host)
		r.Header.Set("X-Forwarded-Uri", uri)
		r.Header.Set("Accept", "text/html")
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			r.Header.Set(extra[i], extra[i+1])
		}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, r)
		return rec.Result()
	}
	strong, weak := fx.accessToken(nil), fx.accessToken(weakToken)
	if resp := ask("POST", "/api/transfer", "Bearer "+strong); resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderSubject) != "alice" {
		t.Errorf("mfa token: %d subject %q; want 200 with the identity headers", resp.StatusCode, resp.Header.Get(HeaderSubject))
	}
	// Even with redirect mode and a navigation, a token gets the challenge.
	resp := ask("GET", "/api/transfer", "Bearer "+weak, HeaderAuthMode, "redirect")
	wantRefused(t, "weak token", resp, http.StatusUnauthorized,
		`Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:mfa", max_age=900`)
	wantRefused(t, "bad token", ask("GET", "/api/transfer", "Bearer "+strong+"x"), http.StatusUnauthorized, `Bearer error="invalid_token"`)
	// nginx turns a 400 into a 500: a malformed credential is a 401 here.
	wantRefused(t, "malformed", ask("GET", "/api/transfer", "Bearer a b"), http.StatusUnauthorized, `Bearer error="invalid_request"`)

	// DPoP proofs name the original request's URL.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, _ := dpop.Thumbprint(&jose.JSONWebKey{Key: key.Public()})
	bound := fx.accessToken(func(_, c map[string]any) { c["cnf"] = map[string]any{"jkt": jkt} })
	p, _ := dpop.NewProof(key, "POST", gatewayURL.String()+"/api/transfer", bound, time.Now())
	if resp := ask("POST", "/api/transfer?x=1", "DPoP "+bound, "DPoP", p); resp.StatusCode != http.StatusOK {
		t.Errorf("bound token with its proof: %d %q; want 200", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	p, _ = dpop.NewProof(key, "POST", gatewayURL.String()+"/.stepgate/auth", bound, time.Now())
	wantRefused(t, "proof for the auth endpoint", ask("POST", "/api/transfer", "DPoP "+bound, "DPoP", p), http.StatusUnauthorized, `DPoP error="invalid_dpop_proof"`)
}

// A route's own dpop setting reloads with the routes: a route made
// dpop: required by a reload refuses plain tokens at once.
func TestBearerDPoPReloads(t *testing.T) {
	fx := newBearerFixture(t, nil)
	plain := fx.accessToken(nil)
	if resp := fx.bearer("GET", "/api/x", "Bearer", plain, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("plain token before the reload: %d; want 200", resp.StatusCode)
	}
	if err := fx.h.SetRoutes(Routes{Table: fx.cfg.Table, Levels: fx.cfg.Levels, DPoP: map[string]string{"mfa": dpopRequired}}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "plain token after dpop: required was reloaded", fx.bearer("GET", "/api/x", "Bearer", plain, nil),
		http.StatusUnauthorized, `DPoP error="invalid_token"`)
}
