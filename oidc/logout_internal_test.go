package oidc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// FuzzLogoutClaims fuzzes what VerifyLogoutToken checks once the signature
// holds, which a fuzzer outside the package cannot reach without the
// provider's key: the typ header and the claims. It must never panic, and
// what it accepts must keep VerifyLogoutToken's promises.
func FuzzLogoutClaims(f *testing.F) {
	const issuer = "https://idp.example.test"
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &Client{issuer: issuer, oauth2: oauth2.Config{ClientID: "stepgate"}}
	f.Add([]byte(`{"iss":"https://idp.example.test","aud":"stepgate","iat":1893553445,"exp":1893553565,"jti":"j",`+
		`"events":{"http://schemas.openid.net/event/backchannel-logout":{}},"sid":"s"}`), "logout+jwt")
	f.Add([]byte(`{"iss":"https://idp.example.test","aud":["a","stepgate"],"iat":1893553445.9,"jti":"j",`+
		`"events":{"http://schemas.openid.net/event/backchannel-logout":{"x":1}},"sub":"alice","nonce":null}`), "application/LOGOUT+jwt")
	f.Add([]byte(`{"events":{"http://schemas.openid.net/event/backchannel-logout":null},"iat":1e400}`), "JWT")
	f.Add([]byte(`null`), "")
	f.Add([]byte(`[]`), "\x00")

	f.Fuzz(func(t *testing.T, payload []byte, typ string) {
		h := jose.Header{}
		if typ != "" {
			h.ExtraHeaders = map[jose.HeaderKey]any{jose.HeaderType: typ}
		}
		typErr := checkLogoutTyp(h)
		if typErr == nil && typ != "" && !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), "logout+jwt") {
			t.Errorf("checkLogoutTyp accepted typ %q", typ)
		}
		lt, err := c.checkLogoutClaims(payload, now)
		if err != nil {
			if lt != (LogoutToken{}) {
				t.Errorf("checkLogoutClaims returned %+v with an error", lt)
			}
			return
		}
		switch {
		case lt.JTI == "" || len(lt.JTI) > maxClaimLen:
			t.Errorf("accepted jti %q", lt.JTI)
		case lt.SID == "" && lt.Subject == "":
			t.Errorf("accepted a token without sid and sub: %+v", lt)
		case len(lt.SID) > maxClaimLen || len(lt.Subject) > maxClaimLen:
			t.Errorf("accepted an overlong sid or sub: %+v", lt)
		case lt.IssuedAt.After(now.Add(time.Minute)) || lt.Expires.Before(now) || lt.Expires.After(lt.IssuedAt.Add(6*time.Minute)):
			t.Errorf("accepted iat %v, Expires %v at now %v", lt.IssuedAt, lt.Expires, now)
		}
		var claims map[string]json.RawMessage
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatalf("accepted claims that are not a JSON object: %s", payload)
		}
		if _, has := claims["nonce"]; has {
			t.Errorf("accepted a payload with a nonce claim: %s", payload)
		}
	})
}
