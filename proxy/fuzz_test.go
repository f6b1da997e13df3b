package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

// FuzzForward runs request-targets through a real Handler in front of a real
// upstream and checks what the upstream actually receives: either the
// gateway refused the request, or the upstream saw exactly the canonical
// path that was matched, followed by the query as the client sent it.
//
//	go test -run '^$' -fuzz FuzzForward ./proxy
func FuzzForward(f *testing.F) {
	for _, s := range []string{
		"/", "/api/a!b'c(d)e*f", "/x/%41", "/x/a%20b", "/x/%7e%7B%7d", "/x/{y}|^`\"<>",
		"/public/../admin", "/public/%2e%2e/admin", "/a%2Fb", `/a\b`, "/a;p=1/b", "/a/..;/b",
		"/%c0%ae/x", "/ａ", "/x%00", "/x/%21%2a!*", "/x/$&+,=:@", "/.stepgate/auth",
		"/x?a=1;b=2&c=%zz", "/x?", "/x?_method=DELETE", "/x?%5Fmethod=nope", "/x?q=a#b", "/x?é=1",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	// The upstream echoes the request-target it received and marks that
	// the answer is its own.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "1")
		io.WriteString(w, r.RequestURI)
	}))
	f.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)
	table, err := policy.NewTable([]policy.Rule{{Name: "all", Path: "/**", Access: policy.Public}},
		policy.Rule{Name: "default", Access: policy.Public}, policy.TableOptions{})
	if err != nil {
		f.Fatal(err)
	}
	store, err := session.New(session.Config{Secrets: [][]byte{[]byte(strings.Repeat("k", 32))}, Lifetime: time.Hour, Issuer: "https://idp", ClientID: "stepgate"})
	if err != nil {
		f.Fatal(err)
	}
	handlers := map[bool]*Handler{}
	for _, strip := range []bool{false, true} {
		h, err := New(Config{
			Table: table, PathOptions: policy.PathOptions{StripPathParams: strip}, Sessions: store,
			Upstream: upURL, PublicURL: &url.URL{Scheme: "http", Host: "g"}, Logger: discardLogger(),
		})
		if err != nil {
			f.Fatal(err)
		}
		handlers[strip] = h
	}

	f.Fuzz(func(t *testing.T, target string, strip bool) {
		// Parse the request line the way the HTTP server does; what it
		// refuses never reaches the Handler.
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: g\r\n\r\n")))
		if err != nil || r.RequestURI != target {
			return
		}
		r.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		handlers[strip].ServeHTTP(rec, r)
		reached := rec.Header().Get("X-Upstream") != ""

		path, query, hasQuery := strings.Cut(target, "?")
		canon, err := policy.CanonicalPath(path, policy.PathOptions{StripPathParams: strip})
		switch {
		case err != nil:
			if rec.Code != http.StatusBadRequest || reached {
				t.Fatalf("GET %q: status %d, upstream reached %v; want 400 (%v)", target, rec.Code, reached, err)
			}
			return
		case isReserved(canon):
			if reached {
				t.Fatalf("GET %q: the gateway's own path %q reached the upstream", target, canon)
			}
			return
		case rec.Code == http.StatusForbidden && !reached:
			// Refused for a claimed method that is no method at all.
			for _, m := range claimedMethods(r.Header, query) {
				if _, err := policy.CanonicalMethod(strings.TrimSpace(m)); err != nil {
					return
				}
			}
			t.Fatalf("GET %q: 403 without an unusable method override", target)
		}
		if rec.Code != http.StatusOK || !reached {
			t.Fatalf("GET %q: status %d, upstream reached %v; want 200 from the upstream", target, rec.Code, reached)
		}
		want := canon
		if hasQuery {
			want += "?" + query
		}
		if got := rec.Body.String(); got != want {
			t.Fatalf("GET %q: upstream received %q; want %q, the canonical path and the raw query", target, got, want)
		}
	})
}
