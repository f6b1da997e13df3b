package proxy

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
)

func mustTable(t *testing.T, opt policy.TableOptions, rules ...policy.Rule) *policy.Table {
	t.Helper()
	table, err := policy.NewTable(rules, policy.Rule{Name: "default", Access: policy.Authenticated}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// A change of routes takes effect on the next request: the rule, the path
// switches and the table's matching options all come from the new routes.
func TestSetRoutesTakesEffect(t *testing.T) {
	tests := []struct {
		name         string
		target       string
		before, want int
		routes       Routes
	}{
		{"public becomes deny", "/public/x", 200, 403, Routes{
			Table:  mustTable(t, policy.TableOptions{}, policy.Rule{Name: "public", Path: "/public/**", Access: policy.Denied}),
			Levels: []*policy.Level{mfa},
		}},
		{"path parameters become stripped", "/public/a;v=1", 400, 200, Routes{
			Table:       mustTable(t, policy.TableOptions{}, policy.Rule{Name: "public", Path: "/public/**", Access: policy.Public}),
			PathOptions: policy.PathOptions{StripPathParams: true},
		}},
		{"paths become case-insensitive", "/PUBLIC/x", 401, 200, Routes{
			Table: mustTable(t, policy.TableOptions{CaseInsensitivePaths: true}, policy.Rule{Name: "public", Path: "/public/**", Access: policy.Public}),
		}},
		{"a new level is named by a login", "/.stepgate/login?level=pay&rd=/", 400, 503, Routes{
			Table:  mustTable(t, policy.TableOptions{}, policy.Rule{Name: "pay", Path: "/pay/**", Access: policy.Leveled, Level: payLevel}),
			Levels: []*policy.Level{payLevel},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if code, _ := f.raw("GET " + tc.target + " HTTP/1.1\r\nHost: gateway.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n"); code != tc.before {
				t.Fatalf("GET %s before the change: %d; want %d", tc.target, code, tc.before)
			}
			if err := f.h.SetRoutes(tc.routes); err != nil {
				t.Fatal(err)
			}
			if code, body := f.raw("GET " + tc.target + " HTTP/1.1\r\nHost: gateway.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n"); code != tc.want {
				t.Errorf("GET %s after the change: %d %s; want %d", tc.target, code, body, tc.want)
			}
		})
	}
}

func TestSetRoutesRefusesNoTable(t *testing.T) {
	f := newFixture(t)
	if err := f.h.SetRoutes(Routes{}); err == nil || !strings.Contains(err.Error(), "Table") {
		t.Errorf("SetRoutes without a table = %v; want an error naming Table", err)
	}
	if code, _ := f.raw("GET /public/x HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n"); code != 200 {
		t.Errorf("after a refused SetRoutes: %d; want the old routes' 200", code)
	}
}

// A flow that started on the old routes and names what a change removed
// fails closed with a short answer when it comes back.
func TestSetRoutesMidFlowFailsClosed(t *testing.T) {
	// What remains: no level at all, and no confirm route.
	bare := Routes{Table: mustTable(t, policy.TableOptions{}, policy.Rule{Name: "public", Path: "/public/**", Access: policy.Public})}

	t.Run("pending step-up for a removed level", func(t *testing.T) {
		fx := newFlowFixture(t, oidctest.Options{})
		fx.signIn(pwdFacts)
		back, _ := fx.roundTrip(fx.get("/feeds/live", htmlHdr))
		if err := fx.h.SetRoutes(bare); err != nil {
			t.Fatal(err)
		}
		resp := fx.get(reservedPrefix+"callback?"+back.Encode(), htmlHdr)
		if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "could not be completed") {
			t.Errorf("callback for a level a reload removed: %d %q; want 403 step-up failed", resp.StatusCode, body)
		}
		if a := fx.audit("step_up_failure"); a == nil || a["reason"] != "level no longer configured" {
			t.Errorf("audit %v; want step_up_failure, level no longer configured", a)
		}
	})
	t.Run("login naming a removed level", func(t *testing.T) {
		fx := newFlowFixture(t, oidctest.Options{})
		if err := fx.h.SetRoutes(bare); err != nil {
			t.Fatal(err)
		}
		resp := fx.get(reservedPrefix+"login?level=mfa&rd=/", jsonHdr)
		if body := readBody(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Unknown verification level") {
			t.Errorf("login for a removed level: %d %q; want 400 unknown level", resp.StatusCode, body)
		}
	})
	t.Run("forward-auth naming a removed level", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
		if err := f.h.SetRoutes(bare); err != nil {
			t.Fatal(err)
		}
		code, body := f.raw("GET /.stepgate/auth?level=mfa HTTP/1.1\r\nHost: gateway.test\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: gateway.test\r\nX-Forwarded-Uri: /public/x\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n\r\n")
		if code != http.StatusBadRequest || !strings.Contains(body, "level the gateway does not define") {
			t.Errorf("forward-auth for a removed level: %d %q; want 400 unknown level", code, body)
		}
	})
	t.Run("held transaction whose route was removed", func(t *testing.T) {
		fx := newConfirmFixture(t, nil)
		fx.signIn(strongFacts)
		id, resp := fx.hold(t, transferForm, sameOrigin)
		if resp.StatusCode != http.StatusSeeOther || id == "" {
			t.Fatalf("POST to a confirm route: %d; want 303 to the confirm page", resp.StatusCode)
		}
		_, _, csrf := fx.page(t, id)
		if csrf == "" {
			t.Fatal("the confirm page has no CSRF token")
		}
		if err := fx.h.SetRoutes(bare); err != nil {
			t.Fatal(err)
		}
		if resp := fx.decide(t, id, csrf, "confirm"); resp.StatusCode != http.StatusGone || fx.upstreamCount() != 0 {
			t.Errorf("confirming a hold whose route a reload removed: %d, %d upstream requests; want 410 and nothing sent", resp.StatusCode, fx.upstreamCount())
		}
	})
}

// Requests keep arriving while the routes change back and forth. Each one
// is decided on one generation only: with strip_path_params on, /public/a;p
// is /public/a and public (200); with it off the parameter is refused
// (400). A request canonicalized by one generation and matched by the
// other would meet the second one's deny rule: 403, which no single
// generation ever answers.
func TestSetRoutesUnderLoad(t *testing.T) {
	f := newFixture(t)
	a := Routes{
		Table:       mustTable(t, policy.TableOptions{}, policy.Rule{Name: "public", Path: "/public/**", Access: policy.Public}),
		PathOptions: policy.PathOptions{StripPathParams: true},
	}
	b := Routes{Table: mustTable(t, policy.TableOptions{}, policy.Rule{Name: "public", Path: "/public/**", Access: policy.Denied})}
	if err := f.h.SetRoutes(a); err != nil {
		t.Fatal(err)
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		failures []string
	)
	client := f.front.Client()
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := client.Get(f.front.URL + "/public/a;p")
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					statuses[resp.StatusCode]++
					resp.Body.Close()
				}
				mu.Unlock()
			}
		})
	}
	for i := range 200 {
		if err := f.h.SetRoutes([]Routes{b, a}[i%2]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d transport errors across the changes; first: %s", len(failures), failures[0])
	}
	for code, n := range statuses {
		if code != 200 && code != 400 {
			t.Errorf("%d answers %d; every answer must be one generation's: 200 or 400", n, code)
		}
	}
	if statuses[200] == 0 || statuses[400] == 0 {
		t.Errorf("answers %v; want both generations seen", statuses)
	}
}

// A request in flight finishes on the routes it started with. Here the
// routes change while forward-auth serves a question, between reading it
// and deciding it (the clock read between the two is the hook): the first
// generation makes /public public, the second denies it.
func TestInFlightRequestKeepsItsRoutes(t *testing.T) {
	a := Routes{Table: mustTable(t, policy.TableOptions{}, policy.Rule{Name: "public", Path: "/public/**", Access: policy.Public})}
	b := Routes{Table: mustTable(t, policy.TableOptions{}, policy.Rule{Name: "public", Path: "/public/**", Access: policy.Denied})}
	var (
		h     *Handler
		calls atomic.Int32 // clock reads since the request started; -1: not armed
	)
	calls.Store(-1)
	f := newFixture(t, func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.Table = a.Table
		c.Now = func() time.Time {
			// The first read starts the request; the second is forward-auth's
			// own, after it has read the original request.
			if calls.Load() >= 0 && calls.Add(1) == 2 {
				if err := h.SetRoutes(b); err != nil {
					t.Error(err)
				}
			}
			return time.Now()
		}
	})
	h = f.h
	calls.Store(0)
	ask := "GET /.stepgate/auth HTTP/1.1\r\nHost: gateway.test\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: gateway.test\r\nX-Forwarded-Uri: /public/a\r\nConnection: close\r\n\r\n"
	if code, body := f.raw(ask); code != http.StatusOK {
		t.Errorf("forward-auth while the routes changed under it: %d %s; want the first generation's 200", code, body)
	}
	if calls.Load() < 2 {
		t.Fatalf("the routes never changed during the request (%d clock reads); the test no longer tests anything", calls.Load())
	}
	if code, _ := f.raw(ask); code != http.StatusForbidden {
		t.Errorf("the next request: %d; want the second generation's 403", code)
	}
}
