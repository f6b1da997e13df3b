//go:build !nodemo

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
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
	"github.com/stepgate/stepgate/oidc"
)

// demoRoutes is the demo's routes.yaml. @NAME@ placeholders are filled in
// by startDemo; they are not ${} variables because the demo must not read
// the environment of whoever runs it.
const demoRoutes = `
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

levels:
  mfa:
    acr_values: ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]
    max_age: 15m
    satisfied_by: &second_factor
      - acr: ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]
      - amr: [mfa]
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
  - name: transfers-write
    path: /api/transfers/**
    methods: [POST, PUT, PATCH, DELETE]
    require: mfa

default: authenticated
`

// demoOptions are the demo's listen addresses (loopback only; port 0 picks
// a free port) and knobs tests turn.
type demoOptions struct {
	Listen, AdminListen, IDPListen, AppListen string
	AdminMaxAge                               time.Duration
	ShowCodes                                 bool             // print the current one-time code on the code page
	Now                                       func() time.Time // the gateway's clock; nil = time.Now
	Logger                                    *slog.Logger
}

func defaultDemoOptions() demoOptions {
	return demoOptions{
		Listen: "127.0.0.1:8080", AdminListen: "127.0.0.1:9090",
		IDPListen: "127.0.0.1:9091", AppListen: "127.0.0.1:3000",
		AdminMaxAge: 2 * time.Minute, ShowCodes: true,
	}
}

// demoUser is an account of the demo's provider.
type demoUser struct {
	Username, Password, TOTPSecret string
}

// demo is a running demo: the provider, the bank app and the gateway.
type demo struct {
	GatewayURL, AdminURL, IDPURL, AppURL string
	Users                                []demoUser
	App                                  *demoapp.App
	IDP                                  *devidp.Provider

	servers []*http.Server
	once    sync.Once
	done    chan struct{} // closed once every server has shut down
	failed  atomic.Bool   // a server stopped on its own
}

// startDemo starts the three parts in-process and returns once all serve.
// The caller ends them with stop.
func startDemo(ctx context.Context, opt demoOptions) (*demo, error) {
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
	d := &demo{
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
		d.Users = append(d.Users, demoUser{Username: u.name, Password: u.pwd, TOTPSecret: key.Secret()})
		users = append(users, devidp.User{
			Username: u.name, Password: u.pwd, Subject: u.name, Email: u.name + "@bank.example",
			TOTPSecret: key.Secret(),
		})
	}
	idp, err := devidp.New(devidp.Config{
		Issuer:    d.IDPURL,
		Clients:   []devidp.Client{{ID: "stepgate-demo", Secret: clientSecret, RedirectURIs: []string{d.GatewayURL + "/.stepgate/callback"}}},
		Users:     users,
		ShowCodes: opt.ShowCodes,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	d.IDP = idp

	routes := strings.NewReplacer(
		"@LISTEN@", gwLn.Addr().String(), "@ADMIN_LISTEN@", adminLn.Addr().String(),
		"@UPSTREAM@", d.AppURL, "@PUBLIC_URL@", d.GatewayURL, "@ISSUER@", d.IDPURL,
		"@CLIENT_SECRET@", clientSecret, "@SESSION_SECRET@", sessionSecret,
		"@ADMIN_MAX_AGE@", opt.AdminMaxAge.String(),
	).Replace(demoRoutes)
	cfg, err := config.Parse("demo routes.yaml", []byte(routes), nil)
	if err != nil {
		closeAll()
		return nil, err
	}
	g, oc, err := newGateway(cfg, opt.Logger, opt.Now)
	if err != nil {
		closeAll()
		return nil, err
	}

	idpSrv := newServer(idpLn.Addr().String(), idp.Handler())
	appSrv := newServer(appLn.Addr().String(), d.App.Handler())
	d.servers = []*http.Server{g.public, g.admin, idpSrv, appSrv}
	serveLns := []net.Listener{gwLn, adminLn, idpLn, appLn}
	errc := make(chan error, len(d.servers))
	for i, s := range d.servers {
		go func() {
			if err := s.Serve(serveLns[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	// The provider is in this process and already serving, so discovery
	// either works now or never will.
	c, err := oidc.New(ctx, oc)
	if err != nil {
		d.shutdown()
		return nil, err
	}
	g.handler.SetOIDC(c)

	go func() {
		select {
		case <-ctx.Done():
		case err := <-errc:
			d.failed.Store(true)
			opt.Logger.Error("demo: server failed", "err", err)
		}
		d.shutdown()
	}()
	return d, nil
}

// shutdown drains every server, then closes d.done. Only the first call
// does anything; later ones wait for it.
func (d *demo) shutdown() {
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

// runDemo is `stepgate demo`: it starts everything, says where to go and
// who to be, and serves until ctx ends.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opt := defaultDemoOptions()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opt.Listen, "listen", opt.Listen, "gateway address (browsers connect here)")
	fs.StringVar(&opt.AdminListen, "admin-listen", opt.AdminListen, "gateway admin address (/healthz /readyz /metrics)")
	fs.StringVar(&opt.IDPListen, "idp-listen", opt.IDPListen, "development OpenID provider address")
	fs.StringVar(&opt.AppListen, "app-listen", opt.AppListen, "demo bank app address")
	fs.DurationVar(&opt.AdminMaxAge, "admin-max-age", opt.AdminMaxAge, "max_age of the admin page's level (mfa_recent)")
	fs.BoolVar(&opt.ShowCodes, "show-codes", opt.ShowCodes, "print the current one-time code on the code page (no phone needed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stepgate demo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	opt.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	d, err := startDemo(ctx, opt)
	if err != nil {
		fmt.Fprintln(stderr, "stepgate demo:", err)
		return 1
	}
	fmt.Fprintf(stdout, `
  stepgate demo: everything runs on 127.0.0.1 and is for development only.

  WARNING: the identity provider at %s is devidp, a DEVELOPMENT provider
  with published passwords and a throwaway key. Never use it for real users.

  Open  %s/  in a browser.

  Demo users (password; the code page shows the current one-time code):
`, d.IDPURL, d.GatewayURL)
	for _, u := range d.Users {
		fmt.Fprintf(stdout, "    %-6s %s\n", u.Username, u.Password)
	}
	fmt.Fprintf(stdout, `
  Try: the account page (password only), then Transfers -> Send (asks for the
  one-time code), then Admin (asks for password and code again; max_age %s).
  Bank app (behind the gateway): %s   Gateway admin: %s/metrics
  Press Ctrl-C to stop.

`, opt.AdminMaxAge, d.AppURL, d.AdminURL)
	<-d.done
	if d.failed.Load() {
		return 1
	}
	return 0
}
