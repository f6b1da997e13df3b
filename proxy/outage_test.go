package proxy

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc/oidctest"
)

// readyzOf returns the status and body of h's /readyz.
func readyzOf(h *Handler) (int, string) {
	rec := httptest.NewRecorder()
	Admin(h).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code, rec.Body.String()
}

// waitReadyz polls /readyz until it answers want, failing after 5s.
func waitReadyz(t *testing.T, h *Handler, want int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		code, body := readyzOf(h)
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q after 5s; want %d", code, body, want)
		}
	}
}

// wantIdPUnavailable fails unless resp is the answer to a login or step-up
// while the provider is down: 503 with a Retry-After, an HTML page for a
// browser navigation or form, JSON idp_unavailable otherwise; never a
// redirect into the provider.
func wantIdPUnavailable(t *testing.T, what string, resp *http.Response, html bool) {
	t.Helper()
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("%s: %d (Location %q); want 503", what, resp.StatusCode, resp.Header.Get("Location"))
	}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("%s: Retry-After %q; want a positive number of seconds", what, resp.Header.Get("Retry-After"))
	}
	ct := resp.Header.Get("Content-Type")
	switch {
	case html && !strings.HasPrefix(ct, "text/html"):
		t.Errorf("%s: Content-Type %q; want an HTML page", what, ct)
	case !html && (!strings.HasPrefix(ct, "application/json") || !strings.Contains(body, `"error":"idp_unavailable"`)):
		t.Errorf("%s: %q %s; want JSON {\"error\":\"idp_unavailable\"}", what, ct, body)
	}
}

// TestProviderOutage takes a real provider down after the gateway
// discovered it: sessions keep working on the routes they satisfy (a
// cookie request never needs the provider), logins and step-ups answer 503
// with Retry-After instead of a redirect into it, /readyz says why, and
// all of it recovers once the provider is back.
func TestProviderOutage(t *testing.T) {
	fx := newFlowFixture(t, oidctest.Options{}, func(c *Config) { c.ProviderProbeInterval = 20 * time.Millisecond })
	if code, body := readyzOf(fx.h); code != http.StatusOK {
		t.Fatalf("/readyz with the provider up: %d %q; want 200", code, body)
	}
	fx.idp.Stop()
	waitReadyz(t, fx.h, http.StatusServiceUnavailable)
	if _, body := readyzOf(fx.h); !strings.Contains(body, "identity provider") {
		t.Errorf("/readyz body %q; want the reason, naming the identity provider", body)
	}

	strong := aliceMFA
	strong.AuthTime = fx.clock.Now()
	fx.signIn(strong)
	for _, target := range []string{"/account", "/feeds/today", "/admin/transfer/1"} {
		if resp := fx.get(target, htmlHdr); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with an MFA session while the provider is down: %d; want 200 from the upstream", target, resp.StatusCode)
		}
	}

	fx.signIn(alice) // password only: the mfa routes need a step-up
	for _, tc := range []struct {
		name, method, target string
		hdr                  map[string]string
		html                 bool
	}{
		{"step-up, navigation", http.MethodGet, "/feeds/today", htmlHdr, true},
		{"step-up, API", http.MethodGet, "/feeds/today", jsonHdr, false},
		{"step-up, HTML form", http.MethodPost, "/feeds/today", htmlHdr, true},
		{"explicit step-up", http.MethodGet, reservedPrefix + "login?level=mfa&rd=/feeds/today", htmlHdr, true},
		{"explicit step-up, fetch", http.MethodGet, reservedPrefix + "login?level=mfa&rd=/feeds/today", jsonHdr, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantIdPUnavailable(t, tc.name, fx.send(fx.h, tc.method, tc.target, tc.hdr), tc.html)
		})
	}
	if resp := fx.get("/account", htmlHdr); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /account with a password session while the provider is down: %d; want 200", resp.StatusCode)
	}
	for _, hdr := range []map[string]string{htmlHdr, jsonHdr} {
		r := httptest.NewRequest(http.MethodGet, "/account", nil) // no session: a login
		r.Host = gatewayURL.Host
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, r)
		wantIdPUnavailable(t, "login "+hdr["Accept"], rec.Result(), hdr["Accept"] == htmlHdr["Accept"])
	}
	if fx.pendingInJar() {
		t.Error("a pending round trip was started while the provider was down")
	}

	fx.idp.Start(t)
	waitReadyz(t, fx.h, http.StatusOK)
	resp := fx.get("/feeds/today", htmlHdr)
	fx.authorize(resp) // a 302 to the provider again
	if done := fx.complete(resp); done.StatusCode != http.StatusFound || done.Header.Get("Location") != "/feeds/today" {
		t.Fatalf("step-up after recovery: %d to %q; want 302 back to /feeds/today", done.StatusCode, done.Header.Get("Location"))
	}
	if resp := fx.get("/feeds/today", htmlHdr); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /feeds/today after the step-up: %d; want 200", resp.StatusCode)
	}
	fx.logOmits(t, fx.idp.ClientSecret)
}

// TestProviderOutageSeenByTheFlow covers the calls that find the provider
// down before any probe does: a pushed authorization request that cannot
// be delivered, and a code exchange at the callback. Both answer 503 with
// Retry-After (the callback's state is spent, so the page says to start
// again) and mark the provider down for /readyz until a probe succeeds.
func TestProviderOutageSeenByTheFlow(t *testing.T) {
	hour := func(c *Config) { c.ProviderProbeInterval = time.Hour } // only the flow learns of the outage

	t.Run("PAR push", func(t *testing.T) {
		fx := newFlowFixture(t, oidctest.Options{PAR: true}, hour)
		fx.idp.Stop()
		wantIdPUnavailable(t, "login with PAR", fx.get("/account", htmlHdr), true)
		if code, _ := readyzOf(fx.h); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz after a failed push: %d; want 503", code)
		}
	})

	for _, tc := range []struct {
		name   string
		breaks func(*oidctest.Server)
	}{
		{"token endpoint down", func(s *oidctest.Server) { s.Stop() }},
		{"token endpoint 503", func(s *oidctest.Server) { s.FailWith(http.StatusServiceUnavailable, "/token") }},
	} {
		t.Run("callback, "+tc.name, func(t *testing.T) {
			fx := newFlowFixture(t, oidctest.Options{}, hour)
			fx.signIn(alice)
			back, _ := fx.roundTrip(fx.get("/feeds/today", htmlHdr))
			tc.breaks(fx.idp)
			wantIdPUnavailable(t, "callback", fx.get(reservedPrefix+"callback?"+back.Encode(), htmlHdr), true)
			if code, _ := readyzOf(fx.h); code != http.StatusServiceUnavailable {
				t.Errorf("/readyz after a failed exchange: %d; want 503", code)
			}
			if a := fx.audit("step_up_failure"); a == nil || a["reason"] == nil {
				t.Errorf("no step_up_failure audit with a reason:\n%s", fx.logs)
			}
			if got := metric(t, fx.h, flowSeries("step_up/idp_unavailable")); got != 1 {
				t.Errorf("%s = %v; want 1", flowSeries("step_up/idp_unavailable"), got)
			}
		})
	}
}
