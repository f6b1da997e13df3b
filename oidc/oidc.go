// Package oidc is stepgate's relying party: it discovers the OpenID provider,
// builds authorization requests (code flow, PKCE S256, nonce, and the step-up
// parameters of a policy.Level) and turns an authorization code into verified
// policy.Facts.
//
// go-oidc verifies the ID token's signature, iss, aud and exp. Everything it
// leaves to the caller (OIDC Core §3.1.3.7: nonce, azp, iat, auth_time) is
// checked in Exchange, and so is what matters for step-up: the returned claims,
// never the requested ones, must satisfy the level, and a step-up must come
// back as the same iss+sub as the session it started from.
//
// AuthorizeURL pushes the request to the provider first when it offers
// Pushed Authorization Requests (RFC 9126), so the browser only ever sees
// client_id and request_uri; a request may carry Rich Authorization Request
// authorization_details (RFC 9396), which Exchange then requires back,
// unchanged, in the token response.
//
// VerifyLogoutToken checks OpenID Connect Back-Channel Logout tokens against
// the same keys and algorithms as ID tokens, and so does VerifyAccessToken
// for the JWT access tokens API clients present (RFC 9068); Introspect asks
// the provider about the tokens it cannot read (RFC 7662). Both return what
// a level is judged on (RFC 9470 §6).
package oidc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/policy"
)

// Config describes the OpenID provider and stepgate's registration with it.
type Config struct {
	Issuer, ClientID, ClientSecret string
	RedirectURL                    string   // public_url + "/.stepgate/callback"
	Scopes                         []string // "openid" first
	HTTPClient                     *http.Client
	Now                            func() time.Time // optional clock (tests)
	// PAR says when authorization requests are pushed (RFC 9126): PARAuto
	// ("" means it too), PARRequired or PAROff.
	PAR string
	// IntrospectionURL is the token introspection endpoint (RFC 7662) for
	// Introspect; "" means discovery's introspection_endpoint.
	IntrospectionURL string
}

// The values of Config.PAR.
const (
	// PARAuto pushes every request when discovery advertises a
	// pushed_authorization_request_endpoint.
	PARAuto = "auto"
	// PARRequired pushes every request, and New fails if the provider
	// advertises no endpoint.
	PARRequired = "required"
	// PAROff never pushes; New fails if the provider sets
	// require_pushed_authorization_requests.
	PAROff = "off"
)

// defaultHTTPTimeout bounds discovery, JWKS and token calls when the caller
// gives no client: go-oidc fetches keys on a background context, so without
// a timeout one hung JWKS request would stall every later verification.
const defaultHTTPTimeout = 10 * time.Second

// Client talks to one OpenID provider. It is safe for concurrent use.
type Client struct {
	oauth2     oauth2.Config
	issuer     string
	verifier   *gooidc.IDTokenVerifier
	keys       gooidc.KeySet             // the issuer's JWKS, shared by ID and logout tokens
	algs       []jose.SignatureAlgorithm // the verifier's allow-list, for logout tokens
	httpClient *http.Client
	now        func() time.Time
	endSession *url.URL // nil when the provider advertises none
	par        string   // pushed_authorization_request_endpoint; "" when not pushing
	introspect introspection
}

// asymmetricAlgs are the only ID token signing algorithms stepgate accepts.
// HS* would be keyed with the client secret (or, in the classic confusion
// attack, with the public key) and "none" is no signature at all.
var asymmetricAlgs = []string{
	gooidc.RS256, gooidc.RS384, gooidc.RS512,
	gooidc.PS256, gooidc.PS384, gooidc.PS512,
	gooidc.ES256, gooidc.ES384, gooidc.ES512,
	gooidc.EdDSA,
}

// New makes one discovery attempt against cfg.Issuer and returns a Client.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return discover(ctx, cfg)
}

// ErrIncompatible marks a provider that answers but cannot serve this
// configuration (par: required without a PAR endpoint, or par: off with a
// provider that requires it): retrying cannot help, so Dial returns it at
// once and the gateway refuses to start.
var ErrIncompatible = errors.New("the provider cannot serve this configuration")

// Dial is New with retries: while discovery fails it waits with exponential
// backoff (250ms doubling to 30s, jittered) and tries again, until it succeeds
// or ctx is done. onRetry, if not nil, is told each failure and the wait
// before the next attempt. A configuration error, and an ErrIncompatible
// provider, are returned at once.
func Dial(ctx context.Context, cfg Config, onRetry func(err error, wait time.Duration)) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	const ceiling = 30 * time.Second
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		c, err := discover(ctx, cfg)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, ErrIncompatible) {
			return nil, err
		}
		// Half fixed, half random, so restarted replicas spread out.
		wait := backoff/2 + rand.N(backoff/2+1)
		if onRetry != nil && ctx.Err() == nil {
			onRetry(err, wait)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("oidc: gave up after %d discovery attempts: %w; last error: %w", attempt, ctx.Err(), err)
		case <-time.After(wait):
		}
		backoff = min(2*backoff, ceiling)
	}
}

func (cfg *Config) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"issuer", cfg.Issuer}, {"client_id", cfg.ClientID}, {"redirect_url", cfg.RedirectURL},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("oidc: config: missing %s", strings.Join(missing, ", "))
	}
	if len(cfg.Scopes) == 0 || cfg.Scopes[0] != "openid" {
		return fmt.Errorf("oidc: config: scopes must start with \"openid\", got %q", cfg.Scopes)
	}
	switch cfg.PAR {
	case "", PARAuto, PARRequired, PAROff:
	default:
		return fmt.Errorf("oidc: config: par: want %q, %q or %q, got %q", PARAuto, PARRequired, PAROff, cfg.PAR)
	}
	return nil
}

// providerMeta is what stepgate reads from the discovery document beyond
// what go-oidc exposes.
type providerMeta struct {
	AuthURL    string   `json:"authorization_endpoint"`
	TokenURL   string   `json:"token_endpoint"`
	JWKSURL    string   `json:"jwks_uri"`
	Algs       []string `json:"id_token_signing_alg_values_supported"`
	EndSession string   `json:"end_session_endpoint"`
	AuthMeths  []string `json:"token_endpoint_auth_methods_supported"`
	PAR        string   `json:"pushed_authorization_request_endpoint"`
	RequirePAR bool     `json:"require_pushed_authorization_requests"`

	Introspection          string   `json:"introspection_endpoint"`
	IntrospectionAuthMeths []string `json:"introspection_endpoint_auth_methods_supported"`
}

func discover(ctx context.Context, cfg Config) (*Client, error) {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: defaultHTTPTimeout}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, hc), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery at %q: %w", cfg.Issuer, err)
	}
	var m providerMeta
	if err := p.Claims(&m); err != nil {
		return nil, fmt.Errorf("oidc: discovery at %q: %w", cfg.Issuer, err)
	}
	if m.AuthURL == "" || m.TokenURL == "" || m.JWKSURL == "" {
		return nil, fmt.Errorf("oidc: discovery at %q: want authorization_endpoint, token_endpoint and jwks_uri, got %q, %q, %q",
			cfg.Issuer, m.AuthURL, m.TokenURL, m.JWKSURL)
	}
	algs, err := signingAlgs(m.Algs)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery at %q: %w", cfg.Issuer, err)
	}
	// One key set for ID and logout tokens, so both see the same keys and
	// a rotation is fetched once, and at most every minKeyRefresh however
	// many bad tokens arrive (see keySet).
	keys := newKeySet(m.JWKSURL, hc)
	endpoint := p.Endpoint()
	if endpoint.AuthStyle, err = authStyle(m.AuthMeths, cfg.ClientSecret); err != nil {
		return nil, fmt.Errorf("oidc: discovery at %q: %w", cfg.Issuer, err)
	}
	par, err := parEndpoint(cfg.PAR, cfg.Issuer, m)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery at %q: %w: %w", cfg.Issuer, ErrIncompatible, err)
	}
	c := &Client{
		oauth2: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       slices.Clone(cfg.Scopes),
		},
		issuer: cfg.Issuer,
		verifier: gooidc.NewVerifier(cfg.Issuer, keys, &gooidc.Config{
			ClientID:             cfg.ClientID,
			SupportedSigningAlgs: algs,
			Now:                  now,
		}),
		keys:       keys,
		httpClient: hc,
		now:        now,
		par:        par,
		introspect: newIntrospection(cfg, m),
	}
	for _, a := range algs {
		c.algs = append(c.algs, jose.SignatureAlgorithm(a))
	}
	if m.EndSession != "" {
		u, err := url.Parse(m.EndSession)
		if err != nil || !u.IsAbs() {
			return nil, fmt.Errorf("oidc: discovery at %q: end_session_endpoint %q is not an absolute URL", cfg.Issuer, m.EndSession)
		}
		c.endSession = u
	}
	return c, nil
}

// signingAlgs pins the verifier to the asymmetric algorithms the provider
// advertises. Discovery requires the list and requires RS256 in it, so an
// absent list means RS256; a list with nothing usable is a misconfigured
// provider, and we refuse rather than guess.
func signingAlgs(advertised []string) ([]string, error) {
	if len(advertised) == 0 {
		return []string{gooidc.RS256}, nil
	}
	var algs []string
	for _, a := range advertised {
		if slices.Contains(asymmetricAlgs, a) {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		return nil, fmt.Errorf("id_token_signing_alg_values_supported: want an asymmetric algorithm such as RS256, got %q", advertised)
	}
	return algs, nil
}

// authStyle picks how the client authenticates at the token endpoint.
// oauth2's default auto-detection retries a failed exchange with the other
// style, which presents the code twice and hides the first error behind
// "code already used"; discovery tells us the answer instead. An absent list
// means client_secret_basic (Discovery §3).
func authStyle(methods []string, secret string) (oauth2.AuthStyle, error) {
	switch {
	case secret == "":
		return oauth2.AuthStyleInParams, nil // public client: client_id in the body
	case len(methods) == 0 || slices.Contains(methods, "client_secret_basic"):
		return oauth2.AuthStyleInHeader, nil
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams, nil
	}
	return 0, fmt.Errorf("token_endpoint_auth_methods_supported: want client_secret_basic or client_secret_post, got %q", methods)
}

// AuthRequest is one round trip to the provider. State, Nonce and Verifier
// MUST be fresh random values for every request (the caller keeps them, with
// Level and AuthorizationDetails, server-side until the callback).
type AuthRequest struct {
	State, Nonce, Verifier string
	Level                  *policy.Level // nil for a plain login
	LoginHint              string        // on step-up: the current user
	// AuthorizationDetails is sent as authorization_details (RFC 9396): a
	// JSON array of objects with a "type", the transaction the user is
	// asked to approve. "" sends none.
	AuthorizationDetails string
}

// AuthCodeURL returns the authorization endpoint URL for a: code flow with
// PKCE S256 and a nonce, plus the level's acr_values, claims, max_age and
// prompt (OIDC Core §3.1.2.1, §5.5) and a's authorization_details. These are
// requests only; Exchange judges what comes back. It never pushes the
// request: use AuthorizeURL, which does when the provider offers it.
func (c *Client) AuthCodeURL(a AuthRequest) string {
	return withQuery(c.oauth2.Endpoint.AuthURL, c.authParams(a))
}

// authParams are the parameters of the authorization request for a, the
// same whether they go in the URL or are pushed.
func (c *Client) authParams(a AuthRequest) url.Values {
	v := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.oauth2.ClientID},
		"redirect_uri":          {c.oauth2.RedirectURL},
		"scope":                 {strings.Join(c.oauth2.Scopes, " ")},
		"state":                 {a.State},
		"nonce":                 {a.Nonce},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(a.Verifier)},
		"code_challenge_method": {"S256"},
	}
	if l := a.Level; l != nil {
		if len(l.ACRValues) > 0 {
			v.Set("acr_values", strings.Join(l.ACRValues, " "))
		}
		if l.Claims != "" {
			v.Set("claims", l.Claims)
		}
		if l.MaxAge > 0 {
			v.Set("max_age", strconv.FormatInt(int64(l.MaxAge/time.Second), 10))
		}
		if l.Prompt != "" {
			v.Set("prompt", l.Prompt)
		}
	}
	if a.LoginHint != "" {
		v.Set("login_hint", a.LoginHint)
	}
	if a.AuthorizationDetails != "" {
		v.Set("authorization_details", a.AuthorizationDetails)
	}
	return v
}

// withQuery appends v to endpoint, keeping any query the endpoint has of
// its own (some providers select a tenant or policy that way).
func withQuery(endpoint string, v url.Values) string {
	sep := "?"
	if strings.Contains(endpoint, "?") {
		sep = "&"
	}
	return endpoint + sep + v.Encode()
}

// EndSessionURL returns the provider's RP-initiated logout URL, sending the
// user back to postLogoutRedirect (if not empty) afterwards, or "" when the
// provider advertises no end_session_endpoint.
func (c *Client) EndSessionURL(postLogoutRedirect string) string {
	if c.endSession == nil {
		return ""
	}
	u := *c.endSession
	q := u.Query()
	q.Set("client_id", c.oauth2.ClientID)
	if postLogoutRedirect != "" {
		q.Set("post_logout_redirect_uri", postLogoutRedirect)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
