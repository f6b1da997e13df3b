package gateway

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// A graceful stop must not fail a request a client already sent. The
// standard http.Server.Shutdown closes the listener and, at once, every
// keep-alive connection that is idle at that instant; a client that has
// just sent its next request on one (a load balancer's pool, wrk, any busy
// client) sees the connection close unanswered. So the public server
// drains in two steps first:
//
//  1. It stops accepting, and answers every request from then on with
//     Connection: close, so each client learns, on the answer to the
//     request it already sent, not to send another on that connection.
//  2. It waits until no connection is busy and every idle one has been
//     idle for idleQuiet (a client that was about to send has by then),
//     bounded by Options.DrainTimeout.
//
// Shutdown then closes what is left (clients that stay idle) and waits for
// nothing more.
const idleQuiet = 250 * time.Millisecond

// drainer tracks the public server's connections and marks the answers it
// gives while draining.
type drainer struct {
	draining atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]connState
}

type connState struct {
	state http.ConnState
	since time.Time
}

func newDrainer() *drainer { return &drainer{conns: map[net.Conn]connState{}} }

// track is the server's ConnState hook.
func (d *drainer) track(c net.Conn, s http.ConnState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(d.conns, c) // a hijacked tunnel is no longer the server's to drain
	default:
		d.conns[c] = connState{state: s, since: time.Now()}
	}
}

// settled reports whether no connection is busy and every idle one has
// been idle since before now-quiet.
func (d *drainer) settled(now time.Time, quiet time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, cs := range d.conns {
		if cs.state != http.StateIdle || now.Sub(cs.since) < quiet {
			return false
		}
	}
	return true
}

// wrap marks every answer h gives while draining with Connection: close,
// which also makes the server close the connection after it. An upgrade is
// left alone: its answer names its own Connection header.
func (d *drainer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() && r.Header.Get("Upgrade") == "" {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// readyz answers /readyz with 503 while draining, so that a load balancer
// stops sending new clients before the listener is gone for good; every
// other admin path goes to h.
func (d *drainer) readyz(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && d.draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// drain runs the two steps above on the public server's listener ln, until
// they are done or ctx ends.
func (d *drainer) drain(ctx context.Context, ln *stopListener) {
	d.draining.Store(true)
	ln.stop()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !d.settled(time.Now(), idleQuiet) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stopListener is a listener that can stop accepting before the server
// shuts down: stop closes the socket, so new connections are refused,
// while Accept waits, instead of failing, until the server's Shutdown
// closes the listener; Serve then returns http.ErrServerClosed as usual
// rather than an accept error.
type stopListener struct {
	net.Listener
	stopOnce, closeOnce sync.Once
	stopped, closed     chan struct{}
}

func newStopListener(ln net.Listener) *stopListener {
	return &stopListener{Listener: ln, stopped: make(chan struct{}), closed: make(chan struct{})}
}

func (l *stopListener) stop() {
	l.stopOnce.Do(func() {
		close(l.stopped)
		l.Listener.Close()
	})
}

func (l *stopListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		select {
		case <-l.stopped:
			<-l.closed
			return nil, net.ErrClosed
		default:
		}
	}
	return c, err
}

func (l *stopListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	l.stop()
	return nil
}
