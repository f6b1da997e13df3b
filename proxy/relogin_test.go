package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/store"
)

// A user logged out everywhere who signs in again at once gets a session
// that works. Sessions carry their issue time in whole seconds and a
// subject revocation voids those issued before it, so a session made later
// in the same second as the revocation used to be born void: the page sent
// the browser back to the provider, which (its own session still alive)
// sent it straight back, in a loop until the second was over.
func TestSignInRightAfterLogoutEverywhere(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   time.Duration // of the revocation, into its second
	}{
		{"early in the second", 100 * time.Millisecond},
		{"late in the second", 900 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFlowFixture(t, oidctest.Options{Subject: "alice"})
			now := fx.clock.Now()
			fx.clock.Advance(time.Second + tc.at - time.Duration(now.Nanosecond()))
			now = fx.clock.Now()
			rev := store.Revocation{Subject: "alice", Before: now, Expires: now.Add(time.Hour)}
			if err := fx.h.revoke(t.Context(), rev, "admin"); err != nil {
				t.Fatal(err)
			}

			resp := fx.complete(fx.get("/account", htmlHdr))
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/account" {
				t.Fatalf("callback: %d to %q; want 302 back to /account", resp.StatusCode, resp.Header.Get("Location"))
			}
			resp = fx.get("/account", htmlHdr)
			if got := readBody(t, resp); resp.StatusCode != http.StatusOK || got != "upstream" {
				t.Fatalf("/account after signing in again %v after the revocation: %d to %q; want the upstream's 200",
					fx.clock.Now().Sub(now).Round(time.Millisecond), resp.StatusCode, resp.Header.Get("Location"))
			}

			// The revocation still voids what it should: a session issued
			// before it, in the same second.
			old, err := fx.sessions.Save(httptest.NewRecorder(), policy.Facts{Issuer: fx.idp.URL, Subject: "alice"}, now.Add(-time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if !fx.h.revoked(&old) {
				t.Error("a session issued 1ms before the revocation is not revoked")
			}
		})
	}
}
