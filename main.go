// Command stepgate is a reverse-proxy gateway that enforces OpenID Connect
// step-up authentication on the routes routes.yaml marks sensitive.
//
//	stepgate serve   [-config routes.yaml]   run the gateway (SIGHUP, or a change of the file, reloads it)
//	stepgate check   [-config routes.yaml]   validate a configuration
//	stepgate explain [-config routes.yaml] METHOD URL
//	stepgate demo                            the gateway, a demo bank and a development provider on 127.0.0.1
//	stepgate version                         the module version and VCS revision
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/stepgate/stepgate/config"
	"github.com/stepgate/stepgate/gateway"
	"github.com/stepgate/stepgate/policy"
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

func serve(ctx context.Context, path string, stderr io.Writer) int {
	// SIGHUP reloads the file. It is caught first: until then it would end
	// the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	for _, w := range config.Warnings(cfg) {
		logger.Warn("config", "warning", w)
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: logger})
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := g.WatchConfig(ctx, path); err != nil {
		logger.Warn("configuration file not watched; reload it with SIGHUP", "err", err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: reloading the configuration", "file", path)
				g.Reload(path) // logs and counts its own outcome
			}
		}
	}()
	if err := g.Run(ctx); err != nil {
		return 1
	}
	return 0
}
