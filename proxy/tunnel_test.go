package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
	"github.com/stepgate/stepgate/store"
)

// Websocket tunnels end with the session that admitted them, on every route
// that needs one, not only on levels with max_age (threat model case 89).

// mfaAnyAge is a level without max_age: only the session's end bounds it.
var mfaAnyAge = &policy.Level{Name: "mfa-any-age", ACRValues: []string{"urn:mfa"}, SatisfiedBy: []policy.Alternative{{ACR: []string{"urn:mfa"}}}}

// tunnelGateway is a gateway whose clock runs ahead of the real one by
// skew, in front of an upstream that accepts every websocket and keeps it
// open for as long as the gateway lets it.
type tunnelGateway struct {
	t     *testing.T
	h     *Handler
	f     *fixture
	addr  string
	clock atomic.Int64 // how far the gateway's clock is ahead, in nanoseconds
}

func newTunnelGateway(t *testing.T) *tunnelGateway {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, conn)
	}))
	t.Cleanup(up.Close)
	g := &tunnelGateway{t: t, f: newFixture(t)}
	rules := []policy.Rule{
		{Name: "public", Path: "/public/**", Access: policy.Public},
		{Name: "feeds", Path: "/feeds/**", Access: policy.Leveled, Level: mfa},
		{Name: "any-age", Path: "/any-age/**", Access: policy.Leveled, Level: mfaAnyAge},
	}
	table, err := policy.NewTable(rules, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	upURL, _ := url.Parse(up.URL)
	g.h, err = New(Config{
		Table: table, Levels: []*policy.Level{mfa, mfaAnyAge}, Sessions: g.f.store, Upstream: upURL,
		PublicURL: g.f.h.publicURL, Logger: discardLogger(),
		Now: func() time.Time { return time.Now().Add(time.Duration(g.clock.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g.h)
	t.Cleanup(front.Close)
	g.addr = strings.TrimPrefix(front.URL, "http://")
	return g
}

// open starts a websocket on path with cookie and returns the tunnel once
// the upstream's 101 has come through.
func (g *tunnelGateway) open(path, cookie string) (net.Conn, *bufio.Reader) {
	g.t.Helper()
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: "+cookie+"\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		g.t.Fatalf("upgrade of %s: %v; want 101", path, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		g.t.Fatalf("upgrade of %s: %s; want 101", path, resp.Status)
	}
	return conn, br
}

// closedWithin fails the test unless the gateway closes the tunnel within
// d, and reports when it did.
func closedWithin(t *testing.T, conn net.Conn, br *bufio.Reader, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(d))
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("tunnel still open %v later: %v", d, err)
	}
	return time.Since(start)
}

// stillOpen fails the test if the gateway closes the tunnel within d.
func stillOpen(t *testing.T, conn net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(d))
	if _, err := br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("tunnel: %v within %v; want it still open", err, d)
	}
}

func TestWebsocketTunnelEndsWithSession(t *testing.T) {
	const lifetime = time.Hour // the fixture's session lifetime
	const left = 1500 * time.Millisecond
	g := newTunnelGateway(t)
	// Every session below is saved now, on the real clock; the gateway's
	// clock is put ahead so that each has about left to run.
	g.clock.Store(int64(lifetime - left))
	gatewayNow := time.Now().Add(lifetime - left)
	fresh := aliceMFA
	fresh.AuthTime = gatewayNow.Add(-time.Minute) // mfa's max_age (15m) is far off
	tests := []struct {
		name, path string
		facts      policy.Facts
	}{
		{"authenticated route", "/account/live", alice},
		{"level without max_age", "/any-age/live", fresh},
		{"level whose max_age ends after the session", "/feeds/live", fresh},
		// The app got the session's identity headers with it, so the
		// tunnel speaks as the user: it ends with the session too.
		{"public route opened with a session", "/public/live", alice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, br := g.open(tt.path, g.f.cookie(tt.facts))
			// Sessions end on whole seconds: between left-1s and left.
			if d := closedWithin(t, conn, br, left+3*time.Second); d > left+time.Second {
				t.Errorf("tunnel closed after %v; want at most about %v, when the session ended", d, left)
			}
		})
	}
	t.Run("public route without a session", func(t *testing.T) {
		t.Parallel()
		// No session admitted it, so no session's end closes it.
		conn, br := g.open("/public/live", "")
		stillOpen(t, conn, br, left+1500*time.Millisecond)
	})
}

// TestTunnelsEndWithTheirSession covers the hook that ends a session's
// tunnels before their time, for whatever ends the session early: only the
// tunnels of the matching session close.
func TestTunnelsEndWithTheirSession(t *testing.T) {
	g := newTunnelGateway(t)
	save := func(f policy.Facts) (string, string) {
		rec := httptest.NewRecorder()
		st, err := g.f.store.Save(rec, f, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c := rec.Result().Cookies()[0]
		return st.ID, c.Name + "=" + c.Value
	}
	endedID, ended := save(aliceMFA)
	_, kept := save(alice)
	conn1, br1 := g.open("/account/live", ended)
	conn2, br2 := g.open("/any-age/live", ended)
	conn3, br3 := g.open("/account/live", kept)

	cause := errors.New("session ended by the test")
	if n := g.h.tunnels.end(func(st *session.State) bool { return st.ID == endedID }, cause); n != 2 {
		t.Errorf("end closed %d tunnels; want the session's 2", n)
	}
	closedWithin(t, conn1, br1, 2*time.Second)
	closedWithin(t, conn2, br2, 2*time.Second)
	stillOpen(t, conn3, br3, 500*time.Millisecond)

	// A closed tunnel is forgotten.
	conn1.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		g.h.tunnels.mu.Lock()
		n := len(g.h.tunnels.open)
		g.h.tunnels.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tunnels registered after two closed; want 1", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A revoked session's tunnels close within a second, on the replica that
// holds them, whoever revoked it (threat model case 89).
func TestTunnelsEndWhenRevoked(t *testing.T) {
	g := newTunnelGateway(t)
	save := func(f policy.Facts) (session.State, string) {
		rec := httptest.NewRecorder()
		st, err := g.f.store.Save(rec, f, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c := rec.Result().Cookies()[0]
		return st, c.Name + "=" + c.Value
	}
	revoked, cookie := save(aliceMFA)
	_, kept := save(aliceMFA)
	conn1, br1 := g.open("/account/live", cookie)
	conn2, br2 := g.open("/account/live", kept)
	if err := g.h.follower.Revoke(t.Context(), store.Revocation{SID: revoked.ID, Expires: revoked.Expires}); err != nil {
		t.Fatal(err)
	}
	if d := closedWithin(t, conn1, br1, 2*time.Second); d > time.Second {
		t.Errorf("the revoked session's tunnel closed after %v; want within 1s", d)
	}
	stillOpen(t, conn2, br2, 700*time.Millisecond)
}
