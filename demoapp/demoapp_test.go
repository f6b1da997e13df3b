package demoapp

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestCreateTransfer(t *testing.T) {
	for _, tt := range []struct {
		name, subject, to, amount string
		wantStatus                int
	}{
		{"accepted", "alice", "Bob", "25.50", http.StatusOK},
		{"no identity from the gateway", "", "Bob", "25.50", http.StatusUnauthorized},
		{"zero amount", "alice", "Bob", "0", http.StatusBadRequest},
		{"negative amount", "alice", "Bob", "-5", http.StatusBadRequest},
		{"three decimals", "alice", "Bob", "1.234", http.StatusBadRequest},
		{"markup in recipient", "alice", "<script>", "5", http.StatusBadRequest},
		{"empty recipient", "alice", "", "5", http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := New()
			form := url.Values{"to": {tt.to}, "amount": {tt.amount}}
			r := httptest.NewRequest(http.MethodPost, "/api/transfers", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.subject != "" {
				r.Header.Set("X-Stepgate-Subject", tt.subject)
				r.Header.Set("X-Stepgate-Amr", "pwd,otp,mfa")
			}
			w := httptest.NewRecorder()
			a.Handler().ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d; want %d", w.Code, tt.wantStatus)
			}
			got := a.Transfers()
			if tt.wantStatus != http.StatusOK {
				if len(got) != 0 {
					t.Errorf("recorded %+v; want nothing", got)
				}
				return
			}
			if len(got) != 1 || got[0].Subject != "alice" || got[0].Amount != "25.50" || got[0].AMR != "pwd,otp,mfa" {
				t.Errorf("recorded %+v; want alice's 25.50 with its amr", got)
			}
			if !strings.Contains(w.Body.String(), `id="transfer-done"`) {
				t.Errorf("body lacks the done message:\n%s", w.Body)
			}
		})
	}
}

func TestPagesShowIdentityHeaders(t *testing.T) {
	a := New()
	for _, path := range []string{"/account", "/transfers", "/admin"} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("X-Stepgate-Subject", "alice")
		r.Header.Set("X-Stepgate-Acr", "<b>acr</b>")
		w := httptest.NewRecorder()
		a.Handler().ServeHTTP(w, r)
		body := w.Body.String()
		if w.Code != http.StatusOK || !strings.Contains(body, "<code>alice</code>") || !strings.Contains(body, `<form method="post" action="/.stepgate/logout" class="signout"><button type="submit" id="logout">`) {
			t.Errorf("GET %s: %d; want the identity table and a sign-out form:\n%s", path, w.Code, body)
		}
		if strings.Contains(body, "<b>acr</b>") {
			t.Errorf("GET %s: a header value reached the page unescaped", path)
		}
	}
}
