package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/devidp"
)

// What the forward-auth suites share, whichever real proxy (nginx, Caddy)
// stands in front of stepgate: g.url is that proxy's origin.

// raw sends one request to the front proxy byte for byte and returns the
// status and the Location header.
func (g *gw) raw(t *testing.T, req string) (int, string) {
	t.Helper()
	resp, _ := g.rawResponse(t, req)
	return resp.StatusCode, resp.Header.Get("Location")
}

// rawResponse sends one request to the front proxy byte for byte and
// returns the response and its body.
func (g *gw) rawResponse(t *testing.T, req string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	// The method tells ReadResponse whether a body follows (none for HEAD).
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of the response to %q: %v", req, err)
	}
	return resp, string(b)
}

// signIn logs a browser in through the front proxy with the given identity
// and returns its cookies as a Cookie header value.
func (g *gw) signIn(t *testing.T, l devidp.Login) string {
	t.Helper()
	g.script(l)
	b := g.browser()
	resp, _ := b.browse(g.url+"/account", nil)
	if body(t, resp); resp.StatusCode != 200 {
		t.Fatalf("login: status %d; want 200", resp.StatusCode)
	}
	var cookie string
	for _, c := range b.jar.Cookies(mustURL(t, g.url)) {
		cookie += c.Name + "=" + c.Value + "; "
	}
	if cookie == "" {
		t.Fatal("no session cookie after login")
	}
	return cookie
}

// sendBypassCorpus sends every target of bypassCorpus in every shape
// through the front proxy with cookie (a session without multi-factor).
// Each request must be refused with a clear status, never a 5xx (a 500
// from nginx means stepgate gave an answer auth_request cannot use, a 502
// from Caddy that stepgate was not reached), and none may reach the app.
func sendBypassCorpus(t *testing.T, g *gw, cookie string) {
	t.Helper()
	host := strings.TrimPrefix(g.url, "http://")
	statuses := map[string]int{} // "status reason" -> count, for the log
	for _, target := range bypassCorpus.targets {
		for _, sh := range bypassCorpus.shapes {
			t.Run(sh.name+" "+target, func(t *testing.T) {
				before := g.up.count()
				req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n%sContent-Length: 0\r\n\r\n",
					sh.method, target, host, cookie, sh.extra)
				resp, _ := g.rawResponse(t, req)
				status, loc := resp.StatusCode, resp.Header.Get("Location")
				statuses[fmt.Sprintf("%d %s", status, resp.Header.Get("X-Stepgate-Reason"))]++
				if n := g.up.count() - before; n != 0 {
					t.Errorf("the upstream received %d request(s); want none (status %d)", n, status)
				}
				switch {
				case status >= 500:
					t.Errorf("status %d; want a clear refusal (400, 401, 403, 404, or a sign-in)", status)
				case status < 300:
					t.Errorf("status %d; want a refusal", status)
				case status == http.StatusFound && !strings.Contains(loc, "level=mfa"):
					t.Errorf("redirect to %q; want only a multi-factor sign-in", loc)
				}
			})
		}
	}
	t.Logf("statuses over %d requests: %v", len(bypassCorpus.targets)*len(bypassCorpus.shapes), statuses)
}

// toolBinary finds a program the test runs for real, or ends the test:
// under CI=true a missing program is a failure (test.sh installs it),
// elsewhere a skip. install says how to get it.
func toolBinary(t *testing.T, install string, candidates ...string) string {
	t.Helper()
	for _, p := range candidates {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; CI must install it (%s)", candidates[0], install)
	}
	t.Skipf("%s is not installed (%s); this end-to-end test needs it", candidates[0], install)
	return ""
}

// startDaemon starts cmd, a proxy in the foreground whose output goes to
// logPath, waits until it accepts connections on addr, and stops it when
// the test ends, showing its log if the test failed.
func startDaemon(t *testing.T, name string, cmd *exec.Cmd, addr, logPath string) {
	t.Helper()
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		out.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log:\n%s", name, b)
			}
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited: %v\n%s", name, err, b)
		default:
		}
		if conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start listening on %s within 15s", name, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The suites below run through any front proxy: g.url is its origin, and
// checkLog fails the test if the proxy logged an error.

func frontLoginAndStepUp(t *testing.T, g *gw, checkLog func(*testing.T)) {
	g.script(mfaLogin("alice"))
	b := g.browser()

	// Public: no login. Every request the browser sends also carries forged
	// identity headers in several spellings; the upstream fails the test if
	// any reaches it.
	resp, chain := b.browse(g.url+"/healthz", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /healthz" || len(chain) != 1 {
		t.Fatalf("public route: %d %q after %d hops; want the upstream's 200 directly", resp.StatusCode, got, len(chain))
	}
	if r := g.up.last(); r.Header.Get("X-Stepgate-Subject") != "" {
		t.Errorf("public route: upstream subject %q; want none before login", r.Header.Get("X-Stepgate-Subject"))
	}

	// Login on a plain route: stepgate's 302 (mode=redirect) passes through
	// the front proxy, one trip to the provider, back to the page with its query,
	// identity copied from stepgate's auth answer.
	resp, chain = b.browse(g.url+"/account?tab=1", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /account" {
		t.Fatalf("login: final answer %d %q; want 200 from upstream (hops %v)", resp.StatusCode, got, chain)
	}
	if chain[0].status != http.StatusFound || !strings.HasPrefix(chain[0].loc, g.url+"/.stepgate/login?") {
		t.Errorf("first hop %+v; want stepgate's 302 to its sign-in URL on the front proxy's origin", chain[0])
	}
	if n := authorizeHops(chain, g.idp.url); n != 1 {
		t.Errorf("login took %d trips to the provider; want 1", n)
	}
	r := g.up.last()
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

	// A report-only route lets the password-only session through, and the
	// app hears what enforcing would have done.
	resp, _ = b.browse(g.url+"/preview/x", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /preview/x" {
		t.Fatalf("report-only route: %d %q; want the upstream's 200", resp.StatusCode, got)
	}
	if got := g.up.last().Header.Get("X-Stepgate-Report"); got != "would-step-up" {
		t.Errorf("upstream X-Stepgate-Report %q on a report-only route; want would-step-up", got)
	}

	// An API call that needs a step-up gets stepgate's 401 through the front proxy,
	// with the sign-in URL, and does not reach the app.
	before := g.up.count()
	req, err := http.NewRequest(http.MethodPost, g.url+"/api/transfers/1", strings.NewReader("{}"))
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
	if n := g.up.count() - before; n != 0 {
		t.Errorf("API step-up: the upstream received %d request(s); want none", n)
	}

	// Step-up on a sensitive route: the browser is sent to the sign-in URL
	// with the level, the provider is asked for multi-factor, and the app
	// then receives the stronger identity.
	resp, chain = b.browse(g.url+"/admin/transfer", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /admin/transfer" {
		t.Fatalf("step-up: final answer %d %q; want 200 from upstream (hops %v)", resp.StatusCode, got, chain)
	}
	if len(chain) < 2 || chain[0].status != http.StatusFound || !strings.Contains(chain[0].loc, "/.stepgate/login?level=mfa&rd=%2Fadmin%2Ftransfer") {
		t.Errorf("first hop %+v; want stepgate's 302 to the mfa sign-in URL", chain[0])
	}
	reqs := g.idp.Requests()
	if len(reqs) != 2 || len(reqs[1].ACRValues) != 1 || reqs[1].ACRValues[0] != acrMFA {
		t.Errorf("provider saw %+v; want a second, multi-factor request", reqs)
	}
	if r := g.up.last(); r.Header.Get("X-Stepgate-Acr") != acrMFA || r.Header.Get("X-Stepgate-Subject") != "alice" {
		t.Errorf("upstream acr %q subject %q after step-up; want %q for alice", r.Header.Get("X-Stepgate-Acr"), r.Header.Get("X-Stepgate-Subject"), acrMFA)
	}
	checkLog(t)
}

// The description of the original request is the front proxy's, never
// the client's:
// a spoofed X-Forwarded-* or X-Original-* header neither opens a sensitive
// route nor closes a public one, and a client cannot ask stepgate's auth
// endpoint through it.
func frontSpoofedDescriptions(t *testing.T, g *gw, checkLog func(*testing.T)) {
	cookie := g.signIn(t, pwdLogin("mallory")) // signed in, never multi-factor
	host := strings.TrimPrefix(g.url, "http://")

	tests := []struct {
		name, method, target, extra string
		// reach: the request must reach the app at target (stepgate decided
		// on what the front proxy saw); otherwise it must not reach the app at all.
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
		// The other way round: the front proxy's description wins, so these
		// pass.
		{"a public page claiming to be sensitive", "GET", "/healthz", "X-Forwarded-Uri: /admin/transfer\r\nX-Forwarded-Method: DELETE\r\n", true},
		{"a plain page with a contradicting alias", "GET", "/account", "X-Original-URI: /admin/transfer\r\nX-Original-Method: DELETE\r\n", true},
		{"a plain page naming the description in Connection", "GET", "/account", "Connection: X-Forwarded-Uri\r\n", true},
		{"a plain page with a spoofed host", "GET", "/account", "X-Forwarded-Host: other.example\r\n", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := g.up.count()
			resp, _ := g.rawResponse(t, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nAccept: text/html\r\n%sContent-Length: 0\r\n\r\n",
				tc.method, tc.target, host, cookie, tc.extra))
			status, loc := resp.StatusCode, resp.Header.Get("Location")
			n := g.up.count() - before
			if tc.reach {
				if status != 200 || n != 1 || g.up.last().URL.Path != tc.target {
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

	// The auth endpoint through the front proxy, in spellings its path
	// matching may or may not fold, describing a page mallory may see in
	// either header style stepgate reads: believed, that description would
	// be a 200 with her identity. Never an allow, never an identity.
	descriptions := []string{
		"X-Forwarded-Method: GET\r\nX-Forwarded-Host: " + host + "\r\nX-Forwarded-Uri: /account\r\n",
		"X-Original-Method: GET\r\nX-Original-URL: http://" + host + "/account\r\n",
	}
	for _, target := range []string{"/.stepgate/auth", "/.stepgate/auth?mode=status", "/.stepgate/auth/account",
		"/.stepgate/AUTH", "/.stepgate/%61uth", "/.stepgate//auth", "/.stepgate/./auth", "/.stepgate/x/../auth"} {
		for _, desc := range descriptions {
			before := g.up.count()
			resp, _ := g.rawResponse(t, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n%s\r\n", target, host, cookie, desc))
			if resp.StatusCode < 300 || resp.StatusCode >= 500 || resp.Header.Get("X-Stepgate-Subject") != "" {
				t.Errorf("GET %s through the front proxy with %q: %d (subject %q); want a refusal, the auth endpoint unreachable for clients",
					target, desc, resp.StatusCode, resp.Header.Get("X-Stepgate-Subject"))
			}
			if n := g.up.count() - before; n != 0 {
				t.Errorf("GET %s through the front proxy: the upstream received %d request(s); want none", target, n)
			}
		}
	}
	checkLog(t)
}

// A client's X-Stepgate-* headers, in any spelling, reach neither stepgate
// nor the app: not a level, not an answer style, not an identity. The app
// gets stepgate's identity only.
func frontClientStepgateHeaders(t *testing.T, g *gw, checkLog func(*testing.T)) {
	cookie := g.signIn(t, pwdLogin("mallory"))
	host := strings.TrimPrefix(g.url, "http://")
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
			before := g.up.count()
			status, loc := g.raw(t, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nAccept: text/html\r\n%s\r\n", tc.target, host, cookie, tc.extra))
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
			if n := g.up.count() - before; n != 1 {
				t.Fatalf("the upstream received %d request(s); want 1", n)
			}
			r := g.up.last()
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
	logs := g.logs.String()
	if strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("stepgate logged an ERROR line:\n%s", grepLines(logs, `"level":"ERROR"`, 5))
	}
	if strings.Contains(logs, marker) {
		t.Errorf("a client's X-Stepgate-* value reached stepgate's log:\n%s", grepLines(logs, marker, 5))
	}
	checkLog(t)
}
