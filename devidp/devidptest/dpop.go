package devidptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// ProofType is the typ header of a DPoP proof (RFC 9449 §4.2).
const ProofType = "dpop+jwt"

// ProofClaims are the claims of a DPoP proof (RFC 9449 §4.2).
type ProofClaims struct {
	JTI string `json:"jti"`
	HTM string `json:"htm"`
	HTU string `json:"htu"`
	IAT int64  `json:"iat"`
	// ATH is the base64url SHA-256 of the access token the proof is sent
	// with; "" (omitted) at the token endpoint.
	ATH string `json:"ath,omitempty"`
}

// Proof returns a DPoP proof (RFC 9449 §4) signed with key for a request
// with method to url at now, with ath for accessToken when it is not "".
// url is used as given: RFC 9449 wants it without query and fragment, and a
// test may want it wrong. The jti is random. ECDSA keys sign with ES256,
// ES384 or ES512 by curve, RSA keys with PS256, Ed25519 with EdDSA.
func Proof(key crypto.Signer, method, url, accessToken string, now time.Time) (string, error) {
	c := ProofClaims{JTI: randomString(), HTM: method, HTU: url, IAT: now.Unix()}
	if accessToken != "" {
		c.ATH = TokenHash(accessToken)
	}
	return SignProof(key, c)
}

// SignProof signs c as a DPoP proof with key, the public key in the jwk
// header, for tests that need claims Proof does not make.
func SignProof(key crypto.Signer, c ProofClaims) (string, error) {
	alg, err := algorithm(key.Public())
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: cryptosigner.Opaque(key)},
		&jose.SignerOptions{EmbedJWK: true, ExtraHeaders: map[jose.HeaderKey]any{jose.HeaderType: ProofType}})
	if err != nil {
		return "", fmt.Errorf("devidptest: DPoP signer: %w", err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("devidptest: DPoP claims: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devidptest: sign DPoP proof: %w", err)
	}
	return jws.CompactSerialize()
}

// TokenHash is the ath of a proof sent with accessToken: base64url SHA-256
// of its ASCII (RFC 9449 §4.2).
func TokenHash(accessToken string) string {
	h := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url) of pub:
// the cnf.jkt of a token bound to it (RFC 9449 §6.1).
func Thumbprint(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("devidptest: thumbprint of %T: %w", pub, err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func algorithm(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
		return "", fmt.Errorf("devidptest: ECDSA curve %s; want P-256, P-384 or P-521", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return jose.PS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("devidptest: DPoP key of type %T; want ECDSA, RSA or Ed25519", pub)
}
