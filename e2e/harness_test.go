package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepgate/stepgate/config"
	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/gateway"
	"github.com/stepgate/stepgate/policy"
)

const acrMFA = devidp.ACRMultiFactor

// The identity headers every test request forges, in several spellings. None
// of these values may ever reach the upstream.
var forged = map[string]string{
	"X-Stepgate-Subject":   "forged-admin",
	"X_Stepgate_Acr":       "forged-acr",
	"X.Stepgate.Amr":       "forged-mfa",
	"x-stepgate-auth-time": "forged-time",
	"X-Stepgate-Email":     "forged@evil.example",
}

const testConfig = `
listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
upstream: "${UPSTREAM}"
public_url: "${PUBLIC_URL}"
insecure_allow_http: true
oidc:
  issuer: "${ISSUER}"
  client_id: stepgate
  client_secret: "${CLIENT_SECRET}"
session:
  secrets: [SECRETS_LIST]
  lifetime: 1h
levels:
  mfa:
    acr_values: ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]
    max_age: 15m
    satisfied_by:
      - acr: ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]
      - amr: ["mfa"]
routes:
  - name: health
    path: /healthz
    require: public
  - name: transfers
    path: /api/transfers/**
    require: mfa
  - name: admin
    path: /admin/**
    require: mfa
  - name: blocked
    path: /blocked/**
    require: deny
  - name: preview
    path: /preview/**
    require: mfa
    mode: report
default: authenticated
`

const (
	secretOld = "old-secret-0123456789abcdef0123456789"
	secretNew = "new-secret-0123456789abcdef0123456789"
)

// upstream is the protected app: it records every request it receives and
// checks, as each arrives, the properties no request may break.
type upstream struct {
	t    *testing.T
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []*http.Request

	// behindIngress: in forward-auth mode the ingress, not stepgate,
	// forwards the request, Cookie header and all.
	behindIngress atomic.Bool
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{t: t}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for name, vals := range r.Header {
			for _, v := range vals {
				if strings.HasPrefix(v, "forged") {
					t.Errorf("upstream received client-sent identity header %s: %q", name, v)
				}
			}
			if n := strings.ToLower(name); strings.Contains(n, "stepgate") && strings.ContainsAny(n, "_.") {
				t.Errorf("upstream received aliased identity header %q", name)
			}
			if len(vals) > 1 && strings.HasPrefix(strings.ToLower(name), "x-stepgate-") {
				t.Errorf("upstream received %d copies of %s", len(vals), name)
			}
		}
		if strings.HasPrefix(r.URL.Path, "/api/transfers") || strings.HasPrefix(r.URL.Path, "/admin") {
			acr, amr := r.Header.Get("X-Stepgate-Acr"), r.Header.Get("X-Stepgate-Amr")
			if acr != acrMFA && !strings.Contains(","+amr+",", ",mfa,") {
				t.Errorf("upstream received %s without multi-factor: acr %q amr %q", r.URL.Path, acr, amr)
			}
		}
		for _, c := range r.Cookies() {
			if !u.behindIngress.Load() && c.Name == "stepgate" || strings.HasPrefix(c.Name, "stepgate-p-") {
				t.Errorf("upstream received the gateway's cookie %s", c.Name)
			}
		}
		if r.URL.Path != "/healthz" && r.Header.Get("X-Stepgate-Subject") == "" {
			t.Errorf("upstream received %s without a subject", r.URL.Path)
		}
		u.mu.Lock()
		u.reqs = append(u.reqs, r.Clone(context.Background()))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "upstream: "+r.URL.Path)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *upstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return nil
	}
	return u.reqs[len(u.reqs)-1]
}

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// idp runs the development provider on a loopback port.
type idp struct {
	*devidp.Provider
	url string
}

func startIDP(t *testing.T, redirectURIs ...string) *idp {
	t.Helper()
	return serveIDP(t, devidp.Config{Clients: []devidp.Client{
		{ID: "stepgate", Secret: "stepgate-test-secret", RedirectURIs: redirectURIs},
		{ID: "other-app", Secret: "other-app-secret", RedirectURIs: redirectURIs},
	}})
}

// serveIDP runs a provider configured as cfg says, with its issuer on a
// free loopback port, until the test ends.
func serveIDP(t *testing.T, cfg devidp.Config) *idp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Issuer = "http://" + ln.Addr().String()
	p, err := devidp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &idp{Provider: p, url: cfg.Issuer}
}

// gw is a running gateway in front of an upstream, with the provider.
type gw struct {
	t        *testing.T
	idp      *idp
	up       *upstream
	url      string // where browsers reach it: the gateway, or nginx in front of it
	listen   string // the gateway's own public listener
	adminURL string
	g        *gateway.Gateway
	logs     *lockedBuffer
	clock    atomic.Int64 // offset added to the real time, in nanoseconds
}

// startGateway starts a gateway. secrets is the YAML list body of
// session.secrets; a shared provider may be passed for rotation tests.
func startGateway(t *testing.T, p *idp, up *upstream, secrets string) *gw {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	if p == nil {
		p = startIDP(t, public+"/.stepgate/callback")
	}
	if up == nil {
		up = newUpstream(t)
	}
	env := map[string]string{
		"UPSTREAM": up.srv.URL, "PUBLIC_URL": public, "ISSUER": p.url,
		"CLIENT_SECRET": "stepgate-test-secret", "SECRETS": secrets,
	}
	g := &gw{t: t, idp: p, up: up, url: public}
	g.launch("test.yaml", strings.Replace(testConfig, "SECRETS_LIST", secrets, 1), env, ln)
	return g
}

// launch parses a configuration with env, wires the gateway on g's clock
// and provider, and serves it on ln until the test ends, when the captured
// log is checked for secrets.
func (g *gw) launch(name, cfgText string, env map[string]string, ln net.Listener) {
	t := g.t
	t.Helper()
	cfg, err := config.Parse(name, []byte(cfgText), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g.logs = &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	now := func() time.Time { return time.Now().Add(time.Duration(g.clock.Load())) }
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gwy, err := gateway.New(cfg, gateway.Options{Logger: logger, Now: now, Listener: ln, AdminListener: admin, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := gwy.Connect(context.Background()); err != nil {
		t.Fatalf("oidc: %v", err)
	}
	g.g = gwy
	g.listen = ln.Addr().String()
	g.adminURL = "http://" + admin.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gwy.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	t.Cleanup(func() { g.checkLogs() })
}

// advance moves the gateway's clock forward.
func (g *gw) advance(d time.Duration) { g.clock.Add(int64(d)) }

// browser is a cookie-jar client that follows redirects itself, so tests
// can see and change each hop.
type browser struct {
	t      *testing.T
	c      *http.Client
	jar    *cookiejar.Jar
	secret []string // codes, states and cookie values seen: must never be logged
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, jar: jar, c: &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// hop is one response in a chain of redirects.
type hop struct {
	url    *url.URL
	status int
	loc    string
}

// do sends one request with browser headers and the forged identity headers.
func (b *browser) do(method, rawURL string, hdr map[string]string) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	for k, v := range forged {
		req.Header[k] = []string{v}
	}
	req.Header.Add("X-Stepgate-Acr", "forged-dup")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	for _, c := range resp.Cookies() {
		if len(c.Value) > 8 {
			b.secret = append(b.secret, c.Value)
		}
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil {
			for _, k := range []string{"code", "state", "nonce", "code_challenge"} {
				if v := u.Query().Get(k); len(v) > 8 {
					b.secret = append(b.secret, v)
				}
			}
		}
	}
	return resp
}

// browse follows redirects from rawURL until a non-redirect answer. edit,
// when set, may change each hop's URL before it is requested (a user
// tampering with the authorize URL).
func (b *browser) browse(rawURL string, edit func(*url.URL)) (*http.Response, []hop) {
	b.t.Helper()
	var chain []hop
	next := rawURL
	for range 12 {
		u, err := url.Parse(next)
		if err != nil {
			b.t.Fatal(err)
		}
		if edit != nil {
			edit(u)
		}
		resp := b.do(http.MethodGet, u.String(), nil)
		loc := resp.Header.Get("Location")
		chain = append(chain, hop{url: u, status: resp.StatusCode, loc: loc})
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			return resp, chain
		}
		resp.Body.Close()
		lu, err := u.Parse(loc)
		if err != nil {
			b.t.Fatal(err)
		}
		next = lu.String()
	}
	b.t.Fatalf("redirect loop from %s: %v", rawURL, chain)
	return nil, nil
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// authorizeHops counts the hops that went to the provider's /authorize.
func authorizeHops(chain []hop, issuer string) int {
	n := 0
	for _, h := range chain {
		if strings.HasPrefix(h.url.String(), issuer) && strings.Contains(h.url.Path, "authorize") && h.url.Query().Get("client_id") != "" {
			n++
		}
	}
	return n
}

// checkLogs fails the test if anything secret reached the log.
func (g *gw) checkLogs() {
	logs := g.logs.String()
	for _, s := range []string{"stepgate-test-secret", secretOld, secretNew} {
		if strings.Contains(logs, s) {
			g.t.Errorf("log contains a configured secret")
		}
	}
	for _, b := range browsers(g) {
		for _, s := range b.secret {
			if strings.Contains(logs, s) {
				g.t.Errorf("log contains a code, state or cookie value (%d bytes)", len(s))
			}
		}
	}
}

var browserReg sync.Map // *gw -> []*browser

func browsers(g *gw) []*browser {
	v, _ := browserReg.Load(g)
	bs, _ := v.([]*browser)
	return bs
}

// browser returns a new browser whose secrets this gateway's log check knows.
func (g *gw) browser() *browser {
	b := newBrowser(g.t)
	bs := browsers(g)
	browserReg.Store(g, append(bs, b))
	return b
}

// script makes every login issue the given identity.
func (g *gw) script(l devidp.Login) {
	g.idp.SetScript(func(devidp.Request) devidp.Login { return l })
}

func pwdLogin(sub string) devidp.Login {
	return devidp.Login{Subject: sub, Email: sub + "@bank.example", AMR: []string{"pwd"}}
}

func mfaLogin(sub string) devidp.Login {
	return devidp.Login{Subject: sub, Email: sub + "@bank.example", HonourACRValues: true, AMR: []string{"pwd"}}
}

func httptestRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func factsOf(sub string) policy.Facts {
	return policy.Facts{Issuer: "https://idp.example", Subject: sub, AuthTime: time.Now()}
}
