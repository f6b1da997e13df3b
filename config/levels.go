package config

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/stepgate/stepgate/policy"
)

var (
	levelKeys       = []string{"acr_values", "claims", "max_age", "once", "prompt", "satisfied_by"}
	alternativeKeys = []string{"acr", "amr", "acrs"}
	levelName       = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	builtinAccess   = map[string]policy.Access{"public": policy.Public, "authenticated": policy.Authenticated, "deny": policy.Denied}
)

// levels decodes the levels section into c.Levels and returns them by name.
// A level with problems is still returned, so routes naming it do not also
// report "unknown level".
func (d *decoder) levels(n *yaml.Node, c *Config) map[string]*policy.Level {
	byName := make(map[string]*policy.Level)
	for _, p := range d.pairs(n, "levels") {
		name := p.key.Value
		field := join("levels", name)
		switch {
		case builtinAccess[name] != 0:
			d.errorAt(p.key, field, fmt.Sprintf("%q is reserved", name), "choose another name, such as mfa")
		case !levelName.MatchString(name):
			d.errorAt(p.key, field, fmt.Sprintf("%q is not a level name", name), "use lower-case letters, digits and _, starting with a letter")
		}
		l := d.level(p.value, field)
		l.Name = name
		byName[name] = l
		c.Levels = append(c.Levels, l)
		c.pos.levels = append(c.pos.levels, at(p.key))
		c.pos.once = append(c.pos.once, at(keyOf(p.value, "once")))
	}
	return byName
}

func (d *decoder) level(n *yaml.Node, field string) *policy.Level {
	l := &policy.Level{}
	if isNull(n) {
		d.errorAt(n, field, "empty", "add satisfied_by: the acr or amr values that prove this level")
		return l
	}
	m := d.mapping(n, field, levelKeys...)

	vals, nodes := d.strList(m["acr_values"], join(field, "acr_values"))
	for i, v := range vals {
		// acr_values is sent space-separated (OIDC Core §3.1.2.1).
		if v == "" || strings.ContainsAny(v, " \t\r\n") {
			d.errorAt(nodes[i], index(join(field, "acr_values"), i), fmt.Sprintf("%q is not an acr value", v), "write one non-empty value without spaces per list entry")
			continue
		}
		l.ACRValues = append(l.ACRValues, v)
	}

	if n := m["claims"]; !isNull(n) {
		l.Claims = d.claims(n, join(field, "claims"), len(l.ACRValues) > 0)
	}

	if dur, set := d.duration(m["max_age"], join(field, "max_age")); set {
		switch {
		case dur <= 0:
			d.errorAt(m["max_age"], join(field, "max_age"), fmt.Sprintf("%s is not positive", dur),
				"omit max_age for no freshness requirement, or use prompt: login to force a new sign-in")
		case dur%time.Second != 0:
			d.errorAt(m["max_age"], join(field, "max_age"), fmt.Sprintf("%s is not a whole number of seconds", dur), "max_age is sent in seconds; round it")
		default:
			l.MaxAge = dur
		}
	}

	l.Once = d.boolean(m["once"], join(field, "once"))

	if p, ok := d.str(m["prompt"], join(field, "prompt")); ok && p != "" {
		l.Prompt = d.prompt(m["prompt"], join(field, "prompt"), p)
	}

	alts := d.list(m["satisfied_by"], join(field, "satisfied_by"))
	if len(alts) == 0 && (isNull(m["satisfied_by"]) || deref(m["satisfied_by"]).Kind == yaml.SequenceNode) {
		d.errorAt(orAt(m["satisfied_by"], n), join(field, "satisfied_by"), "missing or empty; without it no session can ever satisfy the level",
			`add at least one alternative, such as "- amr: [mfa]"`)
	}
	for i, a := range alts {
		l.SatisfiedBy = append(l.SatisfiedBy, d.alternative(a, index(join(field, "satisfied_by"), i)))
	}
	return l
}

// prompt validates a space-separated prompt list (OIDC Core §3.1.2.1).
func (d *decoder) prompt(n *yaml.Node, field, s string) string {
	var out []string
	for _, p := range strings.Fields(s) {
		switch p {
		case "login", "consent", "select_account":
			if !contains(out, p) {
				out = append(out, p)
			}
		case "none":
			d.errorAt(n, field, `prompt "none" forbids the interaction a step-up needs`, `use "login", or omit prompt`)
		default:
			d.errorAt(n, field, fmt.Sprintf("unknown prompt %q", p), "use login, consent or select_account")
		}
	}
	return strings.Join(out, " ")
}

func (d *decoder) alternative(n *yaml.Node, field string) policy.Alternative {
	var a policy.Alternative
	if isNull(n) || deref(n).Kind != yaml.MappingNode {
		d.errorAt(n, field, "expected a map, got "+describe(n), `write an alternative such as "- acr: [urn:mfa]"`)
		return a
	}
	errs := len(d.errs)
	m := d.mapping(n, field, alternativeKeys...)
	a.ACR = d.claimValues(m["acr"], join(field, "acr"))
	a.AMR = d.claimValues(m["amr"], join(field, "amr"))
	a.ACRS = d.claimValues(m["acrs"], join(field, "acrs"))
	if len(a.ACR)+len(a.AMR)+len(a.ACRS) == 0 && len(d.errs) == errs {
		d.errorAt(n, field, "sets none of acr, amr or acrs, so it matches nothing", "list the values that prove this level")
	}
	return a
}

// claimValues reads a list of values an ID token claim is compared with.
func (d *decoder) claimValues(n *yaml.Node, field string) []string {
	var out []string
	for i, item := range d.list(n, field) {
		v, ok := d.str(item, index(field, i))
		switch {
		case !ok:
		case v == "":
			d.errorAt(item, index(field, i), "empty value", "remove it; an empty claim never proves anything")
		case v == "0" && strings.HasSuffix(field, ".acr"):
			// OIDC Core §2: acr "0" does not meet ISO/IEC 29115 level 1,
			// and the decision rules say it never satisfies a level.
			d.errorAt(item, index(field, i), `acr "0" never satisfies a level`, "remove it")
		default:
			out = append(out, v)
		}
	}
	return out
}

// Limits on a YAML value sent to the IdP as JSON (a claims request,
// authorization_details): it travels in the authorize request, and aliases
// could otherwise make a small file expand into a huge one.
const (
	maxJSONNodes = 500
	maxJSONDepth = 8
)

// jsonWalk is one conversion of a YAML value to JSON by writeJSON.
type jsonWalk struct {
	what, hint string // what the value is and how to shrink it, for messages
	nodes      int    // how many more nodes may be written

	// check, when set, sees every mapping key and every string value
	// (after ${NAME} expansion) and reports what is wrong with it.
	check func(n *yaml.Node, field, s string, isKey bool)
}

var (
	claimsMembers  = []string{"id_token", "userinfo"}
	claimRequestKs = []string{"essential", "value", "values"}
)

// claims checks a claims request parameter (OIDC Core §5.5) and returns it
// as compact JSON in file order. withACRValues reports a request for acr,
// which OIDC Core §5.5.1.1 leaves unspecified next to acr_values.
func (d *decoder) claims(n *yaml.Node, field string, withACRValues bool) string {
	errs := len(d.errs)
	for _, p := range d.pairs(n, field) {
		member := p.key.Value
		mfield := join(field, member)
		if !contains(claimsMembers, member) {
			d.errorAt(p.key, mfield, "unknown claims member", suggestion(member, claimsMembers))
			continue
		}
		if deref(p.value).Kind != yaml.MappingNode {
			d.errorAt(p.value, mfield, "expected a map of claim requests, got "+describe(p.value), "write it as {acrs: {essential: true, value: c1}}")
			continue
		}
		for _, c := range d.pairs(p.value, mfield) {
			cfield := join(mfield, c.key.Value)
			if c.key.Value == "acr" && withACRValues {
				d.errorAt(c.key, cfield, "an acr claims request together with acr_values gives unspecified results (OIDC Core §5.5.1.1)",
					"remove acr_values or this request")
			}
			d.claimRequest(c.value, cfield)
		}
	}
	if len(d.errs) > errs {
		return ""
	}
	var b strings.Builder
	w := &jsonWalk{what: "claims request", hint: "keep it to the claims the level needs", nodes: maxJSONNodes}
	if !d.writeJSON(&b, n, field, 0, w) || len(d.errs) > errs || b.String() == "{}" {
		return ""
	}
	return b.String()
}

// claimRequest checks one claim's request: null, or a map whose essential is
// a boolean and values a list. Other members are extensions and pass, but a
// near miss of a known one is surely a typo.
func (d *decoder) claimRequest(n *yaml.Node, field string) {
	if isNull(n) {
		return
	}
	if deref(n).Kind != yaml.MappingNode {
		d.errorAt(n, field, "expected null or a map, got "+describe(n), "write {essential: true}, or null to request the claim without conditions")
		return
	}
	for _, p := range d.pairs(n, field) {
		k := p.key.Value
		switch {
		case k == "essential":
			if v := deref(p.value); v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
				d.errorAt(p.value, join(field, k), "expected true or false, got "+describe(v), "")
			}
		case k == "values":
			if deref(p.value).Kind != yaml.SequenceNode {
				d.errorAt(p.value, join(field, k), "expected a list, got "+describe(p.value), `use "value" for a single value`)
			}
		case k == "value":
		default:
			if s := closest(k, claimRequestKs); s != "" {
				d.errorAt(p.key, join(field, k), "unknown key", fmt.Sprintf("did you mean %q?", s))
			}
		}
	}
}

// writeJSON writes n as JSON, keeping mapping order. Strings are expanded
// like any other scalar value. It returns false when it stopped early; the
// problems it reports without stopping (a bad key, what w.check finds) the
// caller learns from d.errs.
func (d *decoder) writeJSON(b *strings.Builder, n *yaml.Node, field string, depth int, w *jsonWalk) bool {
	// The first failure stops the whole walk, so this is reported once.
	if w.nodes--; w.nodes < 0 || depth > maxJSONDepth {
		d.errorAt(n, field, w.what+" is too large or too deeply nested", w.hint)
		return false
	}
	v := deref(n)
	switch v.Kind {
	case yaml.MappingNode:
		if name, ok := unquotedPlaceholder(v); ok {
			d.errorAt(n, field, fmt.Sprintf("{{%s}} without quotes is a YAML map, not a string", name), fmt.Sprintf(`quote it: "{{%s}}"`, name))
			b.WriteString("null")
			return true
		}
		b.WriteByte('{')
		// pairs reports duplicate keys, merge keys and keys that are no
		// plain scalar, none of which has a JSON form.
		for i, p := range d.pairs(v, field) {
			if i > 0 {
				b.WriteByte(',')
			}
			kfield := join(field, p.key.Value)
			if w.check != nil {
				w.check(p.key, kfield, p.key.Value, true)
			}
			k, _ := json.Marshal(p.key.Value)
			b.Write(k)
			b.WriteByte(':')
			if !d.writeJSON(b, p.value, kfield, depth+1, w) {
				return false
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, item := range v.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if !d.writeJSON(b, item, index(field, i), depth+1, w) {
				return false
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		var val any
		switch v.ShortTag() {
		case "!!null", "!!bool", "!!int", "!!float":
			if err := v.Decode(&val); err != nil {
				d.errorAt(n, field, "cannot read "+describe(v), "quote it to send a string")
				return false
			}
		default:
			s, ok := d.str(v, field)
			if !ok {
				return false
			}
			if w.check != nil {
				w.check(n, field, s, false)
			}
			val = s
		}
		out, err := json.Marshal(val)
		if err != nil {
			d.errorAt(n, field, fmt.Sprintf("%s has no JSON form", v.Value), "quote it to send a string")
			return false
		}
		b.Write(out)
	default:
		d.errorAt(n, field, "expected a JSON value, got "+describe(v), "")
		return false
	}
	return true
}

// unquotedPlaceholder reports whether m is what YAML makes of an unquoted
// {{name}}: a map whose only key is the map {name: null}, with no value.
func unquotedPlaceholder(m *yaml.Node) (string, bool) {
	if len(m.Content) != 2 || !isNull(m.Content[1]) {
		return "", false
	}
	k := deref(m.Content[0])
	if k.Kind != yaml.MappingNode || len(k.Content) != 2 || k.Content[0].Kind != yaml.ScalarNode || !isNull(k.Content[1]) {
		return "", false
	}
	return k.Content[0].Value, true
}

// keyOf returns the value of key in the mapping n, or nil.
func keyOf(n *yaml.Node, key string) *yaml.Node {
	v := deref(n)
	if v == nil || v.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		if k := v.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return v.Content[i+1]
		}
	}
	return nil
}
