package oidc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/policy"
)

// maxIATAge is how old an ID token may be when it reaches us. A code is
// redeemed seconds after the user authenticates, so an older iat means a
// captured token is being replayed or the provider's clock is badly off.
const maxIATAge = 10 * time.Minute

// Expect is what the callback knows about the round trip it completes, taken
// from the server-side pending-flow record, never from the request.
type Expect struct {
	Nonce, Verifier string
	Level           *policy.Level // what was asked for; nil for a plain login
	Session         *policy.Facts // the session a step-up started from; nil on a first login
	// AuthorizationDetails, when not "", are the authorization_details
	// sent (AuthRequest.AuthorizationDetails): the token response must
	// carry them back, equal as JSON values.
	AuthorizationDetails string
}

// StepUpError reports a verified ID token whose claims do not satisfy the
// level asked for: the provider ignored acr_values, the user edited the
// authorize URL, auth_time is stale, and so on. Redirecting again would loop,
// so the proxy answers 403.
type StepUpError struct {
	Level  string // policy.Level.Name
	Reason string // from policy.Level.Satisfied; loggable, not for clients
}

func (e *StepUpError) Error() string {
	return fmt.Sprintf("oidc: returned claims do not satisfy level %q: %s", e.Level, e.Reason)
}

// ErrSubjectMismatch reports a step-up that authenticated a different user
// (iss+sub) than the session it started from: an attacker's own MFA must
// never upgrade a victim's session, so the proxy ends the session.
var ErrSubjectMismatch = errors.New("oidc: step-up completed as a different user")

// Result is what a verified login proves: the facts the policy judges, and
// the provider's session ID.
type Result struct {
	Facts policy.Facts
	// SID is the ID token's sid claim, the provider's session ID (OIDC
	// Front- and Back-Channel Logout): a logout token naming it ends the
	// gateway sessions that came from that provider session. "" when the
	// provider sent none.
	SID string
}

// maxClaimLen bounds the session and token IDs stepgate stores and
// indexes: generous for any provider's IDs, small enough for a cookie and a
// store key.
const maxClaimLen = 255

// idClaims are the ID token claims go-oidc does not decode for us.
type idClaims struct {
	AZP      string          `json:"azp"`
	AuthTime json.RawMessage `json:"auth_time"` // checked by hand: must be a number
	ACR      string          `json:"acr"`
	AMR      []string        `json:"amr"`
	ACRS     []string        `json:"acrs"` // Entra ID authentication contexts
	Email    string          `json:"email"`
	SID      json.RawMessage `json:"sid"` // checked by hand: must be a bounded string
}

// Exchange redeems code (with the PKCE verifier), verifies the ID token from
// the token response and returns what it proves about the user, with the
// provider's session ID.
//
// On top of go-oidc's signature, iss, aud and exp checks it requires the
// nonce sent, a correct azp (OIDC Core §3.1.3.7), a recent iat, a sane
// auth_time (present when max_age was sent). For a step-up it requires the
// session's iss+sub (else an error wrapping ErrSubjectMismatch), and for a
// level that the returned claims satisfy it (else a *StepUpError). A sid
// that is not a string of at most 255 bytes fails the exchange. When
// authorization_details were sent, the token response must carry the same
// (else an error wrapping ErrAuthorizationDetailsMismatch).
func (c *Client) Exchange(ctx context.Context, code string, want Expect) (Result, error) {
	// Without these the checks below would compare against nothing.
	if want.Nonce == "" {
		return Result{}, errors.New("oidc: exchange: expected nonce is empty")
	}
	if want.Verifier == "" {
		return Result{}, errors.New("oidc: exchange: PKCE verifier is empty")
	}
	var wantDetails any
	if want.AuthorizationDetails != "" {
		var err error
		if wantDetails, err = parseDetails(want.AuthorizationDetails); err != nil {
			return Result{}, fmt.Errorf("oidc: exchange: expected %w", err)
		}
	}

	ctx = gooidc.ClientContext(ctx, c.httpClient)
	tok, err := c.oauth2.Exchange(ctx, code, oauth2.VerifierOption(want.Verifier))
	if err != nil {
		err = fmt.Errorf("oidc: code exchange: %w", err)
		var re *oauth2.RetrieveError
		if unreachable(ctx, err) || errors.As(err, &re) && re.Response != nil && serverError(re.Response.StatusCode) {
			return Result{}, &unavailable{err}
		}
		return Result{}, err
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Result{}, errors.New("oidc: token response has no id_token")
	}
	vctx, fetched := withFetchNote(ctx)
	idt, err := c.verifier.Verify(vctx, raw)
	if err != nil {
		if fetched.err != nil {
			// The keys could not be fetched: the token may be fine.
			return Result{}, &unavailable{&verifyError{err}}
		}
		return Result{}, &verifyError{err}
	}
	var cl idClaims
	if err := idt.Claims(&cl); err != nil {
		return Result{}, fmt.Errorf("oidc: id token claims: %w", err)
	}

	now := c.now()
	authTime, err := c.check(idt, &cl, want, now)
	if err != nil {
		return Result{}, err
	}
	sid, err := boundedString("sid", cl.SID)
	if err != nil {
		return Result{}, fmt.Errorf("oidc: id token %w", err)
	}
	f := policy.Facts{
		Issuer:     idt.Issuer,
		Subject:    idt.Subject,
		Email:      cl.Email,
		ACR:        cl.ACR,
		AMR:        cl.AMR,
		ACRS:       cl.ACRS,
		AuthTime:   authTime,
		VerifiedAt: now,
	}
	if s := want.Session; s.Authenticated() && (s.Issuer != f.Issuer || s.Subject != f.Subject) {
		return Result{}, fmt.Errorf("%w: want iss %q sub %q, got iss %q sub %q",
			ErrSubjectMismatch, s.Issuer, s.Subject, f.Issuer, f.Subject)
	}
	if want.Level != nil {
		if ok, reason := want.Level.Satisfied(&f, now); !ok {
			return Result{}, &StepUpError{Level: want.Level.Name, Reason: reason}
		}
	}
	if wantDetails != nil {
		// A top-level member of the token response (RFC 9396 §7).
		if err := matchDetails(wantDetails, tok.Extra("authorization_details")); err != nil {
			return Result{}, err
		}
	}
	return Result{Facts: f, SID: sid}, nil
}

// check applies the ID token validation steps go-oidc leaves to its caller
// and returns auth_time (zero when absent).
func (c *Client) check(idt *gooidc.IDToken, cl *idClaims, want Expect, now time.Time) (time.Time, error) {
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(want.Nonce)) != 1 {
		// Neither value goes in the message: nonces are secrets until used.
		return time.Time{}, errors.New("oidc: id token nonce does not match the one sent")
	}
	if idt.Subject == "" {
		return time.Time{}, errors.New("oidc: id token has no sub")
	}

	// Core §3.1.3.7: several audiences need an azp naming us,
	// and an azp, if present, must name us.
	clientID := c.oauth2.ClientID
	if len(idt.Audience) > 1 && cl.AZP == "" {
		return time.Time{}, fmt.Errorf("oidc: id token has audiences %q but no azp; want azp %q", idt.Audience, clientID)
	}
	if cl.AZP != "" && cl.AZP != clientID {
		return time.Time{}, fmt.Errorf("oidc: id token azp: want %q, got %q", clientID, cl.AZP)
	}

	skew := policy.ClockSkew
	iat := idt.IssuedAt
	switch {
	case iat.IsZero():
		return time.Time{}, errors.New("oidc: id token has no iat")
	case iat.Before(now.Add(-maxIATAge)):
		return time.Time{}, fmt.Errorf("oidc: id token iat %s is more than %s before now %s (replayed or delayed token)",
			stamp(iat), maxIATAge, stamp(now))
	case iat.After(now.Add(skew)):
		return time.Time{}, fmt.Errorf("oidc: id token iat %s is more than %s after now %s", stamp(iat), skew, stamp(now))
	}

	authTime, err := parseNumericDate("auth_time", cl.AuthTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("oidc: id token %w", err)
	}
	switch {
	case authTime.IsZero():
		if want.Level != nil && want.Level.MaxAge > 0 {
			return time.Time{}, fmt.Errorf("oidc: id token has no auth_time, but max_age=%d was sent (Core §3.1.2.1 requires it)",
				int64(want.Level.MaxAge/time.Second))
		}
	case authTime.After(now.Add(skew)):
		return time.Time{}, fmt.Errorf("oidc: auth_time %s is more than %s after now %s", stamp(authTime), skew, stamp(now))
	case authTime.After(iat.Add(skew)):
		return time.Time{}, fmt.Errorf("oidc: auth_time %s is more than %s after iat %s", stamp(authTime), skew, stamp(iat))
	}
	return authTime, nil
}

// maxNumericDate (9999-12-31) keeps float-to-int conversion well defined.
const maxNumericDate = 253402300799

// parseNumericDate reads the optional JWT NumericDate (RFC 7519 §2) claim
// name: absent or null gives the zero time; anything but a positive number
// is an error.
func parseNumericDate(name string, raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f <= 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("%s: want seconds since the epoch, got %.40s", name, raw)
	}
	return time.Unix(int64(math.Floor(f)), 0), nil
}

// boundedString reads an optional string claim: absent gives "", anything
// but a JSON string of at most maxClaimLen bytes is an error.
func boundedString(name string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	var v string
	// json.Unmarshal would take null for "" without complaint.
	if raw[0] != '"' || json.Unmarshal(raw, &v) != nil {
		return "", fmt.Errorf("%s: want a string, got %.40s", name, raw)
	}
	if len(v) > maxClaimLen {
		return "", fmt.Errorf("%s: want a string of at most %d bytes, got %d bytes", name, maxClaimLen, len(v))
	}
	return v, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// verifyError is go-oidc's verification error with our prefix: its messages
// already name what was expected and what arrived, and some start with
// "oidc: " themselves. Unwrap keeps errors.As(err, *gooidc.TokenExpiredError)
// working.
type verifyError struct{ err error }

func (e *verifyError) Error() string {
	return "oidc: id token rejected: " + strings.TrimPrefix(e.err.Error(), "oidc: ")
}

func (e *verifyError) Unwrap() error { return e.err }
