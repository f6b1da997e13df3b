package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stepgate/stepgate/store"
)

// On a public route the gateway still opens the session and forwards its
// identity headers, so a websocket opened there with a session is the
// user's authenticated tunnel as far as the app can tell. tunnelEnd gives
// public routes no end and the tunnel is never registered, so revoking the
// session (a logout, an operator's revoke, a back-channel logout) leaves
// that tunnel open, speaking as the revoked user, for as long as the
// client likes.
func TestAttackPublicRouteTunnelOutlivesRevocation(t *testing.T) {
	f := newFixture(t)
	before := f.upstreamCount()
	code, body := f.raw("GET /public/x HTTP/1.1\r\nHost: gateway.test\r\nCookie: " + f.cookie(alice) + "\r\nConnection: close\r\n\r\n")
	if code != http.StatusOK || f.upstreamCount() != before+1 || f.lastUpstream().Header.Get(HeaderSubject) != "alice" {
		t.Fatalf("public route with a session: %d %s; want it forwarded as alice (%s), which is why the tunnel matters", code, body, HeaderSubject)
	}

	g := newTunnelGateway(t)
	rec := httptest.NewRecorder()
	st, err := g.f.store.Save(rec, alice, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := rec.Result().Cookies()[0]
	conn, br := g.open("/public/chat", c.Name+"="+c.Value)
	if err := g.h.follower.Revoke(t.Context(), store.Revocation{SID: st.ID, Expires: st.Expires}); err != nil {
		t.Fatal(err)
	}
	if d := closedWithin(t, conn, br, 2*time.Second); d > time.Second {
		t.Errorf("the revoked session's tunnel on a public route closed after %v; want within 1s", d)
	}
}
