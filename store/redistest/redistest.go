// Package redistest runs a real redis-server for tests: one process per
// call to Start, on a free loopback port, with no persistence, stopped when
// the test ends. Kill, Pause and Restart let a test take Redis away from a
// client and give it back on the same address, as an operator's failover or
// a network partition would.
//
// Debian's redis-server package provides the binary. When it is missing the
// test is skipped with a message saying so, except under CI=true, where a
// missing part is a failure: CI must never pass by skipping.
package redistest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a start waits for redis-server to answer.
const startTimeout = 10 * time.Second

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string    // everything but the listening port
	tls  *tls.Config // client side, for rediss servers; nil otherwise

	mu     sync.Mutex
	proc   *os.Process // nil while killed
	exited chan error  // receives cmd.Wait's result once the process ends
}

// Start runs redis-server on a free 127.0.0.1 port and waits until it
// answers. Extra redis-server arguments (for example "--requirepass",
// "secret") are passed through. The server stops when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, nil, args)
}

// StartTLS is Start for a server that speaks only TLS, with a certificate
// for 127.0.0.1 issued by a CA made for this test. TLSConfig returns a client
// configuration that trusts that CA, and URL is a rediss:// URL.
func StartTLS(t testing.TB, args ...string) *Server {
	t.Helper()
	dir := t.TempDir()
	pool := writeCerts(t, dir)
	return start(t, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, append([]string{
		"--tls-cert-file", filepath.Join(dir, "server.pem"),
		"--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"),
		"--tls-auth-clients", "no",
	}, args...))
}

func start(t testing.TB, clientTLS *tls.Config, args []string) *Server {
	t.Helper()
	s := &Server{t: t, bin: binary(t), dir: t.TempDir(), tls: clientTLS}
	s.args = append([]string{
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--daemonize", "no",
	}, args...)
	t.Cleanup(s.stop)
	// A free port found by listening can be taken by someone else before
	// redis-server binds it; try a few before giving up.
	var err error
	for range 5 {
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("redistest: no free port: %v", err)
		}
		if err = s.run(); err == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", err)
	return nil
}

// binary finds redis-server or ends the test.
func binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"redis-server", "/usr/bin/redis-server"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("redis-server is not installed; CI must install it (apt-get install -y redis-server)")
	}
	t.Skip("redis-server is not installed (apt-get install -y redis-server); the Redis store tests need it")
	return ""
}

// URL is the server's address as stepgate's session.store takes it:
// redis://127.0.0.1:PORT/0, or rediss:// for a StartTLS server.
func (s *Server) URL() string {
	scheme := "redis"
	if s.tls != nil {
		scheme = "rediss"
	}
	return scheme + "://" + s.Addr() + "/0"
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// TLSConfig is a client configuration trusting a StartTLS server's CA; nil
// for a plain server.
func (s *Server) TLSConfig() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.Clone()
}

// Kill ends redis-server at once (SIGKILL) and waits until it is gone, so
// every client connection is reset and the port refuses new ones. Nothing
// it held survives: there is no persistence.
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatal("redistest: Kill: the server is not running")
	}
	s.killLocked()
}

// Pause stops redis-server (SIGSTOP) without closing anything: connections
// stay open and nothing answers, as in a network partition. Resume undoes it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatalf("redistest: %v: the server is not running", sig)
	}
	if err := s.proc.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
}

// Restart starts a killed server again on the same port, empty, and waits
// until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.run(); err != nil {
		s.t.Fatalf("redistest: Restart: %v", err)
	}
}

// run starts the process and waits for its first PONG.
func (s *Server) run() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return fmt.Errorf("the server is already running")
	}
	port := []string{"--port", strconv.Itoa(s.port)}
	if s.tls != nil {
		port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port)}
	}
	cmd := exec.Command(s.bin, append(port, s.args...)...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %v", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(startTimeout)
	for {
		if s.answers(cmd.Process.Pid) {
			s.proc, s.exited = cmd.Process, exited
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server on port %d exited (%v) before answering PING; log:\n%s", s.port, err, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d did not answer PING within %v; log:\n%s", s.port, startTimeout, s.logTail())
		}
	}
}

// answers reports whether our process answers on the port. A free port
// can be taken by another test's redis-server between freePort and the
// bind, so a bulk INFO reply must carry our process ID; an error reply
// (NOAUTH, when a password is set) proves only that a server is up, and is
// accepted.
func (s *Server) answers(pid int) bool {
	d := net.Dialer{Timeout: 200 * time.Millisecond}
	var c net.Conn
	var err error
	if s.tls != nil {
		c, err = tls.DialWithDialer(&d, "tcp", s.Addr(), s.tls)
	} else {
		c, err = d.Dial("tcp", s.Addr())
	}
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return false
	}
	rd := bufio.NewReader(c)
	line, err := rd.ReadString('\n')
	switch {
	case err != nil:
		return false
	case strings.HasPrefix(line, "-"):
		return true
	case !strings.HasPrefix(line, "$"):
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n <= 0 {
		return false
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rd, body); err != nil {
		return false
	}
	return strings.Contains(string(body), "\nprocess_id:"+strconv.Itoa(pid)+"\r\n")
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.killLocked()
	}
}

// killLocked sends SIGKILL, which ends a paused process too, and waits for
// the exit.
func (s *Server) killLocked() {
	_ = s.proc.Kill()
	<-s.exited
	s.proc, s.exited = nil, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// writeCerts writes a CA and a server certificate for 127.0.0.1 to dir and
// returns a pool trusting the CA.
func writeCerts(t testing.TB, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem": {Type: "CERTIFICATE", Bytes: leafDER},
		"server.key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}
