package devidp_test

import (
	"log"
	"net"
	"net/http"

	"github.com/stepgate/stepgate/devidp"
)

// A test serves devidp on a loopback port and scripts every login: here the
// provider performs whatever step-up acr_values asks for.
func ExampleProvider_SetScript() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	p, err := devidp.New(devidp.Config{
		Issuer: "http://" + ln.Addr().String(),
		Clients: []devidp.Client{{
			ID: "stepgate", Secret: "dev-secret",
			RedirectURIs: []string{"http://127.0.0.1:8080/oauth2/callback"},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: p.Handler()}
	go srv.Serve(ln)
	defer srv.Close()

	p.SetScript(func(r devidp.Request) devidp.Login {
		if len(r.Prompt) == 1 && r.Prompt[0] == "none" {
			return devidp.Login{Error: "login_required"}
		}
		return devidp.Login{Subject: "alice", Email: "alice@example.test", AMR: []string{"pwd"}, HonourACRValues: true}
	})
	// Point stepgate's OIDC client at p.Issuer(), then assert on p.Requests().
}
