package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nginxConfig is stepgate's configuration behind nginx: the harness's
// routes and levels, forward-auth only (no upstream), trusting nginx on
// loopback.
var nginxConfig = strings.NewReplacer(
	`upstream: "${UPSTREAM}"`, `trusted_proxies: ["127.0.0.1/32"]`,
	"SECRETS_LIST", `"`+secretOld+`"`,
).Replace(testConfig)

// nginxGateway is real nginx, running deploy/nginx/stepgate.conf, with
// stepgate as its auth service and a recording upstream behind it.
type nginxGateway struct {
	*gw        // url is nginx's origin: what browsers use
	stepgate   string
	nginxError string // path of nginx's error log, shown on failure
}

// nginxBinary finds nginx, or ends the test: under CI=true a missing nginx
// is a failure (.ci/run installs it), elsewhere a skip.
func nginxBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx is not installed; CI must install it (apt-get install -y nginx)")
	}
	t.Skip("nginx is not installed (apt-get install -y nginx); the nginx end-to-end test needs it")
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startNginxGateway(t *testing.T) *nginxGateway {
	t.Helper()
	bin := nginxBinary(t)
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
	g.launch("nginx.yaml", nginxConfig, env, ln)
	ng := &nginxGateway{gw: g, stepgate: g.listen}

	// deploy/nginx/stepgate.conf as shipped, with only its placeholders
	// replaced, inside a minimal nginx.conf whose files all live in dir.
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("..", "deploy", "nginx", "stepgate.conf"))
	if err != nil {
		t.Fatal(err)
	}
	site := strings.NewReplacer("{{LISTEN}}", front, "{{STEPGATE}}", ng.stepgate,
		"{{UPSTREAM}}", strings.TrimPrefix(up.srv.URL, "http://")).Replace(string(src))
	if strings.Contains(site, "{{") {
		t.Fatal("deploy/nginx/stepgate.conf has a placeholder the test does not know")
	}
	if err := os.WriteFile(filepath.Join(dir, "stepgate.conf"), []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	ng.nginxError = filepath.Join(dir, "error.log")
	nginxConf := fmt.Sprintf(`pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 128; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/stepgate.conf;
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(nginxConf), 0o600); err != nil {
		t.Fatal(err)
	}
	// One foreground process (no master, no daemon) that runs as the test's
	// user and dies with the test.
	cmd := exec.Command(bin, "-p", dir+"/", "-e", ng.nginxError, "-c", filepath.Join(dir, "nginx.conf"),
		"-g", "daemon off; master_process off;")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			if b, err := os.ReadFile(ng.nginxError); err == nil {
				t.Logf("nginx error log:\n%s", b)
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(ng.nginxError)
			t.Fatalf("nginx exited: %v\n%s", err, b)
		default:
		}
		if conn, err := net.DialTimeout("tcp", front, 100*time.Millisecond); err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx did not start listening within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ng
}

func TestNginxLoginAndStepUp(t *testing.T) {
	ng := startNginxGateway(t)
	ng.script(mfaLogin("alice"))
	b := ng.browser()

	// Public: no login, and the identity headers reach the app empty, never
	// as the client's forged copies (the upstream checks those).
	resp, chain := b.browse(ng.url+"/healthz", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /healthz" || len(chain) != 1 {
		t.Fatalf("public route: %d %q after %d hops; want the upstream's 200 directly", resp.StatusCode, got, len(chain))
	}

	// Login on a plain route: one trip to the provider, back to the page
	// with its query, identity from stepgate's auth answer.
	resp, chain = b.browse(ng.url+"/account?tab=1", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /account" {
		t.Fatalf("login: final answer %d %q; want 200 from upstream (hops %v)", resp.StatusCode, got, chain)
	}
	if n := authorizeHops(chain, ng.idp.url); n != 1 {
		t.Errorf("login took %d trips to the provider; want 1", n)
	}
	r := ng.up.last()
	if r.URL.RawQuery != "tab=1" {
		t.Errorf("upstream query %q; want tab=1", r.URL.RawQuery)
	}
	if sub, acr := r.Header.Get("X-Stepgate-Subject"), r.Header.Get("X-Stepgate-Acr"); sub != "alice" || acr != "" {
		t.Errorf("upstream identity sub %q acr %q; want alice without acr", sub, acr)
	}
	if r.Header.Get("X-Stepgate-Email") != "alice@bank.example" || r.Header.Get("X-Stepgate-Amr") != "pwd" || r.Header.Get("X-Stepgate-Auth-Time") == "" {
		t.Errorf("upstream identity headers incomplete: %v", r.Header)
	}

	// A report-only route lets the password-only session through, and the
	// app hears what enforcing would have done.
	resp, _ = b.browse(ng.url+"/preview/x", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /preview/x" {
		t.Fatalf("report-only route: %d %q; want the upstream's 200", resp.StatusCode, got)
	}
	if got := ng.up.last().Header.Get("X-Stepgate-Report"); got != "would-step-up" {
		t.Errorf("upstream X-Stepgate-Report %q on a report-only route; want would-step-up", got)
	}

	// Step-up on a sensitive location: nginx sends the browser to the
	// sign-in URL stepgate named, with the level; the provider is asked for
	// multi-factor; the app then receives the stronger identity.
	resp, chain = b.browse(ng.url+"/admin/transfer", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /admin/transfer" {
		t.Fatalf("step-up: final answer %d %q; want 200 from upstream (hops %v)", resp.StatusCode, got, chain)
	}
	if len(chain) < 2 || chain[0].status != http.StatusFound || !strings.Contains(chain[0].loc, "/.stepgate/login?level=mfa&rd=%2Fadmin%2Ftransfer") {
		t.Errorf("first hop %+v; want nginx's 302 to the mfa sign-in URL", chain[0])
	}
	reqs := ng.idp.Requests()
	if len(reqs) != 2 || len(reqs[1].ACRValues) != 1 || reqs[1].ACRValues[0] != acrMFA {
		t.Errorf("provider saw %+v; want a second, multi-factor request", reqs)
	}
	r = ng.up.last()
	if r.Header.Get("X-Stepgate-Acr") != acrMFA {
		t.Errorf("upstream acr %q after step-up; want %q", r.Header.Get("X-Stepgate-Acr"), acrMFA)
	}
}

// Threat model section C through real nginx: whatever the client sends, a sensitive
// request without multi-factor never reaches the app.
func TestNginxForwardAuthThreats(t *testing.T) {
	ng := startNginxGateway(t)
	ng.script(pwdLogin("mallory")) // signed in, never multi-factor
	b := ng.browser()
	resp, _ := b.browse(ng.url+"/account", nil)
	if body(t, resp); resp.StatusCode != 200 {
		t.Fatalf("login: status %d; want 200", resp.StatusCode)
	}
	var cookie string
	for _, c := range b.jar.Cookies(mustURL(t, ng.url)) {
		cookie += c.Name + "=" + c.Value + "; "
	}
	if cookie == "" {
		t.Fatal("no session cookie after login")
	}
	host := strings.TrimPrefix(ng.url, "http://")

	// Control: the same raw request for a plain route does pass, so the
	// refusals below are decisions, not a broken request.
	before := ng.up.count()
	if status, _ := ng.raw(t, fmt.Sprintf("GET /account HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n", host, cookie)); status != 200 || ng.up.count() != before+1 {
		t.Fatalf("control request: status %d; want 200 from the upstream", status)
	}

	tests := []struct {
		name   string
		target string
		method string
		extra  string
	}{
		{"spoofed X-Forwarded-Uri", "/admin/transfer", "POST", "X-Forwarded-Uri: /healthz\r\n"},
		{"spoofed X-Original-URI", "/admin/transfer", "POST", "X-Original-URI: /healthz\r\n"},
		{"spoofed X-Original-URL", "/admin/transfer", "POST", "X-Original-URL: http://" + host + "/healthz\r\n"},
		{"spoofed X-Forwarded-Method", "/admin/transfer", "POST", "X-Forwarded-Method: GET\r\n"},
		{"spoofed X-Forwarded-Host", "/admin/transfer", "POST", "X-Forwarded-Host: other.example\r\n"},
		{"all spoofed at once", "/admin/transfer", "POST",
			"X-Forwarded-Uri: /healthz\r\nX-Original-URI: /healthz\r\nX-Forwarded-Method: GET\r\nX-Original-Method: GET\r\n"},
		{"headers deleted via Connection", "/admin/transfer", "POST",
			"Connection: close, X-Forwarded-Uri, X-Forwarded-Host, X-Forwarded-Method\r\n"},
		{"headers deleted via Connection, lower case", "/admin/transfer", "GET", "Connection: x-forwarded-uri\r\n"},
		{"method override header", "/admin/transfer", "GET", "X-HTTP-Method-Override: POST\r\n"},
		{"dot segments", "/healthz/../admin/transfer", "GET", ""},
		{"encoded dot segments", "/healthz/%2e%2e/admin/transfer", "GET", ""},
		{"encoded slash", "/healthz/..%2Fadmin/transfer", "GET", ""},
		{"encoded slash inside", "/admin%2Ftransfer", "GET", ""},
		{"double slash", "//admin/transfer", "GET", ""},
		{"double encoding", "/healthz/%252e%252e/admin/transfer", "GET", ""},
		{"path parameter", "/healthz;/../admin/transfer", "GET", ""},
		{"backslash", "/healthz/..\\admin/transfer", "GET", ""},
		{"encoded backslash", "/healthz/..%5Cadmin/transfer", "GET", ""},
		{"encoded NUL", "/admin/transfer%00", "GET", ""},
		{"lower-case escape", "/admin/transfe%72", "GET", ""},
		{"absolute-form", "http://" + host + "/admin/transfer", "GET", ""},
		{"the internal auth location", "/_stepgate_auth", "GET", "X-Forwarded-Uri: /healthz\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := ng.up.count()
			req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nAccept: text/html\r\n%sContent-Length: 0\r\n\r\n",
				tc.method, tc.target, host, cookie, tc.extra)
			status, loc := ng.raw(t, req)
			if n := ng.up.count() - before; n != 0 {
				t.Fatalf("the upstream received %d request(s); want none (status %d)", n, status)
			}
			if status >= 200 && status < 300 {
				t.Errorf("status %d; want a refusal", status)
			}
			if status == http.StatusFound && !strings.Contains(loc, "level=mfa") {
				t.Errorf("redirect to %q; want only a multi-factor sign-in", loc)
			}
		})
	}

	// Asking the auth endpoint itself through nginx: every peer behind nginx
	// looks like the trusted ingress, so nginx refuses the path.
	for _, target := range []string{"/.stepgate/auth", "/.stepgate/auth/healthz", "/.stepgate/AUTH"} {
		status, _ := ng.raw(t, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: %s\r\nX-Forwarded-Uri: /admin/transfer\r\n\r\n", target, host, host))
		if status == http.StatusOK {
			t.Errorf("GET %s through nginx: 200; want the auth endpoint unreachable for clients", target)
		}
	}
}

// bypassCorpus is the path tricks of threat model section A aimed at a
// sensitive route, crossed with the method and header tricks of sections C
// to E: 27 targets, 9 shapes, 243 requests. Whatever nginx or the app make
// of each target, it names /admin/transfer or /api/transfers.
var bypassCorpus = struct {
	targets []string
	shapes  []struct{ name, method, extra string }
}{
	targets: []string{
		"/admin/transfer",
		"/api/transfers/1?_method=DELETE",
		"/healthz/../admin/transfer",
		"/healthz/./../admin/transfer",
		"/healthz/%2e%2e/admin/transfer",
		"/healthz/%2E./admin/transfer",
		"/%61dmin/transf%65r",
		"/healthz/%252e%252e/admin/transfer",
		"/admin%2Ftransfer",
		"/healthz%2F..%2Fadmin%2Ftransfer",
		"/healthz/..\\admin\\transfer",
		"/admin%5Ctransfer",
		"//admin/transfer",
		"/admin//transfer",
		"/admin/./transfer",
		"/admin/transfer/.",
		"/admin;jsessionid=x/transfer",
		"/healthz/..;/admin/transfer",
		"/admin/transfer%00.png",
		"/%c0%ae%c0%ae/admin/transfer",
		"/%EF%BD%81dmin/transfer",
		"/admin%3F/transfer",
		"/admin/transfer%0a",
		"/admin%09/transfer",
		"/.stepgate/../admin/transfer",
		"/.stepgate/%2e%2e/api/transfers/1",
		"/healthz/..%2F..%2Fapi/transfers/1",
	},
	shapes: []struct{ name, method, extra string }{
		{"navigation", "GET", "Accept: text/html\r\n"},
		{"API POST", "POST", "Accept: application/json\r\n"},
		{"HEAD", "HEAD", "Accept: text/html\r\n"},
		{"override header", "GET", "X-HTTP-Method-Override: POST\r\n"},
		{"spoofed description", "POST",
			"X-Forwarded-Uri: /healthz\r\nX-Original-URI: /healthz\r\nX-Original-URL: http://other.example/healthz\r\n" +
				"X-Forwarded-Method: GET\r\nX-Original-Method: GET\r\nX-Forwarded-Host: other.example\r\n"},
		{"Connection drops the description", "GET", "Connection: close, X-Forwarded-Uri, X-Forwarded-Host, X-Forwarded-Method\r\n"},
		{"client level", "GET", "X-Stepgate-Level: junk<>\"\r\n"},
		{"client redirect mode", "GET", "Accept: text/html\r\nX-Stepgate-Mode: redirect\r\n"},
		{"forged identity", "DELETE",
			"X-Stepgate-Subject: forged-admin\r\nX-Stepgate-Acr: forged-acr\r\nX-Stepgate-Amr: forged-mfa\r\nX-Stepgate-Signin: forged\r\n"},
	},
}

// TestNginxBypassCorpus sends the whole corpus through real nginx running
// the shipped stepgate.conf, signed in without multi-factor. nginx
// auth_request turns every auth answer but 2xx, 401 and 403 into a 500, so
// a 500 here means stepgate answered something nginx cannot pass on. Each
// request must be refused with a clear status, never 500, and none may
// reach the app.
func TestNginxBypassCorpus(t *testing.T) {
	ng := startNginxGateway(t)
	cookie := ng.signIn(t, pwdLogin("mallory"))
	sendBypassCorpus(t, ng.gw, cookie)
	if b, err := os.ReadFile(ng.nginxError); err == nil && strings.Contains(string(b), "auth request unexpected status") {
		t.Errorf("nginx logged an auth answer it could not use:\n%s", grepLines(string(b), "auth request unexpected status", 5))
	}
}

// nginx's answer when stepgate refuses: a 400 page for a request that could
// be read more than one way, a 403 page for a denial, each with the reason
// word (never client text) and never cacheable.
func TestNginxRefusalPages(t *testing.T) {
	ng := startNginxGateway(t)
	cookie := ng.signIn(t, pwdLogin("mallory"))
	host := strings.TrimPrefix(ng.url, "http://")
	tests := []struct {
		target string
		want   int
		reason string
		body   string
	}{
		{"/healthz/../admin/transfer", 400, "malformed_request", "Bad request"},
		{"/healthz/%2e%2e/admin/transfer", 400, "malformed_request", "Bad request"},
		{"/admin%2Ftransfer", 400, "malformed_request", "Bad request"},
		{"//admin/transfer", 400, "malformed_request", "Bad request"},
		{"/%61dmin/transfer", 400, "malformed_request", "Bad request"},
		{"/blocked/x", 403, "", "Forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			before := ng.up.count()
			resp, body := ng.rawResponse(t, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nAccept: text/html\r\n\r\n", tc.target, host, cookie))
			if resp.StatusCode != tc.want {
				t.Errorf("status %d; want %d", resp.StatusCode, tc.want)
			}
			if got := resp.Header.Get("X-Stepgate-Reason"); got != tc.reason {
				t.Errorf("X-Stepgate-Reason %q; want %q", got, tc.reason)
			}
			if !strings.Contains(body, tc.body) || strings.Contains(body, strings.Trim(tc.target, "/")) {
				t.Errorf("body %q; want nginx's short %q page, without the request's path", body, tc.body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q; want no-store", cc)
			}
			if n := ng.up.count() - before; n != 0 {
				t.Errorf("the upstream received %d request(s); want none", n)
			}
		})
	}
}

// A client's X-Stepgate-* headers never reach stepgate through nginx: not
// a level (junk would be refused, a real one would make a public page ask
// for a login), not an answer style (a 302 auth answer is a 500 to nginx),
// not an identity. Nothing the client sent becomes a 500 or an ERROR line.
func TestNginxClientStepgateHeaders(t *testing.T) {
	ng := startNginxGateway(t)
	cookie := ng.signIn(t, pwdLogin("mallory"))
	host := strings.TrimPrefix(ng.url, "http://")
	const marker = "zq7marker"
	tests := []struct {
		name, target, extra string
		want                int
		wantLoc             string // a substring of Location, for 302
	}{
		{"junk level on a public page", "/healthz", "X-Stepgate-Level: <" + marker + ">\r\n", 200, ""},
		{"junk level on a plain page", "/account", "X-Stepgate-Level: " + marker + "\r\n", 200, ""},
		{"junk level on a sensitive page", "/admin/transfer", "Accept: text/html\r\nX-Stepgate-Level: " + marker + "\r\n", 302, "level=mfa"},
		{"level-like junk, twice", "/account", "X-Stepgate-Level: mfa_" + marker + "\r\nX-Stepgate-Level: x" + marker + "\r\n", 200, ""},
		{"a real level cannot be forced either", "/healthz", "X-Stepgate-Level: mfa\r\n", 200, ""},
		{"redirect mode", "/admin/transfer", "Accept: text/html\r\nX-Stepgate-Mode: redirect\r\n", 302, "level=mfa"},
		{"forged reason", "/admin/transfer", "Accept: text/html\r\nX-Stepgate-Reason: " + marker + "\r\n", 302, "level=mfa"},
		{"forged sign-in URL", "/admin/transfer", "Accept: text/html\r\nX-Stepgate-Signin: http://" + marker + ".example/\r\n", 302, "level=mfa"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n%s\r\n", tc.target, host, cookie, tc.extra)
			status, loc := ng.raw(t, req)
			if status != tc.want {
				t.Errorf("status %d; want %d", status, tc.want)
			}
			if tc.want == http.StatusFound && (!strings.Contains(loc, tc.wantLoc) || strings.Contains(loc, marker)) {
				t.Errorf("Location %q; want the gateway's sign-in URL with %s", loc, tc.wantLoc)
			}
		})
	}
	logs := ng.logs.String()
	if strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("stepgate logged an ERROR line:\n%s", grepLines(logs, `"level":"ERROR"`, 5))
	}
	if strings.Contains(logs, marker) {
		t.Errorf("a client's X-Stepgate-* value reached stepgate's log:\n%s", grepLines(logs, marker, 5))
	}
	if b, err := os.ReadFile(ng.nginxError); err == nil && strings.Contains(string(b), "[error]") {
		t.Errorf("nginx logged an error:\n%s", grepLines(string(b), "[error]", 5))
	}
}

// grepLines returns up to n lines of text that contain s.
func grepLines(text, s string, n int) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) && len(out) < n {
			out = append(out, strings.TrimRight(line, "\n"))
		}
	}
	return strings.Join(out, "\n")
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
