package policy_test

import (
	"fmt"
	"time"

	"github.com/stepgate/stepgate/policy"
)

func ExampleDecide() {
	mfa := &policy.Level{
		Name:        "mfa",
		ACRValues:   []string{"urn:example:mfa"},
		MaxAge:      15 * time.Minute,
		SatisfiedBy: []policy.Alternative{{ACR: []string{"urn:example:mfa"}}, {AMR: []string{"mfa"}}},
	}
	table, err := policy.NewTable([]policy.Rule{
		{Name: "health", Path: "/healthz", Access: policy.Public},
		{Name: "transfers", Path: "/api/transfers/**", Methods: []string{"POST"}, Access: policy.Leveled, Level: mfa},
	}, policy.Rule{Name: "default", Access: policy.Authenticated}, policy.TableOptions{})
	if err != nil {
		panic(err)
	}

	// A dot segment cannot hide the transfer from the rule.
	req, err := policy.Canonical("POST", "Bank.Example.com", "/api/x/../transfers/7", policy.PathOptions{})
	if err != nil {
		panic(err)
	}
	rule := table.Match(req)
	now := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)

	for _, f := range []*policy.Facts{
		nil, // not signed in
		{Issuer: "https://idp.example", Subject: "alice", ACR: "urn:example:pwd", AuthTime: now.Add(-time.Hour)},
		{Issuer: "https://idp.example", Subject: "alice", ACR: "urn:example:mfa", AuthTime: now.Add(-time.Minute)},
	} {
		d := policy.Decide(rule, f, now)
		fmt.Printf("%s %s: %s\n", req.Path, d.Action, d.Reason)
	}
	// Output:
	// /api/transfers/7 login: rule "transfers": no session; level "mfa" required
	// /api/transfers/7 step-up: rule "transfers": level "mfa" not satisfied: acr "urn:example:pwd" not in ["urn:example:mfa"]; amr [] has none of ["mfa"]
	// /api/transfers/7 allow: rule "transfers": level "mfa" satisfied
}
