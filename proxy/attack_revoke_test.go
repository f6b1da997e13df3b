package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/session"
	"github.com/stepgate/stepgate/store"
	"github.com/stepgate/stepgate/store/redistest"
)

// Attacks on sessions that end: each test here is a way to keep using a
// session after it was revoked, or to stop a revocation from happening.

// A copy of a cookie taken before a logout (or an operator's revoke) must
// be no session anywhere on the public listener. /.stepgate/session opens
// the cookie without asking the revocation list, so the revoked copy still
// answers 200 with the user's subject, e-mail and satisfied levels: an SPA
// that asks it whether the user is signed in is told yes, and anyone
// holding the copy reads the victim's identity (threat model case 86).
func TestAttackSessionEndpointIgnoresRevocation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		revoke func(fx *flowFixture, st session.State, cookie string)
	}{
		{"after logout", func(fx *flowFixture, _ session.State, cookie string) {
			resp := fx.with(cookie, http.MethodPost, reservedPrefix+"logout", map[string]string{"Origin": "http://gateway.test", "Accept": "application/json"})
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				fx.t.Fatalf("logout: %d; want 200", resp.StatusCode)
			}
		}},
		{"after an admin revoke of the sid", func(fx *flowFixture, st session.State, _ string) {
			if code, _ := adminDo(fx.t, Admin(fx.h), "POST", "/sessions/revoke", adminToken, `{"sid":"`+st.ID+`"}`); code != http.StatusOK {
				fx.t.Fatalf("admin revoke: %d; want 200", code)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFlowFixture(t, oidctest.Options{}, func(c *Config) { c.AdminToken = adminToken })
			st, cookie := fx.saveSession(alicePwd, "")
			tc.revoke(fx, st, cookie)
			if fx.admitted(cookie) {
				t.Fatal("the revoked copy is still admitted on a route; the test setup is wrong")
			}
			resp := fx.with(cookie, http.MethodGet, reservedPrefix+"session", jsonHdr)
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "alice") {
				t.Errorf("GET /.stepgate/session with a revoked cookie: %d %s; want 401 login_required and nothing of alice's", resp.StatusCode, body)
			}
		})
	}
}

// The provider's back-channel logout reaches a replica whose store takes
// the jti claim and then refuses the revocation (a Redis failing over, out
// of memory, or an ACL change between the two commands). The gateway
// answers 503 "send it again", but the jti is already spent: the provider's
// retry of the very same token is a 400 "replayed jti", and the IdP
// session's gateway sessions stay alive on every other replica for their
// whole lifetime. The logout is lost.
func TestAttackBackchannelRetryAfterFailedRevokeIsRefusedAsReplay(t *testing.T) {
	srv := redistest.Start(t)
	shared, err := store.NewRedis(t.Context(), srv.URL(), store.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	fx := &bclFixture{flowFixture: newFlowFixture(t, oidctest.Options{SID: "idp-1"}, func(c *Config) { c.Store = shared })}
	_, fx.alice1 = fx.saveSession(alicePwd, "idp-1")
	other := fx.restart(nil, false) // replica B, same store
	t.Cleanup(other.Close)

	// Redis goes on answering SET NX (the claim) but refuses scripts (the
	// revocation): the subscription stays up, so no replica is stale.
	ctl := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { ctl.Close() })
	acl := func(rules ...any) {
		t.Helper()
		if err := ctl.Do(t.Context(), append([]any{"ACL", "SETUSER", "default"}, rules...)...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	tok := fx.token(nil)
	acl("-eval", "-evalsha", "-eval_ro", "-evalsha_ro")
	resp := fx.post(tok)
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("logout while Redis refuses scripts: %d %s; want 503 asking for a retry", resp.StatusCode, body)
	}
	acl("+@all")

	// The provider sends the same token again, as the 503 asked.
	resp = fx.post(tok)
	body = readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("retry of the same logout token once the store is well: %d %s; want 200", resp.StatusCode, body)
	}
	// B learns of it through Redis: within a second (pub/sub is
	// asynchronous, and the machine may be busy).
	deadline := time.Now().Add(time.Second)
	for {
		r := httptest.NewRequest(http.MethodGet, "/account", nil)
		r.Host = gatewayURL.Host
		r.Header.Set("Cookie", fx.alice1)
		r.Header.Set("Accept", "application/json")
		rec := httptest.NewRecorder()
		other.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("replica B still admits a session of the IdP session the provider logged out, 1s later: %d", rec.Code)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The back-channel endpoint is open to anyone, and its token bucket is one
// for all callers: 40 requests whose body is not even a JWS (they cost a
// form parse, never a key fetch) empty it, and the provider's genuine
// logout token that follows is a 429. An attacker who keeps the bucket
// empty at 20 requests a second makes every back-channel logout fail, so
// sessions the provider ended stay alive at the gateway.
func TestAttackBackchannelFloodStarvesProvider(t *testing.T) {
	fx := newBCLFixture(t)
	for range 60 {
		fx.post("not-a-jws").Body.Close()
	}
	resp := fx.post(fx.token(nil))
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("genuine logout token after an anonymous flood of garbage: %d %s; want 200", resp.StatusCode, body)
	}
	if fx.admitted(fx.alice1) {
		t.Error("the logged-out IdP session's gateway session is still admitted")
	}
}

// A revocation is forgotten at Expires, which the revoking replica sets
// from its own session lifetime; but Load recomputes every session's end
// from the lifetime configured where it is loaded. When an operator
// lengthens session.lifetime (a rolling deploy, or a restart against the
// same Redis), a session that was logged out comes back to life once the
// old lifetime has passed: the revocation is gone, the cookie is not
// expired under the new lifetime.
func TestAttackLongerLifetimeRevivesRevokedSession(t *testing.T) {
	shared := store.NewMemory()
	fx := newFlowFixture(t, oidctest.Options{}, func(c *Config) { c.Store = shared })
	_, cookie := fx.saveSession(alicePwd, "")
	resp := fx.with(cookie, http.MethodPost, reservedPrefix+"logout", map[string]string{"Origin": "http://gateway.test", "Accept": "application/json"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || fx.admitted(cookie) {
		t.Fatalf("logout: %d; want 200 and the copy refused", resp.StatusCode)
	}

	// The same deployment (secrets, issuer, client) with lifetime 1h → 3h,
	// an hour and a minute later.
	longer, err := session.New(session.Config{Secrets: [][]byte{[]byte(strings.Repeat("f", 32))}, Lifetime: 3 * time.Hour,
		Issuer: fx.idp.URL, ClientID: fx.idp.ClientID})
	if err != nil {
		t.Fatal(err)
	}
	fx.clock.Advance(time.Hour + time.Minute)
	b := fx.restart(func(c *Config) { c.Sessions = longer }, false)
	t.Cleanup(b.Close)
	r := httptest.NewRequest(http.MethodGet, "/account", nil)
	r.Host = gatewayURL.Host
	r.Header.Set("Cookie", cookie)
	r.Header.Set("Accept", "application/json")
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, r)
	if rec.Code == http.StatusOK {
		t.Errorf("a logged-out session is admitted again after session.lifetime was lengthened: %d", rec.Code)
	}
}

// A logout token that names only a subject ends the subject's sessions
// issued before the moment it is processed, not before the moment it was
// issued (iat). Its jti is the only thing that stops a second delivery,
// and the jti lives in the shared store, which the follower's own comment
// expects to restart empty (Redis without persistence; a failover to a
// replica the claim had not reached). Whoever captured the token (a proxy
// log, a queue, the provider's outbound) replays it within its five
// minutes after such a restart, and it logs the user out of the session
// they signed in to after the logout. Bounded by iat, the replay would
// end only sessions the first delivery had ended already.
func TestAttackReplayedSubjectLogoutAfterStoreRestartEndsLaterSession(t *testing.T) {
	srv := redistest.Start(t)
	shared, err := store.NewRedis(t.Context(), srv.URL(), store.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	fx := &bclFixture{flowFixture: newFlowFixture(t, oidctest.Options{}, func(c *Config) { c.Store = shared })}
	_, fx.alice1 = fx.saveSession(alicePwd, "")
	fx.clock.Advance(time.Second)
	tok := fx.token(func(tok *oidctest.Token) {
		tok.Claims = func(c map[string]any) { c["sub"] = "alice"; delete(c, "sid") }
	})
	if resp := fx.post(tok); resp.StatusCode != http.StatusOK || fx.admitted(fx.alice1) {
		t.Fatalf("first delivery: %d; want 200 and alice's session ended", resp.StatusCode)
	}

	// Alice signs in again after the logout.
	fx.clock.Advance(2 * time.Second)
	_, fresh := fx.saveSession(alicePwd, "")
	if !fx.admitted(fresh) {
		t.Fatal("the session signed in after the logout is not admitted")
	}

	// The store restarts empty; the follower resyncs (and keeps what it knew).
	srv.Kill()
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for fx.h.follower.Stale(fx.clock.Now()) != 0 || !fx.admitted(fresh) {
		if time.Now().After(deadline) {
			t.Fatal("the gateway never came back after the store restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}

	resp := fx.post(tok)
	body := readBody(t, resp)
	if !fx.admitted(fresh) {
		t.Errorf("a replay of the logout token (%d %s) ended the session signed in after the logout", resp.StatusCode, body)
	}
}
