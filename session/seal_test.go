package session_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/session"
)

// The sealed cookie value, as the package documents it: unpadded base64url
// of a version byte, the 96-bit GCM nonce, and the AES-256-GCM ciphertext
// with its 16-byte tag.
const (
	sealVersion = 0x01
	nonceLen    = 12
	tagLen      = 16
)

// b64 rejects padding and stray trailing bits, as the Store does.
var b64 = base64.RawURLEncoding.Strict()

// rawValue decodes a sealed value into version, nonce and ciphertext bytes.
func rawValue(t *testing.T, v string) []byte {
	t.Helper()
	raw, err := b64.DecodeString(v)
	if err != nil {
		t.Fatalf("sealed value %.12q...: %v; want unpadded base64url", v, err)
	}
	return raw
}

func TestSealedFormat(t *testing.T) {
	s := newStore(t, true, secret(1))
	st := session.State{ID: strings.Repeat("A", 22), Facts: realisticFacts()}
	record, err := session.EncodeState(st, t0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.SealSessionAs(s.CookieName(), st, t0)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawValue(t, v)
	if raw[0] != sealVersion {
		t.Errorf("sealed value starts with %#x; want version %#x", raw[0], sealVersion)
	}
	if want := 1 + nonceLen + len(record) + tagLen; len(raw) != want {
		t.Errorf("sealed value of a %d-byte record is %d bytes; want %d (version, nonce, ciphertext, tag)", len(record), len(raw), want)
	}
	for _, f := range []string{st.ID, st.Facts.Subject, st.Facts.Email} {
		if bytes.Contains(raw, []byte(f)) || strings.Contains(v, f) {
			t.Errorf("sealed value shows %q in the clear", f)
		}
	}
}

// A sealed value opens only with the keys of the deployment and purpose that
// sealed it, and only under the cookie name it was sealed for: the name is
// the additional authenticated data, so a value moved to another cookie,
// even one of the same purpose, fails authentication.
func TestSealedValueOpensOnlyWhereSealed(t *testing.T) {
	home := mustNew(t, deployment(issuer, clientID))
	sealers := []struct {
		name  string
		store *session.Store
	}{
		{"home", home},
		{"other issuer", mustNew(t, deployment("https://staging.login.example.com", clientID))},
		{"other client_id", mustNew(t, deployment(issuer, "other-app"))},
	}
	p := newPending(t, t0)
	names := []string{
		home.CookieName(),
		"stepgate",
		home.PendingName(p.State),
		home.PendingName(newPending(t, t0).State),
	}
	st := session.State{ID: strings.Repeat("A", 22), Facts: realisticFacts()}

	const sess, pend = "session", "pending"
	seal := func(s *session.Store, purpose, name string) string {
		var v string
		var err error
		if purpose == sess {
			v, err = s.SealSessionAs(name, st, t0)
		} else {
			v, err = s.SealPendingAs(name, p)
		}
		if err != nil {
			t.Fatalf("sealing %s as %q: %v", purpose, name, err)
		}
		return v
	}
	open := func(purpose, name, v string) error {
		if purpose == sess {
			_, err := home.OpenSessionAs(name, v)
			return err
		}
		_, err := home.OpenPendingAs(name, v)
		return err
	}
	for _, sealer := range sealers {
		for _, sealPurpose := range []string{sess, pend} {
			for _, sealName := range names {
				v := seal(sealer.store, sealPurpose, sealName)
				for _, openPurpose := range []string{sess, pend} {
					for _, openName := range names {
						err := open(openPurpose, openName, v)
						want := sealer.store == home && sealPurpose == openPurpose && sealName == openName
						switch {
						case want && err != nil:
							t.Errorf("%s %s sealed as %q, opened as %s %q: %v; want it to open",
								sealer.name, sealPurpose, sealName, openPurpose, openName, err)
						case !want && (err == nil || !strings.Contains(err.Error(), "failed authentication")):
							t.Errorf("%s %s sealed as %q, opened as %s %q: %v; want failed authentication",
								sealer.name, sealPurpose, sealName, openPurpose, openName, err)
						}
					}
				}
			}
		}
	}
}

func TestSealNonceUnique(t *testing.T) {
	s := newStore(t, true, secret(1))
	st := session.State{ID: strings.Repeat("A", 22), Facts: realisticFacts()}
	values := map[string]bool{}
	nonces := map[string]bool{}
	for range 100 {
		v, err := s.SealSessionAs(s.CookieName(), st, t0)
		if err != nil {
			t.Fatal(err)
		}
		raw := rawValue(t, v)
		nonce := string(raw[1 : 1+nonceLen])
		if values[v] || nonces[nonce] {
			t.Fatalf("two seals of the same record share a value or nonce (nonce %x)", nonce)
		}
		values[v], nonces[nonce] = true, true
	}
}

// Every single-bit change anywhere in a sealed value (version, nonce,
// ciphertext or tag), every truncation and any extra byte fails to open.
func TestEveryBitFlipFails(t *testing.T) {
	s := newStore(t, true, secret(1))
	c, _ := save(t, s, realisticFacts(), t0)
	raw := rawValue(t, c.Value)
	load := func(b []byte, what string, args ...any) {
		t.Helper()
		st, err := s.Load(request(&http.Cookie{Name: c.Name, Value: b64.EncodeToString(b)}), t0)
		if err == nil || !strings.Contains(err.Error(), "failed authentication") {
			t.Fatalf("%s: Load = session of %q, %v; want failed authentication", fmt.Sprintf(what, args...), st.Facts.Subject, err)
		}
	}
	b := bytes.Clone(raw)
	for i := range b {
		for bit := range 8 {
			b[i] ^= 1 << bit
			load(b, "bit %d of byte %d of %d flipped", bit, i, len(b))
			b[i] ^= 1 << bit
		}
	}
	for n := range len(raw) {
		load(raw[:n], "truncated to %d of %d bytes", n, len(raw))
	}
	load(append(bytes.Clone(raw), 0), "one byte appended")
	if _, err := s.Load(request(c), t0); err != nil {
		t.Fatalf("the untouched cookie does not open: %v", err)
	}
}

// maxLoadAllocs is what opening a session may cost in allocations: the
// request's cookie list and cookie, one string backing every string field,
// one slice backing amr and acrs, and some slack.
const maxLoadAllocs = 6

func TestLoadAllocs(t *testing.T) {
	one := newStore(t, true, secret(1))
	rotated := newStore(t, true, secret(2), secret(1))
	c, _ := save(t, one, realisticFacts(), t0)
	for _, tt := range []struct {
		name string
		s    *session.Store
	}{
		{"one secret", one},
		{"sealed with the older of two secrets", rotated},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := request(c, &http.Cookie{Name: "_ga", Value: "GA1.2.1234567890.1234567890"})
			var err error
			allocs := testing.AllocsPerRun(200, func() { _, err = tt.s.Load(r, t0) })
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if allocs > maxLoadAllocs {
				t.Errorf("Load makes %v allocations; want at most %d", allocs, maxLoadAllocs)
			}
		})
	}
}
