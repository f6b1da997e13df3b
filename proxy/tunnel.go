package proxy

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

// A websocket tunnel outlives the request it was decided on, so the
// decision has to be kept: a tunnel admitted by a session closes when that
// session ends, or sooner when the step-up that admitted it stops holding
// (threat model cases 77 and 89). Each open tunnel is registered with its
// session, so that whatever else ends a session early can end its tunnels
// too, through tunnels.end.

// errTunnelExpired is the cause of a tunnel's end when its time ran out.
var errTunnelExpired = errors.New("proxy: the session or step-up that admitted the websocket tunnel ended")

// tunnelEnd is when a tunnel admitted by rule for st must close: the
// session's end, or the level's max_age counted from auth_time when that
// comes first. Zero means no limit: a tunnel opened without a session. A
// public route's tunnel opened with one carries the user's identity
// headers, so it ends with the session (and its revocation) too.
func tunnelEnd(rule *policy.Rule, st *session.State) time.Time {
	if st == nil {
		return time.Time{}
	}
	end := st.Expires
	if l := rule.Level; rule.Access == policy.Leveled && l != nil && l.MaxAge > 0 && !st.Facts.AuthTime.IsZero() {
		if e := st.Facts.AuthTime.Add(l.MaxAge + policy.ClockSkew); e.Before(end) {
			end = e
		}
	}
	return end
}

// tunnels are the open websocket tunnels and the sessions that admitted
// them. The zero value is ready to use.
type tunnels struct {
	mu   sync.Mutex
	open map[*tunnel]struct{}
}

type tunnel struct {
	st     session.State
	cancel context.CancelCauseFunc
}

// add registers a tunnel admitted by st that may stay open for d. The
// returned context ends after d, or when end matches st; done must be
// called once the tunnel has closed.
func (ts *tunnels) add(parent context.Context, st *session.State, d time.Duration) (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ctx, stop := context.WithTimeoutCause(ctx, d, errTunnelExpired)
	t := &tunnel{st: *st, cancel: cancel}
	ts.mu.Lock()
	if ts.open == nil {
		ts.open = map[*tunnel]struct{}{}
	}
	ts.open[t] = struct{}{}
	ts.mu.Unlock()
	return ctx, func() {
		ts.mu.Lock()
		delete(ts.open, t)
		ts.mu.Unlock()
		stop()
		cancel(nil)
	}
}

// end closes, with cause, every open tunnel whose session matches, and
// reports how many it closed. Closing is asynchronous: the tunnel's copy
// loops stop as soon as they see the context end.
func (ts *tunnels) end(match func(*session.State) bool, cause error) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for t := range ts.open {
		if match(&t.st) {
			t.cancel(cause)
			n++
		}
	}
	return n
}
