package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

// weak is satisfied by any password login: asking for it must never lower
// what a route requires.
var weak = &policy.Level{Name: "weak", SatisfiedBy: []policy.Alternative{{AMR: []string{"pwd"}}}}

// authFixture is a forward-auth-only Handler (no upstream) that trusts
// 10.0.0.0/8 as its ingress. Its log, JSON from the debug level up, is kept
// so tests can read what a request made the gateway say.
type authFixture struct {
	t     *testing.T
	h     *Handler
	store *session.Store
	logs  bytes.Buffer
}

const ingressAddr = "10.1.2.3:40000"

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	rules := []policy.Rule{
		{Name: "public", Path: "/public/**", Access: policy.Public},
		{Name: "transfer-read", Path: "/admin/transfer/**", Methods: []string{"GET"}, Access: policy.Authenticated},
		{Name: "transfer", Path: "/admin/transfer/**", Access: policy.Leveled, Level: mfa},
		{Name: "admin", Path: "/admin/**", Access: policy.Leveled, Level: mfa},
		{Name: "blocked", Path: "/blocked/**", Access: policy.Denied},
	}
	table, err := policy.NewTable(rules, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := session.New(session.Config{Secrets: [][]byte{[]byte(strings.Repeat("k", 32))}, Lifetime: time.Hour, Issuer: "https://idp", ClientID: "stepgate"})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := url.Parse("https://bank.example")
	f := &authFixture{t: t, store: store}
	f.h, err = New(Config{
		Table: table, Levels: []*policy.Level{mfa, weak}, Sessions: store, PublicURL: pub,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Logger:         slog.New(slog.NewJSONHandler(&f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *authFixture) cookie(facts policy.Facts) string {
	rec := httptest.NewRecorder()
	if _, err := f.store.Save(rec, facts, time.Now()); err != nil {
		f.t.Fatal(err)
	}
	c := rec.Result().Cookies()[0]
	return c.Name + "=" + c.Value
}

// ask sends one auth request from peer with the given headers; each header
// value may hold several lines separated by "\n".
func (f *authFixture) ask(peer, method, target string, hdr map[string]string) *http.Response {
	f.t.Helper()
	r := httptest.NewRequest(method, target, nil)
	r.Host = "stepgate.internal:8080"
	r.RemoteAddr = peer
	for k, v := range hdr {
		r.Header.Del(k)
		for line := range strings.SplitSeq(v, "\n") {
			r.Header.Add(k, line)
		}
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, r)
	return rec.Result()
}

// orig describes an original request the way Traefik and Caddy do.
func orig(method, uri string) map[string]string {
	return map[string]string{"X-Forwarded-Method": method, "X-Forwarded-Host": "bank.example", "X-Forwarded-Uri": uri}
}

func with(base map[string]string, kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
			continue
		}
		m[kv[i]] = kv[i+1]
	}
	return m
}

var (
	pwdFacts = policy.Facts{Issuer: "https://idp", Subject: "alice", Email: "alice@bank.example", AMR: []string{"pwd"}, AuthTime: time.Now()}
	mfaFacts = policy.Facts{Issuer: "https://idp", Subject: "alice", Email: "alice@bank.example", ACR: "urn:mfa", AMR: []string{"pwd", "otp"}, AuthTime: time.Now()}
)

func TestForwardAuthDecides(t *testing.T) {
	f := newAuthFixture(t)
	pwd, strong := f.cookie(pwdFacts), f.cookie(mfaFacts)
	const html = "text/html"
	tests := []struct {
		name       string
		target     string
		hdr        map[string]string
		cookie     string
		accept     string
		wantStatus int
		wantSignin string // expected sign-in URL on 401 and 302
	}{
		{"public without session", "/.stepgate/auth", orig("GET", "/public/x"), "", "", 200, ""},
		{"authenticated route without session", "/.stepgate/auth", orig("GET", "/account?tab=1"), "", "", 401,
			"https://bank.example/.stepgate/login?rd=%2Faccount%3Ftab%3D1"},
		{"sensitive POST with password session", "/.stepgate/auth", orig("POST", "/admin/transfer/new"), pwd, "", 401,
			"https://bank.example/.stepgate/login?level=mfa&rd=%2Fadmin%2Ftransfer%2Fnew"},
		{"sensitive POST with mfa session", "/.stepgate/auth", orig("POST", "/admin/transfer/new"), strong, "", 200, ""},
		{"GET on the read rule", "/.stepgate/auth", orig("GET", "/admin/transfer/1"), pwd, "", 200, ""},
		{"method override claims POST", "/.stepgate/auth", with(orig("GET", "/admin/transfer/1"), "X-HTTP-Method-Override", "POST"), pwd, "", 401,
			"https://bank.example/.stepgate/login?level=mfa&rd=%2Fadmin%2Ftransfer%2F1"},
		{"_method in the original query", "/.stepgate/auth", orig("GET", "/admin/transfer/1?_method=DELETE"), pwd, "", 401,
			"https://bank.example/.stepgate/login?level=mfa&rd=%2Fadmin%2Ftransfer%2F1%3F_method%3DDELETE"},
		{"denied route", "/.stepgate/auth", orig("GET", "/blocked/x"), strong, "", 403, ""},
		{"ingress-nginx aliases", "/.stepgate/auth", map[string]string{
			"X-Original-Method": "POST", "X-Original-Url": "https://bank.example/admin/transfer/new"}, pwd, "", 401,
			"https://bank.example/.stepgate/login?level=mfa&rd=%2Fadmin%2Ftransfer%2Fnew"},
		{"X-Original-URI alias", "/.stepgate/auth", map[string]string{
			"X-Original-Method": "POST", "X-Forwarded-Host": "bank.example", "X-Original-Uri": "/admin/transfer/new"}, strong, "", 200, ""},

		// Traefik and Caddy pass the auth answer to the client: a browser
		// navigation gets a 302, anything else still a 401.
		{"redirect mode, navigation", "/.stepgate/auth?mode=redirect", orig("GET", "/admin/settings"), pwd, html, 302,
			"https://bank.example/.stepgate/login?level=mfa&rd=%2Fadmin%2Fsettings"},
		{"redirect mode by header", "/.stepgate/auth", with(orig("GET", "/admin/settings"), HeaderAuthMode, "redirect"), pwd, html, 302,
			"https://bank.example/.stepgate/login?level=mfa&rd=%2Fadmin%2Fsettings"},
		{"redirect mode, API call", "/.stepgate/auth?mode=redirect", orig("POST", "/admin/transfer/x"), pwd, "application/json", 401,
			"https://bank.example/.stepgate/login?level=mfa&rd=%2Fadmin%2Ftransfer%2Fx"},
		{"status mode never redirects", "/.stepgate/auth", orig("GET", "/admin/settings"), pwd, html, 401,
			"https://bank.example/.stepgate/login?level=mfa&rd=%2Fadmin%2Fsettings"},
		{"redirect mode, allowed", "/.stepgate/auth?mode=redirect", orig("GET", "/admin/settings"), strong, html, 200, ""},

		// Envoy ext_authz with path_prefix: original path after the prefix,
		// original method and Host.
		{"envoy shape, sensitive", "POST /.stepgate/auth/admin/transfer/new?x=1", nil, pwd, "", 401,
			"https://bank.example/.stepgate/login?level=mfa&rd=%2Fadmin%2Ftransfer%2Fnew%3Fx%3D1"},
		{"envoy shape, satisfied", "/.stepgate/auth/admin/transfer/new", nil, strong, "", 200, ""},
		{"envoy shape, public", "/.stepgate/auth/public/a", nil, "", "", 200, ""},
		{"envoy shape, redirect by header", "/.stepgate/auth/admin/settings", map[string]string{HeaderAuthMode: "redirect"}, "", html, 302,
			"https://bank.example/.stepgate/login?level=mfa&rd=%2Fadmin%2Fsettings"},
		// The auth request's own target is canonicalized first, like any
		// request's, so what cannot be is the proxy's 400. Envoy passes any
		// status to the client; nginx never asks in this shape.
		{"envoy shape, encoded slash", "/.stepgate/auth/public%2F..%2Fadmin/transfer", nil, strong, "", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := with(tc.hdr, "Cookie", tc.cookie, "Accept", tc.accept)
			method, target, ok := strings.Cut(tc.target, " ")
			if !ok {
				method, target = http.MethodGet, tc.target
			}
			resp := f.ask(ingressAddr, method, target, hdr)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d; want %d", resp.StatusCode, tc.wantStatus)
			}
			switch tc.wantStatus {
			case 302:
				if got := resp.Header.Get("Location"); got != tc.wantSignin {
					t.Errorf("Location %q; want %q", got, tc.wantSignin)
				}
			case 401:
				if got := resp.Header.Get(HeaderSignin); got != tc.wantSignin {
					t.Errorf("%s %q; want %q", HeaderSignin, got, tc.wantSignin)
				}
				if resp.Header.Get("Location") != "" {
					t.Error("401 carries a Location header")
				}
			}
			if tc.wantStatus != 200 && resp.Header.Get(HeaderSubject) != "" {
				t.Errorf("non-2xx answer carries a subject %q", resp.Header.Get(HeaderSubject))
			}
		})
	}
}

func TestForwardAuthIdentityHeadersAlwaysPresent(t *testing.T) {
	f := newAuthFixture(t)
	for _, tc := range []struct {
		name   string
		cookie string
		uri    string
		want   map[string]string
	}{
		{"public, no session", "", "/public/x", map[string]string{HeaderSubject: "", HeaderEmail: "", HeaderACR: "", HeaderAMR: "", HeaderAuthTime: ""}},
		{"mfa session", f.cookie(mfaFacts), "/admin/transfer/x", map[string]string{
			HeaderSubject: "alice", HeaderEmail: "alice@bank.example", HeaderACR: "urn:mfa", HeaderAMR: "pwd,otp",
			HeaderAuthTime: strconv.FormatInt(mfaFacts.AuthTime.Unix(), 10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The client's own copies arrive too (nginx passes the
			// client's headers to the auth request); they must not echo.
			hdr := with(orig("POST", tc.uri), "Cookie", tc.cookie, HeaderSubject, "forged", "X-Stepgate-Acr", "forged")
			resp := f.ask(ingressAddr, http.MethodGet, authPath, hdr)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d; want 200", resp.StatusCode)
			}
			// X-Stepgate-Report too, empty on a route that is not
			// report-only: Caddy 2.6's copy_headers gives the app its own
			// unreplaced placeholder text for a header the answer lacks.
			for _, name := range append(slices.Clone(identityHeaders), HeaderReport) {
				vals, ok := resp.Header[name]
				if !ok || len(vals) != 1 {
					t.Errorf("%s: %q; want exactly one value, present even when empty", name, vals)
					continue
				}
				if want := tc.want[name]; vals[0] != want {
					t.Errorf("%s = %q; want %q", name, vals[0], want)
				}
				if vals[0] == "forged" {
					t.Errorf("%s echoes the client's value", name)
				}
			}
		})
	}
}

// Nothing a client can do to the description of the original request may
// produce a 200 for a sensitive request, or a decision about another one.
// A description that cannot be decided is a 403 naming why in one fixed word
// (nginx auth_request turns anything but 2xx, 401 and 403 into a 500), and
// the answer carries nothing the request said.
func TestForwardAuthRefusesBadDescriptions(t *testing.T) {
	f := newAuthFixture(t)
	pwd := f.cookie(pwdFacts)
	good := orig("POST", "/admin/transfer/new")
	const (
		ambiguous = ReasonAmbiguous
		malformed = ReasonMalformed
	)
	tests := []struct {
		name   string
		peer   string
		target string // default authPath
		hdr    map[string]string
		reason string // X-Stepgate-Reason; "" for none
	}{
		// An untrusted peer is refused before anything it says is read.
		{"untrusted peer spoofing X-Forwarded-Uri", "203.0.113.9:5555", "", orig("GET", "/public/health"), ""},
		{"untrusted IPv6 peer", "[2001:db8::1]:5555", "", orig("GET", "/public/health"), ""},
		{"unparseable peer", "somewhere", "", orig("GET", "/public/health"), ""},

		{"missing X-Forwarded-Uri", ingressAddr, "", with(good, "X-Forwarded-Uri", ""), ambiguous},
		{"missing X-Forwarded-Method", ingressAddr, "", with(good, "X-Forwarded-Method", ""), ambiguous},
		{"missing X-Forwarded-Host", ingressAddr, "", with(good, "X-Forwarded-Host", ""), ambiguous},
		{"duplicate X-Forwarded-Uri", ingressAddr, "", with(good, "X-Forwarded-Uri", "/public/x\n/admin/transfer/new"), ambiguous},
		{"duplicate X-Forwarded-Method", ingressAddr, "", with(good, "X-Forwarded-Method", "GET\nPOST"), ambiguous},
		{"client adds X-Original-URI", ingressAddr, "", with(good, "X-Original-Uri", "/public/health"), ambiguous},
		{"client adds X-Original-URL", ingressAddr, "", with(good, "X-Original-Url", "https://bank.example/public/health"), ambiguous},
		{"client adds X-Original-Method", ingressAddr, "", with(good, "X-Original-Method", "GET"), ambiguous},
		{"X-Original-URL for another host", ingressAddr, "", with(good, "X-Original-Url", "https://evil.example/admin/transfer/new"), ambiguous},
		{"Connection deletes X-Forwarded-Uri", ingressAddr, "", with(good, "Connection", "close, X-Forwarded-Uri"), ambiguous},
		{"Connection deletes, lower case", ingressAddr, "", with(good, "Connection", "keep-alive, x-forwarded-host"), ambiguous},

		{"empty X-Forwarded-Uri", ingressAddr, "", with(good, "X-Forwarded-Uri", " "), malformed},
		{"absolute-form URI", ingressAddr, "", with(good, "X-Forwarded-Uri", "http://bank.example/public/x"), malformed},
		{"asterisk URI", ingressAddr, "", with(good, "X-Forwarded-Uri", "*"), malformed},
		{"encoded slash", ingressAddr, "", with(good, "X-Forwarded-Uri", "/public%2F..%2Fadmin/transfer/new"), malformed},
		{"backslash", ingressAddr, "", with(good, "X-Forwarded-Uri", "/public\\..\\admin/transfer/new"), malformed},
		{"double encoding", ingressAddr, "", with(good, "X-Forwarded-Uri", "/public/%252e%252e/admin/transfer/new"), malformed},
		{"dot segment hides a sensitive path", ingressAddr, "", with(good, "X-Forwarded-Uri", "/admin/transfer/x/../../../public/y"), malformed},
		{"dot segments: not what the app receives", ingressAddr, "", with(good, "X-Forwarded-Uri", "/admin/x/../../public/y"), malformed},
		{"encoded dot segments", ingressAddr, "", with(good, "X-Forwarded-Uri", "/admin/x/%2e%2e/%2e%2e/public/y"), malformed},
		{"repeated slashes", ingressAddr, "", with(good, "X-Forwarded-Uri", "/public//y"), malformed},
		{"lower-case escape", ingressAddr, "", with(good, "X-Forwarded-Uri", "/public/%7ey"), malformed},
		{"dot-dot above root", ingressAddr, "", with(good, "X-Forwarded-Uri", "/../admin/transfer/new"), malformed},
		{"space in URI", ingressAddr, "", with(good, "X-Forwarded-Uri", "/public/x /admin/transfer/new"), malformed},
		{"fragment", ingressAddr, "", with(good, "X-Forwarded-Uri", "/public/x#/admin/transfer/new"), malformed},
		{"non-ASCII", ingressAddr, "", with(good, "X-Forwarded-Uri", "/ａdmin/transfer/new"), malformed},
		{"lower-case method", ingressAddr, "", with(good, "X-Forwarded-Method", "post"), malformed},
		{"TRACE", ingressAddr, "", with(good, "X-Forwarded-Method", "TRACE"), malformed},
		{"bad host", ingressAddr, "", with(good, "X-Forwarded-Host", "bank.example@evil"), malformed},
		{"X-Original-URL without path", ingressAddr, "", map[string]string{"X-Original-Method": "POST", "X-Original-Url": "https://bank.example"}, malformed},
		{"X-Original-URL relative", ingressAddr, "", map[string]string{"X-Original-Method": "POST", "X-Forwarded-Host": "bank.example", "X-Original-Url": "/admin/transfer/new"}, malformed},

		// Envoy's path-prefix shape.
		{"envoy shape, dot segments", ingressAddr, "/.stepgate/auth/public/../admin/transfer", nil, malformed},
		{"envoy shape with header-shape headers", ingressAddr, "/.stepgate/auth/admin/transfer/x", orig("GET", "/public/x"), ambiguous},
		{"envoy shape with only X-Original-URL", ingressAddr, "/.stepgate/auth/", map[string]string{"X-Original-Url": "https://bank.example/admin/transfer/x"}, ambiguous},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == "" {
				target = authPath
			}
			resp := f.ask(tc.peer, http.MethodGet, target, with(tc.hdr, "Cookie", pwd))
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d; want 403", resp.StatusCode)
			}
			if got := resp.Header.Values(HeaderReason); tc.reason == "" && len(got) != 0 || tc.reason != "" && (len(got) != 1 || got[0] != tc.reason) {
				t.Errorf("%s %q; want %q", HeaderReason, got, tc.reason)
			}
			if resp.Header.Get(HeaderSignin) != "" || resp.Header.Get("Location") != "" {
				t.Errorf("a refused description still produced a sign-in URL (a decision about some request)")
			}
			if resp.Header.Get(HeaderSubject) != "" {
				t.Errorf("a refusal carries a subject %q", resp.Header.Get(HeaderSubject))
			}
			b, _ := io.ReadAll(resp.Body)
			var body errorBody
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatalf("body %q: %v", b, err)
			}
			if want := cmpOr(tc.reason, "forbidden"); body.Error != want {
				t.Errorf("body error %q; want %q", body.Error, want)
			}
			echoes(t, resp, b, tc.hdr)
		})
	}
}

// echoes fails the test if the answer's headers or body repeat any value
// the request sent in sent (each value may hold several lines).
func echoes(t *testing.T, resp *http.Response, body []byte, sent map[string]string) {
	t.Helper()
	for name, v := range sent {
		for line := range strings.SplitSeq(v, "\n") {
			if len(line) < 4 {
				continue // "GET" and the like occur in any text
			}
			if bytes.Contains(body, []byte(line)) {
				t.Errorf("body repeats the request's %s %q: %s", name, line, body)
			}
			for k, vals := range resp.Header {
				for _, got := range vals {
					if strings.Contains(got, line) {
						t.Errorf("answer header %s %q repeats the request's %s", k, got, name)
					}
				}
			}
		}
	}
}

// The 401 and 403 decisions name only what the gateway knows: the level,
// the public sign-in URL and the return path, never the client's host,
// headers or, on a denial, its path.
func TestForwardAuthDecisionsEchoNothing(t *testing.T) {
	f := newAuthFixture(t)
	pwd := f.cookie(pwdFacts)
	const marker = "zq7marker"
	tests := []struct {
		name string
		hdr  map[string]string
		want int
		html bool
	}{
		{"login, odd host", with(orig("GET", "/account"), "X-Forwarded-Host", marker+".example"), 401, false},
		{"step-up, odd host and mode", with(orig("POST", "/admin/transfer/new"), "X-Forwarded-Host", marker+".example", HeaderAuthMode, marker, "Cookie", pwd), 401, false},
		{"unknown override method", with(orig("GET", "/admin/transfer/1"), "X-HTTP-Method-Override", "POST"+marker, "Cookie", pwd), 403, false},
		{"denied path, JSON", with(orig("GET", "/blocked/"+marker), "Cookie", pwd), 403, false},
		{"denied path, page", with(orig("GET", "/blocked/"+marker), "Cookie", pwd), 403, true},
		{"denied, odd host, page", with(orig("GET", "/blocked/x"), "X-Forwarded-Host", marker+".example", "Cookie", pwd), 403, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := tc.hdr
			if tc.html {
				hdr = with(hdr, "Accept", "text/html")
			}
			resp := f.ask(ingressAddr, http.MethodGet, authPath, hdr)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d; want %d", resp.StatusCode, tc.want)
			}
			echoes(t, resp, b, map[string]string{"marker": marker})
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// An unknown level name on the auth request is a 400 with a fixed message:
// never a 500, never the name echoed to the client, and never the name in an
// ERROR line. A client behind an ingress that passes its headers on can send
// X-Stepgate-Level with anything in it. Only a bounded name spelled like a
// level, which is what an operator's typo in the ingress looks like, may
// appear in the access line.
func TestForwardAuthUnknownLevel(t *testing.T) {
	f := newAuthFixture(t)
	good := orig("POST", "/admin/transfer/new")
	const marker = "zq7marker"
	tests := []struct {
		name, target string
		hdr          map[string]string
		logged       string // the only form of the name the log may hold; "" for none
	}{
		{"level header, junk", authPath, with(good, HeaderAuthLevel, "<script>"+marker+"</script>"), ""},
		{"level header, long", authPath, with(good, HeaderAuthLevel, strings.Repeat(marker, 100)), ""},
		{"level header, control characters", authPath, with(good, HeaderAuthLevel, marker+"\x1b[31m"), ""},
		{"level header, upper case", authPath, with(good, HeaderAuthLevel, "MFA"+marker), ""},
		{"level header, spelled like a level", authPath, with(good, HeaderAuthLevel, "mfa_"+marker), "mfa_" + marker},
		{"level query, a typo", authPath + "?level=mfa2", good, "mfa2"},
		{"level query, escaped junk", authPath + "?level=%0a" + marker + "%22", good, ""},
		{"one good and one unknown", authPath + "?level=mfa&level=" + marker + "-x", good, ""},
		{"envoy shape", "/.stepgate/auth/admin/transfer/new", map[string]string{HeaderAuthLevel: marker + " x"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.logs.Reset()
			resp := f.ask(ingressAddr, http.MethodGet, tc.target, tc.hdr)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d; want 400", resp.StatusCode)
			}
			if got := resp.Header.Get(HeaderReason); got != ReasonUnknownLevel {
				t.Errorf("%s %q; want %q", HeaderReason, got, ReasonUnknownLevel)
			}
			var body errorBody
			if err := json.Unmarshal(b, &body); err != nil || body.Error != ReasonUnknownLevel || body.Message == "" {
				t.Errorf("body %s; want a JSON error %q with a fixed message", b, ReasonUnknownLevel)
			}
			for k, vals := range resp.Header {
				for _, v := range vals {
					if strings.Contains(v, marker) {
						t.Errorf("answer header %s echoes the level name: %q", k, v)
					}
				}
			}
			if bytes.Contains(b, []byte(marker)) {
				t.Errorf("answer body echoes the level name: %s", b)
			}
			logs := f.logs.String()
			// Read as text: a record with its own "level" attribute decodes
			// to that attribute's value, hiding slog's level.
			if strings.Contains(logs, `"level":"ERROR"`) {
				t.Errorf("an unknown level name produced an ERROR line:\n%s", logs)
			}
			if rest := strings.ReplaceAll(logs, tc.logged, ""); tc.logged == "" && strings.Contains(logs, marker) || strings.Contains(rest, marker) {
				t.Errorf("log holds the client's level name beyond %q:\n%s", tc.logged, logs)
			}
			if tc.logged != "" && !strings.Contains(logs, tc.logged) {
				t.Errorf("log does not name the unknown level %q, which an operator needs to find the typo:\n%s", tc.logged, logs)
			}
		})
	}
}

// A level named by the ingress (or a client) is added to the route's
// requirement; it never replaces it.
func TestForwardAuthLevelOnlyStricter(t *testing.T) {
	f := newAuthFixture(t)
	pwd, strong := f.cookie(pwdFacts), f.cookie(mfaFacts)
	tests := []struct {
		name, target, uri, cookie string
		want                      int
		wantLevel                 string
	}{
		{"weak level does not lower mfa", "/.stepgate/auth?level=weak", "/admin/transfer/new", pwd, 401, "mfa"},
		{"mfa level on a public route", "/.stepgate/auth?level=mfa", "/public/x", "", 401, "mfa"},
		{"mfa level on an authenticated route", "/.stepgate/auth?level=mfa", "/account", pwd, 401, "mfa"},
		{"mfa level satisfied", "/.stepgate/auth?level=mfa", "/account", strong, 200, ""},
		{"weak level satisfied by password", "/.stepgate/auth?level=weak", "/account", pwd, 200, ""},
		{"both levels: each must hold", "/.stepgate/auth?level=weak&level=mfa", "/account", pwd, 401, "mfa"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.ask(ingressAddr, http.MethodGet, tc.target, with(orig("POST", tc.uri), "Cookie", tc.cookie))
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d; want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 401 {
				u, err := url.Parse(resp.Header.Get(HeaderSignin))
				if err != nil || u.Query().Get("level") != tc.wantLevel {
					t.Errorf("sign-in %q; want level %q", resp.Header.Get(HeaderSignin), tc.wantLevel)
				}
			}
		})
	}
	// The same through the header, which Envoy sets with headers_to_add.
	resp := f.ask(ingressAddr, http.MethodGet, "/.stepgate/auth/public/x", map[string]string{HeaderAuthLevel: "mfa"})
	if resp.StatusCode != 401 {
		t.Errorf("envoy shape with %s: mfa: status %d; want 401", HeaderAuthLevel, resp.StatusCode)
	}
}

func TestForwardAuthSignInReturnsLocally(t *testing.T) {
	f := newAuthFixture(t)
	// A query may hold anything a local path may; the sign-in URL stays on
	// public_url and rd stays local.
	resp := f.ask(ingressAddr, http.MethodGet, authPath, orig("GET", "/evil.example/x?next=//evil.example"))
	if resp.StatusCode != 401 {
		t.Fatalf("status %d; want 401", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get(HeaderSignin))
	if err != nil {
		t.Fatal(err)
	}
	if rd := u.Query().Get("rd"); rd != "/evil.example/x?next=//evil.example" || u.Host != "bank.example" {
		t.Errorf("sign-in %s (rd %q); want a bank.example URL with a local rd", u, rd)
	}
}

func TestForwardAuthSuffixed(t *testing.T) {
	for in, want := range map[string]string{
		"/.stepgate/auth":         "/auth",
		"/.stepgate/auth/":        "/auth/",
		"/.stepgate/auth/admin/x": "/auth/admin/x",
		"/.stepgate/authx":        "/auth",
		"/.stepgate/login":        "/auth",
	} {
		if got := forwardAuthSuffixed(in); got != want {
			t.Errorf("forwardAuthSuffixed(%q) = %q; want %q", in, got, want)
		}
	}
}
