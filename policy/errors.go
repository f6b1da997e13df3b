package policy

import (
	"fmt"
	"strings"
)

// RuleError is one problem with one rule given to NewTable. config turns it
// into a positioned error by looking up Field in the rule's YAML.
type RuleError struct {
	Index int    // position in the rules given to NewTable; -1 for the default rule
	Name  string // the rule's name
	Field string // the field at fault: "name", "host", "path", "path_regex", "methods" or "require"; "" for the rule as a whole
	Msg   string // what is wrong
	Hint  string // how to fix it; may be ""

	// First is, for a duplicate name, the index of the rule that has it
	// first; 0 otherwise.
	First int
}

func (e *RuleError) Error() string {
	var b strings.Builder
	b.WriteString("policy: ")
	if e.Index < 0 {
		b.WriteString("default rule")
	} else {
		fmt.Fprintf(&b, "rules[%d] %q", e.Index, e.Name)
	}
	if e.Field != "" {
		b.WriteString(" " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	return b.String()
}

// TableError is every problem NewTable found, in rule order.
type TableError []*RuleError

func (e TableError) Error() string {
	lines := make([]string, len(e))
	for i, re := range e {
		lines[i] = re.Error()
	}
	return strings.Join(lines, "\n")
}
