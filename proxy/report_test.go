package proxy

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/policy"
)

// A report-only rule decides as usual, logs and counts what it would have
// done, and forwards anyway, marking the request; the mark is the
// gateway's alone.
func TestReportOnlyRule(t *testing.T) {
	table, err := policy.NewTable([]policy.Rule{
		{Name: "transfers", Path: "/admin/transfer/**", Access: policy.Leveled, Level: mfa, Report: true},
		{Name: "closed", Path: "/blocked/**", Access: policy.Denied, Report: true},
		{Name: "enforced", Path: "/feeds/**", Access: policy.Leveled, Level: mfa},
	}, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	f := newFixture(t, func(c *Config) {
		c.Table = table
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	pwd := f.cookie(alice)
	strong := f.cookie(aliceMFA)
	for _, tc := range []struct {
		name, path, cookie, report, action string
	}{
		{"no session", "/admin/transfer/1", "", "would-login", "would_login"},
		{"too weak", "/admin/transfer/1", pwd, "would-step-up", "would_step_up"},
		{"satisfied", "/admin/transfer/1", strong, "", "allow"},
		{"denied", "/blocked/x", strong, "would-deny", "would_deny"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.upstreamCount()
			req, _ := http.NewRequest(http.MethodPost, f.front.URL+tc.path, nil)
			req.Header.Set("Accept", "application/json")
			req.Header.Set("X-Stepgate-Report", "forged")
			req.Header.Set("X_Stepgate_Report", "forged")
			if tc.cookie != "" {
				req.Header.Set("Cookie", tc.cookie)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || f.upstreamCount() != before+1 {
				t.Fatalf("%d; want the request forwarded (report-only)", resp.StatusCode)
			}
			up := f.lastUpstream()
			if got := up.Header.Values(HeaderReport); strings.Join(got, ",") != tc.report || up.Header.Get("X_Stepgate_Report") != "" {
				t.Errorf("upstream %s %q (and the client's spelling %q); want %q", HeaderReport, got, up.Header.Get("X_Stepgate_Report"), tc.report)
			}
			var line map[string]any
			for l := range strings.Lines(logs.String()) {
				var m map[string]any
				if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
					line = m
				}
			}
			if line["decision"] != tc.action {
				t.Errorf("access line decision %v; want %s", line["decision"], tc.action)
			}
		})
	}
	if got := metric(t, f.h, `stepgate_decisions_total{action="would_step_up",route="transfers"}`); got != 1 {
		t.Errorf("would_step_up counted %v times; want 1", got)
	}
	// An enforced route next to it still enforces.
	req, _ := http.NewRequest(http.MethodPost, f.front.URL+"/feeds/x", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Cookie", pwd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("enforced route: %d; want 401", resp.StatusCode)
	}

	// Forward-auth: 200 with the verdict for the ingress to pass on.
	ask := httptest.NewRequest(http.MethodGet, authPath, nil)
	ask.RemoteAddr = "127.0.0.1:5000"
	for k, v := range map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Host": "gateway.test", "X-Forwarded-Uri": "/admin/transfer/1", "Cookie": pwd} {
		ask.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, ask)
	if rec.Code != 200 || rec.Header().Get(HeaderReport) != "would-step-up" || rec.Header().Get(HeaderSubject) != "alice" {
		t.Errorf("forward-auth on a report-only route: %d %s=%q subject %q; want 200 would-step-up for alice",
			rec.Code, HeaderReport, rec.Header().Get(HeaderReport), rec.Header().Get(HeaderSubject))
	}
}
