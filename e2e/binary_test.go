package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds the production command (-tags nodemo, as the
// Dockerfile does) once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stepgate")
	cmd := exec.Command("go", "build", "-tags", "nodemo", "-o", bin, "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBinary runs the built production binary as an operator would: check,
// then serve against a real provider, sign in and step up through it, and
// stop it with SIGTERM.
func TestBinary(t *testing.T) {
	bin := buildBinary(t)
	listen, admin := freePort(t), freePort(t)
	public := "http://" + listen
	p := startIDP(t, public+"/.stepgate/callback")
	up := newUpstream(t)
	cfgText := strings.Replace(testConfig, "SECRETS_LIST", `"${SECRET}"`, 1)
	cfgText = strings.Replace(cfgText, `listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"`, `listen: "`+listen+`"
admin_listen: "`+admin+`"`, 1)
	cfgPath := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "UPSTREAM="+up.srv.URL, "PUBLIC_URL="+public, "ISSUER="+p.url,
		"CLIENT_SECRET=stepgate-test-secret", "SECRET="+secretOld)

	check := exec.Command(bin, "check", "-config", cfgPath)
	check.Env = env
	if out, err := check.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok (5 routes, 1 levels)") {
		t.Fatalf("stepgate check: %v\n%s", err, out)
	}
	demo := exec.Command(bin, "demo")
	if out, err := demo.CombinedOutput(); err == nil || !strings.Contains(string(out), "-tags nodemo") {
		t.Errorf("stepgate demo in the production build: %v %q; want a refusal naming -tags nodemo", err, out)
	}

	serve, logs, exited := runServe(t, bin, cfgPath, admin, env)

	g := &gw{t: t, idp: p, up: up, url: public}
	g.script(mfaLogin("alice"))
	b := newBrowser(t)
	resp, _ := b.browse(public+"/api/transfers/7", nil)
	if got := body(t, resp); resp.StatusCode != 200 || got != "upstream: /api/transfers/7" {
		t.Fatalf("step-up through the binary: %d %q; want the upstream's 200", resp.StatusCode, got)
	}
	if r := up.last(); r.Header.Get("X-Stepgate-Acr") != acrMFA {
		t.Errorf("upstream acr %q; want %q", r.Header.Get("X-Stepgate-Acr"), acrMFA)
	}

	serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v; want exit 0\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of SIGTERM")
	}
	if !strings.Contains(logs.String(), "draining in-flight requests") {
		t.Errorf("serve log lacks the drain line:\n%s", logs.String())
	}
	for _, s := range []string{"stepgate-test-secret", secretOld} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("serve log contains a configured secret")
		}
	}
}

// waitReady polls a /readyz URL until it answers 200, failing if the
// process exits first.
// runServe runs `bin serve -config cfgPath` with env, its log in logs,
// until the test ends, and returns once admin's /readyz answers 200;
// exited gets the process's end.
func runServe(t *testing.T, bin, cfgPath, admin string, env []string) (serve *exec.Cmd, logs *lockedBuffer, exited chan error) {
	t.Helper()
	logs = &lockedBuffer{}
	serve = exec.Command(bin, "serve", "-config", cfgPath)
	serve.Env = env
	serve.Stderr = logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		if serve.ProcessState == nil {
			serve.Process.Kill()
		}
	})
	waitReady(t, "http://"+admin+"/readyz", exited)
	return serve, logs, exited
}

func waitReady(t *testing.T, url string, exited <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		select {
		case err := <-exited:
			t.Fatalf("serve exited before it was ready: %v", err)
		case <-ctx.Done():
			t.Fatalf("%s never answered 200", url)
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
	}
}
