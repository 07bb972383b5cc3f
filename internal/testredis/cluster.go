package testredis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterNodeTimeout is the cluster-node-timeout of StartCluster's nodes:
// short, so that a killed master's replica is promoted within a few seconds
// (a failover takes about twice this), long enough that a loaded two-core
// machine does not see false failures.
const ClusterNodeTimeout = 1500 * time.Millisecond

// clusterWait bounds each wait for the cluster to settle (join, failover,
// reshard). It is a safety net for a broken setup, not a timed assertion:
// every wait polls for the state it needs and returns as soon as it holds.
const clusterWait = 60 * time.Second

// Cluster is a real Redis Cluster on loopback: three masters with one
// replica each, six redis-server processes joined with
// `redis-cli --cluster create`.
type Cluster struct {
	// Nodes are the six servers in start order; roles are the cluster's
	// business (see Masters, Replicas), and change on failover.
	Nodes []*Server

	tls    *TLSFiles // nil: plain TCP
	mu     sync.Mutex
	killed map[*Server]bool
}

// StartCluster starts a cluster and stops it when the test ends. Six
// processes are not cheap on a small machine: start one per test binary
// (StartClusterServer in TestMain or behind a sync.Once) unless the test
// kills or reshards nodes.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := StartClusterServer()
	if err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// StartClusterServer is StartCluster for callers without a testing.TB.
// The caller must call Stop. It returns once every node reports
// cluster_state:ok with all 16384 slots covered and every replica has
// finished its initial sync.
func StartClusterServer() (*Cluster, error) { return startCluster(nil) }

// StartClusterTLS is StartCluster with every node speaking only TLS, to
// clients, to its replicas and on the cluster bus, with files' certificate.
func StartClusterTLS(tb testing.TB, files *TLSFiles) *Cluster {
	tb.Helper()
	c, err := startCluster(files)
	if err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	tb.Cleanup(c.Stop)
	return c
}

func startCluster(files *TLSFiles) (*Cluster, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli not found in PATH (run `make test`, which installs it): %w", err)
	}
	c := &Cluster{Nodes: make([]*Server, 6), killed: map[*Server]bool{}, tls: files}
	errs := make([]error, 6)
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The bus port is chosen, not derived (port+10000 may be
			// above 65535 or taken), afresh for each attempt.
			c.Nodes[i], errs[i] = startServerArgs(files, func() ([]string, error) {
				bus, err := freePort()
				if err != nil {
					return nil, err
				}
				args := []string{
					"--cluster-enabled", "yes",
					"--cluster-config-file", "nodes.conf",
					"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout / time.Millisecond)),
					"--cluster-port", strconv.Itoa(bus),
					// A replica's first sync (and a resync after failover)
					// starts at once instead of after the default 5 s
					// batching delay: most of a cold start otherwise.
					"--repl-diskless-sync-delay", "0",
				}
				if files != nil {
					args = append(args, "--tls-cluster", "yes")
				}
				return args, nil
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}
	args := append(c.cliTLS(), "--cluster", "create")
	for _, n := range c.Nodes {
		args = append(args, n.Addr)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	if err := c.waitHealthy(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Seeds are the addresses of the live nodes, for a client's seed list.
func (c *Cluster) Seeds() []string {
	var out []string
	for _, n := range c.live() {
		out = append(out, n.Addr)
	}
	return out
}

// ClusterClient returns a cluster client seeded with every live node,
// closed when the test ends.
func (c *Cluster) ClusterClient(tb testing.TB) *redis.ClusterClient {
	cc := c.NewClusterClient()
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// NewClusterClient returns a cluster client seeded with every live node;
// the caller closes it.
func (c *Cluster) NewClusterClient() *redis.ClusterClient {
	o := &redis.ClusterOptions{Addrs: c.Seeds()}
	if c.tls != nil {
		o.TLSConfig = c.tls.Config
	}
	return redis.NewClusterClient(o)
}

// cliTLS are redis-cli's options to reach the nodes.
func (c *Cluster) cliTLS() []string {
	if c.tls == nil {
		return nil
	}
	return []string{"--tls", "--cacert", c.tls.CA}
}

// Node is one line of CLUSTER NODES.
type Node struct {
	ID     string
	Addr   string // host:port
	Master bool
	// MasterID is the master a replica follows ("" for a master).
	MasterID string
	Failed   bool
	// Slots counts the hash slots a master serves.
	Slots int
	// Server is the process, nil if the node is not one of Nodes.
	Server *Server
}

// Topology reads CLUSTER NODES from a live node.
func (c *Cluster) Topology() ([]Node, error) {
	live := c.live()
	if len(live) == 0 {
		return nil, errors.New("no live node")
	}
	var lastErr error
	for _, n := range live {
		nodes, err := c.nodesOf(n)
		if err != nil {
			lastErr = err
			continue
		}
		return nodes, nil
	}
	return nil, fmt.Errorf("cluster nodes: %w", lastErr)
}

// nodesOf is CLUSTER NODES as node n sees it.
func (c *Cluster) nodesOf(n *Server) ([]Node, error) {
	byAddr := map[string]*Server{}
	for _, n := range c.Nodes {
		byAddr[n.Addr] = n
	}
	txt, err := nodeCmd(n, "CLUSTER", "NODES").Text()
	if err != nil {
		return nil, err
	}
	var out []Node
	for _, line := range strings.Split(strings.TrimSpace(txt), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		nd := Node{ID: f[0], Addr: strings.SplitN(f[1], "@", 2)[0]}
		for _, fl := range strings.Split(f[2], ",") {
			switch fl {
			case "master":
				nd.Master = true
			case "fail", "fail?":
				nd.Failed = true
			}
		}
		if f[3] != "-" {
			nd.MasterID = f[3]
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, ok := strings.Cut(r, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if ok {
				b, _ = strconv.Atoi(hi)
			}
			nd.Slots += b - a + 1
		}
		nd.Server = byAddr[nd.Addr]
		out = append(out, nd)
	}
	return out, nil
}

// Masters are the healthy masters serving slots, ordered by port so that
// an index names the same master across calls while roles hold.
func (c *Cluster) Masters() []Node { return c.role(true) }

// Replicas are the healthy replicas, ordered by port.
func (c *Cluster) Replicas() []Node { return c.role(false) }

func (c *Cluster) role(master bool) []Node {
	nodes, err := c.Topology()
	if err != nil {
		return nil
	}
	var out []Node
	for _, n := range nodes {
		if n.Failed || n.Server == nil || c.isKilled(n.Server) {
			continue
		}
		if n.Master == master && (!master || n.Slots > 0) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return a.Server.Port - b.Server.Port })
	return out
}

// KillMaster kills the i-th of Masters() abruptly and waits until its
// replica has been promoted and the cluster is healthy again. It returns
// the promoted node. The killed process stays down.
func (c *Cluster) KillMaster(i int) (Node, error) {
	ms := c.Masters()
	if i < 0 || i >= len(ms) {
		return Node{}, fmt.Errorf("no master %d (have %d)", i, len(ms))
	}
	m := ms[i]
	var rep *Node
	for _, r := range c.Replicas() {
		if r.MasterID == m.ID {
			rep = &r
			break
		}
	}
	if rep == nil {
		return Node{}, fmt.Errorf("master %s has no healthy replica", m.Addr)
	}
	c.mu.Lock()
	c.killed[m.Server] = true
	c.mu.Unlock()
	m.Server.Kill()
	err := waitFor("replica "+rep.Addr+" promoted", func() (bool, error) {
		role, err := infoField(rep.Server, "replication", "role")
		if err != nil || role != "master" {
			return false, err
		}
		return c.healthyNow(false)
	})
	if err != nil {
		return Node{}, err
	}
	for _, n := range c.Masters() {
		if n.Addr == rep.Addr {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("promoted %s is not among the masters", rep.Addr)
}

// Reshard moves slots hash slots from the from-th to the to-th of
// Masters() with `redis-cli --cluster reshard`, and waits until every node
// agrees on the new layout. Keys move with their slots (MIGRATE), so
// clients see MOVED and ASK redirections while it runs.
func (c *Cluster) Reshard(from, to, slots int) error {
	ms := c.Masters()
	if from < 0 || from >= len(ms) || to < 0 || to >= len(ms) || from == to {
		return fmt.Errorf("reshard %d→%d: have %d masters", from, to, len(ms))
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return err
	}
	out, err := exec.Command(cli, append(c.cliTLS(), "--cluster", "reshard", ms[from].Addr,
		"--cluster-from", ms[from].ID, "--cluster-to", ms[to].ID,
		"--cluster-slots", strconv.Itoa(slots), "--cluster-yes")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-cli --cluster reshard: %w\n%s", err, tail(out))
	}
	want := ms[to].Slots + slots
	return waitFor("reshard settled", func() (bool, error) {
		for _, n := range c.live() {
			nodes, err := c.nodesOf(n)
			if err != nil {
				return false, nil
			}
			for _, nd := range nodes {
				if nd.ID == ms[to].ID && nd.Slots != want {
					return false, nil
				}
			}
		}
		return c.healthyNow(false)
	})
}

// Stop kills every node and removes their directories.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		if n != nil {
			wg.Add(1)
			go func() { defer wg.Done(); n.Stop() }()
		}
	}
	wg.Wait()
}

func (c *Cluster) isKilled(s *Server) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killed[s]
}

func (c *Cluster) live() []*Server {
	var out []*Server
	for _, n := range c.Nodes {
		if n != nil && !c.isKilled(n) {
			out = append(out, n)
		}
	}
	return out
}

// waitHealthy waits for a freshly created cluster: every node ok, every
// slot covered, every replica synced.
func (c *Cluster) waitHealthy() error {
	return waitFor("cluster healthy", func() (bool, error) { return c.healthyNow(true) })
}

// healthyNow reports whether every live node says cluster_state:ok with
// all slots assigned and ok, knows every live node, and (with sync) every
// replica's link to its master is up with no sync in progress.
func (c *Cluster) healthyNow(sync bool) (bool, error) {
	live := c.live()
	for _, n := range live {
		txt, err := nodeCmd(n, "CLUSTER", "INFO").Text()
		if err != nil {
			return false, nil
		}
		f := fields(txt)
		if f["cluster_state"] != "ok" || f["cluster_slots_assigned"] != "16384" || f["cluster_slots_ok"] != "16384" {
			return false, nil
		}
		if known, _ := strconv.Atoi(f["cluster_known_nodes"]); known < len(live) {
			return false, nil
		}
	}
	replicas := map[string]bool{}
	for _, n := range live {
		info, err := nodeCmd(n, "INFO", "replication").Text()
		if err != nil {
			return false, nil
		}
		f := fields(info)
		if f["role"] == "slave" {
			if f["master_link_status"] != "up" || (sync && f["master_sync_in_progress"] != "0") {
				return false, nil
			}
			replicas[n.Addr] = true
		}
	}
	// Roles spread by gossip: every node must see every replica as one
	// (a replica just attached still looks like an empty master to some),
	// or Masters and Replicas would depend on which node they ask.
	for _, n := range live {
		nodes, err := c.nodesOf(n)
		if err != nil {
			return false, nil
		}
		seen := 0
		for _, nd := range nodes {
			if nd.Server != nil && !c.isKilled(nd.Server) && !nd.Failed {
				if nd.Master == replicas[nd.Addr] {
					return false, nil
				}
				if !nd.Master {
					seen++
				}
			}
		}
		if seen != len(replicas) {
			return false, nil
		}
	}
	return true, nil
}

// waitFor polls cond until it holds, it fails, or clusterWait passes.
func waitFor(what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(clusterWait)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not reached within %s", what, clusterWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nodeCmd runs one command on one node with a short-lived plain client,
// which never follows redirections: it asks that node.
func nodeCmd(n *Server, args ...any) *redis.Cmd {
	cl := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, TLSConfig: n.TLS})
	defer cl.Close()
	return cl.Do(context.Background(), args...)
}

func infoField(n *Server, section, key string) (string, error) {
	txt, err := nodeCmd(n, "INFO", section).Text()
	if err != nil {
		return "", nil // not answering yet: keep waiting
	}
	return fields(txt)[key], nil
}

// fields parses "k:v" lines (CLUSTER INFO, INFO).
func fields(txt string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(txt, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			out[k] = v
		}
	}
	return out
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return append([]byte("…"), b[len(b)-2000:]...)
	}
	return bytes.TrimSpace(b)
}

// StartClusterNode starts one redis-server with cluster mode on that
// belongs to no cluster (it serves no slot): enough for code that only
// asks whether it talks to a cluster node.
func StartClusterNode(tb testing.TB) *Server {
	tb.Helper()
	s, err := startServer("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	if err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}
