package proxy

import (
	"net/http"
	"strings"
	"testing"
)

// Attacks on held transactions: each case is a way to get a transfer sent
// that the user did not see on the confirm page, or sent without them.

func withType(ct string) map[string]string {
	return map[string]string{"Origin": "http://gateway.test", "Accept": "text/html", "Content-Type": ct}
}

// A body that the gateway shows one way and a common app reads another must
// not be held: the user would approve one amount and the app send another.
func TestAttackHoldReadTwoWays(t *testing.T) {
	const iban = `"payee":{"iban":"DE89370400440532013000"}`
	for _, tc := range []struct {
		name, target, ct, body string
	}{
		// Go's encoding/json matches struct fields case-insensitively; the
		// last of "amount" and "AMOUNT" wins in the app, the first is shown.
		{"json key in another case", "/pay/x", "application/json",
			`{"amount":"1.00","to":"Bob",` + iban + `,"AMOUNT":"9000.00"}`},
		// fieldValues flattens payee.iban from both the nested member and a
		// literal "payee.iban" key into one map slot, in map order: the page
		// may show the literal one while the app reads payee → iban.
		{"literal dotted key beside nested member", "/pay/x", "application/json",
			`{"amount":"1.00","to":"Bob","payee":{"iban":"GB33BUKB20201555555555"},"payee.iban":"DE89370400440532013000"}`},
		// duplicateKeys reads one value and never checks for the end: a
		// second document rides along unchecked.
		{"json with a second value after it", "/pay/x", "application/json",
			`{"amount":"1.00","to":"Bob",` + iban + `} {"amount":"9000.00"}`},
		// An unparseable Content-Type skips both the duplicate check and
		// the display, while lenient apps still parse the JSON.
		{"unparseable content type", "/pay/x", "application/json, text/plain",
			`{"amount":"1.00","amount":"9000.00","to":"Bob",` + iban + `}`},
		// Multipart is read by r.FormValue, PHP, Rails...: the page shows
		// every field as missing, and Confirm still sends amount=9000.
		{"multipart body the gateway cannot read", "/pay/x", "multipart/form-data; boundary=XX",
			"--XX\r\nContent-Disposition: form-data; name=\"amount\"\r\n\r\n9000.00\r\n--XX--\r\n"},
		// Flask's request.values and other merged views read the query
		// first: the page shows amount 1.00 from the body.
		{"field in query and body", "/pay/x?amount=9000.00", "application/x-www-form-urlencoded",
			"amount=1.00&to=Bob&payee.iban=DE89370400440532013000"},
		// Rails and Laravel run the _method of a form body: the page says
		// POST, the app runs DELETE.
		{"_method in the form body", "/pay/x", "application/x-www-form-urlencoded",
			"amount=1.00&to=Bob&payee.iban=DE89370400440532013000&_method=DELETE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newConfirmFixture(t, nil)
			fx.signIn(strongFacts)
			resp := fx.sendBody(http.MethodPost, tc.target, tc.body, withType(tc.ct))
			loc := resp.Header.Get("Location")
			if strings.Contains(loc, "confirm") || resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("POST %s (%s) %q: %d Location %q; want a 4xx and nothing held", tc.target, tc.ct, tc.body, resp.StatusCode, loc)
			}
		})
	}
}

// The confirm page must not show a value that reads as something else:
// a right-to-left override reverses the tail of the IBAN on screen.
func TestAttackConfirmPageBidiSpoof(t *testing.T) {
	fx := newConfirmFixture(t, nil)
	fx.signIn(strongFacts)
	id, resp := fx.hold(t, "amount=1.00&to=Bob&payee.iban=DE89370400440532%E2%80%AE0003", sameOrigin)
	if id == "" {
		return // refused: nothing to spoof
	}
	status, body, _ := fx.page(t, id)
	if status == http.StatusOK && strings.Contains(body, "\u202e") {
		t.Errorf("confirm page (hold answer %d) shows a raw U+202E RIGHT-TO-LEFT OVERRIDE in a value; want it refused or made visible", resp.StatusCode)
	}
}

// A state-changing method outside POST/PUT/PATCH/DELETE is not held: an app
// that does not check the method (a handler decoding r.Body as JSON) sends
// the transfer with no confirmation at all.
func TestAttackUnlistedMethodSkipsHold(t *testing.T) {
	for _, m := range []string{"MERGE", "PROPPATCH", "TRANSFER"} {
		t.Run(m, func(t *testing.T) {
			fx := newConfirmFixture(t, nil)
			fx.signIn(strongFacts)
			resp := fx.sendBody(m, "/pay/x", `{"amount":"9000.00","to":"Mallory"}`, withType("application/json"))
			if n := fx.upstreamCount(); n != 0 {
				t.Errorf("%s /pay/x: %d, reached the upstream %d times without a confirmation; want it held or refused", m, resp.StatusCode, n)
			}
		})
	}
}

// A script on the site (XSS, a compromised dependency) can hold a transfer,
// fetch the confirm page, read its CSRF token and confirm: the user never
// sees the page. Confirm must be the user's own top-level navigation.
func TestAttackScriptConfirmsWithoutUser(t *testing.T) {
	fx := newConfirmFixture(t, nil)
	fx.signIn(strongFacts)
	script := map[string]string{"Origin": "http://gateway.test", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors",
		"Sec-Fetch-Dest": "empty", "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
	resp := fx.sendBody(http.MethodPost, "/pay/x", "amount=9000.00&to=Mallory&payee.iban=GB33BUKB20201555555555", script)
	body := readBody(t, resp)
	i := strings.Index(body, "confirm?id=")
	if resp.StatusCode != http.StatusAccepted || i < 0 {
		t.Fatalf("script POST: %d %s; want 202 with confirm_url", resp.StatusCode, body)
	}
	id := body[i+len("confirm?id="):][:22]
	page := fx.sendBody(http.MethodGet, confirmPath+"?id="+id, "", map[string]string{"Sec-Fetch-Site": "same-origin",
		"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"})
	m := csrfField.FindStringSubmatch(readBody(t, page))
	if m == nil {
		return // the token is not handed to a script: held
	}
	form := "id=" + id + "&csrf=" + m[1] + "&action=confirm"
	fx.sendBody(http.MethodPost, confirmPath, form, script)
	if n := fx.upstreamCount(); n != 0 {
		t.Errorf("a fetch() read the confirm page's CSRF token (page %d) and confirmed: the transfer reached the upstream %d times, never shown to the user",
			page.StatusCode, n)
	}
}

// Holds are unbounded per session: one signed-in browser can park any
// number of max_body bodies in the shared store for ttl each.
func TestAttackHoldFlood(t *testing.T) {
	fx := newConfirmFixture(t, nil)
	fx.signIn(strongFacts)
	body := "amount=1&to=Bob&payee.iban=DE89&pad=" + strings.Repeat("x", 900)
	const n = 200
	held := 0
	for i := 0; i < n; i++ {
		if id, _ := fx.hold(t, body, sameOrigin); id != "" {
			held++
		}
	}
	if held == n {
		t.Errorf("one session held all %d transactions of %d bytes each; want a per-session limit (429) on open holds", n, len(body))
	}
}
