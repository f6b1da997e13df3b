package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// API configures bearer access tokens: with it, a request carrying
// Authorization: Bearer (or DPoP) is decided on the token instead of a
// session cookie.
type API struct {
	// Audience is the aud every token must name: this API, as the
	// provider knows it (RFC 9068 §3, RFC 8707 resource).
	Audience string
	// Tokens is how tokens are checked: TokensJWT (RFC 9068, against the
	// issuer's keys), TokensIntrospection (RFC 7662) or TokensBoth (JWTs
	// locally, anything else by introspection).
	Tokens string
	// IntrospectionURL overrides the provider's introspection_endpoint.
	IntrospectionURL string
	// DPoP is DPoPOff, DPoPOptional or DPoPRequired (RFC 9449), for every
	// route that does not set its own.
	DPoP string
	// CacheTTL is the longest a verified token is trusted from the cache
	// (never past its exp); IntrospectionTTL the same for an introspection
	// answer, which may be revoked at the provider, so much shorter.
	CacheTTL, IntrospectionTTL time.Duration
	// CacheSize bounds how many verified tokens are kept.
	CacheSize int
	// RouteDPoP holds, by route name, the routes that set their own dpop.
	RouteDPoP map[string]string
}

// The values of API.Tokens and API.DPoP.
const (
	TokensJWT           = "jwt"
	TokensIntrospection = "introspection"
	TokensBoth          = "both"

	DPoPOff      = "off"
	DPoPOptional = "optional"
	DPoPRequired = "required"
)

var (
	apiKeys      = []string{"audience", "tokens", "introspection_url", "dpop", "cache_ttl", "introspection_cache_ttl", "cache_size"}
	routeAPIKeys = []string{"dpop"}
	tokenModes   = []string{TokensJWT, TokensIntrospection, TokensBoth}
	dpopModes    = []string{DPoPOff, DPoPOptional, DPoPRequired}
)

// Bounds of the token cache settings. An hour is long for an access token
// whose revocation the gateway would only learn about by introspection or
// by the provider's logout.
const (
	maxCacheTTL         = time.Hour
	maxIntrospectionTTL = 5 * time.Minute
	maxCacheSize        = 1 << 20
)

// api reads the top-level api section; nil when absent.
func (d *decoder) api(n *yaml.Node, allowHTTP bool) *API {
	if isNull(n) {
		return nil
	}
	if deref(n).Kind != yaml.MappingNode {
		d.errorAt(n, "api", "expected a map, got "+describe(n), `write api: {audience: "https://api.example.com"}`)
		return nil
	}
	m := d.mapping(n, "api", apiKeys...)
	a := &API{Tokens: TokensJWT, DPoP: DPoPOptional, CacheTTL: 5 * time.Minute, IntrospectionTTL: 30 * time.Second, CacheSize: 10000}
	if aud, ok := d.str(m["audience"], "api.audience"); ok && strings.TrimSpace(aud) == "" {
		d.errorAt(orAt(m["audience"], n), "api.audience", "missing",
			`add the audience the provider puts in this API's access tokens, such as "https://api.bank.example.com"`)
	} else if ok {
		a.Audience = aud
	}
	if v, ok := d.choice(m["tokens"], "api.tokens", tokenModes,
		"use jwt (RFC 9068 tokens, checked locally), introspection (RFC 7662) or both"); ok {
		a.Tokens = v
	}
	if v, ok := d.choice(m["dpop"], "api.dpop", dpopModes,
		"use off, optional (DPoP-bound tokens need a proof) or required (every token must be DPoP-bound)"); ok {
		a.DPoP = v
	}
	if s, ok := d.str(m["introspection_url"], "api.introspection_url"); ok && s != "" {
		u, err := url.Parse(s)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.Fragment != "":
			d.errorAt(m["introspection_url"], "api.introspection_url", fmt.Sprintf("%q is not an absolute https URL", s),
				"leave it out to use the provider's introspection_endpoint")
		case u.Scheme == "http" && !allowHTTP:
			d.errorAt(m["introspection_url"], "api.introspection_url", fmt.Sprintf("%q must use https", s),
				"set insecure_allow_http: true only for local testing")
		default:
			a.IntrospectionURL = s
		}
	}
	if a.IntrospectionURL != "" && a.Tokens == TokensJWT {
		d.errorAt(m["introspection_url"], "api.introspection_url", "set, but tokens is jwt, so nothing is introspected",
			"set tokens: introspection or both, or remove introspection_url")
	}
	a.CacheTTL = d.boundedDuration(m["cache_ttl"], "api.cache_ttl", a.CacheTTL, maxCacheTTL)
	a.IntrospectionTTL = d.boundedDuration(m["introspection_cache_ttl"], "api.introspection_cache_ttl", a.IntrospectionTTL, maxIntrospectionTTL)
	if cn := m["cache_size"]; !isNull(cn) {
		s, _ := d.str(cn, "api.cache_size")
		switch v, err := strconv.Atoi(s); {
		case err != nil || deref(cn).ShortTag() != "!!int":
			d.errorAt(cn, "api.cache_size", fmt.Sprintf("%q is not a number", s), "use a number of tokens, such as 10000")
		case v < 1 || v > maxCacheSize:
			d.errorAt(cn, "api.cache_size", fmt.Sprintf("%d is outside 1..%d", v, maxCacheSize), "use a number of tokens, such as 10000")
		default:
			a.CacheSize = v
		}
	}
	return a
}

// routeAPI reads a route's api section: what it changes of the top-level
// one. It returns the route's dpop mode, "" when it sets none.
func (d *decoder) routeAPI(n *yaml.Node, field string) string {
	if isNull(n) || deref(n).Kind != yaml.MappingNode {
		d.errorAt(n, field, "expected a map, got "+describe(n), "write api: {dpop: required}")
		return ""
	}
	m := d.mapping(n, field, routeAPIKeys...)
	v, _ := d.choice(m["dpop"], join(field, "dpop"), dpopModes,
		"use off, optional or required")
	return v
}

// choice reads a scalar that must be one of values; ok is false when it is
// absent or was reported.
func (d *decoder) choice(n *yaml.Node, field string, values []string, hint string) (string, bool) {
	if isNull(n) {
		return "", false
	}
	s, ok := d.str(n, field)
	if !ok {
		return "", false
	}
	if contains(values, s) {
		return s, true
	}
	if v := deref(n); v.ShortTag() == "!!bool" && contains(values, "off") && strings.EqualFold(s, "false") {
		hint = `did you mean "off"?`
	} else if c := closest(s, values); c != "" {
		hint = fmt.Sprintf("did you mean %q?", c)
	}
	d.errorAt(n, field, fmt.Sprintf("%q is not %s", s, orList(values)), hint)
	return "", false
}

// boundedDuration reads a positive duration of at most max; def when absent
// or wrong.
func (d *decoder) boundedDuration(n *yaml.Node, field string, def, max time.Duration) time.Duration {
	dur, set := d.duration(n, field)
	switch {
	case !set:
		return def
	case dur <= 0:
		d.errorAt(n, field, fmt.Sprintf("%s is not positive", dur), fmt.Sprintf("use a duration such as %q", def.String()))
	case dur > max:
		d.errorAt(n, field, fmt.Sprintf("%s is longer than %s", dur, max), fmt.Sprintf("use at most %q", max.String()))
	default:
		return dur
	}
	return def
}

// orList writes "a, b or c".
func orList(vs []string) string {
	if len(vs) < 2 {
		return strings.Join(vs, "")
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}
