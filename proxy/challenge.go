package proxy

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/stepgate/stepgate/policy"
)

// authChallenge is one WWW-Authenticate challenge (RFC 9110 §11.6.1):
// a scheme and its parameters, in order.
type authChallenge struct {
	scheme string
	params []authParam
}

type authParam struct {
	name, value string
	bare        bool // a number, written as a token (RFC 9470's max_age=N)
}

func (c *authChallenge) add(name, value string) {
	c.params = append(c.params, authParam{name: name, value: value})
}

func (c *authChallenge) addNumber(name string, n int64) {
	c.params = append(c.params, authParam{name: name, value: strconv.FormatInt(n, 10), bare: true})
}

func (c authChallenge) String() string {
	var b strings.Builder
	b.WriteString(c.scheme)
	for i, p := range c.params {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		if p.bare {
			b.WriteString(p.value)
		} else {
			writeQuoted(&b, p.value)
		}
	}
	return b.String()
}

// writeQuoted writes s as an RFC 9110 quoted-string. Values come from
// routes.yaml, never from a request, but a quote, a backslash or a control
// character in one must still not end the string early or split the
// header: quotes and backslashes are escaped, control characters dropped.
func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 && c != '\t', c == 0x7f:
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// The schemes of the challenges the gateway sends.
const (
	schemeBearer = "Bearer"
	schemeDPoP   = "DPoP"
)

// stepUpChallenge is the RFC 9470 §3 challenge for a token or session that
// does not satisfy level l. A level that asks for claims gets Entra ID's
// form instead: insufficient_claims with the claims request, base64url,
// which the client passes to the provider's authorization endpoint as is.
func stepUpChallenge(scheme string, l *policy.Level) authChallenge {
	c := authChallenge{scheme: scheme}
	if l != nil && l.Claims != "" {
		c.add("error", "insufficient_claims")
		c.add("error_description", "More claims are required")
		c.add("claims", base64.RawURLEncoding.EncodeToString([]byte(l.Claims)))
		return c
	}
	c.add("error", "insufficient_user_authentication")
	c.add("error_description", "A different authentication level is required")
	if l != nil {
		if len(l.ACRValues) > 0 {
			c.add("acr_values", strings.Join(l.ACRValues, " "))
		}
		if l.MaxAge > 0 {
			c.addNumber("max_age", int64(l.MaxAge.Seconds()))
		}
	}
	return c
}
