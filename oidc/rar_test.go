package oidc_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/oidc/oidctest"
)

// TestExchangeAuthorizationDetails covers RFC 9396 §7: the token response
// must carry the authorization_details the user approved, equal as JSON
// values to those sent, or the transaction is not the one confirmed.
func TestExchangeAuthorizationDetails(t *testing.T) {
	const two = `[{"type":"payment_initiation","instructedAmount":{"amount":"100.00","currency":"EUR"},"creditorAccount":{"iban":"DE02100100109307118603"}},{"type":"account_information","actions":["read"]}]`
	const swapped = `[{"type":"account_information","actions":["read"]},{"type":"payment_initiation","instructedAmount":{"amount":"100.00","currency":"EUR"},"creditorAccount":{"iban":"DE02100100109307118603"}}]`
	const reordered = `[ { "creditorAccount" : {"iban":"DE02100100109307118603"}, "instructedAmount":{"currency":"EUR","amount":"100.00"},
		"type":"payment_initiation" }, {"actions":["read"],"type":"account_information"} ]`
	const number = `[{"type":"payment_initiation","instructedAmount":{"amount":100,"currency":"EUR"}}]`
	returns := func(s string) func(string) string { return func(string) string { return s } }
	replace := func(old, new string) func(string) string {
		return func(req string) string { return strings.Replace(req, old, new, 1) }
	}
	for _, tc := range []struct {
		name         string
		par          bool
		sent         string                  // sent and expected
		tokenDetails func(req string) string // nil echoes the request
		expect       string                  // overrides what is expected when not ""
		wantErr      string                  // "" = success; "mismatch" = ErrAuthorizationDetailsMismatch
	}{
		{name: "echoed", sent: two},
		{name: "echoed, pushed", par: true, sent: two},
		{name: "members reordered, other whitespace", sent: two, tokenDetails: returns(reordered)},
		{name: "same number written differently", sent: number, tokenDetails: replace("100", "1.00e2")},
		{name: "none sent, none expected, some returned", tokenDetails: returns(payment)},

		{name: "amount altered", sent: two, tokenDetails: replace("100.00", "9100.00"), wantErr: "mismatch"},
		{name: "amount altered, pushed", par: true, sent: two, tokenDetails: replace("100.00", "9100.00"), wantErr: "mismatch"},
		{name: "payee altered", sent: two, tokenDetails: replace("DE02100100109307118603", "GB33BUKB20201555555555"), wantErr: "mismatch"},
		{name: "number altered", sent: number, tokenDetails: replace("100", "100.000001"), wantErr: "mismatch"},
		{name: "amount a number instead of a string", sent: payment, tokenDetails: replace(`"100.00"`, "100.00"), wantErr: "mismatch"},
		{name: "member added", sent: payment, tokenDetails: replace(`"type"`, `"actions":["all"],"type"`), wantErr: "mismatch"},
		{name: "elements swapped", sent: two, tokenDetails: returns(swapped), wantErr: "mismatch"},
		{name: "element dropped", sent: two, tokenDetails: returns(payment), wantErr: "mismatch"},
		{name: "element added", sent: payment, tokenDetails: returns(two), wantErr: "mismatch"},
		{name: "dropped", sent: two, tokenDetails: returns(""), wantErr: "mismatch"},
		{name: "dropped, pushed", par: true, sent: two, tokenDetails: returns(""), wantErr: "mismatch"},
		{name: "null", sent: two, tokenDetails: returns("null"), wantErr: "mismatch"},
		{name: "a JSON string of the details", sent: two, tokenDetails: strconv.Quote, wantErr: "mismatch"},
		{name: "an object", sent: payment, tokenDetails: func(req string) string { return strings.Trim(req, "[]") }, wantErr: "mismatch"},
		{name: "expected but never sent", expect: payment, wantErr: "mismatch"},
		{name: "expected value not valid", sent: payment, expect: "[{", wantErr: "expected authorization_details"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := flow{
				level:   mfa,
				opts:    oidctest.Options{PAR: tc.par},
				details: tc.sent,
				tok:     oidctest.Token{AuthorizationDetails: tc.tokenDetails},
			}
			if tc.expect != "" {
				f.expect = func(e *oidc.Expect, _ *oidctest.Server) { e.AuthorizationDetails = tc.expect }
			}
			facts, err := f.run(t)
			switch tc.wantErr {
			case "":
				if err != nil {
					t.Fatalf("Exchange: %v", err)
				}
				if facts.Subject != "alice" {
					t.Errorf("Subject = %q; want alice", facts.Subject)
				}
				return
			case "mismatch":
				if !errors.Is(err, oidc.ErrAuthorizationDetailsMismatch) {
					t.Fatalf("Exchange error %v; want ErrAuthorizationDetailsMismatch", err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Exchange error %v; want one containing %q", err, tc.wantErr)
				}
				if errors.Is(err, oidc.ErrAuthorizationDetailsMismatch) {
					t.Errorf("error %q blames the provider for our own expectation", err)
				}
			}
			if facts.Subject != "" {
				t.Errorf("Exchange returned facts %+v with an error", facts)
			}
			var se *oidc.StepUpError
			if errors.As(err, &se) || errors.Is(err, oidc.ErrSubjectMismatch) {
				t.Errorf("error %q is another outcome's", err)
			}
			// The transaction's data stays out of errors, and so out of logs.
			for _, leak := range []string{"DE02100100109307118603", "GB33BUKB", "9100"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q contains %q", err, leak)
				}
			}
		})
	}
}
