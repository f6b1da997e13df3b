package policy

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// TableOptions mirror routes.yaml's matching switches.
type TableOptions struct {
	// CaseInsensitivePaths matches paths without regard to ASCII case, for
	// upstreams (IIS, .NET) that serve /ADMIN as /admin (threat model case 9).
	CaseInsensitivePaths bool
}

// Table is a compiled route table. Match returns the first rule in file
// order that matches a request, whatever the number of rules: rules are
// indexed by host and by path segment, so a lookup costs about the same for
// ten rules as for ten thousand.
//
// Globs and regexes see the canonical path with the escapes CanonicalPath
// kept decoded, so "%3A" and ":" are the same to them. Those escapes can no
// longer change the segment structure, and the backends stepgate guards
// decode them too, so "/v1/pay%3Aexec" cannot slip past a rule written for
// "/v1/pay:exec". What is forwarded is still the canonical escaped path.
//
// A Table is safe for concurrent use.
type Table struct {
	rules []Rule
	def   Rule
	ci    bool

	exact map[string]*node // by exact host pattern
	wild  map[string]*node // by ".example.com" for "*.example.com"
	any   *node            // rules without a host
	regex []regexRule      // path_regex rules, in file order
}

// node is one step of the segment trie of one host pattern.
type node struct {
	lit   map[string]*node // literal segment (decoded, lower-cased when case-insensitive)
	star  *node            // "*": exactly one segment
	dstar *node            // "**": zero or more segments
	end   []int            // rules whose glob ends here, ascending
	min   int              // smallest rule index in this subtree, for pruning
}

func newNode() *node { return &node{min: math.MaxInt} }

type regexRule struct {
	idx  int
	host string
	re   *regexp.Regexp
}

// NewTable compiles rules (in file order; the first match wins) and def, the
// rule for requests no rule matches. It reports every invalid rule as a
// TableError of RuleErrors: a bad host pattern (a port included), a path
// glob that is not canonical or puts "*" or "**" inside a segment, an
// invalid regex, both or neither of Path and PathRegex, an invalid method,
// an unknown Access, a Leveled rule without a usable Level, and duplicate
// names.
func NewTable(rules []Rule, def Rule, opt TableOptions) (*Table, error) {
	t := &Table{
		rules: slices.Clone(rules),
		def:   def,
		ci:    opt.CaseInsensitivePaths,
		exact: make(map[string]*node),
		wild:  make(map[string]*node),
	}
	var errs TableError
	seen := make(map[string]int)
	for i := range t.rules {
		r := &t.rules[i]
		r.Methods = slices.Clone(r.Methods)
		for _, e := range t.add(i, r) {
			e.Index, e.Name = i, r.Name
			errs = append(errs, e)
		}
		if j, ok := seen[r.Name]; ok && r.Name != "" {
			errs = append(errs, &RuleError{Index: i, Name: r.Name, Field: "name", First: j,
				Msg: fmt.Sprintf("name already used by rules[%d]", j), Hint: "give each rule its own name"})
		}
		seen[r.Name] = i
	}
	if def.Host != "" || def.Path != "" || def.PathRegex != "" || def.Methods != nil {
		errs = append(errs, &RuleError{Index: -1, Name: def.Name, Msg: "must not set host, path, path_regex or methods",
			Hint: "it applies to every request no rule matches"})
	} else if e := checkAccess(&def); e != nil {
		e.Index, e.Name = -1, def.Name
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return t, nil
}

// add checks r and indexes it as rule i. The errors it returns have Field,
// Msg and Hint set.
func (t *Table) add(i int, r *Rule) []*RuleError {
	var errs []*RuleError
	if e := checkAccess(r); e != nil {
		errs = append(errs, e)
	}
	if e := checkMethods(r.Methods); e != nil {
		errs = append(errs, e)
	}
	if msg, hint := checkHostPattern(r.Host); msg != "" {
		errs = append(errs, &RuleError{Field: "host", Msg: msg, Hint: hint})
	}
	switch {
	case r.Path != "" && r.PathRegex != "":
		errs = append(errs, &RuleError{Field: "path_regex", Msg: "set together with path", Hint: "keep one of path and path_regex"})
	case r.Path == "" && r.PathRegex == "":
		errs = append(errs, &RuleError{Msg: "neither path nor path_regex set", Hint: `set path, such as "/api/**"`})
	case r.PathRegex != "":
		re, msg := compileRegex(r.PathRegex, t.ci)
		if msg != "" {
			errs = append(errs, &RuleError{Field: "path_regex", Msg: msg, Hint: "path_regex is RE2 syntax, see https://golang.org/s/re2syntax"})
			break
		}
		if len(errs) == 0 {
			t.regex = append(t.regex, regexRule{idx: i, host: r.Host, re: re})
		}
	default:
		segs, msg, hint := parseGlob(r.Path)
		if msg != "" {
			errs = append(errs, &RuleError{Field: "path", Msg: msg, Hint: hint})
			break
		}
		if len(errs) == 0 {
			t.root(r.Host).insert(segs, i, t.ci)
		}
	}
	return errs
}

func checkAccess(r *Rule) *RuleError {
	if r.Confirm != nil && r.Report {
		return &RuleError{Field: "confirm", Msg: "confirm on a report-only rule",
			Hint: "a report-only rule forwards every request, so nothing would be held; remove mode: report or confirm"}
	}
	if r.Confirm != nil && r.Access != Leveled {
		return &RuleError{Field: "confirm", Msg: fmt.Sprintf("confirm on a rule that requires %s", r.Access),
			Hint: "a held transaction is approved after a step-up; require a level on this route"}
	}
	switch r.Access {
	case Public, Authenticated, Denied:
		if r.Level != nil {
			return &RuleError{Field: "require", Msg: fmt.Sprintf("level %q set but require is %s", r.Level.Name, r.Access), Hint: "want no level"}
		}
	case Leveled:
		if r.Level == nil {
			return &RuleError{Field: "require", Msg: "require is a level but no level is set"}
		}
		if len(r.Level.SatisfiedBy) == 0 {
			return &RuleError{Field: "require", Msg: fmt.Sprintf("level %q has no satisfied_by alternatives", r.Level.Name), Hint: "it could never be met; add satisfied_by to the level"}
		}
	default:
		return &RuleError{Field: "require", Msg: fmt.Sprintf("unknown access %d", int(r.Access)), Hint: "want public, authenticated, deny or a level"}
	}
	return nil
}

func checkMethods(ms []string) *RuleError {
	if ms != nil && len(ms) == 0 {
		return &RuleError{Field: "methods", Msg: "an empty list, so the rule would match no request", Hint: "omit it to match every method"}
	}
	for _, m := range ms {
		if _, err := CanonicalMethod(m); err != nil {
			return &RuleError{Field: "methods", Msg: fmt.Sprintf("method %q", m), Hint: "want an upper-case method other than CONNECT, TRACE and TRACK"}
		}
	}
	return nil
}

// CanonicalHostPattern returns a rule host in the form NewTable wants:
// lower-case, without a trailing dot, IPv6 literals in their short form, and
// a leading "*." kept as the wildcard. A pattern with a port, or one that is
// no host, is an error whose text says how to fix it.
func CanonicalHostPattern(h string) (string, error) {
	c, msg, hint := canonicalHostPattern(h)
	if msg != "" {
		return "", &RuleError{Index: -1, Field: "host", Msg: msg, Hint: hint}
	}
	return c, nil
}

// checkHostPattern checks a rule's host: "" (any host), or a pattern
// already in canonical form.
func checkHostPattern(h string) (msg, hint string) {
	c, msg, hint := canonicalHostPattern(h)
	if msg == "" && c != h {
		return fmt.Sprintf("%q is not in canonical form", h), fmt.Sprintf("write %q: hosts are compared lower-case, without a trailing dot", c)
	}
	return msg, hint
}

// canonicalHostPattern is CanonicalHostPattern with what is wrong and how to
// fix it as strings.
func canonicalHostPattern(h string) (c, msg, hint string) {
	if h == "" {
		return "", "", ""
	}
	bad := fmt.Sprintf("%q is not a host pattern", h)
	exact, wild := strings.CutPrefix(h, "*.")
	switch {
	case strings.ContainsAny(h, "/@?#"):
		return "", bad, "write the host name only, without scheme, user or path"
	case strings.Contains(exact, "*"):
		return "", bad, `a wildcard may only be the first label, as in "*.example.com"`
	case strings.Count(exact, ":") > 1 && !strings.HasPrefix(exact, "["):
		return "", bad, `write an IPv6 address in brackets, as in "[2001:db8::1]"`
	}
	if name, hasPort := splitHostPort(exact); hasPort {
		// A rule that held on one port only would be dodged by naming
		// another port in Host (threat model case 88), so host rules
		// match every port and a port is refused rather than ignored.
		if wild {
			name = "*." + name
		}
		return "", fmt.Sprintf("%q has a port", h), fmt.Sprintf("remove it: a host rule matches its host on every port, so write %q", strings.ToLower(name))
	}
	c, err := CanonicalHost(exact)
	switch {
	case err != nil && strings.HasPrefix(exact, "["):
		return "", bad, `write an IPv6 address in brackets, as in "[2001:db8::1]"`
	case err != nil:
		return "", bad, `use letters, digits, - and . only, as in "admin.bank.example.com"`
	case wild && (strings.HasPrefix(c, "[") || !strings.Contains(c, ".")):
		return "", bad, `a wildcard needs a domain after it, as in "*.example.com"`
	case wild:
		return "*." + c, "", ""
	}
	return c, "", ""
}

// compileRegex compiles a path_regex as Match runs it, or says why it cannot.
func compileRegex(expr string, ci bool) (*regexp.Regexp, string) {
	if expr == "" {
		return nil, "empty"
	}
	// (?s) so that "." spans every byte (threat model case 17); anchored on
	// both ends so that it judges the whole path and nothing else (16).
	flags := "(?s)"
	if ci {
		flags = "(?si)"
	}
	// The expression is compiled alone first: wrapped, "x)|(.*" would
	// compile as "^(?:x)|(.*)$", an alternative outside the anchors.
	_, err := regexp.Compile(expr)
	var re *regexp.Regexp
	if err == nil {
		re, err = regexp.Compile(flags + "^(?:" + expr + ")$")
	}
	if err != nil {
		if se, ok := errors.AsType[*syntax.Error](err); ok {
			return nil, fmt.Sprintf("invalid regular expression: %s: %q", se.Code, se.Expr)
		}
		return nil, "invalid regular expression"
	}
	return re, ""
}

// glob segment kinds
const (
	litSeg = iota
	starSeg
	dstarSeg
)

type globSeg struct {
	kind int
	lit  string // canonical escaped text of a literal segment
}

// parseGlob splits a path glob into segments, or says what is wrong with
// it and how to fix it. The glob must be a canonical path, so that its
// literals compare with canonical requests; a trailing slash is ignored, as
// it is for requests. Anything else could never match, or would match
// something other than what it says.
func parseGlob(p string) (segs []globSeg, msg, hint string) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Sprintf("%q does not start with /", p), "write an absolute path such as " + strconv.Quote("/"+p)
	}
	resolved := "write the resolved path"
	if c, err := CanonicalPath(p, PathOptions{}); err == nil {
		resolved = fmt.Sprintf("write %q", c)
	}
	if strings.Contains(p, "//") {
		return nil, fmt.Sprintf("%q has an empty segment", p), "requests are matched after // is collapsed; " + resolved
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch {
		case seg == "." || seg == "..":
			return nil, fmt.Sprintf("%q has a %q segment", p, seg), "requests are matched after dot segments are resolved; " + resolved
		case strings.Contains(seg, "*") && seg != "*" && seg != "**":
			return nil, fmt.Sprintf("%q has a wildcard inside segment %q", p, seg), `"*" and "**" must be whole segments; use path_regex for partial matches`
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") || strings.HasPrefix(seg, ":") && len(seg) > 1:
			return nil, fmt.Sprintf("%q has a parameter segment %q, which would match only itself", p, seg), `write "*" for any one segment`
		}
		if i := strings.IndexFunc(seg, func(r rune) bool { return strings.ContainsRune("?#\\;", r) || r <= ' ' || r >= 0x7f }); i >= 0 {
			return nil, fmt.Sprintf("%q has %q, which a canonical path never holds", p, string([]rune(seg[i:])[0])), rawHint(seg[i])
		}
	}
	c, err := CanonicalPath(p, PathOptions{})
	if err != nil {
		var rej *Rejection
		errors.As(err, &rej)
		return nil, fmt.Sprintf("%q: %s", p, rej.Reason), "requests holding it are refused; write the path as the upstream receives it"
	}
	if c != p {
		return nil, fmt.Sprintf("%q is not in canonical form", p), fmt.Sprintf("write %q, the form requests are matched in", c)
	}
	for i := 0; ; {
		seg, next := nextSeg(p, i)
		if next < 0 {
			return segs, "", ""
		}
		switch seg {
		case "**":
			segs = append(segs, globSeg{kind: dstarSeg})
		case "*":
			segs = append(segs, globSeg{kind: starSeg})
		default:
			segs = append(segs, globSeg{kind: litSeg, lit: seg})
		}
		i = next
	}
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

// root returns the trie for a host pattern, creating it.
func (t *Table) root(host string) *node {
	if host == "" {
		if t.any == nil {
			t.any = newNode()
		}
		return t.any
	}
	m, key := t.exact, host
	if strings.HasPrefix(host, "*.") {
		m, key = t.wild, host[1:]
	}
	n := m[key]
	if n == nil {
		n = newNode()
		m[key] = n
	}
	return n
}

func (n *node) insert(segs []globSeg, idx int, ci bool) {
	for _, s := range segs {
		n.min = min(n.min, idx)
		var next **node
		switch s.kind {
		case starSeg:
			next = &n.star
		case dstarSeg:
			next = &n.dstar
		default:
			if n.lit == nil {
				n.lit = make(map[string]*node)
			}
			key := matchKey(s.lit, ci)
			c := n.lit[key]
			if c == nil {
				c = newNode()
				n.lit[key] = c
			}
			n = c
			continue
		}
		if *next == nil {
			*next = newNode()
		}
		n = *next
	}
	n.min = min(n.min, idx)
	n.end = append(n.end, idx)
}

// matchKey is the form of a canonical path that globs and regexes see: the
// escapes CanonicalPath kept, decoded, and lower-cased when ci. Only bytes
// that cannot change the segment structure are decoded, so even a
// non-canonical path keeps its "%2F" and "%25".
func matchKey(p string, ci bool) string {
	if strings.IndexByte(p, '%') >= 0 {
		b := make([]byte, 0, len(p))
		for i := 0; i < len(p); i++ {
			if p[i] == '%' && i+2 < len(p) && unhex(p[i+1]) >= 0 && unhex(p[i+2]) >= 0 {
				if v := unhex(p[i+1])<<4 | unhex(p[i+2]); v < len(class) && class[v] != refused {
					b = append(b, byte(v))
					i += 2
					continue
				}
			}
			b = append(b, p[i])
		}
		p = string(b)
	}
	if ci {
		p = strings.ToLower(p) // returns p itself when there is nothing to lower
	}
	return p
}

// nextSeg returns the segment of p that starts at or after i, skipping
// slashes, and the offset just past it; next is -1 when no segment is left.
// A trailing slash therefore adds no segment: /a/ matches like /a.
func nextSeg(p string, i int) (seg string, next int) {
	for i < len(p) && p[i] == '/' {
		i++
	}
	if i >= len(p) {
		return "", -1
	}
	j := strings.IndexByte(p[i:], '/')
	if j < 0 {
		return p[i:], len(p)
	}
	return p[i : i+j], i + j
}

// Match returns the first rule, in file order, that matches r, or the
// default rule when none does. It is never nil for a table built by
// NewTable. r must come from Canonical (or the Canonical* functions); the
// returned rule belongs to t and must not be modified.
//
// A rule matches when its host pattern matches r.Host on any port
// ("*.example.com" matches one or more
// labels below example.com, never example.com itself), one of its methods is
// r.Method (a rule that lists GET also matches HEAD, threat model case 39), and its
// glob or regex matches r.Path.
func (t *Table) Match(r Request) *Rule {
	if t == nil {
		return nil
	}
	m := matcher{rules: t.rules, path: matchKey(r.Path, t.ci), method: r.Method}
	best := len(t.rules)
	// Host patterns never carry a port (NewTable refuses one), so only
	// the name takes part.
	name, _ := splitHostPort(r.Host)
	if n := t.exact[name]; n != nil {
		best = m.walk(n, 0, best)
	}
	if len(t.wild) > 0 {
		for i := 1; i < len(name); i++ {
			if name[i] != '.' {
				continue
			}
			if n := t.wild[name[i:]]; n != nil {
				best = m.walk(n, 0, best)
			}
		}
	}
	if t.any != nil {
		best = m.walk(t.any, 0, best)
	}
	// Regexes cannot be indexed; each one runs only while it could still
	// come first.
	for _, x := range t.regex {
		if x.idx >= best {
			break
		}
		if methodMatch(t.rules[x.idx].Methods, r.Method) && hostMatch(x.host, r.Host) && x.re.MatchString(m.path) {
			best = x.idx
			break
		}
	}
	if best < len(t.rules) {
		return &t.rules[best]
	}
	return &t.def
}

// Rule returns the rule called name, or nil: a held transaction names the
// rule it was decided on, and is checked against it again when released.
func (t *Table) Rule(name string) *Rule {
	if t == nil {
		return nil
	}
	for i := range t.rules {
		if t.rules[i].Name == name {
			return &t.rules[i]
		}
	}
	return nil
}

type matcher struct {
	rules  []Rule
	path   string
	method string
}

// walk returns the smallest index below best of a rule in n's subtree that
// matches the path from offset i on and the method, or best.
func (m *matcher) walk(n *node, i, best int) int {
	if n.min >= best {
		return best
	}
	seg, next := nextSeg(m.path, i)
	if next < 0 {
		for _, idx := range n.end {
			if idx >= best {
				break
			}
			if methodMatch(m.rules[idx].Methods, m.method) {
				best = idx
				break
			}
		}
	} else {
		if c := n.lit[seg]; c != nil {
			best = m.walk(c, next, best)
		}
		if n.star != nil {
			best = m.walk(n.star, next, best)
		}
	}
	if d := n.dstar; d != nil {
		// "**" takes zero segments, then one, then two, ...
		for k := i; k >= 0; {
			best = m.walk(d, k, best)
			_, k = nextSeg(m.path, k)
		}
	}
	return best
}

func methodMatch(ms []string, m string) bool {
	if ms == nil {
		return true
	}
	for _, x := range ms {
		if x == m || m == "HEAD" && x == "GET" {
			return true
		}
	}
	return false
}

// splitHostPort splits a canonical host into its name and whether a port
// follows.
func splitHostPort(h string) (name string, hasPort bool) {
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end >= 0 {
			return h[:end+1], end+1 < len(h)
		}
		return h, false
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i], true
	}
	return h, false
}

// hostMatch reports whether the canonical host h matches pattern pat, with
// the semantics Match describes.
func hostMatch(pat, h string) bool {
	if pat == "" {
		return true
	}
	name, _ := splitHostPort(h)
	if suffix, ok := strings.CutPrefix(pat, "*"); ok {
		return len(name) > len(suffix) && strings.HasSuffix(name, suffix)
	}
	return pat == name
}
