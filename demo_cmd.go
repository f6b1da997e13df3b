//go:build !nodemo

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/stepgate/stepgate/demo"
)

// runDemo is `stepgate demo`: it starts everything, says where to go and
// who to be, and serves until ctx ends.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opt := demo.DefaultOptions()
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
	d, err := demo.Start(ctx, opt)
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
  API: GET %s/api/transfers with an access token of client %s
  (secret %s): see "Protecting an API" in the README.
  Bank app (behind the gateway): %s   Gateway admin: %s/metrics
  Press Ctrl-C to stop.

`, opt.AdminMaxAge, d.GatewayURL, demo.CLIClientID, demo.CLIClientSecret, d.AppURL, d.AdminURL)
	<-d.Done()
	if d.Failed() {
		return 1
	}
	return 0
}
