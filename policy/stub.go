package policy

// TEMPORARY: signatures only, so other packages compile while the real
// implementations are written. Each function here is replaced by the file
// that implements it (canonical.go, match.go, decide.go, shadow.go).

import (
	"errors"
	"time"
)

var errNotBuilt = errors.New("policy: not built yet")

// Rejection explains why a request target cannot be canonicalized.
type Rejection struct{ Reason string }

func (r *Rejection) Error() string { return "policy: rejected: " + r.Reason }

// PathOptions mirror routes.yaml's path switches.
type PathOptions struct {
	StripPathParams bool
}

// CanonicalPath returns the canonical escaped form of the raw request path.
func CanonicalPath(escaped string, opt PathOptions) (string, error) { return "", errNotBuilt }

// CanonicalHost lower-cases host, strips a trailing dot and a default port.
func CanonicalHost(host string) (string, error) { return "", errNotBuilt }

// CanonicalMethod validates an HTTP method.
func CanonicalMethod(m string) (string, error) { return "", errNotBuilt }

// TableOptions mirror routes.yaml's matching switches.
type TableOptions struct {
	CaseInsensitivePaths bool
}

// Table is a compiled route table.
type Table struct{}

// NewTable compiles rules.
func NewTable(rules []Rule, def Rule, opt TableOptions) (*Table, error) { return nil, errNotBuilt }

// Match returns the first rule matching r, or the default rule.
func (t *Table) Match(r Request) *Rule { return nil }

// Decide reports what to do for a request that matched r.
func Decide(r *Rule, f *Facts, now time.Time) Decision { return Decision{} }

// Satisfied reports whether f satisfies l at now, and if not, why.
func (l *Level) Satisfied(f *Facts, now time.Time) (bool, string) { return false, "not built" }

// Shadow is an earlier, weaker rule that catches requests a later, stricter
// rule was meant for.
type Shadow struct {
	Earlier, Later int // indexes into the rules given to Shadows
	Example string     // a request path both match
}

// Shadows lists rules shadowed by earlier, weaker ones.
func Shadows(rules []Rule) []Shadow { return nil }
