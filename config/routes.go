package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/stepgate/stepgate/policy"
)

var (
	routeKeys = []string{"name", "host", "path", "path_regex", "methods", "require"}
	routeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

	// methods a rule may name. HEAD is matched as GET, and CONNECT and
	// TRACE are refused before matching (DESIGN §1), so naming them could
	// only mislead.
	knownMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
)

// routes decodes the route table in file order.
func (d *decoder) routes(n *yaml.Node, levels map[string]*policy.Level, c *Config) []policy.Rule {
	var rules []policy.Rule
	firstLine := make(map[string]int)
	for i, item := range d.list(n, "routes") {
		field := index("routes", i)
		if isNull(item) || deref(item).Kind != yaml.MappingNode {
			d.errorAt(item, field, "expected a map, got "+describe(item), "write a route as - name: ... path: ... require: ...")
			continue
		}
		errs := len(d.errs)
		r, m := d.route(item, field, levels)
		if len(d.errs) == errs {
			d.policyCheck(r, item, m, field, c.TableOptions())
		}
		if r.Name != "" {
			if first, dup := firstLine[r.Name]; dup {
				d.errorAt(m["name"], join(field, "name"), fmt.Sprintf("duplicate name %q (first at line %d)", r.Name, first), "give each route its own name")
			} else {
				firstLine[r.Name] = r.Line
			}
		}
		rules = append(rules, r)
		c.pos.routes = append(c.pos.routes, at(item))
	}
	return rules
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
		case !routeName.MatchString(name):
			d.errorAt(m["name"], join(field, "name"), fmt.Sprintf("%q is not a route name", name), "use letters, digits, ., _ and -")
		default:
			r.Name = name
		}
	}

	if h, ok := d.str(m["host"], join(field, "host")); ok && h != "" {
		host, why := canonicalHost(h)
		if name, ok := withPort(h); ok {
			// A rule that held on one port only would be dodged by naming
			// another port in Host (threat model case 88), so host rules
			// match every port and a port is refused rather than ignored.
			d.errorAt(m["host"], join(field, "host"), fmt.Sprintf("%q has a port", h),
				fmt.Sprintf("remove it: a host rule matches its host on every port, so write %q", name))
		} else if why != "" {
			d.errorAt(m["host"], join(field, "host"), fmt.Sprintf("%q is not a host pattern", h), why)
		}
		r.Host = host
	}

	pathNode, reNode := m["path"], m["path_regex"]
	switch {
	case pathNode != nil && reNode != nil:
		d.errorAt(reNode, join(field, "path_regex"), "set together with path", "keep one of path and path_regex")
	case pathNode != nil:
		if p, ok := d.str(pathNode, join(field, "path")); ok {
			if msg, hint := checkGlob(p); msg != "" {
				d.errorAt(pathNode, join(field, "path"), msg, hint)
			}
			r.Path = p
		}
	case reNode != nil:
		if p, ok := d.str(reNode, join(field, "path_regex")); ok {
			if msg, hint := checkRegex(p); msg != "" {
				d.errorAt(reNode, join(field, "path_regex"), msg, hint)
			}
			r.PathRegex = p
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
	return r, m
}

// policyCheck compiles r alone with policy.NewTable, the code that will
// match requests, so that whatever the checks above missed is still
// reported here with a position rather than at start-up without one.
func (d *decoder) policyCheck(r policy.Rule, n *yaml.Node, m map[string]*yaml.Node, field string, opt policy.TableOptions) {
	// The level is checked, and reported, where it is defined.
	r.Access, r.Level = policy.Public, nil
	_, err := policy.NewTable([]policy.Rule{r}, policy.Rule{Name: "default", Access: policy.Authenticated}, opt)
	if err == nil {
		return
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		// `policy: rules[0] "name": path "/x": non-ascii` → `path "/x": non-ascii`
		msg := line
		if _, rest, ok := strings.Cut(line, "\": "); ok {
			msg = rest
		}
		at, f := n, field
		for _, key := range []string{"path_regex", "path", "host", "methods"} {
			word := strings.TrimSuffix(key, "s") + " "
			if strings.HasPrefix(msg, word) && m[key] != nil {
				at, f = m[key], join(field, key)
				if key != "methods" {
					msg = strings.TrimPrefix(msg, word)
				}
				break
			}
		}
		d.errorAt(at, f, msg, "")
	}
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

// canonicalHost returns host lower-cased, without a trailing dot or a
// default port, as policy compares request hosts; or why it is not a host.
// A leading "*." is kept as the wildcard.
func canonicalHost(host string) (string, string) {
	h, port := strings.ToLower(host), ""
	if strings.ContainsAny(h, "/@?#") {
		return "", "write the host name only, without scheme, user or path"
	}
	if strings.Contains(strings.TrimPrefix(h, "*."), "*") {
		return "", `a wildcard may only be the first label, as in "*.example.com"`
	}
	if strings.Count(h, ":") > 1 && !strings.HasPrefix(h, "[") {
		return "", `write an IPv6 address in brackets, as in "[2001:db8::1]"`
	}
	if strings.Contains(h, ":") && !strings.HasSuffix(h, "]") {
		var err error
		if h, port, err = net.SplitHostPort(h); err != nil {
			return "", "write the port as a number after the last :"
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return "", "the port must be a number from 1 to 65535"
		}
		if strings.Contains(h, ":") {
			h = "[" + h + "]" // SplitHostPort took the brackets off
		}
	}
	if port == "80" || port == "443" {
		port = ""
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", `write an IPv6 address in brackets, as in "[2001:db8::1]"`
		}
		h = "[" + a.String() + "]"
	} else {
		h = strings.TrimSuffix(h, ".")
		labels := strings.Split(strings.TrimPrefix(h, "*."), ".")
		for _, l := range labels {
			if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
				return "", `use letters, digits, - and . only, as in "admin.bank.example.com"`
			}
		}
		if strings.HasPrefix(h, "*.") && len(labels) < 2 {
			return "", `a wildcard needs a domain after it, as in "*.example.com"`
		}
	}
	if port != "" {
		return h + ":" + port, ""
	}
	return h, ""
}

// withPort reports whether host ends in a valid port, and the host without it.
func withPort(host string) (string, bool) {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.HasSuffix(host, "]") || strings.Count(host, ":") > 1 && !strings.HasPrefix(host, "[") {
		return "", false
	}
	if p, err := strconv.ParseUint(host[i+1:], 10, 16); err != nil || p == 0 {
		return "", false
	}
	return strings.ToLower(host[:i]), true
}

// checkGlob checks a path glob: an absolute, canonical path (the form
// requests are matched in after canonicalization, DESIGN §1) whose wildcard
// segments are exactly "*" or "**". Anything else could never match, or
// would match something other than what it says.
func checkGlob(p string) (msg, hint string) {
	if !strings.HasPrefix(p, "/") {
		return fmt.Sprintf("%q does not start with /", p), "write an absolute path such as " + strconv.Quote("/"+p)
	}
	if strings.Contains(p, "//") {
		return fmt.Sprintf("%q has an empty segment", p), "requests are matched after // is collapsed; remove the extra /"
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return fmt.Sprintf("%q has a %q segment", p, seg), "requests are matched after dot segments are resolved; write the resolved path"
		}
		if strings.Contains(seg, "*") && seg != "*" && seg != "**" {
			return fmt.Sprintf("%q has a wildcard inside segment %q", p, seg), `"*" and "**" must be whole segments; use path_regex for partial matches`
		}
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") || strings.HasPrefix(seg, ":") && len(seg) > 1 {
			return fmt.Sprintf("%q has a parameter segment %q, which would match only itself", p, seg), `write "*" for any one segment`
		}
		if i := strings.IndexFunc(seg, func(r rune) bool { return strings.ContainsRune("?#\\;", r) || r <= ' ' || r >= 0x7f }); i >= 0 {
			return fmt.Sprintf("%q has %q, which a canonical path never holds", p, string([]rune(seg[i:])[0])), rawHint(seg[i])
		}
		if msg := checkEscapes(seg); msg != "" {
			return fmt.Sprintf("%q %s", p, msg), "write the path as the upstream receives it"
		}
	}
	return "", ""
}

func rawHint(c byte) string {
	switch c {
	case '?', '#':
		return "paths are matched without query or fragment; remove it"
	case ';':
		return "requests with ;parameters are refused, or stripped with strip_path_params; remove it"
	}
	return "requests holding it are refused; remove it"
}

// checkEscapes rejects percent-encodings that canonicalization either
// decodes (unreserved characters) or refuses (%2F, %5C, %25, controls,
// non-ASCII).
func checkEscapes(seg string) string {
	for i := 0; i < len(seg); i++ {
		if seg[i] != '%' {
			continue
		}
		if i+2 >= len(seg) || !isHex(seg[i+1]) || !isHex(seg[i+2]) {
			return "has a malformed %-escape"
		}
		b, _ := strconv.ParseUint(seg[i+1:i+3], 16, 8)
		switch c := byte(b); {
		case c >= 0x80:
			return "has escaped non-ASCII bytes, which requests are refused for"
		case c == '/' || c == '\\' || c == '%' || c < 0x20 || c == 0x7f:
			return fmt.Sprintf("has %s, which requests are refused for", seg[i:i+3])
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0:
			return fmt.Sprintf("has %s, which canonicalization decodes to %q", seg[i:i+3], string(c))
		}
		i += 2
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// checkRegex compiles p as policy will: RE2, anchored at both ends.
func checkRegex(p string) (msg, hint string) {
	const syntaxHint = "path_regex is RE2 syntax, see https://golang.org/s/re2syntax"
	if p == "" {
		return "empty", `write a regular expression such as "/api/v[0-9]+/.*"`
	}
	if _, err := regexp.Compile(`^(?:` + p + `)$`); err != nil {
		if se, ok := errors.AsType[*syntax.Error](err); ok {
			return fmt.Sprintf("invalid regular expression: %s: %q", se.Code, se.Expr), syntaxHint
		}
		return "invalid regular expression", syntaxHint
	}
	return "", ""
}
