package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// caddyGateway is real Caddy, running deploy/caddy/Caddyfile, with stepgate
// (configured as behind nginx: forward-auth only, trusting loopback) as its
// forward_auth service and a recording upstream behind it.
type caddyGateway struct {
	*gw      // url is Caddy's origin: what browsers use
	caddyLog string
}

func startCaddyGateway(t *testing.T) *caddyGateway {
	t.Helper()
	bin := toolBinary(t, "apt-get install -y caddy", "caddy", "/usr/bin/caddy")
	front := freePort(t)
	public := "http://" + front

	p := startIDP(t, public+"/.stepgate/callback")
	up := newUpstream(t)
	up.behindIngress.Store(true)
	env := map[string]string{"PUBLIC_URL": public, "ISSUER": p.url, "CLIENT_SECRET": "stepgate-test-secret"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gw{t: t, idp: p, up: up, url: public}
	g.launch("caddy.yaml", nginxConfig, env, ln)

	// deploy/caddy/Caddyfile as shipped, with only its placeholders
	// replaced, after a global options block of the test's own: the admin
	// API is off, so that this Caddy takes no port but its site's (the
	// default admin port, 2019, may be held by another test's Caddy).
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("..", "deploy", "caddy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	site := strings.NewReplacer("{{SITE}}", public, "{{STEPGATE}}", g.listen,
		"{{UPSTREAM}}", strings.TrimPrefix(up.srv.URL, "http://")).Replace(string(src))
	if strings.Contains(site, "{{") {
		t.Fatal("deploy/caddy/Caddyfile has a placeholder the test does not know")
	}
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte("{\n\tadmin off\n}\n\n"+site), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--adapter", "caddyfile", "--config", conf)
	// Caddy keeps its autosaved configuration and data under these; none of
	// it may land in the real home directory.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	cg := &caddyGateway{gw: g, caddyLog: filepath.Join(dir, "caddy.log")}
	startDaemon(t, "caddy", cmd, front, cg.caddyLog)
	return cg
}

// checkCaddyLog fails the test if Caddy logged an error: a 502 (stepgate
// not reached) or a handler that failed.
func (cg *caddyGateway) checkCaddyLog(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile(cg.caddyLog); err == nil && strings.Contains(string(b), `"level":"error"`) {
		t.Errorf("caddy logged an error:\n%s", grepLines(string(b), `"level":"error"`, 5))
	}
}

func TestCaddyLoginAndStepUp(t *testing.T) {
	cg := startCaddyGateway(t)
	cg.script(mfaLogin("alice"))
	b := cg.browser()

	// Public: no login. Every request the browser sends also carries forged
	// identity headers in several spellings; the upstream fails the test if
	// any reaches it.
	resp, chain := b.browse(cg.url+"/healthz", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /healthz" || len(chain) != 1 {
		t.Fatalf("public route: %d %q after %d hops; want the upstream's 200 directly", resp.StatusCode, got, len(chain))
	}
	if r := cg.up.last(); r.Header.Get("X-Stepgate-Subject") != "" {
		t.Errorf("public route: upstream subject %q; want none before login", r.Header.Get("X-Stepgate-Subject"))
	}

	// Login on a plain route: stepgate's 302 (mode=redirect) passes through
	// Caddy, one trip to the provider, back to the page with its query,
	// identity copied from stepgate's auth answer.
	resp, chain = b.browse(cg.url+"/account?tab=1", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /account" {
		t.Fatalf("login: final answer %d %q; want 200 from upstream (hops %v)", resp.StatusCode, got, chain)
	}
	if chain[0].status != http.StatusFound || !strings.HasPrefix(chain[0].loc, cg.url+"/.stepgate/login?") {
		t.Errorf("first hop %+v; want stepgate's 302 to its sign-in URL on Caddy's origin", chain[0])
	}
	if n := authorizeHops(chain, cg.idp.url); n != 1 {
		t.Errorf("login took %d trips to the provider; want 1", n)
	}
	r := cg.up.last()
	if r.URL.RawQuery != "tab=1" {
		t.Errorf("upstream query %q; want tab=1", r.URL.RawQuery)
	}
	identity := []struct{ name, want string }{
		{"X-Stepgate-Subject", "alice"},
		{"X-Stepgate-Email", "alice@bank.example"},
		{"X-Stepgate-Acr", ""},
		{"X-Stepgate-Amr", "pwd"},
		{"X-Stepgate-Report", ""},
	}
	for _, h := range identity {
		if got := r.Header.Get(h.name); got != h.want {
			t.Errorf("upstream %s %q; want %q", h.name, got, h.want)
		}
	}
	if r.Header.Get("X-Stepgate-Auth-Time") == "" {
		t.Errorf("upstream has no X-Stepgate-Auth-Time: %v", r.Header)
	}

	// An API call that needs a step-up gets stepgate's 401 through Caddy,
	// with the sign-in URL, and does not reach the app.
	before := cg.up.count()
	req, err := http.NewRequest(http.MethodPost, cg.url+"/api/transfers/1", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	apiResp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body(t, apiResp)
	if signin := apiResp.Header.Get("X-Stepgate-Signin"); apiResp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(signin, "/.stepgate/login?level=mfa&rd=%2Fapi%2Ftransfers%2F1") {
		t.Errorf("API step-up: %d with X-Stepgate-Signin %q; want 401 naming the mfa sign-in URL", apiResp.StatusCode, signin)
	}
	if n := cg.up.count() - before; n != 0 {
		t.Errorf("API step-up: the upstream received %d request(s); want none", n)
	}

	// Step-up on a sensitive route: the browser is sent to the sign-in URL
	// with the level, the provider is asked for multi-factor, and the app
	// then receives the stronger identity.
	resp, chain = b.browse(cg.url+"/admin/transfer", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /admin/transfer" {
		t.Fatalf("step-up: final answer %d %q; want 200 from upstream (hops %v)", resp.StatusCode, got, chain)
	}
	if len(chain) < 2 || chain[0].status != http.StatusFound || !strings.Contains(chain[0].loc, "/.stepgate/login?level=mfa&rd=%2Fadmin%2Ftransfer") {
		t.Errorf("first hop %+v; want stepgate's 302 to the mfa sign-in URL", chain[0])
	}
	reqs := cg.idp.Requests()
	if len(reqs) != 2 || len(reqs[1].ACRValues) != 1 || reqs[1].ACRValues[0] != acrMFA {
		t.Errorf("provider saw %+v; want a second, multi-factor request", reqs)
	}
	if r := cg.up.last(); r.Header.Get("X-Stepgate-Acr") != acrMFA || r.Header.Get("X-Stepgate-Subject") != "alice" {
		t.Errorf("upstream acr %q subject %q after step-up; want %q for alice", r.Header.Get("X-Stepgate-Acr"), r.Header.Get("X-Stepgate-Subject"), acrMFA)
	}
	cg.checkCaddyLog(t)
}

// The description of the original request is Caddy's, never the client's:
// a spoofed X-Forwarded-* or X-Original-* header neither opens a sensitive
// route nor closes a public one, and a client cannot ask stepgate's auth
// endpoint through Caddy.
func TestCaddySpoofedDescriptions(t *testing.T) {
	cg := startCaddyGateway(t)
	cookie := cg.signIn(t, pwdLogin("mallory")) // signed in, never multi-factor
	host := strings.TrimPrefix(cg.url, "http://")

	tests := []struct {
		name, method, target, extra string
		// reach: the request must reach the app at target (stepgate decided
		// on what Caddy saw); otherwise it must not reach the app at all.
		reach bool
	}{
		{"X-Forwarded-Uri names a public page", "GET", "/admin/transfer", "X-Forwarded-Uri: /healthz\r\n", false},
		{"X-Original-URI names a public page", "GET", "/admin/transfer", "X-Original-URI: /healthz\r\n", false},
		{"X-Original-URL names a public page", "GET", "/admin/transfer", "X-Original-URL: http://" + host + "/healthz\r\n", false},
		{"X-Forwarded-Method", "POST", "/admin/transfer", "X-Forwarded-Method: GET\r\nX-Original-Method: GET\r\n", false},
		{"X-Forwarded-Host", "POST", "/admin/transfer", "X-Forwarded-Host: other.example\r\n", false},
		{"all at once", "POST", "/api/transfers/1",
			"X-Forwarded-Uri: /healthz\r\nX-Original-URI: /healthz\r\nX-Original-URL: http://other.example/healthz\r\n" +
				"X-Forwarded-Method: GET\r\nX-Original-Method: GET\r\nX-Forwarded-Host: other.example\r\n", false},
		{"Connection names the description", "GET", "/admin/transfer",
			"Connection: close, X-Forwarded-Uri, X-Forwarded-Host, X-Forwarded-Method\r\n", false},
		{"X-Forwarded-Prefix", "GET", "/admin/transfer", "X-Forwarded-Prefix: /healthz\r\n", false},
		// The other way round: Caddy's description wins, so these pass.
		{"a public page claiming to be sensitive", "GET", "/healthz", "X-Forwarded-Uri: /admin/transfer\r\nX-Forwarded-Method: DELETE\r\n", true},
		{"a plain page with a contradicting alias", "GET", "/account", "X-Original-URI: /admin/transfer\r\nX-Original-Method: DELETE\r\n", true},
		{"a plain page naming the description in Connection", "GET", "/account", "Connection: X-Forwarded-Uri\r\n", true},
		{"a plain page with a spoofed host", "GET", "/account", "X-Forwarded-Host: other.example\r\n", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := cg.up.count()
			resp, _ := cg.rawResponse(t, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nAccept: text/html\r\n%sContent-Length: 0\r\n\r\n",
				tc.method, tc.target, host, cookie, tc.extra))
			status, loc := resp.StatusCode, resp.Header.Get("Location")
			n := cg.up.count() - before
			if tc.reach {
				if status != 200 || n != 1 || cg.up.last().URL.Path != tc.target {
					t.Fatalf("status %d, %d upstream request(s); want the upstream's 200 for %s", status, n, tc.target)
				}
				return
			}
			if n != 0 {
				t.Fatalf("the upstream received %d request(s); want none (status %d)", n, status)
			}
			switch {
			case status >= 500:
				t.Errorf("status %d; want a clear refusal", status)
			case status < 300:
				t.Errorf("status %d; want a refusal", status)
			case status == http.StatusFound && !strings.Contains(loc, "level=mfa"):
				t.Errorf("redirect to %q; want only a multi-factor sign-in", loc)
			}
		})
	}

	// The auth endpoint through Caddy, in spellings Caddy's matcher may or
	// may not fold, describing a page mallory may see: believed, that
	// description would be a 200 with her identity. Never an allow, never an
	// identity.
	for _, target := range []string{"/.stepgate/auth", "/.stepgate/auth?mode=status", "/.stepgate/auth/account",
		"/.stepgate/AUTH", "/.stepgate/%61uth", "/.stepgate//auth", "/.stepgate/./auth", "/.stepgate/x/../auth"} {
		resp, _ := cg.rawResponse(t, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: %s\r\nX-Forwarded-Uri: /account\r\n\r\n",
			target, host, cookie, host))
		if resp.StatusCode < 300 || resp.StatusCode >= 500 || resp.Header.Get("X-Stepgate-Subject") != "" {
			t.Errorf("GET %s through Caddy: %d (subject %q); want a refusal, the auth endpoint unreachable for clients",
				target, resp.StatusCode, resp.Header.Get("X-Stepgate-Subject"))
		}
	}
	cg.checkCaddyLog(t)
}

// A client's X-Stepgate-* headers, in any spelling, reach neither stepgate
// nor the app: not a level, not an answer style, not an identity. The app
// gets stepgate's identity only.
func TestCaddyClientStepgateHeaders(t *testing.T) {
	cg := startCaddyGateway(t)
	cookie := cg.signIn(t, pwdLogin("mallory"))
	host := strings.TrimPrefix(cg.url, "http://")
	const marker = "zq7marker"
	tests := []struct {
		name, target, extra string
		want                int
		wantLoc             string // a substring of Location, for 302
	}{
		{"junk level on a public page", "/healthz", "X-Stepgate-Level: <" + marker + ">\r\n", 200, ""},
		{"junk level on a plain page", "/account", "X-Stepgate-Level: " + marker + "\r\n", 200, ""},
		{"junk level on a sensitive page", "/admin/transfer", "X-Stepgate-Level: " + marker + "\r\n", 302, "level=mfa"},
		{"a real level cannot be forced", "/account", "X-Stepgate-Level: mfa\r\nx-stepgate-level: mfa\r\n", 200, ""},
		{"forged reason", "/admin/transfer", "X-Stepgate-Reason: " + marker + "\r\n", 302, "level=mfa"},
		{"forged sign-in URL", "/admin/transfer", "X-Stepgate-Signin: http://" + marker + ".example/\r\n", 302, "level=mfa"},
		{"forged identity, hyphens", "/account",
			"X-Stepgate-Subject: forged-admin\r\nX-Stepgate-Acr: forged-acr\r\nX-Stepgate-Amr: forged-mfa\r\n" +
				"X-Stepgate-Email: forged@evil.example\r\nX-Stepgate-Auth-Time: forged-time\r\nX-Stepgate-Report: forged-report\r\n", 200, ""},
		{"forged identity, other spellings", "/account",
			"X_Stepgate_Acr: forged-acr\r\nX.Stepgate.Amr: forged-mfa\r\nx-STEPGATE-subject: forged-admin\r\nX-Stepgate_Email: forged-email\r\n", 200, ""},
		{"forged identity on a public page", "/healthz", "X-Stepgate-Subject: forged-admin\r\nX_Stepgate_Subject: forged-admin\r\n", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := cg.up.count()
			status, loc := cg.raw(t, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nAccept: text/html\r\n%s\r\n", tc.target, host, cookie, tc.extra))
			if status != tc.want {
				t.Fatalf("status %d; want %d", status, tc.want)
			}
			if tc.want == http.StatusFound && (!strings.Contains(loc, tc.wantLoc) || strings.Contains(loc, marker)) {
				t.Errorf("Location %q; want the gateway's sign-in URL with %s", loc, tc.wantLoc)
			}
			if tc.want != http.StatusOK {
				return
			}
			// Reached the app (which itself fails the test on any forged or
			// aliased identity header) with stepgate's identity: the
			// session's, on a public page too.
			if n := cg.up.count() - before; n != 1 {
				t.Fatalf("the upstream received %d request(s); want 1", n)
			}
			r := cg.up.last()
			if got := r.Header.Get("X-Stepgate-Subject"); got != "mallory" {
				t.Errorf("upstream subject %q; want mallory", got)
			}
			for name := range r.Header {
				if strings.Contains(strings.ToLower(name), "stepgate") && !strings.HasPrefix(name, "X-Stepgate-") {
					t.Errorf("upstream received %s", name)
				}
			}
		})
	}
	logs := cg.logs.String()
	if strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("stepgate logged an ERROR line:\n%s", grepLines(logs, `"level":"ERROR"`, 5))
	}
	if strings.Contains(logs, marker) {
		t.Errorf("a client's X-Stepgate-* value reached stepgate's log:\n%s", grepLines(logs, marker, 5))
	}
	cg.checkCaddyLog(t)
}

// TestCaddyBypassCorpus sends the whole corpus through real Caddy running
// the shipped Caddyfile, signed in without multi-factor: nothing reaches the
// app, nothing is a 5xx.
func TestCaddyBypassCorpus(t *testing.T) {
	cg := startCaddyGateway(t)
	cookie := cg.signIn(t, pwdLogin("mallory"))
	sendBypassCorpus(t, cg.gw, cookie)
	cg.checkCaddyLog(t)
}
