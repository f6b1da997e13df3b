package proxy

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/policy"
)

func TestStepUpChallenge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scheme string
		level  *policy.Level
		want   string
	}{
		// RFC 9470 §3's example, with max_age as a number.
		{"acr and max_age", schemeBearer, &policy.Level{Name: "mfa", ACRValues: []string{"urn:mfa", "phr"}, MaxAge: 15 * time.Minute},
			`Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:mfa phr", max_age=900`},
		{"acr only", schemeBearer, &policy.Level{Name: "mfa", ACRValues: []string{"myACR"}},
			`Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="myACR"`},
		{"dpop scheme", schemeDPoP, &policy.Level{Name: "mfa", MaxAge: time.Minute},
			`DPoP error="insufficient_user_authentication", error_description="A different authentication level is required", max_age=60`},
		{"claims", schemeBearer, &policy.Level{Name: "c1", ACRValues: []string{"ignored"}, Claims: `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`},
			`Bearer error="insufficient_claims", error_description="More claims are required", claims="` +
				base64.RawURLEncoding.EncodeToString([]byte(`{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`)) + `"`},
		{"quotes and controls cannot break out", schemeBearer, &policy.Level{Name: "x", ACRValues: []string{"a\"b\\c", "d\r\nSet-Cookie: x=1"}},
			`Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="a\"b\\c dSet-Cookie: x=1"`},
	} {
		if got := stepUpChallenge(tc.scheme, tc.level).String(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestCredentialOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		auth    []string
		present bool
		err     bool
		want    credential
	}{
		{"none", nil, false, false, credential{}},
		{"basic is the app's", []string{"Basic dXNlcjpwdw=="}, false, false, credential{}},
		{"bearer", []string{"Bearer abc.def-ghi_jkl~+/=="}, true, false, credential{schemeBearer, "abc.def-ghi_jkl~+/=="}},
		{"scheme is case-insensitive", []string{"bEaReR tok"}, true, false, credential{schemeBearer, "tok"}},
		{"dpop", []string{"DPoP tok"}, true, false, credential{schemeDPoP, "tok"}},
		{"two spaces", []string{"Bearer  tok"}, true, false, credential{schemeBearer, "tok"}},
		{"empty token", []string{"Bearer "}, true, true, credential{}},
		{"no token", []string{"Bearer"}, true, true, credential{}},
		{"not token68", []string{"Bearer a b"}, true, true, credential{}},
		{"padding inside", []string{"Bearer a=b"}, true, true, credential{}},
		{"comma list", []string{"Bearer a, Basic b"}, true, true, credential{}},
		{"two headers", []string{"Bearer a", "Bearer b"}, true, true, credential{}},
		{"basic then bearer", []string{"Basic x", "Bearer b"}, true, true, credential{}},
		{"oversized", []string{"Bearer " + strings.Repeat("a", maxTokenLen+1)}, true, true, credential{}},
		{"tab after the scheme", []string{"Bearer\ttok"}, true, true, credential{}},
		{"comma after the scheme", []string{"bearer,tok"}, true, true, credential{}},
		{"a longer scheme", []string{"BearerToken tok"}, true, true, credential{}},
		{"dpop then basic", []string{"DPoP a", "Basic b"}, true, true, credential{}},
	} {
		h := http.Header{"Authorization": tc.auth}
		c, present, err := credentialOf(h)
		if present != tc.present || (err != nil) != tc.err || (!tc.err && c != tc.want) {
			t.Errorf("%s: credentialOf = %+v, %v, %v; want %+v, %v, error %v", tc.name, c, present, err, tc.want, tc.present, tc.err)
		}
	}
}

// FuzzCredentialOf: whatever the Authorization header holds, a token is
// only ever taken when it is a single token68 of bounded size, and never
// with a character that could split or extend a header.
func FuzzCredentialOf(f *testing.F) {
	for _, s := range []string{"Bearer abc", "DPoP a.b.c", "Basic x", "Bearer a b", "bearer\ttok", "Bearer ==", "Bearer a\r\nb"} {
		f.Add(s, "")
	}
	f.Add("Bearer a", "Bearer b")
	f.Fuzz(func(t *testing.T, a, b string) {
		h := http.Header{"Authorization": {a}}
		if b != "" {
			h["Authorization"] = append(h["Authorization"], b)
		}
		c, present, err := credentialOf(h)
		if err != nil || !present {
			if c.token != "" {
				t.Fatalf("credentialOf(%q, %q) refused but returned token %q", a, b, c.token)
			}
			return
		}
		if b != "" {
			t.Fatalf("credentialOf took a token from two Authorization headers %q, %q", a, b)
		}
		if !isToken68(c.token) || len(c.token) > maxTokenLen || strings.ContainsAny(c.token, " \t\r\n,\"") {
			t.Fatalf("credentialOf(%q) = token %q", a, c.token)
		}
		if c.scheme != schemeBearer && c.scheme != schemeDPoP {
			t.Fatalf("credentialOf(%q) = scheme %q", a, c.scheme)
		}
	})
}

// FuzzChallenge: whatever routes.yaml puts in a level, the challenge is one
// header line that parses back (RFC 9110 §11.6.1) to exactly the values
// that were meant, with quotes escaped and control characters dropped.
func FuzzChallenge(f *testing.F) {
	f.Add("urn:mfa", "", int64(900))
	f.Add(`a"b\c`, `{"id_token":{"acr":{"essential":true}}}`, int64(0))
	f.Add("x\r\ny", "", int64(-1))
	f.Fuzz(func(t *testing.T, acr, claims string, maxAge int64) {
		l := &policy.Level{Name: "l", ACRValues: []string{acr}, Claims: claims, MaxAge: time.Duration(maxAge) * time.Second}
		for _, scheme := range []string{schemeBearer, schemeDPoP} {
			got := stepUpChallenge(scheme, l).String()
			if strings.ContainsAny(got, "\r\n\x00") {
				t.Fatalf("challenge %q holds a control character", got)
			}
			s, params, err := parseChallenge(got)
			if err != nil {
				t.Fatalf("challenge %q does not parse: %v", got, err)
			}
			if s != scheme {
				t.Fatalf("challenge %q has scheme %q; want %q", got, s, scheme)
			}
			if claims != "" {
				dec, err := base64.RawURLEncoding.DecodeString(params["claims"])
				if err != nil || string(dec) != claims || params["error"] != "insufficient_claims" {
					t.Fatalf("challenge %q: claims %q (%v); want %q", got, dec, err, claims)
				}
				continue
			}
			if params["error"] != "insufficient_user_authentication" {
				t.Fatalf("challenge %q: error %q", got, params["error"])
			}
			if want := dropControls(acr); acr != "" && params["acr_values"] != want {
				t.Fatalf("challenge %q: acr_values %q; want %q", got, params["acr_values"], want)
			}
		}
	})
}

func dropControls(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c >= 0x20 || c == '\t') && c != 0x7f {
			b = append(b, c)
		}
	}
	return string(b)
}

// parseChallenge is a strict RFC 9110 parser of one challenge whose
// parameters are auth-params, as a client would read the gateway's.
func parseChallenge(s string) (scheme string, params map[string]string, err error) {
	scheme, rest, _ := strings.Cut(s, " ")
	params = map[string]string{}
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		if !ok || name == "" || strings.ContainsAny(name, " \",") {
			return "", nil, errSyntax(rest)
		}
		var val string
		if strings.HasPrefix(after, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' {
					i++
					if i == len(after) {
						return "", nil, errSyntax(after)
					}
				}
				b.WriteByte(after[i])
			}
			if i == len(after) {
				return "", nil, errSyntax(after)
			}
			val, rest = b.String(), after[i+1:]
		} else {
			end := strings.IndexByte(after, ',')
			if end < 0 {
				end = len(after)
			}
			val, rest = after[:end], after[end:]
			if val == "" || strings.ContainsAny(val, " \"") {
				return "", nil, errSyntax(after)
			}
		}
		if _, dup := params[name]; dup {
			return "", nil, errSyntax(name)
		}
		params[name] = val
		if rest != "" {
			var ok bool
			if rest, ok = strings.CutPrefix(rest, ", "); !ok {
				return "", nil, errSyntax(rest)
			}
		}
	}
	return scheme, params, nil
}

type errSyntax string

func (e errSyntax) Error() string { return "challenge syntax error at " + string(e) }
