package devidp_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/devidp/devidptest"
)

// TestRefreshKeepsLogin checks that a refresh-token grant issues tokens
// that say what the original login said (acr, amr, auth_time, sid), not
// what a later login of the same user said, and that refresh tokens rotate.
func TestRefreshKeepsLogin(t *testing.T) {
	e := start(t, devidp.Config{APIAudience: apiAudience, Clients: []devidp.Client{{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{redirectURI}, RefreshTokens: true}}})
	req := devidptest.Request{ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI,
		Scopes: []string{"openid", "offline_access"}}
	past := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	tests := []struct {
		name  string
		login devidp.Login
	}{
		{"password-only login", devidp.Login{Subject: "alice", AMR: []string{"pwd"}, AuthTime: past}},
		{"multi-factor login", devidp.Login{Subject: "alice", ACR: devidp.ACRMultiFactor, AMR: []string{"pwd", "otp", "mfa"}, AuthTime: past}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.idp.SetScript(func(devidp.Request) devidp.Login { return tt.login })
			first, err := devidptest.Token(t.Context(), e.issuer, req)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			if first.RefreshToken == "" {
				t.Fatal("no refresh_token for offline_access; want one")
			}
			_, orig, _ := e.accessClaims(t, first.AccessToken)

			// The same user signs in again, freshly, with multi-factor.
			e.idp.SetScript(func(devidp.Request) devidp.Login {
				return devidp.Login{Subject: "alice", ACR: "urn:test:later", AMR: []string{"pwd", "hwk"}}
			})
			if _, err := devidptest.Token(t.Context(), e.issuer, req); err != nil {
				t.Fatalf("second login: %v", err)
			}

			next, err := devidptest.Refresh(t.Context(), e.issuer, req, first.RefreshToken)
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if next.AccessToken == first.AccessToken || next.RefreshToken == "" || next.RefreshToken == first.RefreshToken {
				t.Error("refresh returned the same access or refresh token; want new ones (rotation)")
			}
			_, got, _ := e.accessClaims(t, next.AccessToken)
			if got.ACR != tt.login.ACR || !slices.Equal(got.AMR, tt.login.AMR) || got.AuthTime != past.Unix() || got.SID != orig.SID || got.SID == "" {
				t.Errorf("refreshed access token acr %q, amr %q, auth_time %d, sid %q; want the original login's %q, %q, %d, %q",
					got.ACR, got.AMR, got.AuthTime, got.SID, tt.login.ACR, tt.login.AMR, past.Unix(), orig.SID)
			}
			if got.Subject != "alice" || !slices.Equal(got.Audience, []string{apiAudience}) || got.JTI == orig.JTI {
				t.Errorf("refreshed access token sub %q, aud %q, jti %q; want alice, [%s], a new jti", got.Subject, got.Audience, got.JTI, apiAudience)
			}
			idt, err := e.oidc.Verifier(&gooidc.Config{ClientID: clientID}).Verify(t.Context(), next.IDToken)
			if err != nil {
				t.Fatalf("refreshed ID token: %v", err)
			}
			var idc idClaims
			if err := idt.Claims(&idc); err != nil {
				t.Fatal(err)
			}
			if idc.ACR != tt.login.ACR || !slices.Equal(idc.AMR, tt.login.AMR) || idc.AuthTime != past.Unix() {
				t.Errorf("refreshed ID token acr %q, amr %q, auth_time %d; want the original login's", idc.ACR, idc.AMR, idc.AuthTime)
			}

			// The spent refresh token is refused.
			_, err = devidptest.Refresh(t.Context(), e.issuer, req, first.RefreshToken)
			var oe *devidptest.Error
			if !errors.As(err, &oe) || oe.Code != "invalid_grant" {
				t.Errorf("second use of a refresh token = %v; want invalid_grant", err)
			}
		})
	}
}
