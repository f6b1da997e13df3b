package dpop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stepgate/stepgate/dpop"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	testURL   = "https://api.example.test/transfers"
	testToken = "eyJhbGciOiJSUzI1NiJ9.the-access-token.sig"
)

var (
	// ecKey is fixed, so that every fuzzing worker process has the same
	// key and the seed corpus's proofs verify in each.
	ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		d := sha256.Sum256([]byte("stepgate dpop test key"))
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
		if err != nil {
			panic(err)
		}
		return k
	})
	otherKey = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
)

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// expect is what a request to testURL with testToken, bound to ecKey,
// expects.
func expect() dpop.Expect {
	return dpop.Expect{Method: "POST", URL: testURL, AccessToken: testToken, JKT: thumb(&ecKey().PublicKey), Now: testNow}
}

func thumb(pub crypto.PublicKey) string {
	s, err := dpop.Thumbprint(&jose.JSONWebKey{Key: pub})
	if err != nil {
		panic(err)
	}
	return s
}

// proof builds a proof by hand, so that a case can break any rule: the
// default header is typ dpop+jwt, alg ES256 and the jwk of key; the default
// claims are a fresh jti, htm POST, htu testURL, iat testNow and the ath of
// testToken. The header's alg decides the signature: ES256 with key, HS256
// keyed with the JSON of key's public jwk (the algorithm-confusion attack),
// or none; RS256 gets an ES256 signature, a header that lies.
func proof(t testing.TB, key *ecdsa.PrivateKey, header, claims func(map[string]any)) string {
	t.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwkMap(t, &key.PublicKey)}
	c := map[string]any{"jti": rand.Text(), "htm": "POST", "htu": testURL, "iat": testNow.Unix(), "ath": dpop.ATH(testToken)}
	if header != nil {
		header(h)
	}
	if claims != nil {
		claims(c)
	}
	hj, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	cj, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return signRaw(t, key, h["alg"], b64(hj)+"."+b64(cj))
}

// signRaw appends the alg's signature of input, made with key.
func signRaw(t testing.TB, key *ecdsa.PrivateKey, alg any, input string) string {
	t.Helper()
	var sig []byte
	switch alg {
	case "ES256", "RS256": // RS256: an ES256 signature under a header that lies

		sum := sha256.Sum256([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	case "HS256":
		pub, err := json.Marshal(jwkMap(t, &key.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "none":
	default:
		t.Fatalf("cannot sign with alg %v", alg)
	}
	return input + "." + b64(sig)
}

func jwkMap(t testing.TB, k any) map[string]any {
	t.Helper()
	j, err := jose.JSONWebKey{Key: k}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func set(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
func del(k string) func(map[string]any)        { return func(m map[string]any) { delete(m, k) } }
func edits(fs ...func(map[string]any)) func(map[string]any) {
	return func(m map[string]any) {
		for _, f := range fs {
			f(m)
		}
	}
}

func withExpect(f func(*dpop.Expect)) dpop.Expect {
	e := expect()
	f(&e)
	return e
}

func TestVerify(t *testing.T) {
	k := ecKey()
	for _, tc := range []struct {
		name           string
		header, claims func(map[string]any)
		expect         dpop.Expect
		wantIAT        time.Time
	}{
		{name: "bound to the token and the key", expect: expect()},
		{name: "any key", expect: withExpect(func(e *dpop.Expect) { e.JKT = "" })},
		{name: "typ application/dpop+jwt", header: set("typ", "application/dpop+jwt"), expect: expect()},
		{name: "typ in capitals", header: set("typ", "DPoP+JWT"), expect: expect()},
		{name: "htu with query and fragment", claims: set("htu", testURL+"?amount=10#top"), expect: expect()},
		{name: "expected URL with a query", expect: withExpect(func(e *dpop.Expect) { e.URL = testURL + "?x=1" })},
		{name: "htu scheme and host in capitals", claims: set("htu", "HTTPS://API.Example.TEST/transfers"), expect: expect()},
		{name: "htu with the default port", claims: set("htu", "https://api.example.test:443/transfers"), expect: expect()},
		{name: "http default port", claims: set("htu", "http://api.example.test/transfers"),
			expect: withExpect(func(e *dpop.Expect) { e.URL = "http://api.example.test:80/transfers" })},
		{name: "other port on both", claims: set("htu", "https://api.example.test:8443/transfers"),
			expect: withExpect(func(e *dpop.Expect) { e.URL = "https://api.example.test:8443/transfers" })},
		{name: "IPv6 host", claims: set("htu", "https://[::1]:443/transfers"),
			expect: withExpect(func(e *dpop.Expect) { e.URL = "https://[::1]/transfers" })},
		{name: "percent-encoding case and unreserved", claims: set("htu", "https://api.example.test/a%2fb/%7Euser"),
			expect: withExpect(func(e *dpop.Expect) { e.URL = "https://api.example.test/a%2Fb/~user" })},
		{name: "empty path is /", claims: set("htu", "https://api.example.test"),
			expect: withExpect(func(e *dpop.Expect) { e.URL = "https://api.example.test/" })},
		{name: "no ath for the token endpoint", claims: del("ath"), expect: withExpect(func(e *dpop.Expect) { e.AccessToken = "" })},
		{name: "iat 59s ago", claims: set("iat", testNow.Add(-59*time.Second).Unix()), expect: expect(), wantIAT: testNow.Add(-59 * time.Second)},
		{name: "iat 60s ahead", claims: set("iat", testNow.Add(60*time.Second).Unix()), expect: expect(), wantIAT: testNow.Add(60 * time.Second)},
		{name: "iat 4m ago in a 5m window", claims: set("iat", testNow.Add(-4*time.Minute).Unix()),
			expect: withExpect(func(e *dpop.Expect) { e.Window = 5 * time.Minute }), wantIAT: testNow.Add(-4 * time.Minute)},
		{name: "fractional iat", claims: set("iat", float64(testNow.Unix())+0.5), expect: expect()},
		{name: "extra claims and headers", header: set("kid", "whatever"), claims: set("nonce", "n"), expect: expect()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := proof(t, k, tc.header, tc.claims)
			got, err := dpop.Verify(raw, tc.expect)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			wantIAT := tc.wantIAT
			if wantIAT.IsZero() {
				wantIAT = testNow
			}
			if got.JTI == "" || got.JKT != thumb(&k.PublicKey) || !got.IssuedAt.Equal(wantIAT) {
				t.Errorf("Verify() = %+v; want a jti, JKT %q and IssuedAt %s", got, thumb(&k.PublicKey), wantIAT)
			}
		})
	}
}

// TestVerifyRejects breaks one rule of RFC 9449 §4.3 per case.
func TestVerifyRejects(t *testing.T) {
	k, attacker := ecKey(), otherKey()
	private := set("jwk", jwkMap(t, k)) // d included
	for _, tc := range []struct {
		name           string
		key            *ecdsa.PrivateKey // nil: k
		header, claims func(map[string]any)
		raw            string                    // instead of building a proof
		build          func(t *testing.T) string // instead of building a proof
		expect         *dpop.Expect
		wantErr        string
	}{
		// Not one compact JWS.
		{name: "empty", build: func(*testing.T) string { return "" }, wantErr: "the proof is empty"},
		{name: "a space", raw: " ", wantErr: "want a compact JWS"},
		{name: "garbage", raw: "not a proof", wantErr: "want a compact JWS"},
		{name: "two parts", raw: "eyJhbGciOiJFUzI1NiJ9.e30", wantErr: "want a compact JWS"},
		{name: "five parts (JWE)", raw: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", wantErr: "want a compact JWS"},
		{name: "JSON serialization", raw: `{"payload":"e30","protected":"eyJhbGciOiJFUzI1NiJ9","signature":"c2ln"}`, wantErr: "want a compact JWS"},
		{name: "too long", raw: strings.Repeat("a", 9000), wantErr: "want at most 8192 bytes, got 9000"},

		// Algorithm and key.
		{name: "alg none", header: set("alg", "none"), wantErr: `unexpected signature algorithm "none"`},
		{name: "HS256 keyed with the public jwk", header: set("alg", "HS256"), wantErr: `unexpected signature algorithm "HS256"`},
		{name: "alg says RS256, key is EC", header: set("alg", "RS256"), wantErr: "signature does not verify"},
		{name: "no jwk", header: del("jwk"), wantErr: "jwk header: want the public key that signed the proof, got nothing"},
		{name: "jwk with the private key", header: private, wantErr: "private"},
		{name: "jwk symmetric", header: set("jwk", map[string]any{"kty": "oct", "k": b64([]byte("0123456789abcdef0123456789abcdef"))}), wantErr: "want a compact JWS"},
		{name: "jwk a string", header: set("jwk", "key"), wantErr: "want a compact JWS"},
		{name: "jwk of another key", header: set("jwk", jwkMap(t, &attacker.PublicKey)), wantErr: "signature does not verify with the proof's own jwk"},
		{name: "signed by another key for the bound token", key: attacker, wantErr: "jwk: want the key with thumbprint"},

		// typ (explicit typing): an access token or ID token is no proof.
		{name: "no typ", header: del("typ"), wantErr: `typ header: want "dpop+jwt", got nothing`},
		{name: "typ JWT", header: set("typ", "JWT"), wantErr: `typ header: want "dpop+jwt", got "JWT"`},
		{name: "typ at+jwt", header: set("typ", "at+jwt"), wantErr: `got "at+jwt"`},
		{name: "typ a number", header: set("typ", 1), wantErr: "got 1"},

		// Claims.
		{name: "claims not an object", build: func(t *testing.T) string {
			h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwkMap(t, &k.PublicKey)})
			return signRaw(t, k, "ES256", b64(h)+"."+b64([]byte(`["jti"]`)))
		}, wantErr: "claims: want a JSON object"},
		{name: "no jti", claims: del("jti"), wantErr: "jti: want a string, got nothing"},
		{name: "empty jti", claims: set("jti", ""), wantErr: `jti: want a non-empty string, got ""`},
		{name: "jti a number", claims: set("jti", 7), wantErr: "jti: want a string, got 7"},
		{name: "jti null", claims: set("jti", nil), wantErr: "jti: want a string, got null"},
		{name: "jti too long", claims: set("jti", strings.Repeat("j", 256)), wantErr: "jti: want at most 255 bytes, got 256"},
		{name: "no htm", claims: del("htm"), wantErr: "htm: want a string, got nothing"},
		{name: "other htm", claims: set("htm", "GET"), wantErr: `htm: want "POST", got "GET"`},
		{name: "htm in lower case", claims: set("htm", "post"), wantErr: `htm: want "POST", got "post"`},
		{name: "no htu", claims: del("htu"), wantErr: "htu: want a string, got nothing"},
		{name: "htu other path", claims: set("htu", "https://api.example.test/transfers/2"), wantErr: `htu: want "https://api.example.test/transfers", got "https://api.example.test/transfers/2"`},
		{name: "htu path case", claims: set("htu", "https://api.example.test/Transfers"), wantErr: "htu: want"},
		{name: "htu other host", claims: set("htu", "https://evil.example.test/transfers"), wantErr: "htu: want"},
		{name: "htu http", claims: set("htu", "http://api.example.test/transfers"), wantErr: "htu: want"},
		{name: "htu other port", claims: set("htu", "https://api.example.test:8443/transfers"), wantErr: "htu: want"},
		{name: "htu trailing slash", claims: set("htu", testURL+"/"), wantErr: "htu: want"},
		{name: "htu dot segments", claims: set("htu", "https://api.example.test/x/../transfers"), wantErr: "htu: want"},
		{name: "htu encoded slash", claims: set("htu", "https://api.example.test%2Ftransfers"), wantErr: "htu: want"},
		{name: "htu relative", claims: set("htu", "/transfers"), wantErr: "htu: want an absolute http(s) URL"},
		{name: "htu other scheme", claims: set("htu", "wss://api.example.test/transfers"), wantErr: "htu: want an absolute http(s) URL"},
		{name: "htu with userinfo", claims: set("htu", "https://me@api.example.test/transfers"), wantErr: "htu: want a URL without userinfo"},
		{name: "htu unparsable", claims: set("htu", "https://api.example.test/%zz\x7f"), wantErr: "htu: want an absolute http(s) URL"},
		{name: "htu an array", claims: set("htu", []string{testURL}), wantErr: "htu: want a string"},
		{name: "no iat", claims: del("iat"), wantErr: "iat: want seconds since the epoch, got nothing"},
		{name: "iat a string", claims: set("iat", "1893553445"), wantErr: "iat: want seconds since the epoch"},
		{name: "iat negative", claims: set("iat", -1), wantErr: "iat: want seconds since the epoch"},
		{name: "iat 61s ago", claims: set("iat", testNow.Add(-61*time.Second).Unix()), wantErr: "iat 2030-01-02T03:03:04Z is more than 1m0s before now"},
		{name: "iat 61s ahead", claims: set("iat", testNow.Add(61*time.Second).Unix()), wantErr: "iat 2030-01-02T03:05:06Z is more than 1m0s after now"},
		{name: "iat 11s ago in a 10s window", claims: set("iat", testNow.Add(-11*time.Second).Unix()),
			expect: ptr(withExpect(func(e *dpop.Expect) { e.Window = 10 * time.Second })), wantErr: "more than 10s before now"},
		{name: "no ath", claims: del("ath"), wantErr: "ath: want a string, got nothing"},
		{name: "ath of another token", claims: set("ath", dpop.ATH("another-token")), wantErr: "ath: does not match"},
		{name: "ath in hex", claims: set("ath", "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"), wantErr: "ath: does not match"},
		{name: "ath a number", claims: set("ath", 1), wantErr: "ath: want a string, got 1"},
		{name: "ath padded", claims: set("ath", dpop.ATH(testToken)+"="), wantErr: "ath: does not match"},

		{name: "payload swapped after signing", build: func(t *testing.T) string {
			good := strings.Split(proof(t, k, nil, nil), ".")
			evil := strings.Split(proof(t, k, nil, set("htm", "DELETE")), ".")
			return good[0] + "." + evil[1] + "." + good[2]
		}, wantErr: "signature does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == nil {
				key = k
			}
			raw := tc.raw
			switch {
			case tc.build != nil:
				raw = tc.build(t)
			case raw == "":
				raw = proof(t, key, tc.header, tc.claims)
			}
			e := expect()
			if tc.expect != nil {
				e = *tc.expect
			}
			got, err := dpop.Verify(raw, e)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Verify() = %+v, %v; want error containing %q", got, err, tc.wantErr)
			}
			t.Log(err)
			if !errors.Is(err, dpop.ErrInvalidProof) {
				t.Errorf("error %q does not wrap ErrInvalidProof", err)
			}
			if len(raw) > 40 && strings.Contains(err.Error(), raw[:40]) {
				t.Errorf("error %q quotes the proof", err)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), dpop.ATH(testToken)) {
				t.Errorf("error %q quotes the access token or its hash", err)
			}
			if got != (dpop.Proof{}) {
				t.Errorf("Verify returned %+v with an error", got)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// An Expect the caller got wrong is its bug, not the client's: the error
// says so and does not wrap ErrInvalidProof.
func TestVerifyBadExpect(t *testing.T) {
	raw := proof(t, ecKey(), nil, nil)
	for _, tc := range []struct {
		name    string
		edit    func(*dpop.Expect)
		wantErr string
	}{
		{"no method", func(e *dpop.Expect) { e.Method = "" }, "dpop: expected method is empty"},
		{"no URL", func(e *dpop.Expect) { e.URL = "" }, "dpop: expected URL: want an absolute http(s) URL"},
		{"relative URL", func(e *dpop.Expect) { e.URL = "/transfers" }, "dpop: expected URL: want an absolute http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dpop.Verify(raw, withExpect(tc.edit))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Verify() error = %v; want one containing %q", err, tc.wantErr)
			}
			if errors.Is(err, dpop.ErrInvalidProof) {
				t.Errorf("error %q wraps ErrInvalidProof; want a caller error", err)
			}
		})
	}
}

// NewProof makes proofs Verify accepts, with each kind of key it takes.
func TestNewProof(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{
		{"P-256", ecKey()}, {"P-384", mustEC(elliptic.P384())}, {"P-521", mustEC(elliptic.P521())},
		{"Ed25519", edKey}, {"RSA", rsaKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := dpop.NewProof(tc.key, "POST", testURL+"?q=1#f", testToken, testNow)
			if err != nil {
				t.Fatalf("NewProof: %v", err)
			}
			e := expect()
			e.JKT = thumb(tc.key.Public())
			p, err := dpop.Verify(raw, e)
			if err != nil {
				t.Fatalf("Verify(NewProof(...)): %v", err)
			}
			if p.JKT != e.JKT || !p.IssuedAt.Equal(testNow) || p.JTI == "" {
				t.Errorf("Verify() = %+v; want JKT %q, IssuedAt %s and a jti", p, e.JKT, testNow)
			}
			// htu is sent without the query and fragment (RFC 9449 §4.2).
			parts := strings.Split(raw, ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var cl struct{ HTU, ATH string }
			if err := json.Unmarshal(payload, &cl); err != nil || cl.HTU != testURL || cl.ATH != dpop.ATH(testToken) {
				t.Errorf("proof claims %s; want htu %q and the token's ath", payload, testURL)
			}
			// Two proofs never share a jti.
			raw2, _ := dpop.NewProof(tc.key, "POST", testURL, testToken, testNow)
			if p2, err := dpop.Verify(raw2, e); err != nil || p2.JTI == p.JTI {
				t.Errorf("second proof: %+v, %v; want another jti than %q", p2, err, p.JTI)
			}
		})
	}
	if _, err := dpop.NewProof(mustEC(elliptic.P224()), "GET", testURL, "", testNow); err == nil {
		t.Errorf("NewProof with a P-224 key succeeded; want an error")
	}
}

// The examples of RFC 7638 §3.1 and RFC 9449 §7.1.
func TestThumbprintAndATH(t *testing.T) {
	n, _ := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	rsaPub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	if got, want := thumb(rsaPub), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("Thumbprint(RFC 7638 §3.1 key) = %q; want %q", got, want)
	}
	// The private key has the same thumbprint as its public half.
	if got, want := thumb(ecKey()), thumb(&ecKey().PublicKey); got != want {
		t.Errorf("Thumbprint(private key) = %q; want the public key's %q", got, want)
	}
	if got, want := dpop.ATH("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"; got != want {
		t.Errorf("ATH(RFC 9449 §7.1 token) = %q; want %q", got, want)
	}
	for _, k := range []*jose.JSONWebKey{nil, {}, {Key: []byte("symmetric-secret")}} {
		if s, err := dpop.Thumbprint(k); err == nil {
			t.Errorf("Thumbprint(%v) = %q; want an error", k, s)
		}
	}
}

// FuzzVerify feeds Verify arbitrary strings: it must never panic, and
// accept nothing but the test key's own proof (the fuzzer cannot sign; at
// most it re-spells the proof, which then says the same).
func FuzzVerify(f *testing.F) {
	k := ecKey()
	good := proof(f, k, nil, set("jti", "the-seed-proof")) // the same in every worker
	e := expect()
	e.JKT = "" // any key: the signature alone must keep forgeries out
	want, err := dpop.Verify(good, e)
	if err != nil {
		f.Fatalf("Verify(good) = %v", err)
	}
	parts := strings.Split(good, ".")
	for _, seed := range []string{
		good, good + "x", parts[0] + "." + parts[1] + ".", parts[0] + "..", "..", "a.b.c", "",
		proof(f, k, set("alg", "none"), nil), proof(f, k, set("alg", "HS256"), nil),
		proof(f, k, del("jwk"), nil), proof(f, k, nil, set("htu", "https://api.example.test:443/%7etransfers")),
		`{"payload":"e30","signatures":[]}`, strings.Repeat(".", 5),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := dpop.Verify(raw, e)
		if err == nil {
			if p != want {
				t.Fatalf("Verify(%q) = %+v; want an error, or %+v", raw, p, want)
			}
			return
		}
		if !errors.Is(err, dpop.ErrInvalidProof) {
			t.Errorf("error %q does not wrap ErrInvalidProof", err)
		}
		if p != (dpop.Proof{}) {
			t.Errorf("Verify returned %+v with an error", p)
		}
	})
}

// BenchmarkDPoPVerify is the cost a DPoP-bound request adds: one ES256
// proof, bound to the token and key.
func BenchmarkDPoPVerify(b *testing.B) {
	raw, err := dpop.NewProof(ecKey(), "POST", testURL, testToken, testNow)
	if err != nil {
		b.Fatal(err)
	}
	e := expect()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dpop.Verify(raw, e); err != nil {
			b.Fatal(err)
		}
	}
}
