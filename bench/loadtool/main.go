// Command loadtool is the set of small helpers bench/run.sh starts around a
// stepgate under load: the upstream it protects, a plain reverse proxy to
// compare it with, the development IdP its discovery needs, and a real
// session cookie or access token to send through it.
//
//	loadtool upstream   -addr 127.0.0.1:PORT
//	loadtool plainproxy -addr 127.0.0.1:PORT -upstream URL
//	loadtool idp        -addr 127.0.0.1:PORT -redirect URL [-client-secret S] [-audience AUD]
//	loadtool cookie     -secret S [-lifetime 1h] [-issuer URL] [-subject SUB]
//	loadtool token      -issuer URL
//
// The servers stop on SIGINT or SIGTERM. They exit 1 with a message naming
// the address when it cannot be bound, so the script can say which port is
// busy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/devidp/devidptest"
	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

const usage = `usage:
  loadtool upstream   -addr 127.0.0.1:PORT
  loadtool plainproxy -addr 127.0.0.1:PORT -upstream URL
  loadtool idp        -addr 127.0.0.1:PORT -redirect URL [-client-secret S] [-audience AUD]
  loadtool cookie     -secret S [-lifetime 1h] [-issuer URL] [-client-id ID] [-subject SUB]
  loadtool token      -issuer URL
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("loadtool "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (servers)")
	var err error
	switch cmd {
	case "upstream":
		if fs.Parse(args) != nil {
			return 2
		}
		err = serve(ctx, *addr, upstream(), stdout)
	case "plainproxy":
		up := fs.String("upstream", "", "upstream URL, e.g. http://127.0.0.1:18400")
		if fs.Parse(args) != nil {
			return 2
		}
		var h http.Handler
		if h, err = plainProxy(*up); err == nil {
			err = serve(ctx, *addr, h, stdout)
		}
	case "idp":
		redirect := fs.String("redirect", "", "stepgate's callback URL, e.g. http://127.0.0.1:18403/.stepgate/callback")
		secret := fs.String("client-secret", "stepgate-bench-secret", "secret of client \"stepgate\"")
		audience := fs.String("audience", defaultAudience, "aud of the access tokens it issues")
		if fs.Parse(args) != nil {
			return 2
		}
		var h http.Handler
		if h, err = idp(*addr, *redirect, *secret, *audience); err == nil {
			err = serve(ctx, *addr, h, stdout)
		}
	case "cookie":
		secret := fs.String("secret", "", "session secret, as in routes.yaml (at least 32 bytes)")
		lifetime := fs.Duration("lifetime", time.Hour, "session lifetime, as in routes.yaml")
		issuer := fs.String("issuer", "http://127.0.0.1", "the gateway's oidc.issuer, and the iss of the session's user")
		clientID := fs.String("client-id", "stepgate", "the gateway's oidc.client_id")
		subject := fs.String("subject", "bench-user", "sub of the session's user")
		if fs.Parse(args) != nil {
			return 2
		}
		var c string
		if c, err = cookie(*secret, *lifetime, *issuer, *clientID, *subject, time.Now()); err == nil {
			fmt.Fprintln(stdout, c)
		}
	case "token":
		issuer := fs.String("issuer", "", "the running loadtool idp's URL, e.g. http://127.0.0.1:18402")
		if fs.Parse(args) != nil {
			return 2
		}
		var tok string
		if tok, err = token(ctx, *issuer); err == nil {
			fmt.Fprintln(stdout, tok)
		}
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "loadtool: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtool %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// upstream answers every request with a small 200, reading the body first
// so keep-alive connections stay reusable.
func upstream() http.Handler {
	body := []byte("ok\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(body)
	})
}

// plainProxy is the baseline: what any Go reverse proxy does per request,
// with the same transport limits stepgate uses, and no policy at all.
func plainProxy(rawURL string) (http.Handler, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-upstream %q: want an absolute http(s) URL", rawURL)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
		},
		ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}, nil
}

// The API client: the one the token command logs in as, to get an access
// token for the gateway's api.audience. Its redirect URI is never
// contacted; devidptest stops at the redirect and reads the code from it.
const (
	defaultAudience = "https://api.bench.example"
	apiClientID     = "bench-api"
	apiClientSecret = "stepgate-bench-api-secret"
	apiRedirect     = "http://127.0.0.1/bench-api/callback"
)

// idp is devidp with two clients: "stepgate", whose only redirect URI is
// stepgate's callback, and the API client the token command uses. Access
// tokens name audience. Logins are scripted as multi-factor when the
// request asks for it, so a browser walking the flow by hand, or the token
// command, gets through without a login page.
func idp(addr, redirect, secret, audience string) (http.Handler, error) {
	if redirect == "" {
		return nil, errors.New("-redirect is required (stepgate's public URL + /.stepgate/callback)")
	}
	if audience == "" {
		return nil, errors.New("-audience is required (the gateway's api.audience)")
	}
	p, err := devidp.New(devidp.Config{
		Issuer: "http://" + addr,
		Clients: []devidp.Client{
			{ID: "stepgate", Secret: secret, RedirectURIs: []string{redirect}},
			{ID: apiClientID, Secret: apiClientSecret, RedirectURIs: []string{apiRedirect}},
		},
		APIAudience: audience,
	})
	if err != nil {
		return nil, err
	}
	p.SetScript(func(devidp.Request) devidp.Login {
		return devidp.Login{Subject: "bench-user", Email: "bench-user@example.com", HonourACRValues: true, AMR: []string{"pwd"}}
	})
	return p.Handler(), nil
}

// token runs a code flow at the loadtool idp at issuer as the API client,
// asking for a multi-factor login, and returns the access token.
func token(ctx context.Context, issuer string) (string, error) {
	if issuer == "" {
		return "", errors.New("-issuer is required (the loadtool idp's URL)")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t, err := devidptest.Token(ctx, issuer, devidptest.Request{
		ClientID: apiClientID, ClientSecret: apiClientSecret, RedirectURI: apiRedirect,
		ACRValues: []string{devidp.ACRMultiFactor},
	})
	if err != nil {
		return "", err
	}
	if t.AccessToken == "" {
		return "", fmt.Errorf("the token response from %s has no access_token", issuer)
	}
	return t.AccessToken, nil
}

// cookie mints a session exactly as stepgate's callback would after a
// multi-factor login at now, and returns it as "name=value" for a Cookie
// header. The store is not Secure: the benchmark's public URL is http. The
// cookie keys are bound to issuer and clientID, as the gateway's are.
func cookie(secret string, lifetime time.Duration, issuer, clientID, subject string, now time.Time) (string, error) {
	store, err := session.New(session.Config{Secrets: [][]byte{[]byte(secret)}, Lifetime: lifetime, Issuer: issuer, ClientID: clientID})
	if err != nil {
		return "", err
	}
	rec := httptest.NewRecorder()
	_, err = store.Save(rec, policy.Facts{
		Issuer:     issuer,
		Subject:    subject,
		Email:      subject + "@example.com",
		ACR:        devidp.ACRMultiFactor,
		AMR:        []string{"pwd", "otp", "mfa"},
		AuthTime:   now,
		VerifiedAt: now,
	}, now)
	if err != nil {
		return "", err
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == store.CookieName() {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("session.Save set no cookie named %q", store.CookieName())
}

// serve runs h on addr until ctx ends. The limits match stepgate's own
// servers, so both sides of the comparison accept connections alike.
func serve(ctx context.Context, addr string, h http.Handler, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (port busy?): %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutCtx)
}
