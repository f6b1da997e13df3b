package session_test

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

func TestDecodeRejects(t *testing.T) {
	st := session.State{ID: strings.Repeat("A", 22), Facts: realisticFacts()}
	good, err := session.EncodeState(st, t0)
	if err != nil {
		t.Fatal(err)
	}
	pending := session.EncodePending(session.Pending{State: "s", Nonce: "n", Verifier: "v", Created: t0})
	withID := func(id string) []byte {
		b, err := session.EncodeState(session.State{ID: strings.Repeat("A", 22)}, t0)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{b[0], byte(len(id))}, append([]byte(id), b[2+22:]...)...)
	}
	// good's IdP session ID ("") replaced by one of n bytes.
	withIdPSID := func(n int) []byte {
		b := append([]byte(nil), good[:1+1+22]...)
		b = binary.AppendUvarint(b, uint64(n))
		b = append(b, strings.Repeat("s", n)...)
		return append(b, good[1+1+22+1:]...)
	}
	tag := good[0]
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"unknown version", append([]byte{0x04}, good[1:]...), "format tag 0x4"},
		{"record before IdPSID", append([]byte{0x01}, good[1:]...), "format tag 0x1"},
		{"record before Expires", append([]byte{0x02}, good[1:]...), "format tag 0x2"},
		{"pending record", pending, "format tag 0x81"},
		{"trailing byte", append(good[:len(good):len(good)], 0), "1 trailing bytes"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"string past the end", good[:30], "bytes with"},
		{"short id", withID("short"), "id of 5 bytes"},
		{"long IdP session ID", withIdPSID(256), "IdP session ID of 256 bytes"},
		{"huge length", []byte{tag, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, "bytes with"},
		{"varint overflow", []byte{tag, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "truncated"},
	}
	if _, _, err := session.DecodeState(withIdPSID(255)); err != nil {
		t.Fatalf("DecodeState with a 255-byte IdP session ID: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := session.DecodeState(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DecodeState = %+v, %v; want an error containing %q", got, err, tt.want)
			}
		})
	}
	if got, err := session.DecodePending(good); err == nil {
		t.Errorf("DecodePending(session record) = %+v; want an error", got)
	}
}

func TestDecodeListBound(t *testing.T) {
	good, err := session.EncodeState(session.State{ID: strings.Repeat("A", 22)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	// A count far above the bytes that follow must fail before allocating.
	record := func(counts ...byte) []byte {
		b := []byte{good[0], 22}
		b = append(b, strings.Repeat("A", 22)...)
		b = append(b, 0, 0, 0, 0, 0) // IdP sid, issuer, subject, email, acr
		b = append(b, counts...)
		return append(b, 0, 0, 0, 0) // four times
	}
	for _, tt := range []struct {
		name   string
		counts []byte
		want   string
	}{
		{"65535 amr", []byte{0xff, 0xff, 0x03, 0}, "lists of 65535 and 0 values"},
		{"65535 acrs", []byte{0, 0xff, 0xff, 0x03}, "lists of 0 and 65535 values"},
		{"65 amr", []byte{65, 0}, "lists of 65 and 0 values"},
		{"more values than bytes", []byte{3, 2}, "lists of 3 and 2 values"},
	} {
		if _, _, err := session.DecodeState(record(tt.counts...)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: DecodeState = %v; want an error containing %q", tt.name, err, tt.want)
		}
	}
	// The same record with both counts zero decodes: the bound is what failed.
	if _, _, err := session.DecodeState(record(0, 0)); err != nil {
		t.Errorf("DecodeState with no amr or acrs: %v", err)
	}
}

// The two lists share one backing slice; appending to amr must not
// overwrite acrs.
func TestDecodeListsIndependent(t *testing.T) {
	b, err := session.EncodeState(session.State{ID: strings.Repeat("A", 22), Facts: policy.Facts{AMR: []string{"pwd"}, ACRS: []string{"c1", "c2"}}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := session.DecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(st.Facts.AMR, "x")
	if !reflect.DeepEqual(st.Facts.ACRS, []string{"c1", "c2"}) {
		t.Errorf("after appending to amr, acrs = %q; want [c1 c2]", st.Facts.ACRS)
	}
}

// FuzzDecodeState checks that any bytes decode without panicking, and that a
// decoded record survives encode and decode unchanged.
func FuzzDecodeState(f *testing.F) {
	for _, facts := range []policy.Facts{realisticFacts(), {}} {
		b, err := session.EncodeState(session.State{ID: strings.Repeat("x", 22), Facts: facts}, t0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(session.EncodePending(session.Pending{State: "s", Created: time.Time{}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, issued, err := session.DecodeState(b)
		if err != nil {
			return
		}
		again, err := session.EncodeState(st, issued)
		if err != nil {
			t.Fatalf("EncodeState of a decoded record: %v", err)
		}
		st2, issued2, err := session.DecodeState(again)
		if err != nil {
			t.Fatalf("DecodeState(EncodeState(x)): %v", err)
		}
		if !reflect.DeepEqual(st, st2) || issued != issued2 {
			t.Fatalf("round trip changed the record:\n%+v %v\n%+v %v", st, issued, st2, issued2)
		}
	})
}

func FuzzDecodePending(f *testing.F) {
	f.Add(session.EncodePending(session.Pending{State: "s", Nonce: "n", Verifier: "v", Level: "high", ReturnTo: "/x?y=1", Created: t0}))
	f.Add(session.EncodePending(session.Pending{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := session.DecodePending(b)
		if err != nil {
			return
		}
		p2, err := session.DecodePending(session.EncodePending(p))
		if err != nil || p2 != p {
			t.Fatalf("round trip: %+v, %v; want %+v", p2, err, p)
		}
	})
}
