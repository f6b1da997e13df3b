// Command stepgate is a reverse-proxy gateway that enforces OpenID Connect
// step-up authentication on the routes routes.yaml marks sensitive.
//
//	stepgate serve   [-config routes.yaml]   run the gateway
//	stepgate check   [-config routes.yaml]   validate a configuration
//	stepgate explain [-config routes.yaml] METHOD URL
//	stepgate demo                            the gateway, a demo bank and a development provider on 127.0.0.1
//	stepgate version                         the module version and VCS revision
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/stepgate/stepgate/config"
	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/proxy"
	"github.com/stepgate/stepgate/session"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  stepgate serve   [-config routes.yaml]         run the gateway
  stepgate check   [-config routes.yaml] [-allow-unset]
                                                 validate a configuration
  stepgate explain [-config routes.yaml] [-allow-unset] METHOD URL
                                                 show how a request is matched
  stepgate demo    [-listen 127.0.0.1:8080]      run a demo bank behind the gateway with a
                                                 development identity provider (127.0.0.1 only)
  stepgate version                               print the version and VCS revision
`

// run is main without the process: tests call it with their own context and
// writers. It returns the exit code: 0 ok, 1 runtime failure, 2 bad usage or
// invalid configuration.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "stepgate: no command given\n"+usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	if cmd == "demo" {
		return runDemo(ctx, args, stdout, stderr) // its own flags
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "routes.yaml", "path to routes.yaml")
	var allowUnset *bool
	if cmd == "check" || cmd == "explain" {
		allowUnset = fs.Bool("allow-unset", false, "read unset ${VAR}s as placeholders (lint a file without its secrets)")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch cmd {
	case "serve":
		return serve(ctx, *configPath, stderr)
	case "check":
		return check(*configPath, *allowUnset, stdout, stderr)
	case "explain":
		return explain(*configPath, *allowUnset, fs.Args(), stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "stepgate: unknown command %q\n%s", cmd, usage)
	return 2
}

// version describes this binary from its build information: the module
// version (a tag, or "(devel)" for a source build) and the VCS revision,
// with "+dirty" when the tree had uncommitted changes.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "stepgate (no build information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	s := "stepgate " + v
	var rev, dirty string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		s += " " + rev + dirty
	}
	return s + " " + bi.GoVersion
}

// load reads the file for check and explain; with allowUnset, unset
// variables become placeholders, listed on stderr.
func load(path string, allowUnset bool, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.LoadWith(path, config.Options{AllowUnset: allowUnset})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	for _, u := range cfg.Unset {
		fmt.Fprintf(stderr, "note: %s:%d:%d: ${%s} is unset; read as a placeholder\n", path, u.Line, u.Col, u.Name)
	}
	return cfg, true
}

func check(path string, allowUnset bool, stdout, stderr io.Writer) int {
	cfg, ok := load(path, allowUnset, stderr)
	if !ok {
		return 2
	}
	for _, w := range config.Warnings(cfg) {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintf(stdout, "%s: ok (%d routes, %d levels)\n", path, len(cfg.Routes), len(cfg.Levels))
	return 0
}

func explain(path string, allowUnset bool, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprint(stderr, "usage: stepgate explain [-config routes.yaml] [-allow-unset] METHOD URL\n")
		return 2
	}
	cfg, ok := load(path, allowUnset, stderr)
	if !ok {
		return 2
	}
	rawURL := args[1]
	host, rawPath := "", rawURL
	if cfg.PublicURL != nil {
		host = cfg.PublicURL.Host
	}
	if u, err := url.Parse(rawURL); err == nil && u.Host != "" {
		host, rawPath = u.Host, u.EscapedPath()
		if u.RawPath == "" && u.Path == "" {
			rawPath = "/"
		}
	} else if i := strings.IndexByte(rawURL, '?'); i >= 0 {
		rawPath = rawURL[:i]
	}
	if host == "" {
		fmt.Fprintln(stderr, "stepgate explain: public_url is unset, so give an absolute URL such as https://bank.example.com/path")
		return 2
	}
	req, err := policy.Canonical(args[0], host, rawPath, cfg.PathOptions())
	if err != nil {
		fmt.Fprintf(stdout, "rejected with 400: %v\n", err)
		return 0
	}
	rule := cfg.Table.Match(req)
	fmt.Fprintf(stdout, "canonical: %s %s%s\n", req.Method, req.Host, req.Path)
	if rule.Line > 0 {
		fmt.Fprintf(stdout, "rule:      %s (%s:%d)\n", rule.Name, path, rule.Line)
	} else {
		fmt.Fprintf(stdout, "rule:      %s (no route matched)\n", rule.Name)
	}
	fmt.Fprintf(stdout, "requires:  %s\n", describe(rule))
	return 0
}

func describe(r *policy.Rule) string {
	if r.Access != policy.Leveled || r.Level == nil {
		return r.Access.String()
	}
	l := r.Level
	s := "level " + l.Name
	if len(l.ACRValues) > 0 {
		s += fmt.Sprintf("; asks acr_values %v", l.ACRValues)
	}
	if l.Claims != "" {
		s += "; asks claims " + l.Claims
	}
	if l.MaxAge > 0 {
		s += fmt.Sprintf("; max_age %s", l.MaxAge)
	}
	if l.Prompt != "" {
		s += "; prompt " + l.Prompt
	}
	for i, alt := range l.SatisfiedBy {
		s += fmt.Sprintf("\n           satisfied_by[%d]:", i)
		for _, c := range []struct {
			claim  string
			values []string
		}{{"acr", alt.ACR}, {"amr", alt.AMR}, {"acrs", alt.ACRS}} {
			if len(c.values) > 0 {
				s += fmt.Sprintf(" %s in %q", c.claim, c.values)
			}
		}
	}
	return s
}

// gateway is a running stepgate: the public handler and its two servers.
type gateway struct {
	handler *proxy.Handler
	public  *http.Server
	admin   *http.Server
}

// newGateway wires a validated configuration into servers. now is the
// gateway's clock; tests pass their own. Discovery of the
// IdP happens in the background (see serve), so a slow IdP delays readiness,
// not start-up.
func newGateway(cfg *config.Config, logger *slog.Logger, now func() time.Time) (*gateway, oidc.Config, error) {
	store, err := session.New(session.Config{
		Secrets:  cfg.Session.Secrets,
		Lifetime: cfg.Session.Lifetime,
		Secure:   cfg.PublicURL.Scheme == "https",
		Issuer:   cfg.OIDC.Issuer,
		ClientID: cfg.OIDC.ClientID,
	})
	if err != nil {
		return nil, oidc.Config{}, err
	}
	h, err := proxy.New(proxy.Config{
		Table:           cfg.Table,
		PathOptions:     cfg.PathOptions(),
		Levels:          cfg.Levels,
		Sessions:        store,
		Upstream:        cfg.Upstream,
		PublicURL:       cfg.PublicURL,
		IdentityHeaders: cfg.IdentityHeaders,
		TrustedProxies:  cfg.TrustedProxies,
		Logger:          logger,
		Now:             now,
	})
	if err != nil {
		return nil, oidc.Config{}, err
	}
	oc := oidc.Config{
		Issuer:       cfg.OIDC.Issuer,
		ClientID:     cfg.OIDC.ClientID,
		ClientSecret: cfg.OIDC.ClientSecret,
		RedirectURL:  cfg.PublicURL.String() + "/.stepgate/callback",
		Scopes:       cfg.OIDC.Scopes,
	}
	return &gateway{
		handler: h,
		public:  newServer(cfg.Listen, h),
		admin:   newServer(cfg.AdminListen, proxy.Admin(h)),
	}, oc, nil
}

// newServer sets every server limit deliberately. There is no WriteTimeout
// or ReadTimeout: downloads, uploads and websockets may be long, and the
// upstream transport bounds the wait for its answer. Request bodies get
// per-request read deadlines from the proxy instead (an idle limit when
// forwarded, a short bounded read before the gateway's own answers).
func newServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10, // a cookie bomb gets 431, never a pass-through
	}
}

func serve(ctx context.Context, path string, stderr io.Writer) int {
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	for _, w := range config.Warnings(cfg) {
		logger.Warn("config", "warning", w)
	}
	g, oc, err := newGateway(cfg, logger, time.Now)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	return g.run(ctx, oc, logger)
}

// run serves until ctx ends, then drains in-flight requests.
func (g *gateway) run(ctx context.Context, oc oidc.Config, logger *slog.Logger) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		c, err := oidc.Dial(ctx, oc, func(err error, wait time.Duration) {
			logger.Warn("identity provider discovery failed; retrying", "issuer", oc.Issuer, "err", err, "retry_in", wait.String())
		})
		if err != nil {
			return // ctx ended
		}
		g.handler.SetOIDC(c)
		logger.Info("identity provider ready", "issuer", oc.Issuer)
	}()

	errc := make(chan error, 2)
	for _, s := range []*http.Server{g.public, g.admin} {
		go func() {
			logger.Info("listening", "addr", s.Addr)
			if err := s.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	select {
	case err := <-errc:
		logger.Error("server failed", "err", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("shutting down; draining in-flight requests")
	shutCtx, done := context.WithTimeout(context.Background(), 30*time.Second)
	defer done()
	code := 0
	for _, s := range []*http.Server{g.public, g.admin} {
		if err := s.Shutdown(shutCtx); err != nil {
			logger.Error("shutdown", "err", err)
			code = 1
		}
	}
	return code
}
