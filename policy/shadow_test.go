package policy

import (
	"fmt"
	"slices"
	"testing"
)

func TestShadows(t *testing.T) {
	pub := func(host, path string, methods ...string) Rule {
		return Rule{Host: host, Path: path, Methods: methods, Access: Public}
	}
	auth := func(host, path string, methods ...string) Rule {
		return Rule{Host: host, Path: path, Methods: methods, Access: Authenticated}
	}
	mfa := func(host, path string, methods ...string) Rule {
		return Rule{Host: host, Path: path, Methods: methods, Access: Leveled, Level: mfaLevel}
	}
	deny := func(host, path string, methods ...string) Rule {
		return Rule{Host: host, Path: path, Methods: methods, Access: Denied}
	}
	regex := func(r Rule, expr string) Rule { r.Path, r.PathRegex = "", expr; return r }
	other := &Level{Name: "other", SatisfiedBy: []Alternative{{AMR: []string{"hwk"}}}}

	tests := []struct {
		name  string
		rules []Rule
		want  []Shadow // Earlier, Later and Example are compared
	}{
		{"weaker subtree above stricter", []Rule{auth("", "/api/**"), mfa("", "/api/transfers/**")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/api/transfers"}}},
		{"stricter first", []Rule{mfa("", "/api/transfers/**"), auth("", "/api/**")}, nil},
		{"disjoint paths", []Rule{pub("", "/public/*"), mfa("", "/admin/**")}, nil},
		{"segment boundary", []Rule{pub("", "/admin/transfer-v2/**"), mfa("", "/admin/transfer/**")}, nil},
		{"star against literal", []Rule{pub("", "/a/*/c"), deny("", "/a/b/**")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/a/b/c"}}},
		{"double star in the middle", []Rule{pub("", "/**/export"), mfa("", "/admin/*")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/admin/export"}}},
		{"catch-all first", []Rule{pub("", "/**"), auth("", "/x"), mfa("", "/y/**"), deny("", "/z")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/x"}, {Earlier: 0, Later: 2, Example: "/y"}, {Earlier: 0, Later: 3, Example: "/z"}}},
		{"level above deny", []Rule{mfa("", "/a/**"), deny("", "/a/b")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/a/b"}}},
		{"different levels are not ranked", []Rule{mfa("", "/a/**"), {Path: "/a/b", Access: Leveled, Level: other}}, nil},
		{"different hosts", []Rule{pub("a.example.com", "/**"), deny("b.example.com", "/**")}, nil},
		{"wildcard host covers exact host", []Rule{pub("*.example.com", "/**"), deny("admin.example.com", "/**")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/"}}},
		{"wildcard host misses apex", []Rule{pub("*.example.com", "/**"), deny("example.com", "/**")}, nil},
		{"nested wildcard hosts", []Rule{pub("*.example.com", "/**"), deny("*.admin.example.com", "/**")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/"}}},
		{"disjoint methods", []Rule{pub("", "/a/**", "GET"), mfa("", "/a/**", "POST")}, nil},
		{"method subset", []Rule{auth("", "/a/**", "GET"), mfa("", "/a/**")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/a"}}},
		{"HEAD against GET", []Rule{pub("", "/a", "HEAD"), mfa("", "/a", "GET")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/a"}}},
		{"earlier regex", []Rule{regex(pub("", ""), "/api/.*"), mfa("", "/api/transfers/**")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/api/transfers"}}},
		{"later regex", []Rule{pub("", "/api/*"), regex(deny("", ""), "/api/[0-9]+")},
			[]Shadow{{Earlier: 0, Later: 1, Example: "/api/0"}}},
		{"regex not overlapping", []Rule{regex(pub("", ""), "/public/.*"), mfa("", "/admin/**")}, nil},
		// Documented limitation: two regexes are never compared.
		{"two regexes", []Rule{regex(pub("", ""), "/.*"), regex(deny("", ""), "/admin")}, nil},
		{"invalid rules are skipped", []Rule{pub("", "/a*"), {Path: "/a", Access: 0}, deny("", "/a")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.rules {
				tc.rules[i].Name = fmt.Sprint(i)
			}
			got := Shadows(tc.rules)
			var gotKeys, wantKeys []Shadow
			for _, s := range got {
				gotKeys = append(gotKeys, Shadow{Earlier: s.Earlier, Later: s.Later, Example: s.Example})
			}
			for _, s := range tc.want {
				wantKeys = append(wantKeys, Shadow{Earlier: s.Earlier, Later: s.Later, Example: s.Example})
			}
			if !slices.Equal(gotKeys, wantKeys) {
				t.Fatalf("Shadows = %+v; want %+v", got, tc.want)
			}
			// Each example is a request both rules really match.
			for _, s := range got {
				for _, i := range []int{s.Earlier, s.Later} {
					tab, err := NewTable(tc.rules[i:i+1], defaultRule, TableOptions{})
					if err != nil {
						t.Fatal(err)
					}
					method := s.Method
					if method == "" {
						method = "PATCH"
					}
					req := Request{Method: method, Host: s.Host, Path: s.Example}
					if s.Host == "" {
						req.Host = "unnamed.test"
					}
					if m := tab.Match(req); m.Name != tc.rules[i].Name {
						t.Errorf("example %+v of %+v does not match rule %d", req, s, i)
					}
				}
			}
		})
	}
}
