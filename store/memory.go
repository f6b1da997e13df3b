package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// watchBuffer is how many revocations a memory watcher may fall behind
// before it loses its subscription and has to resync.
const watchBuffer = 256

// sweepEvery is how often a Memory drops expired records nobody asked for
// again, so abandoned claims and values do not pile up.
const sweepEvery = time.Minute

// Memory is a Store for one process: nothing to run, nothing shared with
// other processes. Watch works within the process.
type Memory struct {
	mu        sync.Mutex
	closed    bool
	done      chan struct{} // closed by Close
	lastSweep time.Time

	revocations map[revKey]Revocation
	claims      map[string]time.Time // key → expiry
	values      map[string]heldValue
	sessions    map[string]trackedSession // SID → session
	bySubject   map[string]map[string]struct{}
	watchers    map[*memWatcher]struct{}
}

type revKey struct{ kind, id string }

type heldValue struct {
	v       []byte
	expires time.Time
}

type trackedSession struct {
	info    SessionInfo
	expires time.Time
}

// memWatcher is one Watch call's subscription. Revoke never blocks on it:
// when ch is full the watcher is dropped and lost closed, and the Watch
// returns so its caller resyncs.
type memWatcher struct {
	ch   chan Revocation
	lost chan struct{}
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{
		done:        make(chan struct{}),
		revocations: map[revKey]Revocation{},
		claims:      map[string]time.Time{},
		values:      map[string]heldValue{},
		sessions:    map[string]trackedSession{},
		bySubject:   map[string]map[string]struct{}{},
		watchers:    map[*memWatcher]struct{}{},
	}
}

// lock takes the mutex and sweeps expired records when one is due. It
// fails once the store is closed.
func (m *Memory) lock() (now time.Time, err error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return time.Time{}, ErrClosed
	}
	now = time.Now()
	if now.Sub(m.lastSweep) >= sweepEvery {
		m.sweep(now)
		m.lastSweep = now
	}
	return now, nil
}

func (m *Memory) sweep(now time.Time) {
	for k, r := range m.revocations {
		if !now.Before(r.Expires) {
			delete(m.revocations, k)
		}
	}
	for k, exp := range m.claims {
		if !now.Before(exp) {
			delete(m.claims, k)
		}
	}
	for k, v := range m.values {
		if !now.Before(v.expires) {
			delete(m.values, k)
		}
	}
	for sid, s := range m.sessions {
		if !now.Before(s.expires) {
			m.untrack(sid)
		}
	}
}

// Revoke records r, merged with what is held for its key, and hands the
// merged revocation to every watcher.
func (m *Memory) Revoke(ctx context.Context, r Revocation) error {
	if err := r.check(); err != nil {
		return err
	}
	now, err := m.lock()
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	r = r.normalize()
	kind, id := r.key()
	k := revKey{kind, id}
	if old, ok := m.revocations[k]; ok && now.Before(old.Expires) {
		r = merge(r, old)
	}
	m.revocations[k] = r
	for w := range m.watchers {
		select {
		case w.ch <- r:
		default:
			delete(m.watchers, w)
			close(w.lost)
		}
	}
	return nil
}

// Revocations lists the revocations in force.
func (m *Memory) Revocations(ctx context.Context) ([]Revocation, error) {
	now, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return m.revocationsLocked(now), nil
}

func (m *Memory) revocationsLocked(now time.Time) []Revocation {
	list := make([]Revocation, 0, len(m.revocations))
	for _, r := range m.revocations {
		if now.Before(r.Expires) {
			list = append(list, r)
		}
	}
	sortRevocations(list)
	return list
}

// Watch delivers this process's revocations. The subscription and the
// snapshot for onSync are taken under one lock, so nothing falls between.
func (m *Memory) Watch(ctx context.Context, onSync func([]Revocation), onRevoke func(Revocation)) error {
	now, err := m.lock()
	if err != nil {
		return err
	}
	w := &memWatcher{ch: make(chan Revocation, watchBuffer), lost: make(chan struct{})}
	m.watchers[w] = struct{}{}
	list := m.revocationsLocked(now)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.watchers, w)
		m.mu.Unlock()
	}()

	onSync(list)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.done:
			return ErrClosed
		case <-w.lost:
			return errors.New("store: the watcher fell behind; resubscribe to resync")
		case r := <-w.ch:
			onRevoke(r)
		}
	}
}

// Claim records key unless a live record of it exists.
func (m *Memory) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := errors.Join(checkKey(key), checkTTL(ttl)); err != nil {
		return false, err
	}
	now, err := m.lock()
	if err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	if exp, ok := m.claims[key]; ok && now.Before(exp) {
		return false, nil
	}
	m.claims[key] = now.Add(ttl)
	return true, nil
}

// Put holds a copy of v.
func (m *Memory) Put(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if err := errors.Join(checkKey(key), checkTTL(ttl)); err != nil {
		return err
	}
	now, err := m.lock()
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.values[key] = heldValue{v: slices.Clone(v), expires: now.Add(ttl)}
	return nil
}

// Get returns a copy of the value, so a caller cannot change what is held.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return m.get(key, false)
}

// Take returns the value and removes it under one lock.
func (m *Memory) Take(ctx context.Context, key string) ([]byte, bool, error) {
	return m.get(key, true)
}

func (m *Memory) get(key string, take bool) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	now, err := m.lock()
	if err != nil {
		return nil, false, err
	}
	defer m.mu.Unlock()
	h, ok := m.values[key]
	if !ok || !now.Before(h.expires) {
		return nil, false, nil
	}
	if take {
		delete(m.values, key)
	}
	v := slices.Clone(h.v)
	if v == nil {
		v = []byte{} // held, and empty: distinct from "not held"
	}
	return v, true, nil
}

// Delete removes key's value.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if _, err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.values, key)
	return nil
}

// Track records s, replacing an earlier record of its SID.
func (m *Memory) Track(ctx context.Context, s SessionInfo, ttl time.Duration) error {
	if err := errors.Join(checkSession(s), checkTTL(ttl)); err != nil {
		return err
	}
	now, err := m.lock()
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.untrack(s.SID)
	s.AMR = slices.Clone(s.AMR)
	m.sessions[s.SID] = trackedSession{info: s, expires: now.Add(ttl)}
	set := m.bySubject[s.Subject]
	if set == nil {
		set = map[string]struct{}{}
		m.bySubject[s.Subject] = set
	}
	set[s.SID] = struct{}{}
	return nil
}

func (m *Memory) untrack(sid string) {
	old, ok := m.sessions[sid]
	if !ok {
		return
	}
	delete(m.sessions, sid)
	if set := m.bySubject[old.info.Subject]; set != nil {
		delete(set, sid)
		if len(set) == 0 {
			delete(m.bySubject, old.info.Subject)
		}
	}
}

// Sessions lists subject's live sessions, oldest first.
func (m *Memory) Sessions(ctx context.Context, subject string) ([]SessionInfo, error) {
	if subject == "" {
		return nil, errors.New("store: Sessions needs a subject")
	}
	now, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var list []SessionInfo
	for sid := range m.bySubject[subject] {
		if s := m.sessions[sid]; now.Before(s.expires) {
			info := s.info
			info.AMR = slices.Clone(info.AMR)
			list = append(list, info)
		}
	}
	sortSessions(list)
	return list, nil
}

// Ping fails only once the store is closed.
func (m *Memory) Ping(ctx context.Context) error {
	if _, err := m.lock(); err != nil {
		return err
	}
	m.mu.Unlock()
	return nil
}

// Close ends every Watch; later calls fail with ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	close(m.done)
	return nil
}

// sortRevocations orders a list by kind and identifier, so every store
// lists the same revocations the same way.
func sortRevocations(list []Revocation) {
	slices.SortFunc(list, func(a, b Revocation) int {
		ak, aid := a.key()
		bk, bid := b.key()
		if c := strings.Compare(ak, bk); c != 0 {
			return c
		}
		return strings.Compare(aid, bid)
	})
}

// sortSessions orders sessions oldest first, then by SID.
func sortSessions(list []SessionInfo) {
	slices.SortFunc(list, func(a, b SessionInfo) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.SID, b.SID)
	})
}
