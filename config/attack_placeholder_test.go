package config

import (
	"strings"
	"testing"
)

// stepgate check -allow-unset is how CI lints a config without its
// secrets. A placeholder marks its whole scalar as unknown, so every error
// about that scalar is dropped, including errors that the literal part
// alone decides: "http://idp.example.com/realms/${REALM}" is plain http to
// a public host whatever REALM holds, yet the lint reports nothing and the
// file passes review, to fail (at best) only when production starts it.
func TestAttackPlaceholderHidesLiteralMistake(t *testing.T) {
	base := `public_url: https://bank.example.com
oidc:
  issuer: "https://idp.example.com/realms/${REALM}"
  client_id: stepgate
session:
  secrets: ["${SESSION_SECRET}"]
upstream: http://127.0.0.1:3000
routes: [{name: a, path: /a, require: authenticated}]
`
	env := func(string) (string, bool) { return "", false }
	if _, err := ParseWith("t.yaml", []byte(base), env, Options{AllowUnset: true}); err != nil {
		t.Fatalf("the well-formed file does not lint: %v", err)
	}
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"http issuer around a placeholder", `"https://idp.example.com/realms/${REALM}"`, `"http://idp.example.com/realms/${REALM}"`, "oidc.issuer"},
		{"http public_url around a placeholder", `https://bank.example.com`, `"http://bank.example.com/${PREFIX}"`, "public_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, tc.from, tc.to, 1)
			_, err := ParseWith("t.yaml", []byte(src), env, Options{AllowUnset: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "https") {
				t.Errorf("lint of %s: %v; want the %s must-use-https error, which no value of the variable can fix", tc.to, err, tc.want)
			}
		})
	}
}
