// Package testredis runs real redis-server processes for tests, on
// loopback ports, until the test ends.
package testredis

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// Start runs a plain redis-server for the test and returns its address.
func Start(t testing.TB) string {
	t.Helper()
	return Run(t, func(port int) []string { return []string{"--port", fmt.Sprint(port)} })
}

// Run runs redis-server with the arguments that args gives for a port
// until the test ends, and returns its address once it accepts connections
// (it says so once every listener is bound). redis-server cannot take over
// a socket that the test holds, so a port that another process took between
// picking and binding is retried with another.
func Run(t testing.TB, args func(port int) []string) string {
	t.Helper()
	return run(t, args).Addr
}

// Server is a redis-server that a test can stop and start again on the
// same address, as in an outage.
type Server struct {
	Addr string

	t    testing.TB
	port int
	// argv is redis-server's command line for a port and a directory of
	// the server's own; ready is the line that it prints once it accepts
	// connections.
	argv     func(port int, dir string) []string
	ready    string
	tls      *tls.Config // for the test's own commands, if it speaks TLS only
	password string      // for the test's own commands, if it asks for one
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
}

// StartServer runs a plain redis-server for the test, which it can stop
// and start again.
func StartServer(t testing.TB) *Server {
	t.Helper()
	return run(t, func(port int) []string { return []string{"--port", fmt.Sprint(port)} })
}

func run(t testing.TB, args func(port int) []string) *Server {
	t.Helper()
	return runServer(t, "Ready to accept connections", nil, "", func(port int, dir string) []string {
		return append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}, args(port)...)
	})
}

// runServer runs redis-server with the command line that argv gives, on a
// port that it picks, until the test ends; the test's own commands use
// TLS with tlsConf if it is not nil, and password if it is not empty.
func runServer(t testing.TB, ready string, tlsConf *tls.Config, password string, argv func(port int, dir string) []string) *Server {
	t.Helper()
	for try := 0; try < 5; try++ {
		s := &Server{t: t, port: caddytest.PortToTry(t), argv: argv, ready: ready, tls: tlsConf, password: password}
		if s.launch() {
			s.Addr = fmt.Sprintf("127.0.0.1:%d", s.port)
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatal("redis-server found every port it tried in use")
	return nil
}

// launch starts redis-server on the server's port and waits until it is
// ready. It returns false if the port is in use, and fails the test on
// any other error.
func (s *Server) launch() bool {
	s.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatalf("redis-server is needed for the Redis tests (apt-get install redis-server; .ci/run does): %v", err)
	}
	cmd := exec.Command(bin, s.argv(s.port, s.t.TempDir())...)
	out := newLineWatch(s.ready)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case <-out.seen:
		s.mu.Lock()
		s.cmd, s.exited = cmd, exited
		s.mu.Unlock()
		return true
	case <-exited:
		if strings.Contains(out.String(), "Address already in use") {
			return false
		}
		s.t.Fatalf("redis-server exited:\n%s", out.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		s.t.Fatalf("redis-server did not get ready:\n%s", out.String())
	}
	return false
}

// Stop kills the server, as a crash would, and waits until it is gone.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Pause stops the server's process (SIGSTOP) until Resume: it neither
// answers nor reads what reaches it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server go on (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		s.t.Fatalf("redis-server %s is not running", s.Addr)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redis-server %s: %v", s.Addr, err)
	}
}

// Restart starts a stopped server again on its address, empty. It fails
// the test if another process took the port meanwhile.
func (s *Server) Restart() {
	s.t.Helper()
	if !s.launch() {
		s.t.Fatalf("redis-server: %s was taken while it was stopped", s.Addr)
	}
}

// lineWatch collects a process's output and closes seen once it holds the
// text it watches for.
type lineWatch struct {
	mu    sync.Mutex
	out   strings.Builder
	want  string
	seen  chan struct{}
	found bool
}

func newLineWatch(want string) *lineWatch { return &lineWatch{want: want, seen: make(chan struct{})} }

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.Write(p)
	if !w.found && strings.Contains(w.out.String(), w.want) {
		w.found = true
		close(w.seen)
	}
	return len(p), nil
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

// Command sends an inline command to the plain Redis at addr and returns
// the first line of the answer.
func Command(t testing.TB, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("redis %s: %v", cmd, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatalf("redis %s: %v", cmd, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("redis %s: %v", cmd, err)
	}
	return strings.TrimSpace(line)
}

// Query sends an inline command to the server, over TLS if it speaks TLS
// only, and returns its answer flattened: the strings, numbers and errors
// in it, in order, nested arrays spread out.
func (s *Server) Query(cmd string) ([]string, error) {
	d := &net.Dialer{Timeout: time.Second}
	var c net.Conn
	var err error
	if s.tls != nil {
		c, err = tls.DialWithDialer(d, "tcp", s.Addr, s.tls)
	} else {
		c, err = d.Dial("tcp", s.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("redis %s: %s: %w", s.Addr, cmd, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if s.password != "" {
		var ok []string
		if _, err := c.Write([]byte("AUTH " + s.password + "\r\n")); err != nil {
			return nil, fmt.Errorf("redis %s: AUTH: %w", s.Addr, err)
		}
		if err := readReply(r, &ok); err != nil || len(ok) != 1 || ok[0] != "+OK" {
			return nil, fmt.Errorf("redis %s: AUTH: %q %v", s.Addr, ok, err)
		}
	}
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return nil, fmt.Errorf("redis %s: %s: %w", s.Addr, cmd, err)
	}
	var out []string
	if err := readReply(r, &out); err != nil {
		return nil, fmt.Errorf("redis %s: %s: %w", s.Addr, cmd, err)
	}
	return out, nil
}

// readReply reads one reply of the Redis protocol (RESP2) into out.
func readReply(r *bufio.Reader, out *[]string) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return errors.New("empty reply")
	}
	switch line[0] {
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return fmt.Errorf("reply %q", line)
		}
		for i := 0; i < n; i++ {
			if err := readReply(r, out); err != nil {
				return err
			}
		}
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return fmt.Errorf("reply %q", line)
		}
		if n < 0 {
			*out = append(*out, "")
			return nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		*out = append(*out, string(b[:n]))
	default: // +simple, -error, :number
		*out = append(*out, line)
	}
	return nil
}
