// Package dpop verifies DPoP proofs (RFC 9449): the JWT a client signs with
// its own key for each request, proving that it holds the key an access
// token is bound to (the token's cnf.jkt).
//
// Verify is pure: it checks one proof against what the request and the
// token say, and returns the proof's jti for the caller's replay check,
// which needs the store the replicas share. NewProof is the client side,
// for tests and documentation.
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// ErrInvalidProof is wrapped by every error about the proof itself: the
// caller answers 401 with error="invalid_dpop_proof" (RFC 9449 §7.1).
var ErrInvalidProof = errors.New("dpop: invalid proof")

const (
	// MaxProofLen bounds what is parsed at all: a proof with an RSA-4096
	// jwk is under 2 KiB, and the header arrives with every request.
	MaxProofLen = 8 << 10
	// maxJTILen bounds the jti the caller stores for its replay check.
	maxJTILen = 255
	// DefaultWindow is how far iat may be from now when Expect.Window is
	// zero: proofs are made for one request, moments before it is sent.
	DefaultWindow = 60 * time.Second
)

// algs are the signature algorithms a proof may use: asymmetric only (RFC
// 9449 §4.3 forbids none and MACs, which a proof's public jwk could not
// verify anyway, but the HMAC-with-the-public-key confusion is refused
// before any key is looked at).
var algs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// Algorithms returns the algorithms Verify accepts, space-separated, as a
// DPoP challenge's algs parameter lists them (RFC 9449 §7.1).
func Algorithms() string {
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	return strings.Join(names, " ")
}

// Expect is what the request and its access token say a proof must match.
type Expect struct {
	Method      string // htm
	URL         string // htu: the request's public URL without query and fragment
	AccessToken string // raw token the proof must be bound to via ath; "" = proof for the token endpoint (no ath)
	JKT         string // the token's cnf.jkt the proof's key must have; "" = any key
	Now         time.Time
	Window      time.Duration // iat within ±Window; zero = 60s
}

// Proof is what a verified proof says: its jti (for the caller's replay
// check), the RFC 7638 thumbprint of its key and when it was made.
type Proof struct {
	JTI, JKT string
	IssuedAt time.Time
}

// Verify checks proof, the value of a request's DPoP header, against e
// (RFC 9449 §4.3):
//
//   - one compact JWS of at most MaxProofLen bytes, typ dpop+jwt, signed
//     with an asymmetric algorithm by the public key in its jwk header;
//   - jti a non-empty string of at most 255 bytes;
//   - htm equal to e.Method (case-sensitive, as HTTP methods are);
//   - htu equal to e.URL once both are normalized (scheme and host
//     case-insensitive, default port dropped, percent-encoding case and
//     unreserved characters normalized), query and fragment ignored;
//   - iat within e.Window of e.Now;
//   - when e.AccessToken is set, ath equal to the base64url SHA-256 of it;
//   - when e.JKT is set, the key's thumbprint equal to it.
//
// It does not check that the jti is unseen: the caller remembers the JTIs
// of accepted proofs for at least twice the window. Errors about the proof
// wrap ErrInvalidProof and never quote the proof or the token; an e that
// cannot be checked against (no method, a URL that does not parse) is an
// error that does not.
func Verify(proof string, e Expect) (Proof, error) {
	want, err := e.htu()
	if err != nil {
		return Proof{}, err
	}
	if e.Method == "" {
		return Proof{}, errors.New("dpop: expected method is empty")
	}
	window := e.Window
	if window <= 0 {
		window = DefaultWindow
	}

	switch {
	case proof == "":
		return Proof{}, invalid("the proof is empty")
	case len(proof) > MaxProofLen:
		return Proof{}, invalid("want at most %d bytes, got %d", MaxProofLen, len(proof))
	}
	// Compact only, with an allowed alg: go-jose refuses anything else
	// before looking at a key, and refuses a jwk header with private or
	// symmetric key material while parsing it.
	jws, err := jose.ParseSignedCompact(proof, algs)
	if err != nil {
		return Proof{}, invalid("want a compact JWS signed with one of %q: %v", algs, err)
	}
	h := jws.Signatures[0].Header
	if v, ok := h.ExtraHeaders[jose.HeaderType]; !ok {
		return Proof{}, invalid(`typ header: want "dpop+jwt", got nothing`)
	} else if s, _ := v.(string); strings.TrimPrefix(strings.ToLower(s), "application/") != "dpop+jwt" {
		return Proof{}, invalid(`typ header: want "dpop+jwt", got %.40s`, jsonText(v))
	}
	jwk := h.JSONWebKey
	if jwk == nil {
		return Proof{}, invalid("jwk header: want the public key that signed the proof, got nothing")
	}
	if !jwk.Valid() || !jwk.IsPublic() {
		return Proof{}, invalid("jwk header: want a valid public key, got a %T", jwk.Key)
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return Proof{}, invalid("signature does not verify with the proof's own jwk: %v", err)
	}
	jkt, err := Thumbprint(jwk)
	if err != nil {
		return Proof{}, invalid("jwk header: %v", err)
	}

	var cl map[string]json.RawMessage
	if err := json.Unmarshal(payload, &cl); err != nil || cl == nil {
		return Proof{}, invalid("claims: want a JSON object, got %.40q", payload)
	}
	jti, err := claimString("jti", cl["jti"])
	switch {
	case err != nil:
		return Proof{}, invalid("%v", err)
	case jti == "":
		return Proof{}, invalid(`jti: want a non-empty string, got ""`)
	case len(jti) > maxJTILen:
		return Proof{}, invalid("jti: want at most %d bytes, got %d", maxJTILen, len(jti))
	}
	htm, err := claimString("htm", cl["htm"])
	if err != nil {
		return Proof{}, invalid("%v", err)
	}
	if htm != e.Method {
		return Proof{}, invalid("htm: want %q, got %.20q", e.Method, htm)
	}
	htuRaw, err := claimString("htu", cl["htu"])
	if err != nil {
		return Proof{}, invalid("%v", err)
	}
	if got, err := normalizeURL(htuRaw); err != nil {
		return Proof{}, invalid("htu: %v", err)
	} else if got != want {
		return Proof{}, invalid("htu: want %q, got %.200q", want, got)
	}
	iat, err := numericDate("iat", cl["iat"])
	switch {
	case err != nil:
		return Proof{}, invalid("%v", err)
	case iat.After(e.Now.Add(window)):
		return Proof{}, invalid("iat %s is more than %s after now %s", stamp(iat), window, stamp(e.Now))
	case iat.Before(e.Now.Add(-window)):
		return Proof{}, invalid("iat %s is more than %s before now %s", stamp(iat), window, stamp(e.Now))
	}
	if e.AccessToken != "" {
		ath, err := claimString("ath", cl["ath"])
		if err != nil {
			return Proof{}, invalid("%v (the proof must be bound to the access token)", err)
		}
		// The hash of a bearer secret: compared in constant time, and
		// neither value goes in the message.
		if subtle.ConstantTimeCompare([]byte(ath), []byte(ATH(e.AccessToken))) != 1 {
			return Proof{}, invalid("ath: does not match the SHA-256 of the access token presented")
		}
	}
	if e.JKT != "" && subtle.ConstantTimeCompare([]byte(jkt), []byte(e.JKT)) != 1 {
		return Proof{}, invalid("jwk: want the key with thumbprint %q (the token's cnf.jkt), got %q", e.JKT, jkt)
	}
	return Proof{JTI: jti, JKT: jkt, IssuedAt: iat}, nil
}

// htu normalizes e.URL, which the caller builds from its own configuration.
func (e Expect) htu() (string, error) {
	u, err := normalizeURL(e.URL)
	if err != nil {
		return "", fmt.Errorf("dpop: expected URL: %w", err)
	}
	return u, nil
}

// ATH is the ath claim a proof carries for accessToken: the base64url
// SHA-256 of its ASCII bytes (RFC 9449 §4.2).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Thumbprint returns the RFC 7638 JWK SHA-256 thumbprint of k's public key,
// base64url without padding: the value of a bound token's cnf.jkt.
func Thumbprint(k *jose.JSONWebKey) (string, error) {
	if k == nil || k.Key == nil {
		return "", errors.New("dpop: thumbprint: want a key, got none")
	}
	pub := k.Public()
	if !pub.Valid() {
		return "", fmt.Errorf("dpop: thumbprint: want an asymmetric key, got %T", k.Key)
	}
	sum, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// NewProof returns a DPoP proof signed by key for a request of method to
// url (its query and fragment are left out of htu), bound to accessToken
// unless it is "", made at now. key is an ECDSA (P-256, P-384, P-521),
// Ed25519 or RSA key, which signs with ES256/384/512, EdDSA or PS256.
func NewProof(key crypto.Signer, method, url, accessToken string, now time.Time) (string, error) {
	alg, err := algFor(key)
	if err != nil {
		return "", err
	}
	htu, err := stripQuery(url)
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: cryptosigner.Opaque(key)}, opts)
	if err != nil {
		return "", fmt.Errorf("dpop: new proof: %w", err)
	}
	claims := map[string]any{"jti": rand.Text(), "htm": method, "htu": htu, "iat": now.Unix()}
	if accessToken != "" {
		claims["ath"] = ATH(accessToken)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("dpop: new proof: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: new proof: %w", err)
	}
	return jws.CompactSerialize()
}

func algFor(key crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
		return "", fmt.Errorf("dpop: new proof: want an ECDSA key on P-256, P-384 or P-521, got %s", pub.Curve.Params().Name)
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case *rsa.PublicKey:
		return jose.PS256, nil
	}
	return "", fmt.Errorf("dpop: new proof: want an ECDSA, Ed25519 or RSA key, got %T", key.Public())
}

// stripQuery is raw without its query and fragment.
func stripQuery(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("dpop: new proof: url: %w", err)
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.String(), nil
}

// normalizeURL is raw in the form two equivalent htu values share (RFC 9449
// §4.3 point 9, with RFC 3986 §6.2.2 and §6.2.3): lower-case scheme and
// host, no default port, an empty path as "/", percent-encodings in upper
// case and unreserved characters decoded; query and fragment dropped. Dot
// segments are left alone, so "/a/../b" and "/b" differ: the client signs
// the URL it sends, and the fewer spellings pass, the better.
func normalizeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("want an absolute http(s) URL, got %.200q", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "https" && scheme != "http") || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("want an absolute http(s) URL, got %.200q", raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("want a URL without userinfo, got %.200q", raw)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "80" && scheme == "http" || port == "443" && scheme == "https" {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	path := normalizePercent(u.EscapedPath())
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// normalizePercent upper-cases the hex digits of percent-encodings and
// decodes those of unreserved characters (RFC 3986 §6.2.2.1, §6.2.2.2).
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			b.WriteByte(p[i])
			continue
		}
		c := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteString(strings.ToUpper(p[i : i+3]))
		}
		i += 2
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// claimString reads a required string claim.
func claimString(name string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", fmt.Errorf("%s: want a string, got nothing", name)
	}
	var v string
	// json.Unmarshal would take null for "" without complaint.
	if raw[0] != '"' || json.Unmarshal(raw, &v) != nil {
		return "", fmt.Errorf("%s: want a string, got %.40s", name, raw)
	}
	return v, nil
}

// maxNumericDate (9999-12-31) keeps float-to-int conversion well defined.
const maxNumericDate = 253402300799

// numericDate reads a required JWT NumericDate (RFC 7519 §2).
func numericDate(name string, raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 {
		return time.Time{}, fmt.Errorf("%s: want seconds since the epoch, got nothing", name)
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f <= 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("%s: want seconds since the epoch, got %.40s", name, raw)
	}
	return time.Unix(int64(math.Floor(f)), 0), nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidProof, fmt.Sprintf(format, args...))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// jsonText renders a decoded header value as the JSON it came from.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
