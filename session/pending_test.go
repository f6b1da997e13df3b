package session_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/session"
)

func newPending(t *testing.T, now time.Time) session.Pending {
	t.Helper()
	p, err := session.NewPending("high", "/transfer?to=DE89370400440532013000&amount=100", now)
	if err != nil {
		t.Fatalf("NewPending: %v", err)
	}
	return p
}

// savePending runs SavePending on a request carrying cookies and returns the
// cookie it set for p.
func savePending(t *testing.T, s *session.Store, p session.Pending, cookies ...*http.Cookie) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := s.SavePending(rec, request(cookies...), p); err != nil {
		t.Fatalf("SavePending: %v", err)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == s.PendingName(p.State) {
			return c
		}
	}
	t.Fatalf("SavePending set no cookie named %q", s.PendingName(p.State))
	return nil
}

// expires reports whether rec expires the cookie called name.
func expires(rec *httptest.ResponseRecorder, name string) bool {
	for _, c := range rec.Result().Cookies() {
		if c.Name == name && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

func TestNewPending(t *testing.T) {
	now := time.Now()
	p := newPending(t, now)
	q := newPending(t, now)
	b64 := regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)            // 128 bits, base64url unpadded
	verifier := regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`) // RFC 7636 §4.1
	if !b64.MatchString(p.State) || !b64.MatchString(p.Nonce) || !verifier.MatchString(p.Verifier) {
		t.Errorf("NewPending = state %q nonce %q verifier %q; want 22, 22 and 43-128 unreserved characters", p.State, p.Nonce, p.Verifier)
	}
	if p.State == q.State || p.Nonce == q.Nonce || p.Verifier == q.Verifier || p.State == p.Nonce {
		t.Error("NewPending repeats random values")
	}
	if p.Level != "high" || p.ReturnTo != "/transfer?to=DE89370400440532013000&amount=100" || p.Issuer != "" || p.Subject != "" {
		t.Errorf("NewPending = %+v; want level, return path and no issuer or subject", p)
	}
	if !p.Created.Equal(now.Truncate(time.Second)) {
		t.Errorf("Created = %v; want %v to the second", p.Created, now)
	}
}

func TestPendingRoundTrip(t *testing.T) {
	for _, secure := range []bool{true, false} {
		s := newStore(t, secure, secret(1))
		p := newPending(t, t0)
		p.Issuer, p.Subject = issuer, "user-1"
		c := savePending(t, s, p)
		if want := s.CookieName() + "-p-"; !strings.HasPrefix(c.Name, want) {
			t.Errorf("pending cookie %q; want prefix %q", c.Name, want)
		}

		rec := httptest.NewRecorder()
		got, err := s.TakePending(rec, request(c), p.State, t0.Add(session.PendingLifetime))
		if err != nil {
			t.Fatalf("TakePending: %v", err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("TakePending = %+v; want %+v", got, p)
		}
		if !expires(rec, c.Name) {
			t.Error("TakePending did not expire the pending cookie")
		}
	}
}

func TestPendingSingleUse(t *testing.T) {
	s := newStore(t, true, secret(1))
	p := newPending(t, t0)
	jar := newJar(savePending(t, s, p))

	rec := httptest.NewRecorder()
	if _, err := s.TakePending(rec, jar.request(), p.State, t0); err != nil {
		t.Fatalf("first TakePending: %v", err)
	}
	jar.apply(rec)
	if _, err := s.TakePending(httptest.NewRecorder(), jar.request(), p.State, t0); err == nil {
		t.Fatal("second TakePending of the same state succeeded; want an error")
	}
}

func TestTakePendingRejects(t *testing.T) {
	s := newStore(t, true, secret(1))
	p := newPending(t, t0)
	c := savePending(t, s, p)
	other := newPending(t, t0)

	// A cookie under p's name holding other's state: it cannot come from a
	// Store, but the constant-time comparison must still catch it.
	swapped, err := s.SealPendingAs(c.Name, other)
	if err != nil {
		t.Fatal(err)
	}
	empty := p
	empty.State = ""
	emptyValue, err := s.SealPendingAs(s.PendingName(""), empty)
	if err != nil {
		t.Fatal(err)
	}
	foreign := savePending(t, newStore(t, true, secret(9)), p)
	// A session sealed under the pending cookie's name, with the session keys.
	sess, err := s.SealSessionAs(c.Name, session.State{ID: strings.Repeat("A", 22), Facts: realisticFacts()}, t0)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		cookies []*http.Cookie
		state   string
		now     time.Time
		want    string
		expired bool // whether the response must expire the cookie
	}{
		{"wrong state", []*http.Cookie{c}, other.State, t0, "no pending login", false},
		{"empty state", []*http.Cookie{{Name: s.PendingName(""), Value: emptyValue}}, "", t0, "without state", false},
		{"state mismatch inside", []*http.Cookie{{Name: c.Name, Value: swapped}}, p.State, t0, "state does not match", true},
		{"expired", []*http.Cookie{c}, p.State, t0.Add(session.PendingLifetime + time.Second), "expired after 10m0s", true},
		{"foreign key", []*http.Cookie{{Name: c.Name, Value: foreign.Value}}, p.State, t0, "failed authentication", true},
		{"session as pending", []*http.Cookie{{Name: c.Name, Value: sess}}, p.State, t0, "failed authentication", true},
		{"duplicate", []*http.Cookie{c, c}, p.State, t0, "2 cookies named", true},
		{"no cookie", nil, p.State, t0, "no pending login", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			got, err := s.TakePending(rec, request(tt.cookies...), tt.state, tt.now)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("TakePending = %+v, %v; want an error containing %q", got, err, tt.want)
			}
			if tt.expired && !expires(rec, c.Name) {
				t.Errorf("TakePending failed without expiring cookie %q", c.Name)
			}
			for _, v := range []string{p.State, other.State, c.Value[:12]} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error %q quotes state or cookie value %q", err, v)
				}
			}
		})
	}
}

func TestPendingIsNotASession(t *testing.T) {
	s := newStore(t, true, secret(1))
	p := newPending(t, t0)
	// Sealed with the pending keys under the session cookie's name.
	v, err := s.SealPendingAs(s.CookieName(), p)
	if err != nil {
		t.Fatal(err)
	}
	c := savePending(t, s, p)
	for name, value := range map[string]string{"sealed as session name": v, "honest pending cookie": c.Value} {
		if st, err := s.Load(request(&http.Cookie{Name: s.CookieName(), Value: value}), t0); err == nil {
			t.Errorf("%s: Load = %+v; want an error", name, st)
		}
	}
}

func TestMaxPending(t *testing.T) {
	s := newStore(t, true, secret(1))
	// Junk that looks like a pending cookie is expired too.
	jar := newJar(&http.Cookie{Name: s.CookieName() + "-p-junk", Value: "x"})
	var flows []session.Pending
	for i := range pendingRounds {
		p := newPending(t, t0.Add(time.Duration(i)*time.Second))
		flows = append(flows, p)
		rec := httptest.NewRecorder()
		if err := s.SavePending(rec, jar.request(), p); err != nil {
			t.Fatal(err)
		}
		jar.apply(rec)

		var names []string
		for name := range jar {
			names = append(names, name)
		}
		if want := min(i+1, session.MaxPending); len(jar) != want {
			t.Fatalf("after %d flows the browser holds %d pending cookies %q; want %d", i+1, len(jar), names, want)
		}
	}
	// The newest MaxPending flows survive and complete; the older ones are gone.
	now := t0.Add(pendingRounds * time.Second)
	for i, p := range flows {
		_, err := s.TakePending(httptest.NewRecorder(), jar.request(), p.State, now)
		if live := i >= len(flows)-session.MaxPending; live != (err == nil) {
			t.Errorf("flow %d: TakePending error %v; want success %v", i, err, live)
		}
	}
}

const pendingRounds = session.MaxPending + 3

func TestSavePendingExpiresStale(t *testing.T) {
	s := newStore(t, true, secret(1))
	old := savePending(t, s, newPending(t, t0))
	p := newPending(t, t0.Add(session.PendingLifetime+time.Minute))
	rec := httptest.NewRecorder()
	if err := s.SavePending(rec, request(old), p); err != nil {
		t.Fatal(err)
	}
	if !expires(rec, old.Name) {
		t.Error("SavePending kept a pending cookie past its lifetime")
	}
}

func TestSavePendingRejectsIncomplete(t *testing.T) {
	s := newStore(t, true, secret(1))
	p := newPending(t, t0)
	for name, q := range map[string]session.Pending{
		"zero":        {},
		"no nonce":    {State: p.State, Verifier: p.Verifier},
		"no verifier": {State: p.State, Nonce: p.Nonce},
	} {
		rec := httptest.NewRecorder()
		if err := s.SavePending(rec, request(), q); err == nil || len(rec.Result().Cookies()) != 0 {
			t.Errorf("%s: SavePending = %v with cookies %v; want an error and no cookie", name, err, rec.Result().Cookies())
		}
	}
}

// jar is a browser's cookies for the gateway's host, enough for these tests.
type jar map[string]*http.Cookie

func newJar(cs ...*http.Cookie) jar {
	j := jar{}
	for _, c := range cs {
		j[c.Name] = c
	}
	return j
}

func (j jar) apply(rec *httptest.ResponseRecorder) {
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(j, c.Name)
		} else {
			j[c.Name] = c
		}
	}
}

func (j jar) request() *http.Request {
	var cs []*http.Cookie
	for _, c := range j {
		cs = append(cs, c)
	}
	return request(cs...)
}

// A client that sends thousands of cookies named like pending flows must not
// get thousands of Set-Cookie lines back (threat model case 90): each answer
// expires at most MaxCleared of them, and the jar still shrinks to the
// bound over a few answers.
func TestSavePendingBoundsSetCookies(t *testing.T) {
	s := newStore(t, true, secret(1))
	var junk []*http.Cookie
	for i := range 1000 {
		junk = append(junk, &http.Cookie{Name: fmt.Sprintf("%s-p-junk%d", s.CookieName(), i), Value: "x"})
	}
	j := newJar(junk...)
	for round := 0; len(j) > session.MaxPending; round++ {
		if round > 1000/(session.MaxCleared-1)+2 {
			t.Fatalf("after %d answers the browser still holds %d pending cookies", round, len(j))
		}
		rec := httptest.NewRecorder()
		if err := s.SavePending(rec, j.request(), newPending(t, t0)); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.Result().Header.Values("Set-Cookie")); n > session.MaxCleared+1 {
			t.Fatalf("answer %d has %d Set-Cookie lines; want at most %d", round, n, session.MaxCleared+1)
		}
		j.apply(rec)
	}
}
