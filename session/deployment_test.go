package session_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

// A cookie belongs to one deployment: one issuer and one client_id. Another
// deployment's cookie never opens, even under the same secret, and a
// session naming another issuer satisfies nothing (threat model case 85).

// deployment is a store configuration for issuer and client sharing one
// secret with every other deployment in these tests.
func deployment(issuer, client string, secrets ...[]byte) session.Config {
	if len(secrets) == 0 {
		secrets = [][]byte{secret(1)}
	}
	return session.Config{Secrets: secrets, Lifetime: lifetime, Secure: true, Issuer: issuer, ClientID: client}
}

func mustNew(t *testing.T, cfg session.Config) *session.Store {
	t.Helper()
	s, err := session.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return s
}

func TestSessionBoundToDeployment(t *testing.T) {
	home := deployment(issuer, clientID)
	foreignIss := realisticFacts()
	foreignIss.Issuer = "https://staging.login.example.com"
	noIss := realisticFacts()
	noIss.Issuer = ""
	tests := []struct {
		name         string
		sealer, open session.Config
		facts        policy.Facts
		want         string // substring of Load's error; "" when the session opens
	}{
		{"same deployment", home, home, realisticFacts(), ""},
		{"rotated secret, same deployment", home, deployment(issuer, clientID, secret(2), secret(1)), realisticFacts(), ""},
		// The sealer wrote facts naming our issuer: only the keys can tell.
		{"other issuer, same secret", deployment("https://staging.login.example.com", clientID), home, realisticFacts(), "failed authentication"},
		{"issuer with a trailing slash", deployment(issuer+"/", clientID), home, realisticFacts(), "failed authentication"},
		{"other client_id, same secret", deployment(issuer, "other-app"), home, realisticFacts(), "failed authentication"},
		{"rotated secret, other client_id", deployment(issuer, "other-app"), deployment(issuer, clientID, secret(2), secret(1)), realisticFacts(), "failed authentication"},
		// A separator inside a field must not shift the boundary between
		// issuer and client_id: "a|b"+"c" and "a"+"b|c" are two deployments.
		{"field boundary moved", deployment("https://idp.example|x", "app"), deployment("https://idp.example", "x|app"), policy.Facts{Issuer: "https://idp.example", Subject: "s"}, "failed authentication"},
		{"fields concatenate alike", deployment("https://idp.example/a", "b"), deployment("https://idp.example/", "ab"), policy.Facts{Issuer: "https://idp.example/", Subject: "s"}, "failed authentication"},
		// Same keys, but the sealed facts name another issuer.
		{"sealed facts from another issuer", home, home, foreignIss, `issuer "https://staging.login.example.com"`},
		{"sealed facts without issuer", home, home, noIss, `issuer ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := save(t, mustNew(t, tt.sealer), tt.facts, t0)
			st, err := mustNew(t, tt.open).Load(request(c), t0)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %v; want the session", err)
				}
				if st.Facts.Subject != tt.facts.Subject {
					t.Errorf("Load subject %q; want %q", st.Facts.Subject, tt.facts.Subject)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = session of %q, %v; want no session and an error containing %q", st.Facts.Subject, err, tt.want)
			}
		})
	}
}

func TestPendingBoundToDeployment(t *testing.T) {
	home := deployment(issuer, clientID)
	stepUp := func(iss string) session.Pending {
		p := newPending(t, t0)
		p.Issuer, p.Subject = iss, "user-1"
		return p
	}
	tests := []struct {
		name         string
		sealer, open session.Config
		p            session.Pending
		want         string // substring of TakePending's error; "" when it opens
	}{
		{"login, same deployment", home, home, newPending(t, t0), ""},
		{"step-up, same deployment", home, home, stepUp(issuer), ""},
		{"rotated secret", home, deployment(issuer, clientID, secret(2), secret(1)), stepUp(issuer), ""},
		{"other issuer, same secret", deployment("https://staging.login.example.com", clientID), home, newPending(t, t0), "failed authentication"},
		{"other client_id, same secret", deployment(issuer, "other-app"), home, newPending(t, t0), "failed authentication"},
		{"step-up of another issuer's session", home, home, stepUp("https://staging.login.example.com"), `issuer "https://staging.login.example.com"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealer, open := mustNew(t, tt.sealer), mustNew(t, tt.open)
			c := savePending(t, sealer, tt.p)
			got, err := open.TakePending(httptest.NewRecorder(), request(c), tt.p.State, t0)
			if tt.want == "" {
				if err != nil || got.State != tt.p.State {
					t.Fatalf("TakePending = %+v, %v; want the pending login", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("TakePending = login for level %q, %v; want an error containing %q", got.Level, err, tt.want)
			}
		})
	}
}
