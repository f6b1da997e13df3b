package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/stepgate/stepgate/policy"
)

var (
	routeKeys = []string{"name", "host", "path", "path_regex", "methods", "require", "confirm", "mode", "api"}
	routeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

	// methods a rule may name. HEAD is matched as GET, and CONNECT and
	// TRACE are refused before matching, so naming them could
	// only mislead.
	knownMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
)

// routes decodes the route table in file order. What a rule means (host
// patterns, globs, regexes, duplicate names) is checked once, by
// policy.NewTable in config; here only the YAML is read.
func (d *decoder) routes(n *yaml.Node, levels map[string]*policy.Level, c *Config) []policy.Rule {
	var rules []policy.Rule
	for i, item := range d.list(n, "routes") {
		field := index("routes", i)
		if isNull(item) || deref(item).Kind != yaml.MappingNode {
			d.errorAt(item, field, "expected a map, got "+describe(item), "write a route as - name: ... path: ... require: ...")
			continue
		}
		errs := len(d.errs)
		r, m := d.route(item, field, levels)
		if an, ok := m["api"]; ok {
			d.routeAPIOf(an, join(field, "api"), r.Name, c)
		}
		rules = append(rules, r)
		c.pos.routes = append(c.pos.routes, at(item))
		rn := routeNodes{item: item, keys: m, field: field, reported: map[string]bool{}}
		for _, e := range d.errs[errs:] {
			rn.reported[e.Field] = true
		}
		d.routeNodes = append(d.routeNodes, rn)
	}
	return rules
}

// routeAPIOf records a route's own api settings.
func (d *decoder) routeAPIOf(n *yaml.Node, field, route string, c *Config) {
	mode := d.routeAPI(n, field)
	switch {
	case c.API == nil:
		d.errorAt(n, field, "set, but there is no top-level api section", `add api: {audience: "..."} at the top level, or remove this`)
	case mode != "" && route != "":
		if c.API.RouteDPoP == nil {
			c.API.RouteDPoP = map[string]string{}
		}
		c.API.RouteDPoP[route] = mode
	}
}

// routeNodes is where one route was in the file, to position what
// policy.NewTable says about it.
type routeNodes struct {
	item     *yaml.Node
	keys     map[string]*yaml.Node
	field    string
	reported map[string]bool // fields decoding already found a problem in
}

// compile builds the route table with policy.NewTable, the code that will
// match requests, and positions each problem it reports at the field of the
// route it concerns.
func (d *decoder) compile(c *Config, defNode *yaml.Node) *policy.Table {
	t, err := policy.NewTable(c.Routes, c.Default, c.TableOptions())
	var te policy.TableError
	if err == nil || !errors.As(err, &te) {
		if err != nil {
			d.errs = append(d.errs, &Error{File: d.file, Field: "routes", Msg: err.Error()})
		}
		return t
	}
	defer func() {
		// Never accept what NewTable refused, even if every problem it
		// named was skipped below as said already.
		if len(d.errs) == 0 {
			d.errs = append(d.errs, &Error{File: d.file, Field: "routes", Msg: err.Error()})
		}
	}()
	for _, e := range te {
		if e.Index < 0 {
			if len(d.errs) == 0 {
				d.errorAt(defNode, "default", e.Msg, e.Hint)
			}
			continue
		}
		rn := d.routeNodes[e.Index]
		at, field := rn.item, rn.field
		if n := rn.keys[e.Field]; n != nil {
			at, field = n, join(rn.field, e.Field)
		}
		// What decoding reported already is not said twice, and levels
		// are checked, and reported, where they are defined.
		if rn.reported[field] || e.Field == "require" {
			continue
		}
		if e.Field == "" && (rn.reported[join(rn.field, "path")] || rn.reported[join(rn.field, "path_regex")]) {
			continue // decoding found the path missing, empty or doubled
		}
		msg, hint := e.Msg, e.Hint
		if e.Field == "name" {
			msg, hint = fmt.Sprintf("duplicate name %q (first at line %d)", e.Name, c.Routes[e.First].Line), "give each route its own name"
		}
		d.errorAt(at, field, msg, hint)
	}
	return nil
}

// route decodes one route; it also returns the route's value nodes by key.
func (d *decoder) route(n *yaml.Node, field string, levels map[string]*policy.Level) (policy.Rule, map[string]*yaml.Node) {
	r := policy.Rule{Line: deref(n).Line}
	m := d.mapping(n, field, routeKeys...)

	if name, ok := d.str(m["name"], join(field, "name")); ok {
		switch {
		case name == "":
			d.errorAt(orAt(m["name"], n), join(field, "name"), "missing", "name each route; the name appears in logs and metrics")
		case name == "default":
			d.errorAt(m["name"], join(field, "name"), `"default" is the name of the rule for unmatched requests`, "choose another name")
		case name == "stepgate":
			d.errorAt(m["name"], join(field, "name"), `"stepgate" names the gateway's own endpoints in logs and metrics`, "choose another name")
		case !routeName.MatchString(name):
			d.errorAt(m["name"], join(field, "name"), fmt.Sprintf("%q is not a route name", name), "use letters, digits, ., _ and -")
		default:
			r.Name = name
		}
	}

	if h, ok := d.str(m["host"], join(field, "host")); ok && h != "" {
		// Written in any case and with a trailing dot, it is matched in
		// canonical form; anything that is no pattern is NewTable's to
		// report.
		r.Host = h
		if c, err := policy.CanonicalHostPattern(h); err == nil {
			r.Host = c
		}
	}

	pathNode, reNode := m["path"], m["path_regex"]
	switch {
	case pathNode != nil && reNode != nil:
		d.errorAt(reNode, join(field, "path_regex"), "set together with path", "keep one of path and path_regex")
	case pathNode != nil:
		var ok bool
		if r.Path, ok = d.str(pathNode, join(field, "path")); ok && r.Path == "" {
			d.errorAt(pathNode, join(field, "path"), "empty", `write an absolute path such as "/api/**"`)
		}
	case reNode != nil:
		var ok bool
		if r.PathRegex, ok = d.str(reNode, join(field, "path_regex")); ok && r.PathRegex == "" {
			d.errorAt(reNode, join(field, "path_regex"), "empty", `write a regular expression such as "/api/v[0-9]+/.*"`)
		}
	default:
		d.errorAt(n, field, "needs path or path_regex", `add path: such as "/api/**"`)
	}

	if mn := m["methods"]; mn != nil {
		r.Methods = d.methods(mn, join(field, "methods"))
	}

	if rn := m["require"]; isNull(rn) {
		d.errorAt(orAt(rn, n), join(field, "require"), "missing", "add require: public, authenticated, deny, or a level name")
	} else {
		r.Access, r.Level = d.requirement(rn, join(field, "require"), levels)
	}

	if mn := m["mode"]; !isNull(mn) {
		switch v, _ := d.str(mn, join(field, "mode")); v {
		case "enforce":
		case "report":
			r.Report = true
		default:
			hint := "use enforce (the default) or report (decide and log, forward anyway)"
			if c := closest(v, []string{"enforce", "report"}); c != "" {
				hint = fmt.Sprintf("did you mean %q?", c)
			}
			d.errorAt(mn, join(field, "mode"), fmt.Sprintf("%q is not enforce or report", v), hint)
		}
	}

	if cn, ok := m["confirm"]; ok {
		cf := d.confirm(cn, join(field, "confirm"))
		// policy.NewTable refuses confirm on a rule without a level. When
		// require itself was wrong that was said already.
		if r.Access != 0 {
			r.Confirm = cf
		}
	}
	return r, m
}

func (d *decoder) methods(n *yaml.Node, field string) []string {
	var out []string
	vals, nodes := d.strList(n, field)
	if len(vals) == 0 && (isNull(n) || deref(n).Kind == yaml.SequenceNode) {
		d.errorAt(n, field, "empty, so the route would match no request", "list methods, or remove methods to match every method")
	}
	for i, m := range vals {
		f := index(field, i)
		up := strings.ToUpper(m)
		switch {
		case m == "HEAD":
			d.errorAt(nodes[i], f, "HEAD requests are matched as GET", "list GET instead")
		case m == "CONNECT" || m == "TRACE" || m == "TRACK":
			d.errorAt(nodes[i], f, m+" is always refused by the gateway", "remove it")
		case m != up && (contains(knownMethods, up) || up == "HEAD"):
			d.errorAt(nodes[i], f, fmt.Sprintf("%q is not upper-case", m), fmt.Sprintf("write %q; methods are case-sensitive", up))
		case !contains(knownMethods, m):
			d.errorAt(nodes[i], f, fmt.Sprintf("unknown method %q", m), "use "+strings.Join(knownMethods, ", "))
		case !contains(out, m):
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		// Never nil: nil means every method, and a list with only
		// errors must not widen the rule.
		return []string{}
	}
	return out
}

// requirement reads a require: (or default:) value.
func (d *decoder) requirement(n *yaml.Node, field string, levels map[string]*policy.Level) (policy.Access, *policy.Level) {
	s, ok := d.str(n, field)
	if !ok {
		return 0, nil
	}
	if a := builtinAccess[s]; a != 0 {
		return a, nil
	}
	if l := levels[s]; l != nil {
		return policy.Leveled, l
	}
	names := make([]string, 0, len(levels))
	for name := range levels {
		names = append(names, name)
	}
	slices.Sort(names)
	hint := "no levels are defined; use public, authenticated or deny, or define the level under levels"
	if s := closest(s, []string{"public", "authenticated", "deny"}); s != "" {
		hint = fmt.Sprintf("did you mean %q?", s)
	} else if len(names) > 0 {
		hint = "defined levels: " + strings.Join(names, ", ")
	}
	d.errorAt(n, field, fmt.Sprintf("unknown level %q", s), hint)
	return 0, nil
}
