package policy

import (
	"errors"
	"testing"
)

// The threat model's setup: a sensitive rule for /admin/transfer and a public
// /public/*. The public rules come first, so that any request the matcher
// wrongly leaves on the public side would be waved through.
var sensitiveStyles = []struct{ name, path, regex string }{
	{"exact", "/admin/transfer", ""},
	{"subtree", "/admin/transfer/**", ""},
	// Catches the Spring-style suffix (/admin/transfer.json) as well.
	{"regex", "", `/admin/transfer([.][^/]*)?(/.*)?`},
}

func threatTable(t testing.TB, style int, ci bool) *Table {
	t.Helper()
	s := sensitiveStyles[style]
	mfa := &Level{Name: "mfa", SatisfiedBy: []Alternative{{AMR: []string{"mfa"}}}}
	rules := []Rule{
		{Name: "public", Path: "/public/*", Access: Public},
		{Name: "public-regex", PathRegex: "/public/.*", Access: Public}, // unanchored as written
		{Name: "sensitive", Path: s.path, PathRegex: s.regex, Access: Leveled, Level: mfa},
	}
	tab, err := NewTable(rules, Rule{Name: "default", Access: Authenticated}, TableOptions{CaseInsensitivePaths: ci})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

type outcome int

const (
	rejected   outcome = iota // CanonicalPath refuses it
	sensitive                 // matches every style of the sensitive rule
	below                     // below /admin/transfer/: not the exact-path style
	suffixOnly                // /admin/transfer.ext: only the suffix regex style
	elsewhere                 // a different resource: matches no style
)

type caseMode int

const (
	anyCase caseMode = iota // the outcome holds whether matching ignores case or not
	ciOnly                  // only with CaseInsensitivePaths
	csOnly                  // only without CaseInsensitivePaths
)

func (o outcome) matches(style string) bool {
	switch o {
	case sensitive:
		return true
	case below:
		return style != "exact"
	case suffixOnly:
		return style == "regex"
	}
	return false
}

// TestThreatsPaths runs threat model cases 1-18 (section A): every bypass attempt is
// either rejected or, once canonical, caught by the sensitive rule.
func TestThreatsPaths(t *testing.T) {
	tests := []struct {
		threat, path string
		strip        bool
		mode         caseMode
		want         outcome
	}{
		{"A1 dot segments", "/public/../admin/transfer", false, anyCase, sensitive},
		{"A1 dot segments", "/public/./../admin/transfer", false, anyCase, sensitive},
		{"A1 dot segments", "/public/x/../../admin/transfer", false, anyCase, sensitive},
		{"A2 encoded dots", "/public/%2e%2e/admin/transfer", false, anyCase, sensitive},
		{"A2 encoded dots", "/public/%2E./admin/transfer", false, anyCase, sensitive},
		{"A2 encoded dots", "/public/.%2e/admin/transfer", false, anyCase, sensitive},
		{"A2 encoded dots", "/admin/%2e/transfer", false, anyCase, sensitive},
		{"A2 encoded letters", "/%61dmin/transf%65r", false, anyCase, sensitive},
		{"A3 double encoding", "/public/%252e%252e/admin/transfer", false, anyCase, rejected},
		{"A4 encoded slash", "/admin%2Ftransfer", false, anyCase, rejected},
		{"A4 encoded slash", "/admin%2ftransfer", false, anyCase, rejected},
		{"A4 encoded slash", "/public%2F..%2Fadmin%2Ftransfer", false, anyCase, rejected},
		{"A5 backslash", `/public\..\admin\transfer`, false, anyCase, rejected},
		{"A5 backslash", "/admin%5Ctransfer", false, anyCase, rejected},
		{"A5 backslash", "/admin%5ctransfer", false, anyCase, rejected},
		{"A6 double slashes", "//admin/transfer", false, anyCase, sensitive},
		{"A6 double slashes", "/admin//transfer", false, anyCase, sensitive},
		{"A6 double slashes", "/admin/./transfer", false, anyCase, sensitive},
		{"A7 trailing slash", "/admin/transfer/", false, anyCase, sensitive},
		{"A7 trailing dot", "/admin/transfer/.", false, anyCase, sensitive},
		{"A7 sub-resource", "/admin/transfer/7", false, anyCase, below},
		{"A7 extension", "/admin/transfer.json", false, anyCase, suffixOnly},
		{"A8 segment boundary", "/admin/transfer-v2", false, anyCase, elsewhere},
		{"A8 segment boundary", "/administrator/transfer", false, anyCase, elsewhere},
		{"A9 case, insensitive upstream", "/ADMIN/Transfer", false, ciOnly, sensitive},
		{"A9 case, insensitive upstream", "/%41DMIN/TRANSFER/", false, ciOnly, sensitive},
		{"A9 case, case-sensitive upstream", "/ADMIN/Transfer", false, csOnly, elsewhere},
		{"A10 matrix params", "/admin;jsessionid=x/transfer", false, anyCase, rejected},
		{"A10 matrix params", "/admin/transfer;a=b", false, anyCase, rejected},
		{"A10 matrix params", "/public/..;/admin/transfer", false, anyCase, rejected},
		{"A10 matrix params stripped", "/admin;jsessionid=x/transfer", true, anyCase, sensitive},
		{"A10 matrix params stripped", "/admin/transfer;a=b", true, anyCase, sensitive},
		{"A10 matrix params stripped", "/public/..;/admin/transfer", true, anyCase, sensitive},
		{"A10 matrix params stripped", "/public;x/.;y/..;z/admin/transfer", true, anyCase, sensitive},
		{"A10 encoded semicolon", "/admin/transfer%3Bx", true, anyCase, rejected},
		{"A11 NUL", "/admin/transfer%00.png", false, anyCase, rejected},
		{"A11 NUL", "/admin/transfer\x00.png", false, anyCase, rejected},
		{"A12 overlong UTF-8", "/%c0%ae%c0%ae/admin/transfer", false, anyCase, rejected},
		{"A12 overlong UTF-8", "/public/%c0%ae%c0%ae/admin/transfer", false, anyCase, rejected},
		{"A12 overlong UTF-8", "/admin%c0%aftransfer", false, anyCase, rejected},
		{"A13 fullwidth", "/ａｄｍｉｎ/transfer", false, anyCase, rejected},
		{"A13 fullwidth encoded", "/%EF%BD%81dmin/transfer", false, anyCase, rejected},
		{"A13 division slash", "/admin∕transfer", false, anyCase, rejected},
		{"A14 fragment", "/admin/transfer#x", false, anyCase, rejected},
		{"A15 encoded ?", "/admin%3F/transfer", false, anyCase, rejected},
		{"A15 encoded #", "/admin/transfer%23", false, anyCase, rejected},
		{"A16 query not split off", "/admin/transfer?/public/x", false, anyCase, rejected},
		{"A16 query split off", "/admin/transfer", false, anyCase, sensitive},
		{"A17 newline", "/admin/transfer%0a", false, anyCase, rejected},
		{"A17 carriage return", "/admin%0d/transfer", false, anyCase, rejected},
		{"A17 raw newline", "/admin/transfer\n", false, anyCase, rejected},
		{"A18 whitespace", "/admin/transfer%20", false, anyCase, rejected},
		{"A18 whitespace", "/admin%09/transfer", false, anyCase, rejected},
		{"A18 whitespace", "/admin /transfer", false, anyCase, rejected},
		{"public stays public", "/public/x", false, anyCase, elsewhere},
	}
	for style, s := range sensitiveStyles {
		for _, ci := range []bool{false, true} {
			tab := threatTable(t, style, ci)
			for _, tc := range tests {
				if tc.mode == ciOnly && !ci || tc.mode == csOnly && ci {
					continue
				}
				t.Run(s.name+"/"+tc.threat, func(t *testing.T) {
					canon, err := CanonicalPath(tc.path, PathOptions{StripPathParams: tc.strip})
					if tc.want == rejected {
						var rej *Rejection
						if !errors.As(err, &rej) {
							t.Fatalf("CanonicalPath(%q) = %q, %v; want a rejection", tc.path, canon, err)
						}
						return
					}
					if err != nil {
						t.Fatalf("CanonicalPath(%q): %v; want it accepted", tc.path, err)
					}
					r := Request{Method: "POST", Host: "bank.example.com", Path: canon}
					got := tab.Match(r).Name
					if wantSensitive := tc.want.matches(s.name); wantSensitive != (got == "sensitive") {
						t.Errorf("Match(%q → %q, case-insensitive %v) = %q; want sensitive %v", tc.path, canon, ci, got, wantSensitive)
					}
				})
			}
		}
	}
}

// TestThreatsMethods runs threat model cases 39-42. Case 37 (override headers)
// is the proxy's to handle.
func TestThreatsMethods(t *testing.T) {
	mfa := &Level{Name: "mfa", SatisfiedBy: []Alternative{{AMR: []string{"mfa"}}}}
	rules := []Rule{
		// The allow-list style E40 asks for: exempt reads, guard the rest.
		{Name: "transfer-read", Path: "/admin/transfer/**", Methods: []string{"GET"}, Access: Authenticated},
		{Name: "transfer", Path: "/admin/transfer/**", Access: Leveled, Level: mfa},
		// A GET-only sensitive rule: HEAD runs the same handler (E39).
		{Name: "export", Path: "/admin/export", Methods: []string{"GET"}, Access: Leveled, Level: mfa},
		// The deny-list style E40 warns about.
		{Name: "payments", Path: "/api/payments/**", Methods: []string{"POST", "PUT", "DELETE"}, Access: Leveled, Level: mfa},
	}
	tab, err := NewTable(rules, Rule{Name: "default", Access: Authenticated}, TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ method, path, want string }{
		{"HEAD", "/admin/export", "export"},
		{"GET", "/admin/export", "export"},
		{"HEAD", "/admin/transfer", "transfer-read"},
		{"POST", "/admin/transfer", "transfer"},
		{"PATCH", "/admin/transfer/7", "transfer"},
		{"PROPFIND", "/admin/transfer", "transfer"},
		{"FOO", "/admin/transfer", "transfer"},
		{"OPTIONS", "/admin/transfer", "transfer"},
		// A method the list forgot falls through: why E40 wants allow-lists.
		{"PATCH", "/api/payments/1", "default"},
		{"get", "/admin/transfer", ""},
		{"Get", "/admin/export", ""},
		{"CONNECT", "/admin/transfer", ""},
		{"TRACE", "/admin/transfer", ""},
		{"TRACK", "/admin/transfer", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			m, err := CanonicalMethod(tc.method)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("CanonicalMethod(%q) = %q; want a rejection", tc.method, m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tab.Match(Request{Method: m, Host: "bank.example.com", Path: tc.path}).Name; got != tc.want {
				t.Errorf("Match(%s %s) = %q; want %q", m, tc.path, got, tc.want)
			}
		})
	}
}
