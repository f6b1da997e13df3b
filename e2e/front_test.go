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
