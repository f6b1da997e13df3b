package config

import (
	"fmt"
	"sort"
	"strings"
)

// maxErrors bounds how many problems ErrorList.Error prints: past that, the
// rest are usually consequences of the first ones.
const maxErrors = 50

// Error is one problem in a configuration file, in the compiler-style form
// "file:line:col: field: what is wrong; how to fix".
type Error struct {
	File      string
	Line, Col int    // 1-based; 0 when unknown
	Field     string // e.g. "routes[2].require"; "" for file-level problems
	Msg       string // what is wrong
	Hint      string // how to fix it; may be ""
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(position(e.File, e.Line, e.Col))
	b.WriteString(" ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// position formats "file:line:col:", leaving out what is unknown.
func position(file string, line, col int) string {
	switch {
	case line <= 0:
		return file + ":"
	case col <= 0:
		return fmt.Sprintf("%s:%d:", file, line)
	}
	return fmt.Sprintf("%s:%d:%d:", file, line, col)
}

// ErrorList is every problem found in one file, sorted by position. Parse
// returns it as its error; use errors.As to get at the entries.
type ErrorList []*Error

// Error returns one line per problem, at most maxErrors of them, and no
// summary line.
func (l ErrorList) Error() string {
	lines := make([]string, 0, min(len(l), maxErrors)+1)
	for i, e := range l {
		if i == maxErrors {
			lines = append(lines, fmt.Sprintf("%s %d more errors not shown; fix the ones above first", position(e.File, 0, 0), len(l)-maxErrors))
			break
		}
		lines = append(lines, e.Error())
	}
	return strings.Join(lines, "\n")
}

// sort orders l by position; problems at the same position keep the order in
// which they were found.
func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Col < l[j].Col
	})
}
