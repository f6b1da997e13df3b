package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// loadResult is what a load run against a draining gateway saw. Failed
// counts requests that reached the gateway and got no 2xx/3xx answer:
// wrk's read errors (the connection closed or reset while a request was
// out), its timeouts and its non-2xx/3xx responses. Refused counts
// (re)connects the closed listener refused, which are expected once
// shutdown starts; wrk 4.1 reports a refused non-blocking connect as a
// write error, not a connect error, so both land here.
type loadResult struct {
	Requests, Failed, Refused int
	Raw                       string
}

// wrkSummary parses the summary wrk prints:
//
//	12345 requests in 5.00s, 1.23MB read
//	Socket errors: connect 0, read 0, write 17, timeout 0
//	Non-2xx or 3xx responses: 0
//
// The last two lines are printed only when not zero.
func wrkSummary(out string) (loadResult, error) {
	res := loadResult{Raw: out}
	m := regexp.MustCompile(`(?m)^\s*(\d+) requests in `).FindStringSubmatch(out)
	if m == nil {
		return res, errors.New("no \"N requests in\" line")
	}
	res.Requests, _ = strconv.Atoi(m[1])
	if m := regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`).FindStringSubmatch(out); m != nil {
		n := make([]int, 4)
		for i := range n {
			n[i], _ = strconv.Atoi(m[i+1])
		}
		res.Refused += n[0] + n[2]
		res.Failed += n[1] + n[3]
	} else if strings.Contains(out, "Socket errors") {
		return res, errors.New("a Socket errors line in an unknown format")
	}
	if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		res.Failed += n
	}
	return res, nil
}

func TestWrkSummary(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want loadResult
	}{
		{"  37254 requests in 3.01s, 4.19MB read\nRequests/sec: 12375.03\n", loadResult{Requests: 37254}},
		{"  6888 requests in 3.00s, 0.90MB read\n  Socket errors: connect 2, read 0, write 3649, timeout 0\n", loadResult{Requests: 6888, Refused: 3651}},
		{"  10 requests in 1.00s, 1KB read\n  Socket errors: connect 0, read 8, write 9, timeout 1\n  Non-2xx or 3xx responses: 3\n", loadResult{Requests: 10, Failed: 12, Refused: 9}},
	} {
		got, err := wrkSummary(tc.out)
		got.Raw = ""
		if err != nil || got != tc.want {
			t.Errorf("wrkSummary(%q) = %+v, %v; want %+v", tc.out, got, err, tc.want)
		}
	}
	if _, err := wrkSummary("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("wrkSummary of a run that never connected: no error; want one")
	}
}

// runWrk runs wrk against url for d and returns its summary.
func runWrk(t *testing.T, url string, d time.Duration) (loadResult, error) {
	out, err := exec.Command("wrk", "-t2", "-c32", "-d"+d.String(), "--timeout", "5s", url).CombinedOutput()
	if err != nil {
		return loadResult{Raw: string(out)}, fmt.Errorf("wrk: %v", err)
	}
	return wrkSummary(string(out))
}

// runGoLoad is the stand-in for wrk where it is not installed (never under
// CI=true): 32 keep-alive clients in a loop for d. A dial the closed
// listener refuses is Refused; any other error, or a status of 400 and up,
// is Failed.
func runGoLoad(url string, d time.Duration) (loadResult, error) {
	var res loadResult
	var reqs, failed, refused atomic.Int64
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := client.Get(url)
				var op *net.OpError
				switch {
				case errors.As(err, &op) && op.Op == "dial":
					refused.Add(1)
					time.Sleep(time.Millisecond)
				case err != nil:
					failed.Add(1)
				default:
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					reqs.Add(1)
					if resp.StatusCode >= 400 {
						failed.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	res.Requests, res.Failed, res.Refused = int(reqs.Load()), int(failed.Load()), int(refused.Load())
	return res, nil
}

// TestShutdownUnderLoad runs the production binary under load, sends it
// SIGTERM mid-run, and counts failed requests among those the gateway had
// accepted: there must be none. Once the signal arrives the gateway stops
// accepting (the load tool's new connections are refused, which is
// expected), answers every request already on a connection, each with
// Connection: close so the client does not send another there, and exits
// 0 once they are done.
func TestShutdownUnderLoad(t *testing.T) {
	_, err := exec.LookPath("wrk")
	useWrk := err == nil
	if !useWrk && os.Getenv("CI") == "true" {
		t.Fatal("wrk is not installed; under CI=true it must be (test.sh installs it)")
	}
	bin := buildBinary(t)
	listen, admin := freePort(t), freePort(t)
	public := "http://" + listen
	p := startIDP(t, public+"/.stepgate/callback")
	var served atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // so that requests are in flight when the signal comes
		served.Add(1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(app.Close)
	cfgText := strings.Replace(testConfig, "SECRETS_LIST", `"${SECRET}"`, 1)
	cfgText = strings.Replace(cfgText, `listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"`, `listen: "`+listen+`"
admin_listen: "`+admin+`"`, 1)
	cfgPath := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	serve, logs, exited := runServe(t, bin, cfgPath, admin, append(os.Environ(), "UPSTREAM="+app.URL, "PUBLIC_URL="+public, "ISSUER="+p.url,
		"CLIENT_SECRET=stepgate-test-secret", "SECRET="+secretOld))

	const run, signalAt = 5 * time.Second, 2 * time.Second
	loaded := make(chan struct{})
	var res loadResult
	var loadErr error
	go func() {
		defer close(loaded)
		if useWrk {
			res, loadErr = runWrk(t, public+"/healthz", run)
		} else {
			res, loadErr = runGoLoad(public+"/healthz", run)
		}
	}()
	time.Sleep(signalAt)
	before := served.Load()
	serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("serve after SIGTERM under load: %v; want exit 0\n%s", err, lastLines(logs.String(), 20))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of SIGTERM")
	}
	<-loaded
	if loadErr != nil {
		t.Fatalf("load run: %v\n%s", loadErr, res.Raw)
	}
	t.Logf("wrk=%v: %d requests answered, %d failed, %d refused connects; the app served %d before SIGTERM, %d in all\n%s",
		useWrk, res.Requests, res.Failed, res.Refused, before, served.Load(), res.Raw)
	if before < 100 {
		t.Fatalf("only %d requests before SIGTERM; the load never ran", before)
	}
	if res.Failed != 0 {
		t.Errorf("%d requests the gateway had accepted failed during shutdown; want 0\n%s", res.Failed, res.Raw)
	}
	if int64(res.Requests) < served.Load()-64 {
		// Every request the app served was answered, bar those wrk had not
		// read when its run ended (at most one per connection, twice over).
		t.Errorf("wrk got %d answers but the app served %d", res.Requests, served.Load())
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
