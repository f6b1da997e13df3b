package session

import (
	"errors"
	"time"
)

// Hooks for package session_test: the record codec and sealing under any
// cookie name, to build cookies no honest Store would issue.

func EncodeState(st State, issued time.Time) ([]byte, error) { return appendState(nil, st, issued) }

var DecodeState = decodeState

func EncodePending(p Pending) []byte { return appendPending(nil, p) }

var DecodePending = decodePending

func (s *Store) PendingName(state string) string { return s.pendingName(state) }

// SealSessionAs seals a session record for st with the session keys under name.
func (s *Store) SealSessionAs(name string, st State, issued time.Time) (string, error) {
	b, err := appendState(nil, st, issued)
	if err != nil {
		return "", err
	}
	sc := getScratch()
	defer sc.free()
	return s.session.seal(sc, name, b)
}

// SealPendingAs seals p with the pending keys under name.
func (s *Store) SealPendingAs(name string, p Pending) (string, error) {
	sc := getScratch()
	defer sc.free()
	return s.pending.seal(sc, name, appendPending(nil, p))
}

// OpenSessionAs opens value with the session keys as a cookie called name and
// decodes its record, without the issuer and lifetime checks of Load.
func (s *Store) OpenSessionAs(name, value string) (State, error) {
	sc := getScratch()
	defer sc.free()
	b, err := s.session.open(sc, name, value)
	if err != nil {
		return State{}, err
	}
	st, _, err := decodeState(b)
	return st, err
}

// OpenPendingAs opens value with the pending keys as a cookie called name.
func (s *Store) OpenPendingAs(name, value string) (Pending, error) { return s.openPending(name, value) }

var CookieValue = cookieValue

// DecodeValue runs the checks and decoding a cookie value passes before any
// key is tried.
func DecodeValue(value string) error {
	if len(value) > maxCookieLen {
		return errors.New("too long")
	}
	sc := getScratch()
	defer sc.free()
	_, err := decode(sc, value)
	return err
}
