package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
)

// TestStepUpIsPushed: with a provider that offers PAR (RFC 9126) the
// browser is sent to the provider with client_id and request_uri only; the
// step-up's parameters went to the provider directly, and the round trip
// completes on them.
func TestStepUpIsPushed(t *testing.T) {
	fx := newFlowFixture(t, oidctest.Options{PAR: true})
	fx.signIn(policy.Facts{Subject: "alice", Email: "alice@example.test", AMR: []string{"pwd"}, AuthTime: time.Now()})
	resp := fx.get(reservedPrefix+"login?level=mfa&rd=/feeds/live", htmlHdr)
	q := fx.authorize(resp)
	pushed := fx.idp.Pushed()
	if len(pushed) != 1 {
		t.Fatalf("provider got %d pushed requests; want 1", len(pushed))
	}
	p := pushed[0].Form
	if want := (url.Values{"client_id": {fx.idp.ClientID}, "request_uri": {pushed[0].RequestURI}}); q.Encode() != want.Encode() {
		t.Errorf("browser sent to the provider with %v; want only %v", q, want)
	}
	for k, want := range map[string]string{"acr_values": "urn:mfa", "max_age": "900", "login_hint": "alice@example.test"} {
		if got := p.Get(k); got != want {
			t.Errorf("pushed %s = %q; want %q", k, got, want)
		}
	}

	code := fx.idp.Login(t, resp.Header.Get("Location"))
	back := url.Values{"code": {code}, "state": {p.Get("state")}, "iss": {fx.idp.URL}}
	cb := fx.get(reservedPrefix+"callback?"+back.Encode(), htmlHdr)
	if cb.StatusCode != http.StatusFound || cb.Header.Get("Location") != "/feeds/live" {
		t.Fatalf("callback: %d to %q; want 302 to /feeds/live\n%s", cb.StatusCode, cb.Header.Get("Location"), readBody(t, cb))
	}
}

// TestPushRefusedIs503: when the provider will not take the pushed request,
// the browser gets a 503 and no pending round trip, never an unpushed URL.
func TestPushRefusedIs503(t *testing.T) {
	fx := newFlowFixture(t, oidctest.Options{PAR: true})
	const wrongSecret = "not-the-client-secret"
	rp, err := oidc.New(t.Context(), oidc.Config{
		Issuer: fx.idp.URL, ClientID: fx.idp.ClientID, ClientSecret: wrongSecret,
		RedirectURL: gatewayURL.String() + reservedPrefix + "callback", Scopes: []string{"openid"},
	})
	if err != nil {
		t.Fatal(err)
	}
	fx.h.SetOIDC(rp)
	resp := fx.get(reservedPrefix+"login?level=mfa&rd=/feeds/live", htmlHdr)
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Location") != "" {
		t.Fatalf("got %d to %q; want 503 and no redirect\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if strings.Contains(body, "invalid_client") || strings.Contains(body, fx.idp.URL) {
		t.Errorf("page shows the internal error:\n%s", body)
	}
	if fx.pendingInJar() {
		t.Error("a pending round trip was started")
	}
	if !strings.Contains(fx.logs.String(), "invalid_client") {
		t.Errorf("log does not say why:\n%s", fx.logs.String())
	}
	fx.logOmits(t, wrongSecret)
}
