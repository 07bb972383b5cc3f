package testredis

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a master, one replica and n redis-server --sentinel
// processes monitoring the master under Name.
type Sentinel struct {
	Name      string
	Data      []*Server // the master and the replica, in start order
	Sentinels []*Server
	tls       *TLSFiles
}

// StartSentinel starts a Sentinel setup (n sentinels, quorum n/2+1) and
// stops it when the test ends.
func StartSentinel(tb testing.TB, name string, n int) *Sentinel {
	tb.Helper()
	s, err := StartSentinelServer(name, n)
	if err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartSentinelServer is StartSentinel without a testing.TB; the caller
// must call Stop. It returns once the replica has synced and every
// sentinel knows the master, its replica and the other sentinels.
func StartSentinelServer(name string, n int) (*Sentinel, error) { return startSentinel(name, n, nil) }

// StartSentinelTLS is StartSentinel with every process (sentinels, master,
// replica) speaking only TLS, with files' certificate.
func StartSentinelTLS(tb testing.TB, name string, n int, files *TLSFiles) *Sentinel {
	tb.Helper()
	s, err := startSentinel(name, n, files)
	if err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func startSentinel(name string, n int, files *TLSFiles) (*Sentinel, error) {
	if n < 1 {
		return nil, errors.New("sentinel: need at least one sentinel")
	}
	st := &Sentinel{Name: name, tls: files}
	m, err := startServerTLS(files, "--repl-diskless-sync-delay", "0")
	if err != nil {
		return nil, err
	}
	st.Data = append(st.Data, m)
	r, err := startServerTLS(files, "--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1", strconv.Itoa(m.Port))
	if err != nil {
		st.Stop()
		return nil, err
	}
	st.Data = append(st.Data, r)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		st.Stop()
		return nil, err
	}
	for range n {
		sn, err := startSentinelProc(bin, name, m.Port, n/2+1, files)
		if err != nil {
			st.Stop()
			return nil, err
		}
		st.Sentinels = append(st.Sentinels, sn)
	}
	err = waitFor("sentinel ready", func() (bool, error) {
		if link, _ := infoField(r, "replication", "master_link_status"); link != "up" {
			return false, nil
		}
		for _, sn := range st.Sentinels {
			f, err := sentinelMaster(sn, name)
			if err != nil || f["num-slaves"] != "1" || f["num-other-sentinels"] != strconv.Itoa(n-1) || f["flags"] != "master" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		st.Stop()
		return nil, err
	}
	return st, nil
}

func startSentinelProc(bin, name string, masterPort, quorum int, files *TLSFiles) (*Server, error) {
	for attempt := 1; ; attempt++ {
		s, err := startSentinelOnce(bin, name, masterPort, quorum, files)
		if errors.Is(err, errExitedAtStart) && attempt < launchAttempts {
			continue // its port was taken meanwhile: another
		}
		return s, err
	}
}

func startSentinelOnce(bin, name string, masterPort, quorum int, files *TLSFiles) (*Server, error) {
	dir, err := os.MkdirTemp("", "testsentinel-*")
	if err != nil {
		return nil, fmt.Errorf("create sentinel dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	conf := filepath.Join(dir, "sentinel.conf")
	listen := fmt.Sprintf("port %d", port)
	if files != nil {
		listen = fmt.Sprintf("port 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients no\ntls-replication yes",
			port, files.Cert, files.Key, files.CA)
	}
	body := fmt.Sprintf(`%s
bind 127.0.0.1
protected-mode no
dir %s
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 5000
`, listen, dir, name, masterPort, quorum, name, name)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("write sentinel.conf: %w", err)
	}
	s := &Server{Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, conf: conf}
	if files != nil {
		s.TLS = files.Config
	}
	if err := s.launch(bin); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// sentinelMaster is SENTINEL MASTER name as a map.
func sentinelMaster(sn *Server, name string) (map[string]string, error) {
	v, err := nodeCmd(sn, "SENTINEL", "MASTER", name).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	switch v := v.(type) {
	case []any:
		for i := 0; i+1 < len(v); i += 2 {
			out[fmt.Sprint(v[i])] = fmt.Sprint(v[i+1])
		}
	case map[any]any:
		for k, x := range v {
			out[fmt.Sprint(k)] = fmt.Sprint(x)
		}
	}
	return out, nil
}

// Addrs are the sentinels' addresses.
func (s *Sentinel) Addrs() []string {
	var out []string
	for _, sn := range s.Sentinels {
		out = append(out, sn.Addr)
	}
	return out
}

// URL is the redis+sentinel:// (rediss+ with TLS) URL of the setup
// (database 0).
func (s *Sentinel) URL() string {
	scheme := "redis+sentinel://"
	if s.tls != nil {
		scheme = "rediss+sentinel://"
	}
	return scheme + strings.Join(s.Addrs(), ",") + "?master=" + s.Name
}

// Master is the data node the sentinels currently name as master.
func (s *Sentinel) Master() (*Server, error) {
	f, err := sentinelMaster(s.Sentinels[0], s.Name)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(f["ip"], f["port"])
	for _, d := range s.Data {
		if d.Addr == addr {
			return d, nil
		}
	}
	return nil, fmt.Errorf("sentinel names unknown master %s", addr)
}

// FailoverClient returns a go-redis failover client for the setup, closed
// when the test ends.
func (s *Sentinel) FailoverClient(tb testing.TB) *redis.Client {
	o := &redis.FailoverOptions{MasterName: s.Name, SentinelAddrs: s.Addrs()}
	if s.tls != nil {
		o.TLSConfig = s.tls.Config
	}
	c := redis.NewFailoverClient(o)
	tb.Cleanup(func() { c.Close() })
	return c
}

// Failover forces a failover (SENTINEL FAILOVER) and waits until every
// sentinel names the former replica as master and it says role:master.
// The former master is turned into its replica by the sentinels in the
// background (its resync took ~10 s here, so this does not wait for it).
func (s *Sentinel) Failover() (*Server, error) {
	old, err := s.Master()
	if err != nil {
		return nil, err
	}
	var next *Server
	for _, d := range s.Data {
		if d != old {
			next = d
		}
	}
	// A sentinel refuses (NOGOODSLAVE) until its periodic INFO has seen
	// the replica as healthy (a few hundred ms after setup on a busy
	// machine): ask until it agrees.
	if err := waitFor("sentinel to accept a failover", func() (bool, error) {
		err := nodeCmd(s.Sentinels[0], "SENTINEL", "FAILOVER", s.Name).Err()
		if err != nil && strings.Contains(err.Error(), "NOGOODSLAVE") {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		return nil, fmt.Errorf("sentinel failover: %w", err)
	}
	return next, waitFor("sentinel failover to "+next.Addr, func() (bool, error) {
		for _, sn := range s.Sentinels {
			f, err := sentinelMaster(sn, s.Name)
			if err != nil || net.JoinHostPort(f["ip"], f["port"]) != next.Addr {
				return false, nil
			}
		}
		if role, _ := infoField(next, "replication", "role"); role != "master" {
			return false, nil
		}
		return true, nil
	})
}

// Stop kills every process and removes their directories.
func (s *Sentinel) Stop() {
	var wg sync.WaitGroup
	for _, n := range append(append([]*Server(nil), s.Sentinels...), s.Data...) {
		wg.Add(1)
		go func() { defer wg.Done(); n.Stop() }()
	}
	wg.Wait()
}
