package redistest_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/store/redistest"
)

// ping sends one PING and returns the reply line, or the error.
func ping(addr string, conf *tls.Config) (string, error) {
	d := net.Dialer{Timeout: time.Second}
	var c net.Conn
	var err error
	if conf != nil {
		c, err = tls.DialWithDialer(&d, "tcp", addr, conf)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestServerLifecycle(t *testing.T) {
	s := redistest.Start(t)
	if got, err := ping(s.Addr(), nil); got != "+PONG" {
		t.Fatalf("PING %s = %q, %v; want +PONG", s.Addr(), got, err)
	}
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Errorf("URL() = %q; want %q", s.URL(), want)
	}

	s.Kill()
	if got, err := ping(s.Addr(), nil); err == nil {
		t.Fatalf("PING after Kill = %q; want a refused connection", got)
	}

	s.Restart()
	if got, err := ping(s.Addr(), nil); got != "+PONG" {
		t.Fatalf("PING after Restart = %q, %v; want +PONG on the same address", got, err)
	}

	s.Pause()
	if got, err := ping(s.Addr(), nil); err == nil {
		t.Fatalf("PING while paused = %q; want no answer", got)
	}
	s.Resume()
	if got, err := ping(s.Addr(), nil); got != "+PONG" {
		t.Fatalf("PING after Resume = %q, %v; want +PONG", got, err)
	}
}

func TestServerArgs(t *testing.T) {
	s := redistest.Start(t, "--requirepass", "redistest-secret")
	if got, _ := ping(s.Addr(), nil); !strings.HasPrefix(got, "-NOAUTH") {
		t.Errorf("PING without AUTH = %q; want -NOAUTH (the extra arguments reach redis-server)", got)
	}
}

func TestServerTLS(t *testing.T) {
	s := redistest.StartTLS(t)
	if !strings.HasPrefix(s.URL(), "rediss://") {
		t.Errorf("URL() = %q; want rediss://", s.URL())
	}
	if got, err := ping(s.Addr(), s.TLSConfig()); got != "+PONG" {
		t.Fatalf("PING over TLS = %q, %v; want +PONG", got, err)
	}
	if got, err := ping(s.Addr(), &tls.Config{MinVersion: tls.VersionTLS12}); err == nil {
		t.Errorf("PING over TLS without the test CA = %q; want a certificate error", got)
	}
}
