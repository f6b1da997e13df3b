package policy

import (
	"fmt"
	"strings"
	"testing"
)

// benchRules generates n rules: exact, wildcard and any hosts; literal,
// "*" and "**" globs; some with methods; and three regexes at the end.
func benchRules(n int) []Rule {
	const regexes = 3
	rules := make([]Rule, 0, n)
	for i := range n - regexes {
		r := Rule{Name: fmt.Sprintf("r%d", i), Access: Authenticated}
		switch i % 4 {
		case 0:
			r.Host = fmt.Sprintf("app%d.example.com", i%50)
		case 1:
			r.Host = fmt.Sprintf("*.tenant%d.example.com", i%50)
		case 3:
			r.Host = "api.example.com"
		}
		switch i % 3 {
		case 0:
			r.Path = fmt.Sprintf("/svc%d/items/%d", i, i)
		case 1:
			r.Path = fmt.Sprintf("/svc%d/*/detail", i)
		case 2:
			r.Path = fmt.Sprintf("/svc%d/**", i)
		}
		if i%5 == 0 {
			r.Methods = []string{"POST", "PUT"}
		}
		rules = append(rules, r)
	}
	for k := range regexes {
		rules = append(rules, Rule{Name: fmt.Sprintf("re%d", k), PathRegex: fmt.Sprintf("/re%d/[0-9]+(/.*)?", k), Access: Denied})
	}
	return rules
}

func benchTable(tb testing.TB, n int) *Table {
	tb.Helper()
	tab, err := NewTable(benchRules(n), defaultRule, TableOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return tab
}

// benchRequest returns a request that the last glob rule of benchRules(n)
// matches, and no earlier rule does.
func benchRequest(n int) Request {
	rules := benchRules(n)
	r := rules[len(rules)-4]
	host := "api.example.com"
	if r.Host != "" {
		host = strings.Replace(r.Host, "*", "a.b", 1)
	}
	path := strings.Replace(strings.Replace(r.Path, "**", "x/y/z", 1), "*", "x", 1)
	return Request{Method: "POST", Host: host, Path: path}
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		tab := benchTable(b, n)
		late := benchRequest(n)
		if got, want := tab.Match(late).Name, tab.rules[n-4].Name; got != want {
			b.Fatalf("Match(%+v) = %q; want %q", late, got, want)
		}
		b.Run(fmt.Sprintf("rules=%d/late", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tab.Match(late)
			}
		})
		// No rule matches: every regex runs too.
		miss := Request{Method: "GET", Host: "api.example.com", Path: "/nothing/here/at/all"}
		b.Run(fmt.Sprintf("rules=%d/default", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tab.Match(miss)
			}
		})
	}
}

func BenchmarkCanonical(b *testing.B) {
	for _, tc := range []struct{ name, path string }{
		{"clean", "/api/transfers/12345/confirm"},
		{"dirty", "/api//Transfers/./%61b/../12345/%7econfirm/"},
		{"rejected", "/public/%2e%2e/admin%2Ftransfer"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = CanonicalPath(tc.path, PathOptions{})
			}
		})
	}
}
