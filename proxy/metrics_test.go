package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc/oidctest"
)

// Each request is counted once, under the route it matched, the decision
// and the class of the answer's status, and timed under its route and
// decision; a forwarded one is also timed to the upstream's first byte.
func TestRequestMetrics(t *testing.T) {
	tests := []struct {
		name    string
		raw     string // the request, byte for byte
		cookie  bool   // add alice's session
		status  int
		series  string // labels of stepgate_requests_total
		timed   string // labels of stepgate_request_duration_seconds
		forward string // labels of stepgate_upstream_duration_seconds; "" when not forwarded
	}{
		{name: "public, forwarded", raw: "GET /public/x HTTP/1.1\r\nHost: gateway.test\r\n\r\n", status: 200,
			series: `class="2xx",decision="allow",route="public"`, timed: `decision="allow",route="public"`, forward: `route="public"`},
		{name: "authenticated route with a session", raw: "GET /admin/transfer/1 HTTP/1.1\r\nHost: gateway.test\r\n", cookie: true, status: 200,
			series: `class="2xx",decision="allow",route="transfer-read"`, timed: `decision="allow",route="transfer-read"`, forward: `route="transfer-read"`},
		{name: "step-up needed", raw: "POST /admin/transfer/1 HTTP/1.1\r\nHost: gateway.test\r\nAccept: application/json\r\nContent-Length: 0\r\n", cookie: true, status: 401,
			series: `class="4xx",decision="step-up",route="transfer"`, timed: `decision="step-up",route="transfer"`},
		{name: "login needed", raw: "GET /account HTTP/1.1\r\nHost: gateway.test\r\nAccept: application/json\r\n\r\n", status: 401,
			series: `class="4xx",decision="login",route="default"`, timed: `decision="login",route="default"`},
		{name: "denied", raw: "GET /blocked/x HTTP/1.1\r\nHost: gateway.test\r\n\r\n", status: 403,
			series: `class="4xx",decision="deny",route="blocked"`, timed: `decision="deny",route="blocked"`},
		{name: "gateway endpoint", raw: "GET /.stepgate/session HTTP/1.1\r\nHost: gateway.test\r\n\r\n", status: 401,
			series: `class="4xx",decision="session",route="stepgate"`, timed: `decision="session",route="stepgate"`},
		{name: "unknown gateway endpoint", raw: "GET /.stepgate/nope HTTP/1.1\r\nHost: gateway.test\r\n\r\n", status: 404,
			series: `class="4xx",decision="not_found",route="stepgate"`, timed: `decision="not_found",route="stepgate"`},
		// Refused before any route is consulted: the gateway's own answer.
		{name: "path that cannot be canonicalized", raw: "GET /public/x;v=1 HTTP/1.1\r\nHost: gateway.test\r\n\r\n", status: 400,
			series: `class="4xx",decision="reject",route="stepgate"`, timed: `decision="reject",route="stepgate"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			req := tc.raw
			if tc.cookie {
				req += "Cookie: " + f.cookie(alice) + "\r\n\r\n"
			}
			if status, _ := f.raw(req); status != tc.status {
				t.Fatalf("status %d; want %d", status, tc.status)
			}
			// The request is counted as the handler returns, which may be
			// just after the client has read the answer.
			for deadline := time.Now().Add(patience); metricSum(t, f.h, "stepgate_requests_total") == 0 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			want := map[string]float64{
				"stepgate_requests_total{" + tc.series + "}":                1,
				"stepgate_request_duration_seconds_count{" + tc.timed + "}": 1,
				"stepgate_requests_total":                                   1, // the sum of every series: nothing else was counted
				"stepgate_request_duration_seconds_count":                   1,
				"stepgate_upstream_duration_seconds_count":                  0,
			}
			if tc.forward != "" {
				want["stepgate_upstream_duration_seconds_count{"+tc.forward+"}"] = 1
				want["stepgate_upstream_duration_seconds_count"] = 1
			}
			for series, n := range want {
				if got := metricSum(t, f.h, series); got != n {
					t.Errorf("%s = %v; want %v", series, got, n)
				}
			}
		})
	}
}

// The route label comes from the route table, never from the request: a
// flood of distinct paths adds no series.
func TestRequestMetricsCardinality(t *testing.T) {
	f := newFixture(t)
	for i := range 40 {
		p := "/public/" + strings.Repeat("x", i)
		if i%2 == 1 {
			p = "/unmatched/" + strings.Repeat("y", i) // the default rule
		}
		if status, _ := f.raw("GET " + p + " HTTP/1.1\r\nHost: gateway.test\r\nAccept: application/json\r\n\r\n"); status != 200 && status != 401 {
			t.Fatalf("GET %s: %d", p, status)
		}
	}
	routes := map[string]bool{}
	rec := httptest.NewRecorder()
	Admin(f.h).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if _, v, ok := strings.Cut(line, `route="`); ok && strings.HasPrefix(line, "stepgate_") {
			v, _, _ = strings.Cut(v, `"`)
			routes[v] = true
		}
	}
	got := make([]string, 0, len(routes))
	for r := range routes {
		got = append(got, r)
	}
	slices.Sort(got)
	if want := []string{"default", "public"}; !slices.Equal(got, want) {
		t.Errorf("route labels %q; want %q", got, want)
	}
}

// Upstream failures are counted by kind, and a failure that is the
// client's (a body that stopped arriving, a hang-up) is told apart from the
// upstream's own.
func TestUpstreamErrorKinds(t *testing.T) {
	// refused is an address nothing listens on.
	dead := httptest.NewServer(http.NotFoundHandler())
	refused, _ := url.Parse(dead.URL)
	dead.Close()
	// slow answers after the client-side timeout below.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(patience):
		}
	}))
	t.Cleanup(slow.Close)
	slowURL, _ := url.Parse(slow.URL)
	// hangup accepts a connection, reads the request and closes it unanswered.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			http.ReadRequest(bufio.NewReader(c))
			c.Close()
		}
	}()
	hangupURL := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	shortTimeout := func(c *Config) {
		tr := newTransport()
		tr.ResponseHeaderTimeout = 200 * time.Millisecond
		c.Transport = tr
	}

	tests := []struct {
		name     string
		upstream *url.URL // nil: no upstream at all
		edit     func(*Config)
		send     func(t *testing.T, f *fixture) // sends the failing request
		kind     string
	}{
		{name: "connection refused", upstream: refused, kind: "unreachable", send: get("/public/x", 502)},
		{name: "no answer in time", upstream: slowURL, edit: shortTimeout, kind: "timeout", send: get("/public/x", 502)},
		{name: "connection closed unanswered", upstream: hangupURL, kind: "bad_response", send: get("/public/x", 502)},
		{name: "no upstream configured", kind: "no_upstream", send: get("/public/x", 502)},
		{name: "request body stalled", upstream: slowURL, edit: func(c *Config) { c.BodyIdleTimeout = testIdle }, kind: "body_stalled",
			send: func(t *testing.T, f *fixture) {
				conn, err := net.Dial("tcp", strings.TrimPrefix(f.front.URL, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(patience))
				io.WriteString(conn, "POST /public/up HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 100\r\n\r\nonly ten b")
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestTimeout {
					t.Fatalf("status %d; want 408", resp.StatusCode)
				}
			}},
		{name: "client hangs up", upstream: slowURL, kind: "client_closed",
			send: func(t *testing.T, f *fixture) {
				ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.front.URL+"/public/slow", nil)
				if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("client: %v; want it to have given up", err)
				}
				// The handler finishes after the client has gone.
				for deadline := time.Now().Add(patience); metricSum(t, f.h, "stepgate_upstream_errors_total") == 0 && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) {
				c.Upstream = tc.upstream
				if tc.edit != nil {
					tc.edit(c)
				}
			})
			tc.send(t, f)
			for _, kind := range upstreamErrorKinds {
				want := 0.0
				if kind == tc.kind {
					want = 1
				}
				series := `stepgate_upstream_errors_total{kind="` + kind + `"}`
				if got := metric(t, f.h, series); got != want {
					t.Errorf("%s = %v; want %v", series, got, want)
				}
			}
		})
	}
}

// get returns a send func for TestUpstreamErrorKinds that GETs path and
// expects status.
func get(path string, status int) func(*testing.T, *fixture) {
	return func(t *testing.T, f *fixture) {
		resp, err := http.Get(f.front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Fatalf("GET %s: %d; want %d", path, resp.StatusCode, status)
		}
	}
}

// CountReload is what hot reload calls after each attempt: the result is
// counted, and a success moves the last-success timestamp, which starts at
// the time the Handler was built with its first configuration.
func TestCountReload(t *testing.T) {
	clock := new(flowClock)
	f := newFixture(t, func(c *Config) { c.Now = clock.Now })
	started := float64(clock.Now().Unix())
	steps := []struct {
		ok               bool
		success, failure float64
		advance          time.Duration
		moved            bool // the timestamp is the time of this step
	}{
		{ok: false, failure: 1},
		{ok: true, success: 1, failure: 1, advance: time.Hour, moved: true},
		{ok: false, success: 1, failure: 2, advance: time.Hour},
		{ok: true, success: 2, failure: 2, advance: time.Hour, moved: true},
	}
	last := started
	if got := metric(t, f.h, "stepgate_config_last_reload_success_timestamp_seconds"); got < started-1 || got > started+1 {
		t.Errorf("before any reload, last success %v; want the start, %v", got, started)
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		f.h.CountReload(s.ok)
		if s.moved {
			last = float64(clock.Now().Unix())
		}
		if got := metric(t, f.h, `stepgate_config_reload_total{result="ok"}`); got != s.success {
			t.Errorf("step %d: successes %v; want %v", i, got, s.success)
		}
		if got := metric(t, f.h, `stepgate_config_reload_total{result="error"}`); got != s.failure {
			t.Errorf("step %d: failures %v; want %v", i, got, s.failure)
		}
		if got := metric(t, f.h, "stepgate_config_last_reload_success_timestamp_seconds"); got < last-1 || got > last+1 {
			t.Errorf("step %d: last success %v; want %v", i, got, last)
		}
	}
}

// A step-up is counted by level and outcome, from its start to its end; a
// plain login is not a step-up.
func TestStepUpMetrics(t *testing.T) {
	pwd := alice
	pwd.AuthTime = time.Now()
	for _, tc := range []struct {
		name      string
		session   bool
		edit      func(q url.Values)
		want      map[string]float64 // outcome → count for level mfa
		noStepUps bool
	}{
		{name: "step-up succeeds", session: true, want: map[string]float64{"start": 1, "success": 1}},
		{name: "provider refuses", session: true, edit: func(q url.Values) { q.Del("code"); q.Set("error", "access_denied") },
			want: map[string]float64{"start": 1, "idp_error": 1}},
		{name: "login", noStepUps: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFlowFixture(t, oidctest.Options{})
			if tc.session {
				fx.signIn(pwd)
			}
			back, _ := fx.roundTrip(fx.get("/feeds/live", htmlHdr))
			if tc.edit != nil {
				tc.edit(back)
			}
			fx.get(reservedPrefix+"callback?"+back.Encode(), htmlHdr).Body.Close()
			if tc.noStepUps {
				if got := metricSum(t, fx.h, "stepgate_step_ups_total"); got != 0 {
					t.Errorf("step-ups counted for a login: %v", got)
				}
				return
			}
			for outcome, n := range tc.want {
				series := `stepgate_step_ups_total{level="mfa",outcome="` + outcome + `"}`
				if got := metric(t, fx.h, series); got != n {
					t.Errorf("%s = %v; want %v", series, got, n)
				}
			}
			if got, want := metricSum(t, fx.h, "stepgate_step_ups_total"), float64(len(tc.want)); got != want {
				t.Errorf("stepgate_step_ups_total sums to %v; want %v", got, want)
			}
		})
	}
}

// metricSum sums every series on h's /metrics that is named as series is
// and carries each of its labels: "stepgate_requests_total" is the sum of
// every route, decision and class, `stepgate_requests_total{class="5xx"}`
// of every 5xx.
func metricSum(t *testing.T, h *Handler, series string) float64 {
	t.Helper()
	name, labels, _ := strings.Cut(series, "{")
	var want []string
	if labels = strings.TrimSuffix(labels, "}"); labels != "" {
		want = strings.Split(labels, ",")
	}
	rec := httptest.NewRecorder()
	Admin(h).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	sum := 0.0
	for line := range strings.Lines(rec.Body.String()) {
		s, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(s, "#") {
			continue
		}
		n, l, _ := strings.Cut(s, "{")
		if n != name {
			continue
		}
		have := strings.Split(strings.TrimSuffix(l, "}"), ",")
		if !allIn(want, have) {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum += f
	}
	return sum
}

func allIn(want, have []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// families names every family h's registry exports, with its type
// ("COUNTER", "HISTOGRAM"...).
func families(t *testing.T, h *Handler) map[string]string {
	t.Helper()
	mfs, err := h.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetType().String()
	}
	return out
}
