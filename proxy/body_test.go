package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stepgate/stepgate/policy"
)

// Request bodies that trickle or never come (threat model case 87). Every
// test talks to a real server over a raw socket, so the test controls when
// each byte is sent, and every read has a deadline, so a gateway that waits
// for the body forever fails the test instead of hanging it.

// The timeouts are short, but not so short that a busy machine trips them
// where the test expects a body to be read.
const (
	testIdle    = time.Second // BodyIdleTimeout in these tests
	testDiscard = time.Second // BodyDiscardTimeout in these tests
	// patience bounds every wait: well above the timeouts under test, far
	// below "forever".
	patience = 5 * time.Second
)

// bodyGateway is a gateway with short body timeouts in front of an upstream
// that reads each request body to the end and reports how much arrived.
type bodyGateway struct {
	addr string
	got  chan int // body bytes the upstream read, one per request
}

func newBodyGateway(t *testing.T) *bodyGateway {
	t.Helper()
	g := &bodyGateway{got: make(chan int, 16)}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		g.got <- int(n)
		if err != nil {
			return
		}
		io.WriteString(w, "upstream read "+strconv.FormatInt(n, 10))
	}))
	t.Cleanup(up.Close)
	f := newFixture(t)
	upURL, _ := url.Parse(up.URL)
	h, err := New(Config{
		Table: f.h.routes.Load().table, Levels: []*policy.Level{mfa}, Sessions: f.store, Upstream: upURL,
		PublicURL: f.h.publicURL, Logger: discardLogger(),
		BodyIdleTimeout: testIdle, BodyDiscardTimeout: testDiscard,
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	t.Cleanup(front.Close)
	g.addr = strings.TrimPrefix(front.URL, "http://")
	return g
}

func (g *bodyGateway) dial(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	// Closed before the server is: a handler still waiting for the body
	// then ends, and the test's cleanup does not hang.
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(patience))
	return conn
}

// answer reads one response, body included.
func answer(t *testing.T, br *bufio.Reader) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %v: %v", patience, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// closedByServer fails the test unless the server closes the connection:
// a read returns EOF (or a reset, when the server dropped unread input)
// rather than data or the test's own deadline.
func closedByServer(t *testing.T, br *bufio.Reader) {
	t.Helper()
	b, err := br.ReadByte()
	if err == nil {
		t.Fatalf("after the answer the server sent %q; want the connection closed", b)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the answer: %v; want the connection closed by the server within %v", err, patience)
	}
}

// slowRequest is a request head with hdr, announcing a 1000-byte body,
// followed by the body's first two bytes only.
func slowRequest(method, target string, hdr ...string) string {
	return method + " " + target + " HTTP/1.1\r\nHost: gateway.test\r\n" +
		strings.Join(append(hdr, ""), "\r\n") + "Content-Length: 1000\r\n\r\n{\""
}

// upstreamRead returns how many body bytes the upstream read for the next
// request that reached it.
func (g *bodyGateway) upstreamRead(t *testing.T) int {
	t.Helper()
	select {
	case n := <-g.got:
		return n
	case <-time.After(patience):
		t.Fatalf("the upstream did not finish reading a body within %v", patience)
		return 0
	}
}

func TestSlowBodyOfAnAnswerIsNotWaitedFor(t *testing.T) {
	g := newBodyGateway(t)
	const json = "Accept: application/json"
	tests := []struct {
		name string
		req  string
		want int
	}{
		{"step-up needed", slowRequest("POST", "/admin/transfer/1", json), http.StatusUnauthorized},
		{"step-up needed, HTML form", slowRequest("POST", "/admin/transfer/1", "Accept: text/html"), http.StatusUnauthorized},
		{"login needed", slowRequest("PUT", "/account/settings", json), http.StatusUnauthorized},
		{"login needed, browser", slowRequest("GET", "/account", "Accept: text/html"), http.StatusServiceUnavailable}, // no provider in this fixture
		{"rule denies", slowRequest("POST", "/blocked/x", json), http.StatusForbidden},
		{"bad request", slowRequest("POST", "/public/a%2Fb", json), http.StatusBadRequest},
		{"refused upgrade", slowRequest("POST", "/public/x", json, "Upgrade: h2c", "Connection: Upgrade"), http.StatusBadRequest},
		{"gateway endpoint", slowRequest("POST", "/.stepgate/nothing-here", json), http.StatusNotFound},
		{"forward-auth from an untrusted peer", slowRequest("POST", "/.stepgate/auth", json), http.StatusForbidden},
		{"chunked body", "POST /admin/transfer/1 HTTP/1.1\r\nHost: gateway.test\r\nAccept: application/json\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n400\r\n{\"", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each waits testDiscard
			conn := g.dial(t)
			start := time.Now()
			io.WriteString(conn, tt.req)
			br := bufio.NewReader(conn)
			resp := answer(t, br)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d; want %d", resp.StatusCode, tt.want)
			}
			if !resp.Close {
				t.Errorf("answer without Connection: close; want it, the body was never read to its end")
			}
			closedByServer(t, br)
			if d := time.Since(start); d < testDiscard {
				t.Errorf("answered after %v; want the body waited for %v first", d, testDiscard)
			}
		})
	}
}

func TestBodyOfAnAnswerIsDiscardedUpToABound(t *testing.T) {
	g := newBodyGateway(t)
	for _, tt := range []struct {
		name  string
		size  int
		close bool // whether the connection must close after the answer
	}{
		{"small body, read and the connection kept", 100, false},
		{"64 KiB, read and the connection kept", 64 << 10, false},
		// Below what net/http would drain by itself (256 KiB).
		{"200 KiB, not read to the end", 200 << 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := g.dial(t)
			head := "POST /admin/transfer/1 HTTP/1.1\r\nHost: gateway.test\r\nAccept: application/json\r\nContent-Length: " +
				strconv.Itoa(tt.size) + "\r\n\r\n"
			go func() { // the server may stop reading; the write then fails, which is fine
				io.WriteString(conn, head+strings.Repeat("x", tt.size))
			}()
			br := bufio.NewReader(conn)
			resp := answer(t, br)
			if resp.StatusCode != http.StatusUnauthorized || resp.Close != tt.close {
				t.Fatalf("status %d, Connection: close %v; want 401, %v", resp.StatusCode, resp.Close, tt.close)
			}
			if tt.close {
				closedByServer(t, br)
				return
			}
			// The connection serves the next request.
			io.WriteString(conn, "GET /public/x HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
			if resp := answer(t, br); resp.StatusCode != http.StatusOK {
				t.Errorf("next request on the connection: %d; want 200", resp.StatusCode)
			}
			g.upstreamRead(t)
		})
	}
}

func TestForwardedBodyMayBeLongButNotIdle(t *testing.T) {
	g := newBodyGateway(t)

	t.Run("steady upload longer than the idle timeout", func(t *testing.T) {
		conn := g.dial(t)
		const chunks, size = 20, 50
		io.WriteString(conn, "POST /public/upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: "+strconv.Itoa(chunks*size)+"\r\n\r\n")
		start := time.Now()
		for range chunks { // twice the idle timeout in total
			time.Sleep(testIdle / 10)
			if _, err := io.WriteString(conn, strings.Repeat("u", size)); err != nil {
				t.Fatalf("upload cut after %v: %v", time.Since(start), err)
			}
		}
		resp := answer(t, bufio.NewReader(conn))
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Errorf("status %d, Connection: close %v; want 200 on a kept connection", resp.StatusCode, resp.Close)
		}
		if n := g.upstreamRead(t); n != chunks*size {
			t.Errorf("upstream read %d bytes; want %d", n, chunks*size)
		}
	})

	t.Run("upload that stops", func(t *testing.T) {
		conn := g.dial(t)
		start := time.Now()
		io.WriteString(conn, slowRequest("POST", "/public/upload", "Accept: application/json"))
		br := bufio.NewReader(conn)
		resp := answer(t, br)
		if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
			t.Errorf("status %d, Connection: close %v; want 408 and close", resp.StatusCode, resp.Close)
		}
		closedByServer(t, br)
		if d := time.Since(start); d < testIdle {
			t.Errorf("cut after %v; want the body given %v", d, testIdle)
		}
		if n := g.upstreamRead(t); n >= 1000 {
			t.Errorf("upstream read %d bytes; want the truncated body", n)
		}
	})
}
