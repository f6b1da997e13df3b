package devidp_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/devidp"
	"github.com/stepgate/stepgate/oidc"
)

func startBank(t *testing.T, par bool) mfaEnv {
	e := start(t, devidp.Config{PAR: par, Users: []devidp.User{
		{Username: "alice", Password: "correct horse", Subject: "alice", Email: "alice@example.test", TOTPSecret: aliceTOTP},
	}})
	return mfaEnv{env: e, t: t}
}

// TestCodePageShowsTransaction is dynamic linking as the demo shows it:
// the page where the user enters the one-time code says what the code
// approves, and the token response carries exactly that.
func TestCodePageShowsTransaction(t *testing.T) {
	const other = `{"type":"account_information","actions":["read"],"note":"<i>x</i>"}`
	const markup = `[{"type":"payment_initiation","instructedAmount":{"amount":"<b>1</b>","currency":"EUR"},"creditorAccount":{"iban":"<script>alert(1)</script>"}}]`
	for _, tc := range []struct {
		name    string
		par     bool
		details string
		want    []string // on the code page
		never   []string // nowhere on the code page
	}{
		{"payment, pushed", true, payment, []string{"Send 100.00 EUR to DE02100100109307118603"}, nil},
		{"payment, in the URL", false, payment, []string{"Send 100.00 EUR to DE02100100109307118603"}, nil},
		{"payment and another type", true, "[" + strings.Trim(payment, "[]") + "," + other + "]",
			[]string{"Send 100.00 EUR to DE02100100109307118603", "account_information", "&lt;i&gt;x&lt;/i&gt;"}, []string{"<i>x</i>"}},
		{"markup is escaped", true, markup,
			[]string{"Send &lt;b&gt;1&lt;/b&gt; EUR to &lt;script&gt;alert(1)&lt;/script&gt;"}, []string{"<script>alert", "<b>1"}},
		{"incomplete payment shown as JSON", true, `[{"type":"payment_initiation","instructedAmount":{"amount":"5"}}]`,
			[]string{"payment_initiation", "instructedAmount"}, []string{"Send "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := startBank(t, tc.par)
			c := rp(t, m.env, clientID, clientSecret)
			a := stepUpRequest(tc.details)
			raw, err := c.AuthorizeURL(t.Context(), a)
			if err != nil {
				t.Fatalf("AuthorizeURL: %v", err)
			}
			pages, q := m.login(browser(t), nil, raw, "password", "code")
			if got := kinds(pages); !slices.Equal(got, []string{"password", "code"}) {
				t.Fatalf("pages %v; want password then code", got)
			}
			page := pages[1]
			for _, s := range tc.want {
				if !strings.Contains(page, s) {
					t.Errorf("code page lacks %q:\n%s", s, page)
				}
			}
			for _, s := range tc.never {
				if strings.Contains(page, s) {
					t.Errorf("code page holds %q:\n%s", s, page)
				}
			}
			if q == nil {
				t.Fatal("the code did not complete the login")
			}
			if _, err := c.Exchange(t.Context(), q.Get("code"), expect(a)); err != nil {
				t.Fatalf("Exchange: %v", err)
			}
		})
	}
}

// TestTransactionAlwaysAsksForTheCode: a fresh second factor in the SSO
// session spares the code for a plain step-up, but not for a transaction,
// which the user must approve with a code of its own.
func TestTransactionAlwaysAsksForTheCode(t *testing.T) {
	m := startBank(t, true)
	c := rp(t, m.env, clientID, clientSecret)
	hc := browser(t)
	run := func(details string, steps ...string) []string {
		t.Helper()
		a := stepUpRequest(details)
		raw, err := c.AuthorizeURL(t.Context(), a)
		if err != nil {
			t.Fatalf("AuthorizeURL: %v", err)
		}
		pages, q := m.login(hc, nil, raw, steps...)
		if q == nil {
			t.Fatalf("login did not complete after %v", kinds(pages))
		}
		if _, err := c.Exchange(t.Context(), q.Get("code"), oidc.Expect{Nonce: a.Nonce, Verifier: a.Verifier, Level: a.Level, AuthorizationDetails: details}); err != nil {
			t.Fatalf("Exchange: %v", err)
		}
		return kinds(pages)
	}
	if got := run("", "password", "code"); !slices.Equal(got, []string{"password", "code"}) {
		t.Fatalf("first step-up pages %v; want password then code", got)
	}
	if got := run(""); len(got) != 0 {
		t.Errorf("second step-up within max_age pages %v; want none (SSO)", got)
	}
	if got := run(payment, "code"); !slices.Equal(got, []string{"code"}) {
		t.Errorf("transaction within max_age pages %v; want the code page", got)
	}
}
