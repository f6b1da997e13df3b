// Package policy decides, without I/O, whether a request may proceed, needs a
// login, needs step-up authentication, or is refused.
//
// It holds the pure core of stepgate: canonicalization of the request target,
// the route table (first match in file order wins) and Decide. It imports only the standard library and never reads a clock:
// callers pass now in. Everything here is safe for concurrent use once built.
package policy

import "time"

// Access is what a rule requires before a request may pass.
// The zero value is invalid and is treated as Deny everywhere.
type Access int

const (
	accessInvalid Access = iota
	Public               // anyone, with or without a session
	Authenticated        // any verified session
	Denied               // nobody
	Leveled              // a session whose facts satisfy Rule.Level now
)

// String returns the routes.yaml spelling of a.
func (a Access) String() string {
	switch a {
	case Public:
		return "public"
	case Authenticated:
		return "authenticated"
	case Denied:
		return "deny"
	case Leveled:
		return "level"
	}
	return "invalid"
}

// Level is a named authentication requirement from routes.yaml's levels.
type Level struct {
	Name string

	// What the gateway asks the IdP for. They are requests only: the
	// returned ID token is judged by SatisfiedBy and MaxAge alone.
	ACRValues []string // sent as acr_values, in order of preference
	Claims    string   // JSON object sent as the claims parameter; "" when unused
	Prompt    string   // sent as prompt, e.g. "login"; "" when unused

	// MaxAge bounds how long ago the user actively authenticated
	// (auth_time). Zero means no freshness requirement.
	MaxAge time.Duration

	// SatisfiedBy lists alternatives; any one matching is enough.
	SatisfiedBy []Alternative

	// Once makes a step-up to this level admit exactly one request: the
	// session records it as consumed in the shared store, so the next
	// request (or a copy of the cookie) steps up again.
	Once bool
}

// Alternative is one way to satisfy a Level. Every non-empty field must match:
// ACR when the returned acr equals one of the values exactly (case-sensitive),
// AMR when any element of the returned amr is listed, ACRS (Entra ID's
// authentication contexts) when any element of the returned acrs is listed.
// An alternative with no field set matches nothing.
type Alternative struct {
	ACR  []string
	AMR  []string
	ACRS []string
}

// Rule is one entry of the route table.
type Rule struct {
	Name string
	Line int // line in routes.yaml, for explain and logs; 0 for the default rule

	Host      string   // "" any host; "bank.example.com"; "*.example.com" (one or more labels)
	Path      string   // segment glob: "*" one segment, "**" zero or more; "" when PathRegex is used
	PathRegex string   // RE2, anchored, against the canonical path only
	Methods   []string // nil means every method; HEAD requests match GET

	Access Access
	Level  *Level // set when Access == Leveled

	// Confirm, when set, holds state-changing requests for the user to
	// approve after the step-up; only on Leveled rules.
	Confirm *Confirm

	// Report makes the rule report-only, for rolling stepgate out on an
	// app: it is decided as usual, and the decision is logged and counted,
	// but the request is forwarded whatever it says.
	Report bool
}

// Confirm describes how a held transaction is shown to the user for
// approval: a title and the body fields to show, and bounds on what is held.
type Confirm struct {
	Title   string
	Fields  []ConfirmField
	MaxBody int64         // bytes of request body held at most; larger is 413
	TTL     time.Duration // how long a held request waits for approval

	// AuthorizationDetails is an RFC 9396 authorization_details JSON
	// template whose string values may name fields as {{name}}; "" sends none.
	AuthorizationDetails string
}

// ConfirmField is one body field shown on the confirmation page. Name is
// the form field or JSON member (nested members as "a.b").
type ConfirmField struct {
	Name, Label string
}

// Request is the canonical form of what a client asked for. Build it with
// Canonical; Match and Decide trust it.
type Request struct {
	Method string // upper-case token, never HEAD's own rules: HEAD matches GET
	Host   string // lower-case, no trailing dot, no default port
	Path   string // canonical escaped path, exactly what the upstream receives
}

// Facts is what a verified session knows about its user's authentication:
// the strongest ID token verified so far for this session.
type Facts struct {
	Issuer     string
	Subject    string
	Email      string
	ACR        string
	AMR        []string
	ACRS       []string
	AuthTime   time.Time // zero when the IdP sent none
	VerifiedAt time.Time // when the gateway verified that ID token
}

// Authenticated reports whether f describes a signed-in user.
func (f *Facts) Authenticated() bool { return f != nil && f.Issuer != "" && f.Subject != "" }

// Action is what the gateway must do. The zero value is invalid and callers
// treat it as Deny, so a forgotten assignment fails closed.
type Action int

const (
	actionInvalid Action = iota
	Allow                // forward the canonical request
	Login                // no session: send the user to the IdP
	StepUp               // session too weak or too old: send the user back with Level's parameters
	Deny                 // refuse with 403
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Login:
		return "login"
	case StepUp:
		return "step-up"
	case Deny:
		return "deny"
	}
	return "invalid"
}

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	Level  *Level // what to ask the IdP for on Login and StepUp; nil for a plain login
	Reason string // loggable, never shown to clients
}

// ClockSkew is the leeway allowed between the IdP's clock and ours when
// judging auth_time.
const ClockSkew = 60 * time.Second
