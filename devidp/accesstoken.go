package devidp

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// op signs its JWT access tokens with header typ "JWT", where RFC 9068 §2.1
// wants "at+jwt", and puts in them nothing of the login (acr, amr,
// auth_time). So devidp mints access tokens itself, in the one place op
// lets it: op makes a bearer token by "encrypting" "<token ID>:<subject>"
// with its Crypto, and an authorization code by encrypting the auth request
// ID. devidp's Crypto is a lookup table, not a cipher: for a token that
// CreateAccessToken just recorded it returns the RFC 9068 JWT or a random
// opaque handle, as the client is configured; for a code, a random string
// that SaveAuthCode keeps. Minting there, before op builds the ID token,
// keeps the ID token's at_hash over the token actually issued.

// accessTokenType is the typ header of a JWT access token (RFC 9068 §2.1).
const accessTokenType = "at+jwt"

// tokenCrypto is op's Crypto for devidp (see above).
type tokenCrypto struct{ s *storage }

func (c tokenCrypto) Encrypt(s string) (string, error) { return c.s.mint(s) }
func (c tokenCrypto) Decrypt(s string) (string, error) { return c.s.lookup(s) }

// mint returns the token or code op asks for with in.
func (s *storage) mint(in string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, subject, isToken := strings.Cut(in, ":")
	if !isToken {
		if _, ok := s.requests[in]; ok {
			return randomToken(), nil // an authorization code
		}
		return "", errors.New("devidp: asked to mint a code for an unknown auth request")
	}
	t, ok := s.tokens[id]
	switch {
	case !ok || t.subject != subject:
		return "", errors.New("devidp: asked to mint an unknown access token")
	case t.value != "":
		return "", errors.New("devidp: access token already minted")
	}
	value := randomToken()
	if !t.opaque {
		var err error
		if value, err = s.signAccessToken(t); err != nil {
			return "", err
		}
	}
	t.value = value
	s.byValue[value] = id
	return value, nil
}

// lookup is how op reads an access token it issued (at /userinfo and
// /revoke): "<token ID>:<subject>" for a live token, else an error.
func (s *storage) lookup(value string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.live(value, time.Now())
	if !ok {
		return "", errors.New("devidp: access token unknown, expired or revoked")
	}
	return t.id + ":" + t.subject, nil
}

// live returns the token issued as value if it has not expired or been
// revoked. The caller holds s.mu.
func (s *storage) live(value string, now time.Time) (*accessToken, bool) {
	t, ok := s.tokens[s.byValue[value]]
	if !ok || value == "" || t.value != value || !now.Before(t.expires) {
		return nil, false
	}
	return t, true
}

// jwtAccessToken is the payload of an RFC 9068 access token (§2.2), with
// the login's acr, amr and auth_time (§2.2.1) and sid, and cnf for a token
// bound to a DPoP key (RFC 9449 §6.1).
type jwtAccessToken struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	SID      string   `json:"sid,omitempty"`
	Cnf      *cnf     `json:"cnf,omitempty"`
}

// cnf is the confirmation claim of a DPoP-bound token (RFC 9449 §6.1).
type cnf struct {
	JKT string `json:"jkt"`
}

func (s *storage) signAccessToken(t *accessToken) (string, error) {
	claims := jwtAccessToken{
		Issuer: s.issuer, Subject: t.subject, Audience: t.audience,
		Expiry: t.expires.Unix(), IssuedAt: t.issued.Unix(), ID: t.id, ClientID: t.clientID,
		Scope: strings.Join(t.scopes, " "), ACR: t.acr, AMR: t.amr, SID: t.sid,
	}
	if !t.authTime.IsZero() {
		claims.AuthTime = t.authTime.Unix()
	}
	if t.jkt != "" {
		claims.Cnf = &cnf{JKT: t.jkt}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devidp: access token claims: %w", err)
	}
	jws, err := s.atSigner.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devidp: sign access token: %w", err)
	}
	return jws.CompactSerialize()
}

// randomToken returns 256 random bits, base64url: an opaque access token
// or an authorization code.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
