package policy

import (
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 2, 10, 15, 0, 0, time.UTC)
	session := func(acr string, amr []string, authTime time.Time) *Facts {
		return &Facts{Issuer: "https://idp.test", Subject: "alice", ACR: acr, AMR: amr, AuthTime: authTime, VerifiedAt: authTime}
	}
	fresh := now.Add(-time.Minute)
	leveled := func(l *Level) *Rule { return &Rule{Name: "transfers", Access: Leveled, Level: l} }
	onlyACR := func(acr ...string) *Level {
		return &Level{Name: "acr", SatisfiedBy: []Alternative{{ACR: acr}}}
	}
	mfa := leveled(mfaLevel) // acr urn:mfa or amr mfa, max_age 15m

	tests := []struct {
		name   string
		rule   *Rule
		facts  *Facts
		want   Action
		level  *Level // want Decision.Level
		reason string // in Decision.Reason
	}{
		{"nil rule", nil, session("urn:mfa", nil, fresh), Deny, nil, "no rule"},
		{"zero access", &Rule{Name: "r"}, session("urn:mfa", nil, fresh), Deny, nil, "invalid access"},
		{"unknown access", &Rule{Name: "r", Access: 42}, session("urn:mfa", nil, fresh), Deny, nil, "invalid access"},
		{"public without session", &Rule{Name: "r", Access: Public}, nil, Allow, nil, "public"},
		{"deny with strong session", &Rule{Name: "r", Access: Denied}, session("urn:mfa", nil, fresh), Deny, nil, "denied"},
		{"authenticated without session", &Rule{Name: "r", Access: Authenticated}, nil, Login, nil, "no session"},
		{"authenticated with empty facts", &Rule{Name: "r", Access: Authenticated}, &Facts{}, Login, nil, "no session"},
		{"authenticated without subject", &Rule{Name: "r", Access: Authenticated}, &Facts{Issuer: "i"}, Login, nil, "no session"},
		{"authenticated with session", &Rule{Name: "r", Access: Authenticated}, session("", nil, time.Time{}), Allow, nil, ""},
		{"leveled without level", &Rule{Name: "r", Access: Leveled}, session("urn:mfa", nil, fresh), Deny, nil, "has none"},
		{"leveled without session: login asks for the level", mfa, nil, Login, mfaLevel, `level "mfa" required`},
		{"acr match", mfa, session("urn:mfa", nil, fresh), Allow, nil, "satisfied"},
		{"acr mismatch", mfa, session("pwd", []string{"pwd"}, fresh), StepUp, mfaLevel, `acr "pwd" not in ["urn:mfa"]`},
		{"acr case differs", mfa, session("URN:MFA", nil, fresh), StepUp, mfaLevel, "not in"},
		{"amr alternative", mfa, session("pwd", []string{"pwd", "mfa"}, fresh), Allow, nil, ""},
		{"amr without listed element", mfa, session("", []string{"pwd", "otp"}, fresh), StepUp, mfaLevel, `amr ["pwd" "otp"] has none of ["mfa"]`},
		{"acr 0 never satisfies, even listed", leveled(onlyACR("0")), session("0", nil, fresh), StepUp, nil, `acr "0"`},
		{"empty acr never satisfies, even listed", leveled(onlyACR("")), session("", nil, fresh), StepUp, nil, `acr ""`},
		{"missing acr", leveled(onlyACR("urn:mfa")), session("", nil, fresh), StepUp, nil, `acr ""`},
		{"acrs alternative", leveled(&Level{Name: "ctx", SatisfiedBy: []Alternative{{ACRS: []string{"c1"}}}}), &Facts{Issuer: "i", Subject: "s", ACRS: []string{"c2", "c1"}}, Allow, nil, ""},
		{"acrs mismatch", leveled(&Level{Name: "ctx", SatisfiedBy: []Alternative{{ACRS: []string{"c1"}}}}), &Facts{Issuer: "i", Subject: "s", ACRS: []string{"c2"}}, StepUp, nil, `acrs ["c2"] has none of ["c1"]`},
		{"every field of an alternative must match", leveled(&Level{Name: "both", SatisfiedBy: []Alternative{{ACR: []string{"urn:mfa"}, AMR: []string{"hwk"}}}}), session("urn:mfa", []string{"otp"}, fresh), StepUp, nil, "amr"},
		{"every field of an alternative matches", leveled(&Level{Name: "both", SatisfiedBy: []Alternative{{ACR: []string{"urn:mfa"}, AMR: []string{"hwk"}}}}), session("urn:mfa", []string{"hwk"}, fresh), Allow, nil, ""},
		{"empty alternative matches nothing", leveled(&Level{Name: "empty", SatisfiedBy: []Alternative{{}}}), session("urn:mfa", []string{"mfa"}, fresh), StepUp, nil, "empty alternative"},
		{"empty amr element never matches", leveled(&Level{Name: "x", SatisfiedBy: []Alternative{{AMR: []string{""}}}}), session("", []string{""}, fresh), StepUp, nil, "amr"},

		// max_age 15m with 60s of leeway.
		{"auth_time at max_age", mfa, session("urn:mfa", nil, now.Add(-15*time.Minute)), Allow, nil, ""},
		{"auth_time at max_age plus skew", mfa, session("urn:mfa", nil, now.Add(-15*time.Minute-ClockSkew)), Allow, nil, ""},
		{"auth_time just over max_age plus skew", mfa, session("urn:mfa", nil, now.Add(-15*time.Minute-ClockSkew-time.Second)), StepUp, mfaLevel, "auth_time 2026-01-02T09:58:59Z older than max_age 15m0s"},
		{"auth_time an hour old", mfa, session("urn:mfa", []string{"mfa"}, now.Add(-time.Hour)), StepUp, mfaLevel, "older than max_age"},
		{"auth_time missing with max_age", mfa, session("urn:mfa", nil, time.Time{}), StepUp, mfaLevel, "no auth_time"},
		{"auth_time missing without max_age", leveled(onlyACR("urn:mfa")), session("urn:mfa", nil, time.Time{}), Allow, nil, ""},
		{"auth_time in the future within skew", mfa, session("urn:mfa", nil, now.Add(ClockSkew)), Allow, nil, ""},
		{"auth_time in the future beyond skew", mfa, session("urn:mfa", nil, now.Add(ClockSkew+time.Second)), StepUp, mfaLevel, "after now"},
		{"auth_time in the future without max_age", leveled(onlyACR("urn:mfa")), session("urn:mfa", nil, now.Add(time.Hour)), StepUp, nil, "after now"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.rule, tc.facts, now)
			if d.Action != tc.want {
				t.Fatalf("Decide(%+v, %+v) = %v (%s); want %v", tc.rule, tc.facts, d.Action, d.Reason, tc.want)
			}
			if tc.level != nil && d.Level != tc.level {
				t.Errorf("Decide(...).Level = %+v; want %q", d.Level, tc.level.Name)
			}
			if (d.Action == Allow || d.Action == Deny || tc.rule.Access == Authenticated) && d.Level != nil {
				t.Errorf("Decide(...) = %v with level %q; want no level", d.Action, d.Level.Name)
			}
			if d.Action == StepUp && d.Level != tc.rule.Level {
				t.Errorf("step-up level = %+v; want the rule's", d.Level)
			}
			if !strings.Contains(d.Reason, tc.reason) || d.Reason == "" {
				t.Errorf("Decide(...).Reason = %q; want it to contain %q", d.Reason, tc.reason)
			}
		})
	}
}

func TestSatisfiedNil(t *testing.T) {
	now := time.Now()
	f := &Facts{Issuer: "i", Subject: "s", ACR: "urn:mfa", AuthTime: now}
	var nilLevel *Level
	if ok, _ := nilLevel.Satisfied(f, now); ok {
		t.Error("nil level satisfied; want never")
	}
	if ok, _ := mfaLevel.Satisfied(nil, now); ok {
		t.Error("mfa satisfied by nil facts; want never")
	}
	if ok, why := mfaLevel.Satisfied(f, now); !ok {
		t.Errorf("mfa not satisfied by %+v: %s", f, why)
	}
	if ok, _ := (&Level{Name: "none"}).Satisfied(f, now); ok {
		t.Error("level without alternatives satisfied; want never")
	}
}

func TestZeroDecisionIsNotAllow(t *testing.T) {
	var d Decision
	if d.Action == Allow || d.Action == Login || d.Action == StepUp || d.Action == Deny {
		t.Errorf("zero Decision has action %v; want an invalid action", d.Action)
	}
	if d.Action.String() != "invalid" {
		t.Errorf("zero Action.String() = %q; want invalid", d.Action.String())
	}
}

func TestStricter(t *testing.T) {
	l := &Level{Name: "mfa"}
	order := []Decision{
		{Action: Allow},
		{Action: Login},
		{Action: Login, Level: l},
		{Action: StepUp, Level: l},
		{Action: Deny},
	}
	for i, a := range order {
		for j, b := range order {
			if got := Stricter(a, b); got != (i > j) {
				t.Errorf("Stricter(%v, %v) = %v; want %v", a, b, got, i > j)
			}
		}
	}
	// An invalid decision is as strict as Deny, never less.
	if Stricter(Decision{Action: Deny}, Decision{}) || !Stricter(Decision{}, Decision{Action: StepUp}) {
		t.Errorf("an invalid decision is not ranked with Deny")
	}
}

// Table.Decide is the one decision path of the proxy and forward-auth: the
// strictest reading of a request wins.
func TestTableDecide(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	mfa := &Level{Name: "mfa", SatisfiedBy: []Alternative{{AMR: []string{"mfa"}}}}
	admin := &Level{Name: "admin", SatisfiedBy: []Alternative{{ACR: []string{"gold"}}}}
	tab, err := NewTable([]Rule{
		{Name: "read", Path: "/users/*", Methods: []string{"GET"}, Access: Authenticated},
		{Name: "delete", Path: "/users/*", Methods: []string{"DELETE"}, Access: Leveled, Level: mfa},
		{Name: "gone", Path: "/users/*", Methods: []string{"PURGE"}, Access: Denied},
		{Name: "public", Path: "/public/**", Access: Public},
	}, Rule{Name: "default", Access: Authenticated}, TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pwd := &Facts{Issuer: "i", Subject: "s", AMR: []string{"pwd"}, AuthTime: now}
	strong := &Facts{Issuer: "i", Subject: "s", AMR: []string{"mfa"}, AuthTime: now}
	get := Request{Method: "GET", Host: "h", Path: "/users/5"}
	tests := []struct {
		name       string
		q          Question
		f          *Facts
		rule       string
		action     Action
		levelNamed string
	}{
		{"own method", Question{Request: get}, pwd, "read", Allow, ""},
		{"claimed DELETE steps up", Question{Request: get, Claimed: []string{"DELETE"}}, pwd, "delete", StepUp, "mfa"},
		{"claimed DELETE with padding", Question{Request: get, Claimed: []string{" DELETE "}}, pwd, "delete", StepUp, "mfa"},
		{"claimed DELETE, satisfied", Question{Request: get, Claimed: []string{"DELETE"}}, strong, "read", Allow, ""},
		{"strictest of several claims", Question{Request: get, Claimed: []string{"DELETE", "PURGE", "GET"}}, strong, "gone", Deny, ""},
		{"lower-case claim is unusable", Question{Request: get, Claimed: []string{"delete"}}, strong, "read", Deny, ""},
		{"empty claim is unusable", Question{Request: get, Claimed: []string{""}}, strong, "read", Deny, ""},
		{"extra level on a public rule", Question{Request: Request{Method: "GET", Host: "h", Path: "/public/x"}, Extra: []*Level{admin}}, strong, "public", StepUp, "admin"},
		{"extra level without a session", Question{Request: Request{Method: "GET", Host: "h", Path: "/public/x"}, Extra: []*Level{admin}}, nil, "public", Login, "admin"},
		{"extra level never loosens a deny", Question{Request: get, Claimed: []string{"PURGE"}, Extra: []*Level{mfa}}, strong, "gone", Deny, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rule, d := tab.Decide(tc.q, tc.f, now)
			if rule.Name != tc.rule || d.Action != tc.action {
				t.Errorf("Decide = rule %q, %v (%s); want rule %q, %v", rule.Name, d.Action, d.Reason, tc.rule, tc.action)
			}
			if got := ""; d.Level != nil || tc.levelNamed != "" {
				if d.Level != nil {
					got = d.Level.Name
				}
				if got != tc.levelNamed {
					t.Errorf("Decide level %q; want %q", got, tc.levelNamed)
				}
			}
		})
	}
	var none *Table
	if _, d := none.Decide(Question{Request: get}, strong, now); d.Action != Deny {
		t.Errorf("nil table decided %v; want deny", d.Action)
	}
}
