package policy

import (
	"errors"
	"testing"
)

var strip = PathOptions{StripPathParams: true}

// TestCanonicalPath covers the request pipeline rule by rule. A want of "" means
// the path must be rejected with reason.
func TestCanonicalPath(t *testing.T) {
	tests := []struct {
		name, in string
		opt      PathOptions
		want     string
		reason   string
	}{
		// Already canonical: returned unchanged.
		{"root", "/", PathOptions{}, "/", ""},
		{"plain", "/api/transfers/7", PathOptions{}, "/api/transfers/7", ""},
		{"trailing slash kept", "/a/", PathOptions{}, "/a/", ""},
		{"sub-delims raw", "/a/b:c@d!$&'()*+,=", PathOptions{}, "/a/b:c@d!$&'()*+,=", ""},
		{"dots inside segment", "/a/...b/c..", PathOptions{}, "/a/...b/c..", ""},

		// Decode unreserved once; upper-case the hex of the rest.
		{"decode alpha", "/%61dmin/%54ransfer", PathOptions{}, "/admin/Transfer", ""},
		{"decode - . _ ~", "/%2D%2e%5F%7e", PathOptions{}, "/-._~", ""},
		{"keep reserved escaped", "/a%3ab%40c", PathOptions{}, "/a%3Ab%40c", ""},
		{"encode raw quote", `/a"b`, PathOptions{}, "/a%22b", ""},
		{"encode raw braces and pipe", "/{a}|^`[]<>", PathOptions{}, "/%7Ba%7D%7C%5E%60%5B%5D%3C%3E", ""},
		{"keep escaped braces", "/%7b%7d", PathOptions{}, "/%7B%7D", ""},

		// Dot segments, RFC 3986 §5.2.4, encoded ones included.
		{"dot", "/a/./b", PathOptions{}, "/a/b", ""},
		{"dot-dot", "/a/b/../c", PathOptions{}, "/a/c", ""},
		{"encoded dot-dot", "/a/b/%2e%2E/c", PathOptions{}, "/a/c", ""},
		{"half encoded dot-dot", "/a/b/.%2e/c", PathOptions{}, "/a/c", ""},
		{"trailing dot", "/a/b/.", PathOptions{}, "/a/b/", ""},
		{"trailing dot-dot", "/a/b/..", PathOptions{}, "/a/", ""},
		{"to root", "/a/..", PathOptions{}, "/", ""},
		{"root dot", "/.", PathOptions{}, "/", ""},
		{"dot-dot above root", "/..", PathOptions{}, "", "dot-dot above root"},
		{"dot-dot above root later", "/a/../../b", PathOptions{}, "", "dot-dot above root"},
		{"encoded dot-dot above root", "/%2e%2e/a", PathOptions{}, "", "dot-dot above root"},

		// Repeated slashes collapse, before dot segments are resolved.
		{"double slash", "//a//b", PathOptions{}, "/a/b", ""},
		{"only slashes", "///", PathOptions{}, "/", ""},
		{"slashes then dot-dot", "/a//../b", PathOptions{}, "/b", ""},
		{"trailing double slash", "/a//", PathOptions{}, "/a/", ""},

		// Rejected outright.
		{"empty", "", PathOptions{}, "", "not an absolute path"},
		{"relative", "a/b", PathOptions{}, "", "not an absolute path"},
		{"asterisk form", "*", PathOptions{}, "", "not an absolute path"},
		{"encoded slash", "/a%2Fb", PathOptions{}, "", "encoded slash"},
		{"encoded slash lower", "/a%2fb", PathOptions{}, "", "encoded slash"},
		{"backslash", `/a\b`, PathOptions{}, "", "backslash"},
		{"encoded backslash", "/a%5cb", PathOptions{}, "", "backslash"},
		{"encoded NUL", "/a%00", PathOptions{}, "", "control character"},
		{"raw NUL", "/a\x00", PathOptions{}, "", "control character"},
		{"encoded LF", "/a%0A", PathOptions{}, "", "control character"},
		{"raw CR", "/a\rb", PathOptions{}, "", "control character"},
		{"encoded DEL", "/a%7F", PathOptions{}, "", "control character"},
		{"raw DEL", "/a\x7f", PathOptions{}, "", "control character"},
		{"raw space", "/a b", PathOptions{}, "", "whitespace"},
		{"encoded space", "/a%20", PathOptions{}, "", "whitespace"},
		{"encoded tab", "/a%09b", PathOptions{}, "", "whitespace"},
		{"raw tab", "/a\tb", PathOptions{}, "", "whitespace"},
		{"fragment", "/a#b", PathOptions{}, "", "fragment"},
		{"encoded hash", "/a%23", PathOptions{}, "", "encoded ? or #"},
		{"encoded question mark", "/a%3fb", PathOptions{}, "", "encoded ? or #"},
		{"raw question mark", "/a?b", PathOptions{}, "", "raw ? in path"},
		{"double encoding", "/a%252e", PathOptions{}, "", "double encoding"},
		{"truncated escape", "/a%2", PathOptions{}, "", "bad percent-encoding"},
		{"lone percent", "/a%", PathOptions{}, "", "bad percent-encoding"},
		{"non-hex escape", "/a%zz", PathOptions{}, "", "bad percent-encoding"},
		{"overlong dot", "/%c0%ae%c0%ae/a", PathOptions{}, "", "invalid utf-8"},
		{"raw invalid utf-8", "/a\xff", PathOptions{}, "", "invalid utf-8"},
		{"encoded non-ascii", "/caf%C3%A9", PathOptions{}, "", "non-ascii"},
		{"raw non-ascii", "/café", PathOptions{}, "", "non-ascii"},
		{"path parameter", "/a;b", PathOptions{}, "", "path parameter"},
		{"encoded semicolon", "/a%3Bb", PathOptions{}, "", "encoded ;"},
		{"encoded semicolon when stripping", "/a%3bb", strip, "", "encoded ;"},

		// strip_path_params: Tomcat's order, parameters first.
		{"strip", "/a;x=1/b;y", strip, "/a/b", ""},
		{"strip trailing", "/a/b;c=d", strip, "/a/b", ""},
		{"strip keeps trailing slash", "/a;x/", strip, "/a/", ""},
		{"strip empty segment", "/;x/a", strip, "/a", ""},
		{"strip dot-dot", "/a/..;x/b", strip, "/b", ""},
		{"strip dot", "/a/.;x/b", strip, "/a/b", ""},
		{"strip encoded dot-dot", "/a/%2e%2e;/b", strip, "/b", ""},
		{"strip dot-dot above root", "/..;/a", strip, "", "dot-dot above root"},
		{"strip still rejects the segment part", "/a%2F;x", strip, "", "encoded slash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CanonicalPath(tc.in, tc.opt)
			if tc.reason != "" {
				var rej *Rejection
				if !errors.As(err, &rej) || rej.Reason != tc.reason {
					t.Fatalf("CanonicalPath(%q, %+v) = %q, %v; want rejection %q", tc.in, tc.opt, got, err, tc.reason)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CanonicalPath(%q, %+v) = %q, %v; want %q", tc.in, tc.opt, got, err, tc.want)
			}
			if again, err := CanonicalPath(got, tc.opt); again != got || err != nil {
				t.Errorf("CanonicalPath(%q) = %q, %v; want it unchanged (idempotent)", got, again, err)
			}
		})
	}
}

func TestCanonicalPathNoAllocation(t *testing.T) {
	for _, p := range []string{"/", "/api/transfers/7", "/a/b:c/%3A/", "/a/b/."} {
		if n := testing.AllocsPerRun(100, func() { _, _ = CanonicalPath(p, PathOptions{}) }); n != 0 {
			t.Errorf("CanonicalPath(%q) allocates %v times; want 0", p, n)
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"bank.example.com", "bank.example.com"},
		{"BANK.Example.COM", "bank.example.com"},
		{"bank.example.com.", "bank.example.com"},
		{"bank.example.com:443", "bank.example.com"},
		{"bank.example.com:80", "bank.example.com"},
		{"bank.example.com.:443", "bank.example.com"},
		{"bank.example.com:8443", "bank.example.com:8443"},
		{"bank.example.com:08443", "bank.example.com:8443"},
		{"localhost", "localhost"},
		{"my_service:3000", "my_service:3000"},
		{"127.0.0.1:8080", "127.0.0.1:8080"},
		{"[::1]", "[::1]"},
		{"[::1]:443", "[::1]"},
		{"[0:0:0:0:0:0:0:1]:8080", "[::1]:8080"},
		{"[2001:DB8::1]", "[2001:db8::1]"},

		{"", ""},
		{".", ""},
		{":443", ""},
		{"user@bank.example.com", ""},
		{"a..b", ""},
		{".a", ""},
		{"a b", ""},
		{"a/b", ""},
		{"a%2eb", ""},
		{"*.example.com", ""},
		{"bank.example.com:", ""},
		{"bank.example.com:0", ""},
		{"bank.example.com:65536", ""},
		{"bank.example.com:123456", ""},
		{"bank.example.com:+80", ""},
		{"bank.example.com:http", ""},
		{"a:b:c", ""},
		{"::1", ""},
		{"[::1", ""},
		{"[::1]x", ""},
		{"[127.0.0.1]", ""},
		{"[fe80::1%25eth0]", ""},
		{"bücher.example", ""},
	}
	for _, tc := range tests {
		got, err := CanonicalHost(tc.in)
		if tc.want == "" {
			var rej *Rejection
			if !errors.As(err, &rej) {
				t.Errorf("CanonicalHost(%q) = %q, %v; want a rejection", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CanonicalHost(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = CanonicalHost("bank.example.com:8443") }); n != 0 {
		t.Errorf("CanonicalHost of a canonical host allocates %v times; want 0", n)
	}
}

// TestCanonicalMethod covers threat model cases 40 (odd methods) and 42.
func TestCanonicalMethod(t *testing.T) {
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "FOO"} {
		if got, err := CanonicalMethod(m); err != nil || got != m {
			t.Errorf("CanonicalMethod(%q) = %q, %v; want it accepted", m, got, err)
		}
	}
	for _, m := range []string{"", "get", "Get", "CONNECT", "TRACE", "TRACK", "GET ", "M-SEARCH", "G1", "GET\x00", "ÄÖ"} {
		var rej *Rejection
		if got, err := CanonicalMethod(m); !errors.As(err, &rej) {
			t.Errorf("CanonicalMethod(%q) = %q, %v; want a rejection", m, got, err)
		}
	}
}

func TestCanonical(t *testing.T) {
	got, err := Canonical("POST", "Bank.Example.com:443", "/api//transfers/./7", PathOptions{})
	want := Request{Method: "POST", Host: "bank.example.com", Path: "/api/transfers/7"}
	if err != nil || got != want {
		t.Errorf("Canonical = %+v, %v; want %+v", got, err, want)
	}
	for _, in := range [][3]string{{"get", "h", "/"}, {"GET", "", "/"}, {"GET", "h", "/%2F"}} {
		if got, err := Canonical(in[0], in[1], in[2], PathOptions{}); err == nil {
			t.Errorf("Canonical(%q) = %+v; want an error", in, got)
		}
	}
}
