package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Backend is what OpenStore returns: either layout, with the client the
// rate limiter shares.
type Backend interface {
	store.Store
	Client() redis.UniversalClient
	Namespace() string
}

// OpenStore parses a URL in one of the connection forms (connect.go) and
// returns the layout that runs there: the cluster layout (ClusterStore)
// for redis+cluster:// and rediss+cluster://, the single-node layout
// (Store) for a single node and for Sentinel. No connection is made.
//
// A cluster URL may carry min_replicas_ack=<n> (and
// replicas_ack_timeout=<duration>, default 1s): every registration round
// then waits (WAIT) until n replicas of each master it wrote to hold its
// writes, and fails (ErrUnavailable, after releasing what it reserved)
// when they do not in time. Without it, Redis replicates asynchronously: a
// master that dies loses the writes its replica had not received yet,
// acknowledged registrations included, and a reservation it granted can
// be granted again by the promoted replica.
func OpenStore(rawURL, ns string) (Backend, error) {
	ack, timeout, rest, err := ackOptions(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	c, mode, err := NewClient(rest)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	if mode != ModeCluster {
		if ack > 0 {
			c.Close()
			return nil, errors.New("parse redis url: min_replicas_ack applies to a redis+cluster url")
		}
		return New(c, ns), nil
	}
	s := NewCluster(c, ns)
	s.SetMinReplicasAck(ack, timeout)
	return s, nil
}

// ackOptions takes min_replicas_ack and replicas_ack_timeout out of a
// URL's query (go-redis refuses options it does not know).
func ackOptions(rawURL string) (n int, timeout time.Duration, rest string, err error) {
	timeout = time.Second
	base, query, ok := strings.Cut(rawURL, "?")
	if !ok {
		return 0, timeout, rawURL, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return 0, 0, "", errors.New("bad query")
	}
	if v := q.Get("min_replicas_ack"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			return 0, 0, "", fmt.Errorf("min_replicas_ack %q is not a count", v)
		}
	}
	if v := q.Get("replicas_ack_timeout"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 {
			return 0, 0, "", fmt.Errorf("replicas_ack_timeout %q is not a positive duration", v)
		}
	}
	q.Del("min_replicas_ack")
	q.Del("replicas_ack_timeout")
	if len(q) == 0 {
		return n, timeout, base, nil
	}
	return n, timeout, base + "?" + q.Encode(), nil
}

// SetMinReplicasAck makes every registration round wait until n replicas
// acknowledged its writes, at most timeout (see OpenStore); n = 0 turns
// it off.
func (s *ClusterStore) SetMinReplicasAck(n int, timeout time.Duration) {
	s.minAck, s.ackTimeout = n, timeout
}

// waitReplicas is the WAIT of min_replicas_ack after a round that wrote
// keys. WAIT counts the writes of its own connection, and a cluster
// client pools connections, so per master touched it writes a marker in
// the slot of one of the round's keys and WAITs on that connection: the
// replication stream is ordered, so a replica that has the marker has
// every earlier write of the round.
func (s *ClusterStore) waitReplicas(ctx context.Context, op string, keys []string) error {
	if s.minAck == 0 {
		return nil
	}
	cc, ok := s.c.(*redis.ClusterClient)
	if !ok {
		return nil
	}
	type target struct {
		c   *redis.Client
		tag string
	}
	masters := map[string]target{}
	for _, k := range keys {
		m, err := cc.MasterForKey(ctx, k)
		if err != nil {
			return store.Unavailable(op, err)
		}
		if _, ok := masters[m.Options().Addr]; !ok {
			masters[m.Options().Addr] = target{m, hashTag(k)}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(masters))
	for _, t := range masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := t.c.Conn()
			defer conn.Close()
			var wait *redis.Cmd
			_, err := conn.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "{"+t.tag+"}:ack", 1, time.Minute)
				wait = p.Do(ctx, "WAIT", s.minAck, s.ackTimeout.Milliseconds())
				return nil
			})
			if err != nil {
				errs <- store.Unavailable(op, err)
				return
			}
			if n, _ := wait.Int(); n < s.minAck {
				errs <- store.Unavailable(op, fmt.Errorf("%d of %d replicas acknowledged the writes on %s in %v", n, s.minAck, t.c.Options().Addr, s.ackTimeout))
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// hashTag is the part of key between its first { and the next }.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// reloadHook makes a cluster client re-read the slot map as soon as a
// command or pipeline fails on the network: go-redis re-reads it on MOVED,
// but a pipeline whose master died keeps failing against it until a single
// command happens to meet a MOVED. With it, the store follows a failover
// once the promoted replica serves the slots.
type reloadHook struct {
	c *redis.ClusterClient
	// busy: a reload is running; failures meanwhile start none (a dead
	// master fails every request until the reload lands).
	busy *atomic.Bool
}

func (h reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.reloadOn(err)
		return err
	}
}

func (h reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.reloadOn(err)
		return err
	}
}

func (h reloadHook) reloadOn(err error) {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.EOF) {
		if !h.busy.CompareAndSwap(false, true) {
			return
		}
		// In the background: the failed request answers at once.
		go func() {
			defer h.busy.Store(false)
			h.c.ReloadState(context.Background())
		}()
	}
}
