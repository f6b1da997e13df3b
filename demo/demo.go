// Package demo runs stepgate's quick-start demo in one process, on 127.0.0.1
// only: devidp (the development OpenID provider, password plus a one-time
// code), a tiny bank app, and the gateway in front of it. It is never part
// of the production build (-tags nodemo).
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/stepgate/stepgate/config"
	"github.com/stepgate/stepgate/demoapp"
	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/gateway"
)

// routes is the demo's routes.yaml. @NAME@ placeholders are filled in
// by startDemo; they are not ${} variables because the demo must not read
// the environment of whoever runs it.
const routes = `
listen: "@LISTEN@"
admin_listen: "@ADMIN_LISTEN@"
upstream: "@UPSTREAM@"
public_url: "@PUBLIC_URL@"
insecure_allow_http: true   # the demo runs on 127.0.0.1 without TLS

oidc:
  issuer: "@ISSUER@"
  client_id: stepgate-demo
  client_secret: "@CLIENT_SECRET@"
  scopes: [openid, profile, email]

session:
  secrets: ["@SESSION_SECRET@"]
  lifetime: 12h

# API clients (curl, a mobile app) send access tokens instead of cookies.
api:
  audience: "@API_AUDIENCE@"
  tokens: both        # JWTs checked locally, opaque tokens introspected
  dpop: optional

levels:
  mfa:
    acr_values: ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]
    max_age: 15m
    satisfied_by: &second_factor
      - acr: ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]
      - amr: [mfa]
  mfa_once:
    acr_values: ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]
    max_age: 5m
    once: true                # each transfer gets its own one-time code
    satisfied_by: *second_factor
  mfa_recent:
    acr_values: ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]
    max_age: @ADMIN_MAX_AGE@
    prompt: login
    satisfied_by: *second_factor

routes:
  - name: health
    path: /healthz
    require: public
  - name: admin
    path: /admin/**
    require: mfa_recent
  - name: transfers-send
    path: /api/transfers
    methods: [POST]
    require: mfa_once
    confirm:
      title: "Send money"
      fields:
        - {name: amount, label: "Amount"}
        - {name: currency, label: "Currency"}
        - {name: to, label: "To"}
        - {name: payee_iban, label: "IBAN"}
      ttl: 5m
      authorization_details:
        - type: payment_initiation
          instructedAmount: {amount: "{{amount}}", currency: "{{currency}}"}
          creditorName: "{{to}}"
          creditorAccount: {iban: "{{payee_iban}}"}
  - name: transfers-list
    path: /api/transfers
    methods: [GET]
    require: mfa
  - name: transfers-write
    path: /api/transfers/**
    methods: [POST, PUT, PATCH, DELETE]
    require: mfa

default: authenticated
`

// The demo's API client, for a person at a terminal (README, "Protecting
// an API"). Its secret is fixed and printed: the demo is a toy.
const (
	CLIClientID     = "demo-cli"
	CLIClientSecret = "demo-cli-secret"
	// APIAudience is the aud of the demo's access tokens, and the api
	// audience its gateway requires.
	APIAudience = "https://bank.example/api"
)

// Options are the demo's listen addresses (loopback only; port 0 picks a
// free port) and knobs tests turn.
type Options struct {
	Listen, AdminListen, IDPListen, AppListen string
	AdminMaxAge                               time.Duration
	ShowCodes                                 bool             // print the current one-time code on the code page
	Now                                       func() time.Time // the gateway's clock; nil = time.Now
	Logger                                    *slog.Logger
}

// DefaultOptions are what `stepgate demo` starts with.
func DefaultOptions() Options {
	return Options{
		Listen: "127.0.0.1:8080", AdminListen: "127.0.0.1:9090",
		IDPListen: "127.0.0.1:9091", AppListen: "127.0.0.1:3000",
		AdminMaxAge: 2 * time.Minute, ShowCodes: true,
	}
}

// User is an account of the demo's provider.
type User struct {
	Username, Password, TOTPSecret string
}

// Demo is a running demo: the provider, the bank app and the gateway.
type Demo struct {
	GatewayURL, AdminURL, IDPURL, AppURL string
	Users                                []User
	App                                  *demoapp.App
	IDP                                  *devidp.Provider

	servers []*http.Server
	once    sync.Once
	done    chan struct{} // closed once every server has shut down
	failed  atomic.Bool   // a server stopped on its own
}

// Start starts the three parts in-process and returns once all serve. They
// stop when ctx ends; Done is closed once they have.
func Start(ctx context.Context, opt Options) (*Demo, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.AdminMaxAge < time.Second {
		return nil, fmt.Errorf("demo: admin max age %s: want at least 1s", opt.AdminMaxAge)
	}
	addrs := []*string{&opt.Listen, &opt.AdminListen, &opt.IDPListen, &opt.AppListen}
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, a := range addrs {
		if err := checkLoopback(*a); err != nil {
			closeAll()
			return nil, err
		}
		ln, err := net.Listen("tcp", *a)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("demo: listen on %s: %w (is another demo running? choose other ports with the flags)", *a, err)
		}
		lns = append(lns, ln)
	}
	gwLn, adminLn, idpLn, appLn := lns[0], lns[1], lns[2], lns[3]
	d := &Demo{
		GatewayURL: "http://" + gwLn.Addr().String(),
		AdminURL:   "http://" + adminLn.Addr().String(),
		IDPURL:     "http://" + idpLn.Addr().String(),
		AppURL:     "http://" + appLn.Addr().String(),
		App:        demoapp.New(),
		done:       make(chan struct{}),
	}

	clientSecret, sessionSecret := randomHex(24), randomHex(32)
	var users []devidp.User
	for _, u := range []struct{ name, pwd string }{{"alice", "alice-demo"}, {"bob", "bob-demo"}} {
		key, err := totp.Generate(totp.GenerateOpts{Issuer: "stepgate demo", AccountName: u.name})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("demo: generate one-time code secret: %w", err)
		}
		d.Users = append(d.Users, User{Username: u.name, Password: u.pwd, TOTPSecret: key.Secret()})
		users = append(users, devidp.User{
			Username: u.name, Password: u.pwd, Subject: u.name, Email: u.name + "@bank.example",
			TOTPSecret: key.Secret(),
		})
	}
	idp, err := devidp.New(devidp.Config{
		Issuer: d.IDPURL,
		Clients: []devidp.Client{{ID: "stepgate-demo", Secret: clientSecret,
			RedirectURIs: []string{d.GatewayURL + "/.stepgate/callback"},
			// Signing out at the provider ends the bank session too.
			BackchannelLogoutURI: d.GatewayURL + "/.stepgate/backchannel-logout"},
			// For the README's curl walk-through: the provider shows the
			// code on a page of its own, and curl redeems it with the
			// secret.
			{ID: CLIClientID, Secret: CLIClientSecret, CLI: true}},
		APIAudience: APIAudience,
		Users:       users,
		ShowCodes:   opt.ShowCodes,
		PAR:         true, // the browser only ever sees client_id and request_uri
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	d.IDP = idp

	yaml := strings.NewReplacer(
		"@LISTEN@", gwLn.Addr().String(), "@ADMIN_LISTEN@", adminLn.Addr().String(),
		"@UPSTREAM@", d.AppURL, "@PUBLIC_URL@", d.GatewayURL, "@ISSUER@", d.IDPURL,
		"@CLIENT_SECRET@", clientSecret, "@SESSION_SECRET@", sessionSecret,
		"@ADMIN_MAX_AGE@", opt.AdminMaxAge.String(), "@API_AUDIENCE@", APIAudience,
	).Replace(routes)
	cfg, err := config.Parse("demo routes.yaml", []byte(yaml), nil)
	if err != nil {
		closeAll()
		return nil, err
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: opt.Logger, Now: opt.Now,
		Listener: gwLn, AdminListener: adminLn, DrainTimeout: 5 * time.Second})
	if err != nil {
		closeAll()
		return nil, err
	}

	d.servers = []*http.Server{gateway.NewServer("", idp.Handler()), gateway.NewServer("", d.App.Handler())}
	serveLns := []net.Listener{idpLn, appLn}
	errc := make(chan error, len(d.servers)+1)
	for i, s := range d.servers {
		go func() {
			if err := s.Serve(serveLns[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	// The provider is in this process and already serving, so discovery
	// either works now or never will.
	if err := g.Connect(ctx); err != nil {
		gwLn.Close()
		adminLn.Close()
		d.shutdown()
		return nil, err
	}
	gwCtx, stopGateway := context.WithCancel(context.Background())
	gwDone := make(chan struct{})
	go func() {
		defer close(gwDone)
		if err := g.Run(gwCtx); err != nil {
			errc <- err
		}
	}()

	go func() {
		select {
		case <-ctx.Done():
		case err := <-errc:
			d.failed.Store(true)
			opt.Logger.Error("demo: server failed", "err", err)
		}
		stopGateway()
		<-gwDone
		d.shutdown()
	}()
	return d, nil
}

// Done is closed once every part of the demo has shut down.
func (d *Demo) Done() <-chan struct{} { return d.done }

// Failed reports whether a part stopped on its own rather than because the
// demo's context ended.
func (d *Demo) Failed() bool { return d.failed.Load() }

// shutdown drains every server, then closes d.done. Only the first call
// does anything; later ones wait for it.
func (d *Demo) shutdown() {
	d.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range d.servers {
			if s.Shutdown(ctx) != nil {
				s.Close()
			}
		}
		close(d.done)
	})
}

// checkLoopback refuses any listen address that is not 127.0.0.1, ::1 or
// localhost: the demo's provider logs anyone in with published passwords.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("demo: listen address %q: want host:port", addr)
	}
	switch host {
	case "127.0.0.1", "::1", "localhost":
		return nil
	}
	return fmt.Errorf("demo: listen address %q: want a loopback host (127.0.0.1, ::1 or localhost); the demo is for development only", addr)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return hex.EncodeToString(b)
}
