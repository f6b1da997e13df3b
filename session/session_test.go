package session_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

var t0 = time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)

const lifetime = 8 * time.Hour

// The deployment every test store belongs to, unless a test says otherwise.
const (
	issuer   = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
	clientID = "stepgate"
)

// secret returns a distinct 32-byte test secret for each seed.
func secret(seed byte) []byte { return bytes.Repeat([]byte{seed}, session.MinSecretLen) }

func newStore(t testing.TB, secure bool, secrets ...[]byte) *session.Store {
	t.Helper()
	s, err := session.New(session.Config{Secrets: secrets, Lifetime: lifetime, Secure: secure, Issuer: issuer, ClientID: clientID})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// realisticFacts is a large but real-world session: an Entra ID issuer, a
// pairwise subject, a long email and ten amr values.
func realisticFacts() policy.Facts {
	return policy.Facts{
		Issuer:     issuer,
		Subject:    "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
		Email:      "firstname.middlename.lastname+stepgate@subsidiary.example-corporation.com",
		ACR:        "http://schemas.openid.net/pape/policies/2007/06/multi-factor-physical",
		AMR:        []string{"pwd", "mfa", "otp", "hwk", "swk", "face", "fpt", "sms", "tel", "urn:example:amr:push-notification"},
		ACRS:       []string{"c1", "c2", "urn:microsoft:req1", "urn:example:authentication-context:high-value-transfer"},
		AuthTime:   t0.Add(-5 * time.Minute),
		VerifiedAt: t0.Add(-4 * time.Minute),
	}
}

func request(cookies ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/", nil)
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// save runs Save and returns the cookie it set.
func save(t testing.TB, s *session.Store, f policy.Facts, now time.Time) (*http.Cookie, session.State) {
	t.Helper()
	rec := httptest.NewRecorder()
	st, err := s.Save(rec, f, now)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	return onlyCookie(t, rec), st
}

func onlyCookie(t testing.TB, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("got %d Set-Cookie headers; want 1", len(cs))
	}
	return cs[0]
}

func TestNewConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  session.Config
		want string // substring of the error; "" for success
	}{
		{"ok", session.Config{Secrets: [][]byte{secret(1)}, Lifetime: time.Hour, Issuer: issuer, ClientID: clientID}, ""},
		{"rotation", session.Config{Secrets: [][]byte{secret(1), secret(2)}, Lifetime: time.Hour, Issuer: issuer, ClientID: clientID}, ""},
		{"no secrets", session.Config{Lifetime: time.Hour, Issuer: issuer, ClientID: clientID}, "no secrets"},
		{"short secret", session.Config{Secrets: [][]byte{secret(1)[:31]}, Lifetime: time.Hour, Issuer: issuer, ClientID: clientID}, "secret 0 is 31 bytes"},
		{"short old secret", session.Config{Secrets: [][]byte{secret(1), {}}, Lifetime: time.Hour, Issuer: issuer, ClientID: clientID}, "secret 1 is 0 bytes"},
		{"zero lifetime", session.Config{Secrets: [][]byte{secret(1)}, Issuer: issuer, ClientID: clientID}, "lifetime 0s"},
		{"negative lifetime", session.Config{Secrets: [][]byte{secret(1)}, Lifetime: -time.Hour, Issuer: issuer, ClientID: clientID}, "lifetime -1h0m0s"},
		{"sub-second lifetime", session.Config{Secrets: [][]byte{secret(1)}, Lifetime: time.Millisecond, Issuer: issuer, ClientID: clientID}, "lifetime 1ms"},
		{"no issuer", session.Config{Secrets: [][]byte{secret(1)}, Lifetime: time.Hour, ClientID: clientID}, "no issuer"},
		{"no client_id", session.Config{Secrets: [][]byte{secret(1)}, Lifetime: time.Hour, Issuer: issuer}, "no client_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := session.New(tt.cfg)
			if tt.want == "" {
				if err != nil || s == nil {
					t.Fatalf("New = %v, %v; want a store", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || s != nil {
				t.Fatalf("New = %v, %v; want nil and an error containing %q", s, err, tt.want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	// A clock reading with nanoseconds and a monotonic part, as time.Now gives.
	now := time.Now()
	tests := []struct {
		name  string
		facts policy.Facts
	}{
		{"realistic", realisticFacts()},
		{"every field distinct", policy.Facts{
			Issuer: issuer, Subject: "sub-1", Email: "a@example.com", ACR: "urn:mfa",
			AMR: []string{"pwd", "otp"}, ACRS: []string{"c3"},
			AuthTime: now.Add(-time.Minute), VerifiedAt: now,
		}},
		{"no auth_time, empty lists", policy.Facts{Issuer: issuer, Subject: "s", AMR: []string{}}},
		{"empty strings kept", policy.Facts{Issuer: issuer, Subject: "s", AMR: []string{"", "x", ""}}},
		// Facts naming no issuer never open (TestSessionBoundToDeployment).
		{"only the issuer", policy.Facts{Issuer: issuer}},
	}
	s := newStore(t, true, secret(1))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, saved := save(t, s, tt.facts, now)
			got, err := s.Load(request(c), now)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(got, saved) {
				t.Errorf("Load = %+v\nSave returned %+v", got, saved)
			}
			f, want := got.Facts, tt.facts
			if f.Issuer != want.Issuer || f.Subject != want.Subject || f.Email != want.Email || f.ACR != want.ACR {
				t.Errorf("Load facts = %+v; want %+v", f, want)
			}
			if !slicesEqual(f.AMR, want.AMR) || !slicesEqual(f.ACRS, want.ACRS) {
				t.Errorf("Load amr, acrs = %q, %q; want %q, %q", f.AMR, f.ACRS, want.AMR, want.ACRS)
			}
			// Times keep whole seconds; the zero time stays zero.
			for _, tm := range []struct{ got, want time.Time }{{f.AuthTime, want.AuthTime}, {f.VerifiedAt, want.VerifiedAt}} {
				if tm.got.IsZero() != tm.want.IsZero() || tm.got.Unix() != tm.want.Unix() {
					t.Errorf("Load time = %v; want %v to the second", tm.got, tm.want)
				}
			}
			if want := now.Truncate(time.Second).Add(lifetime); !got.Expires.Equal(want) {
				t.Errorf("Expires = %v; want %v", got.Expires, want)
			}
		})
	}
}

func slicesEqual(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

func TestSaveNewID(t *testing.T) {
	s := newStore(t, true, secret(1))
	seen := map[string]bool{}
	for range 3 {
		_, st := save(t, s, realisticFacts(), t0)
		raw, err := base64.RawURLEncoding.DecodeString(st.ID)
		if err != nil || len(raw) != 16 {
			t.Fatalf("ID %q: %d bytes, %v; want 16 bytes of base64url", st.ID, len(raw), err)
		}
		if seen[st.ID] {
			t.Fatalf("Save reused ID %q", st.ID)
		}
		seen[st.ID] = true
	}
}

func TestLoadNoSession(t *testing.T) {
	s := newStore(t, true, secret(1))
	// A cookie of another name, including the insecure spelling, is no session.
	r := request(&http.Cookie{Name: "stepgate", Value: "x"}, &http.Cookie{Name: "other", Value: "y"})
	if _, err := s.Load(r, t0); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("Load without cookie = %v; want ErrNoSession", err)
	}
}

func TestLoadRejects(t *testing.T) {
	s := newStore(t, true, secret(1))
	c, _ := save(t, s, realisticFacts(), t0)

	tamper := func(pos int) *http.Cookie {
		// Replace one character by the next one of the base64url alphabet,
		// so the value still decodes and only the MAC can catch it.
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		v := []byte(c.Value)
		i := strings.IndexByte(alphabet, v[pos])
		if i < 0 {
			t.Fatalf("cookie value has %q at %d; want base64url", v[pos], pos)
		}
		v[pos] = alphabet[(i+1)%len(alphabet)]
		return &http.Cookie{Name: c.Name, Value: string(v)}
	}
	// The last few characters are left alone: the final base64 digit before
	// padding has bits the decoder ignores.
	n := len(strings.TrimRight(c.Value, "=")) - 4
	foreign, _ := save(t, newStore(t, true, secret(9)), realisticFacts(), t0)
	insecure, _ := save(t, newStore(t, false, secret(1)), realisticFacts(), t0)

	tests := []struct {
		name   string
		cookie []*http.Cookie
		now    time.Time
		want   string
	}{
		{"tamper first byte", []*http.Cookie{tamper(0)}, t0, "failed authentication"},
		{"tamper second byte", []*http.Cookie{tamper(1)}, t0, "failed authentication"},
		{"tamper quarter", []*http.Cookie{tamper(n / 4)}, t0, "failed authentication"},
		{"tamper middle", []*http.Cookie{tamper(n / 2)}, t0, "failed authentication"},
		{"tamper three quarters", []*http.Cookie{tamper(3 * n / 4)}, t0, "failed authentication"},
		{"tamper near the end", []*http.Cookie{tamper(n - 1)}, t0, "failed authentication"},
		{"truncated", []*http.Cookie{{Name: c.Name, Value: c.Value[:len(c.Value)/2]}}, t0, "failed authentication"},
		{"empty value", []*http.Cookie{{Name: c.Name, Value: ""}}, t0, "failed authentication"},
		{"garbage", []*http.Cookie{{Name: c.Name, Value: "eyJhY3IiOiJtZmEifQ"}}, t0, "failed authentication"},
		{"oversized", []*http.Cookie{{Name: c.Name, Value: strings.Repeat("A", 5000)}}, t0, "5000 bytes"},
		{"foreign key", []*http.Cookie{{Name: c.Name, Value: foreign.Value}}, t0, "failed authentication"},
		// The name is part of the MAC: a value sealed for "stepgate" does
		// not open as "__Host-stepgate".
		{"other cookie name", []*http.Cookie{{Name: c.Name, Value: insecure.Value}}, t0, "failed authentication"},
		{"expired", []*http.Cookie{c}, t0.Add(lifetime), "expired at 2026-05-01T17:00:00Z"},
		{"duplicate, same value", []*http.Cookie{c, c}, t0, `2 cookies named "__Host-stepgate"`},
		{"duplicate, tossed", []*http.Cookie{foreign, c}, t0, `2 cookies named "__Host-stepgate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := s.Load(request(tt.cookie...), tt.now)
			if err == nil {
				t.Fatalf("Load = %+v, nil; want error containing %q", st, tt.want)
			}
			if errors.Is(err, session.ErrNoSession) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load error = %v; want one containing %q", err, tt.want)
			}
			if len(tt.cookie[0].Value) > 8 && strings.Contains(err.Error(), tt.cookie[0].Value[:8]) {
				t.Errorf("Load error %q quotes the cookie value", err)
			}
		})
	}

	// The boundary: one second before Expires the session is good.
	if _, err := s.Load(request(c), t0.Add(lifetime-time.Second)); err != nil {
		t.Errorf("Load one second before expiry: %v", err)
	}
}

func TestShorterLifetimeAppliesToOldSessions(t *testing.T) {
	c, _ := save(t, newStore(t, true, secret(1)), realisticFacts(), t0) // 8h
	short, err := session.New(session.Config{Secrets: [][]byte{secret(1)}, Lifetime: time.Hour, Secure: true, Issuer: issuer, ClientID: clientID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := short.Load(request(c), t0.Add(30*time.Minute)); err != nil {
		t.Errorf("Load at 30m with a 1h lifetime: %v", err)
	}
	if _, err := short.Load(request(c), t0.Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("Load at 2h with a 1h lifetime = %v; want expired", err)
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := secret(1), secret(2)
	oldStore := newStore(t, true, oldKey)
	rotated := newStore(t, true, newKey, oldKey)

	c, saved := save(t, oldStore, realisticFacts(), t0)
	got, err := rotated.Load(request(c), t0)
	if err != nil {
		t.Fatalf("rotated store cannot open a cookie sealed with the old secret: %v", err)
	}
	if !reflect.DeepEqual(got, saved) {
		t.Errorf("Load = %+v; want %+v", got, saved)
	}

	// New cookies are sealed with Secrets[0] only.
	c2, _ := save(t, rotated, realisticFacts(), t0)
	if _, err := oldStore.Load(request(c2), t0); err == nil {
		t.Error("a store with only the old secret opened a cookie sealed after rotation")
	}
	if _, err := newStore(t, true, newKey).Load(request(c2), t0); err != nil {
		t.Errorf("a store with only the new secret cannot open it: %v", err)
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, secure := range []bool{true, false} {
		name := "stepgate"
		if secure {
			name = "__Host-stepgate"
		}
		s := newStore(t, secure, secret(1))
		if got := s.CookieName(); got != name {
			t.Errorf("CookieName() = %q; want %q", got, name)
		}

		saved := httptest.NewRecorder()
		if _, err := s.Save(saved, realisticFacts(), t0); err != nil {
			t.Fatal(err)
		}
		cleared := httptest.NewRecorder()
		s.Clear(cleared)
		pending := httptest.NewRecorder()
		p, err := session.NewPending("high", "/transfer?amount=100", t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SavePending(pending, request(), p); err != nil {
			t.Fatal(err)
		}

		for _, tc := range []struct {
			what   string
			rec    *httptest.ResponseRecorder
			name   string
			maxAge int // as net/http parses it: -1 for Max-Age=0
		}{
			{"Save", saved, name, int(lifetime / time.Second)},
			{"Clear", cleared, name, -1},
			{"SavePending", pending, s.PendingName(p.State), int(session.PendingLifetime / time.Second)},
		} {
			t.Run(tc.what+"/secure="+map[bool]string{true: "true", false: "false"}[secure], func(t *testing.T) {
				raw := tc.rec.Header().Values("Set-Cookie")
				if len(raw) != 1 {
					t.Fatalf("Set-Cookie = %q; want one header", raw)
				}
				if strings.Contains(strings.ToLower(raw[0]), "domain=") {
					t.Errorf("Set-Cookie %q has a Domain attribute; want host-only", raw[0])
				}
				c := onlyCookie(t, tc.rec)
				if c.Name != tc.name || c.Path != "/" || !c.HttpOnly || c.Secure != secure ||
					c.SameSite != http.SameSiteLaxMode || c.MaxAge != tc.maxAge || c.Domain != "" {
					t.Errorf("cookie = {Name:%q Path:%q HttpOnly:%v Secure:%v SameSite:%v MaxAge:%d Domain:%q}; "+
						"want {Name:%q Path:\"/\" HttpOnly:true Secure:%v SameSite:Lax MaxAge:%d Domain:\"\"}",
						c.Name, c.Path, c.HttpOnly, c.Secure, c.SameSite, c.MaxAge, c.Domain, tc.name, secure, tc.maxAge)
				}
				if strings.HasPrefix(c.Name, "__Host-") != secure {
					t.Errorf("cookie name %q: __Host- prefix iff Secure (%v)", c.Name, secure)
				}
				if tc.maxAge < 0 && c.Value != "" {
					t.Errorf("expired cookie carries a value")
				}
			})
		}
	}
}

func TestSizeBound(t *testing.T) {
	s := newStore(t, true, secret(1))
	c, _ := save(t, s, realisticFacts(), t0)
	if n := len(c.Name) + 1 + len(c.Value); n >= 1500 {
		t.Errorf("realistic session cookie is %d bytes; want < 1500", n)
	}
	t.Logf("realistic session cookie: %d bytes", len(c.Name)+1+len(c.Value))

	// Everything long at once still fits a browser's 4 KB per cookie.
	f := realisticFacts()
	f.Issuer = "https://" + strings.Repeat("i", 200) + ".example.com/realms/" + strings.Repeat("r", 50)
	f.Subject = strings.Repeat("s", 255)
	f.Email = strings.Repeat("e", 64) + "@" + strings.Repeat("d", 100) + ".example"
	f.ACR = "urn:" + strings.Repeat("a", 120)
	c, _ = save(t, s, f, t0)
	if n := len(c.Name) + 1 + len(c.Value); n >= 4096 {
		t.Errorf("long session cookie is %d bytes; want < 4096", n)
	}
	t.Logf("long session cookie: %d bytes", len(c.Name)+1+len(c.Value))
}

func TestSaveRejectsTooMuch(t *testing.T) {
	s := newStore(t, true, secret(1))
	huge := realisticFacts()
	huge.Subject = strings.Repeat("s", 4000)
	rec := httptest.NewRecorder()
	if _, err := s.Save(rec, huge, t0); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("Save of a 4000-byte subject = %v; want a too-long error", err)
	}
	many := realisticFacts()
	many.AMR = make([]string, 65)
	if _, err := s.Save(rec, many, t0); err == nil || !strings.Contains(err.Error(), "65 amr") {
		t.Errorf("Save with 65 amr values = %v; want an error", err)
	}
	if got := rec.Header().Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("failed Saves set cookies %q", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newStore(t, true, secret(1), secret(2))
	done := make(chan error)
	for range 4 {
		go func() {
			var err error
			for range 20 {
				rec := httptest.NewRecorder()
				if _, err = s.Save(rec, realisticFacts(), t0); err != nil {
					break
				}
				if _, err = s.Load(request(rec.Result().Cookies()...), t0); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// discard is a ResponseWriter whose headers are reset between iterations.
type discard http.Header

func (d discard) Header() http.Header         { return http.Header(d) }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

func BenchmarkLoad(b *testing.B) {
	s := newStore(b, true, secret(1))
	c, _ := save(b, s, realisticFacts(), t0)
	r := request(c, &http.Cookie{Name: "_ga", Value: "GA1.2.1234567890.1234567890"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Load(r, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSave(b *testing.B) {
	s := newStore(b, true, secret(1))
	f := realisticFacts()
	w := discard{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Save(w, f, t0); err != nil {
			b.Fatal(err)
		}
		delete(w, "Set-Cookie")
	}
}

func TestToken(t *testing.T) {
	s := newStore(t, true, secret(1))
	tok := s.Token("confirm", "session-1", "hold-1")
	if !s.CheckToken(tok, "confirm", "session-1", "hold-1") {
		t.Fatal("a token does not check")
	}
	for name, ok := range map[string]bool{
		"other purpose": s.CheckToken(tok, "cancel", "session-1", "hold-1"),
		"other session": s.CheckToken(tok, "confirm", "session-2", "hold-1"),
		"other hold":    s.CheckToken(tok, "confirm", "session-1", "hold-2"),
		"parts shifted": s.CheckToken(tok, "confirm", "session-1hold-1"),
		"truncated":     s.CheckToken(tok[:len(tok)-1], "confirm", "session-1", "hold-1"),
		"empty":         s.CheckToken("", "confirm", "session-1", "hold-1"),
	} {
		if ok {
			t.Errorf("%s: token accepted", name)
		}
	}
	rotated := newStore(t, true, secret(2), secret(1))
	if !rotated.CheckToken(tok, "confirm", "session-1", "hold-1") {
		t.Error("a token made before a rotation does not check after it")
	}
	if other := newStore(t, true, secret(2)); other.CheckToken(tok, "confirm", "session-1", "hold-1") {
		t.Error("a token checks under another secret")
	}
}

// Raising the configured lifetime never lengthens a session saved before:
// a revocation kept for the old lifetime must not be outlived by it.
func TestLongerLifetimeDoesNotExtendSessions(t *testing.T) {
	newStoreLifetime := func(t *testing.T, l time.Duration) *session.Store {
		s, err := session.New(session.Config{Secrets: [][]byte{secret(1)}, Lifetime: l, Issuer: issuer, ClientID: clientID})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	short := newStoreLifetime(t, time.Hour)
	rec := httptest.NewRecorder()
	st, err := short.Save(rec, policy.Facts{Issuer: issuer, Subject: "alice"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	long := newStoreLifetime(t, 48*time.Hour)
	req := request(rec.Result().Cookies()...)
	got, err := long.Load(req, t0.Add(30*time.Minute))
	if err != nil || !got.Expires.Equal(st.Expires) {
		t.Fatalf("Load under a longer lifetime: expires %v, %v; want the saved %v", got.Expires, err, st.Expires)
	}
	if _, err := long.Load(req, t0.Add(2*time.Hour)); err == nil {
		t.Error("a session outlived the lifetime it was saved with after the lifetime was raised")
	}
	shorter := newStoreLifetime(t, 10*time.Minute)
	if _, err := shorter.Load(req, t0.Add(20*time.Minute)); err == nil {
		t.Error("shortening the lifetime did not shorten an older session")
	}
}
