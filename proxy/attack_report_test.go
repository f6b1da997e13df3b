package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stepgate/stepgate/policy"
)

// Attack: a report-only rule must only ever loosen the requests it matches
// itself. When a request could be read as several (a method override), the
// strictest reading decides; if that reading is a report-only rule, the
// request is forwarded although the rule its real method matches is
// enforced. During a rollout ("DELETE /api/** in report mode, GET /api/**
// enforced") a client adds X-HTTP-Method-Override: DELETE (or ?_method=) to
// a GET and skips the enforced step-up or login.
func TestAttackReportOnlyOverrideSkipsEnforcedRule(t *testing.T) {
	table, err := policy.NewTable([]policy.Rule{
		{Name: "api-read", Path: "/api/**", Methods: []string{"GET"}, Access: policy.Leveled, Level: mfa},
		{Name: "api-delete-rollout", Path: "/api/**", Methods: []string{"DELETE"}, Access: policy.Denied, Report: true},
	}, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Table = table })
	pwd := f.cookie(alice)
	for _, tc := range []struct {
		name, query string
		header      [2]string
		cookie      string
		want        int
	}{
		{"control: no override, weak session", "", [2]string{}, pwd, http.StatusUnauthorized},
		{"override header, weak session", "", [2]string{"X-HTTP-Method-Override", "DELETE"}, pwd, http.StatusUnauthorized},
		{"override header, no session", "", [2]string{"X-HTTP-Method-Override", "DELETE"}, "", http.StatusUnauthorized},
		{"_method query, weak session", "?_method=DELETE", [2]string{}, pwd, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.upstreamCount()
			req, _ := http.NewRequest(http.MethodGet, f.front.URL+"/api/accounts"+tc.query, nil)
			req.Header.Set("Accept", "application/json")
			if tc.header[0] != "" {
				req.Header.Set(tc.header[0], tc.header[1])
			}
			if tc.cookie != "" {
				req.Header.Set("Cookie", tc.cookie)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			// A 403 (refusing the ambiguity) would hold as well as the step-up.
			if (resp.StatusCode != tc.want && resp.StatusCode != http.StatusForbidden) || f.upstreamCount() != before {
				t.Errorf("GET /api/accounts%s %v: %d, forwarded %d time(s); want %d and nothing forwarded: "+
					"the enforced rule for GET must not become report-only through a claimed method",
					tc.query, tc.header, resp.StatusCode, f.upstreamCount()-before, tc.want)
			}
		})
	}
}

// Attack: forward-auth's ?level= (or X-Stepgate-Level) is the ingress's own
// requirement on top of the route table's. On a route that routes.yaml has
// in report mode, the extra level is dropped with the rule's verdict: the
// ingress asked for mfa and gets 200 for a password session.
func TestAttackReportOnlyDropsForwardAuthLevel(t *testing.T) {
	table, err := policy.NewTable([]policy.Rule{
		{Name: "rollout", Path: "/r/**", Access: policy.Authenticated, Report: true},
		{Name: "enforced", Path: "/e/**", Access: policy.Authenticated},
	}, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) {
		c.Table = table
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	pwd := f.cookie(alice)
	for _, tc := range []struct {
		name, uri string
	}{
		{"control: enforced route", "/e/x"},
		{"report-only route", "/r/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ask := httptest.NewRequest(http.MethodGet, authPath+"?level=mfa", nil)
			ask.RemoteAddr = "127.0.0.1:5000"
			for k, v := range map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Host": "gateway.test", "X-Forwarded-Uri": tc.uri, "Cookie": pwd} {
				ask.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, ask)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("forward-auth %s with level=mfa, password session: %d (%s=%q); want 401: "+
					"the ingress's level is not the report-only rule's to waive",
					tc.uri, rec.Code, HeaderReport, rec.Header().Get(HeaderReport))
			}
		})
	}
}
