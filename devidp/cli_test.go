package devidp_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/devidp"
)

var cliCode = regexp.MustCompile(`<code id="code">([^<]+)</code>`)

// TestCLIClient walks the README's terminal flow: open the authorization
// URL (no PKCE), read the code off devidp's /cli/code page, redeem it as
// curl -u id:secret -d grant_type=authorization_code would.
func TestCLIClient(t *testing.T) {
	const cliID, cliSecret = "cli", "cli-secret"
	e := startCLI(t, cliID, cliSecret)
	cliRedirect := e.issuer + devidp.CLICodePath
	e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{Subject: "alice", HonourACRValues: true} })

	authorize := func(t *testing.T, extra url.Values) (int, string) {
		t.Helper()
		q := url.Values{"response_type": {"code"}, "client_id": {cliID}, "redirect_uri": {cliRedirect},
			"scope": {"openid"}, "state": {"xyz"}, "acr_values": {devidp.ACRMultiFactor}}
		for k, v := range extra {
			q[k] = v
		}
		resp, err := browser(t).Get(e.oidc.Endpoint().AuthURL + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	status, page := authorize(t, nil)
	m := cliCode.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		t.Fatalf("authorize ended with %d %q; want the /cli/code page with the code", status, page)
	}
	if !strings.Contains(page, "curl") || !strings.Contains(page, html.EscapeString(e.oidc.Endpoint().TokenURL)) {
		t.Errorf("code page %q; want the curl command for the token endpoint", page)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {html.UnescapeString(m[1])}, "redirect_uri": {cliRedirect}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.oidc.Endpoint().TokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(cliID, cliSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("redeeming the code without PKCE = %s %s; want 200 and tokens", resp.Status, body)
	}
	if typ, c, _ := e.accessClaims(t, tok.AccessToken); typ != "at+jwt" || c.ACR != devidp.ACRMultiFactor || c.ClientID != cliID {
		t.Errorf("access token typ %q, acr %q, client_id %q; want at+jwt, multi-factor, %s", typ, c.ACR, c.ClientID, cliID)
	}

	t.Run("plain PKCE still refused", func(t *testing.T) {
		status, page := authorize(t, url.Values{"code_challenge": {"abc"}, "code_challenge_method": {"plain"}})
		if cliCode.MatchString(page) || !strings.Contains(page, "invalid_request") {
			t.Errorf("authorize with plain PKCE = %d %q; want an error, no code", status, page)
		}
	})
	t.Run("login error shown", func(t *testing.T) {
		e.idp.SetScript(func(devidp.Request) devidp.Login { return devidp.Login{Error: "access_denied"} })
		status, page := authorize(t, nil)
		if status != http.StatusOK || cliCode.MatchString(page) || !strings.Contains(page, "access_denied") {
			t.Errorf("authorize refused = %d %q; want the page to show access_denied and no code", status, page)
		}
	})
	t.Run("other clients still need PKCE", func(t *testing.T) {
		q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "scope": {"openid"}}
		resp, err := browser(t).Get(e.oidc.Endpoint().AuthURL + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Location()
		if loc == nil || loc.Query().Get("error") == "" || loc.Query().Has("code") {
			t.Errorf("authorize without PKCE for %s = %s %v; want an error redirect", clientID, resp.Status, loc)
		}
	})
}

// startCLI serves a devidp with the test client and a CLI client, whose
// redirect URI is devidp's own /cli/code page.
func startCLI(t *testing.T, id, secret string) *env {
	t.Helper()
	return start(t, devidp.Config{Clients: []devidp.Client{
		{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}},
		{ID: id, Secret: secret, CLI: true},
	}})
}
