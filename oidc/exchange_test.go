package oidc_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
	"github.com/stepgate/stepgate/policy"
)

// mfa is a level as routes.yaml would define it.
var mfa = &policy.Level{
	Name:        "mfa",
	ACRValues:   []string{"urn:stepgate:mfa"},
	MaxAge:      5 * time.Minute,
	SatisfiedBy: []policy.Alternative{{ACR: []string{"urn:stepgate:mfa"}}},
}

// flow is one login round trip through the test provider.
type flow struct {
	level   *policy.Level
	session *policy.Facts
	tok     oidctest.Token
	opts    oidctest.Options
	// details are the authorization_details sent, and expected back.
	details string
	// expect edits what the callback expects, after the request was sent.
	expect func(e *oidc.Expect, srv *oidctest.Server)
}

func (f flow) run(t *testing.T) (policy.Facts, error) {
	t.Helper()
	res, err := f.result(t)
	return res.Facts, err
}

// result is run returning the whole Exchange result.
func (f flow) result(t *testing.T) (oidc.Result, error) {
	t.Helper()
	opts := f.opts
	opts.Now = clock
	srv := oidctest.NewServer(t, opts)
	srv.SetToken(f.tok)
	c := newClient(t, srv)
	a := oidc.AuthRequest{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier(), Level: f.level,
		AuthorizationDetails: f.details}
	authURL, err := c.AuthorizeURL(t.Context(), a)
	if err != nil {
		t.Fatalf("AuthorizeURL: %v", err)
	}
	code := srv.Login(t, authURL)
	want := oidc.Expect{Nonce: a.Nonce, Verifier: a.Verifier, Level: f.level, Session: f.session,
		AuthorizationDetails: f.details}
	if f.expect != nil {
		f.expect(&want, srv)
	}
	res, err := c.Exchange(t.Context(), code, want)
	if err != nil {
		// "eyJ" starts every JWT: base64url of `{"`.
		for _, secret := range []string{a.Nonce, a.Verifier, code, "eyJ"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q leaks %q", err, secret)
			}
		}
	}
	return res, err
}

// at returns a claim editor that sets claim k to testNow+d in epoch seconds.
func at(k string, d time.Duration) func(map[string]any) {
	return func(c map[string]any) { c[k] = testNow.Add(d).Unix() }
}

func set(k string, v any) func(map[string]any) {
	return func(c map[string]any) { c[k] = v }
}

func del(k string) func(map[string]any) {
	return func(c map[string]any) { delete(c, k) }
}

func edits(fs ...func(map[string]any)) func(map[string]any) {
	return func(c map[string]any) {
		for _, f := range fs {
			f(c)
		}
	}
}

func otherKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestExchange(t *testing.T) {
	f, err := flow{tok: oidctest.Token{Claims: edits(
		set("acr", "urn:stepgate:pwd"),
		set("amr", []string{"pwd", "otp"}),
		set("acrs", []string{"c1", "c2"}),
		at("auth_time", -2*time.Minute),
	)}}.run(t)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	want := policy.Facts{
		Subject:    "alice",
		Email:      "alice@example.test",
		ACR:        "urn:stepgate:pwd",
		AMR:        []string{"pwd", "otp"},
		ACRS:       []string{"c1", "c2"},
		AuthTime:   testNow.Add(-2 * time.Minute),
		VerifiedAt: testNow,
	}
	if !strings.HasPrefix(f.Issuer, "http://127.0.0.1:") {
		t.Errorf("Issuer = %q; want the test provider", f.Issuer)
	}
	want.Issuer = f.Issuer
	if f.Subject != want.Subject || f.Email != want.Email || f.ACR != want.ACR ||
		!slices.Equal(f.AMR, want.AMR) || !slices.Equal(f.ACRS, want.ACRS) ||
		!f.AuthTime.Equal(want.AuthTime) || !f.VerifiedAt.Equal(want.VerifiedAt) {
		t.Errorf("Exchange() = %+v; want %+v", f, want)
	}
}

func TestExchangeClientSecretPost(t *testing.T) {
	// A provider without client_secret_basic gets the secret in the body.
	if _, err := (flow{opts: oidctest.Options{AuthMethods: []string{"client_secret_post"}}}).run(t); err != nil {
		t.Fatalf("Exchange: %v", err)
	}
}

func TestExchangeWithoutAuthTime(t *testing.T) {
	// auth_time is optional unless max_age was sent.
	f, err := flow{tok: oidctest.Token{Claims: del("auth_time")}}.run(t)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if !f.AuthTime.IsZero() {
		t.Errorf("AuthTime = %v; want zero", f.AuthTime)
	}
}

// TestExchangeRejects feeds Exchange one bad token or response per case.
// Each case breaks exactly one check, so removing that check makes it pass.
func TestExchangeRejects(t *testing.T) {
	attacker := otherKey(t)
	for _, tc := range []struct {
		name    string
		flow    flow
		wantErr string
	}{
		// Nonce (Core §3.1.3.7 item 11; go-oidc leaves it to us).
		{"wrong nonce", flow{tok: oidctest.Token{Claims: set("nonce", "not-the-nonce")}}, "nonce does not match"},
		{"no nonce", flow{tok: oidctest.Token{Claims: del("nonce")}}, "nonce does not match"},
		{"nonce prefix", flow{expect: func(e *oidc.Expect, _ *oidctest.Server) { e.Nonce += "x" }}, "nonce does not match"},
		{"empty expected nonce", flow{expect: func(e *oidc.Expect, _ *oidctest.Server) { e.Nonce = "" }}, "expected nonce is empty"},
		{"empty verifier", flow{expect: func(e *oidc.Expect, _ *oidctest.Server) { e.Verifier = "" }}, "PKCE verifier is empty"},
		{"wrong verifier", flow{expect: func(e *oidc.Expect, _ *oidctest.Server) { e.Verifier = oauth2.GenerateVerifier() }}, "PKCE verification failed"},

		// Audience and authorized party.
		{"wrong aud", flow{tok: oidctest.Token{Claims: set("aud", "other-client")}}, "expected audience"},
		{"extra aud without azp", flow{tok: oidctest.Token{Claims: set("aud", []string{"stepgate", "other-client"})}}, "but no azp"},
		{"azp mismatch", flow{tok: oidctest.Token{Claims: set("azp", "other-client")}}, `azp: want "stepgate", got "other-client"`},
		{"extra aud azp mismatch", flow{tok: oidctest.Token{Claims: edits(
			set("aud", []string{"stepgate", "other-client"}), set("azp", "other-client"))}}, "azp: want"},

		// Signature and algorithm.
		{"alg none", flow{tok: oidctest.Token{Alg: "none"}}, "id token rejected"},
		{"HS256 keyed with the public key", flow{tok: oidctest.Token{Alg: "HS256"}}, "id token rejected"},
		{"HS256 though advertised", flow{opts: oidctest.Options{Algs: []string{"HS256", "RS256"}}, tok: oidctest.Token{Alg: "HS256"}}, "id token rejected"},
		{"wrong signing key", flow{tok: oidctest.Token{Key: attacker}}, "id token rejected"},
		{"embedded jwk", flow{tok: oidctest.Token{Key: attacker, Header: func(h map[string]any) {
			h["jwk"] = map[string]any{"kty": "RSA", "kid": "test-key-1",
				"n": b64(attacker.N.Bytes()), "e": b64(big.NewInt(int64(attacker.E)).Bytes())}
		}}}, "id token rejected"},

		// iss, exp, sub, iat.
		{"wrong issuer", flow{tok: oidctest.Token{Claims: set("iss", "https://idp.evil.test")}}, "different provider"},
		{"expired", flow{tok: oidctest.Token{Claims: at("exp", -time.Second)}}, "expired"},
		{"no sub", flow{tok: oidctest.Token{Claims: del("sub")}}, "no sub"},
		{"no iat", flow{tok: oidctest.Token{Claims: del("iat")}}, "no iat"},
		{"old iat", flow{tok: oidctest.Token{Claims: edits(at("iat", -11*time.Minute), at("auth_time", -11*time.Minute))}}, "replayed"},
		{"iat in the future", flow{tok: oidctest.Token{Claims: edits(at("iat", 2*time.Minute), del("auth_time"))}}, "iat"},

		// auth_time.
		{"no auth_time after max_age", flow{level: mfa, tok: oidctest.Token{Claims: del("auth_time")}}, "no auth_time, but max_age=300"},
		{"auth_time in the future", flow{tok: oidctest.Token{Claims: edits(at("iat", time.Minute), at("auth_time", 90*time.Second))}}, "after now"},
		{"auth_time after iat", flow{tok: oidctest.Token{Claims: edits(at("iat", -3*time.Minute), at("auth_time", -time.Minute))}}, "after iat"},
		{"auth_time a string", flow{tok: oidctest.Token{Claims: set("auth_time", "1893553445")}}, "auth_time: want seconds"},
		{"auth_time negative", flow{tok: oidctest.Token{Claims: set("auth_time", -5)}}, "auth_time: want seconds"},
		{"auth_time huge", flow{tok: oidctest.Token{Claims: set("auth_time", 1e300)}}, "auth_time: want seconds"},

		// Claim types.
		{"amr a string", flow{tok: oidctest.Token{Claims: set("amr", "mfa")}}, "claims"},
		{"acr a number", flow{tok: oidctest.Token{Claims: set("acr", 2)}}, "claims"},

		{"no id_token", flow{tok: oidctest.Token{OmitIDToken: true}}, "no id_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.flow.run(t)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Exchange() = %+v, %v; want error containing %q", f, err, tc.wantErr)
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "oidc: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			var se *oidc.StepUpError
			if errors.As(err, &se) || errors.Is(err, oidc.ErrSubjectMismatch) {
				t.Errorf("error %q is a step-up outcome; want a verification failure", err)
			}
			if f.Subject != "" || f.Issuer != "" {
				t.Errorf("Exchange returned facts %+v with an error", f)
			}
		})
	}
}

// TestExchangeSID covers the ID token's sid (OIDC Back-Channel Logout §2.1:
// the provider's session ID), which the caller stores so that a logout
// token naming the session can end it.
func TestExchangeSID(t *testing.T) {
	long := strings.Repeat("s", 255)
	for _, tc := range []struct {
		name    string
		claims  func(map[string]any)
		want    string
		wantErr string // "" = success
	}{
		{"absent", nil, "", ""},
		{"a string", set("sid", "08a5019c-17e1-4977-8f42-65a12843ea02"), "08a5019c-17e1-4977-8f42-65a12843ea02", ""},
		{"255 bytes", set("sid", long), long, ""},
		{"256 bytes", set("sid", long+"s"), "", "sid: want a string of at most 255 bytes, got 256 bytes"},
		{"a number", set("sid", 42), "", "sid: want a string, got 42"},
		{"an object", set("sid", map[string]any{"id": "x"}), "", `sid: want a string, got {"id":"x"}`},
		{"null", set("sid", nil), "", "sid: want a string, got null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := flow{tok: oidctest.Token{Claims: tc.claims}}.result(t)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Exchange() = %+v, %v; want error containing %q", res, err, tc.wantErr)
				}
				if res.SID != "" || res.Facts.Subject != "" {
					t.Errorf("Exchange returned %+v with an error", res)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if res.SID != tc.want || res.Facts.Subject != "alice" {
				t.Errorf("Exchange() = SID %q, Subject %q; want SID %q, Subject \"alice\"", res.SID, res.Facts.Subject, tc.want)
			}
		})
	}
}

func TestExchangeExpiredIsTyped(t *testing.T) {
	_, err := flow{tok: oidctest.Token{Claims: at("exp", -time.Second)}}.run(t)
	var te *gooidc.TokenExpiredError
	if !errors.As(err, &te) {
		t.Fatalf("Exchange error %v; want a *TokenExpiredError inside", err)
	}
}

func TestExchangeCodeIsSingleUse(t *testing.T) {
	srv := oidctest.NewServer(t, oidctest.Options{Now: clock})
	c := newClient(t, srv)
	a := oidc.AuthRequest{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
	code := srv.Login(t, c.AuthCodeURL(a))
	want := oidc.Expect{Nonce: a.Nonce, Verifier: a.Verifier}
	if _, err := c.Exchange(t.Context(), code, want); err != nil {
		t.Fatalf("first Exchange: %v", err)
	}
	if _, err := c.Exchange(t.Context(), code, want); err == nil {
		t.Fatal("second Exchange of the same code succeeded")
	} else if strings.Contains(err.Error(), code) {
		t.Errorf("error %q contains the code", err)
	}
}

func TestExchangeStepUp(t *testing.T) {
	t.Run("satisfied", func(t *testing.T) {
		f, err := flow{level: mfa, tok: oidctest.Token{Claims: at("auth_time", -time.Minute)}}.run(t)
		if err != nil {
			t.Fatalf("Exchange: %v", err)
		}
		if f.ACR != "urn:stepgate:mfa" {
			t.Errorf("ACR = %q; want urn:stepgate:mfa", f.ACR)
		}
	})

	for _, tc := range []struct {
		name string
		tok  oidctest.Token
	}{
		// Core §15.1 lets a provider ignore acr_values; the returned acr
		// decides, not the one asked for.
		{"provider ignored acr_values", oidctest.Token{Claims: set("acr", "urn:stepgate:pwd")}},
		{"no acr", oidctest.Token{Claims: del("acr")}},
		{"acr 0", oidctest.Token{Claims: set("acr", "0")}},
		// Remembered device: right acr, authentication too long ago.
		{"stale auth_time", oidctest.Token{Claims: at("auth_time", -time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := flow{level: mfa, tok: tc.tok}.run(t)
			var se *oidc.StepUpError
			if !errors.As(err, &se) {
				t.Fatalf("Exchange error %v; want a *StepUpError", err)
			}
			if se.Level != "mfa" || se.Reason == "" {
				t.Errorf("StepUpError = %+v; want Level \"mfa\" and a reason", se)
			}
			if !strings.HasPrefix(err.Error(), "oidc: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}

	// The user edited the authorize URL to drop acr_values: the request
	// carried nothing, but the level is still judged on what came back.
	t.Run("user dropped acr_values", func(t *testing.T) {
		asked := &policy.Level{Name: "mfa", MaxAge: mfa.MaxAge} // what the edited URL asked
		_, err := flow{level: asked, expect: func(e *oidc.Expect, _ *oidctest.Server) { e.Level = mfa }}.run(t)
		var se *oidc.StepUpError
		if !errors.As(err, &se) {
			t.Fatalf("Exchange error %v; want a *StepUpError", err)
		}
	})
}

func TestExchangeSubjectBinding(t *testing.T) {
	for _, tc := range []struct {
		name     string
		iss, sub string // of the session; iss "" means the test provider
		wantErr  bool
	}{
		{"same user", "", "alice", false},
		{"different sub", "", "mallory", true},
		{"sub differs only in case", "", "Alice", true},
		{"different iss", "https://other-idp.example.test", "alice", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := flow{
				level: mfa,
				tok:   oidctest.Token{Claims: at("auth_time", -time.Minute)},
				expect: func(e *oidc.Expect, srv *oidctest.Server) {
					iss := tc.iss
					if iss == "" {
						iss = srv.URL
					}
					e.Session = &policy.Facts{Issuer: iss, Subject: tc.sub, ACR: "urn:stepgate:pwd"}
				},
			}.run(t)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Exchange: %v", err)
				}
				if f.Subject != "alice" {
					t.Errorf("Subject = %q; want alice", f.Subject)
				}
				return
			}
			if !errors.Is(err, oidc.ErrSubjectMismatch) {
				t.Fatalf("Exchange error %v; want ErrSubjectMismatch", err)
			}
			var se *oidc.StepUpError
			if errors.As(err, &se) {
				t.Errorf("subject mismatch reported as a step-up failure: %v", err)
			}
		})
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
