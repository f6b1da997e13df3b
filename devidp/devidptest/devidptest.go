// Package devidptest gets tokens from a running devidp over real HTTP, for
// tests of what consumes them: it plays the client and the user's browser
// through /authorize, the login (scripted with Provider.SetScript, or the
// login form), the redirect with the code, and the token endpoint, with
// PKCE and, when asked, a DPoP proof (RFC 9449). Proof makes the DPoP
// proofs a client sends with its requests.
//
// It speaks only HTTP to the provider, so it imports nothing of devidp, and
// it is for tests only: it trusts the provider it is pointed at.
package devidptest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"
)

// Request says which tokens to get and how the user logs in.
type Request struct {
	ClientID, ClientSecret string
	// RedirectURI must be registered for the client. It is never
	// contacted: the browser stops at the redirect to it.
	RedirectURI string
	// Scopes default to ["openid"].
	Scopes    []string
	ACRValues []string
	// MaxAge is sent as max_age in whole seconds when not nil.
	MaxAge *time.Duration
	// Claims is the claims parameter, raw JSON; "" sends none.
	Claims string
	// Prompt is the prompt parameter, space-separated values; "" sends none.
	Prompt string
	// DPoPKey, when set, signs a DPoP proof for the token request, so the
	// access token is bound to its public key.
	DPoPKey crypto.Signer

	// Username and Password answer the login form's password page, and a
	// code from TOTPSecret (base32, as in devidp.User) its one-time code
	// page. With a script set on the provider no page is shown and these
	// are unused.
	Username, Password, TOTPSecret string

	// HTTPClient makes the requests; nil is a fresh client. Its Jar and
	// CheckRedirect are not used: each Token call has a browser of its own.
	HTTPClient *http.Client
}

// Tokens is a successful token response (RFC 6749 §5.1).
type Tokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// Error is an OAuth error the provider answered, at /authorize (Status 0,
// the error came in the redirect) or at the token endpoint.
type Error struct {
	Status      int    // HTTP status of the token response; 0 for an authorization error
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *Error) Error() string {
	where := "authorization"
	if e.Status != 0 {
		where = "token endpoint " + strconv.Itoa(e.Status)
	}
	return fmt.Sprintf("devidptest: %s error %q: %s", where, e.Code, e.Description)
}

// metadata is the part of discovery the helper uses.
type metadata struct {
	Issuer        string `json:"issuer"`
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
}

// maxSteps bounds the login pages answered in one flow (password, code).
const maxSteps = 4

// Token runs one authorization code flow against the provider at
// issuerURL and redeems the code. A refusal by the provider is an *Error.
func Token(ctx context.Context, issuerURL string, r Request) (Tokens, error) {
	hc := browser(r)
	meta, err := discover(ctx, hc, issuerURL)
	if err != nil {
		return Tokens{}, err
	}
	verifier, state := randomString(), randomString()
	challenge := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {r.ClientID},
		"redirect_uri":          {r.RedirectURI},
		"scope":                 {"openid"},
		"state":                 {state},
		"nonce":                 {randomString()},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
	}
	if len(r.Scopes) > 0 {
		q.Set("scope", strings.Join(r.Scopes, " "))
	}
	if len(r.ACRValues) > 0 {
		q.Set("acr_values", strings.Join(r.ACRValues, " "))
	}
	if r.MaxAge != nil {
		q.Set("max_age", strconv.FormatInt(int64(*r.MaxAge/time.Second), 10))
	}
	if r.Claims != "" {
		q.Set("claims", r.Claims)
	}
	if r.Prompt != "" {
		q.Set("prompt", r.Prompt)
	}
	cb, err := authorize(ctx, hc, meta, r, meta.Authorization+"?"+q.Encode())
	if err != nil {
		return Tokens{}, err
	}
	if e := cb.Get("error"); e != "" {
		return Tokens{}, &Error{Code: e, Description: cb.Get("error_description")}
	}
	if cb.Get("state") != state || cb.Get("code") == "" {
		return Tokens{}, fmt.Errorf("devidptest: callback query %q; want a code and the state sent", cb.Encode())
	}
	return redeem(ctx, hc, meta.Token, r, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {cb.Get("code")},
		"redirect_uri":  {r.RedirectURI},
		"code_verifier": {verifier},
	})
}

// Refresh redeems a refresh token at the provider's token endpoint, as the
// client of r (and with a DPoP proof when r.DPoPKey is set).
func Refresh(ctx context.Context, issuerURL string, r Request, refreshToken string) (Tokens, error) {
	hc := browser(r)
	meta, err := discover(ctx, hc, issuerURL)
	if err != nil {
		return Tokens{}, err
	}
	return redeem(ctx, hc, meta.Token, r, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
}

// browser is r's client with a cookie jar of its own that stops at the
// first redirect, so each hop is looked at.
func browser(r Request) *http.Client {
	jar, _ := cookiejar.New(nil) // never fails without options
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if r.HTTPClient != nil {
		hc.Transport, hc.Timeout = r.HTTPClient.Transport, r.HTTPClient.Timeout
	}
	return hc
}

func discover(ctx context.Context, hc *http.Client, issuerURL string) (metadata, error) {
	var meta metadata
	u := strings.TrimSuffix(issuerURL, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return meta, fmt.Errorf("devidptest: discovery: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return meta, fmt.Errorf("devidptest: discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return meta, fmt.Errorf("devidptest: discovery at %s: %s; want 200", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&meta); err != nil {
		return meta, fmt.Errorf("devidptest: discovery at %s: %w", u, err)
	}
	if meta.Issuer != issuerURL || meta.Authorization == "" || meta.Token == "" {
		return meta, fmt.Errorf("devidptest: discovery at %s: issuer %q, endpoints %q and %q; want issuer %q and both endpoints",
			u, meta.Issuer, meta.Authorization, meta.Token, issuerURL)
	}
	return meta, nil
}

var (
	authRequestIDField = regexp.MustCompile(`name="authRequestID" value="([^"]+)"`)
	stepField          = regexp.MustCompile(`name="step" value="([a-z]+)"`)
)

// authorize follows the browser's way from authURL to the redirect URI,
// answering login pages, and returns the redirect's query.
func authorize(ctx context.Context, hc *http.Client, meta metadata, r Request, authURL string) (url.Values, error) {
	next, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, fmt.Errorf("devidptest: authorize: %w", err)
	}
	steps := 0
	for hops := 0; hops < 20; hops++ {
		resp, err := hc.Do(next)
		if err != nil {
			return nil, fmt.Errorf("devidptest: authorize: %w", err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if loc, err := resp.Location(); err == nil {
			if sameEndpoint(loc, r.RedirectURI) {
				q := loc.Query()
				if frag, _ := url.ParseQuery(loc.Fragment); frag.Has("error") {
					q = frag
				}
				return q, nil
			}
			if next, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil); err != nil {
				return nil, fmt.Errorf("devidptest: authorize redirect: %w", err)
			}
			continue
		}
		id := authRequestIDField.FindSubmatch(body)
		step := stepField.FindSubmatch(body)
		if id == nil || step == nil || steps == maxSteps {
			return nil, fmt.Errorf("devidptest: authorize ended at %s with %s, not a redirect to %s: %.200q",
				resp.Request.URL.Redacted(), resp.Status, r.RedirectURI, body)
		}
		steps++
		form := url.Values{"authRequestID": {string(id[1])}, "step": {string(step[1])}}
		switch string(step[1]) {
		case "password":
			if r.Username == "" {
				return nil, errors.New("devidptest: the provider shows its password page; set a script on it, or Request.Username and Password")
			}
			form.Set("username", r.Username)
			form.Set("password", r.Password)
		case "code":
			if r.TOTPSecret == "" {
				return nil, errors.New("devidptest: the provider shows its one-time code page; set Request.TOTPSecret")
			}
			code, err := totp.GenerateCode(r.TOTPSecret, time.Now())
			if err != nil {
				return nil, fmt.Errorf("devidptest: TOTPSecret: %w", err)
			}
			form.Set("code", code)
		default:
			return nil, fmt.Errorf("devidptest: login page step %q; want password or code", step[1])
		}
		action := resp.Request.URL.ResolveReference(&url.URL{Path: "/login"})
		next, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return nil, fmt.Errorf("devidptest: login form: %w", err)
		}
		next.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return nil, errors.New("devidptest: authorize: too many redirects")
}

// sameEndpoint reports whether u is want without regard to query and
// fragment.
func sameEndpoint(u *url.URL, want string) bool {
	c := *u
	c.RawQuery, c.Fragment, c.RawFragment = "", "", ""
	return c.String() == want
}

// redeem posts form to the token endpoint with client_secret_basic (and a
// DPoP proof when r.DPoPKey is set).
func redeem(ctx context.Context, hc *http.Client, tokenURL string, r Request, form url.Values) (Tokens, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Tokens{}, fmt.Errorf("devidptest: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
	req.SetBasicAuth(url.QueryEscape(r.ClientID), url.QueryEscape(r.ClientSecret))
	if r.DPoPKey != nil {
		proof, err := Proof(r.DPoPKey, http.MethodPost, tokenURL, "", time.Now())
		if err != nil {
			return Tokens{}, err
		}
		req.Header.Set("DPoP", proof)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Tokens{}, fmt.Errorf("devidptest: token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Tokens{}, fmt.Errorf("devidptest: token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(body, e) != nil || e.Code == "" {
			return Tokens{}, fmt.Errorf("devidptest: token endpoint answered %s: %.200q", resp.Status, body)
		}
		return Tokens{}, e
	}
	var t Tokens
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return Tokens{}, fmt.Errorf("devidptest: token response %.200q: want JSON with an access_token", body)
	}
	return t, nil
}

// randomString is 256 random bits, base64url: a PKCE verifier, a state, a
// nonce or a jti.
func randomString() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
