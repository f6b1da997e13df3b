package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps enforces the import direction of the layout rules: imports point
// inward, policy is a pure leaf on the standard library, and only main and
// proxy wire the edges together.
func TestDeps(t *testing.T) {
	const mod = "github.com/stepgate/stepgate"
	forbidden := map[string][]string{
		"./policy":  {mod + "/"}, // nothing of ours
		"./config":  {mod + "/proxy", mod + "/oidc", mod + "/session", mod + "/gateway", mod + "/devidp", mod + "/demo"},
		"./oidc":    {mod + "/proxy", mod + "/session", mod + "/config", mod + "/gateway", mod + "/devidp", mod + "/demo", "github.com/gorilla/"},
		"./session": {mod + "/proxy", mod + "/oidc", mod + "/config", mod + "/gateway", mod + "/devidp", mod + "/demo", "github.com/coreos/go-oidc"},
		"./proxy":   {mod + "/config", mod + "/gateway", mod + "/devidp", mod + "/demo"},
		"./gateway": {mod + "/devidp", mod + "/demo", "github.com/zitadel/"},
		"./devidp":  {mod + "/proxy", mod + "/oidc", mod + "/session", mod + "/config", mod + "/gateway"},
		"./demoapp": {mod + "/"},
		"./store":   {mod + "/"}, // a leaf: what replicas share, nothing else of ours
		"./dpop":    {mod + "/"}, // pure proof checks; the replay store is the caller's
	}
	for pkg, bad := range forbidden {
		self := mod + strings.TrimPrefix(pkg, ".")
		for _, dep := range goList(t, pkg) {
			if dep == self {
				continue
			}
			for _, b := range bad {
				if strings.HasPrefix(dep, b) {
					t.Errorf("%s depends on %s; want no dependency on %s", pkg, dep, b)
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

// TestProductionBuildHasNoDemo checks that the production build (-tags
// nodemo, as the Dockerfile builds it) links none of the development
// provider, the demo bank or what only they need.
func TestProductionBuildHasNoDemo(t *testing.T) {
	const mod = "github.com/stepgate/stepgate"
	banned := []string{mod + "/devidp", mod + "/demoapp", "github.com/zitadel/", "github.com/go-chi/",
		"go.opentelemetry.io/", "github.com/chromedp/", "github.com/pquerna/otp"}
	deps := goList(t, ".", "-tags", "nodemo")
	for _, dep := range deps {
		for _, b := range banned {
			if strings.HasPrefix(dep, b) {
				t.Errorf("go list -deps -tags nodemo . lists %s; want no %s in the production build", dep, b)
			}
		}
	}
	// The default build still has the demo, so the check above can fail.
	if !slices.Contains(goList(t, "."), mod+"/devidp") {
		t.Errorf("the default build does not link devidp; want stepgate demo to work from a source checkout")
	}
}

func goList(t *testing.T, pkg string, flags ...string) []string {
	t.Helper()
	args := append(append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, flags...), pkg)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestStaticBuildsMatch checks that the Dockerfile builds the production
// binary and that test.sh starts one built exactly the same way, since the
// image cannot be built here.
func TestStaticBuildsMatch(t *testing.T) {
	buildLine := func(file, prefix string) string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			if l := strings.TrimSpace(line); strings.HasPrefix(l, prefix) && strings.Contains(l, "go build") {
				l = strings.TrimPrefix(l, prefix)
				l, _, _ = strings.Cut(l, " -o ")
				return l
			}
		}
		t.Fatalf("%s: no line starting %q with go build", file, prefix)
		return ""
	}
	docker, testSh := buildLine("Dockerfile", "RUN "), buildLine("test.sh", "")
	if !strings.Contains(docker, "-tags nodemo") {
		t.Errorf("Dockerfile builds %q; want -tags nodemo (the production build)", docker)
	}
	if docker != testSh {
		t.Errorf("Dockerfile builds %q but test.sh builds %q; want the same command", docker, testSh)
	}
}
