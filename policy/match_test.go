package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	mfaLevel = &Level{
		Name:        "mfa",
		ACRValues:   []string{"urn:mfa"},
		MaxAge:      15 * time.Minute,
		SatisfiedBy: []Alternative{{ACR: []string{"urn:mfa"}}, {AMR: []string{"mfa"}}},
	}
	defaultRule = Rule{Name: "default", Access: Authenticated}
)

func mustTable(t testing.TB, opt TableOptions, rules ...Rule) *Table {
	t.Helper()
	tab, err := NewTable(rules, defaultRule, opt)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return tab
}

func TestNewTableErrors(t *testing.T) {
	ok := Rule{Name: "ok", Path: "/ok", Access: Public}
	tests := []struct {
		name string
		rule Rule
		def  Rule
		want string // in the error text
	}{
		{"neither path nor regex", Rule{Name: "r", Access: Public}, defaultRule, "neither path nor path_regex"},
		{"both path and regex", Rule{Name: "r", Path: "/a", PathRegex: "/a", Access: Public}, defaultRule, "set together with path"},
		{"star inside segment", Rule{Name: "r", Path: "/a*b", Access: Public}, defaultRule, "whole segments"},
		{"double star inside segment", Rule{Name: "r", Path: "/api/**x", Access: Public}, defaultRule, "whole segments"},
		{"double star suffix", Rule{Name: "r", Path: "/api/x**", Access: Public}, defaultRule, "whole segments"},
		{"relative glob", Rule{Name: "r", Path: "api/x", Access: Public}, defaultRule, "does not start with /"},
		{"glob with dot-dot", Rule{Name: "r", Path: "/a/../b", Access: Public}, defaultRule, `write "/b"`},
		{"glob with double slash", Rule{Name: "r", Path: "/a//b", Access: Public}, defaultRule, `write "/a/b"`},
		{"glob with encoded slash", Rule{Name: "r", Path: "/a%2Fb", Access: Public}, defaultRule, "encoded slash"},
		{"glob with lower-case escape", Rule{Name: "r", Path: "/a%3ab", Access: Public}, defaultRule, `write "/a%3Ab"`},
		{"glob with path parameter", Rule{Name: "r", Path: "/a;b", Access: Public}, defaultRule, ";parameters are refused"},
		{"bad regex", Rule{Name: "r", PathRegex: "/a(", Access: Public}, defaultRule, "path_regex"},
		{"regex escaping its anchors", Rule{Name: "r", PathRegex: "/a)|(.*", Access: Public}, defaultRule, "unexpected )"},
		{"unknown access", Rule{Name: "r", Path: "/a"}, defaultRule, "unknown access"},
		{"access out of range", Rule{Name: "r", Path: "/a", Access: 42}, defaultRule, "unknown access"},
		{"leveled without level", Rule{Name: "r", Path: "/a", Access: Leveled}, defaultRule, "no level"},
		{"level without alternatives", Rule{Name: "r", Path: "/a", Access: Leveled, Level: &Level{Name: "x"}}, defaultRule, "no satisfied_by"},
		{"level on public rule", Rule{Name: "r", Path: "/a", Access: Public, Level: mfaLevel}, defaultRule, "want no level"},
		{"confirm on an authenticated rule", Rule{Name: "r", Path: "/a", Access: Authenticated, Confirm: &Confirm{Title: "t"}}, defaultRule, "confirm on a rule that requires authenticated"},
		{"lower-case method", Rule{Name: "r", Path: "/a", Methods: []string{"get"}, Access: Public}, defaultRule, `method "get"`},
		{"CONNECT method", Rule{Name: "r", Path: "/a", Methods: []string{"CONNECT"}, Access: Public}, defaultRule, `method "CONNECT"`},
		{"empty methods", Rule{Name: "r", Path: "/a", Methods: []string{}, Access: Public}, defaultRule, "empty list"},
		{"upper-case host", Rule{Name: "r", Host: "Bank.example.com", Path: "/a", Access: Public}, defaultRule, "host"},
		{"host with default port", Rule{Name: "r", Host: "bank.example.com:443", Path: "/a", Access: Public}, defaultRule, "host"},
		{"host with port", Rule{Name: "r", Host: "bank.example.com:8443", Path: "/a", Access: Public}, defaultRule, "every port"},
		{"wildcard host with port", Rule{Name: "r", Host: "*.example.com:8443", Path: "/a", Access: Public}, defaultRule, "every port"},
		{"IPv6 host with port", Rule{Name: "r", Host: "[::1]:8443", Path: "/a", Access: Public}, defaultRule, "every port"},
		{"host wildcard in the middle", Rule{Name: "r", Host: "a.*.example.com", Path: "/a", Access: Public}, defaultRule, "host"},
		{"bare wildcard host", Rule{Name: "r", Host: "*", Path: "/a", Access: Public}, defaultRule, "host"},
		{"duplicate name", Rule{Name: "ok", Path: "/b", Access: Public}, defaultRule, "name already used"},
		{"invalid default", Rule{Name: "r", Path: "/a", Access: Public}, Rule{Name: "default"}, "default rule"},
		{"default with path", Rule{Name: "r", Path: "/a", Access: Public}, Rule{Name: "default", Path: "/**", Access: Public}, "default rule"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := NewTable([]Rule{ok, tc.rule}, tc.def, TableOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewTable(%+v) = %v, %v; want error containing %q", tc.rule, tab, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "policy: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestNewTableReportsEveryError(t *testing.T) {
	_, err := NewTable([]Rule{{Name: "a", Path: "/a*"}, {Name: "b", PathRegex: "("}}, defaultRule, TableOptions{})
	if err == nil || !strings.Contains(err.Error(), `rules[0] "a"`) || !strings.Contains(err.Error(), `rules[1] "b"`) {
		t.Errorf("NewTable = %v; want errors for rules[0] and rules[1]", err)
	}
}

func TestMatchPaths(t *testing.T) {
	tests := []struct {
		glob string
		yes  []string
		no   []string
	}{
		{"/", []string{"/"}, []string{"/a"}},
		{"/admin", []string{"/admin", "/admin/"}, []string{"/administrator", "/admin/x", "/", "/Admin"}},
		{"/admin/transfer", []string{"/admin/transfer", "/admin/transfer/"}, []string{"/admin/transfer-v2", "/admin/transfer/7", "/admin"}},
		{"/api/transfers/**", []string{"/api/transfers", "/api/transfers/", "/api/transfers/7", "/api/transfers/7/x/"}, []string{"/api/transfers-v2", "/api/transfer", "/api"}},
		{"/a/*", []string{"/a/x", "/a/x/", "/a/*"}, []string{"/a", "/a/", "/a/x/y"}},
		{"/a/*/c", []string{"/a/b/c"}, []string{"/a/c", "/a/b/d/c"}},
		{"/**", []string{"/", "/a", "/a/b/c/"}, nil},
		{"/**/z", []string{"/z", "/a/z", "/a/b/c/z", "/z/z"}, []string{"/", "/a/b", "/z/a"}},
		{"/a/**/z", []string{"/a/z", "/a/b/z", "/a/b/c/z"}, []string{"/a", "/a/b/c", "/b/z"}},
		{"/a/**/*/z", []string{"/a/b/z", "/a/b/c/z"}, []string{"/a/z"}},
		{"/a/**/b/**", []string{"/a/b", "/a/x/b/y", "/a/b/b"}, []string{"/a/x"}},
		{"/v1/pay:exec", []string{"/v1/pay:exec", "/v1/pay%3Aexec"}, []string{"/v1/pay"}},
		{"/v1/pay%3Aexec", []string{"/v1/pay:exec", "/v1/pay%3Aexec"}, nil},
		{"/q/%22x%22", []string{"/q/%22x%22"}, []string{"/q/x"}},
	}
	for _, tc := range tests {
		tab := mustTable(t, TableOptions{}, Rule{Name: "r", Path: tc.glob, Access: Denied})
		for _, p := range tc.yes {
			if got := tab.Match(Request{Method: "GET", Host: "h", Path: p}).Name; got != "r" {
				t.Errorf("glob %q: Match(%q) = %q; want it matched", tc.glob, p, got)
			}
		}
		for _, p := range tc.no {
			if got := tab.Match(Request{Method: "GET", Host: "h", Path: p}).Name; got != "default" {
				t.Errorf("glob %q: Match(%q) = %q; want the default", tc.glob, p, got)
			}
		}
	}
}

func TestMatchRegex(t *testing.T) {
	tests := []struct {
		expr string
		ci   bool
		yes  []string
		no   []string
	}{
		// Anchored (threat model case 16) even when written without anchors.
		{"/admin/.*", false, []string{"/admin/x", "/admin/"}, []string{"/x/admin/y", "/admin"}},
		{"^/admin$", false, []string{"/admin"}, []string{"/admin/", "/admins"}},
		{"/a|/b", false, []string{"/a", "/b"}, []string{"/a/b", "/ab"}},
		// (?s): "." spans a newline, should one ever reach Match (A17).
		{"/admin/.*", false, []string{"/admin/x\ny"}, nil},
		// The remaining escapes are decoded for regexes too.
		{"/v1/[a-z]+:exec", false, []string{"/v1/pay%3Aexec"}, nil},
		{"/Admin/.*", true, []string{"/admin/x", "/ADMIN/X"}, nil},
		{"/Admin/.*", false, []string{"/Admin/x"}, []string{"/admin/x"}},
	}
	for _, tc := range tests {
		tab := mustTable(t, TableOptions{CaseInsensitivePaths: tc.ci}, Rule{Name: "r", PathRegex: tc.expr, Access: Denied})
		for _, p := range tc.yes {
			if got := tab.Match(Request{Method: "GET", Host: "h", Path: p}).Name; got != "r" {
				t.Errorf("regex %q: Match(%q) = %q; want it matched", tc.expr, p, got)
			}
		}
		for _, p := range tc.no {
			if got := tab.Match(Request{Method: "GET", Host: "h", Path: p}).Name; got != "default" {
				t.Errorf("regex %q: Match(%q) = %q; want the default", tc.expr, p, got)
			}
		}
	}
}

func TestMatchCaseInsensitive(t *testing.T) {
	rules := []Rule{{Name: "r", Path: "/Admin/Transfer/**", Access: Denied}}
	ci := mustTable(t, TableOptions{CaseInsensitivePaths: true}, rules...)
	cs := mustTable(t, TableOptions{}, rules...)
	for _, p := range []string{"/admin/transfer", "/ADMIN/TRANSFER/x", "/Admin/Transfer"} {
		if got := ci.Match(Request{Method: "GET", Host: "h", Path: p}).Name; got != "r" {
			t.Errorf("case-insensitive Match(%q) = %q; want r", p, got)
		}
	}
	if got := cs.Match(Request{Method: "GET", Host: "h", Path: "/admin/transfer"}).Name; got != "default" {
		t.Errorf("case-sensitive Match(/admin/transfer) = %q; want default", got)
	}
}

func TestMatchHosts(t *testing.T) {
	tab := mustTable(t, TableOptions{},
		Rule{Name: "exact", Host: "bank.example.com", Path: "/**", Access: Denied},
		Rule{Name: "net", Host: "bank.example.net", Path: "/**", Access: Denied},
		Rule{Name: "wild", Host: "*.example.com", Path: "/**", Access: Denied},
		Rule{Name: "wild-org", Host: "*.example.org", Path: "/**", Access: Denied},
		Rule{Name: "v6", Host: "[::1]", Path: "/**", Access: Denied},
		Rule{Name: "any", Path: "/any", Access: Denied},
	)
	tests := []struct{ host, path, want string }{
		{"bank.example.com", "/", "exact"},
		{"bank.example.com:8443", "/", "exact"}, // no port in the rule: every port
		{"a.example.com", "/", "wild"},
		{"a.b.example.com", "/", "wild"},
		{"a.example.com:9000", "/", "wild"},
		{"example.com", "/", "default"}, // never the apex
		{"notexample.com", "/", "default"},
		{"example.com.evil", "/", "default"},
		// A host rule holds on every port (threat model case 88): a rule
		// that only held on one port would be dodged by naming another.
		{"bank.example.net:8443", "/", "net"},
		{"bank.example.net", "/", "net"},
		{"bank.example.net:1", "/", "net"},
		{"a.example.org:8443", "/", "wild-org"},
		{"a.b.example.org:1", "/", "wild-org"},
		{"example.org:8443", "/", "default"},
		{"a.example.org", "/", "wild-org"},
		{"[::1]:8080", "/", "v6"},
		{"[::1]", "/", "v6"},
		{"other.test", "/any", "any"},
		{"other.test", "/x", "default"},
	}
	for _, tc := range tests {
		if got := tab.Match(Request{Method: "GET", Host: tc.host, Path: tc.path}).Name; got != tc.want {
			t.Errorf("Match(host %q, %q) = %q; want %q", tc.host, tc.path, got, tc.want)
		}
	}
}

func TestMatchMethods(t *testing.T) {
	tab := mustTable(t, TableOptions{},
		Rule{Name: "get", Path: "/a", Methods: []string{"GET"}, Access: Denied},
		Rule{Name: "head-only", Path: "/b", Methods: []string{"HEAD"}, Access: Denied},
		Rule{Name: "writes", Path: "/**", Methods: []string{"POST", "DELETE"}, Access: Denied},
	)
	tests := []struct{ method, path, want string }{
		{"GET", "/a", "get"},
		{"HEAD", "/a", "get"}, // HEAD inherits GET rules
		{"POST", "/a", "writes"},
		{"PUT", "/a", "default"},
		{"HEAD", "/b", "head-only"},
		{"GET", "/b", "default"}, // but GET does not inherit HEAD rules
		{"DELETE", "/b", "writes"},
	}
	for _, tc := range tests {
		if got := tab.Match(Request{Method: tc.method, Host: "h", Path: tc.path}).Name; got != tc.want {
			t.Errorf("Match(%s %s) = %q; want %q", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestMatchFirstWins(t *testing.T) {
	tab := mustTable(t, TableOptions{},
		Rule{Name: "health", Path: "/healthz", Access: Public},
		Rule{Name: "regex", PathRegex: "/api/transfers/[0-9]+", Access: Denied},
		Rule{Name: "transfers", Path: "/api/transfers/**", Access: Leveled, Level: mfaLevel},
		Rule{Name: "one", Path: "/api/*/7", Access: Public},
		Rule{Name: "api", Path: "/api/**", Access: Authenticated},
		Rule{Name: "host", Host: "bank.example.com", Path: "/**", Access: Denied},
	)
	tests := []struct{ path, want string }{
		{"/healthz", "health"},
		{"/api/transfers/7", "regex"},
		{"/api/transfers/x", "transfers"},
		{"/api/transfers", "transfers"},
		{"/api/users/7", "one"},
		{"/api/users", "api"},
		{"/other", "host"},
	}
	for _, tc := range tests {
		if got := tab.Match(Request{Method: "GET", Host: "bank.example.com", Path: tc.path}).Name; got != tc.want {
			t.Errorf("Match(%q) = %q; want %q", tc.path, got, tc.want)
		}
	}
	if got := tab.Match(Request{Method: "GET", Host: "other.example.com", Path: "/other"}); got == nil || got.Name != "default" || got.Access != Authenticated {
		t.Errorf("Match(unmatched) = %+v; want the default rule", got)
	}
}

func TestTableKeepsItsOwnRules(t *testing.T) {
	in := []Rule{{Name: "a", Path: "/a", Methods: []string{"GET"}, Access: Denied}}
	tab := mustTable(t, TableOptions{}, in...)
	in[0].Access, in[0].Methods[0] = Public, "POST"
	got := tab.Match(Request{Method: "GET", Host: "h", Path: "/a"})
	if got.Name != "a" || got.Access != Denied {
		t.Errorf("after changing the caller's rules, Match = %+v; want rule a, deny, GET", got)
	}
}

func TestNilTableFailsClosed(t *testing.T) {
	var tab *Table
	r := tab.Match(Request{Method: "GET", Host: "h", Path: "/"})
	if d := Decide(r, nil, time.Now()); d.Action != Deny {
		t.Errorf("Decide(nil table's match) = %v; want deny", d.Action)
	}
}

// TestMatchAgainstReference builds random tables and compares Match, index
// and all, with a plain loop over the rules in file order.
func TestMatchAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	segs := []string{"a", "b", "c", "*", "**"}
	hosts := []string{"", "x.test", "*.x.test", "y.x.test", "z.y.x.test"}
	methods := [][]string{nil, {"GET"}, {"POST", "PUT"}, {"HEAD"}}
	reqHosts := []string{"x.test", "y.x.test", "z.y.x.test", "y.x.test:8080", "other.test"}
	reqMethods := []string{"GET", "HEAD", "POST", "DELETE"}
	for round := range 200 {
		ci := round%2 == 1
		var rules []Rule
		for i := range 1 + rng.IntN(30) {
			r := Rule{Name: fmt.Sprint(i), Host: hosts[rng.IntN(len(hosts))], Methods: methods[rng.IntN(len(methods))], Access: Denied}
			var p strings.Builder
			for range rng.IntN(4) {
				s := segs[rng.IntN(len(segs))]
				if ci && rng.IntN(3) == 0 {
					s = strings.ToUpper(s)
				}
				p.WriteString("/" + s)
			}
			r.Path = p.String()
			if r.Path == "" {
				r.Path = "/"
			}
			if rng.IntN(5) == 0 {
				r.Path, r.PathRegex = "", "/(a|b)+(/.*)?"
			}
			rules = append(rules, r)
		}
		tab := mustTable(t, TableOptions{CaseInsensitivePaths: ci}, rules...)
		for range 50 {
			var p strings.Builder
			for range rng.IntN(5) {
				p.WriteString("/" + segs[rng.IntN(3)])
			}
			if p.Len() == 0 || rng.IntN(4) == 0 {
				p.WriteString("/")
			}
			req := Request{Method: reqMethods[rng.IntN(len(reqMethods))], Host: reqHosts[rng.IntN(len(reqHosts))], Path: p.String()}
			if ci && rng.IntN(2) == 0 {
				req.Path = strings.ToUpper(req.Path)
			}
			want := referenceMatch(rules, req, ci)
			if got := tab.Match(req); got.Name != want {
				t.Fatalf("rules %+v (case-insensitive %v): Match(%+v) = %q; want %q", rules, ci, req, got.Name, want)
			}
		}
	}
}

func referenceMatch(rules []Rule, req Request, ci bool) string {
	path := req.Path
	if ci {
		path = strings.ToLower(path)
	}
	for _, r := range rules {
		if !hostMatch(r.Host, req.Host) {
			continue
		}
		if r.Methods != nil && !slices.Contains(r.Methods, req.Method) && !(req.Method == "HEAD" && slices.Contains(r.Methods, "GET")) {
			continue
		}
		if r.PathRegex != "" {
			if regexp.MustCompile("^(?:" + r.PathRegex + ")$").MatchString(path) {
				return r.Name
			}
			continue
		}
		glob := r.Path
		if ci {
			glob = strings.ToLower(glob)
		}
		if globMatch(split(glob), split(path)) {
			return r.Name
		}
	}
	return "default"
}

func split(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func globMatch(glob, path []string) bool {
	if len(glob) == 0 {
		return len(path) == 0
	}
	if glob[0] == "**" {
		for k := 0; k <= len(path); k++ {
			if globMatch(glob[1:], path[k:]) {
				return true
			}
		}
		return false
	}
	return len(path) > 0 && (glob[0] == "*" || glob[0] == path[0]) && globMatch(glob[1:], path[1:])
}

func TestMatchNoAllocation(t *testing.T) {
	tab := benchTable(t, 1000)
	req := benchRequest(1000)
	if n := testing.AllocsPerRun(100, func() { tab.Match(req) }); n != 0 {
		t.Errorf("Match allocates %v times; want 0", n)
	}
}

// NewTable's errors are typed, so that config can position each one at the
// field of the rule it concerns.
func TestNewTableErrorsAreTyped(t *testing.T) {
	rules := []Rule{
		{Name: "ok", Path: "/ok", Access: Public},
		{Name: "bad", Host: "Bank.example.com:8443", Path: "/a/../b", Access: Public},
		{Name: "ok", PathRegex: "(", Access: Denied},
	}
	_, err := NewTable(rules, Rule{Name: "default", Access: Authenticated}, TableOptions{})
	var te TableError
	if !errors.As(err, &te) {
		t.Fatalf("NewTable error %v (%T); want a TableError", err, err)
	}
	type got struct {
		Index       int
		Name, Field string
	}
	var gs []got
	for _, e := range te {
		gs = append(gs, got{e.Index, e.Name, e.Field})
	}
	want := []got{{1, "bad", "host"}, {1, "bad", "path"}, {2, "ok", "path_regex"}, {2, "ok", "name"}}
	if !slices.Equal(gs, want) {
		t.Errorf("NewTable errors %+v; want %+v", gs, want)
	}
	if !strings.Contains(te[0].Hint, `write "bank.example.com"`) || !strings.Contains(te[1].Hint, `write "/b"`) {
		t.Errorf("hints %q, %q; want the fixes", te[0].Hint, te[1].Hint)
	}
}
