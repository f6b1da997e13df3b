package devidp

import "testing"

// TestOnlyLoopback: whatever a BackchannelLogoutURI's host resolves to,
// devidp connects to loopback addresses only.
func TestOnlyLoopback(t *testing.T) {
	for _, tc := range []struct {
		address string
		ok      bool
	}{
		{"127.0.0.1:8080", true},
		{"127.9.9.9:80", true},
		{"[::1]:443", true},
		{"10.0.0.1:80", false},
		{"192.168.1.1:80", false},
		{"[2001:db8::1]:443", false},
		{"0.0.0.0:80", false},
		{"localhost:80", false}, // the dialer sees addresses, never names
		{"127.0.0.1", false},    // no port: not an address the dialer makes
	} {
		if err := onlyLoopback("tcp", tc.address, nil); (err == nil) != tc.ok {
			t.Errorf("onlyLoopback(%q) = %v; want allowed %v", tc.address, err, tc.ok)
		}
	}
}
