package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/stepgate/stepgate/policy"
)

// The plaintext inside a sealed cookie is a compact binary record rather than
// gob or JSON: the session is opened on every proxied request, and a fixed
// field order with length-prefixed strings decodes with two allocations, one
// string that every string field is a substring of, and one slice that backs
// both lists (their counts come first, so its length is known up front).
//
//	record  = tag field*           (no trailing bytes)
//	string  = uvarint(len) bytes
//	lists   = uvarint(count1) uvarint(count2) string{count1} string{count2}
//	time    = varint(unix seconds); the zero time.Time as its own Unix value
//
// The first byte tags both the kind and the version, and tags are unique
// across kinds, so a pending record never decodes as a session even if the
// keys were shared. Tags 0x01 (before IdPSID) and 0x02 (before Expires) were
// earlier session records; they no longer decode.
const (
	tagState3   = 0x03 // ID IdPSID Issuer Subject Email ACR lists(AMR, ACRS) AuthTime VerifiedAt Issued Expires
	tagPending1 = 0x81 // State Nonce Verifier Level ReturnTo Issuer Subject Created
)

// maxList bounds AMR and ACRS. Real IdPs send a handful of values; a bound
// keeps a corrupt count from allocating a large slice before the bytes run out.
const maxList = 64

// idLen is the length of State.ID: 16 random bytes, base64url unpadded.
const idLen = 22

// maxIdPSID bounds State.IdPSID. The sid claim has no length limit in the
// specifications; real IdPs send a UUID or a few dozen characters.
const maxIdPSID = 255

// zeroUnix is what time.Time{}.Unix() returns. Storing it as is lets "no
// auth_time" survive the round trip without a separate flag.
var zeroUnix = time.Time{}.Unix()

// appendState appends the record of st, sealed at issued, with st.Expires:
// the end the session was given when it was saved. Load never extends it
// (raising session.lifetime must not revive a session a revocation has
// already forgotten), and shortens it to issued + the configured Lifetime.
func appendState(b []byte, st State, issued time.Time) ([]byte, error) {
	if len(st.ID) != idLen {
		return nil, fmt.Errorf("session: id of %d bytes; want %d", len(st.ID), idLen)
	}
	f := &st.Facts
	if len(st.IdPSID) > maxIdPSID {
		return nil, fmt.Errorf("session: IdP session ID of %d bytes; want at most %d", len(st.IdPSID), maxIdPSID)
	}
	if len(f.AMR) > maxList || len(f.ACRS) > maxList {
		return nil, fmt.Errorf("session: %d amr and %d acrs values; want at most %d each",
			len(f.AMR), len(f.ACRS), maxList)
	}
	b = append(b, tagState3)
	b = appendString(b, st.ID)
	b = appendString(b, st.IdPSID)
	b = appendString(b, f.Issuer)
	b = appendString(b, f.Subject)
	b = appendString(b, f.Email)
	b = appendString(b, f.ACR)
	b = appendLists(b, f.AMR, f.ACRS)
	b = appendTime(b, f.AuthTime)
	b = appendTime(b, f.VerifiedAt)
	b = appendTime(b, issued)
	b = appendTime(b, st.Expires)
	return b, nil
}

// decodeState decodes a session record; Expires is the one it was saved with.
func decodeState(b []byte) (st State, issued time.Time, err error) {
	r := newReader(b, tagState3)
	st.ID = r.str()
	st.IdPSID = r.str()
	st.Facts = policy.Facts{
		Issuer:  r.str(),
		Subject: r.str(),
		Email:   r.str(),
		ACR:     r.str(),
	}
	st.Facts.AMR, st.Facts.ACRS = r.lists()
	st.Facts.AuthTime = r.time()
	st.Facts.VerifiedAt = r.time()
	issued = r.time()
	st.Expires = r.time()
	if err := r.done(); err != nil {
		return State{}, time.Time{}, err
	}
	if len(st.ID) != idLen {
		return State{}, time.Time{}, fmt.Errorf("id of %d bytes; want %d", len(st.ID), idLen)
	}
	if len(st.IdPSID) > maxIdPSID {
		return State{}, time.Time{}, fmt.Errorf("IdP session ID of %d bytes; want at most %d", len(st.IdPSID), maxIdPSID)
	}
	return st, issued, nil
}

func appendPending(b []byte, p Pending) []byte {
	b = append(b, tagPending1)
	b = appendString(b, p.State)
	b = appendString(b, p.Nonce)
	b = appendString(b, p.Verifier)
	b = appendString(b, p.Level)
	b = appendString(b, p.ReturnTo)
	b = appendString(b, p.Issuer)
	b = appendString(b, p.Subject)
	return appendTime(b, p.Created)
}

func decodePending(b []byte) (Pending, error) {
	r := newReader(b, tagPending1)
	p := Pending{
		State:    r.str(),
		Nonce:    r.str(),
		Verifier: r.str(),
		Level:    r.str(),
		ReturnTo: r.str(),
		Issuer:   r.str(),
		Subject:  r.str(),
	}
	p.Created = r.time()
	if err := r.done(); err != nil {
		return Pending{}, err
	}
	return p, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendLists(b []byte, l1, l2 []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l1)))
	b = binary.AppendUvarint(b, uint64(len(l2)))
	for _, s := range l1 {
		b = appendString(b, s)
	}
	for _, s := range l2 {
		b = appendString(b, s)
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendVarint(b, t.Unix())
}

// unixTime is t as the encoding keeps it: whole seconds, UTC, no monotonic
// reading. The zero time stays zero.
func unixTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(t.Unix(), 0).UTC()
}

var errTruncated = errors.New("truncated")

// reader decodes a record. The first error sticks and every later read
// returns a zero value, so decoders read all fields and check once. Its
// errors carry no prefix: callers say which cookie held the record.
type reader struct {
	b   []byte
	s   string // string(b), made once; every decoded string is a substring of it
	off int
	err error
}

func newReader(b []byte, tag byte) reader {
	r := reader{b: b}
	switch {
	case len(b) == 0:
		r.err = errors.New("empty record")
	case b[0] != tag:
		r.err = fmt.Errorf("format tag %#x; want %#x", b[0], tag)
	default:
		r.s = string(b)
		r.off = 1
	}
	return r
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail(errTruncated)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail(fmt.Errorf("string of %d bytes with %d left", n, len(r.b)-r.off))
		return ""
	}
	s := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// lists reads two lists into one backing slice. An empty list is nil.
func (r *reader) lists() (l1, l2 []string) {
	n1, n2 := r.uvarint(), r.uvarint()
	if r.err != nil {
		return nil, nil
	}
	// Checked before allocating: each element takes at least its one-byte
	// length, so a corrupt count fails here, not after a large make.
	if left := uint64(len(r.b) - r.off); n1 > maxList || n2 > maxList || n1+n2 > left {
		r.fail(fmt.Errorf("lists of %d and %d values; want at most %d each, and %d in all", n1, n2, maxList, min(2*maxList, left)))
		return nil, nil
	}
	if n1+n2 == 0 {
		return nil, nil
	}
	l := make([]string, n1+n2)
	for i := range l {
		l[i] = r.str()
	}
	// Full slice expressions: appending to the first list must not
	// overwrite the second.
	l1, l2 = l[:n1:n1], l[n1:]
	if n1 == 0 {
		l1 = nil
	}
	if n2 == 0 {
		l2 = nil
	}
	return l1, l2
}

func (r *reader) time() time.Time {
	if r.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail(errTruncated)
		return time.Time{}
	}
	r.off += n
	if v == zeroUnix {
		return time.Time{}
	}
	return time.Unix(v, 0).UTC()
}

func (r *reader) fail(err error) {
	r.err = fmt.Errorf("at byte %d: %w", r.off, err)
}

func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b)-r.off)
	}
	return r.err
}
