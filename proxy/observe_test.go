package proxy

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// lines decodes every JSON log line written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// The access line says when a session cookie was sent but did not open, so
// an operator can tell a tampered or rotated-out cookie from no cookie; the
// cookie itself never reaches the log.
func TestAccessLineMarksInvalidSessions(t *testing.T) {
	logs := &syncBuffer{}
	f := newFixture(t, func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	good := f.cookie(alice)
	for _, tc := range []struct {
		name, cookie, want string
	}{
		{"no cookie", "", ""},
		{"valid session", good, ""},
		{"tampered", good[:len(good)-4] + "AAAA", "invalid"},
	} {
		req, _ := http.NewRequest(http.MethodGet, f.front.URL+"/public/x?case="+strings.ReplaceAll(tc.name, " ", "-"), nil)
		if tc.cookie != "" {
			req.Header.Set("Cookie", tc.cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var line map[string]any
		for _, l := range logs.lines(t) {
			if l["msg"] == "request" {
				line = l
			}
		}
		if got, _ := line["session"].(string); got != tc.want {
			t.Errorf("%s: access line session %q; want %q (line %v)", tc.name, got, tc.want, line)
		}
	}
	if _, v, _ := strings.Cut(good, "="); strings.Contains(logs.String(), v[:20]) {
		t.Errorf("the log holds the session cookie")
	}
}
