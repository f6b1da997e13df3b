package devidp

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestPushedStoreLifetime pins RFC 9126's rules for a request_uri, with
// the clock in the test's hands: it lives 60 s and works once.
func TestPushedStoreLifetime(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	params := url.Values{"client_id": {"stepgate"}, "state": {"s"}}
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  bool
	}{
		{"at once", 0, true},
		{"at 60 s", parLifetime, true},
		{"after 60 s", parLifetime + time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newPushedStore()
			uri, ok := s.put("stepgate", params, t0)
			if !ok || !strings.HasPrefix(uri, requestURIPrefix) {
				t.Fatalf("put = %q, %v; want a request_uri", uri, ok)
			}
			got, ok := s.take(uri, t0.Add(tc.after))
			if ok != tc.want {
				t.Fatalf("take after %v: ok %v; want %v", tc.after, ok, tc.want)
			}
			if ok && (got.clientID != "stepgate" || got.params.Encode() != params.Encode()) {
				t.Errorf("take = %+v; want the pushed request", got)
			}
			if _, again := s.take(uri, t0); again {
				t.Error("a request_uri worked twice")
			}
		})
	}
	t.Run("expired entries make room", func(t *testing.T) {
		s := newPushedStore()
		for range maxPending {
			if _, ok := s.put("stepgate", params, t0); !ok {
				t.Fatal("store full before maxPending")
			}
		}
		if _, ok := s.put("stepgate", params, t0); ok {
			t.Error("put beyond maxPending succeeded")
		}
		if _, ok := s.put("stepgate", params, t0.Add(parLifetime+time.Second)); !ok {
			t.Error("put after every entry expired failed")
		}
	})
}
