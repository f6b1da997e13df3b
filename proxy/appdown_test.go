package proxy

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// switchableUpstream is the protected app on one fixed address, which a
// test can take down (nothing listens), crash (the port accepts and drops
// every connection) and bring back.
type switchableUpstream struct {
	t       *testing.T
	addr    string
	srv     *http.Server
	ln      net.Listener
	accepts atomic.Int64 // connections the crashing app accepted
	done    chan struct{}
}

func newSwitchableUpstream(t *testing.T) *switchableUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &switchableUpstream{t: t, addr: ln.Addr().String()}
	u.serve(ln)
	t.Cleanup(u.down)
	return u
}

func (u *switchableUpstream) url() *url.URL { return &url.URL{Scheme: "http", Host: u.addr} }

func (u *switchableUpstream) serve(ln net.Listener) {
	u.ln = ln
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app: "+r.URL.Path)
	})}
	go u.srv.Serve(ln)
}

// down stops whatever listens on the address.
func (u *switchableUpstream) down() {
	if u.srv != nil {
		u.srv.Close()
		u.srv = nil
	}
	if u.ln != nil {
		u.ln.Close()
		u.ln = nil
	}
	if u.done != nil {
		<-u.done
		u.done = nil
	}
}

func (u *switchableUpstream) listen() net.Listener {
	ln, err := net.Listen("tcp", u.addr)
	if err != nil {
		u.t.Fatalf("listening again on %s: %v", u.addr, err)
	}
	return ln
}

// crash makes the address accept connections and close them at once, as
// an app that dies on every request does.
func (u *switchableUpstream) crash() {
	u.down()
	ln := u.listen()
	u.ln, u.done = ln, make(chan struct{})
	go func() {
		defer close(u.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepts.Add(1)
			c.Close()
		}
	}()
}

func (u *switchableUpstream) up() {
	u.down()
	u.serve(u.listen())
}

// settledGoroutines waits up to 5s for the goroutine count to come down to
// at most limit and returns the last count.
func settledGoroutines(limit int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); n > limit && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// TestUpstreamOutage takes the app down under the gateway, in both ways it
// goes down (nothing listening, and accepting then dropping connections):
// every request gets a 502 (a page for navigations, JSON otherwise)
// without internal error text, each request costs the app at most one
// connection attempt (no retry storm), no goroutine is left behind, and
// the first request once the app is back is forwarded (no circuit is left
// open).
func TestUpstreamOutage(t *testing.T) {
	app := newSwitchableUpstream(t)
	f := newFixture(t, func(c *Config) { c.Upstream = app.url() })
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	send := func(method, path, accept, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, f.front.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", accept)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if resp, body := send(http.MethodGet, "/public/a", "text/html", ""); resp.StatusCode != http.StatusOK || body != "app: /public/a" {
		t.Fatalf("with the app up: %d %q; want 200 from the app", resp.StatusCode, body)
	}

	cases := []struct {
		method, accept, body string
		wantType, wantText   string
	}{
		{http.MethodGet, "text/html,application/xhtml+xml", "", "text/html", "not reachable"},
		{http.MethodGet, "application/json", "", "application/json", `"error":"bad_gateway"`},
		{http.MethodPost, "application/json", `{"amount":1}`, "application/json", `"error":"bad_gateway"`},
	}
	for _, outage := range []struct {
		name  string
		start func()
	}{{"app not listening", app.down}, {"app drops every connection", app.crash}} {
		t.Run(outage.name, func(t *testing.T) {
			outage.start()
			client.CloseIdleConnections()
			before := runtime.NumGoroutine()
			app.accepts.Store(0)
			const rounds = 40
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failures []string
			for i := range rounds {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tc := cases[i%len(cases)]
					resp, body := send(tc.method, "/public/x", tc.accept, tc.body)
					ct := resp.Header.Get("Content-Type")
					var why string
					switch {
					case resp.StatusCode != http.StatusBadGateway:
						why = "status " + resp.Status
					case !strings.HasPrefix(ct, tc.wantType) || !strings.Contains(body, tc.wantText):
						why = "body " + ct + " " + body
					case strings.Contains(body, app.addr) || strings.Contains(body, "dial") || strings.Contains(body, "EOF"):
						why = "internal error text in " + body
					}
					if why != "" {
						mu.Lock()
						failures = append(failures, tc.method+" "+tc.accept+": "+why)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			for _, msg := range failures {
				t.Errorf("%s; want 502 %s", msg, "without internal text")
			}
			if n := app.accepts.Load(); n > rounds {
				t.Errorf("the app saw %d connections for %d requests; want at most one each (no retries)", n, rounds)
			}
			client.CloseIdleConnections()
			if n := settledGoroutines(before + 2); n > before+2 {
				t.Errorf("goroutines: %d before %d failing requests, %d after; want no leak", before, rounds, n)
			}
		})
	}

	app.up()
	if resp, body := send(http.MethodGet, "/public/b", "text/html", ""); resp.StatusCode != http.StatusOK || body != "app: /public/b" {
		t.Errorf("first request once the app is back: %d %q; want 200 from the app", resp.StatusCode, body)
	}
}
