package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyregister/caddyregister/internal/testredis"
)

// clusterRounds alternate between the two Caddys, so the machine's drift
// falls on both sides of the ratio alike.
const clusterRounds = 4

// cluster is the cluster row: registrations/s of the demo on a real Redis
// Cluster (three masters, three replicas, all on this machine) ÷ on one
// Redis node, alternating in rounds. On one machine with two cores the
// cluster adds processes, not capacity: the row shows the layout's
// overhead (its extra round trips), not scale.
func (b *bench) cluster() {
	b.section("Redis Cluster ÷ one Redis node (same machine: overhead, not scale)")
	cl, err := testredis.StartClusterServer()
	if err != nil {
		b.problem("cluster: start: %v", err)
		return
	}
	defer cl.Stop()
	one, err := b.startCaddy("cluster-baseline", b.redis.URL(3))
	if err != nil {
		b.problem("cluster: baseline caddy: %v", err)
		return
	}
	defer one.stop()
	many, err := b.startCaddy("cluster", "redis+cluster://"+strings.Join(cl.Seeds(), ","))
	if err != nil {
		b.problem("cluster: caddy on the cluster: %v", err)
		return
	}
	defer many.stop()
	for _, c := range []*caddy{one, many} {
		if status, _, _, err := register(c.addr); err != nil || status != http.StatusCreated {
			b.problem("cluster: first registration on %s: %d, %v; log:\n%s", c.addr, status, err, tail(c.log, 10))
			return
		}
	}
	each := max(b.opt.regDur/time.Duration(2*clusterRounds), 2*time.Second)
	var onNode, onCluster loadResult
	for i := range clusterRounds {
		for _, side := range []struct {
			name  string
			c     *caddy
			total *loadResult
		}{{"one node", one, &onNode}, {"cluster", many, &onCluster}} {
			r, err := b.load(fmt.Sprintf("registrations on %s c=%d %s %d/%d", side.name, b.opt.regC, each, i+1, clusterRounds), side.c.pid(),
				"-preset", "noraina", "-url", "http://"+side.c.addr, "-c", strconv.Itoa(b.opt.regC), "-d", each.String(), "-timeout", "30s")
			if err != nil {
				b.problem("cluster: %s: %v", side.name, err)
				return
			}
			side.total.add(r)
		}
	}
	node, clus := onNode.rate(http.StatusCreated), onCluster.rate(http.StatusCreated)
	if node <= 0 {
		b.problem("cluster: no registrations on the single node")
		return
	}
	val := fmt.Sprintf("%.3f (%.1f ÷ %.1f /s)", clus/node, clus, node)
	if o := onCluster.others(http.StatusCreated); o != "" {
		val += "; cluster also " + o
	}
	b.add(fmt.Sprintf("registrations/s on the cluster ÷ on one node (c=%d, %d rounds of %s a side)", b.opt.regC, clusterRounds, each), val,
		"", verdict(onCluster.Errors == 0 && onCluster.others(http.StatusCreated) == ""))
}
