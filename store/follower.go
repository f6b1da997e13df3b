package store

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Reconnection backoff of a Follower: quick after a working subscription
// drops, doubling up to a ceiling while the store stays away.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// sweepInterval is how often a Follower drops expired revocations from its
// view when nothing else changes it.
const sweepInterval = time.Minute

// Follower keeps the revocation list in memory for the request hot path.
// It follows the store's Watch in a loop, reconnecting with backoff, and
// answers Revoked from an immutable snapshot: readers never lock, never
// allocate and never wait on the store.
//
// A resync adds what the store lists to what the view holds; it never
// drops a revocation the view knows and that has not expired. Revocations
// are never taken back, so the union is always right, and it keeps a
// replica refusing revoked sessions even when Redis restarts empty (no
// persistence) and lists nothing.
type Follower struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
	every time.Duration // between sweeps of expired entries

	mu   sync.Mutex // serialises writers; readers never take it
	view atomic.Pointer[view]
	done chan struct{}
}

// view is one immutable snapshot of the revocation list and of whether it
// is complete. A writer builds a new view, copying only the map it changes,
// and swaps it in: a revocation costs a copy of one map, which the rate of
// logouts affords, and a read costs three map lookups.
type view struct {
	sids     map[string]time.Time // SID → Expires
	idpSIDs  map[string]time.Time // IdPSID → Expires
	subjects map[string]subjectRevocation

	synced bool      // the subscription is up and the view has everything
	lostAt time.Time // when it stopped being so; zero if it never was
}

type subjectRevocation struct{ before, expires time.Time }

// Follow starts following s's revocations until ctx ends. logger may be
// nil (no logs); now is the clock used for expiry and staleness (nil:
// time.Now).
func Follow(ctx context.Context, s Store, logger *slog.Logger, now func() time.Time) *Follower {
	return follow(ctx, s, logger, now, sweepInterval)
}

func follow(ctx context.Context, s Store, logger *slog.Logger, now func() time.Time, every time.Duration) *Follower {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	f := &Follower{store: s, log: logger, now: now, every: every, done: make(chan struct{})}
	f.view.Store(&view{})
	go f.run(ctx)
	return f
}

// Done is closed once the follower has stopped: its context ended or its
// store was closed. Its view is then stale, and stays readable.
func (f *Follower) Done() <-chan struct{} { return f.done }

// Revoked reports whether a session is revoked: its own sid, its IdP
// session, or its subject's "issued before" time. Empty arguments match
// nothing. It reads the last snapshot; see Stale for how current that is.
func (f *Follower) Revoked(sid, idpSID, subject string, issued time.Time) bool {
	v := f.view.Load()
	if sid != "" {
		if _, ok := v.sids[sid]; ok {
			return true
		}
	}
	if idpSID != "" {
		if _, ok := v.idpSIDs[idpSID]; ok {
			return true
		}
	}
	if subject != "" {
		if s, ok := v.subjects[subject]; ok && issued.Before(s.before) {
			return true
		}
	}
	return false
}

// Stale reports how far behind the store the view may be: 0 while the
// subscription is up and synced, otherwise the time since it was lost (at
// least 1ns, so it never reads as synced). A view that was never complete
// is as stale as a duration can be: the gateway must not trust it at all.
func (f *Follower) Stale(now time.Time) time.Duration {
	v := f.view.Load()
	switch {
	case v.synced:
		return 0
	case v.lostAt.IsZero():
		return math.MaxInt64
	default:
		return max(now.Sub(v.lostAt), time.Nanosecond)
	}
}

// Revoke applies r to this replica's view at once, so the next request here
// is refused without waiting for the store's round trip, then records it in
// the store for every replica. The view keeps r even when the store fails;
// the error says the other replicas may not know.
func (f *Follower) Revoke(ctx context.Context, r Revocation) error {
	if err := r.check(); err != nil {
		return err
	}
	f.add(r)
	return f.store.Revoke(ctx, r)
}

// run follows the store until ctx ends or the store is closed.
func (f *Follower) run(ctx context.Context) {
	var sweeper sync.WaitGroup
	defer func() {
		sweeper.Wait()
		close(f.done)
	}()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	sweeper.Go(func() { f.sweepLoop(ctx) })

	backoff := minBackoff
	for {
		var synced atomic.Bool
		err := f.store.Watch(ctx, func(list []Revocation) {
			f.sync(list)
			synced.Store(true)
		}, f.add)
		wasSynced := f.lost()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrClosed) {
			f.log.Warn("store: closed; the revocation list is no longer followed")
			return
		}
		delay := backoff
		if synced.Load() {
			delay = minBackoff
		}
		if wasSynced {
			f.log.Warn("store: lost the revocation feed; the local copy ages until it is back", "err", err, "retry_in", delay)
		} else {
			f.log.Debug("store: revocation feed still unavailable", "err", err, "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*delay, maxBackoff)
	}
}

func (f *Follower) sweepLoop(ctx context.Context) {
	t := time.NewTicker(f.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.sweep()
		}
	}
}

// sync merges a full list into the view and marks it complete.
func (f *Follower) sync(list []Revocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, now := f.view.Load(), f.now()
	next := &view{
		sids:     liveTimes(cur.sids, now),
		idpSIDs:  liveTimes(cur.idpSIDs, now),
		subjects: liveSubjects(cur.subjects, now),
		synced:   true,
	}
	for _, r := range list {
		next.put(r.normalize(), now)
	}
	if !cur.synced && !cur.lostAt.IsZero() {
		f.log.Info("store: revocation feed back; local copy resynced", "stale_for", now.Sub(cur.lostAt), "revocations", len(list))
	}
	f.view.Store(next)
}

// add applies one revocation, copying only the map it changes.
func (f *Follower) add(r Revocation) {
	r = r.normalize()
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, now := f.view.Load(), f.now()
	if !now.Before(r.Expires) {
		return
	}
	next := *cur
	switch kind, _ := r.key(); kind {
	case kindSID:
		next.sids = liveTimes(cur.sids, now)
	case kindIdPSID:
		next.idpSIDs = liveTimes(cur.idpSIDs, now)
	default:
		next.subjects = liveSubjects(cur.subjects, now)
	}
	next.put(r, now)
	f.view.Store(&next)
}

// put adds r to v's maps, which the caller owns, merging a subject's
// revocations (the later Before and Expires win).
func (v *view) put(r Revocation, now time.Time) {
	if !now.Before(r.Expires) {
		return
	}
	into := func(m *map[string]time.Time, id string) {
		if *m == nil {
			*m = map[string]time.Time{}
		}
		if old, ok := (*m)[id]; !ok || r.Expires.After(old) {
			(*m)[id] = r.Expires
		}
	}
	switch kind, id := r.key(); kind {
	case kindSID:
		into(&v.sids, id)
	case kindIdPSID:
		into(&v.idpSIDs, id)
	default:
		if v.subjects == nil {
			v.subjects = map[string]subjectRevocation{}
		}
		s := v.subjects[id]
		if r.Before.After(s.before) {
			s.before = r.Before
		}
		if r.Expires.After(s.expires) {
			s.expires = r.Expires
		}
		v.subjects[id] = s
	}
}

// lost marks the view incomplete, keeping the time it was first lost, and
// reports whether it had been complete.
func (f *Follower) lost() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.view.Load()
	if !cur.synced {
		return false
	}
	next := *cur
	next.synced, next.lostAt = false, f.now()
	f.view.Store(&next)
	return true
}

// sweep drops expired revocations; when none has expired it changes
// nothing.
func (f *Follower) sweep() {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, now := f.view.Load(), f.now()
	expired := func(exp time.Time) bool { return !now.Before(exp) }
	next := *cur
	changed := false
	if anyExpired(cur.sids, expired) {
		next.sids, changed = liveTimes(cur.sids, now), true
	}
	if anyExpired(cur.idpSIDs, expired) {
		next.idpSIDs, changed = liveTimes(cur.idpSIDs, now), true
	}
	for _, s := range cur.subjects {
		if expired(s.expires) {
			next.subjects, changed = liveSubjects(cur.subjects, now), true
			break
		}
	}
	if changed {
		f.view.Store(&next)
	}
}

func anyExpired(m map[string]time.Time, expired func(time.Time) bool) bool {
	for _, exp := range m {
		if expired(exp) {
			return true
		}
	}
	return false
}

// liveTimes copies m without its expired entries.
func liveTimes(m map[string]time.Time, now time.Time) map[string]time.Time {
	out := maps.Clone(m)
	maps.DeleteFunc(out, func(_ string, exp time.Time) bool { return !now.Before(exp) })
	return out
}

func liveSubjects(m map[string]subjectRevocation, now time.Time) map[string]subjectRevocation {
	out := maps.Clone(m)
	maps.DeleteFunc(out, func(_ string, s subjectRevocation) bool { return !now.Before(s.expires) })
	return out
}
