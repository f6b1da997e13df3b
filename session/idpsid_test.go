package session_test

import (
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// The IdP's session ID (the ID token's sid claim) rides in the session, so a
// back-channel logout naming it can end the gateway sessions it started.
func TestIdPSIDRoundTrip(t *testing.T) {
	s := newStore(t, true, secret(1))
	for _, tt := range []struct {
		name, sid string
	}{
		{"absent", ""},
		{"uuid", "08a5019c-17e1-4977-8f42-65a12843ea02"},
		{"longest", strings.Repeat("s", 255)},
		{"not ascii", "sitzung-ü-\u00e9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			saved, err := s.SaveWith(rec, realisticFacts(), tt.sid, t0)
			if err != nil {
				t.Fatalf("SaveWith: %v", err)
			}
			if saved.IdPSID != tt.sid {
				t.Errorf("SaveWith returned IdPSID %q; want %q", saved.IdPSID, tt.sid)
			}
			got, err := s.Load(request(onlyCookie(t, rec)), t0)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got.IdPSID != tt.sid || !reflect.DeepEqual(got, saved) {
				t.Errorf("Load = %+v; want %+v with IdPSID %q", got, saved, tt.sid)
			}
		})
	}

	// Save is SaveWith without an IdP session.
	c, st := save(t, s, realisticFacts(), t0)
	if got, err := s.Load(request(c), t0); err != nil || got.IdPSID != "" || st.IdPSID != "" {
		t.Errorf("Save then Load = IdPSID %q (Save returned %q), %v; want \"\"", got.IdPSID, st.IdPSID, err)
	}

	// An ID token's sid longer than any IdP sends is refused, not truncated.
	rec := httptest.NewRecorder()
	if _, err := s.SaveWith(rec, realisticFacts(), strings.Repeat("s", 256), t0); err == nil || !strings.Contains(err.Error(), "IdP session ID of 256 bytes") {
		t.Errorf("SaveWith of a 256-byte sid = %v; want an error naming its length", err)
	}
	if got := rec.Header().Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("failed SaveWith set cookies %q", got)
	}
}
