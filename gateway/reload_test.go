package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepgate/stepgate/config"
	"github.com/stepgate/stepgate/gateway"
)

// reloadConfig is a gateway file whose routes tests change: ROUTES is
// replaced by the routes, and the other settings by what a test sets.
const reloadConfig = `listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
upstream: "UPSTREAM"
public_url: "http://gateway.test"
insecure_allow_http: true
oidc: {issuer: "ISSUER", client_id: stepgate, client_secret: "${RELOAD_CLIENT_SECRET}"}
session: {secrets: ["SECRET"]}
levels:
  mfa:
    acr_values: [urn:mfa]
    satisfied_by: [{acr: [urn:mfa]}]
routes:
ROUTES
`

const (
	clientSecret  = "client-secret-never-logged-0123456789"
	sessionSecret = "0123456789abcdef0123456789abcdef"
)

type reloadFixture struct {
	t     *testing.T
	path  string
	g     *gateway.Gateway
	url   string // the public listener
	logs  *syncBuffer
	up    *httptest.Server
	vars  map[string]string // what replaces UPSTREAM, ISSUER and SECRET
	watch context.CancelFunc
}

// newReloadFixture writes the file with routes, starts a gateway on it on
// a real listener, and returns once it serves.
func newReloadFixture(t *testing.T, routes string) *reloadFixture {
	t.Helper()
	t.Setenv("RELOAD_CLIENT_SECRET", clientSecret)
	fx := &reloadFixture{t: t, path: filepath.Join(t.TempDir(), "routes.yaml"), logs: &syncBuffer{}}
	fx.up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("upstream " + r.URL.Path))
	}))
	t.Cleanup(fx.up.Close)
	fx.vars = map[string]string{"UPSTREAM": fx.up.URL, "ISSUER": "http://127.0.0.1:1", "SECRET": sessionSecret}
	fx.write(routes, nil)
	cfg, err := config.Load(fx.path)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(fx.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fx.g, err = gateway.New(cfg, gateway.Options{Logger: logger, Listener: ln, AdminListener: admin})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fx.g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		for _, s := range []string{clientSecret, sessionSecret} {
			if strings.Contains(fx.logs.String(), s) {
				t.Errorf("the log holds a configured secret:\n%s", fx.logs.String())
			}
		}
	})
	fx.url = "http://" + ln.Addr().String()
	return fx
}

// write replaces the file, in place, with text(routes, edits).
func (fx *reloadFixture) write(routes string, edits map[string]string) {
	fx.t.Helper()
	if err := os.WriteFile(fx.path, []byte(fx.text(routes, edits)), 0o600); err != nil {
		fx.t.Fatal(err)
	}
}

// text is the file with routes, the fixture's vars, and each of edits' old
// texts replaced by the new one.
func (fx *reloadFixture) text(routes string, edits map[string]string) string {
	s := strings.Replace(reloadConfig, "ROUTES", routes, 1)
	for k, v := range fx.vars {
		s = strings.Replace(s, `"`+k+`"`, `"`+v+`"`, 1)
	}
	for old, repl := range edits {
		s = strings.Replace(s, old, repl, 1)
	}
	return s
}

func (fx *reloadFixture) status(path string) int {
	fx.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fx.url+path, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fx.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metric reads one series from the admin listener's /metrics; 0 when it has
// no sample.
func (fx *reloadFixture) metric(series string) float64 {
	fx.t.Helper()
	rec := httptest.NewRecorder()
	fx.g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				fx.t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// records returns the log records with message msg.
func (fx *reloadFixture) records(msg string) []map[string]any {
	fx.t.Helper()
	var out []map[string]any
	for line := range strings.Lines(fx.logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			fx.t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		if m, _ := rec["msg"].(string); strings.HasPrefix(m, msg) {
			out = append(out, rec)
		}
	}
	return out
}

const (
	reloadsOK    = `stepgate_config_reload_total{result="ok"}`
	reloadsError = `stepgate_config_reload_total{result="error"}`
	reloadedAt   = `stepgate_config_last_reload_success_timestamp_seconds`
	publicApp    = `  - {name: app, path: /app/**, require: public}`
	deniedApp    = `  - {name: app, path: /app/**, require: deny}`
)

// A valid change takes effect on the next request, and is counted.
func TestReloadAppliesValidChange(t *testing.T) {
	tests := []struct {
		name, routes string
		path         string
		before, want int
	}{
		{"public becomes deny", deniedApp, "/app/x", 200, 403},
		{"a route is added", publicApp + "\n  - {name: new, path: /new/**, require: public}", "/new/x", 401, 200},
		{"a level is required", `  - {name: app, path: /app/**, require: mfa}`, "/app/x", 200, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newReloadFixture(t, publicApp)
			if got := fx.status(tc.path); got != tc.before {
				t.Fatalf("GET %s before the reload: %d; want %d", tc.path, got, tc.before)
			}
			started := fx.metric(reloadedAt)
			fx.write(tc.routes, nil)
			if err := fx.g.Reload(fx.path); err != nil {
				t.Fatalf("Reload of a valid file: %v", err)
			}
			if got := fx.status(tc.path); got != tc.want {
				t.Errorf("GET %s after the reload: %d; want %d", tc.path, got, tc.want)
			}
			if ok, bad := fx.metric(reloadsOK), fx.metric(reloadsError); ok != 1 || bad != 0 {
				t.Errorf("reloads ok %v, error %v; want 1 and 0", ok, bad)
			}
			if at := fx.metric(reloadedAt); at < started || at < float64(time.Now().Add(-time.Minute).Unix()) {
				t.Errorf("%s = %v (at start %v); want the time of this reload", reloadedAt, at, started)
			}
			if len(fx.records("config reloaded")) != 1 {
				t.Errorf("want one \"config reloaded\" line:\n%s", fx.logs.String())
			}
		})
	}
}

// An invalid file changes nothing: the old rules keep serving, and the log
// and the metric say why, with the error's position in the file.
func TestReloadKeepsOldRulesOnError(t *testing.T) {
	tests := []struct {
		name  string
		write func(fx *reloadFixture)
		want  string // in the logged error
	}{
		{"unknown level", func(fx *reloadFixture) {
			fx.write(deniedApp+"\n  - {name: typo, path: /typo, require: mfaa}", nil)
		}, `routes.yaml:14:40: routes[1].require: unknown level "mfaa"; defined levels: mfa`},
		{"syntax error", func(fx *reloadFixture) {
			fx.write(deniedApp+"\n  - {name: broken, path: /broken", nil)
		}, "routes.yaml:"},
		{"unset variable", func(fx *reloadFixture) {
			fx.write(deniedApp, map[string]string{"${RELOAD_CLIENT_SECRET}": "${RELOAD_UNSET_VARIABLE}"})
		}, "routes.yaml:6:"},
		{"file removed", func(fx *reloadFixture) {
			if err := os.Remove(fx.path); err != nil {
				fx.t.Fatal(err)
			}
		}, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newReloadFixture(t, publicApp)
			tc.write(fx)
			err := fx.g.Reload(fx.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload = %v; want an error with %q", err, tc.want)
			}
			if got := fx.status("/app/x"); got != 200 {
				t.Errorf("GET /app/x after a failed reload: %d; want the old rules' 200", got)
			}
			if ok, bad := fx.metric(reloadsOK), fx.metric(reloadsError); ok != 0 || bad != 1 {
				t.Errorf("reloads ok %v, error %v; want 0 and 1", ok, bad)
			}
			recs := fx.records("config reload failed")
			if len(recs) != 1 || recs[0]["level"] != "ERROR" || !strings.Contains(recs[0]["err"].(string), tc.want) {
				t.Errorf("want one ERROR line \"config reload failed\" with %q:\n%s", tc.want, fx.logs.String())
			}
		})
	}
}

// Settings the running gateway cannot change are named in a warning; the
// rest of the file still applies. The names are compared with the file
// the gateway started on, so a second reload still says so.
func TestReloadNamesRestartSettings(t *testing.T) {
	fx := newReloadFixture(t, publicApp)
	edits := map[string]string{
		`listen: "127.0.0.1:0"`:       `listen: "127.0.0.1:1"`,
		`client_id: stepgate`:         `client_id: other`,
		`secrets: ["` + sessionSecret: `secrets: ["` + strings.Repeat("z", 32) + `", "` + sessionSecret,
	}
	fx.vars["ISSUER"] = "http://127.0.0.1:2"
	for range 2 {
		fx.write(deniedApp, edits)
		if err := fx.g.Reload(fx.path); err != nil {
			t.Fatal(err)
		}
	}
	if got := fx.status("/app/x"); got != 403 {
		t.Errorf("GET /app/x: %d; want the reloaded deny rule's 403", got)
	}
	const want = "restart needed for: listen, oidc.issuer, oidc.client_id, session.secrets"
	recs := fx.records("restart needed")
	if len(recs) != 2 {
		t.Fatalf("want two \"restart needed\" lines:\n%s", fx.logs.String())
	}
	for _, r := range recs {
		if r["msg"] != want || r["level"] != "WARN" {
			t.Errorf("logged %v %q; want WARN %q", r["level"], r["msg"], want)
		}
	}
	if strings.Contains(fx.logs.String(), strings.Repeat("z", 32)) {
		t.Error("the log holds the new session secret")
	}

	// Changing nothing that needs a restart says nothing about restarts.
	fx2 := newReloadFixture(t, publicApp)
	fx2.write(deniedApp, nil)
	if err := fx2.g.Reload(fx2.path); err != nil {
		t.Fatal(err)
	}
	if recs := fx2.records("restart needed"); len(recs) != 0 {
		t.Errorf("a routes-only reload logged %v", recs)
	}
}

// Clients keep sending requests while the file changes back and forth
// many times, each change found by the file watch as an operator's editor
// or a ConfigMap update would make it. No request fails, and every answer
// is one of the two files' answers; a request canonicalized by one file
// and matched by the other would get a third (see below).
func TestReloadUnderLoad(t *testing.T) {
	// File a strips path parameters and makes /app public: /app/x;v=1 is
	// /app/x, 200. File b refuses path parameters (400) and denies /app.
	// Canonicalized by a and matched by b, the answer would be 403.
	a := map[string]string{"insecure_allow_http: true": "insecure_allow_http: true\nstrip_path_params: true"}
	fx := newReloadFixture(t, publicApp)
	fx.write(publicApp, a)
	if err := fx.g.Reload(fx.path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := fx.g.WatchConfig(ctx, fx.path); err != nil {
		t.Fatal(err)
	}

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		failures []string
	)
	for range 8 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for !stop.Load() {
				resp, err := client.Get(fx.url + "/app/x;v=1")
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					statuses[resp.StatusCode]++
					resp.Body.Close()
				}
				mu.Unlock()
			}
		})
	}
	const reloads = 10
	for i := range reloads {
		seen := fx.metric(reloadsOK)
		text := fx.text(publicApp, a)
		if i%2 == 0 {
			text = fx.text(deniedApp, nil)
		}
		if i%4 < 2 {
			// An editor's save: a new file renamed over the old one.
			tmp := fx.path + ".tmp"
			if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, fx.path); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(fx.path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for fx.metric(reloadsOK) == seen {
			if time.Now().After(deadline) {
				t.Fatalf("change %d was never reloaded:\n%s", i, fx.logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // requests on this generation
	}
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d requests failed across the reloads; first: %s", len(failures), failures[0])
	}
	for code, n := range statuses {
		if code != 200 && code != 400 {
			t.Errorf("%d answers %d; want only the two files' answers, 200 and 400", n, code)
		}
	}
	if statuses[200] == 0 || statuses[400] == 0 {
		t.Errorf("answers %v; want both files' answers", statuses)
	}
	if bad := fx.metric(reloadsError); bad != 0 {
		t.Errorf("%v reloads failed; a watched file must be read only once it is complete:\n%s", bad, fx.logs.String())
	}
}

// syncBuffer is a log sink several goroutines write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
