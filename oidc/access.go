package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stepgate/stepgate/policy"
)

// maxAccessTokenLen bounds what is parsed at all. Access tokens arrive with
// every API request, from anyone; real ones are one or two KiB.
const maxAccessTokenLen = 16 << 10

// ErrInvalidToken is wrapped by every error about an access token itself
// (malformed, badly signed, expired, for another audience, inactive): the
// proxy answers 401 with error="invalid_token" (RFC 6750 §3.1).
var ErrInvalidToken = errors.New("oidc: invalid access token")

// AccessToken is what a verified access token says.
type AccessToken struct {
	// Facts are what the levels are judged on: Issuer, Subject, Email (if
	// any), ACR, AMR, ACRS, AuthTime (zero when absent) and VerifiedAt, the
	// moment of verification.
	Facts    policy.Facts
	SID      string   // the provider's session ID (sid), "" when absent
	ClientID string   // client_id, the client the token was issued to
	Scopes   []string // scope (or scp), split on spaces
	JKT      string   // cnf.jkt: RFC 7638 thumbprint of the DPoP key; "" when not bound
	ID       string   // jti; "" only from an introspection that sent none
	IssuedAt time.Time
	// Expires is exp: cache the result no longer than that. Zero only from
	// an introspection that sent no exp.
	Expires time.Time
}

// invalidTokenError is a problem with the token, with the "oidc: " prefix
// and errors.Is(err, ErrInvalidToken).
type invalidTokenError struct{ err error }

func (e *invalidTokenError) Error() string        { return "oidc: " + e.err.Error() }
func (e *invalidTokenError) Unwrap() error        { return e.err }
func (e *invalidTokenError) Is(target error) bool { return target == ErrInvalidToken }

// invalidToken wraps err, which starts with what was judged ("access
// token ..."), as a problem with the token.
func invalidToken(format string, args ...any) error {
	return &invalidTokenError{fmt.Errorf(format, args...)}
}

// VerifyAccessToken verifies raw as a JWT access token (RFC 9068 §4) of the
// configured provider for the API audience, at the client's now:
//
//   - at most 16 KiB, a compact JWS (no JWE, no JSON serialization) signed
//     with a key of the issuer's JWKS and one of the algorithms allowed for
//     ID tokens (never none, never HMAC);
//   - typ header at+jwt or application/at+jwt, case-insensitively: an ID
//     token (typ JWT) or any other JWT of the provider is not an access
//     token;
//   - iss equal to the issuer exactly; aud containing audience;
//   - exp present and not passed, nbf (if present) reached, iat present and
//     not ahead, each within the clock skew of the ID token checks;
//   - sub, client_id and jti non-empty strings of at most 255 bytes;
//   - acr, amr, acrs, auth_time, email, sid, scope or scp, and cnf, when
//     present, of the right types (auth_time not after now or iat); a cnf
//     must hold a jkt (a binding stepgate cannot check is refused).
//
// It does not check a DPoP proof (see package dpop: AccessToken.JKT is what
// the proof's key must be) or decide a level. Errors about the token wrap
// ErrInvalidToken, say what was expected and what arrived, and quote at
// most a bounded claim, never the token. An empty audience is the caller's
// error and does not wrap ErrInvalidToken.
func (c *Client) VerifyAccessToken(ctx context.Context, raw, audience string) (*AccessToken, error) {
	if audience == "" {
		return nil, errors.New("oidc: access token: the audience to check is empty; want the API's identifier")
	}
	switch {
	case raw == "":
		return nil, invalidToken("access token is empty")
	case len(raw) > maxAccessTokenLen:
		return nil, invalidToken("access token: want at most %d bytes, got %d", maxAccessTokenLen, len(raw))
	}
	// Compact only, and go-jose refuses any alg outside the list before
	// looking at a key: the HS256-keyed-with-the-public-key confusion
	// never reaches a verifier.
	jws, err := jose.ParseSignedCompact(raw, c.algs)
	if err != nil {
		return nil, invalidToken("access token: want a compact JWS signed with one of %q: %v", c.algs, err)
	}
	if err := checkAccessTyp(jws.Signatures[0].Header); err != nil {
		return nil, err
	}
	// The key set picks the key from the issuer's JWKS alone (an embedded
	// jwk, jku or x5u is never used), and refetches the JWKS for a token
	// no known key verifies at most every minKeyRefresh.
	payload, err := c.keys.VerifySignature(ctx, raw)
	if errors.Is(err, ErrUnavailable) {
		// The keys could not be fetched: the provider's failure, which
		// says nothing about the token (503, not 401).
		return nil, fmt.Errorf("oidc: access token: %w", err)
	}
	if err != nil {
		return nil, invalidToken("access token: signature does not verify with the issuer's keys: %v", err)
	}
	var cl map[string]json.RawMessage
	if err := json.Unmarshal(payload, &cl); err != nil || cl == nil {
		return nil, invalidToken("access token claims: want a JSON object, got %.40q", payload)
	}
	at, err := c.accessClaims(cl, audience, c.now(), true)
	if err != nil {
		return nil, invalidToken("access token %w", err)
	}
	return at, nil
}

// checkAccessTyp requires the explicit type of RFC 9068 §2.1, at+jwt,
// compared case-insensitively and with the optional "application/" prefix
// (RFC 7515 §4.1.9).
func checkAccessTyp(h jose.Header) error {
	v, ok := h.ExtraHeaders[jose.HeaderType]
	if !ok {
		return invalidToken(`access token typ header: want "at+jwt", got nothing`)
	}
	s, _ := v.(string)
	if t := strings.TrimPrefix(strings.ToLower(s), "application/"); t != "at+jwt" {
		return invalidToken(`access token typ header: want "at+jwt", got %.40s`, jsonText(v))
	}
	return nil
}

// accessClaims reads verified access token claims, a JWT's payload or an
// introspection response. jwt makes iss, exp, iat, client_id and jti
// required (RFC 9068 §2.2); an introspection response may leave them out
// (RFC 7662 §2.2), and iss then defaults to the issuer asked. sub is
// required of both: levels are judged on a user. Errors lack the prefix
// naming what was read, which the caller adds.
func (c *Client) accessClaims(cl map[string]json.RawMessage, audience string, now time.Time, jwt bool) (*AccessToken, error) {
	if _, ok := cl["iss"]; ok || jwt {
		if iss, err := requiredString("iss", cl["iss"]); err != nil || iss != c.issuer {
			return nil, fmt.Errorf("iss: want %q, got %.80s", c.issuer, shown(cl["iss"]))
		}
	}
	aud, err := audiences(cl["aud"])
	if err != nil {
		return nil, err
	}
	if !slices.Contains(aud, audience) {
		return nil, fmt.Errorf("aud: want %q among the audiences, got %.80s", audience, cl["aud"])
	}

	skew := policy.ClockSkew
	exp, err := parseNumericDate("exp", cl["exp"])
	switch {
	case err != nil:
		return nil, err
	case exp.IsZero():
		if jwt {
			return nil, fmt.Errorf("exp: want the time it expires, got %.40s", shown(cl["exp"]))
		}
	case now.After(exp.Add(skew)):
		return nil, fmt.Errorf("expired at %s, more than %s before now %s", stamp(exp), skew, stamp(now))
	}
	nbf, err := parseNumericDate("nbf", cl["nbf"])
	switch {
	case err != nil:
		return nil, err
	case nbf.After(now.Add(skew)):
		return nil, fmt.Errorf("not valid before %s, more than %s after now %s", stamp(nbf), skew, stamp(now))
	}
	iat, err := parseNumericDate("iat", cl["iat"])
	switch {
	case err != nil:
		return nil, err
	case iat.IsZero():
		if jwt {
			return nil, fmt.Errorf("iat: want the time it was issued, got %.40s", shown(cl["iat"]))
		}
	case iat.After(now.Add(skew)):
		return nil, fmt.Errorf("iat %s is more than %s after now %s", stamp(iat), skew, stamp(now))
	}

	at := &AccessToken{IssuedAt: iat, Expires: exp}
	if at.Facts.Subject, err = requiredString("sub", cl["sub"]); err != nil {
		return nil, err
	}
	if jwt {
		if at.ClientID, err = requiredString("client_id", cl["client_id"]); err != nil {
			return nil, err
		}
		if at.ID, err = requiredString("jti", cl["jti"]); err != nil {
			return nil, err
		}
	} else {
		if at.ClientID, err = boundedString("client_id", cl["client_id"]); err != nil {
			return nil, err
		}
		if at.ID, err = boundedString("jti", cl["jti"]); err != nil {
			return nil, err
		}
	}

	// RFC 9470 §6: what the user's authentication was, fixed when it
	// happened and carried unchanged into refreshed tokens.
	authTime, err := parseNumericDate("auth_time", cl["auth_time"])
	switch {
	case err != nil:
		return nil, err
	case authTime.IsZero():
	case authTime.After(now.Add(skew)):
		return nil, fmt.Errorf("auth_time %s is more than %s after now %s", stamp(authTime), skew, stamp(now))
	case !iat.IsZero() && authTime.After(iat.Add(skew)):
		return nil, fmt.Errorf("auth_time %s is more than %s after iat %s", stamp(authTime), skew, stamp(iat))
	}
	f := &at.Facts
	f.Issuer, f.AuthTime, f.VerifiedAt = c.issuer, authTime, now
	if f.ACR, err = boundedString("acr", cl["acr"]); err != nil {
		return nil, err
	}
	if f.AMR, err = stringArray("amr", cl["amr"]); err != nil {
		return nil, err
	}
	if f.ACRS, err = stringArray("acrs", cl["acrs"]); err != nil {
		return nil, err
	}
	if f.Email, err = boundedString("email", cl["email"]); err != nil {
		return nil, err
	}
	if at.SID, err = boundedString("sid", cl["sid"]); err != nil {
		return nil, err
	}
	if at.Scopes, err = scopes(cl); err != nil {
		return nil, err
	}
	if at.JKT, err = confirmation(cl["cnf"]); err != nil {
		return nil, err
	}
	return at, nil
}

// stringArray reads an optional claim that must be an array of strings.
func stringArray(name string, raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var v []string
	if kind(raw) != '[' || json.Unmarshal(raw, &v) != nil {
		return nil, fmt.Errorf("%s: want an array of strings, got %.40s", name, raw)
	}
	return v, nil
}

// scopes reads scope, a space-separated string (RFC 9068 §2.2.3, RFC 7662
// §2.2), or, in its absence, scp, which Entra ID sends as such a string and
// Okta as an array.
func scopes(cl map[string]json.RawMessage) ([]string, error) {
	if raw, ok := cl["scope"]; ok {
		var s string
		if kind(raw) != '"' || json.Unmarshal(raw, &s) != nil {
			return nil, fmt.Errorf("scope: want a space-separated string, got %.40s", raw)
		}
		return nonEmpty(strings.Fields(s)), nil
	}
	raw, ok := cl["scp"]
	if !ok {
		return nil, nil
	}
	var s string
	var many []string
	switch {
	case kind(raw) == '"' && json.Unmarshal(raw, &s) == nil:
		return nonEmpty(strings.Fields(s)), nil
	case kind(raw) == '[' && json.Unmarshal(raw, &many) == nil:
		return nonEmpty(many), nil
	}
	return nil, fmt.Errorf("scp: want a space-separated string or an array of strings, got %.40s", raw)
}

func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// confirmation reads the cnf claim (RFC 7800) and returns its jkt, the
// thumbprint of the DPoP key the token is bound to (RFC 9449 §6.1), or ""
// for an unbound token. A cnf binding the token some other way (x5t#S256,
// an mTLS certificate) is refused: stepgate cannot check it, and passing
// the token as a bearer token would drop the constraint.
func confirmation(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	var cnf map[string]json.RawMessage
	if kind(raw) != '{' || json.Unmarshal(raw, &cnf) != nil {
		return "", fmt.Errorf("cnf: want a JSON object, got %.40s", raw)
	}
	jktRaw, ok := cnf["jkt"]
	if !ok {
		if len(cnf) == 0 {
			return "", nil
		}
		methods := make([]string, 0, len(cnf))
		for k := range cnf {
			methods = append(methods, k)
		}
		slices.Sort(methods)
		return "", fmt.Errorf(`cnf: want a "jkt" member (a DPoP key binding), got only %.80q`, strings.Join(methods, ", "))
	}
	jkt, err := boundedString("cnf.jkt", jktRaw)
	if err != nil {
		return "", err
	}
	// A SHA-256 thumbprint is 32 bytes, 43 characters of unpadded base64url.
	if b, err := base64.RawURLEncoding.Strict().DecodeString(jkt); err != nil || len(b) != 32 {
		return "", fmt.Errorf("cnf.jkt: want a base64url SHA-256 thumbprint (43 characters), got %.60q", jkt)
	}
	return jkt, nil
}
