package demo

import (
	"strings"
	"testing"
)

// The demo's provider signs anyone in with published passwords, so nothing
// of it may listen beyond the loopback interface.
func TestDemoRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8080", ":8080", "192.168.1.1:80", "example.com:80", "nohost"} {
		opt := DefaultOptions()
		opt.Listen = addr
		if _, err := Start(t.Context(), opt); err == nil || !strings.Contains(err.Error(), "loopback") && !strings.Contains(err.Error(), "host:port") {
			t.Errorf("listen %q: err %v; want a loopback refusal", addr, err)
		}
	}
}
