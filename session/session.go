// Package session keeps stepgate's sessions and pending logins in sealed
// cookies, so the gateway holds no server-side state.
//
// A session cookie carries policy.Facts: what the gateway verified about the
// user's authentication, and the IdP's session ID when the ID token named
// one. A pending cookie carries one login or step-up round trip (state,
// nonce, PKCE verifier, the level asked for, where to return). Both are
// sealed with AES-256-GCM under the cookie's name, with keys derived per
// purpose from operator secrets, so a value sealed for one purpose or one
// cookie name never opens as another (threat model case 66). The keys are
// bound to the deployment (issuer and client_id) as well, and a session
// naming another issuer is refused, so a cookie from staging never opens in
// production even when the two share a secret (threat model case 85).
//
// Cookies are host-only: with Secure set they use the "__Host-" prefix, which
// browsers refuse to accept from a sibling subdomain, and a request carrying
// two cookies of the session's name is rejected rather than guessed at
// (threat model case 68). Every Save issues a new session ID.
//
// Times passed in as now are the caller's clock; the age of a cookie is
// checked against the time sealed inside it.
package session

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/gorilla/sessions"

	"github.com/stepgate/stepgate/policy"
)

// Config configures a Store.
type Config struct {
	// Secrets are the keys every cookie key is derived from, each at least
	// 32 bytes. Secrets[0] seals new cookies; all of them open cookies, so a
	// new secret is rolled out by putting it first and dropping the old one
	// once a Lifetime has passed.
	Secrets [][]byte

	// Lifetime is the absolute lifetime of a session, counted from its login
	// or last step-up. Loading a session never extends it.
	Lifetime time.Duration

	// Secure is true when the public URL is https: cookies get the Secure
	// attribute and the "__Host-" name prefix.
	Secure bool

	// Issuer and ClientID name the deployment: the OpenID provider's issuer
	// exactly as configured, and the gateway's client_id there. Every
	// cookie key is derived with both, so a cookie sealed by a gateway of
	// another issuer or another client never opens here, even when the two
	// share a secret (staging and production, or two apps at one IdP).
	Issuer, ClientID string
}

// MinSecretLen is the shortest secret New accepts.
const MinSecretLen = 32

// maxCookieLen is the longest cookie value sealed or opened. Browsers keep
// about 4 KB per cookie; anything longer is refused before any crypto runs.
const maxCookieLen = 4096

// Key derivation labels, one per purpose, so the keys are independent of
// one another; keyInfo adds the deployment. v2 added the deployment; v3 moved
// from securecookie's AES-CTR and HMAC key pair to one AES-256-GCM key, so
// cookies sealed under earlier versions no longer open.
const (
	infoSession = "stepgate session v3 aes-256-gcm"
	infoPending = "stepgate pending v3 aes-256-gcm"
)

// ErrNoSession reports a request without a session cookie.
var ErrNoSession = errors.New("session: no session cookie")

// Store seals and opens session and pending-login cookies. It is safe for
// concurrent use.
type Store struct {
	name     string
	lifetime time.Duration
	secure   bool
	issuer   string // a session naming another issuer is refused
	session  keyring
	pending  keyring
	tokens   [][]byte // HMAC keys of Token; index 0 makes tokens
}

// New returns a Store for cfg, or an error if cfg is unusable.
func New(cfg Config) (*Store, error) {
	if len(cfg.Secrets) == 0 {
		return nil, fmt.Errorf("session: no secrets; want at least one of %d bytes or more (generate: openssl rand -base64 32)", MinSecretLen)
	}
	for i, sec := range cfg.Secrets {
		if len(sec) < MinSecretLen {
			return nil, fmt.Errorf("session: secret %d is %d bytes; want at least %d (generate: openssl rand -base64 32)", i, len(sec), MinSecretLen)
		}
	}
	if cfg.Lifetime < time.Second {
		return nil, fmt.Errorf("session: lifetime %v; want at least 1s", cfg.Lifetime)
	}
	if cfg.Issuer == "" {
		return nil, errors.New("session: no issuer; want the OpenID provider's issuer, so cookies are bound to this deployment")
	}
	if cfg.ClientID == "" {
		return nil, errors.New("session: no client_id; want the gateway's client_id, so cookies are bound to this deployment")
	}
	s := &Store{name: "stepgate", lifetime: cfg.Lifetime, secure: cfg.Secure, issuer: cfg.Issuer}
	if cfg.Secure {
		s.name = "__Host-stepgate"
	}
	d := deployment{cfg.Issuer, cfg.ClientID}
	for _, sec := range cfg.Secrets {
		sk, err := newAEAD(sec, d, infoSession)
		if err != nil {
			return nil, err
		}
		pk, err := newAEAD(sec, d, infoPending)
		if err != nil {
			return nil, err
		}
		s.session = append(s.session, sk)
		s.pending = append(s.pending, pk)
		mk, err := hkdf.Key(sha256.New, sec, nil, keyInfo(infoToken, d), 32)
		if err != nil {
			return nil, fmt.Errorf("session: deriving key: %w", err)
		}
		s.tokens = append(s.tokens, mk)
	}
	return s, nil
}

// infoToken labels the key of Token's MACs.
const infoToken = "stepgate token v1 hmac-sha256"

// Token returns a MAC of parts for purpose, unpadded base64url: a value a
// page can carry (a form's CSRF token) that any replica sharing the
// secrets can check with CheckToken, and nobody else can make.
func (s *Store) Token(purpose string, parts ...string) string {
	return base64.RawURLEncoding.EncodeToString(mac(s.tokens[0], purpose, parts))
}

// CheckToken reports, in constant time, whether tok is Token(purpose,
// parts...) under any of the secrets (so a rotation does not break pages
// already shown).
func (s *Store) CheckToken(tok, purpose string, parts ...string) bool {
	got, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return false
	}
	ok := false
	for _, k := range s.tokens {
		ok = hmac.Equal(got, mac(k, purpose, parts)) || ok
	}
	return ok
}

// mac is HMAC-SHA256 over purpose and parts, each length-prefixed so that
// no two lists of parts share an input.
func mac(key []byte, purpose string, parts []string) []byte {
	m := hmac.New(sha256.New, key)
	var n [4]byte
	for _, p := range append([]string{purpose}, parts...) {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// deployment is what every cookie key is bound to.
type deployment struct{ issuer, clientID string }

// keyInfo is the HKDF info for one key: label, issuer and client_id, each
// preceded by its length (4 bytes, big-endian). With the lengths no two
// deployments share an info, however their fields are spelled: issuer
// "a|b" with client "c" is not issuer "a" with client "b|c".
func keyInfo(label string, d deployment) string {
	var b []byte
	for _, f := range []string{label, d.issuer, d.clientID} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return string(b)
}

// Lifetime is how long a session lasts from its Save.
func (s *Store) Lifetime() time.Duration { return s.lifetime }

// CookieName returns the session cookie's name: "__Host-stepgate" when
// Secure, else "stepgate".
func (s *Store) CookieName() string { return s.name }

// State is one session as sealed in its cookie.
type State struct {
	ID    string // random 128-bit id, base64url; new on every Save
	Facts policy.Facts
	// IdPSID is the IdP's session ID, the ID token's sid claim, or "" when
	// the token had none. A back-channel logout names it to end every
	// gateway session that the IdP session started.
	IdPSID  string
	Issued  time.Time // Save's now, whole seconds: a "log out everywhere" voids sessions issued before it
	Expires time.Time // Issued + Lifetime
}

// Load opens the request's session cookie. It returns ErrNoSession when there
// is none, and another error when the cookie was tampered with, sealed with
// an unknown key or for another deployment, names another issuer, expired,
// is malformed or was sent twice. Callers treat every error as "no session".
func (s *Store) Load(r *http.Request, now time.Time) (State, error) {
	value, n := cookieValue(r.Header, s.name)
	switch {
	case n == 0:
		return State{}, ErrNoSession
	case n > 1:
		return State{}, fmt.Errorf("session: %d cookies named %q; want one (a sibling site may be setting cookies)", n, s.name)
	}
	sc := getScratch()
	defer sc.free()
	b, err := s.session.open(sc, s.name, value)
	if err != nil {
		return State{}, err
	}
	st, issued, err := decodeState(b)
	if err != nil {
		return State{}, fmt.Errorf("session: cookie %q holds a malformed record: %w", s.name, err)
	}
	// The keys bind the cookie to this deployment, not the facts inside it:
	// facts of another provider, sealed under these keys by mistake or by a
	// tool, must still open no session here.
	if st.Facts.Issuer != s.issuer {
		return State{}, fmt.Errorf("session: cookie %q holds a session of issuer %q; want %q", s.name, st.Facts.Issuer, s.issuer)
	}
	// Expires follows the configured Lifetime, not the one in force at
	// Save, so shortening Lifetime ends older sessions at once.
	// The configured Lifetime may shorten a session, never lengthen it.
	st.Issued = issued
	if end := issued.Add(s.lifetime); st.Expires.IsZero() || end.Before(st.Expires) {
		st.Expires = end
	}
	if !now.Before(st.Expires) {
		return State{}, fmt.Errorf("session: cookie %q expired at %s; now %s",
			s.name, st.Expires.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return st, nil
}

// cookieValue returns the value of the first cookie called name in h's
// Cookie lines, and how many cookies of that name they carry.
//
// It stands in for Request.CookiesNamed on the path every request takes.
// CookiesNamed checks each byte of the value against the cookie-octet set
// and allocates a Cookie for it, about half the cost of Load, while a sealed
// value is checked byte by byte again anyway, against the narrower base64url
// alphabet, when it is decoded. The split is readCookies' own: pairs
// separated by ';', name and pair trimmed of ASCII white space, and the
// value's enclosing double quotes removed. Unlike readCookies, a pair of
// this name counts even when its value has bytes no cookie may hold, so
// such a second cookie is refused rather than overlooked.
func cookieValue(h http.Header, name string) (value string, n int) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = textproto.TrimString(part)
			k, v, _ := strings.Cut(part, "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if n++; n == 1 {
				value = v
			}
		}
	}
	if len(value) > 1 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	return value, n
}

// Save is SaveWith for a session without an IdP session ID.
func (s *Store) Save(w http.ResponseWriter, f policy.Facts, now time.Time) (State, error) {
	return s.SaveWith(w, f, "", now)
}

// SaveWith seals f and idpSID, the ID token's sid claim ("" when it had
// none), into a new session, with a new ID and Expires = now + Lifetime, and
// sets its cookie on w. The returned State is exactly what Load will return:
// times in whole seconds, UTC.
func (s *Store) SaveWith(w http.ResponseWriter, f policy.Facts, idpSID string, now time.Time) (State, error) {
	id, err := random(16)
	if err != nil {
		return State{}, err
	}
	f.AuthTime = unixTime(f.AuthTime)
	f.VerifiedAt = unixTime(f.VerifiedAt)
	if len(f.AMR) == 0 {
		f.AMR = nil
	}
	if len(f.ACRS) == 0 {
		f.ACRS = nil
	}
	issued := unixTime(now)
	st := State{ID: id, Facts: f, IdPSID: idpSID, Issued: issued, Expires: issued.Add(s.lifetime)}
	sc := getScratch()
	defer sc.free()
	b, err := appendState(sc.text[:0], st, issued)
	if err != nil {
		return State{}, err
	}
	v, err := s.session.seal(sc, s.name, b)
	if err != nil {
		return State{}, err
	}
	http.SetCookie(w, s.cookie(s.name, v, s.lifetime))
	return st, nil
}

// Clear expires the session cookie.
func (s *Store) Clear(w http.ResponseWriter) {
	http.SetCookie(w, s.cookie(s.name, "", -1))
}

// cookie builds a host-only cookie: Path=/ and no Domain, as the "__Host-"
// prefix requires. A negative maxAge expires it.
func (s *Store) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	age := -1
	if maxAge > 0 {
		age = int(maxAge / time.Second)
	}
	return sessions.NewCookie(name, value, &sessions.Options{
		Path:     "/",
		MaxAge:   age,
		Secure:   s.secure,
		HttpOnly: true,
		// Lax, not Strict: the IdP's redirect back is a cross-site
		// top-level GET and must carry both cookies.
		SameSite: http.SameSiteLaxMode,
	})
}

// random returns n bytes from crypto/rand, base64url without padding.
func random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session: reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
