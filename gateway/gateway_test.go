package gateway_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/config"
	"github.com/stepgate/stepgate/gateway"
	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestShutdownDrainsInFlightRequests: on SIGTERM (here, the context ending)
// a request already being served still gets its answer.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	started := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(400 * time.Millisecond)
		io.WriteString(w, "slow answer")
	}))
	defer up.Close()
	listen, admin := freePort(t), freePort(t)
	yaml := `listen: "` + listen + `"
admin_listen: "` + admin + `"
upstream: "` + up.URL + `"
public_url: "http://` + listen + `"
insecure_allow_http: true
oidc: {issuer: "http://127.0.0.1:1", client_id: a, client_secret: b}
session: {secrets: ["0123456789abcdef0123456789abcdef"]}
routes:
  - {name: slow, path: /slow, require: public}
`
	cfg, err := config.Parse("drain.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gateway.New(cfg, gateway.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }()

	// Readiness stays false: the issuer is unreachable. Liveness answers.
	var resp *http.Response
	for range 100 {
		if resp, err = http.Get("http://" + admin + "/healthz"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("admin listener never came up: %v", err)
	}
	resp.Body.Close()
	if resp, err := http.Get("http://" + admin + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with an unreachable issuer: %v %v; want 503", resp.StatusCode, err)
	}

	answer := make(chan string)
	go func() {
		resp, err := http.Get("http://" + listen + "/slow")
		if err != nil {
			answer <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- string(b)
	}()
	<-started
	cancel()
	if got := <-answer; !strings.Contains(got, "slow answer") {
		t.Errorf("in-flight request got %q; want the upstream's answer", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Run returned %v; want nil after a clean drain", err)
	}
}

// TestCookieBombIs431: an oversized header block (threat model case 72) is
// refused by the server stepgate runs, never parsed into an anonymous or
// partial request.
func TestCookieBombIs431(t *testing.T) {
	reached := false
	srv := gateway.NewServer("", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/account", nil)
	req.Header.Set("Cookie", "stepgate="+strings.Repeat("a", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || reached {
		t.Errorf("100 KiB cookie: %d, handler reached %v; want 431 and not reached", resp.StatusCode, reached)
	}
}

// Deployments sharing one Redis are kept apart by their issuer and
// client_id, as their cookies are.
func TestStorePrefixPerDeployment(t *testing.T) {
	parse := func(issuer, client string) *config.Config {
		c, err := config.Parse("t.yaml", []byte(`public_url: "https://bank.example.com"
oidc: {issuer: "`+issuer+`", client_id: "`+client+`"}
session: {secrets: ["0123456789abcdef0123456789abcdef"]}
routes: [{name: a, path: /a, require: public}]
`), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := gateway.StorePrefix(parse("https://idp.example.com/", "bank"))
	for _, other := range []*config.Config{parse("https://idp.example.com/", "bank-staging"), parse("https://staging-idp.example.com/", "bank")} {
		if b := gateway.StorePrefix(other); a == b || !strings.HasPrefix(b, "stepgate:") {
			t.Errorf("prefixes %q and %q; want different ones under stepgate:", a, b)
		}
	}
	if b := gateway.StorePrefix(parse("https://idp.example.com/", "bank")); a != b {
		t.Errorf("the same deployment got prefixes %q and %q", a, b)
	}
}

// par: required against a provider without a PAR endpoint is a start-up
// error: Run stops with it instead of serving a gateway that can never
// sign anyone in.
func TestRunRefusesIncompatibleProvider(t *testing.T) {
	idp := oidctest.NewServer(t, oidctest.Options{})
	listen, admin := freePort(t), freePort(t)
	cfg, err := config.Parse("par.yaml", []byte(`listen: "`+listen+`"
admin_listen: "`+admin+`"
public_url: "http://`+listen+`"
insecure_allow_http: true
oidc: {issuer: "`+idp.URL+`", client_id: `+idp.ClientID+`, client_secret: `+idp.ClientSecret+`, par: required}
session: {secrets: ["0123456789abcdef0123456789abcdef"]}
routes: [{name: a, path: /a, require: public}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(t.Context()) }()
	select {
	case err := <-done:
		if !errors.Is(err, oidc.ErrIncompatible) || !strings.Contains(err.Error(), "pushed_authorization_request_endpoint") {
			t.Errorf("Run = %v; want the PAR conflict", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept serving with a provider that cannot serve par: required")
	}
}
