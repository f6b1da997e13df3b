package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Request bodies that trickle or never come (threat model case 87).
//
// The public server sets no ReadTimeout: it bounds the whole request, so it
// would cut a long upload to a public route however steadily it arrives.
// Bodies get per-request read deadlines instead, through
// http.ResponseController:
//
//   - before an answer the gateway writes itself (401, 403, 302, 400, ...),
//     it reads and discards at most maxDiscard bytes of the body, for at
//     most BodyDiscardTimeout. A body that is longer or slower stays unread
//     and the answer carries "Connection: close": the rest on the wire can
//     never be parsed as the next request, and nothing waits for it. Without
//     this, net/http drains up to 256 KiB after the handler with no deadline
//     at all, and a client that announces a body and sends two bytes holds
//     the connection, and the answer, forever.
//   - a forwarded body may take as long as it needs in total, but each read
//     must deliver within BodyIdleTimeout; one that stalls is cut with 408.

const (
	defaultBodyIdleTimeout    = 60 * time.Second // as nginx's client_body_timeout
	defaultBodyDiscardTimeout = 5 * time.Second  // as nginx's lingering_timeout

	// maxDiscard bounds what is read of a body nobody will use: enough for
	// any form, far less than an upload.
	maxDiscard = 64 << 10
)

// aLongTimeAgo is a read deadline in the past: every later read fails at once.
var aLongTimeAgo = time.Unix(1, 0)

// hasBody reports whether r may carry a body: net/http gives a request
// without one http.NoBody.
func hasBody(r *http.Request) bool { return r.Body != nil && r.Body != http.NoBody }

// settleBody runs just before the first byte of an answer the gateway
// writes itself: it reads what is left of the body, within the bounds, and
// marks the answer "Connection: close" if it could not. w is the server's
// own writer.
func (h *Handler) settleBody(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(strings.ToLower(r.Header.Get("Expect")), "100-continue") {
		// Reading would send "100 Continue" and ask for a body the answer
		// does not need; net/http closes the connection after the answer
		// instead, since the body never came.
		return
	}
	rc := http.NewResponseController(w)
	// Deadlines are on the network's clock, never the handler's Now. A
	// writer without deadlines (not net/http's server) gets nothing read.
	if err := rc.SetReadDeadline(time.Now().Add(h.bodyDiscard)); err == nil {
		_, err := io.CopyN(io.Discard, r.Body, maxDiscard+1)
		if err == io.EOF {
			// All of it: the connection can serve the next request.
			_ = rc.SetReadDeadline(time.Time{})
			return
		}
		// Too long, too slow or broken. net/http's own drain after the
		// handler must fail at once too, not wait for the rest.
		_ = rc.SetReadDeadline(aLongTimeAgo)
	}
	if r.ProtoMajor == 1 { // HTTP/2 ends the stream, not the connection
		w.Header().Set("Connection", "close")
	}
}

// idleBody is a forwarded request body that may not stall: before each read
// it moves the connection's read deadline idle ahead, so a read that
// delivers nothing for idle fails.
type idleBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	idle    time.Duration
	ended   atomic.Bool // a read failed or hit EOF; deadlines are net/http's again
	stalled atomic.Bool // a read failed on the idle deadline
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.ended.Load() {
		return b.ReadCloser.Read(p)
	}
	// Past the body's end net/http reads the connection in the background,
	// clearing the deadline; it must not be set again after that, or that
	// read would fail and cancel the request. Hence ended.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle)) // only net/http's own writer (always ours) supports it
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.ended.Store(true)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			b.stalled.Store(true)
			err = fmt.Errorf("proxy: request body sent nothing for %v: %w", b.idle, err)
		}
	}
	return n, err
}

// stalledBody reports whether the forwarded body of the request answered on
// w was cut for stalling. ReverseProxy hands its error handler the writer
// forward gave it, but a request whose Body it has wrapped again.
func stalledBody(w http.ResponseWriter) bool {
	rec, ok := w.(*recorder)
	return ok && rec.body != nil && rec.body.stalled.Load()
}
