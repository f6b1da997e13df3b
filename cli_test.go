package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const cliConfig = `public_url: "https://bank.example.com"
oidc: {issuer: "https://idp.example.com", client_id: a, client_secret: b}
session: {secrets: ["0123456789abcdef0123456789abcdef"]}
levels:
  mfa:
    acr_values: [urn:mfa]
    max_age: 10m
    satisfied_by: [{acr: [urn:mfa]}, {amr: [mfa]}]
routes:
  - {name: api, path: /api/**, require: authenticated}
  - {name: transfers, path: /api/transfers/**, require: mfa}
`

func TestCheck(t *testing.T) {
	t.Setenv("STEPGATE_CLIENT_ID", "id")
	t.Setenv("STEPGATE_CLIENT_SECRET", "secret")
	t.Setenv("STEPGATE_SESSION_SECRET", strings.Repeat("s", 32))
	if code, out, errs := runCLI(t, "check", "-config", "routes.yaml"); code != 0 || !strings.Contains(out, "ok") || errs != "" {
		t.Errorf("check of the shipped routes.yaml: exit %d, %q %q; want 0, ok, no warnings", code, out, errs)
	}

	code, _, errs := runCLI(t, "check", "-config", writeFile(t, cliConfig))
	if code != 0 || !strings.Contains(errs, `routes[1] "transfers" (mfa) is shadowed by routes[0] "api" (authenticated)`) {
		t.Errorf("shadowed rule: exit %d, %q; want 0 and a shadowing warning", code, errs)
	}

	bad := strings.Replace(cliConfig, "require: mfa}", "require: mfaa}", 1)
	code, _, errs = runCLI(t, "check", "-config", writeFile(t, bad))
	if code != 2 || !strings.Contains(errs, `routes[1].require: unknown level "mfaa"`) || !strings.Contains(errs, ":11:") {
		t.Errorf("bad config: exit %d, %q; want 2 and a positioned error", code, errs)
	}
	if code, _, _ := runCLI(t, "check", "-config", filepath.Join(t.TempDir(), "missing.yaml")); code != 2 {
		t.Errorf("missing file: exit %d; want 2", code)
	}
}

func TestExplain(t *testing.T) {
	// The stricter rule first, as check advises.
	p := writeFile(t, strings.Replace(cliConfig,
		"  - {name: api, path: /api/**, require: authenticated}\n  - {name: transfers, path: /api/transfers/**, require: mfa}\n",
		"  - {name: transfers, path: /api/transfers/**, require: mfa}\n  - {name: api, path: /api/**, require: authenticated}\n", 1))
	for _, tc := range []struct {
		method, url string
		want        []string
	}{
		{"POST", "https://bank.example.com/api/x/../transfers/7", []string{
			"canonical: POST bank.example.com/api/transfers/7", "rule:      transfers (" + p + ":10)",
			"level mfa", "max_age 10m0s", `acr in ["urn:mfa"]`}},
		{"GET", "/api/accounts", []string{"canonical: GET bank.example.com/api/accounts", "rule:      api", "requires:  authenticated"}},
		{"GET", "/elsewhere", []string{"rule:      default (no route matched)", "requires:  authenticated"}},
		{"GET", "/public/%2e%2e/api%2Ftransfers", []string{"rejected with 400", "encoded slash"}},
		{"TRACE", "/api", []string{"rejected with 400"}},
	} {
		code, out, errs := runCLI(t, "explain", "-config", p, tc.method, tc.url)
		if code != 0 {
			t.Errorf("explain %s %s: exit %d %q", tc.method, tc.url, code, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("explain %s %s printed:\n%s\nwant it to contain %q", tc.method, tc.url, out, w)
			}
		}
	}
	if code, _, _ := runCLI(t, "explain", "-config", p, "GET"); code != 2 {
		t.Errorf("explain without URL: exit %d; want 2", code)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, errs := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: exit %d %q; want 2", code, errs)
	}
}

func TestNoCommandPrintsUsage(t *testing.T) {
	code, out, errs := runCLI(t)
	if code != 2 || out != "" || !strings.Contains(errs, "usage:") || !strings.Contains(errs, "stepgate serve") {
		t.Errorf("stepgate with no arguments: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, out, errs)
	}
}

func TestVersion(t *testing.T) {
	code, out, errs := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "stepgate ") || !strings.Contains(out, "go1.") || errs != "" {
		t.Errorf("stepgate version: exit %d, %q %q; want 0 and \"stepgate <version> ... go1.N\"", code, out, errs)
	}
}

// check and explain -allow-unset lint a file whose ${VAR}s are unset, as CI
// does without production secrets; without the flag they are errors.
func TestAllowUnset(t *testing.T) {
	p := writeFile(t, `public_url: "${SG_TEST_PUBLIC_URL}"
oidc: {issuer: "${SG_TEST_ISSUER}", client_id: "${SG_TEST_CLIENT_ID}", client_secret: b}
session: {secrets: ["${SG_TEST_SECRET}"]}
levels:
  mfa: {acr_values: [urn:mfa], satisfied_by: [{acr: [urn:mfa]}]}
routes:
  - {name: transfers, path: /api/transfers/**, require: mfa}
`)
	if code, _, errs := runCLI(t, "check", "-config", p); code != 2 || !strings.Contains(errs, "SG_TEST_ISSUER is not set") {
		t.Errorf("check without -allow-unset: exit %d, %q; want 2 and the unset variable", code, errs)
	}
	code, out, errs := runCLI(t, "check", "-allow-unset", "-config", p)
	if code != 0 || !strings.Contains(out, "ok (1 routes, 1 levels)") || !strings.Contains(errs, p+":2:16: ${SG_TEST_ISSUER} is unset") {
		t.Errorf("check -allow-unset: exit %d, %q %q; want 0, ok and a note per placeholder", code, out, errs)
	}
	code, out, _ = runCLI(t, "explain", "-allow-unset", "-config", p, "POST", "https://bank.example.com/api/transfers/7")
	if code != 0 || !strings.Contains(out, "rule:      transfers") {
		t.Errorf("explain -allow-unset: exit %d, %q; want the transfers rule", code, out)
	}
	if code, _, errs := runCLI(t, "explain", "-allow-unset", "-config", p, "GET", "/api"); code != 2 || !strings.Contains(errs, "absolute URL") {
		t.Errorf("explain -allow-unset of a path with public_url unset: exit %d, %q; want 2 asking for an absolute URL", code, errs)
	}
	if code, _, _ := runCLI(t, "serve", "-allow-unset", "-config", p); code != 2 {
		t.Errorf("serve -allow-unset: exit %d; want 2 (no such flag for serve)", code)
	}
}
