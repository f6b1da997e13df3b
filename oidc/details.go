package oidc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ErrAuthorizationDetailsMismatch reports a token response whose
// authorization_details (RFC 9396 §7) are absent or differ from those
// sent: what the provider authorized is not the transaction the user was
// asked to approve, so the proxy answers 403 and forwards nothing.
var ErrAuthorizationDetailsMismatch = errors.New("oidc: token response authorization_details do not match those sent")

// maxSignificantDigits is the precision up to which distinct decimal
// numbers stay distinct as float64 (DBL_DIG).
const maxSignificantDigits = 15

// CheckAuthorizationDetails reports whether s is authorization_details that
// stepgate can send and later compare with the token response's: a JSON
// array of one or more objects, each with a non-empty string "type" (RFC
// 9396 §2), whose numbers have at most 15 significant digits.
//
// The last rule is there because the token response reaches stepgate
// decoded into float64, where longer numbers collide (12345678901234567
// and 12345678901234568 are one float64), so an altered amount could
// compare equal. Amounts are best sent as strings, as RFC 9396's examples do.
func CheckAuthorizationDetails(s string) error {
	_, err := parseDetails(s)
	return err
}

// parseDetails decodes and checks s as CheckAuthorizationDetails says, with
// numbers as float64, the way the token response's value arrives.
func parseDetails(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("authorization_details: want a JSON array, got invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("authorization_details: want nothing after the array")
	}
	arr, ok := v.([]any)
	switch {
	case !ok:
		return nil, fmt.Errorf("authorization_details: want a JSON array, got %s", jsonKind(v))
	case len(arr) == 0:
		return nil, errors.New("authorization_details: want at least one object in the array")
	}
	for i, e := range arr {
		obj, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("authorization_details[%d]: want an object, got %s", i, jsonKind(e))
		}
		if t, _ := obj["type"].(string); t == "" {
			return nil, fmt.Errorf(`authorization_details[%d]: want a non-empty string "type"`, i)
		}
	}
	return floats(v, "authorization_details")
}

// floats replaces every json.Number in v by its float64, refusing numbers
// that would not survive the conversion distinct. path names v in errors;
// values are left out, as they are the transaction's data.
func floats(v any, path string) (any, error) {
	var err error
	switch x := v.(type) {
	case json.Number:
		return number(x, path)
	case []any:
		for i := range x {
			if x[i], err = floats(x[i], path+"["+strconv.Itoa(i)+"]"); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for k := range x {
			if x[k], err = floats(x[k], path+"."+k); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

func number(n json.Number, path string) (float64, error) {
	f, err := n.Float64()
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s: want a number within float64 range", path)
	case f != 0 && math.Abs(f) < 0x1p-1022:
		// Subnormal: fewer significant bits, so the digit rule below
		// would not be enough.
		return 0, fmt.Errorf("%s: want a number within float64's normal range", path)
	case significantDigits(string(n)) > maxSignificantDigits:
		return 0, fmt.Errorf("%s: a number with more than %d significant digits would not compare exactly; send it as a string",
			path, maxSignificantDigits)
	}
	return f, nil
}

// significantDigits counts the significant digits of a JSON number.
func significantDigits(n string) int {
	n = strings.TrimPrefix(n, "-")
	if i := strings.IndexAny(n, "eE"); i >= 0 {
		n = n[:i]
	}
	n = strings.Replace(n, ".", "", 1)
	return len(strings.Trim(n, "0"))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}

// matchDetails compares the token response's authorization_details, as
// oauth2 decoded them, with the ones sent (from parseDetails). Both are
// re-encoded by encoding/json, which sorts object members, so the order of
// members and the spelling of numbers and strings do not matter; the order
// of the array's elements does.
func matchDetails(sent, got any) error {
	if got == nil {
		return fmt.Errorf("%w: the token response has none", ErrAuthorizationDetailsMismatch)
	}
	want, err := json.Marshal(sent)
	if err != nil {
		return fmt.Errorf("oidc: exchange: expected authorization_details: %w", err)
	}
	have, err := json.Marshal(got)
	if err != nil || !bytes.Equal(want, have) {
		return fmt.Errorf("%w: the provider returned different ones", ErrAuthorizationDetailsMismatch)
	}
	return nil
}
