package proxy

import (
	"io"
	"log/slog"
	"testing"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestLocalRedirect(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/account", "/account"},
		{"/a/b?x=1&y=%2F", "/a/b?x=1&y=%2F"},
		{"/a/./b/../c", "/a/c"},
		// threat model cases 43-49.
		{"//evil.com", ""},
		{"///evil.com", ""},
		{"/\\evil.com", ""},
		{"\\\\evil.com", ""},
		{"/\t/evil.com", ""},
		{"/\n/evil.com", ""},
		{"/\r/evil.com", ""},
		{"/%09/evil.com", ""},
		{"https:evil.com", ""},
		{"https:/evil.com", ""},
		{"https://evil.com", ""},
		{"javascript:alert(1)", ""},
		{"data:text/html,x", ""},
		{"https://example.com@evil.com", ""},
		{"%2F%2Fevil.com", ""},
		{"/%2F/evil.com", ""},
		{"/%2f%2fevil.com", ""},
		{"/%5Cevil.com", ""},
		{"/%252F%252Fevil.com", ""},
		{"／／evil.com", ""},
		{"/\u3000/evil.com", ""},
		{"/.stepgate/login", ""},
		{"/.stepgate", ""},
		{"/.STEPGATE/callback", ""},
		{"/x/../.stepgate/session", ""},
		{"/%2estepgate/logout", ""},
		{"/a#b", ""},
		{"", ""},
		{"evil.com", ""},
	} {
		if got := localRedirect(tc.in); got != tc.want {
			t.Errorf("localRedirect(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzLocalRedirect(f *testing.F) {
	for _, s := range []string{"/", "//evil", "/\\evil", "/a?b", "/%2e%2e/", "https://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rd string) {
		got := localRedirect(rd)
		if got == "" {
			return
		}
		if got[0] != '/' || (len(got) > 1 && (got[1] == '/' || got[1] == '\\')) {
			t.Fatalf("localRedirect(%q) = %q: not a local path", rd, got)
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < 0x21 || c >= 0x7f || c == '\\' {
				t.Fatalf("localRedirect(%q) = %q: byte %#x", rd, got, c)
			}
		}
		if localRedirect(got) != got {
			t.Fatalf("localRedirect not idempotent on %q", got)
		}
	})
}
