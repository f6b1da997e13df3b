package session

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// PendingLifetime bounds how long a login or step-up round trip may take.
const PendingLifetime = 10 * time.Minute

// MaxPending bounds the pending-login cookies one browser holds, so parallel
// tabs work but a redirect loop cannot pile up cookies (threat model case 72).
const MaxPending = 4

// MaxCleared bounds the pending cookies one answer expires. Stale ones
// beyond it are left for later answers, so that a client sending thousands
// of cookies named like pending flows gets a bounded answer, not one
// Set-Cookie line per cookie (threat model case 90).
const MaxCleared = 2 * MaxPending

// Pending is one login or step-up round trip, kept in its own sealed cookie
// between the redirect to the IdP and the callback.
type Pending struct {
	State    string // 128-bit random, base64url, unpadded
	Nonce    string // 128-bit random, base64url, unpadded
	Verifier string // PKCE code verifier, 256-bit random: 43 unreserved characters (RFC 7636 §4.1)
	Level    string // level name asked for; "" for a plain login
	ReturnTo string // local path (with query) to go back to

	// Issuer and Subject are the session's when this is a step-up, so the
	// callback can insist the new ID token names the same user (threat model case 55);
	// "" on a first login.
	Issuer, Subject string

	Created time.Time // whole seconds, UTC
}

// NewPending starts a round trip asking for level and returning to returnTo,
// with fresh State, Nonce and Verifier from crypto/rand. The caller sets
// Issuer and Subject for a step-up.
func NewPending(level, returnTo string, now time.Time) (Pending, error) {
	p := Pending{Level: level, ReturnTo: returnTo, Created: unixTime(now)}
	var err error
	if p.State, err = random(16); err != nil {
		return Pending{}, err
	}
	if p.Nonce, err = random(16); err != nil {
		return Pending{}, err
	}
	if p.Verifier, err = random(32); err != nil {
		return Pending{}, err
	}
	return p, nil
}

// SavePending seals p into its own cookie on w. Pending cookies that r
// carries and that no longer open, or are past PendingLifetime, are expired,
// and so are the oldest valid ones, so that at most MaxPending remain.
func (s *Store) SavePending(w http.ResponseWriter, r *http.Request, p Pending) error {
	if p.State == "" || p.Nonce == "" || p.Verifier == "" {
		return errors.New("session: pending login without state, nonce or verifier; build it with NewPending")
	}
	name := s.pendingName(p.State)
	sc := getScratch()
	defer sc.free()
	v, err := s.pending.seal(sc, name, appendPending(sc.text[:0], p))
	if err != nil {
		return err
	}
	for _, old := range s.stalePending(r, name, p.Created) {
		http.SetCookie(w, s.cookie(old, "", -1))
	}
	http.SetCookie(w, s.cookie(name, v, PendingLifetime))
	return nil
}

// stalePending returns the names of r's pending cookies to expire so that,
// with the new cookie called keep, at most MaxPending remain, and never more
// than MaxCleared names. now is the new flow's Created time.
//
// An honest browser holds at most MaxPending pending cookies, so only the
// first few are opened (each costs an AES-GCM open); any beyond them are
// junk and expired without being opened.
func (s *Store) stalePending(r *http.Request, keep string, now time.Time) []string {
	type flow struct {
		name    string
		created time.Time
	}
	var stale, junk []string // opened and unusable; not opened
	var live []flow
	seen := map[string]bool{keep: true} // keep is overwritten, not counted
	prefix := s.name + "-p-"
	opened := 0
	for _, c := range r.Cookies() {
		if !strings.HasPrefix(c.Name, prefix) || seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		if opened == MaxCleared {
			if len(junk) < MaxCleared {
				junk = append(junk, c.Name)
			}
			continue
		}
		opened++
		p, err := s.openPending(c.Name, c.Value)
		if err != nil || p.expired(now) {
			stale = append(stale, c.Name)
			continue
		}
		live = append(live, flow{c.Name, p.Created})
	}
	slices.SortFunc(live, func(a, b flow) int {
		return cmp.Or(a.created.Compare(b.created), strings.Compare(a.name, b.name))
	})
	// The oldest live flows over the bound go first, so that the bound on
	// live flows holds even when junk fills the rest of the answer.
	var expire []string
	for len(live) > MaxPending-1 {
		expire = append(expire, live[0].name)
		live = live[1:]
	}
	expire = append(append(expire, stale...), junk...)
	return expire[:min(len(expire), MaxCleared)]
}

// TakePending returns the pending login whose State equals state, which
// arrived on the callback. Its cookie is expired on w whatever the outcome,
// so each round trip completes at most once (threat model case 52).
func (s *Store) TakePending(w http.ResponseWriter, r *http.Request, state string, now time.Time) (Pending, error) {
	if state == "" {
		return Pending{}, errors.New("session: callback without state")
	}
	name := s.pendingName(state)
	cs := r.CookiesNamed(name)
	if len(cs) == 0 {
		return Pending{}, fmt.Errorf("session: no pending login for this state (cookie %q absent: used already, expired, or started in another browser)", name)
	}
	http.SetCookie(w, s.cookie(name, "", -1))
	if len(cs) > 1 {
		return Pending{}, fmt.Errorf("session: %d cookies named %q; want one", len(cs), name)
	}
	p, err := s.openPending(name, cs[0].Value)
	if err != nil {
		return Pending{}, err
	}
	// The name is derived from state, so a match is expected; the check that
	// counts is this one, in constant time, against the sealed value.
	if p.State == "" || subtle.ConstantTimeCompare([]byte(p.State), []byte(state)) != 1 {
		return Pending{}, fmt.Errorf("session: state does not match the pending login in cookie %q", name)
	}
	if p.expired(now) {
		return Pending{}, fmt.Errorf("session: pending login started at %s expired after %v; now %s",
			p.Created.Format(time.RFC3339), PendingLifetime, now.UTC().Format(time.RFC3339))
	}
	// A step-up continues a session, which must be this deployment's.
	if p.Issuer != "" && p.Issuer != s.issuer {
		return Pending{}, fmt.Errorf("session: pending step-up in cookie %q is for a session of issuer %q; want %q", name, p.Issuer, s.issuer)
	}
	return p, nil
}

// Kind is "step_up" for a round trip started from a session, else "login",
// as audit events and metrics name them.
func (p *Pending) Kind() string {
	if p.Subject != "" {
		return "step_up"
	}
	return "login"
}

func (p *Pending) expired(now time.Time) bool {
	return now.After(p.Created.Add(PendingLifetime))
}

func (s *Store) openPending(name, value string) (Pending, error) {
	sc := getScratch()
	defer sc.free()
	b, err := s.pending.open(sc, name, value)
	if err != nil {
		return Pending{}, err
	}
	p, err := decodePending(b)
	if err != nil {
		return Pending{}, fmt.Errorf("session: cookie %q holds a malformed record: %w", name, err)
	}
	return p, nil
}

// pendingName names the cookie of the flow with this state: the session
// cookie's name (so it shares the "__Host-" prefix), "-p-", and 48 bits of
// SHA-256(state), enough to keep MaxPending parallel flows apart. The name
// reveals nothing usable about state.
func (s *Store) pendingName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return s.name + "-p-" + base64.RawURLEncoding.EncodeToString(sum[:6])
}
