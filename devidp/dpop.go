package devidp

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DPoP at the token endpoint (RFC 9449 §5): a token request with a DPoP
// proof gets an access token bound to the proof's key, cnf.jkt, and
// token_type DPoP. This is the provider's own check; the gateway has an
// independent one for the requests that present the tokens.

const (
	proofType = "dpop+jwt"
	// proofWindow is how far a proof's iat may be from now, either way,
	// and how long its jti is remembered to refuse a replay.
	proofWindow = 60 * time.Second
)

// proofAlgs are the algorithms a proof may be signed with: asymmetric only
// (RFC 9449 §4.2), since the key is the one in the proof's own header.
var proofAlgs = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512,
	jose.RS256, jose.RS384, jose.RS512, jose.EdDSA,
}

func proofAlgNames() []string {
	names := make([]string, len(proofAlgs))
	for i, a := range proofAlgs {
		names[i] = string(a)
	}
	return names
}

// errProof is a proof refused; its text says why and goes to the client.
type errProof struct{ why string }

func (e errProof) Error() string { return "devidp: DPoP proof: " + e.why }

// jtiStore remembers the jti of every accepted proof for proofWindow past
// its iat, so a proof works once.
type jtiStore struct {
	mu   sync.Mutex
	seen map[string]time.Time // jti → when it may be forgotten
}

func newJTIStore() *jtiStore { return &jtiStore{seen: map[string]time.Time{}} }

// add records jti until forget; false if it was already there, or the
// store is full of live entries.
func (s *jtiStore) add(jti string, forget, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) >= maxPending {
		for k, t := range s.seen {
			if now.After(t) {
				delete(s.seen, k)
			}
		}
	}
	if t, ok := s.seen[jti]; (ok && !now.After(t)) || len(s.seen) >= maxPending {
		return false
	}
	s.seen[jti] = forget
	return true
}

// checkProof checks the DPoP proof of token request r (RFC 9449 §4.3) and
// returns the RFC 7638 thumbprint of its key; "" and no error when r has
// no proof.
func (p *Provider) checkProof(r *http.Request, now time.Time) (jkt string, err error) {
	proofs := r.Header.Values("DPoP")
	switch {
	case len(proofs) == 0:
		return "", nil
	case len(proofs) > 1:
		return "", errProof{fmt.Sprintf("%d DPoP headers; want one", len(proofs))}
	}
	if err := peekHeader(proofs[0]); err != nil {
		return "", err
	}
	jws, err := jose.ParseSigned(proofs[0], proofAlgs)
	if err != nil {
		return "", errProof{"not a valid JWS"}
	}
	if len(jws.Signatures) != 1 {
		return "", errProof{"want exactly one signature"}
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != proofType {
		return "", errProof{fmt.Sprintf("typ %q; want %q", typ, proofType)}
	}
	jwk := h.JSONWebKey
	switch {
	case jwk == nil:
		return "", errProof{"no jwk header; want the public key"}
	case !jwk.IsPublic():
		return "", errProof{"jwk header holds a private key; want the public key only"}
	case !jwk.Valid():
		return "", errProof{"jwk header is not a valid key"}
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return "", errProof{"signature does not verify with the jwk header's key"}
	}
	var c struct {
		JTI string `json:"jti"`
		HTM string `json:"htm"`
		HTU string `json:"htu"`
		IAT *int64 `json:"iat"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", errProof{"claims are not a JSON object with string jti, htm, htu and numeric iat"}
	}
	want := p.issuer + p.op.TokenEndpoint().Relative()
	switch {
	case c.JTI == "":
		return "", errProof{"no jti"}
	case c.HTM != r.Method:
		return "", errProof{fmt.Sprintf("htm %q; want %q", c.HTM, r.Method)}
	case normalizeHTU(c.HTU) != want:
		return "", errProof{fmt.Sprintf("htu %q; want %q", c.HTU, want)}
	case c.IAT == nil:
		return "", errProof{"no iat"}
	}
	iat := time.Unix(*c.IAT, 0)
	if d := now.Sub(iat); d > proofWindow || d < -proofWindow {
		return "", errProof{fmt.Sprintf("iat %s is %v from now; want within %v", iat.UTC().Format(time.RFC3339), d.Round(time.Second), proofWindow)}
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", errProof{"cannot take the jwk's thumbprint"}
	}
	// Recorded last, so only a proof that passed every check uses its jti.
	if !p.jtis.add(c.JTI, iat.Add(proofWindow), now) {
		return "", errProof{"jti already used"}
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// peekHeader reads the proof's protected header before go-jose does, so
// that an HMAC algorithm or a private key in jwk, which go-jose refuses
// with one error for all, is refused with a message that says which.
func peekHeader(proof string) error {
	head, _, ok := strings.Cut(proof, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if !ok || err != nil {
		return errProof{"not a compact JWS"}
	}
	var h struct {
		Alg string                     `json:"alg"`
		JWK map[string]json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return errProof{"protected header is not a JSON object"}
	}
	if !slices.Contains(proofAlgs, jose.SignatureAlgorithm(h.Alg)) {
		return errProof{fmt.Sprintf("alg %q; want one of %s", h.Alg, strings.Join(proofAlgNames(), ", "))}
	}
	// The private members of EC, RSA and OKP keys, and a symmetric key's k
	// (RFC 7518 §6, RFC 8037 §2).
	for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
		if _, ok := h.JWK[m]; ok {
			return errProof{fmt.Sprintf("jwk header has private member %q; want the public key only", m)}
		}
	}
	return nil
}

// normalizeHTU drops the query and fragment of htu and lower-cases its
// scheme and host (RFC 9449 §4.3 step 9, RFC 3986 §6.2.2.1); "" if it is
// not an absolute URL.
func normalizeHTU(htu string) string {
	u, err := url.Parse(htu)
	if err != nil || !u.IsAbs() {
		return ""
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.String()
}

// dpopError answers a refused proof (RFC 9449 §5).
func dpopError(w http.ResponseWriter, err error) {
	var pe errProof
	if !errors.As(err, &pe) {
		oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", "devidp: DPoP proof refused")
		return
	}
	oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", pe.Error())
}
