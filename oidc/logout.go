package oidc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stepgate/stepgate/policy"
)

// logoutEvent is the member of a logout token's events claim
// that makes it one (OIDC Back-Channel Logout 1.0 §2.4).
const logoutEvent = "http://schemas.openid.net/event/backchannel-logout"

const (
	// maxLogoutTokenLen bounds what is parsed at all. Logout tokens are a
	// few hundred bytes; the endpoint that receives them is open to anyone.
	maxLogoutTokenLen = 16 << 10
	// maxLogoutAge is how old a logout token's iat may be. The provider
	// sends it the moment the session ends, so anything older was captured
	// and is being replayed, or waited somewhere it should not have.
	maxLogoutAge = 5 * time.Minute
)

// LogoutToken is what a verified back-channel logout token asks: end the
// provider session SID, or, when SID is empty, every session of Subject.
type LogoutToken struct {
	Subject string // sub; "" when only sid was sent
	SID     string // sid; "" when only sub was sent
	JTI     string // the token's ID, for the caller's replay check
	// IssuedAt is iat. Expires is the last moment VerifyLogoutToken accepts
	// this token (the earlier of exp and iat + 5m, plus the clock skew):
	// keep JTI as seen at least until then, and a replay is refused
	// whatever the store holds afterwards.
	IssuedAt, Expires time.Time
}

// VerifyLogoutToken verifies raw as a back-channel logout token of the
// configured provider and for this client, at time now (OIDC Back-Channel
// Logout 1.0 §2.6):
//
//   - a compact JWS signed with a key of the issuer's JWKS, with one of the
//     algorithms allowed for ID tokens (never none, never HMAC);
//   - a typ header, if present, of logout+jwt (explicit typing, so no other
//     JWT of the provider passes as a logout token);
//   - iss equal to the issuer exactly; aud containing the client ID;
//   - iat present, not more than the clock skew ahead of now and not more
//     than 5 minutes (plus skew) behind; exp, if present, not passed by
//     more than the skew and not before iat;
//   - jti, a non-empty string; sid or sub, strings; none longer than 255 bytes;
//   - events, an object whose member
//     http://schemas.openid.net/event/backchannel-logout is an object;
//   - no nonce claim, whatever its value, so that an ID token can never be
//     replayed as a logout token.
//
// It does not check that the jti is unseen: the caller keeps seen JTIs in
// the store the replicas share, until LogoutToken.Expires. Errors say what
// was expected and what arrived, and quote at most a bounded claim, never
// the token.
func (c *Client) VerifyLogoutToken(ctx context.Context, raw string, now time.Time) (LogoutToken, error) {
	payload, err := c.verifyLogoutJWS(ctx, raw)
	if err != nil {
		return LogoutToken{}, err
	}
	lt, err := c.checkLogoutClaims(payload, now)
	if err != nil {
		return LogoutToken{}, fmt.Errorf("oidc: logout token %w", err)
	}
	return lt, nil
}

// verifyLogoutJWS checks the JOSE layer of raw and returns the verified
// payload.
func (c *Client) verifyLogoutJWS(ctx context.Context, raw string) ([]byte, error) {
	switch {
	case raw == "":
		return nil, errors.New("oidc: logout token is empty")
	case len(raw) > maxLogoutTokenLen:
		return nil, fmt.Errorf("oidc: logout token: want at most %d bytes, got %d", maxLogoutTokenLen, len(raw))
	}
	// Compact only: the JSON serialization and JWE (five parts) are not
	// what a provider POSTs here, and go-jose refuses any alg outside the
	// list before looking at a key.
	jws, err := jose.ParseSignedCompact(raw, c.algs)
	if err != nil {
		return nil, fmt.Errorf("oidc: logout token: want a compact JWS signed with one of %q: %v", c.algs, err)
	}
	if err := checkLogoutTyp(jws.Signatures[0].Header); err != nil {
		return nil, err
	}
	// go-oidc's key set parses raw again with every algorithm allowed; the
	// bytes are the ones just checked, so the alg is already one of ours.
	// It picks the key by kid from the issuer's JWKS alone (an embedded jwk,
	// jku or x5u is never used) and refetches the JWKS for an unknown kid.
	payload, err := c.keys.VerifySignature(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("oidc: logout token: signature does not verify with the issuer's keys: %v", err)
	}
	return payload, nil
}

// checkLogoutTyp applies explicit typing (OIDC Back-Channel Logout 1.0
// §2.4, RFC 8725 §3.11): typ, when present, is logout+jwt, compared
// case-insensitively and with the optional "application/" prefix (RFC 7515
// §4.1.9).
func checkLogoutTyp(h jose.Header) error {
	v, ok := h.ExtraHeaders[jose.HeaderType]
	if !ok {
		return nil
	}
	s, _ := v.(string)
	if t := strings.TrimPrefix(strings.ToLower(s), "application/"); t != "logout+jwt" {
		return fmt.Errorf("oidc: logout token typ header: want \"logout+jwt\", got %.40s", jsonText(v))
	}
	return nil
}

// checkLogoutClaims checks a verified payload. Errors lack the "oidc:
// logout token" prefix, which the caller adds.
func (c *Client) checkLogoutClaims(payload []byte, now time.Time) (LogoutToken, error) {
	var cl map[string]json.RawMessage
	if err := json.Unmarshal(payload, &cl); err != nil || cl == nil {
		return LogoutToken{}, fmt.Errorf("claims: want a JSON object, got %.40q", payload)
	}

	// The claims an ID token shares (Core §3.1.3.7): iss, aud, iat.
	if iss, err := requiredString("iss", cl["iss"]); err != nil || iss != c.issuer {
		return LogoutToken{}, fmt.Errorf("iss: want %q, got %.80s", c.issuer, shown(cl["iss"]))
	}
	aud, err := audiences(cl["aud"])
	if err != nil {
		return LogoutToken{}, err
	}
	if id := c.oauth2.ClientID; !slices.Contains(aud, id) {
		return LogoutToken{}, fmt.Errorf("aud: want %q among the audiences, got %.80s", id, cl["aud"])
	}

	skew := policy.ClockSkew
	iat, err := parseNumericDate("iat", cl["iat"])
	switch {
	case err != nil:
		return LogoutToken{}, err
	case iat.IsZero():
		return LogoutToken{}, errors.New("has no iat; want the time it was issued")
	case iat.After(now.Add(skew)):
		return LogoutToken{}, fmt.Errorf("iat %s is more than %s after now %s", stamp(iat), skew, stamp(now))
	case iat.Before(now.Add(-maxLogoutAge - skew)):
		return LogoutToken{}, fmt.Errorf("iat %s is more than %s before now %s (replayed or delayed token)",
			stamp(iat), maxLogoutAge+skew, stamp(now))
	}
	until := iat.Add(maxLogoutAge)
	exp, err := parseNumericDate("exp", cl["exp"])
	switch {
	case err != nil:
		return LogoutToken{}, err
	case exp.IsZero():
		// Absent: drafts of the spec had no exp, and iat bounds the age anyway.
	case exp.Before(iat):
		return LogoutToken{}, fmt.Errorf("exp %s is before iat %s", stamp(exp), stamp(iat))
	case now.After(exp.Add(skew)):
		return LogoutToken{}, fmt.Errorf("expired at %s, more than %s before now %s", stamp(exp), skew, stamp(now))
	case exp.Before(until):
		until = exp
	}

	jti, err := requiredString("jti", cl["jti"])
	if err != nil {
		return LogoutToken{}, err
	}

	if err := checkLogoutEvent(cl["events"]); err != nil {
		return LogoutToken{}, err
	}
	// Checked by presence: "nonce": null or "" is just as forbidden.
	if raw, ok := cl["nonce"]; ok {
		return LogoutToken{}, fmt.Errorf("nonce: want no nonce claim, got %.40s", shown(raw))
	}

	sub, err := boundedString("sub", cl["sub"])
	if err != nil {
		return LogoutToken{}, err
	}
	sid, err := boundedString("sid", cl["sid"])
	if err != nil {
		return LogoutToken{}, err
	}
	if sub == "" && sid == "" {
		return LogoutToken{}, errors.New("claims: want a sub or a sid claim, got neither")
	}
	return LogoutToken{Subject: sub, SID: sid, JTI: jti, IssuedAt: iat, Expires: until.Add(skew)}, nil
}

// checkLogoutEvent requires events to be an object whose
// logoutEvent member is an object (§2.4: it SHOULD be {}, and
// any members are ignored).
func checkLogoutEvent(raw json.RawMessage) error {
	if kind(raw) != '{' {
		return fmt.Errorf("events: want a JSON object, got %.40s", shown(raw))
	}
	var events map[string]json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil {
		return fmt.Errorf("events: want a JSON object, got %.40s", raw)
	}
	member, ok := events[logoutEvent]
	if !ok {
		return fmt.Errorf("events: want member %q, got %d other members", logoutEvent, len(events))
	}
	if kind(member) != '{' {
		return fmt.Errorf("events member %s: want a JSON object, got %.40s", logoutEvent, shown(member))
	}
	return nil
}

// requiredString reads a claim that must be a non-empty string of at most
// maxClaimLen bytes.
func requiredString(name string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", fmt.Errorf("%s: want a non-empty string, got nothing", name)
	}
	v, err := boundedString(name, raw)
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", fmt.Errorf("%s: want a non-empty string, got \"\"", name)
	}
	return v, nil
}

// audiences reads aud: one string, or an array of strings (RFC 7519 §4.1.3).
func audiences(raw json.RawMessage) ([]string, error) {
	var one string
	var many []string
	switch kind(raw) {
	case '"':
		if json.Unmarshal(raw, &one) == nil {
			return []string{one}, nil
		}
	case '[':
		if json.Unmarshal(raw, &many) == nil {
			return many, nil
		}
	}
	return nil, fmt.Errorf("aud: want a string or an array of strings, got %.80s", shown(raw))
}

// kind returns the first byte of a JSON value, which names its type, or 0
// when there is none.
func kind(raw json.RawMessage) byte {
	if raw = bytes.TrimSpace(raw); len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// shown is raw for an error message, or "nothing" for an absent claim.
func shown(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	return string(raw)
}

// jsonText renders a decoded header value as the JSON it came from.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
