package oidc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// ErrIntrospectionUnavailable is wrapped by every error that says nothing
// about the token: no endpoint, the endpoint unreachable or slow, a status
// other than 200, an answer that is not a JSON object with a boolean
// active. The proxy answers 503, since the provider failing is not the
// token's fault (and a 401 would make clients throw good tokens away).
var ErrIntrospectionUnavailable = errors.New("oidc: token introspection unavailable")

// maxIntrospection bounds the introspection response read.
const maxIntrospection = 1 << 20

// introspection is where and how Introspect asks the provider, settled at
// discovery. err, when set, is why it cannot: New does not fail for it, as
// most deployments never introspect.
type introspection struct {
	url   string
	basic bool // client_secret_basic; otherwise the credentials go in the form
	err   error
}

// newIntrospection picks the endpoint (the configured one, else
// discovery's) and the client authentication, as at the token endpoint:
// client_secret_basic when the provider lists it or lists nothing (RFC
// 8414 §2 makes that the default), else client_secret_post.
func newIntrospection(cfg Config, m providerMeta) introspection {
	in := introspection{url: cfg.IntrospectionURL}
	if in.url == "" {
		in.url = m.Introspection
	}
	if in.url == "" {
		in.err = errors.New("the provider advertises no introspection_endpoint and none is configured")
		return in
	}
	if u, err := url.Parse(in.url); err != nil || !u.IsAbs() {
		in.err = fmt.Errorf("introspection endpoint %q is not an absolute URL", in.url)
		return in
	}
	methods := m.IntrospectionAuthMeths
	switch {
	case cfg.ClientSecret == "": // public client: client_id in the form
	case len(methods) == 0 || slices.Contains(methods, "client_secret_basic"):
		in.basic = true
	case slices.Contains(methods, "client_secret_post"):
	default:
		in.err = fmt.Errorf("introspection_endpoint_auth_methods_supported: want client_secret_basic or client_secret_post, got %q", methods)
	}
	return in
}

// Introspect asks the provider's introspection endpoint about raw (RFC
// 7662), for the API audience, and returns what the answer says:
//
//   - the request: token and token_type_hint=access_token, with the
//     client's credentials as at the token endpoint, within the client's
//     timeout (10s by default) and ctx;
//   - the answer: status 200, Content-Type application/json, at most
//     1 MiB, a JSON object whose active is true or false;
//   - active true, iss (when present) equal to the issuer, aud containing
//     audience, exp (when present) not passed and nbf (when present)
//     reached within the clock skew, token_type (when present) not a
//     refresh token, sub a non-empty string;
//   - acr, amr, auth_time (RFC 9470 §6.2), acrs, email, sid, client_id,
//     jti, scope and cnf.jkt read as from a JWT access token.
//
// Errors about the token (active false included) wrap ErrInvalidToken;
// errors about the provider or its answer wrap ErrIntrospectionUnavailable.
// Neither quotes the token or the client secret. An empty audience is the
// caller's error and wraps neither.
func (c *Client) Introspect(ctx context.Context, raw, audience string) (*AccessToken, error) {
	if audience == "" {
		return nil, errors.New("oidc: introspection: the audience to check is empty; want the API's identifier")
	}
	if err := c.introspect.err; err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntrospectionUnavailable, err)
	}
	switch {
	case raw == "":
		return nil, invalidToken("introspected token is empty")
	case len(raw) > maxAccessTokenLen:
		// Not worth the provider's time, and not sent anywhere.
		return nil, invalidToken("introspected token: want at most %d bytes, got %d", maxAccessTokenLen, len(raw))
	}
	cl, err := c.askIntrospection(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: at %q: %w", ErrIntrospectionUnavailable, c.introspect.url, err)
	}
	switch active := cl["active"]; string(bytes.TrimSpace(active)) {
	case "true":
	case "false":
		return nil, invalidToken("introspected token: the provider says it is not active")
	default:
		return nil, fmt.Errorf("%w: at %q: active: want true or false, got %.40s", ErrIntrospectionUnavailable, c.introspect.url, shown(active))
	}
	if raw, ok := cl["token_type"]; ok {
		typ, err := boundedString("token_type", raw)
		if err != nil {
			return nil, invalidToken("introspected token %w", err)
		}
		// RFC 7662 §2.2 lets the provider answer for any of its tokens,
		// whatever the hint; a refresh token is long-lived and not meant
		// for APIs (RFC 6749 §1.5).
		if t := strings.ToLower(typ); t == "refresh_token" || t == "urn:ietf:params:oauth:token-type:refresh_token" {
			return nil, invalidToken("introspected token token_type: want an access token, got %q", typ)
		}
	}
	at, err := c.accessClaims(cl, audience, c.now(), false)
	if err != nil {
		return nil, invalidToken("introspected token %w", err)
	}
	return at, nil
}

// askIntrospection posts raw to the introspection endpoint and returns the
// answer's members. Its errors never quote the request.
func (c *Client) askIntrospection(ctx context.Context, raw string) (map[string]json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, defaultHTTPTimeout)
	defer cancel()
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	id, secret := c.oauth2.ClientID, c.oauth2.ClientSecret
	if !c.introspect.basic {
		form.Set("client_id", id)
		if secret != "" {
			form.Set("client_secret", secret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.introspect.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.introspect.basic {
		// RFC 6749 §2.3.1: both form-encoded before Basic's base64.
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d; want 200", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("Content-Type: want application/json, got %.60q", resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospection+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if len(body) > maxIntrospection {
		return nil, fmt.Errorf("answer: want at most %d bytes, got more", maxIntrospection)
	}
	var cl map[string]json.RawMessage
	if err := json.Unmarshal(body, &cl); err != nil || cl == nil {
		return nil, fmt.Errorf("answer: want a JSON object, got %d bytes that are not one", len(body))
	}
	return cl, nil
}
