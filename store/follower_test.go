package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepgate/stepgate/store"
	"github.com/stepgate/stepgate/store/redistest"
)

// TestFollowerLocalRevoke: a revocation made through the follower is in
// its view when Revoke returns, even when the store cannot take it.
func TestFollowerLocalRevoke(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxT(t)
	r := newRedis(t, srv.URL(), store.RedisOptions{})
	f := followSynced(t, r)
	exp := time.Now().Add(time.Hour)

	if err := f.Revoke(ctx, store.Revocation{SID: "up", Expires: exp}); err != nil {
		t.Fatalf("Revoke = %v", err)
	}
	if !f.Revoked("up", "", "", time.Now()) {
		t.Error("Revoked(up) = false right after Revoke returned; want the local view updated at once")
	}

	srv.Kill()
	if err := f.Revoke(ctx, store.Revocation{SID: "down", Expires: exp}); err == nil {
		t.Error("Revoke with Redis down = nil; want the store's error")
	}
	if !f.Revoked("down", "", "", time.Now()) {
		t.Error("Revoked(down) = false after a Revoke the store refused; want this replica to refuse the session anyway")
	}
	if err := f.Revoke(ctx, store.Revocation{SID: "bad", Subject: "x", Expires: exp}); err == nil {
		t.Error("Revoke of an invalid revocation = nil; want an error")
	}
	if f.Revoked("bad", "", "", time.Now()) || f.Revoked("", "", "x", time.Time{}) {
		t.Error("an invalid revocation reached the view")
	}
}

// TestFollowerNeverSynced: a view that was never complete is as stale as
// can be, so the gateway refuses session routes until the first sync.
func TestFollowerNeverSynced(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL(), store.RedisOptions{})
	srv.Kill()
	f := follow(t, r, time.Now)
	time.Sleep(200 * time.Millisecond) // a few failed attempts
	if got := f.Stale(time.Now()); got < 1000*time.Hour {
		t.Errorf("Stale before any sync = %v; want it beyond any grace", got)
	}
	srv.Restart()
	waitFor(t, 5*time.Second, "first sync once Redis is up", func() bool { return f.Stale(time.Now()) == 0 })
}

// TestFollowerStoreClosed: a closed store ends the follower, whose view
// then ages.
func TestFollowerStoreClosed(t *testing.T) {
	m := store.NewMemory()
	f := followSynced(t, m)
	m.Close()
	select {
	case <-f.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("the follower kept running for 3s after its store was closed")
	}
	now := time.Now()
	if a, b := f.Stale(now), f.Stale(now.Add(time.Minute)); a < 0 || b < time.Minute {
		t.Errorf("Stale after Close = %v, then a minute later %v; want it to count from the close", a, b)
	}
}

// TestFollowerPrunes: entries past their Expires (by the follower's clock)
// leave the view, so it does not grow without bound.
func TestFollowerPrunes(t *testing.T) {
	m := store.NewMemory()
	t.Cleanup(func() { m.Close() })
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	ctx, cancel := context.WithCancel(context.Background())
	f := store.FollowPruning(ctx, m, testLogger(t), clock, 10*time.Millisecond)
	t.Cleanup(func() { cancel(); <-f.Done() })
	waitFor(t, 3*time.Second, "first sync", func() bool { return f.Stale(clock()) == 0 })

	exp := time.Now().Add(time.Minute)
	for i := range 100 {
		if err := m.Revoke(ctx, store.Revocation{SID: fmt.Sprint("sid-", i), Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Second, "100 revocations in the view", func() bool { return store.ViewSize(f) == 100 })
	offset.Store(int64(2 * time.Minute))
	waitFor(t, time.Second, "expired revocations swept from the view", func() bool { return store.ViewSize(f) == 0 })
	if f.Revoked("sid-1", "", "", time.Now()) {
		t.Error("Revoked(sid-1) = true after its revocation expired and was swept")
	}

	// A revocation that has expired by the follower's clock never enters.
	if err := f.Revoke(ctx, store.Revocation{SID: "late", Expires: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if n := store.ViewSize(f); n != 0 {
		t.Errorf("view holds %d revocations after adding one that expired by the follower's clock; want 0", n)
	}
}

// TestFollowerConcurrent reads the view while revocations arrive, for the
// race detector.
func TestFollowerConcurrent(t *testing.T) {
	m := store.NewMemory()
	t.Cleanup(func() { m.Close() })
	f := followSynced(t, m)
	ctx := ctxT(t)
	exp := time.Now().Add(time.Hour)
	var stop atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop.Store(true)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				f.Revoked("sid-7", "idp-7", "user-7", time.Now())
			}
		})
	}
	for i := range 200 {
		var err error
		switch i % 3 {
		case 0:
			err = f.Revoke(ctx, store.Revocation{SID: fmt.Sprint("sid-", i), Expires: exp})
		case 1:
			err = m.Revoke(ctx, store.Revocation{IdPSID: fmt.Sprint("idp-", i), Expires: exp})
		default:
			err = m.Revoke(ctx, store.Revocation{Subject: fmt.Sprint("user-", i), Before: time.Now(), Expires: exp})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Second, "all 200 revocations in the view", func() bool { return store.ViewSize(f) == 200 })
}

// TestMemoryWatchFallsBehind: a watcher that cannot keep up loses its
// subscription (and so resyncs) rather than blocking revocations or
// missing one.
func TestMemoryWatchFallsBehind(t *testing.T) {
	m := store.NewMemory()
	t.Cleanup(func() { m.Close() })
	ctx := ctxT(t)
	release := make(chan struct{})
	synced := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- m.Watch(ctx, func([]store.Revocation) { synced <- struct{}{} }, func(store.Revocation) { <-release })
	}()
	select {
	case <-synced:
	case err := <-done:
		t.Fatalf("Watch = %v before its first sync", err)
	case <-time.After(3 * time.Second):
		t.Fatal("no onSync within 3s")
	}
	exp := time.Now().Add(time.Hour)
	n := store.WatchBuffer + 10
	for i := range n {
		start := time.Now()
		if err := m.Revoke(ctx, store.Revocation{SID: fmt.Sprint("sid-", i), Expires: exp}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("Revoke %d blocked for %v behind a slow watcher", i, d)
		}
	}
	close(release)
	select {
	case err := <-done:
		if err == nil || ctx.Err() != nil {
			t.Fatalf("Watch = %v; want an error saying it fell behind", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a watcher that fell behind kept watching")
	}
	list, err := m.Revocations(ctx)
	if err != nil || len(list) != n {
		t.Errorf("Revocations = %d entries, %v; want all %d for the resync", len(list), err, n)
	}
}

// revokedView is a follower holding n revocations of each kind, loaded by
// its first sync.
func revokedView(tb testing.TB, n int) *store.Follower {
	m := store.NewMemory()
	tb.Cleanup(func() { m.Close() })
	exp := time.Now().Add(time.Hour)
	for i := range n {
		for _, r := range []store.Revocation{
			{SID: fmt.Sprint("sid-", i), Expires: exp},
			{IdPSID: fmt.Sprint("idp-", i), Expires: exp},
			{Subject: fmt.Sprint("user-", i), Before: time.Now(), Expires: exp},
		} {
			if err := m.Revoke(context.Background(), r); err != nil {
				tb.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := store.Follow(ctx, m, nil, time.Now)
	tb.Cleanup(func() { cancel(); <-f.Done() })
	deadline := time.Now().Add(5 * time.Second)
	for store.ViewSize(f) != 3*n {
		if time.Now().After(deadline) {
			tb.Fatalf("the follower holds %d revocations after 5s; want %d", store.ViewSize(f), 3*n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return f
}

// TestRevokedAllocs keeps the hot path free of allocations.
func TestRevokedAllocs(t *testing.T) {
	f := revokedView(t, 1000)
	issued := time.Now().Add(-time.Hour)
	allocs := testing.AllocsPerRun(1000, func() {
		f.Revoked("sid-5", "", "", issued)
		f.Revoked("live-sid", "idp-5", "user-5", issued)
		f.Revoked("live-sid", "live-idp", "live-user", issued)
	})
	if allocs != 0 {
		t.Errorf("Revoked allocates %v times per call set; want 0", allocs)
	}
	if !f.Revoked("sid-5", "", "", issued) || f.Revoked("live-sid", "live-idp", "live-user", issued) {
		t.Error("the view does not answer as revoked")
	}
}

func BenchmarkRevoked(b *testing.B) {
	f := revokedView(b, 10000)
	issued := time.Now().Add(-time.Hour)
	for _, bc := range []struct {
		name                 string
		sid, idpSID, subject string
		want                 bool
	}{
		{"live", "live-sid", "live-idp", "live-user", false},
		{"sid", "sid-5000", "live-idp", "live-user", true},
		{"subject", "live-sid", "live-idp", "user-5000", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if f.Revoked(bc.sid, bc.idpSID, bc.subject, issued) != bc.want {
						b.Fatalf("Revoked(%q, %q, %q) = %t", bc.sid, bc.idpSID, bc.subject, !bc.want)
					}
				}
			})
		})
	}
}
