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
// levels no rule uses, once levels without max_age or on page views, and
// confirm on a route that holds nothing.
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
	for i, r := range c.Routes {
		if r.Report {
			add(c.routePos(i), "routes[%d] %q is report-only (mode: report): its decisions are logged and counted, and every request is forwarded; set mode: enforce once the reports look right", i, r.Name)
		}
	}
	for i, p := range c.TrustedProxies {
		if p.Bits() == 0 {
			add(c.proxyPos(i), "trusted_proxies[%d]: %s lets every client set X-Forwarded-*; list only your proxies' addresses", i, p)
		}
	}
	for i, l := range c.Levels {
		if !c.uses(l) {
			add(c.levelPos(i), "levels.%s: no route requires it; use it in a route or remove it", l.Name)
		}
	}

	for i, l := range c.Levels {
		if l.Once && l.MaxAge == 0 {
			p := c.levelPos(i)
			if i < len(c.pos.once) && c.pos.once[i].line > 0 {
				p = c.pos.once[i]
			}
			add(p, "levels.%s.once: a once level without max_age lets one step-up admit one request any time within the session; set max_age, such as 5m", l.Name)
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Level != nil && r.Level.Once && (r.Methods == nil || slices.Contains(r.Methods, "GET")) {
			which := "GET"
			if r.Methods == nil {
				which = "every method"
			}
			add(c.routePos(i), "routes[%d] %q: once level %q on %s, so every page view would use up the step-up; list the methods that change state, such as methods: [POST]",
				i, r.Name, r.Level.Name, which)
		}
		if r.Confirm != nil && r.Methods != nil && !slices.ContainsFunc(r.Methods, changesState) {
			add(c.routePos(i), "routes[%d] %q: confirm holds only POST, PUT, PATCH and DELETE requests, and the route matches none; add them to methods or remove confirm", i, r.Name)
		}
	}
	if l := c.Default.Level; l != nil && l.Once {
		add(c.pos.def, "default: once level %q on every request no route matches, so every page view would use up the step-up; require it on routes with methods: [POST]", l.Name)
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

// levelPos is where levels[i]'s name is, or nothing for a Config built by
// hand.
func (c *Config) levelPos(i int) pos {
	if i < len(c.pos.levels) {
		return c.pos.levels[i]
	}
	return pos{}
}

// changesState reports whether a request with method m is one that confirm
// holds.
func changesState(m string) bool {
	return m == "POST" || m == "PUT" || m == "PATCH" || m == "DELETE"
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
