package devidp

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// checkDetails checks authorization_details as RFC 9396 §2 defines them: a
// JSON array of objects, each with a string "type". Any type is accepted;
// a real provider refuses types it does not know (§5), but devidp exists to
// show and echo whatever stepgate sends.
func checkDetails(s string) error {
	var arr []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &arr); err != nil || len(arr) == 0 {
		return invalidDetails("want a non-empty JSON array of objects")
	}
	for i, d := range arr {
		var typ string
		if json.Unmarshal(d["type"], &typ) != nil || typ == "" {
			return invalidDetails(fmt.Sprintf(`element %d: want a non-empty string "type"`, i))
		}
	}
	return nil
}

func invalidDetails(desc string) error {
	return &oidc.Error{ErrorType: "invalid_authorization_details", Description: "devidp: authorization_details: " + desc}
}

// detailView is one authorization_details element as the login pages show
// it: a sentence for a payment, else the element's JSON. The template
// escapes both.
type detailView struct{ Payment, JSON string }

// describeDetails turns checked authorization_details into what the user
// is shown, so that the code they enter approves something they can read
// (dynamic linking).
func describeDetails(s string) []detailView {
	var arr []json.RawMessage
	if s == "" || json.Unmarshal([]byte(s), &arr) != nil {
		return nil
	}
	views := make([]detailView, 0, len(arr))
	for _, raw := range arr {
		if text, ok := describePayment(raw); ok {
			views = append(views, detailView{Payment: text})
			continue
		}
		var buf bytes.Buffer
		if json.Indent(&buf, raw, "", "  ") != nil {
			buf.Reset()
			buf.Write(raw)
		}
		views = append(views, detailView{JSON: buf.String()})
	}
	return views
}

// describePayment reads a payment_initiation element (the shape of RFC
// 9396's example) as "Send <amount> <currency> to <iban>"; ok is false
// unless all three are there.
func describePayment(raw json.RawMessage) (string, bool) {
	var p struct {
		Type             string `json:"type"`
		InstructedAmount struct {
			Amount   json.RawMessage `json:"amount"`
			Currency string          `json:"currency"`
		} `json:"instructedAmount"`
		CreditorAccount struct {
			IBAN string `json:"iban"`
		} `json:"creditorAccount"`
	}
	if json.Unmarshal(raw, &p) != nil || p.Type != "payment_initiation" {
		return "", false
	}
	amount, ok := scalar(p.InstructedAmount.Amount)
	if !ok || p.InstructedAmount.Currency == "" || p.CreditorAccount.IBAN == "" {
		return "", false
	}
	return fmt.Sprintf("Send %s %s to %s", amount, p.InstructedAmount.Currency, p.CreditorAccount.IBAN), true
}

// scalar is a JSON string's value or a JSON number's text.
func scalar(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}
