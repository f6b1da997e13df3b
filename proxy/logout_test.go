package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Logout ends the session only on a same-origin POST (threat model case
// 90): a cross-site page must not be able to sign a user out with an image
// or a form. Everything else gets a page whose button makes that POST.
func TestLogoutNeedsSameOriginPost(t *testing.T) {
	f := newFixture(t)
	const origin = "http://gateway.test"
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		ends    bool
		status  int
	}{
		{"same-origin POST", "POST", map[string]string{"Origin": origin}, true, http.StatusOK},
		{"POST with Sec-Fetch-Site same-origin", "POST", map[string]string{"Sec-Fetch-Site": "same-origin"}, true, http.StatusOK},
		{"GET", "GET", nil, false, http.StatusOK},
		{"GET with same Origin", "GET", map[string]string{"Origin": origin, "Sec-Fetch-Site": "same-origin"}, false, http.StatusOK},
		{"HEAD", "HEAD", nil, false, http.StatusOK},
		{"cross-site POST", "POST", map[string]string{"Origin": "https://evil.example"}, false, http.StatusForbidden},
		{"POST with Origin null", "POST", map[string]string{"Origin": "null"}, false, http.StatusForbidden},
		{"POST from another scheme", "POST", map[string]string{"Origin": "https://gateway.test"}, false, http.StatusForbidden},
		{"POST from another port", "POST", map[string]string{"Origin": origin + ":8080"}, false, http.StatusForbidden},
		{"POST cross-site by Sec-Fetch-Site", "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, http.StatusForbidden},
		{"POST same-site but not same-origin", "POST", map[string]string{"Sec-Fetch-Site": "same-site"}, false, http.StatusForbidden},
		{"POST with neither header", "POST", nil, false, http.StatusForbidden},
		{"other Origin wins over Sec-Fetch-Site", "POST", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}, false, http.StatusForbidden},
		{"DELETE", "DELETE", map[string]string{"Origin": origin}, false, http.StatusForbidden},
	}
	for _, tc := range tests {
		for _, accept := range []string{"text/html", "application/json"} {
			t.Run(tc.name+" "+accept, func(t *testing.T) {
				req, _ := http.NewRequest(tc.method, f.front.URL+"/.stepgate/logout", nil)
				req.Host = "gateway.test"
				req.Header.Set("Cookie", f.cookie(aliceMFA))
				req.Header.Set("Accept", accept)
				for k, v := range tc.headers {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				ended := false
				for _, c := range resp.Cookies() {
					if c.Name == f.store.CookieName() && c.MaxAge < 0 {
						ended = true
					}
				}
				if ended != tc.ends {
					t.Errorf("session ended = %v; want %v", ended, tc.ends)
				}
				if resp.StatusCode != tc.status {
					t.Errorf("status %d; want %d", resp.StatusCode, tc.status)
				}
				if !tc.ends && accept == "text/html" && tc.method != "HEAD" {
					b := new(strings.Builder)
					_, _ = io.Copy(b, resp.Body)
					if !strings.Contains(b.String(), `<form method="post" action="/.stepgate/logout"`) {
						t.Errorf("page has no sign-out form:\n%s", b)
					}
				}
			})
		}
	}
}
