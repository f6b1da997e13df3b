package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/stepgate/stepgate/policy"
)

// Bounds on a route's confirm. What is held lives in the shared store until
// it is approved, and what is shown must fit on one page the user can read.
const (
	maxTitleLen     = 200
	maxFields       = 20
	maxFieldNameLen = 100
	maxLabelLen     = 100

	defaultMaxBody = 64 << 10
	maxMaxBody     = 1 << 20

	defaultHoldTTL = 5 * time.Minute
	minHoldTTL     = 30 * time.Second
	maxHoldTTL     = 30 * time.Minute

	// authorization_details is sent with the step-up, through PAR when
	// the provider has it and in the authorize URL when not.
	maxAuthorizationDetails = 8 << 10
)

var (
	confirmKeys      = []string{"title", "fields", "max_body", "ttl", "authorization_details"}
	confirmFieldKeys = []string{"name", "label"}

	// fieldName is a form field or a JSON member; dots separate the
	// members of nested JSON objects, as in payee.iban.
	fieldName = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

	sizeSyntax = regexp.MustCompile(`^([0-9]+)(KiB|MiB)?$`)
	// sizeTypo catches the usual near misses of sizeSyntax: "64KB",
	// "64 KiB", "1m".
	sizeTypo = regexp.MustCompile(`^([0-9]+) ?(?i:(k|m)(i?b)?)$`)
)

// confirm decodes a route's confirm. It always returns a Confirm, even one
// with problems, so that policy.NewTable can still say when the route
// requires no level.
func (d *decoder) confirm(n *yaml.Node, field string) *policy.Confirm {
	c := &policy.Confirm{MaxBody: defaultMaxBody, TTL: defaultHoldTTL}
	if isNull(n) {
		d.errorAt(n, field, "empty", "add a title and the fields the user approves, or remove confirm")
		return c
	}
	if deref(n).Kind != yaml.MappingNode {
		d.errorAt(n, field, "expected a map, got "+describe(n), `write confirm: {title: "Send money", fields: [{name: amount, label: "Amount"}]}`)
		return c
	}
	m := d.mapping(n, field, confirmKeys...)

	tfield := join(field, "title")
	if t, ok := d.str(m["title"], tfield); ok {
		switch {
		case strings.TrimSpace(t) == "":
			d.errorAt(orAt(m["title"], n), tfield, "missing or empty", `add the title the confirmation page shows, such as "Send money"`)
		case len(t) > maxTitleLen:
			d.errorAt(m["title"], tfield, fmt.Sprintf("%d bytes; at most %d", len(t), maxTitleLen), "shorten it; the fields carry the details")
		default:
			c.Title = t
		}
	}

	var names []string
	c.Fields, names = d.confirmFields(m["fields"], join(field, "fields"), n)

	mfield := join(field, "max_body")
	if size, set := d.size(m["max_body"], mfield); set {
		switch {
		case size <= 0:
			d.errorAt(m["max_body"], mfield, fmt.Sprintf("%d bytes is not positive", size), `use a size such as "64KiB", or omit max_body for 64KiB`)
		case size > maxMaxBody:
			d.errorAt(m["max_body"], mfield, fmt.Sprintf("%d bytes is more than 1MiB", size), "a held request waits in the store; hold at most 1MiB")
		default:
			c.MaxBody = size
		}
	}

	ttlField := join(field, "ttl")
	if ttl, set := d.duration(m["ttl"], ttlField); set {
		switch {
		case ttl < minHoldTTL:
			d.errorAt(m["ttl"], ttlField, fmt.Sprintf("%s is shorter than 30s", ttl), "the user needs time to step up, read and approve; use at least 30s")
		case ttl > maxHoldTTL:
			d.errorAt(m["ttl"], ttlField, fmt.Sprintf("%s is longer than 30m", ttl), "an approval long after the request is no longer about it; use at most 30m")
		default:
			c.TTL = ttl
		}
	}

	if an := m["authorization_details"]; an != nil {
		c.AuthorizationDetails = d.authorizationDetails(an, join(field, "authorization_details"), names)
	}
	return c
}

// confirmFields decodes confirm.fields. It returns the valid fields, and
// the name of every entry that has one, valid or not, so that placeholders
// naming a field with a problem are not reported as unknown as well.
func (d *decoder) confirmFields(n *yaml.Node, field string, confirm *yaml.Node) ([]policy.ConfirmField, []string) {
	items := d.list(n, field)
	if len(items) == 0 && (isNull(n) || deref(n).Kind == yaml.SequenceNode) {
		d.errorAt(orAt(n, confirm), field, "missing or empty; the user must see what they approve",
			`list the body fields to show, such as - {name: amount, label: "Amount"}`)
	}
	if len(items) > maxFields {
		d.errorAt(n, field, fmt.Sprintf("%d fields; at most %d", len(items), maxFields), "show the few fields that identify the transaction")
	}
	var out []policy.ConfirmField
	var names []string
	first := make(map[string]int) // name -> line
	for i, item := range items {
		ifield := index(field, i)
		if isNull(item) || deref(item).Kind != yaml.MappingNode {
			d.errorAt(item, ifield, "expected a map, got "+describe(item), `write a field as {name: amount, label: "Amount"}`)
			continue
		}
		m := d.mapping(item, ifield, confirmFieldKeys...)
		valid := true

		nfield := join(ifield, "name")
		name, ok := d.str(m["name"], nfield)
		switch {
		case !ok:
			valid = false
		case name == "":
			d.errorAt(orAt(m["name"], item), nfield, "missing", "name the form field or JSON member to show, such as amount or payee.iban")
			valid = false
		case len(name) > maxFieldNameLen:
			d.errorAt(m["name"], nfield, fmt.Sprintf("%d bytes; at most %d", len(name), maxFieldNameLen), "")
			valid = false
		case !fieldName.MatchString(name):
			d.errorAt(m["name"], nfield, fmt.Sprintf("%q is not a field name", name),
				"use letters, digits, _ and -, with . between the members of a nested JSON object, such as payee.iban")
			valid = false
		case first[name] != 0:
			d.errorAt(m["name"], nfield, fmt.Sprintf("duplicate field %q (first at line %d)", name, first[name]), "list each field once")
			valid = false
		default:
			first[name] = deref(m["name"]).Line
		}
		if name != "" && !contains(names, name) {
			names = append(names, name)
		}

		lfield := join(ifield, "label")
		label, ok := d.str(m["label"], lfield)
		switch {
		case !ok:
			valid = false
		case strings.TrimSpace(label) == "":
			d.errorAt(orAt(m["label"], item), lfield, "missing or empty", `add what the page calls the field, such as "Amount"`)
			valid = false
		case len(label) > maxLabelLen:
			d.errorAt(m["label"], lfield, fmt.Sprintf("%d bytes; at most %d", len(label), maxLabelLen), "shorten it")
			valid = false
		}
		if valid {
			out = append(out, policy.ConfirmField{Name: name, Label: label})
		}
	}
	return out, names
}

// size reads a number of bytes, written as a number or with a KiB or MiB
// suffix: 4096, "64KiB", "1MiB". set is false when n is absent, null or
// wrong (and then a problem was reported).
func (d *decoder) size(n *yaml.Node, field string) (size int64, set bool) {
	if isNull(n) {
		return 0, false
	}
	s, ok := d.str(n, field)
	if !ok {
		return 0, false
	}
	m := sizeSyntax.FindStringSubmatch(s)
	if m == nil {
		switch t := sizeTypo.FindStringSubmatch(s); {
		case strings.HasPrefix(s, "-") && sizeSyntax.MatchString(s[1:]):
			d.errorAt(n, field, fmt.Sprintf("%q is not positive", s), `use a size such as "64KiB"`)
		case t != nil:
			d.errorAt(n, field, fmt.Sprintf("%q is not a size", s), fmt.Sprintf("did you mean %q?", t[1]+strings.ToUpper(t[2])+"iB"))
		default:
			d.errorAt(n, field, fmt.Sprintf("%q is not a size", s), `write a number of bytes, or use KiB or MiB, such as "64KiB"`)
		}
		return 0, false
	}
	unit := int64(1)
	switch m[2] {
	case "KiB":
		unit = 1 << 10
	case "MiB":
		unit = 1 << 20
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || v > math.MaxInt64/unit {
		d.errorAt(n, field, fmt.Sprintf("%q is more than 1MiB", s), "a held request waits in the store; hold at most 1MiB")
		return 0, false
	}
	return v * unit, true
}

// authorizationDetails checks an RFC 9396 authorization_details template
// and returns it as compact JSON in file order, converted exactly as a
// level's claims are. fields are the names placeholders may use.
func (d *decoder) authorizationDetails(n *yaml.Node, field string, fields []string) string {
	errs := len(d.errs)
	v := deref(n)
	switch {
	case isNull(v):
		d.errorAt(n, field, "empty", "list the details the IdP shows, such as - {type: payment_initiation, ...}, or remove it")
		return ""
	case v.Kind == yaml.MappingNode:
		// RFC 9396 §2: "a JSON array of JSON objects".
		d.errorAt(n, field, "expected a list of objects, got a map", "start each object with - , as in - type: payment_initiation")
		return ""
	case v.Kind != yaml.SequenceNode:
		d.errorAt(n, field, "expected a list of objects, got "+describe(v), "write - type: payment_initiation and the members below it")
		return ""
	case len(v.Content) == 0:
		d.errorAt(n, field, "empty", "list the details the IdP shows, such as - {type: payment_initiation, ...}, or remove it")
		return ""
	}
	for i, item := range v.Content {
		d.detailType(item, index(field, i))
	}

	w := &jsonWalk{what: "authorization_details", hint: "keep it to the details the IdP shows the user", nodes: maxJSONNodes,
		check: func(n *yaml.Node, field, s string, isKey bool) { d.placeholders(n, field, s, isKey, fields) }}
	var b strings.Builder
	if !d.writeJSON(&b, n, field, 0, w) || len(d.errs) > errs {
		return ""
	}
	if b.Len() > maxAuthorizationDetails {
		d.errorAt(n, field, fmt.Sprintf("%d bytes as JSON; at most %d", b.Len(), maxAuthorizationDetails), w.hint)
		return ""
	}
	return b.String()
}

// detailType checks that one authorization_details entry is an object with
// a type (RFC 9396 §2), which the IdP dispatches on: fixed by the
// configuration, never filled from the request.
func (d *decoder) detailType(item *yaml.Node, field string) {
	if deref(item).Kind != yaml.MappingNode {
		d.errorAt(item, field, "expected a map, got "+describe(item), "write each entry as an object with a type, such as - type: payment_initiation")
		return
	}
	t := keyOf(item, "type")
	tfield := join(field, "type")
	switch tv := deref(t); {
	case t == nil:
		d.errorAt(item, field, "has no type", "add type: the kind of authorization, such as payment_initiation (RFC 9396 §2)")
	case tv.Kind != yaml.ScalarNode || tv.ShortTag() != "!!str":
		d.errorAt(t, tfield, "expected a string, got "+describe(tv), "quote it if it is a string")
	case tv.Value == "":
		d.errorAt(t, tfield, "empty", "write the kind of authorization, such as payment_initiation")
	case strings.Contains(tv.Value, "{{"):
		d.errorAt(t, tfield, "holds a placeholder", "the type says what the IdP is asked to authorize; write it out")
	}
}

// placeholders checks the {{name}} placeholders in s, a key or a string
// value of authorization_details: each must name one of fields, and keys
// may hold none, so the request can fill values but never choose members.
// A stray {{ or }} is an error rather than text, so that what is sent is
// never ambiguous.
func (d *decoder) placeholders(n *yaml.Node, field, s string, isKey bool, fields []string) {
	if isKey {
		if strings.Contains(s, "{{") || strings.Contains(s, "}}") {
			d.errorAt(n, field, "a key holds a placeholder", "placeholders fill string values only; write the member's name out")
		}
		return
	}
	for rest := s; ; {
		start, stop := strings.Index(rest, "{{"), strings.Index(rest, "}}")
		switch {
		case start < 0 && stop < 0:
			return
		case start < 0 || (stop >= 0 && stop < start):
			d.errorAt(n, field, "}} without {{", "write placeholders as {{field}}")
			return
		}
		end := strings.Index(rest[start+2:], "}}")
		if end < 0 {
			d.errorAt(n, field, "{{ without }}", "write placeholders as {{field}}")
			return
		}
		name := rest[start+2 : start+2+end]
		rest = rest[start+2+end+2:]
		switch {
		case !fieldName.MatchString(name):
			d.errorAt(n, field, fmt.Sprintf("{{%s}} is not a placeholder", name), "write {{field}} with a field's name, without spaces")
		case !contains(fields, name):
			hint := "add it to fields, or use one of: " + strings.Join(fields, ", ")
			if len(fields) == 0 {
				hint = "add it to fields"
			}
			if c := closest(name, fields); c != "" {
				hint = fmt.Sprintf("did you mean %q?", c)
			}
			d.errorAt(n, field, fmt.Sprintf("unknown field %q", name), hint)
		}
	}
}
