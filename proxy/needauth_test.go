package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
)

// continueHref finds the link of a gateway page's button.
var continueHref = regexp.MustCompile(`<a class="button" id="stepgate-continue" href="([^"]*)">`)

// TestNeedAuth covers how a request that needs a login or a step-up is
// answered, by what sent it: a browser navigation goes to the provider and
// comes back to the page; an HTML form POST, which is never replayed after
// the round trip, gets a page whose button verifies and returns to the
// form's page (a same-origin Referer, else "/"); an API call or fetch gets
// a 401 with the RFC 9470 challenge. None reaches the upstream.
func TestNeedAuth(t *testing.T) {
	pwd := policy.Facts{Subject: "alice", Email: "alice@example.test", AMR: []string{"pwd"}, AuthTime: time.Now()}
	form := func(referer string) map[string]string {
		h := map[string]string{"Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded", "Origin": "http://gateway.test"}
		if referer != "" {
			h["Referer"] = referer
		}
		return h
	}
	const (
		mfaChallenge = `Bearer realm="stepgate", error="insufficient_user_authentication", acr_values="urn:mfa", max_age=900`
		mfaFeeds     = "/.stepgate/login?level=mfa&rd=%2Ffeeds%2Flive"
	)
	tests := []struct {
		name           string
		session        *policy.Facts
		method, target string
		hdr            map[string]string

		status int
		// A navigation goes to the provider asking for acr_values (""
		// for none) and the round trip comes back to back.
		acr, back string
		// A form POST gets a page whose button opens button.
		button string
		// An API call gets challenge in WWW-Authenticate and json.
		challenge, json string
	}{
		{name: "navigation, no session", method: "GET", target: "/feeds/live?since=3", hdr: htmlHdr,
			status: http.StatusFound, acr: "urn:mfa", back: "/feeds/live?since=3"},
		{name: "navigation, step-up", session: &pwd, method: "GET", target: "/feeds/live", hdr: htmlHdr,
			status: http.StatusFound, acr: "urn:mfa", back: "/feeds/live"},
		{name: "HEAD navigation", method: "HEAD", target: "/account", hdr: htmlHdr,
			status: http.StatusFound, acr: "", back: "/account"},
		// A backslash is no part of a return address a browser reads one
		// way only; the round trip then comes back to "/".
		{name: "navigation to what cannot be a return address", method: "GET", target: `/account?x=a\b`, hdr: htmlHdr,
			status: http.StatusFound, acr: "", back: "/"},

		{name: "form POST, same-origin Referer", session: &pwd, method: "POST", target: "/feeds/live", hdr: form("http://gateway.test/feeds/form?id=3"),
			status: http.StatusUnauthorized, button: "/.stepgate/login?level=mfa&rd=%2Ffeeds%2Fform%3Fid%3D3", back: "/feeds/form?id=3"},
		{name: "form POST, Referer host in capitals", session: &pwd, method: "POST", target: "/feeds/live", hdr: form("http://GATEWAY.test/feeds/form"),
			status: http.StatusUnauthorized, button: "/.stepgate/login?level=mfa&rd=%2Ffeeds%2Fform"},
		{name: "form POST, Referer with dot segments", session: &pwd, method: "POST", target: "/feeds/live", hdr: form("http://gateway.test/public/../feeds/form"),
			status: http.StatusUnauthorized, button: "/.stepgate/login?level=mfa&rd=%2Ffeeds%2Fform"},
		{name: "form POST, cross-origin Referer", session: &pwd, method: "POST", target: "/feeds/live", hdr: form("https://evil.example/feeds/form"),
			status: http.StatusUnauthorized, button: "/.stepgate/login?level=mfa&rd=%2F", back: "/"},
		{name: "form POST, Referer of another scheme", session: &pwd, method: "POST", target: "/feeds/live", hdr: form("https://gateway.test/feeds/form"),
			status: http.StatusUnauthorized, button: "/.stepgate/login?level=mfa&rd=%2F"},
		{name: "form POST, Referer of another port", session: &pwd, method: "POST", target: "/feeds/live", hdr: form("http://gateway.test:8080/feeds/form"),
			status: http.StatusUnauthorized, button: "/.stepgate/login?level=mfa&rd=%2F"},
		{name: "form POST, Referer on the gateway's own path", session: &pwd, method: "POST", target: "/feeds/live", hdr: form("http://gateway.test/.stepgate/logout"),
			status: http.StatusUnauthorized, button: "/.stepgate/login?level=mfa&rd=%2F"},
		{name: "form POST, unparsable Referer", session: &pwd, method: "POST", target: "/feeds/live", hdr: form("http://gateway.test/%zz"),
			status: http.StatusUnauthorized, button: "/.stepgate/login?level=mfa&rd=%2F"},
		{name: "form POST, no Referer", session: &pwd, method: "POST", target: "/feeds/live", hdr: form(""),
			status: http.StatusUnauthorized, button: "/.stepgate/login?level=mfa&rd=%2F"},
		{name: "form POST, no session", method: "POST", target: "/account", hdr: form("http://gateway.test/account?tab=2"),
			status: http.StatusUnauthorized, button: "/.stepgate/login?rd=%2Faccount%3Ftab%3D2", back: "/account?tab=2"},

		{name: "API, step-up", session: &pwd, method: "GET", target: "/feeds/live", hdr: jsonHdr,
			status: http.StatusUnauthorized, challenge: mfaChallenge,
			json: `{"error":"step_up_required","level":"mfa","login_url":"` + mfaFeeds + `"}`},
		{name: "API POST, step-up", session: &pwd, method: "POST", target: "/admin/transfer/1", hdr: jsonHdr,
			status: http.StatusUnauthorized, challenge: mfaChallenge,
			json: `{"error":"step_up_required","level":"mfa","login_url":"/.stepgate/login?level=mfa&rd=%2Fadmin%2Ftransfer%2F1"}`},
		{name: "API, path too long for a return address", session: &pwd, method: "GET", target: "/feeds/" + strings.Repeat("a", 2100), hdr: jsonHdr,
			status: http.StatusUnauthorized, challenge: mfaChallenge,
			json: `{"error":"step_up_required","level":"mfa","login_url":"/.stepgate/login?level=mfa&rd=%2F"}`},
		{name: "API, no session", method: "GET", target: "/account", hdr: jsonHdr,
			status: http.StatusUnauthorized, challenge: `Bearer realm="stepgate"`,
			json: `{"error":"login_required","login_url":"/.stepgate/login?rd=%2Faccount"}`},
		{name: "API, no session, leveled route", method: "GET", target: "/feeds/live", hdr: jsonHdr,
			status: http.StatusUnauthorized, challenge: `Bearer realm="stepgate"`,
			json: `{"error":"login_required","level":"mfa","login_url":"` + mfaFeeds + `"}`},
		{name: "XHR that accepts HTML", session: &pwd, method: "GET", target: "/feeds/live",
			hdr:    map[string]string{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"},
			status: http.StatusUnauthorized, challenge: mfaChallenge,
			json: `{"error":"step_up_required","level":"mfa","login_url":"` + mfaFeeds + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFlowFixture(t, oidctest.Options{})
			if tc.session != nil {
				fx.signIn(*tc.session)
			}
			resp := fx.send(fx.h, tc.method, tc.target, tc.hdr)
			body := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d; want %d\n%s", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q; want no-store", got)
			}
			if fx.upstreamCount() != 0 {
				t.Fatalf("the upstream was reached")
			}
			var login *http.Response // what starts the round trip
			switch {
			case tc.status == http.StatusFound:
				q := fx.authorize(resp)
				if got := q.Get("acr_values"); got != tc.acr {
					t.Errorf("authorization request acr_values=%q; want %q", got, tc.acr)
				}
				login = resp
			case tc.button != "":
				if !strings.Contains(body, "<title>Verification needed</title>") {
					t.Errorf("not the verification page:\n%s", body)
				}
				m := continueHref.FindStringSubmatch(body)
				if m == nil {
					t.Fatalf("page has no continue button:\n%s", body)
				}
				if got := html.UnescapeString(m[1]); got != tc.button {
					t.Errorf("button opens %q; want %q", got, tc.button)
				}
				if resp.Header.Get("Location") != "" || resp.Header.Get("WWW-Authenticate") != "" {
					t.Errorf("page answer carries Location %q, WWW-Authenticate %q; want neither",
						resp.Header.Get("Location"), resp.Header.Get("WWW-Authenticate"))
				}
				if tc.back != "" {
					login = fx.get(html.UnescapeString(m[1]), htmlHdr)
				}
			default:
				if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
					t.Errorf("WWW-Authenticate %q; want %q", got, tc.challenge)
				}
				if !sameJSON(t, body, tc.json) {
					t.Errorf("body %s; want %s", body, tc.json)
				}
				if resp.Header.Get("Location") != "" || fx.pendingInJar() {
					t.Error("an API call started a round trip")
				}
			}
			if tc.back != "" {
				done := fx.complete(login)
				if done.StatusCode != http.StatusFound || done.Header.Get("Location") != tc.back {
					t.Errorf("callback: %d to %q; want 302 to %q", done.StatusCode, done.Header.Get("Location"), tc.back)
				}
			}
		})
	}
}

// TestUpstreamError covers what a client is told when the request was
// allowed but the upstream did not answer: a 502 without the transport's
// error text, counted as a 5xx; unless the client itself went away
// mid-request, which is no failure of the upstream's and is logged and
// counted as nginx's 499.
func TestUpstreamError(t *testing.T) {
	t.Run("upstream down", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		deadURL, _ := url.Parse(dead.URL)
		dead.Close()
		fx := newFlowFixture(t, oidctest.Options{}, func(c *Config) { c.Upstream = deadURL })
		resp := fx.send(fx.h, http.MethodGet, "/public/x", jsonHdr)
		body := readBody(t, resp)
		want := `{"error":"bad_gateway","message":"The application is not reachable right now."}`
		if resp.StatusCode != http.StatusBadGateway || !sameJSON(t, body, want) {
			t.Errorf("got %d %s; want 502 %s", resp.StatusCode, body, want)
		}
		if got := metricSum(t, fx.h, `stepgate_requests_total{class="5xx"}`); got != 1 {
			t.Errorf("5xx requests counted: %v; want 1", got)
		}
		// The operator sees why; the client did not.
		line := logLine(t, fx, "upstream error")
		if err, _ := line["err"].(string); line["level"] != "WARN" || !strings.Contains(err, "connection refused") {
			t.Errorf("upstream error log line %v; want a WARN naming the refused connection\n%s", line, fx.logs)
		}
	})

	t.Run("client hangs up", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			select { // until the gateway gives up on this request
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}))
		t.Cleanup(slow.Close)
		slowURL, _ := url.Parse(slow.URL)
		fx := newFlowFixture(t, oidctest.Options{}, func(c *Config) { c.Upstream = slowURL })

		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fx.front.URL+"/public/slow", nil)
		req.Host = gatewayURL.Host
		go func() {
			<-arrived
			cancel() // the client closes the connection mid-request
		}()
		if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.Canceled) {
			t.Fatalf("client: %v; want it to have hung up", err)
		}
		// The access line is written once the handler returns, after the
		// client has gone: wait for it.
		deadline := time.Now().Add(5 * time.Second)
		for logLine(t, fx, "request") == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		line := logLine(t, fx, "request")
		if line == nil || line["status"] != float64(499) {
			t.Fatalf("access log line %v; want status 499\n%s", line, fx.logs)
		}
		if got := metricSum(t, fx.h, `stepgate_requests_total{class="5xx"}`); got != 0 {
			t.Errorf("5xx requests counted: %v; want 0", got)
		}
		if got := metricSum(t, fx.h, `stepgate_requests_total{class="4xx"}`); got != 1 {
			t.Errorf("4xx requests counted: %v; want 1", got)
		}
		if l := logLine(t, fx, "upstream error"); l != nil {
			t.Errorf("a client hang-up was logged as an upstream error: %v", l)
		}
	})
}

// logLine returns the gateway's first log record with message msg, or nil.
func logLine(t *testing.T, fx *flowFixture, msg string) map[string]any {
	t.Helper()
	for line := range strings.Lines(fx.logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		if rec["msg"] == msg {
			return rec
		}
	}
	return nil
}

// sameJSON reports whether got and want are the same JSON value, however
// each is spelled ("&" or "\u0026", key order, spacing).
func sameJSON(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Errorf("body %q is not JSON: %v", got, err)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q is not JSON: %v", want, err)
	}
	return mustJSON(g) == mustJSON(w)
}
