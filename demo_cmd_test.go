//go:build !nodemo

package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects a command's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDemoCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	codec := make(chan int, 1)
	go func() {
		codec <- run(ctx, []string{"demo", "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0", "-idp-listen", "127.0.0.1:0", "-app-listen", "127.0.0.1:0"}, &out, &errb)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl-C") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"DEVELOPMENT provider", "alice", "bob", "Open  http://127.0.0.1:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	cancel()
	select {
	case code := <-codec:
		if code != 0 {
			t.Errorf("demo exited %d after ctx cancel; want 0; stderr:\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop within 10s of ctx cancel")
	}

	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"demo", "-listen", "0.0.0.0:0"}, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "loopback") {
		t.Errorf("demo on 0.0.0.0: exit %d, %q; want 1 and a loopback refusal", code, stderr.String())
	}
	if code := run(context.Background(), []string{"demo", "extra"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("demo with an argument: exit %d; want 2", code)
	}
}
