package proxy_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/proxy"
	"github.com/stepgate/stepgate/session"
)

// The benchmarks compare the whole gateway pipeline with a bare
// httputil.ReverseProxy in front of the same loopback upstream, so one run
// shows stepgate's own cost per request:
//
//	go test -run '^$' -bench . -benchmem ./proxy
//
// bench/run.sh measures the same over real sockets, with wrk.

const (
	benchPath   = "/api/transfers/1"
	benchSecret = "proxy-bench-secret-0123456789abcdef0123"
	benchACR    = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
)

// benchUpstream answers every request with a small 200 and fails the
// benchmark if an allowed request arrives without the gateway's identity.
func benchUpstream(b *testing.B, wantIdentity bool) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wantIdentity && r.Header.Get(proxy.HeaderSubject) != "bench-user" {
			http.Error(w, "no identity", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	}))
	b.Cleanup(srv.Close)
	return srv
}

// benchTable is a route table of realistic size: 20 rules of every kind,
// with the mfa route for the benchmark's path near the end.
func benchTable(b *testing.B) (*policy.Table, *policy.Level) {
	b.Helper()
	mfa := &policy.Level{
		Name:        "mfa",
		ACRValues:   []string{benchACR},
		MaxAge:      time.Hour,
		SatisfiedBy: []policy.Alternative{{ACR: []string{benchACR}}, {AMR: []string{"mfa"}}},
	}
	rules := []policy.Rule{
		{Name: "admin-host", Host: "admin.bank.example", Path: "/**", Access: policy.Leveled, Level: mfa},
		{Name: "health", Path: "/healthz", Access: policy.Public},
		{Name: "static", Path: "/static/**", Methods: []string{"GET"}, Access: policy.Public},
		{Name: "assets", Path: "/assets/*/**", Methods: []string{"GET"}, Access: policy.Public},
		{Name: "account", Path: "/api/account/**", Access: policy.Authenticated},
		{Name: "reports", PathRegex: `/api/reports/[0-9]+`, Access: policy.Authenticated},
		{Name: "internal", Path: "/internal/**", Access: policy.Denied},
		{Name: "admin", Path: "/admin/**", Access: policy.Leveled, Level: mfa},
	}
	for i := range 10 {
		rules = append(rules, policy.Rule{Name: fmt.Sprintf("resource-%d", i), Path: fmt.Sprintf("/api/v1/resource%d/*/**", i), Access: policy.Authenticated})
	}
	rules = append(rules,
		policy.Rule{Name: "transfers-write", Path: "/api/transfers/**", Methods: []string{"POST", "PUT", "PATCH", "DELETE"}, Access: policy.Leveled, Level: mfa},
		policy.Rule{Name: "transfers-read", Path: "/api/transfers/**", Access: policy.Leveled, Level: mfa},
	)
	t, err := policy.NewTable(rules, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return t, mfa
}

// benchCookie mints a multi-factor session as the callback would, and returns
// its Cookie header value.
func benchCookie(b *testing.B, store *session.Store, now time.Time) string {
	b.Helper()
	rec := httptest.NewRecorder()
	_, err := store.Save(rec, policy.Facts{
		Issuer: "https://idp.example", Subject: "bench-user", Email: "bench-user@example.com",
		ACR: benchACR, AMR: []string{"pwd", "otp", "mfa"}, AuthTime: now, VerifiedAt: now,
	}, now)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == store.CookieName() {
			return c.Name + "=" + c.Value
		}
	}
	b.Fatalf("session.Save set no cookie named %q", store.CookieName())
	return ""
}

type benchEnv struct {
	gateway *proxy.Handler
	table   *policy.Table
	store   *session.Store
	cookie  string
	up      *url.URL
}

// newBenchEnv builds the gateway the way main does, logging JSON as in
// production (to io.Discard), so formatting the access line is counted.
// edits adjust its Config before proxy.New.
func newBenchEnv(b *testing.B, edits ...func(*proxy.Config)) *benchEnv {
	b.Helper()
	table, mfa := benchTable(b)
	store, err := session.New(session.Config{Secrets: [][]byte{[]byte(benchSecret)}, Lifetime: time.Hour, Issuer: "https://idp.example", ClientID: "stepgate"})
	if err != nil {
		b.Fatal(err)
	}
	up, err := url.Parse(benchUpstream(b, true).URL)
	if err != nil {
		b.Fatal(err)
	}
	public, _ := url.Parse("http://gateway.example")
	cfg := proxy.Config{
		Table:     table,
		Levels:    []*policy.Level{mfa},
		Sessions:  store,
		Upstream:  up,
		PublicURL: public,
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	for _, edit := range edits {
		edit(&cfg)
	}
	h, err := proxy.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{gateway: h, table: table, store: store, cookie: benchCookie(b, store, time.Now()), up: up}
}

func newBenchRequest(cookie string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, benchPath, nil)
	r.Header.Set("Accept", "application/json")
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	return r
}

// benchServeOK sends one request through h and checks the upstream's answer came
// back, so a benchmark never silently measures a 401 or a 502.
func benchServeOK(b *testing.B, h http.Handler, cookie string) {
	benchServe(b, h, newBenchRequest(cookie))
}

func benchServe(b *testing.B, h http.Handler, r *http.Request) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		b.Fatalf("GET %s: status %d body %q; want 200 %q", benchPath, rec.Code, rec.Body.String(), "ok\n")
	}
}

// BenchmarkPipeline is one allowed request through the whole gateway:
// canonicalize, match, open the sealed cookie, decide, strip and set identity
// headers, forward over a pooled loopback connection, log.
func BenchmarkPipeline(b *testing.B) {
	env := newBenchEnv(b)
	benchServeOK(b, env.gateway, env.cookie) // warm the connection pool
	b.ReportAllocs()
	for b.Loop() {
		benchServeOK(b, env.gateway, env.cookie)
	}
}

// BenchmarkBearer is BenchmarkPipeline's request with an RFC 9068 access
// token of a multi-factor login instead of the session cookie.
//
// "cached" sends the same token every time: after the first request it is
// found in the token cache by its SHA-256, which is the steady state of a
// client reusing its token. "miss" alternates two tokens through a cache of
// one entry, so every request is a full verification (parse, RS256
// signature, claims), as a token the gateway has not seen costs.
func BenchmarkBearer(b *testing.B) {
	for _, bc := range []struct {
		name      string
		cacheSize int
		tokens    int
	}{
		{"cached", 0, 1},
		{"miss", 1, 2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			idp := oidctest.NewServer(b, oidctest.Options{})
			rp, err := oidc.New(b.Context(), oidc.Config{
				Issuer: idp.URL, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
				RedirectURL: "http://gateway.example/.stepgate/callback", Scopes: []string{"openid"},
			})
			if err != nil {
				b.Fatal(err)
			}
			env := newBenchEnv(b, func(c *proxy.Config) {
				c.API = &proxy.APIConfig{Audience: benchAudience, Tokens: "jwt", DPoP: "optional", CacheSize: bc.cacheSize}
			})
			env.gateway.SetOIDC(rp)
			reqs := make([]*http.Request, bc.tokens)
			for i := range reqs {
				reqs[i] = newBenchRequest("")
				reqs[i].Header.Set("Authorization", "Bearer "+benchToken(b, idp))
			}
			for _, r := range reqs { // warm the pool, and fetch the JWKS once
				benchServe(b, env.gateway, r.Clone(r.Context()))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := reqs[i%len(reqs)]
				benchServe(b, env.gateway, r.Clone(r.Context()))
				i++
			}
		})
	}
}

const benchAudience = "https://api.bench.example"

// benchToken signs an access token of idp for a multi-factor login of
// bench-user, valid for longer than any benchmark runs.
func benchToken(b *testing.B, idp *oidctest.Server) string {
	b.Helper()
	now := time.Now()
	tok, err := oidctest.Sign(map[string]any{"alg": "RS256", "kid": idp.KeyID, "typ": "at+jwt"}, map[string]any{
		"iss": idp.URL, "sub": "bench-user", "aud": benchAudience, "client_id": "bench-api",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "jti": rand.Text(),
		"acr": benchACR, "amr": []string{"pwd", "otp"}, "auth_time": now.Unix(), "scope": "openid",
	}, idp.Key)
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// BenchmarkPlainReverseProxy is the same request through a bare
// ReverseProxy with stepgate's transport: the baseline for BenchmarkPipeline.
func BenchmarkPlainReverseProxy(b *testing.B) {
	up, err := url.Parse(benchUpstream(b, false).URL)
	if err != nil {
		b.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
		},
		Transport: proxy.NewTransport(),
	}
	cookie := benchCookie(b, benchStore(b), time.Now()) // same request size as the pipeline's
	benchServeOK(b, rp, cookie)
	b.ReportAllocs()
	for b.Loop() {
		benchServeOK(b, rp, cookie)
	}
}

// BenchmarkDecideOnly is the gateway's decision without forwarding: the
// per-request cost of the policy and the session cookie alone.
func BenchmarkDecideOnly(b *testing.B) {
	env := newBenchEnv(b)
	r := newBenchRequest(env.cookie)
	check := func() {
		now := time.Now()
		req, err := policy.Canonical(r.Method, r.Host, r.URL.EscapedPath(), policy.PathOptions{})
		if err != nil {
			b.Fatal(err)
		}
		rule := env.table.Match(req)
		st, err := env.store.Load(r, now)
		if err != nil {
			b.Fatal(err)
		}
		if d := policy.Decide(rule, &st.Facts, now); d.Action != policy.Allow || rule.Name != "transfers-read" {
			b.Fatalf("rule %q decision %v (%s); want transfers-read allow", rule.Name, d.Action, d.Reason)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		check()
	}
}

// BenchmarkChallenge is a request without a session to the mfa route: the
// 401 an unauthenticated client (or a flood of them) costs the gateway.
func BenchmarkChallenge(b *testing.B) {
	env := newBenchEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		env.gateway.ServeHTTP(rec, newBenchRequest(""))
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "login_required") {
			b.Fatalf("GET %s without a session: status %d body %q; want 401 login_required", benchPath, rec.Code, rec.Body.String())
		}
	}
}

func benchStore(b *testing.B) *session.Store {
	b.Helper()
	s, err := session.New(session.Config{Secrets: [][]byte{[]byte(benchSecret)}, Lifetime: time.Hour, Issuer: "https://idp.example", ClientID: "stepgate"})
	if err != nil {
		b.Fatal(err)
	}
	return s
}
