package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepgate/stepgate/store"
)

// testStore is the contract every Store implementation keeps. newStore
// returns a fresh, empty store that the test may close.
func testStore(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("RevokeRejectsAmbiguous", func(t *testing.T) { testRevokeRejects(t, newStore(t)) })
	t.Run("RevocationKinds", func(t *testing.T) { testRevocationKinds(t, newStore(t)) })
	t.Run("SubjectBeforeSupersedes", func(t *testing.T) { testSubjectSupersedes(t, newStore(t)) })
	t.Run("ExpiresHonoured", func(t *testing.T) { testExpires(t, newStore(t)) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, newStore(t)) })
	t.Run("Claim", func(t *testing.T) { testClaim(t, newStore(t)) })
	t.Run("Values", func(t *testing.T) { testValues(t, newStore(t)) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, newStore(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, newStore(t)) })
}

func TestMemory(t *testing.T) {
	testStore(t, func(t *testing.T) store.Store {
		m := store.NewMemory()
		t.Cleanup(func() { m.Close() })
		return m
	})
}

// waitFor polls cond every few milliseconds until it holds, and fails the
// test if it does not within d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// follow starts a Follower on s that stops, and is waited for, when the
// test ends.
func follow(t *testing.T, s store.Store, now func() time.Time) *store.Follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := store.Follow(ctx, s, testLogger(t), now)
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.Done():
		case <-time.After(5 * time.Second):
			t.Error("the follower did not stop within 5s of its context ending")
		}
	})
	return f
}

// followSynced is follow, waiting until the first sync.
func followSynced(t *testing.T, s store.Store) *store.Follower {
	t.Helper()
	f := follow(t, s, time.Now)
	waitFor(t, 3*time.Second, "the follower's first sync (Stale = 0)", func() bool { return f.Stale(time.Now()) == 0 })
	return f
}

// testLogger logs to the test, and fails it if a log line carries a
// secret: every test secret contains "secret".
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.Contains(p, []byte("secret")) {
		w.t.Errorf("a log line carries a secret: %s", p)
	}
	w.t.Logf("%s", bytes.TrimSpace(p))
	return len(p), nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testRevokeRejects(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	later := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name string
		r    store.Revocation
	}{
		{"nothing", store.Revocation{Expires: later}},
		{"sid and subject", store.Revocation{SID: "s", Subject: "u", Before: time.Now(), Expires: later}},
		{"sid and idp sid", store.Revocation{SID: "s", IdPSID: "i", Expires: later}},
		{"idp sid and subject", store.Revocation{IdPSID: "i", Subject: "u", Before: time.Now(), Expires: later}},
		{"subject without before", store.Revocation{Subject: "u", Expires: later}},
		{"subject before 1970", store.Revocation{Subject: "u", Before: time.Unix(-10, 0), Expires: later}},
		{"before with a sid", store.Revocation{SID: "s", Before: time.Now(), Expires: later}},
		{"before with an idp sid", store.Revocation{IdPSID: "i", Before: time.Now(), Expires: later}},
		{"no expires", store.Revocation{SID: "s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Revoke(ctx, tc.r); err == nil {
				t.Errorf("Revoke(%+v) = nil; want an error", tc.r)
			}
		})
	}
	list, err := s.Revocations(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("Revocations after only invalid Revokes = %v, %v; want none", list, err)
	}
}

func testRevocationKinds(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	f := followSynced(t, s)
	t0 := time.Now().Truncate(time.Second)
	exp := t0.Add(time.Hour)
	revs := []store.Revocation{
		{SID: "sid-1", Expires: exp},
		{IdPSID: "idp-1", Expires: exp},
		{Subject: "alice", Before: t0, Expires: exp},
	}
	for _, r := range revs {
		if err := s.Revoke(ctx, r); err != nil {
			t.Fatalf("Revoke(%+v) = %v", r, err)
		}
	}
	// Made on the store, not the follower: they arrive through Watch.
	waitFor(t, time.Second, "the follower sees the store's revocations", func() bool {
		return f.Revoked("sid-1", "", "", t0) && f.Revoked("", "idp-1", "", t0) && f.Revoked("", "", "alice", t0.Add(-time.Second))
	})

	for _, tc := range []struct {
		name                 string
		sid, idpSID, subject string
		issued               time.Time
		want                 bool
	}{
		{"revoked sid", "sid-1", "idp-9", "bob", t0.Add(time.Hour), true},
		{"other sid", "sid-2", "idp-9", "bob", t0.Add(-time.Hour), false},
		{"sid of a revoked idp session", "sid-2", "idp-1", "bob", t0.Add(time.Hour), true},
		{"subject, issued before", "sid-3", "", "alice", t0.Add(-time.Microsecond), true},
		{"subject, issued at before", "sid-3", "", "alice", t0, false},
		{"subject, issued after", "sid-3", "", "alice", t0.Add(time.Second), false},
		{"other subject, issued before", "sid-3", "", "bob", t0.Add(-time.Hour), false},
		{"a revoked sid as an idp sid", "sid-4", "sid-1", "", t0, false},
		{"a revoked idp sid as a sid", "idp-1", "", "", t0, false},
		{"a subject as a sid", "alice", "", "", t0.Add(-time.Hour), false},
		{"nothing", "", "", "", time.Time{}, false},
	} {
		if got := f.Revoked(tc.sid, tc.idpSID, tc.subject, tc.issued); got != tc.want {
			t.Errorf("%s: Revoked(%q, %q, %q, %v) = %t; want %t", tc.name, tc.sid, tc.idpSID, tc.subject, tc.issued, got, tc.want)
		}
	}

	list, err := s.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertRevocations(t, list, revs...)
}

// assertRevocations checks that got holds exactly want, in any order.
func assertRevocations(t *testing.T, got []store.Revocation, want ...store.Revocation) {
	t.Helper()
	key := func(r store.Revocation) string { return r.SID + "|" + r.IdPSID + "|" + r.Subject }
	if len(got) != len(want) {
		t.Errorf("Revocations() = %v; want %v", got, want)
		return
	}
	byKey := map[string]store.Revocation{}
	for _, r := range got {
		byKey[key(r)] = r
	}
	for _, w := range want {
		g, ok := byKey[key(w)]
		if !ok || !g.Before.Equal(w.Before) || !g.Expires.Equal(w.Expires) {
			t.Errorf("Revocations() = %v; want %v (missing or different: %+v)", got, want, w)
		}
	}
}

func testSubjectSupersedes(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	t0 := time.Now().Truncate(time.Second)
	revoke := func(r store.Revocation) {
		t.Helper()
		if err := s.Revoke(ctx, r); err != nil {
			t.Fatalf("Revoke(%+v) = %v", r, err)
		}
	}
	revoke(store.Revocation{Subject: "alice", Before: t0, Expires: t0.Add(2 * time.Hour)})
	revoke(store.Revocation{Subject: "alice", Before: t0.Add(-time.Minute), Expires: t0.Add(time.Hour)})
	list, _ := s.Revocations(ctx)
	assertRevocations(t, list, store.Revocation{Subject: "alice", Before: t0, Expires: t0.Add(2 * time.Hour)})

	revoke(store.Revocation{Subject: "alice", Before: t0.Add(time.Minute), Expires: t0.Add(90 * time.Minute)})
	list, _ = s.Revocations(ctx)
	assertRevocations(t, list, store.Revocation{Subject: "alice", Before: t0.Add(time.Minute), Expires: t0.Add(2 * time.Hour)})

	// Concurrent revocations of one subject: the latest Before and the
	// latest Expires come from different calls, and both must survive.
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.Revoke(ctx, store.Revocation{
				Subject: "bob",
				Before:  t0.Add(time.Duration(i) * time.Millisecond),
				Expires: t0.Add(time.Hour - time.Duration(i)*time.Second),
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Revoke: %v", err)
		}
	}
	list, _ = s.Revocations(ctx)
	assertRevocations(t, list,
		store.Revocation{Subject: "alice", Before: t0.Add(time.Minute), Expires: t0.Add(2 * time.Hour)},
		store.Revocation{Subject: "bob", Before: t0.Add((n - 1) * time.Millisecond), Expires: t0.Add(time.Hour)})

	// Times are kept to the microsecond, rounded up: a session issued in
	// the last microsecond before Before stays revoked.
	revoke(store.Revocation{Subject: "dave", Before: t0.Add(500 * time.Nanosecond), Expires: t0.Add(time.Hour + time.Nanosecond)})
	list, _ = s.Revocations(ctx)
	assertRevocations(t, list,
		store.Revocation{Subject: "alice", Before: t0.Add(time.Minute), Expires: t0.Add(2 * time.Hour)},
		store.Revocation{Subject: "bob", Before: t0.Add((n - 1) * time.Millisecond), Expires: t0.Add(time.Hour)},
		store.Revocation{Subject: "dave", Before: t0.Add(time.Microsecond), Expires: t0.Add(time.Hour + time.Microsecond)})
}

func testExpires(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := time.Now().Truncate(time.Microsecond)
	long := store.Revocation{SID: "long", Expires: now.Add(time.Hour)}
	for _, r := range []store.Revocation{
		{SID: "short", Expires: now.Add(200 * time.Millisecond)},
		long,
		{SID: "gone", Expires: now.Add(-time.Second)},
		{Subject: "gone", Before: now, Expires: now.Add(-time.Second)},
	} {
		if err := s.Revoke(ctx, r); err != nil {
			t.Fatalf("Revoke(%+v) = %v", r, err)
		}
	}
	list, err := s.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertRevocations(t, list, store.Revocation{SID: "short", Expires: now.Add(200 * time.Millisecond)}, long)
	waitFor(t, 3*time.Second, "the short revocation is forgotten", func() bool {
		list, err = s.Revocations(ctx)
		return err == nil && len(list) == 1
	})
	assertRevocations(t, list, long)
}

func testWatch(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := s.Revoke(ctx, store.Revocation{SID: "before-watch", Expires: exp}); err != nil {
		t.Fatal(err)
	}
	type event struct {
		sync bool
		revs []store.Revocation
	}
	events := make(chan event, 10)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(wctx,
			func(l []store.Revocation) { events <- event{true, l} },
			func(r store.Revocation) { events <- event{false, []store.Revocation{r}} })
	}()
	next := func() event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case err := <-done:
			t.Fatalf("Watch returned %v; want it to keep watching", err)
		case <-time.After(3 * time.Second):
			t.Fatal("no Watch callback within 3s")
		}
		return event{}
	}
	if e := next(); !e.sync {
		t.Fatalf("first Watch callback is onRevoke(%v); want onSync", e.revs)
	} else {
		assertRevocations(t, e.revs, store.Revocation{SID: "before-watch", Expires: exp})
	}
	if err := s.Revoke(ctx, store.Revocation{SID: "during-watch", Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.sync {
		t.Fatalf("Watch called onSync(%v) after a Revoke; want onRevoke", e.revs)
	} else {
		assertRevocations(t, e.revs, store.Revocation{SID: "during-watch", Expires: exp})
	}
	// What reaches watchers is the merged revocation, not the call's.
	t0 := time.Now().Truncate(time.Second)
	for _, before := range []time.Time{t0, t0.Add(-time.Minute)} {
		if err := s.Revoke(ctx, store.Revocation{Subject: "carol", Before: before, Expires: exp}); err != nil {
			t.Fatal(err)
		}
		assertRevocations(t, next().revs, store.Revocation{Subject: "carol", Before: t0, Expires: exp})
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch after its context ended = %v; want context.Canceled", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Watch did not return within 3s of its context ending")
	}

	// Close ends a Watch too.
	go func() {
		done <- s.Watch(ctx, func([]store.Revocation) { events <- event{sync: true} }, func(store.Revocation) {})
	}()
	if e := next(); !e.sync {
		t.Fatal("want onSync first")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("Watch after Close = %v; want ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Watch did not return within 3s of Close")
	}
}

func testClaim(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	claim := func(key string, ttl time.Duration) bool {
		t.Helper()
		first, err := s.Claim(ctx, key, ttl)
		if err != nil {
			t.Fatalf("Claim(%q, %v) = %v", key, ttl, err)
		}
		return first
	}
	for i, tc := range []struct {
		key  string
		want bool
	}{{"jti-1", true}, {"jti-1", false}, {"jti-2", true}, {"jti-1", false}, {"JTI-1", true}} {
		if got := claim(tc.key, time.Hour); got != tc.want {
			t.Errorf("claim %d: Claim(%q) = %t; want %t", i, tc.key, got, tc.want)
		}
	}
	// A value under the same key is a different record.
	if err := s.Put(ctx, "shared", []byte("x"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if !claim("shared", time.Hour) {
		t.Error("Claim of a key used by Put = false; want claims and values apart")
	}

	if !claim("short", 100*time.Millisecond) || claim("short", 100*time.Millisecond) {
		t.Fatal("want a first and then a repeated Claim of \"short\"")
	}
	waitFor(t, 3*time.Second, "Claim is first again after its ttl", func() bool { return claim("short", 100*time.Millisecond) })

	const rounds, n = 20, 50
	for round := range rounds {
		key := fmt.Sprint("race-", round)
		var firsts atomic.Int32
		race(n, func() {
			first, err := s.Claim(ctx, key, time.Hour)
			if err != nil {
				t.Errorf("concurrent Claim: %v", err)
			}
			if first {
				firsts.Add(1)
			}
		})
		if got := firsts.Load(); got != 1 {
			t.Fatalf("round %d: %d concurrent Claims of one key: %d first; want exactly 1", round, n, got)
		}
	}

	for _, tc := range []struct {
		key string
		ttl time.Duration
	}{{"", time.Hour}, {"k", 0}, {"k", -time.Second}, {"k", 500 * time.Microsecond}} {
		if _, err := s.Claim(ctx, tc.key, tc.ttl); err == nil {
			t.Errorf("Claim(%q, %v) = nil error; want one", tc.key, tc.ttl)
		}
	}
}

// race runs f in n goroutines released at once, and waits for them.
func race(n int, f func()) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			f()
		})
	}
	close(start)
	wg.Wait()
}

func testValues(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	get := func(op, key string) (string, bool) {
		t.Helper()
		f := s.Get
		if op == "Take" {
			f = s.Take
		}
		v, ok, err := f(ctx, key)
		if err != nil {
			t.Fatalf("%s(%q) = %v", op, key, err)
		}
		if !ok && v != nil {
			t.Errorf("%s(%q) = %q, false; want nil with false", op, key, v)
		}
		return string(v), ok
	}
	put := func(key, v string, ttl time.Duration) {
		t.Helper()
		if err := s.Put(ctx, key, []byte(v), ttl); err != nil {
			t.Fatalf("Put(%q) = %v", key, err)
		}
	}

	in := []byte("transfer 100 EUR")
	if err := s.Put(ctx, "held", in, time.Hour); err != nil {
		t.Fatal(err)
	}
	copy(in, "XXXXXXXX") // the store keeps its own copy
	steps := []struct {
		op, key string
		want    string
		ok      bool
	}{
		{"Get", "held", "transfer 100 EUR", true},
		{"Get", "held", "transfer 100 EUR", true},
		{"Get", "missing", "", false},
		{"Take", "held", "transfer 100 EUR", true},
		{"Get", "held", "", false},
		{"Take", "held", "", false},
	}
	for i, st := range steps {
		if got, ok := get(st.op, st.key); got != st.want || ok != st.ok {
			t.Errorf("step %d: %s(%q) = %q, %t; want %q, %t", i, st.op, st.key, got, ok, st.want, st.ok)
		}
	}

	put("replaced", "one", time.Hour)
	put("replaced", "two", time.Hour)
	if got, _ := get("Get", "replaced"); got != "two" {
		t.Errorf("Get after two Puts = %q; want the second", got)
	}
	put("empty", "", time.Hour)
	if got, ok := get("Get", "empty"); got != "" || !ok {
		t.Errorf("Get of an empty value = %q, %t; want \"\", true", got, ok)
	}
	if err := s.Delete(ctx, "replaced"); err != nil {
		t.Fatal(err)
	}
	if _, ok := get("Get", "replaced"); ok {
		t.Error("Get after Delete found a value")
	}
	if err := s.Delete(ctx, "never-there"); err != nil {
		t.Errorf("Delete of a missing key = %v; want nil", err)
	}
	put("short", "v", 100*time.Millisecond)
	waitFor(t, 3*time.Second, "a value is gone after its ttl", func() bool { _, ok := get("Get", "short"); return !ok })

	// Concurrent Takes, released together, round after round: exactly one
	// gets the value each time.
	const rounds, n = 20, 50
	for round := range rounds {
		key := fmt.Sprint("race-", round)
		put(key, "the one", time.Hour)
		var winners atomic.Int32
		race(n, func() {
			v, ok, err := s.Take(ctx, key)
			if err != nil {
				t.Errorf("concurrent Take: %v", err)
			}
			if ok {
				winners.Add(1)
				if string(v) != "the one" {
					t.Errorf("Take = %q; want %q", v, "the one")
				}
			}
		})
		if got := winners.Load(); got != 1 {
			t.Fatalf("round %d: %d concurrent Takes of one value: %d got it; want exactly 1", round, n, got)
		}
	}

	for name, err := range map[string]error{
		"Put empty key": s.Put(ctx, "", []byte("v"), time.Hour),
		"Put no ttl":    s.Put(ctx, "k", []byte("v"), 0),
		"Delete empty":  s.Delete(ctx, ""),
		"Get empty": func() error {
			_, _, err := s.Get(ctx, "")
			return err
		}(),
		"Take empty": func() error {
			_, _, err := s.Take(ctx, "")
			return err
		}(),
	} {
		if err == nil {
			t.Errorf("%s = nil error; want one", name)
		}
	}
}

func testSessions(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	t0 := time.Now().Truncate(time.Second)
	sess := func(sid, sub string, created time.Duration) store.SessionInfo {
		return store.SessionInfo{
			SID: sid, Subject: sub, IdPSID: "idp-" + sid, ACR: "urn:mfa", AMR: []string{"pwd", "otp"},
			Created: t0.Add(created), AuthTime: t0.Add(created), LastSeen: t0, Expires: t0.Add(time.Hour),
		}
	}
	track := func(si store.SessionInfo, ttl time.Duration) {
		t.Helper()
		if err := s.Track(ctx, si, ttl); err != nil {
			t.Fatalf("Track(%+v) = %v", si, err)
		}
	}
	sessions := func(sub string) []store.SessionInfo {
		t.Helper()
		got, err := s.Sessions(ctx, sub)
		if err != nil {
			t.Fatalf("Sessions(%q) = %v", sub, err)
		}
		return got
	}
	a1, a2, b1 := sess("a1", "alice", -time.Hour), sess("a2", "alice", -2*time.Hour), sess("b1", "bob", 0)
	track(a1, time.Hour)
	track(a2, time.Hour)
	track(b1, time.Hour)
	assertSessions(t, "alice", sessions("alice"), a2, a1)
	assertSessions(t, "bob", sessions("bob"), b1)
	assertSessions(t, "carol", sessions("carol"))

	// Tracking again refreshes, and never duplicates.
	a1.LastSeen, a1.ACR, a1.AMR = t0.Add(time.Minute), "urn:phr", []string{"hwk"}
	track(a1, time.Hour)
	assertSessions(t, "alice", sessions("alice"), a2, a1)

	short := sess("a3", "alice", 0)
	track(short, 100*time.Millisecond)
	assertSessions(t, "alice", sessions("alice"), a2, a1, short)
	waitFor(t, 3*time.Second, "an expired session leaves Sessions", func() bool { return len(sessions("alice")) == 2 })
	assertSessions(t, "alice", sessions("alice"), a2, a1)

	for name, err := range map[string]error{
		"Track without SID":     s.Track(ctx, store.SessionInfo{Subject: "alice"}, time.Hour),
		"Track without subject": s.Track(ctx, store.SessionInfo{SID: "x"}, time.Hour),
		"Track without ttl":     s.Track(ctx, sess("x", "alice", 0), 0),
		"Sessions of nobody": func() error {
			_, err := s.Sessions(ctx, "")
			return err
		}(),
	} {
		if err == nil {
			t.Errorf("%s = nil error; want one", name)
		}
	}
}

func assertSessions(t *testing.T, sub string, got []store.SessionInfo, want ...store.SessionInfo) {
	t.Helper()
	same := func(a, b store.SessionInfo) bool {
		return a.SID == b.SID && a.Subject == b.Subject && a.IdPSID == b.IdPSID && a.ACR == b.ACR &&
			slices.Equal(a.AMR, b.AMR) && a.Created.Equal(b.Created) && a.AuthTime.Equal(b.AuthTime) &&
			a.LastSeen.Equal(b.LastSeen) && a.Expires.Equal(b.Expires)
	}
	if !slices.EqualFunc(got, want, same) {
		t.Errorf("Sessions(%q) =\n%s\nwant (oldest first)\n%s", sub, describe(got), describe(want))
	}
}

func describe(ss []store.SessionInfo) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "  %+v\n", s)
	}
	return b.String()
}

func testClosed(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping() = %v; want nil on an open store", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	_, claimErr := s.Claim(ctx, "k", time.Hour)
	_, revErr := s.Revocations(ctx)
	for name, err := range map[string]error{
		"Ping":        s.Ping(ctx),
		"Revoke":      s.Revoke(ctx, store.Revocation{SID: "s", Expires: time.Now().Add(time.Hour)}),
		"Revocations": revErr,
		"Claim":       claimErr,
		"Put":         s.Put(ctx, "k", nil, time.Hour),
		"Watch":       s.Watch(ctx, func([]store.Revocation) {}, func(store.Revocation) {}),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v; want ErrClosed", name, err)
		}
	}
}
