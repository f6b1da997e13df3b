package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepgate/stepgate/store"
	"github.com/stepgate/stepgate/store/redistest"
)

// newRedis connects to url and closes the store when the test ends.
func newRedis(t *testing.T, url string, opt store.RedisOptions) *store.Redis {
	t.Helper()
	r, err := store.NewRedis(ctxT(t), url, opt)
	if err != nil {
		t.Fatalf("NewRedis(%q) = %v", url, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

var prefixes atomic.Int64

// TestRedis runs the contract against one real redis-server, each subtest
// in its own key prefix.
func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	testStore(t, func(t *testing.T) store.Store {
		return newRedis(t, srv.URL(), store.RedisOptions{Prefix: fmt.Sprintf("test%d:", prefixes.Add(1))})
	})
}

// TestRedisTLS runs the contract over rediss://.
func TestRedisTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	testStore(t, func(t *testing.T) store.Store {
		return newRedis(t, srv.URL(), store.RedisOptions{TLS: srv.TLSConfig(), Prefix: fmt.Sprintf("tls%d:", prefixes.Add(1))})
	})

	// Without the CA the server's certificate is refused; a plain client
	// on the TLS port gets no answer it can read. Both fail fast.
	for _, tc := range []struct {
		name, url string
		opt       store.RedisOptions
	}{
		{"unknown CA", srv.URL(), store.RedisOptions{}},
		{"plain text to a TLS port", "redis://" + srv.Addr() + "/0", store.RedisOptions{}},
	} {
		start := time.Now()
		r, err := store.NewRedis(ctxT(t), tc.url, tc.opt)
		if err == nil {
			r.Close()
			t.Errorf("%s: NewRedis(%q) = nil error; want the connection refused", tc.name, tc.url)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: NewRedis took %v; want a failure within 3s", tc.name, d)
		}
	}
}

// TestRedisURL checks the URLs session.store accepts and that no error ever
// shows the password.
func TestRedisURL(t *testing.T) {
	const pw = "hunter2-secret"
	srv := redistest.Start(t, "--requirepass", pw)
	host := srv.Addr()

	good := []string{
		"redis://:" + pw + "@" + host + "/0",
		"redis://default:" + pw + "@" + host + "/3",
		"redis://default:" + pw + "@" + host,
		"redis://default:" + pw + "@" + host + "/",
	}
	for _, u := range good {
		r := newRedis(t, u, store.RedisOptions{})
		if err := r.Ping(ctxT(t)); err != nil {
			t.Errorf("Ping via %q = %v", strings.ReplaceAll(u, pw, "PW"), err)
		}
	}

	bad := []struct{ name, url string }{
		{"wrong password", "redis://default:wrong-" + pw + "@" + host + "/0"},
		{"no password", "redis://" + host + "/0"},
		{"wrong user", "redis://nobody:" + pw + "@" + host + "/0"},
		{"nothing listening", "redis://default:" + pw + "@127.0.0.1:1/0"},
		{"other scheme", "http://default:" + pw + "@" + host + "/0"},
		{"unix socket", "unix://default:" + pw + "@/tmp/redis.sock"},
		{"no host", "redis://default:" + pw + "@/0"},
		{"bad port", "redis://default:" + pw + "@127.0.0.1:99999/0"},
		{"database not a number", "redis://default:" + pw + "@" + host + "/zero"},
		{"negative database", "redis://default:" + pw + "@" + host + "/-1"},
		{"two path segments", "redis://default:" + pw + "@" + host + "/0/1"},
		{"query options", "redis://default:" + pw + "@" + host + "/0?skip_verify=true"},
		{"fragment", "redis://default:" + pw + "@" + host + "/0#x"},
		{"unparseable", "redis://default:" + pw + " x@" + host + "/0"},
		{"control character", "redis://default:" + pw + "\n@" + host + "/0"},
		{"empty", ""},
	}
	for _, tc := range bad {
		start := time.Now()
		r, err := store.NewRedis(ctxT(t), tc.url, store.RedisOptions{})
		if err == nil {
			r.Close()
			t.Errorf("%s: NewRedis = nil error; want one", tc.name)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: NewRedis error shows the password: %v", tc.name, err)
		}
		if !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("%s: NewRedis error = %q; want it to start with \"store: \"", tc.name, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: NewRedis took %v; want a failure within 3s", tc.name, d)
		}
	}

	// A follower on a password-protected Redis that goes away logs the
	// loss; testLogger fails the test if a line shows the password.
	f := followSynced(t, newRedis(t, good[0], store.RedisOptions{}))
	srv.Kill()
	waitFor(t, 3*time.Second, "the follower notices Redis is gone", func() bool { return f.Stale(time.Now()) > 0 })
	time.Sleep(300 * time.Millisecond) // a few failed reconnections, logged
}

// TestRedisPrefix checks that deployments sharing one Redis under
// different prefixes share nothing, and where the default prefix puts keys.
func TestRedisPrefix(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxT(t)
	a := newRedis(t, srv.URL(), store.RedisOptions{})
	b := newRedis(t, srv.URL(), store.RedisOptions{Prefix: "staging:"})

	for name, s := range map[string]store.Store{"default": a, "staging": b} {
		if first, err := s.Claim(ctx, "jti", time.Hour); !first || err != nil {
			t.Errorf("%s: Claim(jti) = %t, %v; want first: prefixes keep claims apart", name, first, err)
		}
	}
	bFollower := followSynced(t, b)
	if err := a.Revoke(ctx, store.Revocation{SID: "prod-sid", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "held", []byte("prod"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := a.Track(ctx, store.SessionInfo{SID: "prod-sid", Subject: "alice"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Get(ctx, "held"); ok {
		t.Error("staging sees production's held value")
	}
	if list, _ := b.Revocations(ctx); len(list) != 0 {
		t.Errorf("staging's Revocations = %v; want none of production's", list)
	}
	// Redis delivers messages to a subscriber in publish order: once
	// staging's own later revocation has arrived, production's would have.
	if err := b.Revoke(ctx, store.Revocation{SID: "staging-sid", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "staging's follower sees staging's revocation", func() bool {
		return bFollower.Revoked("staging-sid", "", "", time.Now())
	})
	if bFollower.Revoked("prod-sid", "", "", time.Now()) {
		t.Error("staging's follower sees production's revocation")
	}

	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "stepgate:") && !strings.HasPrefix(k, "staging:") {
			t.Errorf("key %q outside both prefixes", k)
		}
	}
	if len(keys) < 9 {
		t.Errorf("keys = %q; want production's claim, value, revocations (2) and session (2), and staging's claim and revocations (2)", keys)
	}
	// Nothing stays in Redis forever: every key has a TTL.
	for _, k := range keys {
		if ttl, err := raw.PTTL(ctx, k).Result(); err != nil || ttl <= 0 {
			t.Errorf("PTTL(%q) = %v, %v; want a TTL on every key", k, ttl, err)
		}
	}
}

// TestRedisReplicas: two stores on one server are two replicas. A
// revocation on A reaches B's follower within a second.
func TestRedisReplicas(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxT(t)
	a := newRedis(t, srv.URL(), store.RedisOptions{})
	b := newRedis(t, srv.URL(), store.RedisOptions{})
	fb := followSynced(t, b)
	t0 := time.Now()
	for _, tc := range []struct {
		r                    store.Revocation
		sid, idpSID, subject string
	}{
		{store.Revocation{SID: "sid-a"}, "sid-a", "", ""},
		{store.Revocation{IdPSID: "idp-a"}, "x", "idp-a", ""},
		{store.Revocation{Subject: "alice", Before: t0}, "y", "", "alice"},
	} {
		tc.r.Expires = t0.Add(time.Hour)
		start := time.Now()
		if err := a.Revoke(ctx, tc.r); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Second, fmt.Sprintf("B's follower sees A's %+v", tc.r), func() bool {
			return fb.Revoked(tc.sid, tc.idpSID, tc.subject, t0.Add(-time.Second))
		})
		t.Logf("%+v reached B in %v", tc.r, time.Since(start))
	}
}

// TestRedisDown takes Redis away from two replicas and gives it back,
// empty, as a restart without persistence does.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxT(t)
	a := newRedis(t, srv.URL(), store.RedisOptions{})
	b := newRedis(t, srv.URL(), store.RedisOptions{})
	fb := followSynced(t, b)
	exp := time.Now().Add(time.Hour)
	if err := a.Revoke(ctx, store.Revocation{SID: "before-kill", Expires: exp}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "B sees before-kill", func() bool { return fb.Revoked("before-kill", "", "", time.Now()) })

	srv.Kill()
	waitFor(t, 3*time.Second, "B's follower reports a stale view", func() bool { return fb.Stale(time.Now()) > 0 })
	s1 := fb.Stale(time.Now())
	time.Sleep(50 * time.Millisecond)
	if s2 := fb.Stale(time.Now()); s2 <= s1 {
		t.Errorf("Stale = %v, then %v; want it growing while Redis is down", s1, s2)
	}

	for name, op := range map[string]func() error{
		"Revoke": func() error { return a.Revoke(ctx, store.Revocation{SID: "while-down", Expires: exp}) },
		"Claim":  func() error { _, err := a.Claim(ctx, "k", time.Hour); return err },
		"Ping":   func() error { return a.Ping(ctx) },
	} {
		start := time.Now()
		err := op()
		if err == nil {
			t.Errorf("%s with Redis down = nil; want an error", name)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s with Redis down took %v (%v); want it to fail within 2s", name, d, err)
		}
	}
	// What B knew is still known while the store is away.
	if !fb.Revoked("before-kill", "", "", time.Now()) {
		t.Error("B forgot before-kill while Redis was down")
	}

	srv.Restart()
	// Written while B is still disconnected (its backoff has not run out):
	// only a resync brings it to B.
	if err := a.Revoke(ctx, store.Revocation{SID: "after-restart", Expires: exp}); err != nil {
		// A's first command after the restart may meet a connection the
		// pool has not yet seen die; a second must succeed.
		if err := a.Revoke(ctx, store.Revocation{SID: "after-restart", Expires: exp}); err != nil {
			t.Fatalf("Revoke after restart: %v", err)
		}
	}
	waitFor(t, 5*time.Second, "B resyncs: after-restart in its view and Stale back to 0", func() bool {
		return fb.Revoked("after-restart", "", "", time.Now()) && fb.Stale(time.Now()) == 0
	})
	// The restarted Redis is empty; B still refuses what it knew before.
	if !fb.Revoked("before-kill", "", "", time.Now()) {
		t.Error("B forgot before-kill when it resynced with an emptied Redis")
	}
}

// TestRedisPartition pauses redis-server: connections stay open and nothing
// answers, as when the network drops packets. The follower must notice
// within about two seconds and writes must time out rather than hang.
func TestRedisPartition(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxT(t)
	a := newRedis(t, srv.URL(), store.RedisOptions{})
	b := newRedis(t, srv.URL(), store.RedisOptions{})
	fb := followSynced(t, b)
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	srv.Pause()
	paused := time.Now()
	start := time.Now()
	err := a.Revoke(ctx, store.Revocation{SID: "while-paused", Expires: time.Now().Add(time.Hour)})
	if err == nil {
		t.Error("Revoke with Redis paused = nil; want a timeout")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Revoke with Redis paused took %v; want it to give up within 2s", d)
	}
	waitFor(t, 3*time.Second, "B's follower notices the silent connection", func() bool { return fb.Stale(time.Now()) > 0 })
	t.Logf("B noticed the partition after %v", time.Since(paused))

	srv.Resume()
	if err := a.Revoke(ctx, store.Revocation{SID: "after-resume", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Revoke after resume: %v", err)
	}
	waitFor(t, 5*time.Second, "B back in sync after the partition", func() bool {
		return fb.Revoked("after-resume", "", "", time.Now()) && fb.Stale(time.Now()) == 0
	})
}

// TestRedisWatchResync checks, without a follower's timing in the way, that
// a new Watch after a lost one starts with everything written in between.
func TestRedisWatchResync(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxT(t)
	a := newRedis(t, srv.URL(), store.RedisOptions{})
	b := newRedis(t, srv.URL(), store.RedisOptions{})
	synced := make(chan []store.Revocation, 1)
	done := make(chan error, 1)
	go func() {
		done <- b.Watch(ctx, func(l []store.Revocation) { synced <- l }, func(store.Revocation) {})
	}()
	select {
	case <-synced:
	case <-time.After(3 * time.Second):
		t.Fatal("no onSync within 3s")
	}
	srv.Kill()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("Watch after Redis died = %v; want an error saying the connection was lost", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Watch did not return within 3s of Redis dying")
	}

	srv.Restart()
	missed := store.Revocation{SID: "missed", Expires: time.Now().Add(time.Hour).Truncate(time.Second)}
	waitFor(t, 3*time.Second, "A can write again", func() bool { return a.Revoke(ctx, missed) == nil })
	go func() {
		done <- b.Watch(ctx, func(l []store.Revocation) { synced <- l }, func(store.Revocation) {})
	}()
	select {
	case l := <-synced:
		assertRevocations(t, l, missed)
	case err := <-done:
		t.Fatalf("Watch = %v; want a resync", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no resync within 5s")
	}
}
