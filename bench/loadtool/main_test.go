package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/devidp"
)

// startIDP serves the benchmark's idp on a loopback port of its own, as
// bench/run.sh starts it.
func startIDP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h, err := idp(ln.Addr().String(), "http://127.0.0.1:1/.stepgate/callback", "s3cret", defaultAudience)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// claims decodes a JWT's payload without checking it: the gateway's
// pre-check in bench/run.sh is what verifies the token end to end.
func claims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("token %.40q... has %d parts; want a JWT's 3", jwt, len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("payload: %v", err)
	}
	return c
}

func TestTokenCommand(t *testing.T) {
	issuer := startIDP(t)
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"token", "-issuer", issuer}, &out, &errOut); code != 0 {
		t.Fatalf("loadtool token: exit %d, stderr %q; want 0", code, errOut.String())
	}
	c := claims(t, strings.TrimSpace(out.String()))
	want := map[string]any{"iss": issuer, "aud": defaultAudience, "client_id": apiClientID, "acr": devidp.ACRMultiFactor, "sub": "bench-user"}
	for k, v := range want {
		got := c[k]
		if list, ok := got.([]any); ok && len(list) == 1 {
			got = list[0]
		}
		if got != v {
			t.Errorf("claim %s = %v; want %v", k, c[k], v)
		}
	}
}

func TestTokenCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no issuer", []string{"token"}, 1, "-issuer is required"},
		{"nothing listening", []string{"token", "-issuer", "http://127.0.0.1:1"}, 1, "loadtool token:"},
		{"idp without audience", []string{"idp", "-redirect", "http://127.0.0.1:1/cb", "-audience", ""}, 1, "-audience is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("loadtool %v: exit %d stderr %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
			}
		})
	}
}
