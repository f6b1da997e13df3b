// Package store holds the state stepgate's replicas must share: revoked
// sessions, single-use records (pending logins, logout-token and DPoP jti,
// once-level consumption), held values (transactions waiting for
// confirmation) and the sessions tracked for the admin API.
//
// Two implementations satisfy the one Store interface and pass the same
// contract tests: Memory, for a single process with nothing to run, and
// Redis (or Valkey ≥ 7), for several replicas.
//
// The request hot path never waits on a store. A Follower keeps the
// revocation list in memory, follows every replica's revocations through
// Watch, resyncs in full whenever its subscription is re-established, and
// reports how stale its copy is while the store cannot be reached, so the
// gateway can refuse session routes (never accept them) once the copy is too
// old.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store is what replicas share. Every method is safe for concurrent use.
// Keys are opaque strings chosen by the caller; implementations namespace
// them, so one key may be used for a Claim and for a Put without collision.
type Store interface {
	// Revoke records r and tells every replica watching. A Subject
	// revocation merges with one already held for that subject: the later
	// Before (and the later Expires) wins.
	Revoke(ctx context.Context, r Revocation) error
	// Revocations lists every revocation still in force (Expires in the
	// future), for a full resync.
	Revocations(ctx context.Context) ([]Revocation, error)
	// Watch follows revocations made by any replica. Each time its
	// subscription is (re)established it calls onSync with the full list,
	// then onRevoke for each later revocation, from one goroutine. It returns
	// when ctx ends (ctx.Err()), when the store is closed (ErrClosed) or when
	// the subscription is lost; the caller calls it again to resubscribe.
	Watch(ctx context.Context, onSync func([]Revocation), onRevoke func(Revocation)) error

	// Claim records key for ttl and reports whether this call was the first
	// to do so: of any number of concurrent Claims of one key, exactly one
	// is first until the ttl has passed.
	Claim(ctx context.Context, key string, ttl time.Duration) (first bool, err error)

	// Put holds v under key for ttl, replacing what was there.
	Put(ctx context.Context, key string, v []byte, ttl time.Duration) error
	// Get returns the value held under key, and whether there was one.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Take returns the value held under key and removes it, atomically: of
	// concurrent Takes of one key, exactly one gets the value.
	Take(ctx context.Context, key string) ([]byte, bool, error)
	// Delete removes key's value, if any.
	Delete(ctx context.Context, key string) error

	// Track records (or refreshes) a session for ttl, for the admin API.
	Track(ctx context.Context, s SessionInfo, ttl time.Duration) error
	// Sessions lists the tracked sessions of subject that have not expired,
	// oldest first.
	Sessions(ctx context.Context, subject string) ([]SessionInfo, error)

	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error
	// Close releases the store; Watch calls in progress return ErrClosed.
	Close() error
}

// ErrClosed is returned by a Store used after Close.
var ErrClosed = errors.New("store: closed")

// Revocation ends sessions. Exactly one of SID, IdPSID and Subject is set.
//
// Stores keep times to the microsecond, rounding up: a session issued in the
// same microsecond as Before counts as issued before it, and an entry is kept
// a fraction of a microsecond longer rather than shorter.
type Revocation struct {
	SID     string    // one gateway session
	IdPSID  string    // every gateway session of this IdP session (the ID token's sid)
	Subject string    // with Before: every session of the subject issued before Before ("log out everywhere")
	Before  time.Time // only with Subject
	Expires time.Time // when it may be forgotten: after every session it could match has ended
}

// SessionInfo describes a tracked session, as the admin API lists them.
type SessionInfo struct {
	SID, Subject, IdPSID, ACR string
	AMR                       []string
	Created, AuthTime         time.Time
	LastSeen                  time.Time // when the session was last used (the latest Track)
	Expires                   time.Time
}

// Kinds of revocation, as stores name them.
const (
	kindSID     = "sid"
	kindIdPSID  = "idp"
	kindSubject = "sub"
)

// key returns the revocation's kind and identifier.
func (r Revocation) key() (kind, id string) {
	switch {
	case r.SID != "":
		return kindSID, r.SID
	case r.IdPSID != "":
		return kindIdPSID, r.IdPSID
	default:
		return kindSubject, r.Subject
	}
}

// check rejects a revocation that names no session or more than one kind
// of them, so nothing ambiguous is stored or, worse, silently ignored.
func (r Revocation) check() error {
	set := 0
	for _, s := range []string{r.SID, r.IdPSID, r.Subject} {
		if s != "" {
			set++
		}
	}
	switch {
	case set != 1:
		return fmt.Errorf("store: a revocation needs exactly one of SID, IdPSID and Subject; got %d", set)
	case r.Subject != "" && !positive(r.Before):
		return fmt.Errorf("store: a Subject revocation needs Before after 1970; got %v", r.Before)
	case r.Subject == "" && !r.Before.IsZero():
		return fmt.Errorf("store: Before applies to Subject revocations only; got it with a %s revocation", kindOf(r))
	case !positive(r.Expires):
		return fmt.Errorf("store: a revocation needs Expires after 1970; got %v", r.Expires)
	}
	return nil
}

func kindOf(r Revocation) string { k, _ := r.key(); return k }

// positive reports whether t is after the Unix epoch: times before it do
// not round-trip through a store's microsecond counts.
func positive(t time.Time) bool { return t.UnixMicro() > 0 }

// normalize rounds r's times up to the microsecond, as every store keeps
// them, and strips the monotonic reading and location.
func (r Revocation) normalize() Revocation {
	r.Before = ceilMicro(r.Before)
	r.Expires = ceilMicro(r.Expires)
	return r
}

// merge combines two revocations of the same key: the later Before and the
// later Expires.
func merge(a, b Revocation) Revocation {
	if b.Before.After(a.Before) {
		a.Before = b.Before
	}
	if b.Expires.After(a.Expires) {
		a.Expires = b.Expires
	}
	return a
}

// ceilMicro rounds t up to a whole microsecond; the zero time stays zero.
func ceilMicro(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	us := t.UnixMicro()
	if time.UnixMicro(us).Before(t) {
		us++
	}
	return time.UnixMicro(us)
}

func checkKey(key string) error {
	if key == "" {
		return errors.New("store: empty key")
	}
	return nil
}

// checkTTL rejects lifetimes a store cannot keep: Redis counts them in whole
// milliseconds, and nothing should be held forever by mistake.
func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("store: ttl must be at least 1ms; got %v", ttl)
	}
	return nil
}

func checkSession(s SessionInfo) error {
	if s.SID == "" || s.Subject == "" {
		return fmt.Errorf("store: a tracked session needs SID and Subject; got SID %t, Subject %t", s.SID != "", s.Subject != "")
	}
	return nil
}
