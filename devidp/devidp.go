// Package devidp is stepgate's development OpenID Connect provider. It is
// for development and tests only: it keeps everything in memory, signs with
// a key generated at start-up, and New refuses any issuer that is not a
// loopback URL. Never put it in front of real users.
//
// It is built on github.com/zitadel/oidc/v3/pkg/op, with its own storage
// rather than op's example storage, which drops acr_values, hard-codes acr
// and amr and ships working demo credentials. Only the authorization code
// flow with PKCE (S256) for confidential clients (client_secret_basic or
// client_secret_post) is supported, plus refresh tokens for clients with
// Client.RefreshTokens and, for a person at a terminal, Client.CLI; other
// flows and grants get errors.
//
// Access tokens are RFC 9068 JWTs (header typ at+jwt) carrying the login's
// acr, amr, auth_time and sid, with aud Config.APIAudience, or opaque
// handles (Client.AccessToken). The introspection endpoint (RFC 7662)
// describes both, with RFC 9470's acr, amr and auth_time. A token request
// with a DPoP proof (RFC 9449) gets a token bound to the proof's key
// (cnf.jkt, token_type DPoP). Package devidptest gets tokens from a
// running devidp and makes DPoP proofs.
//
// Each login is decided either by a script (SetScript), which completes
// /authorize at once with the acr, amr and auth_time the test chose, or by a
// login page that checks Config.Users: a password, then a one-time code
// (TOTP) when the request asks for multi-factor acr_values, prompt=login, or
// the browser's SSO session is older than max_age. The SSO session (an
// in-memory store keyed by a random cookie) makes a login that needs nothing
// new silent, as real providers do; RP-initiated logout ends it.
//
// ID tokens carry the SSO session's ID as sid, and when a session ends (at
// the end-session endpoint, by SignOut, or when another user signs in in
// the same browser) devidp sends OpenID Connect Back-Channel Logout tokens
// to the clients that had it; LogoutDeliveries reports them.
//
// With Config.PAR it accepts Pushed Authorization Requests (RFC 9126). Rich
// Authorization Requests' authorization_details (RFC 9396), pushed or in
// the URL, are shown to the user on the login pages (a payment as "Send
// <amount> <currency> to <iban>"), always need the one-time code, and come
// back in the token response.
package devidp

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// ACRMultiFactor is the OpenID PAPE multi-factor policy URI, which stepgate
// uses as the acr value of a multi-factor login.
const ACRMultiFactor = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"

// Config configures a Provider.
type Config struct {
	// Issuer is the provider's URL, e.g. "http://127.0.0.1:PORT". It must be
	// an http(s) URL on 127.0.0.1, ::1 or localhost, with no path, query,
	// fragment or user info: New refuses anything else.
	Issuer  string
	Clients []Client
	// Users are the accounts of the login page; they may be empty when every
	// login is scripted.
	Users []User
	// ShowCodes prints the current one-time code on the code page, so a
	// demo needs no phone. Never set it where the second factor matters.
	ShowCodes bool
	// PAR serves a pushed authorization request endpoint (RFC 9126) at
	// /par and advertises it in discovery. Off by default, so that the
	// authorization URL of a relying party in "auto" mode stays readable.
	PAR bool
	// RequirePAR is PAR, and also advertises
	// require_pushed_authorization_requests and refuses authorization
	// requests that were not pushed.
	RequirePAR bool
	// APIAudience, when set, is the aud of every access token: the
	// resource server the tokens are for (RFC 9068 §3). Unset, aud is the
	// client's ID, as op would have it.
	APIAudience string
	// AccessTokenLifetime is how long access tokens live; 0 is an hour.
	// Tests set it short to see tokens expire.
	AccessTokenLifetime time.Duration
}

// Client is a confidential OAuth client. It authenticates at the token
// endpoint with client_secret_basic or client_secret_post, and redirect_uri
// must equal one of RedirectURIs exactly.
type Client struct {
	ID, Secret   string
	RedirectURIs []string
	// BackchannelLogoutURI, if set, is where devidp POSTs a logout token
	// when an SSO session this client got an ID token from ends (OIDC
	// Back-Channel Logout 1.0). It must be an http(s) URL on a loopback
	// host: devidp connects to nothing else.
	BackchannelLogoutURI string
	// AccessToken is the kind of access token the client gets:
	// AccessTokenJWT (the default, "" too) or AccessTokenOpaque.
	AccessToken string
	// Scopes are the scopes beyond OpenID's (openid, email, profile,
	// offline_access) that the client may ask for, e.g. an API's
	// "accounts:read"; others are dropped from the request.
	Scopes []string
	// RefreshTokens lets the client use the refresh_token grant: a code
	// request with offline_access then gets a refresh token. Each refresh
	// token works once and is replaced (rotation); the tokens it gets say
	// what the original login said (acr, amr, auth_time, sid).
	RefreshTokens bool
	// CLI makes this a client for a person at a terminal, as in a curl
	// walk-through: its redirect URI is devidp's own page at CLICodePath,
	// which shows the code to copy (added to RedirectURIs, which may be
	// empty), and PKCE is optional, so the code is redeemed with the
	// secret alone (curl -u id:secret -d grant_type=authorization_code …).
	// A code_challenge, if sent, must still be S256 and is checked.
	CLI bool
}

// CLICodePath is where devidp shows a CLI client's code (Client.CLI).
const CLICodePath = "/cli/code"

// Kinds of access token (Client.AccessToken).
const (
	// AccessTokenJWT is an RFC 9068 JWT, header typ at+jwt, signed with
	// the provider's key and carrying the login's acr, amr and auth_time.
	AccessTokenJWT = "jwt"
	// AccessTokenOpaque is a random handle that only introspection (RFC
	// 7662) and /userinfo can read.
	AccessTokenOpaque = "opaque"
)

// User is an account of the login page. TOTPSecret is the base32 RFC 6238
// secret (SHA-1, 6 digits, 30 s) of the one-time code page; a user without
// one can only log in with a password, which never yields multi-factor acr.
type User struct {
	Username, Password, Subject, Email, TOTPSecret string
}

// Provider is a running development OpenID provider. Its methods are safe
// for concurrent use.
type Provider struct {
	issuer  string
	op      *op.Provider
	store   *storage
	users   map[string]User
	handler http.Handler

	sso         *ssoStore
	backchannel *backchannel
	secure      bool // https issuer: the SSO cookie gets Secure
	showCodes   bool
	par         bool // serve /par and resolve request_uri
	requirePAR  bool // refuse authorization requests that were not pushed
	pushed      *pushedStore
	jtis        *jtiStore // DPoP proofs seen at the token endpoint

	mu       sync.Mutex
	script   func(Request) Login
	requests []Request
}

// New checks cfg and builds a Provider with a fresh RSA-2048 signing key.
func New(cfg Config) (*Provider, error) {
	u, err := checkIssuer(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	if err := checkClients(cfg.Clients); err != nil {
		return nil, err
	}
	if cfg.AccessTokenLifetime < 0 {
		return nil, fmt.Errorf("devidp: AccessTokenLifetime %v: want 0 (an hour) or more", cfg.AccessTokenLifetime)
	}
	users, err := checkUsers(cfg.Users)
	if err != nil {
		return nil, err
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: generate signing key: %w", err)
	}
	p := &Provider{
		issuer: cfg.Issuer, users: users, sso: newSSOStore(), backchannel: newBackchannel(),
		secure: u.Scheme == "https", showCodes: cfg.ShowCodes,
		par: cfg.PAR || cfg.RequirePAR, requirePAR: cfg.RequirePAR, pushed: newPushedStore(), jtis: newJTIStore(),
	}
	ttl := cfg.AccessTokenLifetime
	if ttl == 0 {
		ttl = tokenTTL
	}
	p.store, err = newStorage(cfg.Issuer, cfg.APIAudience, ttl, cfg.Clients, &signingKey{id: randomID(), key: rsaKey})
	if err != nil {
		return nil, err
	}

	opts := []op.Option{op.WithCrypto(tokenCrypto{p.store})}
	if u.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	p.op, err = op.NewProvider(&op.Config{
		// No CryptoKey: codes and access tokens are random handles or JWTs
		// kept in memory (tokenCrypto), so nothing issued survives a restart.
		CodeMethodS256: true,
		AuthMethodPost: true, // advertised; the token endpoint accepts basic and post alike
		// Advertised (Back-Channel Logout §2.1): logout tokens carry sid,
		// and ID tokens too.
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
		// The grant is served when a client may use it; op checks each
		// client's grant types too.
		GrantTypeRefreshToken: slices.ContainsFunc(cfg.Clients, func(c Client) bool { return c.RefreshTokens }),
		SupportedScopes: []string{
			"openid", "email", "profile", "offline_access",
		},
	}, p.store, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}

	authorizePath := p.op.AuthorizationEndpoint().Relative()
	endSessionPath := p.op.EndSessionEndpoint().Relative()
	tokenPath := p.op.TokenEndpoint().Relative()
	introspectPath := p.op.IntrospectionEndpoint().Relative()
	cli := slices.ContainsFunc(cfg.Clients, func(c Client) bool { return c.CLI })
	p.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch path := r.URL.Path; {
		case path == loginPath:
			p.serveLogin(w, r)
		case path == endSessionPath:
			p.serveEndSession(w, r)
		case path == authorizePath:
			p.serveAuthorize(w, r)
		case path == tokenPath:
			p.serveToken(w, r)
		case path == introspectPath:
			p.serveIntrospect(w, r)
		case path == CLICodePath && cli:
			p.serveCLICode(w, r)
		case path == parPath && p.par:
			p.servePAR(w, r)
		case path == oidc.DiscoveryEndpoint:
			p.serveDiscovery(w, r)
		default:
			p.op.ServeHTTP(w, r)
		}
	})

	slog.Warn("devidp: development OpenID provider started; it is not for production use", "issuer", cfg.Issuer)
	return p, nil
}

// Handler serves discovery (/.well-known/openid-configuration), /authorize,
// /authorize/callback, /oauth/token, /keys, /userinfo, /login, /par (with
// Config.PAR) and op's other endpoints.
func (p *Provider) Handler() http.Handler { return p.handler }

// Issuer returns the issuer URL, exactly as configured.
func (p *Provider) Issuer() string { return p.issuer }

// SetScript makes every later login complete at once with f's answer, with
// no page. nil switches back to the login page.
func (p *Provider) SetScript(f func(Request) Login) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.script = f
}

// Requests returns every authorization request seen, in order, with the
// parameters as sent (for a pushed request, the pushed ones), including
// requests that op then refused. A request_uri that was refused never
// reaches op and is not listed.
func (p *Provider) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

func (p *Provider) currentScript() func(Request) Login {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.script
}

// checkIssuer accepts only loopback http(s) URLs, so a development provider
// with a throwaway key and scripted logins cannot be reached from elsewhere
// or mistaken for a real one.
func checkIssuer(issuer string) (*url.URL, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("devidp: issuer %q is not a URL: %w", issuer, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("devidp: issuer %q: scheme %q, want http or https", issuer, u.Scheme)
	}
	switch h := u.Hostname(); h {
	case "127.0.0.1", "::1", "localhost":
	default:
		return nil, fmt.Errorf("devidp: issuer %q: host %q is not loopback; want 127.0.0.1, ::1 or localhost (devidp is for development only)", issuer, h)
	}
	if u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("devidp: issuer %q: want scheme://host[:port] with no user info, path, query or fragment", issuer)
	}
	return u, nil
}

func checkClients(clients []Client) error {
	var errs []error
	seen := map[string]bool{}
	for i, c := range clients {
		switch {
		case c.ID == "":
			errs = append(errs, fmt.Errorf("devidp: clients[%d]: empty ID", i))
		case seen[c.ID]:
			errs = append(errs, fmt.Errorf("devidp: clients[%d]: duplicate ID %q", i, c.ID))
		}
		seen[c.ID] = true
		if c.Secret == "" {
			errs = append(errs, fmt.Errorf("devidp: clients[%d]: empty Secret; only confidential clients are supported", i))
		}
		if len(c.RedirectURIs) == 0 && !c.CLI {
			errs = append(errs, fmt.Errorf("devidp: clients[%d]: no RedirectURIs", i))
		}
		for _, ru := range c.RedirectURIs {
			u, err := url.Parse(ru)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
				errs = append(errs, fmt.Errorf("devidp: clients[%d]: redirect URI %q: want an absolute http(s) URL without fragment", i, ru))
			}
		}
		switch c.AccessToken {
		case "", AccessTokenJWT, AccessTokenOpaque:
		default:
			errs = append(errs, fmt.Errorf("devidp: clients[%d]: AccessToken %q: want %q or %q", i, c.AccessToken, AccessTokenJWT, AccessTokenOpaque))
		}
		if b := c.BackchannelLogoutURI; b != "" {
			if err := checkBackchannelURI(b); err != nil {
				errs = append(errs, fmt.Errorf("devidp: clients[%d]: BackchannelLogoutURI %q: %w", i, b, err))
			}
		}
	}
	return errors.Join(errs...)
}

func checkUsers(users []User) (map[string]User, error) {
	var errs []error
	byName := make(map[string]User, len(users))
	for i, u := range users {
		if u.Username == "" || u.Password == "" || u.Subject == "" {
			errs = append(errs, fmt.Errorf("devidp: users[%d]: Username, Password and Subject are required", i))
			continue
		}
		if u.TOTPSecret != "" {
			if _, err := totp.GenerateCode(u.TOTPSecret, time.Now()); err != nil {
				errs = append(errs, fmt.Errorf("devidp: users[%d]: TOTPSecret is not base32: %v", i, err))
				continue
			}
		}
		if _, dup := byName[u.Username]; dup {
			errs = append(errs, fmt.Errorf("devidp: users[%d]: duplicate Username %q", i, u.Username))
			continue
		}
		byName[u.Username] = u
	}
	return byName, errors.Join(errs...)
}

// randomID returns 128 random bits in hex, for auth request, token and key IDs.
func randomID() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return hex.EncodeToString(b)
}
