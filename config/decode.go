package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.Node tree and collects every problem it meets rather
// than stopping at the first, so an operator fixes a file in one pass.
type decoder struct {
	file string
	env  func(string) (string, bool)
	errs ErrorList

	routeNodes []routeNodes // per route, where it was

	allowUnset bool                // Options.AllowUnset
	unset      []Unset             // the placeholders made, in file order
	unknown    map[*yaml.Node]bool // scalars holding a placeholder
}

// errorAt records a problem at n's position. A value that holds a
// placeholder is unknown, so nothing is said about it.
func (d *decoder) errorAt(n *yaml.Node, field, msg, hint string) {
	if n != nil && (d.unknown[n] || d.unknown[deref(n)]) {
		return
	}
	e := &Error{File: d.file, Field: field, Msg: msg, Hint: hint}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// join builds a field path such as "routes[2].require".
func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func index(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

// deref follows an alias to the node it names. Anchors and aliases are
// allowed so that levels can share satisfied_by lists.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what n holds, for "expected X, got Y" messages. It never
// includes the value itself, which may be a secret.
func describe(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return "a string"
	}
	return "an unsupported YAML node"
}

// pair is one key: value entry of a mapping.
type pair struct{ key, value *yaml.Node }

// pairs returns n's entries in file order, reporting duplicate and non-string
// keys. A null n is an empty mapping.
func (d *decoder) pairs(n *yaml.Node, field string) []pair {
	v := deref(n)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		d.errorAt(n, field, "expected a map, got "+describe(v), "")
		return nil
	}
	var out []pair
	seen := make(map[string]int)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
			d.errorAt(k, field, "merge keys (<<) are not supported", "write the entries out, or use an alias for the whole value")
			continue
		case k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null":
			d.errorAt(k, field, "expected a plain key, got "+describe(k), "")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorAt(k, join(field, k.Value), fmt.Sprintf("duplicate key (first at line %d)", first), "remove one")
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{k, val})
	}
	return out
}

// mapping returns n's values by key. Keys outside known are reported with a
// suggestion; present keys whose value is null are kept, so callers can tell
// "absent" from "empty" where it matters.
func (d *decoder) mapping(n *yaml.Node, field string, known ...string) map[string]*yaml.Node {
	out := make(map[string]*yaml.Node)
	for _, p := range d.pairs(n, field) {
		if !contains(known, p.key.Value) {
			d.errorAt(p.key, join(field, p.key.Value), "unknown key", suggestion(p.key.Value, known))
			continue
		}
		out[p.key.Value] = p.value
	}
	return out
}

// list returns n's items. A null n is an empty list.
func (d *decoder) list(n *yaml.Node, field string) []*yaml.Node {
	v := deref(n)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		hint := ""
		if v.Kind == yaml.ScalarNode {
			hint = "write a one-element list as [value]"
		}
		d.errorAt(n, field, "expected a list, got "+describe(v), hint)
		return nil
	}
	return v.Content
}

// str returns the scalar n as a string with ${NAME} references expanded; ok
// is false when a problem was reported. Numbers and booleans are accepted as
// their source text (client IDs are sometimes numeric). Null and absent are "".
func (d *decoder) str(n *yaml.Node, field string) (s string, ok bool) {
	v := deref(n)
	if isNull(v) {
		return "", true
	}
	if v.Kind != yaml.ScalarNode {
		d.errorAt(n, field, "expected a string, got "+describe(v), "")
		return "", false
	}
	if v.ShortTag() != "!!str" {
		return v.Value, true
	}
	return d.expand(n, field, v.Value)
}

// strList returns a list of strings with the nodes they came from.
func (d *decoder) strList(n *yaml.Node, field string) ([]string, []*yaml.Node) {
	var vals []string
	var nodes []*yaml.Node
	for i, item := range d.list(n, field) {
		s, ok := d.str(item, index(field, i))
		if !ok {
			continue
		}
		vals = append(vals, s)
		nodes = append(nodes, item)
	}
	return vals, nodes
}

// boolean returns the scalar n as a bool; absent and null are false. YAML's
// own true/false are accepted, and so is a ${NAME} that expands to one.
func (d *decoder) boolean(n *yaml.Node, field string) bool {
	v := deref(n)
	if isNull(v) {
		return false
	}
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!bool":
			return strings.EqualFold(v.Value, "true")
		case "!!str":
			if !strings.Contains(v.Value, "${") {
				break
			}
			s, ok := d.expand(n, field, v.Value)
			if !ok {
				return false
			}
			switch s {
			case "true":
				return true
			case "false":
				return false
			}
			d.errorAt(n, field, "expected true or false, got another string from the environment", "")
			return false
		}
	}
	d.errorAt(n, field, "expected true or false, got "+describe(v), "")
	return false
}

// duration returns the scalar n as a Go duration; set is false when n is
// absent, null or wrong (and then a problem was reported).
func (d *decoder) duration(n *yaml.Node, field string) (dur time.Duration, set bool) {
	if isNull(n) {
		return 0, false
	}
	s, ok := d.str(n, field)
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		hint := `use Go syntax such as "5m"`
		if strings.Trim(s, "0123456789") == "" {
			hint = fmt.Sprintf("add a unit, such as %q", s+"s")
		}
		d.errorAt(n, field, fmt.Sprintf("%q is not a duration", s), hint)
		return 0, false
	}
	return dur, true
}

// expand replaces ${NAME} with the variable's value from d.env and $${ with a
// literal ${. It runs on scalar values after YAML parsing, so a value holding
// quotes, colons or "#" cannot change the file's structure. An unset
// variable is an error: an empty secret or client ID must never pass quietly.
func (d *decoder) expand(n *yaml.Node, field, s string) (string, bool) {
	if !strings.Contains(s, "$") {
		return s, true
	}
	var b strings.Builder
	ok := true
	for {
		i := strings.Index(s, "$")
		if i < 0 || i == len(s)-1 {
			b.WriteString(s)
			return b.String(), ok
		}
		b.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "$${"):
			b.WriteString("${")
			s = s[3:]
		case strings.HasPrefix(s, "${"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				d.errorAt(n, field, "unterminated ${", "close it with }, or write $${ for a literal ${")
				return "", false
			}
			name := s[2:end]
			s = s[end+1:]
			if !validEnvName(name) {
				d.errorAt(n, field, fmt.Sprintf("%q is not a variable name", name), "use letters, digits and _ (not starting with a digit), or write $${ for a literal ${")
				ok = false
				continue
			}
			val, set := d.lookup(name)
			if !set && d.allowUnset {
				d.placeholder(n, name)
				b.WriteString(placeholder(name))
				continue
			}
			if !set {
				d.errorAt(n, field, fmt.Sprintf("environment variable %s is not set", name), "set it before starting stepgate (an unset variable is never read as empty)")
				ok = false
				continue
			}
			b.WriteString(val)
		default:
			b.WriteByte('$')
			s = s[1:]
		}
	}
}

// placeholder is what an unset ${NAME} becomes under AllowUnset: long
// enough to pass as a session secret, and no valid URL or duration, so
// nothing is mistaken for a real value.
func placeholder(name string) string {
	p := "unset-" + name + "-"
	for len(p) < 32 {
		p += "x"
	}
	return p
}

// placeholder records that n holds a placeholder for name.
func (d *decoder) placeholder(n *yaml.Node, name string) {
	u := Unset{Name: name}
	if n != nil {
		if d.unknown == nil {
			d.unknown = map[*yaml.Node]bool{}
		}
		d.unknown[n], d.unknown[deref(n)] = true, true
		u.Line, u.Col = n.Line, n.Column
	}
	d.unset = append(d.unset, u)
}

func (d *decoder) lookup(name string) (string, bool) {
	if d.env == nil {
		return "", false
	}
	return d.env(name)
}

func validEnvName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// suggestion returns a hint naming the known key closest to key, or listing
// them all when none is close.
func suggestion(key string, known []string) string {
	if s := closest(key, known); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return "valid keys: " + strings.Join(known, ", ")
}

// closest returns the candidate within a small edit distance of s (after
// folding case and "-" to "_"), else one that s starts with or that starts
// with s (issuer_url for issuer), else "".
func closest(s string, candidates []string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	best, bestDist := "", 3
	for _, c := range candidates {
		if dist := editDistance(norm(s), norm(c)); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if best != "" {
		return best
	}
	for _, c := range candidates {
		if len(c) >= 4 && len(s) >= 4 && (strings.HasPrefix(norm(s), norm(c)) || strings.HasPrefix(norm(c), norm(s))) {
			return c
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
