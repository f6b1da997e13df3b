package oidc_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"testing"

	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
)

// TestProviderOutageIsTyped takes a real provider down in each way it
// fails (listener closed, 5xx everywhere, only its keys failing) and checks
// that every call the gateway makes to it says ErrUnavailable, so the proxy
// answers 503 instead of sending browsers to it or blaming the token; and
// that a provider which answers and refuses, or a caller that gave up, is
// not taken for an outage.
func TestProviderOutageIsTyped(t *testing.T) {
	type calls struct{ probe, push, exchange bool } // whether each must be ErrUnavailable
	for _, tc := range []struct {
		name   string
		breaks func(t *testing.T, srv *oidctest.Server) // after the code was issued
		ctx    func(context.Context) context.Context    // the caller's context; nil keeps it
		want   calls
	}{
		{name: "up", breaks: func(*testing.T, *oidctest.Server) {}},
		{name: "listener closed", breaks: func(_ *testing.T, srv *oidctest.Server) { srv.Stop() },
			want: calls{probe: true, push: true, exchange: true}},
		{name: "503 everywhere", breaks: func(_ *testing.T, srv *oidctest.Server) { srv.FailWith(http.StatusServiceUnavailable) },
			want: calls{probe: true, push: true, exchange: true}},
		{name: "502 from the token endpoint", breaks: func(_ *testing.T, srv *oidctest.Server) { srv.FailWith(http.StatusBadGateway, "/token") },
			want: calls{exchange: true}},
		{name: "keys unreachable", breaks: func(_ *testing.T, srv *oidctest.Server) { srv.FailWith(http.StatusServiceUnavailable, "/jwks") },
			want: calls{exchange: true}},
		{name: "provider refuses: 400 at PAR and token endpoints", breaks: func(_ *testing.T, srv *oidctest.Server) {
			srv.FailWith(http.StatusBadRequest, "/par", "/token")
		}},
		{name: "caller gave up", breaks: func(_ *testing.T, srv *oidctest.Server) { srv.Stop() },
			ctx: func(ctx context.Context) context.Context {
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				return ctx
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := oidctest.NewServer(t, oidctest.Options{Now: clock, PAR: true})
			c := newClient(t, srv) // discovery only; keys are fetched at the first exchange
			a := oidc.AuthRequest{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
			authURL, err := c.AuthorizeURL(t.Context(), a)
			if err != nil {
				t.Fatalf("AuthorizeURL while up: %v", err)
			}
			code := srv.Login(t, authURL)

			tc.breaks(t, srv)
			ctx := t.Context()
			if tc.ctx != nil {
				ctx = tc.ctx(ctx)
			}
			probeErr := c.Probe(ctx)
			_, pushErr := c.AuthorizeURL(ctx, oidc.AuthRequest{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()})
			_, exErr := c.Exchange(ctx, code, oidc.Expect{Nonce: a.Nonce, Verifier: a.Verifier})
			for _, call := range []struct {
				name string
				err  error
				want bool
			}{{"Probe", probeErr, tc.want.probe}, {"AuthorizeURL (PAR)", pushErr, tc.want.push}, {"Exchange", exErr, tc.want.exchange}} {
				if got := errors.Is(call.err, oidc.ErrUnavailable); got != call.want {
					t.Errorf("%s: error %v; errors.Is(err, ErrUnavailable) = %v, want %v", call.name, call.err, got, call.want)
				}
			}
			if tc.name == "up" && (probeErr != nil || pushErr != nil || exErr != nil) {
				t.Errorf("provider up: Probe %v, AuthorizeURL %v, Exchange %v; want no errors", probeErr, pushErr, exErr)
			}
		})
	}
}

// TestProbeRecovers checks that Probe follows the provider: down while its
// listener is closed, up again once it serves on the same address.
func TestProbeRecovers(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{Now: clock})
	c := newClient(t, srv)
	srv.Stop()
	if err := c.Probe(t.Context()); !errors.Is(err, oidc.ErrUnavailable) {
		t.Fatalf("Probe of a stopped provider: %v; want ErrUnavailable", err)
	}
	srv.Start(t)
	if err := c.Probe(t.Context()); err != nil {
		t.Fatalf("Probe after Start: %v; want nil", err)
	}
}
