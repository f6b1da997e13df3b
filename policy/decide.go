package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Decide reports what the gateway must do with a request that matched r,
// given the facts of the caller's session (nil or unauthenticated when there
// is none) at time now. It performs no I/O.
//
// Public rules allow, deny rules deny. Authenticated rules need a session.
// Leveled rules need a session whose facts satisfy the level now: without a
// session the answer is Login with the level already set, so that a first
// login asks the IdP for it directly (one trip, not two); with a weaker or
// older session it is StepUp. A nil rule, an invalid Access and a Leveled
// rule without a level are Deny: every doubt fails closed.
func Decide(r *Rule, f *Facts, now time.Time) Decision {
	if r == nil {
		return Decision{Action: Deny, Reason: "no rule"}
	}
	switch r.Access {
	case Public:
		return Decision{Action: Allow, Reason: fmt.Sprintf("rule %q: public", r.Name)}
	case Denied:
		return Decision{Action: Deny, Reason: fmt.Sprintf("rule %q: denied by route", r.Name)}
	case Authenticated:
		if !f.Authenticated() {
			return Decision{Action: Login, Reason: fmt.Sprintf("rule %q: no session", r.Name)}
		}
		return Decision{Action: Allow, Reason: fmt.Sprintf("rule %q: authenticated", r.Name)}
	case Leveled:
		l := r.Level
		if l == nil {
			return Decision{Action: Deny, Reason: fmt.Sprintf("rule %q: requires a level but has none", r.Name)}
		}
		if !f.Authenticated() {
			return Decision{Action: Login, Level: l, Reason: fmt.Sprintf("rule %q: no session; level %q required", r.Name, l.Name)}
		}
		if ok, why := l.Satisfied(f, now); !ok {
			return Decision{Action: StepUp, Level: l, Reason: fmt.Sprintf("rule %q: level %q not satisfied: %s", r.Name, l.Name, why)}
		}
		return Decision{Action: Allow, Reason: fmt.Sprintf("rule %q: level %q satisfied", r.Name, l.Name)}
	}
	return Decision{Action: Deny, Reason: fmt.Sprintf("rule %q: invalid access %d", r.Name, int(r.Access))}
}

// Satisfied reports whether f satisfies l at now and, when it does not, a
// loggable reason such as `acr "pwd" not in ["urn:mfa"]`.
//
// One SatisfiedBy alternative must match, and, when MaxAge is set, auth_time
// must be present and at most MaxAge (plus ClockSkew) before now. An
// auth_time more than ClockSkew after now is invalid whatever MaxAge is: a
// token from the future says the IdP's clock or the token is wrong. Only
// what the IdP returned counts; what was asked for (ACRValues, Claims) never
// does. A nil level, a nil or unauthenticated f, and a level with no
// alternatives are never satisfied.
func (l *Level) Satisfied(f *Facts, now time.Time) (bool, string) {
	switch {
	case l == nil:
		return false, "no level"
	case !f.Authenticated():
		return false, "no session"
	case len(l.SatisfiedBy) == 0:
		return false, "level has no satisfied_by alternatives"
	}
	if !f.AuthTime.IsZero() && f.AuthTime.After(now.Add(ClockSkew)) {
		return false, fmt.Sprintf("auth_time %s is more than %s after now %s", stamp(f.AuthTime), ClockSkew, stamp(now))
	}
	var why []string
	matched := false
	for _, alt := range l.SatisfiedBy {
		ok, reason := alt.match(f)
		if ok {
			matched = true
			break
		}
		why = append(why, reason)
	}
	if !matched {
		return false, strings.Join(why, "; ")
	}
	if l.MaxAge > 0 {
		if f.AuthTime.IsZero() {
			return false, fmt.Sprintf("no auth_time, but max_age %s needs one", l.MaxAge)
		}
		if now.Sub(f.AuthTime) > l.MaxAge+ClockSkew {
			return false, fmt.Sprintf("auth_time %s older than max_age %s (now %s)", stamp(f.AuthTime), l.MaxAge, stamp(now))
		}
	}
	return true, ""
}

// match reports whether f meets every non-empty field of a, and if not, why.
func (a Alternative) match(f *Facts) (bool, string) {
	if len(a.ACR) == 0 && len(a.AMR) == 0 && len(a.ACRS) == 0 {
		return false, "empty alternative matches nothing"
	}
	var why []string
	// "0" is OIDC Core's "does not meet ISO/IEC 29115 level 1": never a
	// proof of anything, even when an operator lists it.
	if len(a.ACR) > 0 && (f.ACR == "" || f.ACR == "0" || !slices.Contains(a.ACR, f.ACR)) {
		why = append(why, fmt.Sprintf("acr %q not in %q", f.ACR, a.ACR))
	}
	if len(a.AMR) > 0 && !anyListed(f.AMR, a.AMR) {
		why = append(why, fmt.Sprintf("amr %q has none of %q", f.AMR, a.AMR))
	}
	if len(a.ACRS) > 0 && !anyListed(f.ACRS, a.ACRS) {
		why = append(why, fmt.Sprintf("acrs %q has none of %q", f.ACRS, a.ACRS))
	}
	return len(why) == 0, strings.Join(why, " and ")
}

// anyListed reports whether some non-empty element of got is in want.
func anyListed(got, want []string) bool {
	for _, g := range got {
		if g != "" && slices.Contains(want, g) {
			return true
		}
	}
	return false
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Question is one request as it is decided: the canonical request, the
// other methods it claims, and the levels required on top of its rule's.
type Question struct {
	Request

	// Claimed lists other methods the request claims (override headers, a
	// _method parameter), as sent. A backend may run any of them, so each
	// is decided too; one that is no usable method is denied.
	Claimed []string

	// Extra lists levels that must be satisfied besides what the matched
	// rule requires (a forward-auth ?level=). They only ever make the
	// decision stricter.
	Extra []*Level
}

// Decide matches q and decides it. The strictest outcome (see Stricter)
// over the request's own method, every claimed method and every extra level
// wins, so a POST-only rule cannot be dodged by a GET that the backend runs
// as POST. It returns the rule that decided, never nil.
//
// A report-only rule's reading enforces nothing: it is reported, and only
// when every enforced reading (rules not in report mode, and the extra
// levels, which are always enforced) allows the request. So a request
// that also claims a method whose rule is report-only is still held to
// the enforced rule of the method it came with (threat model case 95).
//
// This is the one decision path: the sidecar proxy and forward-auth both
// ask it, and differ only in how they act on the answer.
func (t *Table) Decide(q Question, f *Facts, now time.Time) (*Rule, Decision) {
	rule := t.Match(q.Request)
	if rule == nil {
		rule = &Rule{Name: "none"}
	}
	var (
		enforced, reported *Rule
		de, dr             Decision
	)
	consider := func(r *Rule, d Decision) {
		switch {
		case r.Report && (reported == nil || Stricter(d, dr)):
			reported, dr = r, d
		case !r.Report && (enforced == nil || Stricter(d, de)):
			enforced, de = r, d
		}
	}
	consider(rule, Decide(rule, f, now))
	for _, m := range q.Claimed {
		req := q.Request
		var err error
		if req.Method, err = CanonicalMethod(strings.TrimSpace(m)); err != nil {
			return rule, Decision{Action: Deny, Reason: "unusable method override"}
		}
		if r2 := t.Match(req); r2 != nil {
			consider(r2, Decide(r2, f, now))
		}
	}
	for _, l := range q.Extra {
		base := rule
		if enforced != nil {
			base = enforced
		}
		extra := &Rule{Name: base.Name + "+" + l.Name, Access: Leveled, Level: l}
		d2 := Decide(extra, f, now)
		switch {
		case enforced == nil:
			enforced, de = extra, d2
		case Stricter(d2, de):
			de = d2
		}
	}
	switch {
	case enforced != nil && de.Action != Allow:
		return enforced, de
	case reported != nil && dr.Action != Allow:
		return reported, dr
	case enforced != nil:
		return enforced, de
	}
	return reported, dr
}

// Stricter reports whether a asks more of a request than b, in the one order
// of strictness that every mode shares: Allow, then Login, then Login for a
// level, then StepUp, then Deny (and an invalid decision, which counts as
// Deny). When a request could be read as several (override methods, an
// extra level named by an ingress), the strictest reading decides.
func Stricter(a, b Decision) bool { return a.strictness() > b.strictness() }

func (d Decision) strictness() int {
	switch d.Action {
	case Allow:
		return 1
	case Login:
		if d.Level == nil {
			return 2
		}
		return 3
	case StepUp:
		return 4
	}
	return 5
}

// strictness places an Access in the same order, as the decision it gives a
// request without a session; 0 for an invalid Access.
func (a Access) strictness() int {
	switch a {
	case Public:
		return Decision{Action: Allow}.strictness()
	case Authenticated:
		return Decision{Action: Login}.strictness()
	case Leveled:
		return Decision{Action: Login, Level: &Level{}}.strictness()
	case Denied:
		return Decision{Action: Deny}.strictness()
	}
	return 0
}
