package e2e

import (
	"net"
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
	frontLoginAndStepUp(t, cg.gw, cg.checkCaddyLog)
}

func TestCaddySpoofedDescriptions(t *testing.T) {
	cg := startCaddyGateway(t)
	frontSpoofedDescriptions(t, cg.gw, cg.checkCaddyLog)
}

func TestCaddyClientStepgateHeaders(t *testing.T) {
	cg := startCaddyGateway(t)
	frontClientStepgateHeaders(t, cg.gw, cg.checkCaddyLog)
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
