package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/store"
	"github.com/stepgate/stepgate/store/redistest"
)

// TestReplicas runs two gateway processes (the production binary, `serve`)
// that share one real redis-server: the same routes.yaml, session secrets,
// issuer and client_id, each with its own listeners and public_url. The
// provider's client lists both callbacks and posts back-channel logouts to
// replica A only, so whatever B refuses it learned through Redis. One Redis
// and one pair of processes serve every subtest; the last kills Redis.
func TestReplicas(t *testing.T) {
	bin := buildBinary(t)
	redis := redistest.Start(t)

	listenA, listenB := freePort(t), freePort(t)
	urlA, urlB := "http://"+listenA, "http://"+listenB
	p := startIDPWith(t, devidp.Client{
		ID: "stepgate", Secret: "stepgate-test-secret",
		RedirectURIs:         []string{urlA + "/.stepgate/callback", urlB + "/.stepgate/callback"},
		BackchannelLogoutURI: urlA + "/.stepgate/backchannel-logout",
	})
	cfgPath := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(cfgPath, []byte(sessionsConfig(t, true)), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, idp: p}
	t.Cleanup(c.checkLogs) // after the processes stopped: cleanups run last first
	shared := []string{"ISSUER=" + p.url, "CLIENT_SECRET=stepgate-test-secret", "SECRET=" + secretOld,
		"STORE=" + redis.URL(), "ADMIN_TOKEN=" + adminToken}
	c.a = startServe(t, bin, cfgPath, "replica A", listenA, shared)
	c.b = startServe(t, bin, cfgPath, "replica B", listenB, shared)

	t.Run("logout on A ends a copied cookie on B", func(t *testing.T) { checkLogout(t, c) })
	t.Run("back-channel logout at A ends the session on B", func(t *testing.T) { checkBackchannel(t, c) })
	t.Run("admin revoke on one replica ends sessions on both", func(t *testing.T) { checkAdmin(t, c) })
	t.Run("refused logout tokens revoke nothing", func(t *testing.T) { checkRefusedLogoutTokens(t, redis.URL()) })
	t.Run("redis killed while requests flow", func(t *testing.T) { checkStoreOutage(t, c, redis) })
}

// startServe runs `stepgate serve` with the shared configuration on listen
// (its admin listener on another free port) and waits until it is ready.
// It is stopped with SIGTERM when the test ends.
func startServe(t *testing.T, bin, cfgPath, name, listen string, shared []string) *replica {
	t.Helper()
	r := &replica{name: name, url: "http://" + listen, adminURL: "http://" + freePort(t), up: newTimedUpstream(t), logs: &lockedBuffer{}}
	cmd := exec.Command(bin, "serve", "-config", cfgPath)
	cmd.Env = append(os.Environ(), append(shared, "LISTEN="+listen, "ADMIN_LISTEN="+strings.TrimPrefix(r.adminURL, "http://"),
		"PUBLIC_URL="+r.url, "UPSTREAM="+r.up.url)...)
	cmd.Stderr = r.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s after SIGTERM: %v; want exit 0", name, err)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("%s did not stop within 15s of SIGTERM", name)
		}
		if t.Failed() {
			logs := r.logs.String()
			t.Logf("%s log (the last 8 KiB):\n%s", name, logs[max(0, len(logs)-8<<10):])
		}
	})
	waitReady(t, r.adminURL+"/readyz", exited)
	return r
}

// checkRefusedLogoutTokens posts logout tokens that break one rule each to
// two gateways sharing the Redis at storeURL. devidp's signing key is its
// own, so these gateways are in-process (gateway.New) in front of an
// oidctest provider, which signs whatever a test asks. Each bad token gets
// 400 and a live session of the provider session it names keeps working on
// both; then the well-formed token, with the jti every bad one carried,
// ends that session on both, which shows the bad ones were refused for
// their flaw alone and burnt nothing.
func checkRefusedLogoutTokens(t *testing.T, storeURL string) {
	const sid, jti = "op-session-erin", "jti-shared-by-every-token"
	op := oidctest.NewServer(t, oidctest.Options{Subject: "erin", SID: sid})
	a := startSessionGateway(t, "in-process A", op.URL, op.ClientSecret, storeURL)
	b := startSessionGateway(t, "in-process B", op.URL, op.ClientSecret, storeURL)
	cookie := signInWith(t, a.browser(), a.replica)
	works(t, cookie, a.replica, b.replica)

	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	var sent []string // every token posted: none may be logged
	for _, tc := range []struct {
		name string
		tok  oidctest.Token
	}{
		{"nonce", oidctest.Token{Claims: func(c map[string]any) { c["nonce"] = "n-0123456789" }}},
		{"wrong aud", oidctest.Token{Claims: func(c map[string]any) { c["aud"] = "other-app" }}},
		{"wrong iss", oidctest.Token{Claims: func(c map[string]any) { c["iss"] = "https://evil.example" }}},
		{"missing events", oidctest.Token{Claims: func(c map[string]any) { delete(c, "events") }}},
		{"other event", oidctest.Token{Claims: func(c map[string]any) {
			c["events"] = map[string]any{"http://schemas.openid.net/event/other": map[string]any{}}
		}}},
		{"stale iat", oidctest.Token{Claims: func(c map[string]any) { c["iat"], c["exp"] = now-10*60, now+60 }}},
		{"iat in the future", oidctest.Token{Claims: func(c map[string]any) { c["iat"], c["exp"] = now+10*60, now+11*60 }}},
		{"expired", oidctest.Token{Claims: func(c map[string]any) { c["iat"], c["exp"] = now-4*60, now-3*60 }}},
		{"neither sid nor sub", oidctest.Token{Claims: func(c map[string]any) { delete(c, "sid"); delete(c, "sub") }}},
		{"bad signature", oidctest.Token{Key: otherKey}},
		{"alg none", oidctest.Token{Alg: "none"}},
		{"HS256 keyed with the public key", oidctest.Token{Alg: "HS256"}},
		{"typ of an ID token", oidctest.Token{Header: func(h map[string]any) { h["typ"] = "JWT" }}},
	} {
		claims := tc.tok.Claims
		tc.tok.Claims = func(c map[string]any) {
			c["jti"] = jti
			if claims != nil {
				claims(c)
			}
		}
		token, err := op.LogoutToken(tc.tok)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		sent = append(sent, token)
		for _, r := range []*replica{b.replica, a.replica} {
			status, got := postLogoutToken(t, r, token)
			if status != http.StatusBadRequest || !strings.Contains(got, `"invalid_request"`) || strings.Contains(got, "oidc:") {
				t.Errorf("%s: %s answered %d %.200q; want 400 invalid_request without internal detail", tc.name, r.name, status, got)
			}
		}
		works(t, cookie, a.replica, b.replica)
	}

	good, err := op.LogoutToken(oidctest.Token{Claims: func(c map[string]any) { c["jti"] = jti }})
	if err != nil {
		t.Fatal(err)
	}
	if status, got := postLogoutToken(t, b.replica, good); status != http.StatusOK {
		t.Fatalf("the well-formed logout token at %s: %d %.200q; want 200", b.name, status, got)
	}
	refusedWithin(t, propagation, cookie, a.replica, b.replica)
	if status, got := postLogoutToken(t, a.replica, good); status != http.StatusBadRequest {
		t.Errorf("the same logout token again at %s: %d %.200q; want 400 (jti used at %s)", a.name, status, got, b.name)
	}
	for _, r := range []*replica{a.replica, b.replica} {
		for _, tok := range append(sent, good) {
			if strings.Contains(r.logs.String(), tok) {
				t.Errorf("%s logged a logout token", r.name)
			}
		}
	}
}

// sessionGateway is an in-process gateway as a replica.
type sessionGateway struct {
	*gw
	*replica
}

// startSessionGateway runs an in-process gateway of the sessions
// configuration for issuer, sharing storeURL.
func startSessionGateway(t *testing.T, name, issuer, clientSecret, storeURL string) *sessionGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	up := newTimedUpstream(t)
	g := &gw{t: t, up: up.upstream, url: public}
	g.launch(name+".yaml", sessionsConfig(t, true), map[string]string{
		"LISTEN": "127.0.0.1:0", "ADMIN_LISTEN": "127.0.0.1:0",
		"UPSTREAM": up.url, "PUBLIC_URL": public, "ISSUER": issuer,
		"CLIENT_SECRET": clientSecret, "SECRET": secretOld, "ADMIN_TOKEN": adminToken, "STORE": storeURL,
	}, ln)
	return &sessionGateway{gw: g, replica: &replica{name: name, url: public, adminURL: g.adminURL, up: up, logs: g.logs}}
}

// probe is one request of the outage test's load and its answer.
type probe struct {
	sent, done time.Time
	path       string
	status     int
	retryAfter string
}

// load sends, until stop, a request to the multi-factor route with cookie
// and one to the public route, every 25ms, to r.
type load struct {
	mu     sync.Mutex
	probes []probe
	stop   context.CancelFunc
	done   chan struct{}
}

func startLoad(t *testing.T, r *replica, cookie string) *load {
	ctx, stop := context.WithCancel(context.Background())
	l := &load{stop: stop, done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	send := func(path string, withCookie bool) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+path, nil)
		req.Header.Set("Accept", "application/json")
		if withCookie {
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		}
		pr := probe{sent: time.Now(), path: path}
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("load: GET %s at %s: %v", path, r.name, err)
			}
			return
		}
		resp.Body.Close()
		pr.done, pr.status, pr.retryAfter = time.Now(), resp.StatusCode, resp.Header.Get("Retry-After")
		l.mu.Lock()
		l.probes = append(l.probes, pr)
		l.mu.Unlock()
	}
	go func() {
		defer close(l.done)
		for ctx.Err() == nil {
			send(transferPath, true)
			send("/healthz", false)
			select {
			case <-ctx.Done():
			case <-time.After(25 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { l.end() })
	return l
}

// end stops the load and returns every probe, in the order sent.
func (l *load) end() []probe {
	l.stop()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.probes
}

// first returns the first probe of path after since that answered status.
func (l *load) first(path string, status int, since time.Time) (probe, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.probes {
		if p.path == path && p.status == status && p.sent.After(since) {
			return p, true
		}
	}
	return probe{}, false
}

// waitFor polls cond every 20ms for at most d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readyz(r *replica) int {
	resp, err := plain.Get(r.adminURL + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkStoreOutage kills redis-server while B serves a steady load. Within
// store_grace B keeps serving from its copy of the revocation list; once
// the copy is older than that, the multi-factor route answers 503 with
// Retry-After and nothing that needs a level reaches the upstream, while
// the public route keeps answering and /readyz reports the outage. When
// Redis is back (empty: no persistence), B serves again, and every
// revocation made before the kill, the last one through A just before it,
// is still honoured on both replicas: each follower keeps what it knew.
func checkStoreOutage(t *testing.T, c *cluster, redis *redistest.Server) {
	_, live := c.signIn(t, c.a, mfaLogin("frank"))
	works(t, live, c.a, c.b)
	victimBrowser, victim := c.signIn(t, c.a, mfaLogin("gina"))
	works(t, victim, c.b)

	l := startLoad(t, c.b, live)
	time.Sleep(300 * time.Millisecond) // a baseline of answers with Redis up

	resp := victimBrowser.do(http.MethodPost, c.a.url+"/.stepgate/logout", map[string]string{"Origin": c.a.url})
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout at %s: %d; want 303", c.a.name, resp.StatusCode)
	}
	refusedWithin(t, propagation, victim, c.b, c.a)
	c.mustStayRevoked(victim)

	killed := time.Now()
	redis.Kill()
	first503, ok := probe{}, false
	if !waitFor(storeGrace+3*time.Second, func() bool {
		first503, ok = l.first(transferPath, http.StatusServiceUnavailable, killed)
		return ok
	}) {
		t.Fatalf("the multi-factor route at %s never answered 503 within %v of the kill", c.b.name, storeGrace+3*time.Second)
	}
	if n, err := strconv.Atoi(first503.retryAfter); err != nil || n < 1 {
		t.Errorf("503 with Retry-After %q; want a positive number of seconds", first503.retryAfter)
	}
	for _, r := range []*replica{c.a, c.b} {
		if status := readyz(r); status != http.StatusServiceUnavailable {
			t.Errorf("%s /readyz with Redis down for %v: %d; want 503", r.name, time.Since(killed).Round(time.Millisecond), status)
		}
	}
	time.Sleep(300 * time.Millisecond) // some answers well into the outage

	restarted := time.Now()
	redis.Restart()
	if !waitFor(10*time.Second, func() bool {
		_, ok := l.first(transferPath, http.StatusOK, restarted)
		return ok && readyz(c.a) == http.StatusOK && readyz(c.b) == http.StatusOK
	}) {
		t.Fatalf("10s after Redis came back: %s forwards the multi-factor route again: %v; /readyz A %d, B %d; want 200s",
			c.b.name, func() bool { _, ok := l.first(transferPath, http.StatusOK, restarted); return ok }(), readyz(c.a), readyz(c.b))
	}
	probes := l.end()
	t.Logf("503 %v after the kill; Redis down %v; %d requests", first503.done.Sub(killed).Round(time.Millisecond),
		restarted.Sub(killed).Round(time.Millisecond), len(probes))

	cutoff := killed.Add(storeGrace)
	publicDuringOutage := 0
	for _, pr := range probes {
		switch {
		case pr.path == "/healthz":
			if pr.status != http.StatusOK {
				t.Errorf("public route at %v after the kill: %d; want 200 throughout", pr.sent.Sub(killed).Round(time.Millisecond), pr.status)
			}
			if pr.sent.After(killed) && pr.done.Before(restarted) {
				publicDuringOutage++
			}
		case pr.status != http.StatusOK && pr.status != http.StatusServiceUnavailable:
			t.Errorf("multi-factor route at %v after the kill: %d; want 200 or 503", pr.sent.Sub(killed).Round(time.Millisecond), pr.status)
		case pr.status == http.StatusServiceUnavailable && pr.sent.Before(killed):
			t.Errorf("multi-factor route answered 503 before Redis was killed")
		case pr.status == http.StatusServiceUnavailable && pr.done.Before(cutoff.Add(-100*time.Millisecond)):
			// Staleness counts from when the replica lost Redis, which is
			// after the kill: a 503 earlier than the grace is not honoured.
			t.Errorf("multi-factor route answered 503 %v after the kill; want 200 for store_grace %v", pr.done.Sub(killed).Round(time.Millisecond), storeGrace)
		case pr.status == http.StatusOK && pr.sent.After(first503.sent) && pr.done.Before(restarted):
			t.Errorf("multi-factor route answered 200 at %v after the kill, after it had answered 503: stale is stale until Redis is back",
				pr.sent.Sub(killed).Round(time.Millisecond))
		}
	}
	if publicDuringOutage < 5 {
		t.Errorf("%d public requests answered during the outage; want a steady load", publicDuringOutage)
	}

	// The upstream's own record: once the view is older than the grace,
	// nothing that needs a level is forwarded until Redis is back. The
	// replica loses Redis within milliseconds of the kill (the connection
	// is reset), and a request decided just inside the grace still needs
	// a moment to arrive: half a second covers both.
	for _, hit := range c.b.up.arrivals() {
		if strings.HasPrefix(hit.path, "/api/transfers") && hit.at.After(cutoff.Add(500*time.Millisecond)) && hit.at.Before(restarted) {
			t.Errorf("%s's upstream received %s for %s %v after the kill, past store_grace %v", c.b.name, hit.path, hit.subject,
				hit.at.Sub(killed).Round(time.Millisecond), storeGrace)
		}
	}

	// Redis came back empty...
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := store.NewRedis(ctx, redis.URL(), store.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if list, err := s.Revocations(ctx); err != nil || len(list) != 0 {
		t.Fatalf("Redis after the restart holds %d revocations (%v); want none (no persistence)", len(list), err)
	}
	// ...yet every session ended before the kill stays ended on both.
	for _, cookie := range c.revoked {
		refusedWithin(t, 0, cookie, c.a, c.b)
	}
	works(t, live, c.a, c.b)

	// And the feed is live again: a sign-in and a logout at A reach B.
	hb, hank := c.signIn(t, c.a, mfaLogin("hank"))
	works(t, hank, c.b)
	resp = hb.do(http.MethodPost, c.a.url+"/.stepgate/logout", map[string]string{"Origin": c.a.url})
	resp.Body.Close()
	refusedWithin(t, propagation, hank, c.a, c.b)
}
