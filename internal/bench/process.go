package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Processes the bench starts and measures: Caddy, its CPU and memory.

// selfCPU is this process's CPU time (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procCPU is the CPU time (user + system, all threads) of process pid.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("proc stat: short")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("proc stat: bad utime/stime")
	}
	return time.Duration(ut+st) * clockTick, nil
}

// procRSS is the current resident set of process pid in KiB.
func procRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// ---------------------------------------------------------------------------
// Caddy.

type caddy struct {
	cmd  *exec.Cmd
	addr string
	log  string
	done chan struct{}
	err  error
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startCaddy runs the built Caddy on the demo Caddyfile with a fresh data
// directory; redisURL empty selects the embedded store.
func (b *bench) startCaddy(name, redisURL string) (*caddy, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.tmp, name)
	for _, d := range []string{"data", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	c := &caddy{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), log: filepath.Join(dir, "caddy.log"), done: make(chan struct{})}
	logf, err := os.Create(c.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "REGISTER_") || k == "XDG_DATA_HOME" || k == "XDG_CONFIG_HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"REGISTER_ADDR="+c.addr,
		"REGISTER_CADDY_ADMIN=off",
		"REGISTER_RATE_LIMIT=off",
		// Figures without the access log, as Caddy's default (and the
		// figures before the demo had one).
		"REGISTER_ACCESS_LOG=discard",
		// Figures without the demo's webhook to itself, as before it
		// existed: it keeps only password.reset, which the bench never
		// does.
		"REGISTER_WEBHOOK_EVENTS=password.reset",
		// An admin, to activate the user whose session GET /account/me
		// uses (benchAdminHash is benchAdminPassword's).
		"REGISTER_ADMIN_USER=bench",
		"REGISTER_ADMIN_HASH="+benchAdminHash,
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)
	if redisURL != "" {
		env = append(env, "REGISTER_REDIS="+redisURL)
	}
	c.cmd = exec.Command(b.caddyBin, "run", "--config", filepath.Join(b.root, "Caddyfile"), "--adapter", "caddyfile")
	c.cmd.Dir = dir
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()

	// Ready when the demo's `respond` answers (404) on the site address.
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return nil, fmt.Errorf("caddy exited at start (%v); log:\n%s", c.err, tail(c.log, 20))
		default:
		}
		resp, err := client.Get("http://" + c.addr + "/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				b.logf("caddy (%s store) pid %d on %s", name, c.cmd.Process.Pid, c.addr)
				return c, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.stop()
	return nil, fmt.Errorf("caddy did not answer on %s within 60s; log:\n%s", c.addr, tail(c.log, 20))
}

func (c *caddy) pid() int { return c.cmd.Process.Pid }

func (c *caddy) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
