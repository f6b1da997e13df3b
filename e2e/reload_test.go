package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestBinaryReload changes the built binary's routes.yaml back and forth
// while clients keep sending requests: by SIGHUP, and by the file watch
// when the file is replaced the way an editor saves it. No request fails,
// and every answer is one of the two files' answers.
func TestBinaryReload(t *testing.T) {
	bin := buildBinary(t)
	listen, admin := freePort(t), freePort(t)
	public := "http://" + listen
	p := startIDP(t, public+"/.stepgate/callback")
	up := newUpstream(t)
	base := strings.Replace(testConfig, "SECRETS_LIST", `"${SECRET}"`, 1)
	base = strings.Replace(base, `listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"`, `listen: "`+listen+`"
admin_listen: "`+admin+`"`, 1)
	// File a strips path parameters, so /healthz;v=1 is the public
	// /healthz: 200. File b refuses path parameters (400) and denies
	// /healthz. A request canonicalized by a and matched by b would get
	// 403, which neither file answers.
	const health = "    path: /healthz\n    require: public"
	if !strings.Contains(base, health) {
		t.Fatal("testConfig no longer has a public /healthz route")
	}
	fileA := strings.Replace(base, "insecure_allow_http: true", "insecure_allow_http: true\nstrip_path_params: true", 1)
	fileB := strings.Replace(base, health, "    path: /healthz\n    require: deny", 1)
	want := map[string]int{fileA: 200, fileB: 400}

	// The path served is a link into another directory, which the file
	// watch (on the link's directory) does not see: the changes there are
	// read by SIGHUP alone.
	watched, real := t.TempDir(), t.TempDir()
	target := filepath.Join(real, "routes.yaml")
	cfgPath := filepath.Join(watched, "routes.yaml")
	writeFile(t, target, fileA)
	if err := os.Symlink(target, cfgPath); err != nil {
		t.Fatal(err)
	}
	serve, logs, exited := runServe(t, bin, cfgPath, admin, append(os.Environ(), "UPSTREAM="+up.srv.URL, "PUBLIC_URL="+public, "ISSUER="+p.url,
		"CLIENT_SECRET=stepgate-test-secret", "SECRET="+secretOld))

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
				resp, err := client.Get(public + "/healthz;v=1")
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
	// awaitAnswer waits until the gateway answers what text says.
	awaitAnswer := func(text, how string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, err := http.Get(public + "/healthz;v=1")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == want[text] {
					return
				}
			}
			select {
			case err := <-exited:
				t.Fatalf("serve exited after %s: %v\n%s", how, err, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %s the gateway never answered %d:\n%s", how, want[text], logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	const rounds = 6
	for i := range rounds {
		text := []string{fileB, fileA}[i%2]
		writeFile(t, target, text)
		if err := serve.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		awaitAnswer(text, "SIGHUP")
		time.Sleep(50 * time.Millisecond) // requests on this file
	}
	if n := strings.Count(logs.String(), `"msg":"config reloaded"`); n < rounds {
		t.Errorf("%d reloads logged after %d SIGHUPs", n, rounds)
	}
	// An editor's save over the watched path, with no signal.
	writeFile(t, cfgPath+".tmp", fileB)
	if err := os.Rename(cfgPath+".tmp", cfgPath); err != nil {
		t.Fatal(err)
	}
	awaitAnswer(fileB, "saving the file")
	time.Sleep(50 * time.Millisecond)

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

	// A broken file keeps the last good one serving, and says where it is broken.
	broken := strings.Replace(fileA, health, "    path: /healthz\n    require: mfaa", 1)
	before, _, _ := strings.Cut(broken, "mfaa")
	line, col := strings.Count(before, "\n")+1, len(before)-strings.LastIndexByte(before, '\n')
	writeFile(t, cfgPath+".tmp", broken)
	if err := os.Rename(cfgPath+".tmp", cfgPath); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "config reload failed"); {
		if time.Now().After(deadline) {
			t.Fatalf("no failed reload logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pos := fmt.Sprintf(`routes.yaml:%d:%d: routes[0].require: unknown level \"mfaa\"`, line, col); !strings.Contains(logs.String(), pos) {
		t.Errorf("the failed reload's log line lacks the positioned error:\n%s", logs.String())
	}
	resp, err := http.Get(public + "/healthz;v=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want[fileB] {
		t.Errorf("after a broken file: %d; want the last good file's %d", resp.StatusCode, want[fileB])
	}
	resp, err = http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics := body(t, resp)
	for _, s := range []string{`stepgate_config_reload_total{result="error"} 1`, "stepgate_config_last_reload_success_timestamp_seconds "} {
		if !strings.Contains(metrics, s) {
			t.Errorf("/metrics lacks %s", s)
		}
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
	for _, s := range []string{"stepgate-test-secret", secretOld} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("serve log contains a configured secret")
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
