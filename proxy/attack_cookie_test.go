package proxy

import (
	"net/http"
	"strings"
	"testing"
)

// The gateway reads its session cookie with session's cookieValue and
// removes its own cookies from the upstream's copy with stripOwnCookies.
// The two split a Cookie line differently: cookieValue (like net/http's
// readCookies) trims white space around the name before the '=', while
// stripOwnCookies compares the untrimmed name. A pair spelled
// "stepgate =VALUE" is therefore opened as the session, admitted, and then
// forwarded to the application, where net/http (and most other parsers)
// read it as the cookie "stepgate": the credential the gateway promised
// never to hand the app reaches it, and an app that logs or echoes its
// request cookies hands it out. (The pending cookies, matched by prefix,
// are stripped whatever follows their name.)
func TestAttackOwnCookieSpellingReachesUpstream(t *testing.T) {
	f := newFixture(t)
	value := strings.TrimPrefix(f.cookie(alice), "stepgate=")
	for _, tc := range []struct {
		name, pair string
	}{
		{"space before =", "stepgate =" + value},
		{"tab before =", "stepgate\t=" + value},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.upstreamCount()
			code, body := f.raw("GET /account HTTP/1.1\r\nHost: gateway.test\r\nAccept: application/json\r\nCookie: theme=dark; " + tc.pair + "\r\nConnection: close\r\n\r\n")
			if code != http.StatusOK || f.upstreamCount() != before+1 {
				t.Fatalf("%d %s; want the session admitted and the request forwarded (the gateway read the cookie)", code, body)
			}
			up := f.lastUpstream()
			if c, err := up.Cookie("stepgate"); err == nil {
				t.Errorf("the upstream received the gateway's cookie %q (%d bytes of value); Cookie header %q", c.Name, len(c.Value), up.Header.Get("Cookie"))
			}
			if c, err := up.Cookie("theme"); err != nil || c.Value != "dark" {
				t.Errorf("the app's own cookie was lost: %v", err)
			}
		})
	}
}
