// Package testredis starts a real, throwaway redis-server for tests.
//
// Tests in this repository talk to a real Redis rather than an in-memory
// fake, because the atomicity guarantees we rely on (Lua scripts, WATCH,
// server-side expiry) are exactly what a fake would get wrong.
package testredis

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server bound to a free loopback port.
type Server struct {
	Addr string
	Port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	dir  string
	args []string // extra redis-server arguments (cluster, replica), kept for Restart
	conf string   // a sentinel's config file: launched as `redis-server conf --sentinel`
	// TLS, when set, is the client config for a server that speaks only
	// TLS (StartTLSServer, and clusters and sentinels started with TLS).
	TLS  *tls.Config
	done chan struct{}
}

// Start launches redis-server on a free loopback port and stops it when the
// test ends. The test fails (it is not skipped) when redis-server is missing:
// `make test` installs it, and a silently skipped store test hides bugs.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := StartServer()
	if err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartServer is Start for callers without a testing.TB (TestMain, benchmarks
// driven from main). The caller must call Stop.
func StartServer() (*Server, error) { return startServer() }

// StartTLS is Start for a server that speaks only TLS, with certificates
// from files (see NewTLSFiles).
func StartTLS(tb testing.TB, files *TLSFiles) *Server {
	tb.Helper()
	s, err := startServerTLS(files)
	if err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// startServer starts redis-server with extra arguments after the defaults.
func startServer(args ...string) (*Server, error) { return startServerTLS(nil, args...) }

// startServerTLS is startServer, serving TLS only when files is set.
func startServerTLS(files *TLSFiles, args ...string) (*Server, error) {
	return startServerArgs(files, func() ([]string, error) { return args, nil })
}

// launchAttempts bounds how often a server is started again on another
// port when it exits at start: the free port freePort found may be taken
// by another test process before redis-server binds it.
const launchAttempts = 5

// startServerArgs starts redis-server with the extra arguments extra
// builds (again for each attempt, so ports it picks are fresh too).
func startServerArgs(files *TLSFiles, extra func() ([]string, error)) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found in PATH (run `make test`, which installs it): %w", err)
	}
	for attempt := 1; ; attempt++ {
		s, err := startOnce(bin, files, extra)
		if errors.Is(err, errExitedAtStart) && attempt < launchAttempts {
			continue
		}
		return s, err
	}
}

func startOnce(bin string, files *TLSFiles, extra func() ([]string, error)) (*Server, error) {
	args, err := extra()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testredis-*")
	if err != nil {
		return nil, fmt.Errorf("create redis dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, args: args}
	if files != nil {
		s.TLS = files.Config
		s.args = append(files.serverArgs(port), args...)
	}
	if err := s.launch(bin); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// errExitedAtStart: redis-server stopped before it answered (most often
// its port was taken meanwhile).
var errExitedAtStart = errors.New("redis-server exited at start")

func (s *Server) launch(bin string) error {
	args := []string{s.conf, "--sentinel"}
	if s.conf == "" {
		args = append([]string{
			"--port", strconv.Itoa(s.Port), // overridden by TLS args
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", s.dir,
			"--protected-mode", "no",
		}, s.args...)
	}
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("redis-server stdout: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		// Drain output so redis-server never blocks on a full pipe.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
		}
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, TLSConfig: s.TLS})
		err := c.Ping(context.Background()).Err()
		c.Close()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%w (port %d)", errExitedAtStart, s.Port)
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.kill()
	return fmt.Errorf("redis-server on %s did not answer within 10s", s.Addr)
}

// URL is the redis:// (rediss:// with TLS) URL for database db.
func (s *Server) URL(db int) string {
	if s.TLS != nil {
		return fmt.Sprintf("rediss://%s/%d", s.Addr, db)
	}
	return fmt.Sprintf("redis://%s/%d", s.Addr, db)
}

// Client returns a new client for database 0, closed when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, TLSConfig: s.TLS})
	tb.Cleanup(func() { c.Close() })
	return c
}

// Kill stops the server abruptly, simulating an outage. Restart brings it
// back on the same port (empty, since persistence is off).
func (s *Server) Kill() { s.kill() }

func (s *Server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port after Kill.
func (s *Server) Restart() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return err
	}
	return s.launch(bin)
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	s.kill()
	os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
