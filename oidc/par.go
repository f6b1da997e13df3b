package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// parEndpoint decides, from the configured mode and what discovery says,
// where authorization requests are pushed ("" for nowhere). A mode the
// provider cannot serve is an error rather than a silent downgrade: an
// operator who asked for PAR wants the browser never to see the parameters,
// and a provider that requires it would refuse every unpushed login.
func parEndpoint(mode, issuer string, m providerMeta) (string, error) {
	switch {
	case mode == PAROff && m.RequirePAR:
		return "", errors.New(`the provider sets require_pushed_authorization_requests, but par is "off"; set it to "auto" or "required"`)
	case mode == PAROff:
		return "", nil
	case m.PAR == "" && mode == PARRequired:
		return "", errors.New(`par is "required" but the provider advertises no pushed_authorization_request_endpoint; enable PAR at the provider or set par to "auto"`)
	case m.PAR == "" && m.RequirePAR:
		return "", errors.New("the provider requires pushed authorization requests but advertises no pushed_authorization_request_endpoint")
	case m.PAR == "":
		return "", nil
	}
	// The endpoint receives the client secret: no downgrade from an https
	// issuer to plain http.
	u, err := url.Parse(m.PAR)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && strings.HasPrefix(issuer, "http://"))) {
		return "", fmt.Errorf("pushed_authorization_request_endpoint %q: want an absolute URL with the issuer's scheme (https)", m.PAR)
	}
	return m.PAR, nil
}

// AuthorizeURL returns the URL to send the browser to for a.
//
// When the client pushes requests (Config.PAR), it first POSTs the
// parameters AuthCodeURL would put in the URL to the provider's
// pushed_authorization_request_endpoint, authenticating as at the token
// endpoint, and returns the authorization endpoint with only client_id and
// the request_uri it got (RFC 9126 §4): the provider uses the pushed
// parameters, so a user who edits the URL cannot drop acr_values, max_age
// or authorization_details. Otherwise it returns AuthCodeURL(a).
//
// An error means a is incomplete or the provider refused or could not take
// the request; there is then no URL, and the caller must not fall back to
// an unpushed one.
func (c *Client) AuthorizeURL(ctx context.Context, a AuthRequest) (string, error) {
	if a.State == "" || a.Nonce == "" || a.Verifier == "" {
		return "", errors.New("oidc: authorization request: state, nonce and PKCE verifier are required")
	}
	if a.AuthorizationDetails != "" {
		if err := CheckAuthorizationDetails(a.AuthorizationDetails); err != nil {
			return "", fmt.Errorf("oidc: authorization request: %w", err)
		}
	}
	if c.par == "" {
		return c.AuthCodeURL(a), nil
	}
	requestURI, err := c.push(ctx, c.authParams(a))
	if err != nil {
		return "", err
	}
	return withQuery(c.oauth2.Endpoint.AuthURL, url.Values{
		"client_id":   {c.oauth2.ClientID},
		"request_uri": {requestURI},
	}), nil
}

const (
	// maxPARResponse bounds what is read from the PAR endpoint: its answer
	// is two short members.
	maxPARResponse = 64 << 10
	// maxRequestURI bounds the request_uri put in the browser's URL.
	maxRequestURI = 2048
)

// push sends params to the PAR endpoint (RFC 9126 §2.1) and returns the
// request_uri of its answer (§2.2).
func (c *Client) push(ctx context.Context, params url.Values) (string, error) {
	// The client authenticates exactly as at the token endpoint (RFC 9126
	// §2): the style discovery chose for the token endpoint.
	if c.oauth2.Endpoint.AuthStyle == oauth2.AuthStyleInParams && c.oauth2.ClientSecret != "" {
		params.Set("client_secret", c.oauth2.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.par, strings.NewReader(params.Encode()))
	if err != nil {
		return "", fmt.Errorf("oidc: pushed authorization request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.oauth2.Endpoint.AuthStyle == oauth2.AuthStyleInHeader {
		// RFC 6749 §2.3.1: form-encode both before Basic encoding, as
		// oauth2 does at the token endpoint.
		req.SetBasicAuth(url.QueryEscape(c.oauth2.ClientID), url.QueryEscape(c.oauth2.ClientSecret))
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		err = fmt.Errorf("oidc: pushed authorization request to %s: %w", c.par, err)
		if unreachable(ctx, err) {
			return "", &unavailable{err}
		}
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPARResponse+1))
	switch {
	case err != nil && unreachable(ctx, err):
		return "", &unavailable{fmt.Errorf("oidc: pushed authorization request to %s: reading the answer: %w", c.par, err)}
	case err != nil:
		return "", fmt.Errorf("oidc: pushed authorization request to %s: reading the answer: %w", c.par, err)
	case len(body) > maxPARResponse:
		return "", fmt.Errorf("oidc: pushed authorization request to %s: answer larger than %d bytes", c.par, maxPARResponse)
	}

	// RFC 9126 §2.2 answers 201; 200 is accepted too, as nothing hangs on
	// the difference.
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		if serverError(resp.StatusCode) {
			// The provider failed, not the request: the same push may
			// succeed once it is back.
			return "", &unavailable{fmt.Errorf("oidc: pushed authorization request to %s: answered %d, want 201", c.par, resp.StatusCode)}
		}
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return "", fmt.Errorf("oidc: pushed authorization request to %s: answered %d %.64s: %.200q", c.par, resp.StatusCode, e.Error, e.Description)
		}
		return "", fmt.Errorf("oidc: pushed authorization request to %s: answered %d, want 201", c.par, resp.StatusCode)
	}
	var ok struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &ok); err != nil {
		// The body is not quoted: a confused endpoint might echo the form.
		return "", fmt.Errorf("oidc: pushed authorization request to %s: want JSON with request_uri and expires_in, got %d bytes of %q: %v",
			c.par, len(body), resp.Header.Get("Content-Type"), err)
	}
	switch {
	case ok.RequestURI == "" || len(ok.RequestURI) > maxRequestURI:
		return "", fmt.Errorf("oidc: pushed authorization request to %s: want request_uri of 1 to %d bytes, got %d bytes", c.par, maxRequestURI, len(ok.RequestURI))
	case ok.ExpiresIn <= 0:
		return "", fmt.Errorf("oidc: pushed authorization request to %s: want a positive expires_in, got %d", c.par, ok.ExpiresIn)
	}
	return ok.RequestURI, nil
}
