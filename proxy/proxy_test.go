package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

var mfa = &policy.Level{
	Name:        "mfa",
	ACRValues:   []string{"urn:mfa"},
	MaxAge:      15 * time.Minute,
	SatisfiedBy: []policy.Alternative{{ACR: []string{"urn:mfa"}}, {AMR: []string{"mfa"}}},
}

// fixture is a Handler in front of a recording upstream, without an IdP:
// these tests are about what is forwarded and what is refused. Each opt may
// adjust the Handler's Config before it is built.
type fixture struct {
	t     *testing.T
	h     *Handler
	front *httptest.Server
	mu    sync.Mutex
	got   []*http.Request
	store *session.Store
}

func newFixture(t *testing.T, opts ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.got = append(f.got, r.Clone(r.Context()))
		f.mu.Unlock()
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(up.Close)
	rules := []policy.Rule{
		{Name: "public", Path: "/public/**", Access: policy.Public},
		{Name: "transfer-read", Path: "/admin/transfer/**", Methods: []string{"GET"}, Access: policy.Authenticated},
		{Name: "transfer", Path: "/admin/transfer/**", Access: policy.Leveled, Level: mfa},
		{Name: "blocked", Path: "/blocked/**", Access: policy.Denied},
		{Name: "feeds", Path: "/feeds/**", Access: policy.Leveled, Level: mfa},
	}
	table, err := policy.NewTable(rules, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.store, err = session.New(session.Config{Secrets: [][]byte{[]byte(strings.Repeat("k", 32))}, Lifetime: time.Hour, Issuer: "https://idp", ClientID: "stepgate"})
	if err != nil {
		t.Fatal(err)
	}
	upURL, _ := url.Parse(up.URL)
	pub, _ := url.Parse("http://gateway.test")
	cfg := Config{
		Table: table, Levels: []*policy.Level{mfa}, Sessions: f.store,
		Upstream: upURL, PublicURL: pub, IdentityHeaders: []string{"Remote-User"},
		Logger: discardLogger(),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	f.h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.front = httptest.NewServer(f.h)
	t.Cleanup(f.front.Close)
	return f
}

// cookie returns a session cookie for facts.
func (f *fixture) cookie(facts policy.Facts) string {
	rec := httptest.NewRecorder()
	if _, err := f.store.Save(rec, facts, time.Now()); err != nil {
		f.t.Fatal(err)
	}
	c := rec.Result().Cookies()[0]
	return c.Name + "=" + c.Value
}

func (f *fixture) upstreamCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

func (f *fixture) lastUpstream() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) == 0 {
		return nil
	}
	return f.got[len(f.got)-1]
}

// raw sends a request written byte for byte, so that tests control the
// request-target and headers exactly, and returns the status line's code.
func (f *fixture) raw(req string) (int, string) {
	f.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.front.URL, "http://"))
	if err != nil {
		f.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		f.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		f.t.Fatalf("reading response to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var alice = policy.Facts{Issuer: "https://idp", Subject: "alice", Email: "a@x", AMR: []string{"pwd"}, AuthTime: time.Now()}
var aliceMFA = policy.Facts{Issuer: "https://idp", Subject: "alice", ACR: "urn:mfa", AMR: []string{"pwd", "otp"}, AuthTime: time.Now()}

func TestForgedIdentityHeadersNeverReachUpstream(t *testing.T) {
	f := newFixture(t)
	req := "GET /account HTTP/1.1\r\nHost: gateway.test\r\nCookie: theme=dark; " + f.cookie(alice) + "; stepgate-p-abc=x\r\nCookie: lang=en\r\n" +
		"X-Stepgate-Subject: mallory\r\n" +
		"x-stepgate-subject: mallory2\r\n" +
		"X_Stepgate_Acr: urn:mfa\r\n" +
		"X.Stepgate.Amr: mfa\r\n" +
		"X-STEPGATE-AUTH-TIME: 99999999999\r\n" +
		"Remote-User: admin\r\n" +
		"Remote_User: admin\r\n" +
		"X-HTTP-Method-Override: DELETE\r\n" +
		"X-Forwarded-For: 10.9.9.9\r\n" +
		"X-Forwarded-Host: evil.example\r\n" +
		"X-Forwarded-Proto: https\r\n" +
		"Forwarded: for=10.9.9.9;host=evil.example\r\n" +
		"Connection: keep-alive, X-Stepgate-Subject, X-Stepgate-Acr\r\n\r\n"
	if code, _ := f.raw(req); code != 200 {
		t.Fatalf("status %d; want 200", code)
	}
	r := f.lastUpstream()
	if r == nil {
		t.Fatal("upstream got nothing")
	}
	for name, vals := range r.Header {
		n := strings.ToLower(name)
		if strings.Contains(n, "remote") || strings.Contains(n, "override") || strings.ContainsAny(n, "_.") {
			t.Errorf("upstream got %s: %q", name, vals)
		}
	}
	// The app keeps its own cookies and never gets the gateway's.
	if got := r.Header.Values("Cookie"); len(got) != 1 || got[0] != "theme=dark; lang=en" {
		t.Errorf("upstream Cookie %q; want only the app's cookies", got)
	}
	// X-Forwarded-* describe the real peer, never the client's claims
	// (threat model case 36).
	for h, v := range map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "gateway.test", "X-Forwarded-Proto": "http", "Forwarded": ""} {
		if got := strings.Join(r.Header.Values(h), ","); got != v {
			t.Errorf("upstream %s = %q; want %q", h, got, v)
		}
	}
	want := map[string]string{HeaderSubject: "alice", HeaderEmail: "a@x", HeaderACR: "", HeaderAMR: "pwd"}
	for h, v := range want {
		if got := r.Header.Values(h); len(got) != 1 || got[0] != v {
			t.Errorf("upstream %s = %q; want exactly [%q]", h, got, v)
		}
	}
}

func TestOverrideMethodsAreDecidedStrictest(t *testing.T) {
	f := newFixture(t)
	ck := f.cookie(alice) // authenticated, no multi-factor
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"plain GET passes", "GET /admin/transfer/1 HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nCookie: " + ck + "\r\n\r\n", 200},
		{"override header", "GET /admin/transfer/1 HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nX-HTTP-Method-Override: POST\r\nCookie: " + ck + "\r\n\r\n", 401},
		{"X-HTTP-Method", "GET /admin/transfer/1 HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nX-HTTP-Method: DELETE\r\nCookie: " + ck + "\r\n\r\n", 401},
		{"X-Method-Override", "GET /admin/transfer/1 HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nX-Method-Override: PUT\r\nCookie: " + ck + "\r\n\r\n", 401},
		{"_method query", "GET /admin/transfer/1?_method=DELETE HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nCookie: " + ck + "\r\n\r\n", 401},
		{"lower-case override", "GET /admin/transfer/1 HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nX-HTTP-Method-Override: delete\r\nCookie: " + ck + "\r\n\r\n", 403},
		{"HEAD is GET", "HEAD /admin/transfer/1 HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nCookie: " + ck + "\r\n\r\n", 200},
		{"POST steps up", "POST /admin/transfer/1 HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nContent-Length: 0\r\nCookie: " + ck + "\r\n\r\n", 401},
		{"odd method steps up", "PROPFIND /admin/transfer/1 HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nCookie: " + ck + "\r\n\r\n", 401},
		{"lower-case method refused", "get /admin/transfer/1 HTTP/1.1\r\nHost: g\r\nCookie: " + ck + "\r\n\r\n", 400},
		{"CONNECT refused", "CONNECT g:443 HTTP/1.1\r\nHost: g\r\n\r\n", 405},
		{"TRACE refused", "TRACE /public/x HTTP/1.1\r\nHost: g\r\n\r\n", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.upstreamCount()
			code, body := f.raw(tc.req)
			if code != tc.want {
				t.Errorf("status %d (%q); want %d", code, body, tc.want)
			}
			if reached := f.upstreamCount() > before; reached != (tc.want == 200) {
				t.Errorf("upstream reached = %v; want %v", reached, tc.want == 200)
			}
		})
	}
}

func TestAmbiguousTargetsAreRejected(t *testing.T) {
	f := newFixture(t)
	ck := f.cookie(aliceMFA)
	for _, target := range []string{
		"/public/../admin/transfer/1", // resolved, then matched: must not be public
		"/public/%2e%2e/admin/transfer/1",
		"/public%2F..%2Fadmin%2Ftransfer",
		"/public/..\\admin\\transfer",
		"/admin/transfer%00.png",
		"/public/%252e%252e/admin/transfer",
		"/admin/transfer#x",
		"/%c0%ae%c0%ae/admin/transfer",
		"http://evil.internal/admin/transfer/1",
		"*",
	} {
		t.Run(target, func(t *testing.T) {
			before := f.upstreamCount()
			code, body := f.raw("GET " + target + " HTTP/1.1\r\nHost: gateway.test\r\nAccept: application/json\r\n\r\n")
			if code == 200 || f.upstreamCount() != before {
				t.Fatalf("%s: %d reached the upstream without a session", target, code)
			}
			if strings.Contains(body, "policy:") || strings.Contains(body, "rejected") {
				t.Errorf("body leaks internal text: %q", body)
			}
		})
	}
	// With a multi-factor session the dot-segment path is forwarded in its
	// canonical form: exactly what was matched.
	code, _ := f.raw("GET /public/%2e%2e/admin/./transfer//1 HTTP/1.1\r\nHost: g\r\nCookie: " + ck + "\r\n\r\n")
	if code != 200 {
		t.Fatalf("status %d; want 200", code)
	}
	if got := f.lastUpstream().URL.EscapedPath(); got != "/admin/transfer/1" {
		t.Errorf("upstream path %q; want the canonical /admin/transfer/1", got)
	}
}

func TestUpgradesOtherThanWebsocketAreRefused(t *testing.T) {
	f := newFixture(t)
	for _, up := range []string{"h2c", "websocket, h2c", "H2C"} {
		before := f.upstreamCount()
		code, _ := f.raw("GET /public/x HTTP/1.1\r\nHost: g\r\nUpgrade: " + up + "\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
		if code != http.StatusBadRequest || f.upstreamCount() != before {
			t.Errorf("Upgrade %q: %d; want 400 and no upstream request", up, code)
		}
	}
}

func TestDeniedAndUpstreamDown(t *testing.T) {
	f := newFixture(t)
	code, body := f.raw("GET /blocked/x HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nCookie: " + f.cookie(aliceMFA) + "\r\n\r\n")
	if code != 403 || !strings.Contains(body, `"forbidden"`) {
		t.Errorf("deny rule: %d %q; want 403 JSON", code, body)
	}
	pub, _ := url.Parse("http://gateway.test")
	dead, _ := url.Parse("http://127.0.0.1:1")
	h, err := New(Config{Table: f.h.routes.Load().table, Sessions: f.store, Upstream: dead, PublicURL: pub, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/public/x", nil)
	req.Header.Set("Accept", "text/html")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadGateway || strings.Contains(rec.Body.String(), "connection refused") {
		t.Errorf("upstream down: %d %q; want a 502 page without internal text", rec.Code, rec.Body.String())
	}
}

func TestLoginWithoutProviderIs503(t *testing.T) {
	f := newFixture(t)
	code, _ := f.raw("GET /account HTTP/1.1\r\nHost: g\r\nAccept: text/html\r\n\r\n")
	if code != http.StatusServiceUnavailable {
		t.Errorf("navigation before discovery: %d; want 503", code)
	}
	rec := httptest.NewRecorder()
	Admin(f.h).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before discovery: %d; want 503", rec.Code)
	}
}

func TestWebsocketUpgradeOnlyAfterDecision(t *testing.T) {
	f := newFixture(t)
	ws := "GET /feeds/transfers HTTP/1.1\r\nHost: g\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	// A password-only session on a step-up route: refused before any tunnel.
	if code, _ := f.raw(ws + "Cookie: " + f.cookie(alice) + "\r\n\r\n"); code != http.StatusUnauthorized || f.upstreamCount() != 0 {
		t.Fatalf("weak session: %d, upstream %d requests; want 401 and none", code, f.upstreamCount())
	}
	// A satisfying session: the upgrade request is forwarded as websocket.
	f.raw(ws + "Cookie: " + f.cookie(aliceMFA) + "\r\n\r\n")
	r := f.lastUpstream()
	if r == nil || r.Header.Get("Upgrade") != "websocket" || r.Header.Get(HeaderSubject) != "alice" {
		t.Fatalf("upstream got %v; want the websocket upgrade with identity", r)
	}
}

// TestFramingAttacksNeverReachUpstream covers threat model case 24 and §I 73,
// 74, 81 through Go's HTTP/1 server as stepgate runs it: ambiguous framing
// is refused before the pipeline, and a request that expects 100-continue
// is decided before its body is asked for.
func TestFramingAttacksNeverReachUpstream(t *testing.T) {
	f := newFixture(t)
	smuggled := "GET /admin/transfer/1 HTTP/1.1\r\nHost: g\r\n\r\n"
	for name, req := range map[string]string{
		"TE xchunked":                "POST /public/x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled,
		"TE chunked, identity":       "POST /public/x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled,
		"TE with space before colon": "POST /public/x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"conflicting CL":             "POST /public/x HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\nContent-Length: 50\r\n\r\n" + smuggled,
		"duplicate Host":             "GET /public/x HTTP/1.1\r\nHost: g\r\nHost: admin.g\r\n\r\n",
		"NUL in header":              "GET /public/x HTTP/1.1\r\nHost: g\r\nX-A: a\x00b\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			before := f.upstreamCount()
			code, _ := f.raw(req)
			if code != http.StatusBadRequest && code != http.StatusNotImplemented {
				t.Errorf("status %d; want 400 or 501", code)
			}
			if f.upstreamCount() != before {
				t.Errorf("upstream reached")
			}
		})
	}
	// Content-Length with Transfer-Encoding, obs-fold and a bare LF in a
	// chunk: Go's server resolves them one way (chunked wins, RFC 9112 §6.3;
	// the fold becomes a space; the bad chunk ends the body with an error)
	// and stepgate re-frames what it forwards, so the upstream can
	// never see a request the gateway did not decide. The smuggled request,
	// if read at all, is decided on its own: no session, so never forwarded.
	for name, req := range map[string]string{
		"CL and TE":             "POST /public/x HTTP/1.1\r\nHost: g\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"bare LF in chunk size": "POST /public/x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\n" + smuggled,
		"obs-fold":              "POST /public/x HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\nX-A: a\r\n b\r\n\r\n" + smuggled,
	} {
		t.Run(name, func(t *testing.T) {
			f.raw(req)
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, r := range f.got {
				if strings.HasPrefix(r.URL.Path, "/admin") {
					t.Errorf("the smuggled request reached the upstream: %s", r.URL.Path)
				}
			}
		})
	}
	t.Run("expect 100-continue", func(t *testing.T) {
		// Headers only: the body is never sent. A gateway that forwarded or
		// read before deciding would hang here instead of answering 401.
		// Only this request counts: a request forwarded by an earlier case
		// may still be arriving upstream.
		code, _ := f.raw("POST /admin/transfer/1 HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
		reached := false
		f.mu.Lock()
		for _, r := range f.got {
			reached = reached || r.URL.Path == "/admin/transfer/1"
		}
		f.mu.Unlock()
		if code != http.StatusUnauthorized || reached {
			t.Errorf("status %d, upstream reached %v; want 401 before any body", code, reached)
		}
	})
}

func TestWebsocketTunnelEndsWithStepUp(t *testing.T) {
	// The upstream accepts the upgrade and keeps the tunnel open for as long
	// as the gateway lets it.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, conn)
	}))
	defer up.Close()
	f := newFixture(t)
	upURL, _ := url.Parse(up.URL)
	h, err := New(Config{Table: f.h.routes.Load().table, Levels: []*policy.Level{mfa}, Sessions: f.store, Upstream: upURL,
		PublicURL: f.h.publicURL, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()

	// A step-up that stops holding in about a second.
	almost := aliceMFA
	almost.AuthTime = time.Now().Add(-mfa.MaxAge - policy.ClockSkew + 1500*time.Millisecond)
	conn, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /feeds/live HTTP/1.1\r\nHost: g\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: "+f.cookie(almost)+"\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v; want 101", resp, err)
	}
	start := time.Now()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("tunnel not closed by the gateway: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("tunnel closed after %s; want about 1.5s, when the step-up expired", d)
	}
}
