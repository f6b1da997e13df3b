package devidp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sync"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/devidp"
)

const (
	clientID     = "stepgate"
	clientSecret = "s3cret-for-tests"
	// redirectURI is never contacted: the test browser stops when a
	// redirect points at it and reads the Location.
	redirectURI = "http://127.0.0.1:9/oauth2/callback"
)

// env is one devidp served on 127.0.0.1 plus a go-oidc view of it.
type env struct {
	idp    *devidp.Provider
	issuer string
	oidc   *gooidc.Provider
}

// start serves a devidp with cfg (Issuer is set here; Clients default to
// the stepgate client) and discovers it with go-oidc.
func start(t *testing.T, cfg devidp.Config) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Issuer = "http://" + ln.Addr().String()
	if cfg.Clients == nil {
		cfg.Clients = []devidp.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}}}
	}
	p, err := devidp.New(cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("New(%+v) = %v; want no error", cfg, err)
	}
	srv := &http.Server{Handler: p.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	prov, err := gooidc.NewProvider(t.Context(), cfg.Issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery of %s: %v", cfg.Issuer, err)
	}
	return &env{idp: p, issuer: cfg.Issuer, oidc: prov}
}

// flow is one client-side authorization code round trip.
type flow struct {
	conf                   oauth2.Config
	verifier, state, nonce string
}

func (e *env) newFlow(style oauth2.AuthStyle) *flow {
	ep := e.oidc.Endpoint()
	ep.AuthStyle = style
	return &flow{
		conf: oauth2.Config{
			ClientID:     clientID,
			ClientSecret: clientSecret,
			Endpoint:     ep,
			RedirectURL:  redirectURI,
			Scopes:       []string{gooidc.ScopeOpenID, "email"},
		},
		verifier: oauth2.GenerateVerifier(),
		state:    oauth2.GenerateVerifier(),
		nonce:    oauth2.GenerateVerifier(),
	}
}

// authURL is the URL stepgate would send the browser to: PKCE S256, nonce,
// state, plus extra parameters.
func (f *flow) authURL(extra ...oauth2.AuthCodeOption) string {
	opts := append([]oauth2.AuthCodeOption{gooidc.Nonce(f.nonce), oauth2.S256ChallengeOption(f.verifier)}, extra...)
	return f.conf.AuthCodeURL(f.state, opts...)
}

func (f *flow) exchange(ctx context.Context, code string) (*oauth2.Token, error) {
	return f.conf.Exchange(ctx, code, oauth2.VerifierOption(f.verifier))
}

// browser is a cookie-jar client that follows redirects until one points at
// redirectURI (or, with stopAt, at that path on any host).
func browser(t *testing.T, stopAt ...string) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar: jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if isRedirectURI(req.URL) {
				return http.ErrUseLastResponse
			}
			for _, p := range stopAt {
				if req.URL.Path == p {
					return http.ErrUseLastResponse
				}
			}
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
}

func isRedirectURI(u *url.URL) bool {
	c := *u
	c.RawQuery, c.Fragment, c.RawFragment = "", "", ""
	return c.String() == redirectURI
}

// callback drives the browser from authURL to the client's redirect URI and
// returns the query it carries. It fails the test if the chain ends elsewhere.
func callback(t *testing.T, hc *http.Client, authURL string) url.Values {
	t.Helper()
	resp, err := hc.Get(authURL)
	if err != nil {
		t.Fatalf("GET authorize: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	loc, err := resp.Location()
	if err != nil || !isRedirectURI(loc) {
		t.Fatalf("authorize ended with %s %s (body %q); want a redirect to %s", resp.Status, resp.Header.Get("Location"), body, redirectURI)
	}
	return loc.Query()
}

// idClaims are the ID token claims stepgate relies on.
type idClaims struct {
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	Email    string   `json:"email"`
	Nonce    string   `json:"nonce"`
}

// verify checks the token's ID token with go-oidc (signature RS256, iss,
// aud, exp) and returns it with its claims and the set of claim names.
func (e *env) verify(t *testing.T, tok *oauth2.Token) (*gooidc.IDToken, idClaims, map[string]any) {
	t.Helper()
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		t.Fatal("token response has no id_token")
	}
	idt, err := e.oidc.Verifier(&gooidc.Config{ClientID: clientID}).Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("go-oidc Verify: %v", err)
	}
	var c idClaims
	var all map[string]any
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if err := idt.Claims(&all); err != nil {
		t.Fatal(err)
	}
	return idt, c, all
}

// counter is a script wrapper that counts calls and keeps the last Request.
type counter struct {
	mu    sync.Mutex
	n     int
	last  devidp.Request
	login devidp.Login
}

func (c *counter) script(r devidp.Request) devidp.Login {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	c.last = r
	return c.login
}

func (c *counter) calls() (int, devidp.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.last
}

func errorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}
