package proxy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/policy"
)

// Threat model case 84: headers some frameworks and proxies route or
// authorize on. A client's copy, in any spelling a backend folds into the
// same name, must never reach the app; the gateway sets only
// X-Forwarded-For, -Host and -Proto, and those even when the client names
// them in Connection to make the proxy drop the gateway's values.
func TestRoutingHeadersNeverReachUpstream(t *testing.T) {
	routing := []string{
		"X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Original-Method",
		"X-Forwarded-Prefix", "X-Forwarded-Uri", "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Ssl",
		"X-Real-IP", "True-Client-IP", "X-Client-IP", "X-Cluster-Client-IP", "Forwarded",
		"X-Forwarded-Method", "X-Forwarded-Scheme", "X-Url-Scheme", "Front-End-Https",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	}
	spellings := func(n string) []string {
		return []string{
			n, strings.ToLower(n), strings.ToUpper(n),
			strings.ReplaceAll(n, "-", "_"), strings.ReplaceAll(n, "-", "."),
			strings.Replace(n, "-", "_", 1), strings.ToLower(strings.ReplaceAll(n, "-", ".")),
		}
	}
	owned := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "gateway.test", "X-Forwarded-Proto": "http"}

	f := newFixture(t)
	var req strings.Builder
	req.WriteString("POST /public/x HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 0\r\n")
	for _, n := range routing {
		for _, s := range spellings(n) {
			req.WriteString(s + ": /admin/transfer/1\r\n")
			req.WriteString(s + ": 10.6.6.6\r\n")
		}
	}
	req.WriteString("Connection: keep-alive, X-Forwarded-For, x-forwarded-host, X-Forwarded-Proto, X-Real-IP, X-Original-URL\r\n\r\n")
	if code, body := f.raw(req.String()); code != 200 {
		t.Fatalf("status %d (%q); want 200", code, body)
	}
	r := f.lastUpstream()
	folded := map[string]bool{}
	for _, n := range routing {
		folded[foldHeader(n)] = true
	}
	for name, vals := range r.Header {
		if !folded[foldHeader(name)] {
			continue
		}
		want, ok := owned[name]
		if !ok {
			t.Errorf("upstream got %s: %q", name, vals)
			continue
		}
		if len(vals) != 1 || vals[0] != want {
			t.Errorf("upstream %s = %q; want exactly [%q], the gateway's own value", name, vals, want)
		}
	}
	for name := range owned {
		if _, ok := r.Header[name]; !ok {
			t.Errorf("upstream has no %s; the gateway must set it", name)
		}
	}
}

// X-Forwarded-For from a peer in trusted_proxies is extended, so an app
// behind an ingress still sees the client's address; from anyone else it is
// replaced by the peer's address. A client's odd spelling is never part of
// the chain.
func TestForwardedForChain(t *testing.T) {
	trusted := func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }
	untrusted := func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }
	for _, tc := range []struct {
		name string
		opt  func(*Config)
		xff  []string
		want string
	}{
		{"untrusted peer: replaced", untrusted, []string{"203.0.113.7"}, "127.0.0.1"},
		{"no trusted proxies: replaced", func(*Config) {}, []string{"203.0.113.7"}, "127.0.0.1"},
		{"trusted peer: extended", trusted, []string{"203.0.113.7"}, "203.0.113.7, 127.0.0.1"},
		{"trusted peer, a chain on two lines", trusted, []string{"203.0.113.7, 10.0.0.5", "198.51.100.1"}, "203.0.113.7, 10.0.0.5, 198.51.100.1, 127.0.0.1"},
		{"trusted peer, none sent", trusted, nil, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opt)
			req := "GET /public/x HTTP/1.1\r\nHost: gateway.test\r\nX_Forwarded_For: 10.6.6.6\r\nX.Forwarded.For: 10.6.6.7\r\n"
			for _, v := range tc.xff {
				req += "X-Forwarded-For: " + v + "\r\n"
			}
			if code, body := f.raw(req + "\r\n"); code != 200 {
				t.Fatalf("status %d (%q); want 200", code, body)
			}
			r := f.lastUpstream()
			if got := r.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != tc.want {
				t.Errorf("upstream X-Forwarded-For = %q; want [%q]", got, tc.want)
			}
			for name, vals := range r.Header {
				if name != "X-Forwarded-For" && foldHeader(name) == "x-forwarded-for" {
					t.Errorf("upstream got %s: %q", name, vals)
				}
			}
		})
	}
}

// The upstream receives the canonical path byte for byte, and the query
// exactly as the client sent it: what was decided is what the app runs.
func TestUpstreamReceivesCanonicalTarget(t *testing.T) {
	f := newFixture(t)
	for _, target := range []string{
		"/public/a!b'c(d)e*f",
		"/public/$&+,=:@",
		"/public/%41%62c",
		"/public/%21%27%28%29%2A%2a",
		"/public/a!%21*%2A",
		"/public/%7e%2D%5f%2e",
		"/public/{x}[y]|^",
		"/public/./x/../y//z/",
		"/public/a%20b",
		"/public/a%2Fb",
		"/public/x?a=1;b=2&c=%zz&d=%2F+e",
		"/public/x?",
		"/public/x?q=%5Fmethod&r=!'()*",
		"/public/a!b?_method=GET",
	} {
		t.Run(target, func(t *testing.T) {
			path, query, hasQuery := strings.Cut(target, "?")
			want, err := policy.CanonicalPath(path, policy.PathOptions{})
			before := f.upstreamCount()
			code, body := f.raw("GET " + target + " HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
			if err != nil {
				if code != 400 || f.upstreamCount() != before {
					t.Errorf("status %d, upstream reached %v; want 400 for a path policy refuses (%v)", code, f.upstreamCount() != before, err)
				}
				return
			}
			if code != 200 || f.upstreamCount() == before {
				t.Fatalf("status %d (%q); want 200 from the upstream", code, body)
			}
			if hasQuery {
				want += "?" + query
			}
			if got := f.lastUpstream().RequestURI; got != want {
				t.Errorf("upstream request-target %q; want %q", got, want)
			}
		})
	}
}
