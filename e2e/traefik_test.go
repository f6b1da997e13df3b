//go:build traefik

// The Traefik suite is kept out of the default build, and so out of CI:
// Traefik is built from source (deploy/traefik/build.sh), which takes far
// longer than CI can spend. Run it with
//
//	deploy/traefik/build.sh && go test -tags traefik -run Traefik ./e2e
//
// Like every suite here, under CI=true a missing binary is a failure.

package e2e

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// traefikGateway is real Traefik, running deploy/traefik/traefik.yml and
// its file provider's deploy/traefik/stepgate.yml, with stepgate
// (configured as behind nginx) as its ForwardAuth service and a recording
// upstream behind it.
type traefikGateway struct {
	*gw        // url is Traefik's origin: what browsers use
	traefikLog string
}

// traefikBinary finds the Traefik built from the Go module proxy by
// deploy/traefik/build.sh into ~/.cache/stepgate, or one on PATH.
func traefikBinary(t *testing.T) string {
	t.Helper()
	home, _ := os.UserHomeDir()
	return toolBinary(t, "deploy/traefik/build.sh", filepath.Join(home, ".cache", "stepgate", "traefik"), "traefik")
}

func startTraefikGateway(t *testing.T) *traefikGateway {
	t.Helper()
	bin := traefikBinary(t)
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
	g.launch("traefik.yaml", nginxConfig, env, ln)

	// Both files as shipped, with only their placeholders replaced.
	dir := t.TempDir()
	dynamic := filepath.Join(dir, "stepgate.yml")
	repl := strings.NewReplacer("{{LISTEN}}", front, "{{DYNAMIC}}", dynamic, "{{STEPGATE}}", g.listen,
		"{{UPSTREAM}}", strings.TrimPrefix(up.srv.URL, "http://"))
	for _, name := range []string{"traefik.yml", "stepgate.yml"} {
		src, err := os.ReadFile(filepath.Join("..", "deploy", "traefik", name))
		if err != nil {
			t.Fatal(err)
		}
		out := repl.Replace(string(src))
		if strings.Contains(out, "{{") {
			t.Fatalf("deploy/traefik/%s has a placeholder the test does not know", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--configFile="+filepath.Join(dir, "traefik.yml"))
	cmd.Env = append(os.Environ(), "HOME="+dir)
	tg := &traefikGateway{gw: g, traefikLog: filepath.Join(dir, "traefik.log")}
	startDaemon(t, "traefik", cmd, front, tg.traefikLog)

	// Traefik listens before its file provider's routers are in place:
	// until then every request is a 404. Wait for the public page.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(public + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return tg
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("traefik did not route /healthz within 15s (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkTraefikLog fails the test if Traefik logged an error.
func (tg *traefikGateway) checkTraefikLog(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile(tg.traefikLog); err == nil && strings.Contains(string(b), " ERR ") {
		t.Errorf("traefik logged an error:\n%s", grepLines(string(b), " ERR ", 5))
	}
}

func TestTraefikLoginAndStepUp(t *testing.T) {
	tg := startTraefikGateway(t)
	frontLoginAndStepUp(t, tg.gw, tg.checkTraefikLog)
}

func TestTraefikSpoofedDescriptions(t *testing.T) {
	tg := startTraefikGateway(t)
	frontSpoofedDescriptions(t, tg.gw, tg.checkTraefikLog)
}

func TestTraefikClientStepgateHeaders(t *testing.T) {
	tg := startTraefikGateway(t)
	frontClientStepgateHeaders(t, tg.gw, tg.checkTraefikLog)
}

// TestTraefikBypassCorpus sends the whole corpus through real Traefik
// running the shipped files, signed in without multi-factor: nothing
// reaches the app, nothing is a 5xx.
func TestTraefikBypassCorpus(t *testing.T) {
	tg := startTraefikGateway(t)
	cookie := tg.signIn(t, pwdLogin("mallory"))
	sendBypassCorpus(t, tg.gw, cookie)
	tg.checkTraefikLog(t)
}
