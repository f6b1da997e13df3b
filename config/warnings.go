package config

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/stepgate/stepgate/policy"
)

// Warnings lists what is valid but probably not what the operator meant,
// in file order, each as "file:line:col: what; how to fix": a stricter rule
// shadowed by an earlier, weaker one (it will never apply to the requests it
// was written for), insecure_allow_http, proxies trusted from everywhere,
// and levels no rule uses.
func Warnings(c *Config) []string {
	type warning struct {
		pos
		text string
	}
	var ws []warning
	add := func(p pos, format string, args ...any) {
		ws = append(ws, warning{p, position(c.File, p.line, p.col) + " " + fmt.Sprintf(format, args...)})
	}

	if c.InsecureAllowHTTP {
		add(c.pos.insecure, "insecure_allow_http: cookies lose Secure and the __Host- prefix, and http:// issuers are accepted; use it only for local testing")
	}
	for _, s := range policy.Shadows(c.Routes) {
		if s.Earlier < 0 || s.Later < 0 || s.Earlier >= len(c.Routes) || s.Later >= len(c.Routes) {
			continue
		}
		e, l := &c.Routes[s.Earlier], &c.Routes[s.Later]
		example := s.Host + s.Example
		if s.Method != "" {
			example = s.Method + " " + example
		}
		add(c.routePos(s.Later), "routes[%d] %q (%s) is shadowed by routes[%d] %q (%s) at line %d for requests such as %s; move it above",
			s.Later, l.Name, requires(l), s.Earlier, e.Name, requires(e), e.Line, example)
	}
	for i, p := range c.TrustedProxies {
		if p.Bits() == 0 {
			add(c.proxyPos(i), "trusted_proxies[%d]: %s lets every client set X-Forwarded-*; list only your proxies' addresses", i, p)
		}
	}
	for i, l := range c.Levels {
		if !c.uses(l) {
			var p pos
			if i < len(c.pos.levels) {
				p = c.pos.levels[i]
			}
			add(p, "levels.%s: no route requires it; use it in a route or remove it", l.Name)
		}
	}

	slices.SortStableFunc(ws, func(a, b warning) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.col, b.col))
	})
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.text
	}
	return out
}

// requires names what r requires, as routes.yaml spells it.
func requires(r *policy.Rule) string {
	if r.Access == policy.Leveled && r.Level != nil {
		return r.Level.Name
	}
	return r.Access.String()
}

// routePos is where routes[i] starts, or just its line for a Config built
// by hand.
func (c *Config) routePos(i int) pos {
	if i < len(c.pos.routes) {
		return c.pos.routes[i]
	}
	return pos{line: c.Routes[i].Line}
}

func (c *Config) proxyPos(i int) pos {
	if i < len(c.pos.proxies) {
		return c.pos.proxies[i]
	}
	return pos{}
}

func (c *Config) uses(l *policy.Level) bool {
	if c.Default.Level == l {
		return true
	}
	for i := range c.Routes {
		if c.Routes[i].Level == l {
			return true
		}
	}
	return false
}
