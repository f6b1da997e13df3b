package session_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/session"
)

// cookieLines are Cookie headers as browsers and odd clients send them, for
// the session cookie "n".
var cookieLines = [][]string{
	nil,
	{""},
	{"n=v"},
	{"a=1; n=v; b=2"},
	{"a=1;n=v;b=2"},
	{"  n=v  ;  a=1"},
	{"\tn\t=v"},
	{"n = v"},
	{"n=v=w"},
	{"n="},
	{"n"},
	{"=v; n=w"},
	{`n="v"`},
	{`n="v`},
	{`n=""`},
	{`n="`},
	{"n=v; n=w"},
	{"n=v", "n=w"},
	{"a=1", "n=v"},
	{"n=v; n=in\\valid"},
	{"n=in valid"},
	{"n=in\"valid"},
	{"nn=v; n_=w; N=x"},
	{";;; n=v ;;"},
	{"n=\x7f"},
	{"n=0\r00"}, // the base64 decoder skips CR; net/http refuses it
	{"n=AAAA\nAAAA"},
}

// cookieValue must see the session cookie exactly where net/http does: the
// same value when there is one, and at least as many when there are more,
// so it never overlooks a duplicate net/http would count.
func checkCookieValue(t *testing.T, lines []string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, l := range lines {
		r.Header.Add("Cookie", l)
	}
	v, n := session.CookieValue(r.Header, "n")
	cs := r.CookiesNamed("n")
	if n < len(cs) {
		t.Fatalf("Cookie %q: cookieValue counts %d cookies named n; net/http %d", lines, n, len(cs))
	}
	if n == 1 && len(cs) == 1 && v != cs[0].Value {
		t.Fatalf("Cookie %q: cookieValue = %q; net/http %q", lines, v, cs[0].Value)
	}
	// Where net/http found no valid value, the one found here can never
	// get as far as a key.
	if n == 1 && len(cs) == 0 {
		if err := session.DecodeValue(v); err == nil {
			t.Fatalf("Cookie %q: cookieValue = %q, which net/http refuses but the Store decodes", lines, v)
		}
	}
}

func TestCookieValueMatchesNetHTTP(t *testing.T) {
	for _, lines := range cookieLines {
		checkCookieValue(t, lines)
	}
}

func FuzzCookieValue(f *testing.F) {
	for _, lines := range cookieLines {
		f.Add(strings.Join(lines, "\n"))
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkCookieValue(t, strings.Split(s, "\n"))
	})
}

// How Load reads the Cookie header, end to end.
func TestLoadCookieHeader(t *testing.T) {
	s := newStore(t, true, secret(1))
	c, _ := save(t, s, realisticFacts(), t0)
	n, v := c.Name, c.Value
	tests := []struct {
		name  string
		lines []string
		want  string // substring of Load's error; "" when the session opens
	}{
		{"alone", []string{n + "=" + v}, ""},
		{"among others", []string{"_ga=GA1.2.3; " + n + "=" + v + "; theme=dark"}, ""},
		{"on its own line", []string{"_ga=GA1.2.3", n + "=" + v}, ""},
		{"quoted", []string{n + `="` + v + `"`}, ""},
		{"padded with spaces", []string{"  " + n + "=" + v + "  ;a=1"}, ""},
		{"space after =", []string{n + "= " + v}, "failed authentication"},
		{"no =", []string{n}, "failed authentication"},
		{"line break inside", []string{n + "=" + v[:10] + "\r\n" + v[10:]}, "failed authentication"},
		{"twice on two lines", []string{n + "=" + v, n + "=" + v}, `2 cookies named "__Host-stepgate"`},
		// net/http drops a value with a backslash and would see one cookie.
		{"second with a bad byte", []string{n + "=" + v + "; " + n + `=x\y`}, `2 cookies named "__Host-stepgate"`},
		{"other case", []string{strings.ToLower(n) + "=" + v}, "no session cookie"},
		{"prefix only", []string{n + "-p-x=" + v}, "no session cookie"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "https://app.example.com/", nil)
			for _, l := range tt.lines {
				r.Header.Add("Cookie", l)
			}
			st, err := s.Load(r, t0)
			if tt.want == "" {
				if err != nil || st.Facts.Subject != realisticFacts().Subject {
					t.Fatalf("Load = session of %q, %v; want the session", st.Facts.Subject, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = session of %q, %v; want an error containing %q", st.Facts.Subject, err, tt.want)
			}
		})
	}
}
