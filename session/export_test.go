package session

import "time"

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
	return seal(s.session[0], name, b)
}

// SealPendingAs seals p with the pending keys under name.
func (s *Store) SealPendingAs(name string, p Pending) (string, error) {
	return seal(s.pending[0], name, appendPending(nil, p))
}
