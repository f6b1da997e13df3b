package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
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
// 10.0.0.0/8 as its ingress.
type authFixture struct {
	t     *testing.T
	h     *Handler
	store *session.Store
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
	h, err := New(Config{
		Table: table, Levels: []*policy.Level{mfa, weak}, Sessions: store, PublicURL: pub,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Logger:         discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &authFixture{t: t, h: h, store: store}
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
		{"dot segments: not what the app receives", "/.stepgate/auth", orig("GET", "/admin/x/../../public/y"), pwd, "", 400, ""},
		{"encoded dot segments", "/.stepgate/auth", orig("GET", "/admin/x/%2e%2e/%2e%2e/public/y"), pwd, "", 400, ""},
		{"repeated slashes", "/.stepgate/auth", orig("GET", "/public//y"), pwd, "", 400, ""},
		{"lower-case escape", "/.stepgate/auth", orig("GET", "/public/%7ey"), pwd, "", 400, ""},
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
		{"envoy shape, encoded slash", "/.stepgate/auth/public%2F..%2Fadmin/transfer", nil, strong, "", 400, ""},
		{"envoy shape with header-shape headers", "/.stepgate/auth/admin/transfer/x", orig("GET", "/public/x"), "", "", 400, ""},
		{"envoy shape with only X-Original-URL", "/.stepgate/auth/", map[string]string{"X-Original-Url": "https://bank.example/admin/transfer/x"}, "", "", 400, ""},
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
			for _, name := range IdentityHeaders {
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
func TestForwardAuthRefusesBadDescriptions(t *testing.T) {
	f := newAuthFixture(t)
	pwd := f.cookie(pwdFacts)
	good := orig("POST", "/admin/transfer/new")
	tests := []struct {
		name string
		peer string
		hdr  map[string]string
		want int
	}{
		{"untrusted peer spoofing X-Forwarded-Uri", "203.0.113.9:5555", orig("GET", "/public/health"), 403},
		{"untrusted IPv6 peer", "[2001:db8::1]:5555", orig("GET", "/public/health"), 403},
		{"unparseable peer", "somewhere", orig("GET", "/public/health"), 403},
		{"missing X-Forwarded-Uri", ingressAddr, with(good, "X-Forwarded-Uri", ""), 400},
		{"missing X-Forwarded-Method", ingressAddr, with(good, "X-Forwarded-Method", ""), 400},
		{"missing X-Forwarded-Host", ingressAddr, with(good, "X-Forwarded-Host", ""), 400},
		{"empty X-Forwarded-Uri", ingressAddr, with(good, "X-Forwarded-Uri", " "), 400},
		{"duplicate X-Forwarded-Uri", ingressAddr, with(good, "X-Forwarded-Uri", "/public/x\n/admin/transfer/new"), 400},
		{"duplicate X-Forwarded-Method", ingressAddr, with(good, "X-Forwarded-Method", "GET\nPOST"), 400},
		{"client adds X-Original-URI", ingressAddr, with(good, "X-Original-Uri", "/public/health"), 400},
		{"client adds X-Original-URL", ingressAddr, with(good, "X-Original-Url", "https://bank.example/public/health"), 400},
		{"client adds X-Original-Method", ingressAddr, with(good, "X-Original-Method", "GET"), 400},
		{"X-Original-URL for another host", ingressAddr, with(good, "X-Original-Url", "https://evil.example/admin/transfer/new"), 400},
		{"Connection deletes X-Forwarded-Uri", ingressAddr, with(good, "Connection", "close, X-Forwarded-Uri"), 400},
		{"Connection deletes, lower case", ingressAddr, with(good, "Connection", "keep-alive, x-forwarded-host"), 400},
		{"absolute-form URI", ingressAddr, with(good, "X-Forwarded-Uri", "http://bank.example/public/x"), 400},
		{"asterisk URI", ingressAddr, with(good, "X-Forwarded-Uri", "*"), 400},
		{"encoded slash", ingressAddr, with(good, "X-Forwarded-Uri", "/public%2F..%2Fadmin/transfer/new"), 400},
		{"backslash", ingressAddr, with(good, "X-Forwarded-Uri", "/public\\..\\admin/transfer/new"), 400},
		{"double encoding", ingressAddr, with(good, "X-Forwarded-Uri", "/public/%252e%252e/admin/transfer/new"), 400},
		{"dot segment hides a sensitive path", ingressAddr, with(good, "X-Forwarded-Uri", "/admin/transfer/x/../../../public/y"), 400},
		{"dot-dot above root", ingressAddr, with(good, "X-Forwarded-Uri", "/../admin/transfer/new"), 400},
		{"space in URI", ingressAddr, with(good, "X-Forwarded-Uri", "/public/x /admin/transfer/new"), 400},
		{"fragment", ingressAddr, with(good, "X-Forwarded-Uri", "/public/x#/admin/transfer/new"), 400},
		{"non-ASCII", ingressAddr, with(good, "X-Forwarded-Uri", "/ａdmin/transfer/new"), 400},
		{"lower-case method", ingressAddr, with(good, "X-Forwarded-Method", "post"), 400},
		{"TRACE", ingressAddr, with(good, "X-Forwarded-Method", "TRACE"), 400},
		{"bad host", ingressAddr, with(good, "X-Forwarded-Host", "bank.example@evil"), 400},
		{"X-Original-URL without path", ingressAddr, map[string]string{"X-Original-Method": "POST", "X-Original-Url": "https://bank.example"}, 400},
		{"X-Original-URL relative", ingressAddr, map[string]string{"X-Original-Method": "POST", "X-Forwarded-Host": "bank.example", "X-Original-Url": "/admin/transfer/new"}, 400},
		{"unknown level", ingressAddr, with(good, HeaderAuthLevel, "nonexistent"), 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.ask(tc.peer, http.MethodGet, authPath, with(tc.hdr, "Cookie", pwd))
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d; want %d", resp.StatusCode, tc.want)
			}
			if resp.Header.Get(HeaderSignin) != "" || resp.Header.Get("Location") != "" {
				t.Errorf("a refused description still produced a sign-in URL (a decision about some request)")
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
