// Package config turns routes.yaml into typed, validated values. Every problem
// in a file is reported at once, each with its position and a fix.
package config

import (
	"net/netip"
	"net/url"
	"time"

	"go.yaml.in/yaml/v3"

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
	Admin   Admin
	API     *API // nil: bearer tokens are not accepted

	Levels  []*policy.Level // in file order
	Routes  []policy.Rule   // in file order; first match wins
	Default policy.Rule     // for requests no route matches (Name "default")

	// Table is Routes and Default compiled, once, by Parse.
	Table *policy.Table

	StripPathParams      bool
	CaseInsensitivePaths bool
	InsecureAllowHTTP    bool
	TrustedProxies       []netip.Prefix

	// IdentityHeaders lists extra request header names that clients must
	// never be able to send upstream (besides the X-Stepgate-* ones).
	IdentityHeaders []string

	// Unset lists the ${NAME}s that became placeholders (Options.AllowUnset);
	// a Config with any must not be served.
	Unset []Unset

	pos positions
}

// OIDC is the relying-party configuration.
type OIDC struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	Scopes       []string // always contains "openid", first

	// PAR says whether authorization requests are pushed (RFC 9126):
	// "auto" when the provider's discovery advertises a
	// pushed_authorization_request_endpoint, "required" always (a
	// provider without one is a start-up error), or "off".
	PAR string
}

// Session configures the sealed session cookie and the state replicas share.
type Session struct {
	Secrets  [][]byte // each at least 32 bytes; the first seals, all open
	Lifetime time.Duration

	// Store is "" for one process's memory, else a redis:// or rediss://
	// URL that several replicas share (revocations, single-use records).
	Store string
	// StoreGrace is how long the local copy of the revocation list may be
	// out of touch with Store before requests that need a session get 503.
	StoreGrace time.Duration
}

// Admin configures the admin API on admin_listen.
type Admin struct {
	Token string // bearer token, at least 32 bytes; "" turns the API off
}

// PathOptions returns the canonicalization switches for policy.CanonicalPath.
func (c *Config) PathOptions() policy.PathOptions {
	return policy.PathOptions{StripPathParams: c.StripPathParams}
}

// TableOptions returns the matching switches for policy.NewTable.
func (c *Config) TableOptions() policy.TableOptions {
	return policy.TableOptions{CaseInsensitivePaths: c.CaseInsensitivePaths}
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

// positions remembers where things were in the file, for Warnings.
type positions struct {
	routes   []pos // per route, the route's mapping
	levels   []pos // per level, its name
	once     []pos // per level, its once value; zero when unset
	def      pos   // default's value, when set
	insecure pos   // insecure_allow_http's value, when set
	proxies  []pos // per trusted proxy
}

type pos struct{ line, col int }

func at(n *yaml.Node) pos {
	if n == nil {
		return pos{}
	}
	return pos{n.Line, n.Column}
}
