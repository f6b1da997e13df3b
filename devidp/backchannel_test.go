package devidp_test

import (
	"crypto/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/oidc"
)

// receiver is a relying party's back-channel logout endpoint: it records
// every POST and answers status (200 unless set).
type receiver struct {
	*httptest.Server
	status  int
	release chan struct{} // when set, each POST waits until it is closed

	mu   sync.Mutex
	got  []url.Values
	kind []string // Content-Type of each POST
}

func newReceiver(t *testing.T, status int, release chan struct{}) *receiver {
	t.Helper()
	rc := &receiver{status: status, release: release}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.release != nil {
			<-rc.release
		}
		if r.Method != http.MethodPost {
			http.Error(w, "want POST", http.StatusMethodNotAllowed)
			return
		}
		_ = r.ParseForm()
		rc.mu.Lock()
		rc.got = append(rc.got, r.PostForm)
		rc.kind = append(rc.kind, r.Header.Get("Content-Type"))
		rc.mu.Unlock()
		w.WriteHeader(rc.status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) posts() ([]url.Values, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got), slices.Clone(rc.kind)
}

// rp is stepgate's OIDC client for one devidp client, found by discovery.
func rp(t *testing.T, e *env, id, secret string) *oidc.Client {
	t.Helper()
	c, err := oidc.New(t.Context(), oidc.Config{
		Issuer: e.issuer, ClientID: id, ClientSecret: secret,
		RedirectURL: redirectURI, Scopes: []string{"openid", "email"},
	})
	if err != nil {
		t.Fatalf("oidc.New(%s): %v", id, err)
	}
	return c
}

// rpLogin logs hc in to c's client (a scripted login) and returns what
// stepgate's Exchange made of it.
func rpLogin(t *testing.T, hc *http.Client, c *oidc.Client) oidc.Result {
	t.Helper()
	a := oidc.AuthRequest{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
	q := callback(t, hc, c.AuthCodeURL(a))
	res, err := c.Exchange(t.Context(), q.Get("code"), oidc.Expect{Nonce: a.Nonce, Verifier: a.Verifier})
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return res
}

// endSession is RP-initiated logout in browser hc; it returns the status.
func endSession(t *testing.T, e *env, hc *http.Client) int {
	t.Helper()
	resp, err := hc.Get(e.issuer + "/end_session?client_id=" + clientID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func script(subject string) func(devidp.Request) devidp.Login {
	return func(devidp.Request) devidp.Login { return devidp.Login{Subject: subject, AMR: []string{"pwd"}} }
}

func TestIDTokenSID(t *testing.T) {
	e := start(t, devidp.Config{Clients: []devidp.Client{
		{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}},
		{ID: "other-app", Secret: "other-secret", RedirectURIs: []string{redirectURI}},
	}})
	gate, other := rp(t, e, clientID, clientSecret), rp(t, e, "other-app", "other-secret")
	e.idp.SetScript(script("alice"))
	one, two := browser(t), browser(t)

	first := rpLogin(t, one, gate).SID
	if len(first) < 32 || strings.Trim(first, "0123456789abcdef") != "" {
		t.Fatalf("sid %q; want at least 128 random bits in hex", first)
	}
	for _, tc := range []struct {
		name    string
		hc      *http.Client
		c       *oidc.Client
		subject string
		same    bool
	}{
		{"same browser, same client", one, gate, "alice", true},
		{"same browser, another client", one, other, "alice", true},
		{"another browser", two, gate, "alice", false},
		{"same browser, another user", one, gate, "bob", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.idp.SetScript(script(tc.subject))
			got := rpLogin(t, tc.hc, tc.c)
			if got.Facts.Subject != tc.subject || got.SID == "" || (got.SID == first) != tc.same {
				t.Errorf("sub %q sid %q; want sub %q and a sid that is the first login's (%q): %v",
					got.Facts.Subject, got.SID, tc.subject, first, tc.same)
			}
		})
	}
}

func TestBackchannelLogout(t *testing.T) {
	gateRcv, otherRcv := newReceiver(t, http.StatusOK, nil), newReceiver(t, http.StatusOK, nil)
	e := start(t, devidp.Config{Clients: []devidp.Client{
		{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: gateRcv.URL + "/.stepgate/backchannel-logout"},
		{ID: "other-app", Secret: "other-secret", RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: otherRcv.URL},
		{ID: "no-backchannel", Secret: "nb-secret", RedirectURIs: []string{redirectURI}},
	}})
	gate, other, plain := rp(t, e, clientID, clientSecret), rp(t, e, "other-app", "other-secret"), rp(t, e, "no-backchannel", "nb-secret")

	// Browser one signs in to all three clients as alice; browser two to
	// stepgate only, as bob.
	one, two := browser(t), browser(t)
	e.idp.SetScript(script("alice"))
	aliceSID := rpLogin(t, one, gate).SID
	rpLogin(t, one, other)
	rpLogin(t, one, plain)
	e.idp.SetScript(script("bob"))
	bobSID := rpLogin(t, two, gate).SID

	if got := e.idp.LogoutDeliveries(); len(got) != 0 {
		t.Fatalf("deliveries before any logout: %+v", got)
	}
	if status := endSession(t, e, one); status != http.StatusOK {
		t.Fatalf("end_session answered %d; want 200", status)
	}

	// Each client that had alice's session, and has a back-channel URI,
	// got one token that verifies for it, names the session and the user,
	// and verifies for no other client.
	got := e.idp.LogoutDeliveries()
	slices.SortFunc(got, func(a, b devidp.LogoutDelivery) int { return strings.Compare(a.ClientID, b.ClientID) })
	if len(got) != 2 || got[0].ClientID != "other-app" || got[1].ClientID != clientID {
		t.Fatalf("deliveries %+v; want one to other-app and one to %s", got, clientID)
	}
	for _, tc := range []struct {
		d          devidp.LogoutDelivery
		rcv        *receiver
		mine, not  *oidc.Client
		wantURIEnd string
	}{
		{got[0], otherRcv, other, gate, otherRcv.URL},
		{got[1], gateRcv, gate, other, "/.stepgate/backchannel-logout"},
	} {
		t.Run(tc.d.ClientID, func(t *testing.T) {
			d := tc.d
			if d.Err != nil || d.Status != http.StatusOK || d.SID != aliceSID || d.Subject != "alice" || !strings.HasSuffix(d.URI, tc.wantURIEnd) {
				t.Errorf("delivery %+v; want status 200, sid %q, subject alice, URI ending %q", d, aliceSID, tc.wantURIEnd)
			}
			posts, kinds := tc.rcv.posts()
			if len(posts) != 1 || kinds[0] != "application/x-www-form-urlencoded" || posts[0].Get("logout_token") != d.Token {
				t.Fatalf("receiver got %v (%q); want one form POST carrying the delivered token", posts, kinds)
			}
			lt, err := tc.mine.VerifyLogoutToken(t.Context(), d.Token, time.Now())
			if err != nil {
				t.Fatalf("VerifyLogoutToken: %v", err)
			}
			if lt.SID != aliceSID || lt.Subject != "alice" || lt.JTI == "" {
				t.Errorf("logout token %+v; want sid %q (the ID token's), sub alice and a jti", lt, aliceSID)
			}
			if _, err := tc.not.VerifyLogoutToken(t.Context(), d.Token, time.Now()); err == nil || !strings.Contains(err.Error(), "aud") {
				t.Errorf("another client's VerifyLogoutToken = %v; want an aud error", err)
			}
		})
	}
	if got[0].Token == got[1].Token {
		t.Error("both clients got the same token; want one per client (own aud, own jti)")
	}

	t.Run("other sessions live on", func(t *testing.T) {
		e.idp.SetScript(script("bob"))
		if sid := rpLogin(t, two, gate).SID; sid != bobSID {
			t.Errorf("bob's sid after alice's logout is %q; want still %q", sid, bobSID)
		}
	})

	t.Run("no session, no delivery", func(t *testing.T) {
		endSession(t, e, one)
		if n := len(e.idp.LogoutDeliveries()); n != 2 {
			t.Errorf("%d deliveries after a second end_session; want still 2", n)
		}
	})

	t.Run("provider-side sign-out", func(t *testing.T) {
		if n := e.idp.SignOut("bob"); n != 1 {
			t.Errorf("SignOut(bob) ended %d sessions; want 1", n)
		}
		all := e.idp.LogoutDeliveries()
		if len(all) != 3 {
			t.Fatalf("deliveries %+v; want a third, for bob", all)
		}
		d := all[2]
		if d.ClientID != clientID || d.SID != bobSID || d.Subject != "bob" || d.Err != nil {
			t.Errorf("delivery %+v; want bob's session %q to %s", d, bobSID, clientID)
		}
		if lt, err := gate.VerifyLogoutToken(t.Context(), d.Token, time.Now()); err != nil || lt.SID != bobSID {
			t.Errorf("VerifyLogoutToken = %+v, %v; want sid %q", lt, err, bobSID)
		}
		if n := e.idp.SignOut("bob"); n != 0 {
			t.Errorf("second SignOut(bob) ended %d sessions; want 0", n)
		}
	})
}

// TestBackchannelLogoutAsync: a slow or failing relying party never holds
// up the logout page, and its failure is recorded.
func TestBackchannelLogoutAsync(t *testing.T) {
	release := make(chan struct{})
	slow, failing := newReceiver(t, http.StatusOK, release), newReceiver(t, http.StatusInternalServerError, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/logout"
	ln.Close() // nothing listens there any more

	e := start(t, devidp.Config{Clients: []devidp.Client{
		{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: slow.URL},
		{ID: "failing", Secret: "f-secret", RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: failing.URL},
		{ID: "gone", Secret: "g-secret", RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: closed},
	}})
	hc := browser(t)
	e.idp.SetScript(script("alice"))
	for _, c := range []*oidc.Client{rp(t, e, clientID, clientSecret), rp(t, e, "failing", "f-secret"), rp(t, e, "gone", "g-secret")} {
		rpLogin(t, hc, c)
	}

	// The slow receiver holds its POST until release is closed, so the
	// page can only have answered if it did not wait.
	if status := endSession(t, e, hc); status != http.StatusOK {
		t.Fatalf("end_session answered %d; want 200", status)
	}
	if posts, _ := slow.posts(); len(posts) != 0 {
		t.Fatalf("the slow receiver already answered %d POSTs", len(posts))
	}
	close(release)

	got := map[string]devidp.LogoutDelivery{}
	for _, d := range e.idp.LogoutDeliveries() {
		got[d.ClientID] = d
	}
	if d := got[clientID]; d.Status != http.StatusOK || d.Err != nil {
		t.Errorf("slow delivery %+v; want 200 once released", d)
	}
	if d := got["failing"]; d.Status != http.StatusInternalServerError || d.Err == nil || !strings.Contains(d.Err.Error(), "500") {
		t.Errorf("failing delivery %+v; want status 500 and an error naming it", d)
	}
	if d := got["gone"]; d.Status != 0 || d.Err == nil {
		t.Errorf("delivery to a closed port %+v; want status 0 and an error", d)
	}
	if len(got) != 3 {
		t.Errorf("deliveries to %d clients; want 3", len(got))
	}
}

// TestSSOSessionIdentity: the session (and so the sid) survives a
// re-authentication of the same user and ends, with a logout, when another
// user signs in in the same browser.
func TestSSOSessionIdentity(t *testing.T) {
	rcv := newReceiver(t, http.StatusOK, nil)
	e := start(t, devidp.Config{
		Clients: []devidp.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: rcv.URL}},
		Users: []devidp.User{
			{Username: "alice", Password: "correct horse", Subject: "sub-alice"},
			{Username: "bob", Password: "battery staple", Subject: "sub-bob"},
		},
	})
	hc := browser(t)
	login := func(user, password string, extra ...oauth2.AuthCodeOption) string {
		t.Helper()
		f := e.newFlow(oauth2.AuthStyleInHeader)
		_, id := openLoginPage(t, hc, f.authURL(extra...))
		_, _, q := post(t, hc, e.issuer, url.Values{"authRequestID": {id}, "step": {"password"}, "username": {user}, "password": {password}})
		if q == nil || q.Get("code") == "" {
			t.Fatalf("password login as %s did not reach the client", user)
		}
		return sidOf(t, e, f, q)
	}
	prompt := oauth2.SetAuthURLParam("prompt", "login")

	alice := login("alice", "correct horse")
	f := e.newFlow(oauth2.AuthStyleInHeader)
	if silent := sidOf(t, e, f, callback(t, hc, f.authURL())); silent != alice {
		t.Errorf("silent SSO login sid %q; want the session's %q", silent, alice)
	}
	if again := login("alice", "correct horse", prompt); again != alice {
		t.Errorf("re-authentication sid %q; want the same session %q", again, alice)
	}
	if n := len(e.idp.LogoutDeliveries()); n != 0 {
		t.Errorf("%d deliveries after re-authentication; want none", n)
	}
	bob := login("bob", "battery staple", prompt)
	if bob == alice {
		t.Errorf("bob's sid %q is alice's", bob)
	}
	got := e.idp.LogoutDeliveries()
	if len(got) != 1 || got[0].SID != alice || got[0].Subject != "sub-alice" || got[0].Err != nil {
		t.Errorf("deliveries %+v; want alice's session %q ended", got, alice)
	}
}

// sidOf exchanges the callback's code and returns the ID token's sid.
func sidOf(t *testing.T, e *env, f *flow, q url.Values) string {
	t.Helper()
	tok, err := f.exchange(t.Context(), q.Get("code"))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	_, _, all := e.verify(t, tok)
	sid, _ := all["sid"].(string)
	if sid == "" {
		t.Fatalf("ID token claims %v; want a sid", all)
	}
	return sid
}

func TestBackchannelLogoutURIChecked(t *testing.T) {
	for _, tc := range []struct{ uri, wantErr string }{
		{"http://127.0.0.1:9/.stepgate/backchannel-logout", ""},
		{"https://localhost:8443/bcl", ""},
		{"http://[::1]:9/bcl", ""},
		{"https://stepgate.example.com/.stepgate/backchannel-logout", "not loopback"},
		{"http://10.0.0.1/bcl", "not loopback"},
		{"http://127.0.0.1.evil.test/bcl", "not loopback"},
		{"ftp://127.0.0.1/bcl", "want an absolute http(s) URL"},
		{"/.stepgate/backchannel-logout", "want an absolute http(s) URL"},
		{"http://127.0.0.1:9/bcl#frag", "want an absolute http(s) URL"},
		{"http://u:p@127.0.0.1:9/bcl", "want an absolute http(s) URL"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			_, err := devidp.New(devidp.Config{Issuer: "http://127.0.0.1:1", Clients: []devidp.Client{
				{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: tc.uri},
			}})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("New = %v; want no error", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "BackchannelLogoutURI")):
				t.Errorf("New = %v; want an error about BackchannelLogoutURI containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestBackchannelDiscovery(t *testing.T) {
	e := start(t, devidp.Config{})
	var meta struct {
		Supported bool `json:"backchannel_logout_supported"`
		Session   bool `json:"backchannel_logout_session_supported"`
	}
	if err := e.oidc.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if !meta.Supported || !meta.Session {
		t.Errorf("backchannel_logout_supported %v, backchannel_logout_session_supported %v; want both true", meta.Supported, meta.Session)
	}
}
