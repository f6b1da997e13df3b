// Package config turns routes.yaml into typed, validated values. Every problem
// in a file is reported at once, each with its position and a fix.
package config

import (
	"net/netip"
	"net/url"
	"time"

	"github.com/stepgate/stepgate/policy"
)

// Config is a validated routes.yaml.
type Config struct {
	File string // the path it was read from, for messages

	Listen      string   // public listener, e.g. ":8080"
	AdminListen string   // /healthz /readyz /metrics
	Upstream    *url.URL // nil in forward-auth-only deployments
	PublicURL   *url.URL // origin browsers use; scheme and host only

	OIDC    OIDC
	Session Session

	Levels []*policy.Level // in file order
	Routes []policy.Rule   // in file order; first match wins
	Default policy.Rule    // for requests no route matches (Name "default")

	StripPathParams      bool
	CaseInsensitivePaths bool
	InsecureAllowHTTP    bool
	TrustedProxies       []netip.Prefix

	// IdentityHeaders lists extra request header names that clients must
	// never be able to send upstream (besides the X-Stepgate-* ones).
	IdentityHeaders []string
}

// OIDC is the relying-party configuration.
type OIDC struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	Scopes       []string // always contains "openid", first
}

// Session configures the sealed session cookie.
type Session struct {
	Secrets  [][]byte // each at least 32 bytes; the first seals, all open
	Lifetime time.Duration
}

// Level returns the level called name, or nil.
func (c *Config) Level(name string) *policy.Level {
	for _, l := range c.Levels {
		if l.Name == name {
			return l
		}
	}
	return nil
}
