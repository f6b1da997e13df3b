package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps enforces the import direction of DESIGN.md §8: imports point
// inward, policy is a pure leaf on the standard library, and only main and
// proxy wire the edges together.
func TestDeps(t *testing.T) {
	const mod = "github.com/stepgate/stepgate"
	forbidden := map[string][]string{
		"./policy":  {mod + "/"}, // nothing of ours
		"./config":  {mod + "/proxy", mod + "/oidc", mod + "/session", mod + "/devidp"},
		"./oidc":    {mod + "/proxy", mod + "/session", mod + "/config", mod + "/devidp", "github.com/gorilla/"},
		"./session": {mod + "/proxy", mod + "/oidc", mod + "/config", mod + "/devidp", "github.com/coreos/go-oidc"},
		"./proxy":   {mod + "/config", mod + "/devidp"},
		"./devidp":  {mod + "/proxy", mod + "/oidc", mod + "/session", mod + "/config"},
		"./demoapp": {mod + "/"},
	}
	for pkg, bad := range forbidden {
		self := mod + strings.TrimPrefix(pkg, ".")
		for _, dep := range goList(t, pkg) {
			if dep == self {
				continue
			}
			for _, b := range bad {
				if strings.HasPrefix(dep, b) {
					t.Errorf("%s depends on %s; want no dependency on %s (DESIGN.md §8)", pkg, dep, b)
				}
			}
		}
	}
	// policy: the standard library only. Standard packages have no dot in
	// their first path element.
	for _, dep := range goList(t, "./policy") {
		if dep == mod+"/policy" {
			continue
		}
		first, _, _ := strings.Cut(dep, "/")
		if strings.Contains(first, ".") {
			t.Errorf("policy depends on %s; want the standard library only", dep)
		}
		if dep == "net/http" {
			t.Errorf("policy depends on net/http; want it free of I/O")
		}
	}
}

func goList(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}
