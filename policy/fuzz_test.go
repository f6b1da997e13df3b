package policy

import (
	"path"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"/", "/api/transfers/7", "/public/../admin/transfer", "/public/%2e%2e/admin/transfer",
	"/public/%252e%252e/admin/transfer", "/admin%2Ftransfer", `/public\..\admin\transfer`,
	"//admin//transfer/./", "/admin;jsessionid=x/transfer", "/public/..;/admin/transfer",
	"/admin/transfer%00.png", "/%c0%ae%c0%ae/admin/transfer", "/ａｄｍｉｎ/transfer",
	"/admin/transfer#x", "/admin%3F/transfer", "/admin/transfer%0a", "/admin%09/transfer",
	"/a/%7e/%3a/%41", `/{"x"}|^`, "/a/..", "/..", "/.%2E/", "/%", "/%%30%30",
}

// FuzzCanonical checks what every accepted path must be, whatever came in.
func FuzzCanonical(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, stripParams bool) {
		opt := PathOptions{StripPathParams: stripParams}
		out, err := CanonicalPath(in, opt)
		if err != nil {
			if _, ok := err.(*Rejection); !ok || out != "" {
				t.Fatalf("CanonicalPath(%q) = %q, %v; want \"\" and a *Rejection", in, out, err)
			}
			return
		}
		checkCanonical(t, in, out)
		// That the upstream receives out byte for byte is checked on what
		// the proxy really sends, by proxy.FuzzForward.
		for _, o := range []PathOptions{{}, {StripPathParams: true}} {
			if again, err := CanonicalPath(out, o); again != out || err != nil {
				t.Fatalf("CanonicalPath(%q) = %q, %v; want it unchanged (idempotent)", out, again, err)
			}
		}
		// Differential: without parameters, the decoded output is what
		// path.Clean makes of the decoded input, save the trailing slash.
		if !strings.Contains(in, ";") {
			want, got := path.Clean(decodeAll(in)), decodeAll(out)
			if got != "/" {
				got = strings.TrimSuffix(got, "/")
			}
			if got != want {
				t.Fatalf("CanonicalPath(%q) = %q, decoded %q; path.Clean of the decoded input is %q", in, out, got, want)
			}
		}
	})
}

func checkCanonical(t *testing.T, in, out string) {
	t.Helper()
	fail := func(why string) { t.Fatalf("CanonicalPath(%q) = %q: %s", in, out, why) }
	if !strings.HasPrefix(out, "/") {
		fail("does not start with /")
	}
	if strings.Contains(out, "//") {
		fail("has //")
	}
	for _, seg := range strings.Split(out, "/") {
		if seg == "." || seg == ".." {
			fail("has a dot segment")
		}
	}
	for i := 0; i < len(out); i++ {
		c := out[i]
		switch {
		case c < 0x21 || c >= 0x7f:
			fail("has a control, space or non-ASCII byte")
		case strings.IndexByte(`\;#?"<>[]^`+"`{|}", c) >= 0:
			fail("has a byte that must not appear raw")
		case c == '%':
			if i+2 >= len(out) || strings.IndexByte(upperhex, out[i+1]) < 0 || strings.IndexByte(upperhex, out[i+2]) < 0 {
				fail("has an escape without two upper-case hex digits")
			}
			v := unhex(out[i+1])<<4 | unhex(out[i+2])
			if v >= 0x80 || class[v] != keep && class[v] != encode {
				fail("keeps an escape it must decode or reject: " + out[i:i+3])
			}
		}
	}
}

// decodeAll decodes every escape; only for paths CanonicalPath accepted.
func decodeAll(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			b.WriteByte(byte(unhex(p[i+1])<<4 | unhex(p[i+2])))
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// FuzzMatch checks that nothing under /admin/transfer escapes the
// sensitive rule, even behind earlier public rules, and that nothing else
// is caught by it.
func FuzzMatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add("POST", "bank.example.com", s, true, false)
		f.Add("HEAD", "Bank.Example.com.:443", strings.ToUpper(s), false, true)
	}
	rules := []Rule{
		{Name: "public", Path: "/public/**", Access: Public},
		{Name: "assets", PathRegex: `/static/.*[.](png|css)`, Access: Public},
		{Name: "health", Host: "*.example.com", Path: "/*/healthz", Access: Public},
		{Name: "sensitive", Path: "/admin/transfer/**", Access: Leveled, Level: mfaLevel},
		{Name: "rest", Path: "/**", Access: Public},
	}
	tables := map[bool]*Table{}
	for _, ci := range []bool{false, true} {
		tab, err := NewTable(rules, defaultRule, TableOptions{CaseInsensitivePaths: ci})
		if err != nil {
			f.Fatal(err)
		}
		tables[ci] = tab
	}
	f.Fuzz(func(t *testing.T, method, host, rawPath string, stripParams, ci bool) {
		req, err := Canonical(method, host, rawPath, PathOptions{StripPathParams: stripParams})
		if err != nil {
			return
		}
		rule := tables[ci].Match(req)
		if rule == nil {
			t.Fatalf("Match(%+v) = nil", req)
		}
		key := req.Path
		if ci {
			key = strings.ToLower(key)
		}
		under := key == "/admin/transfer" || strings.HasPrefix(key, "/admin/transfer/")
		if under != (rule.Name == "sensitive") {
			t.Fatalf("Match(%+v) from %q = %q; want sensitive %v", req, rawPath, rule.Name, under)
		}
	})
}
