package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Connection forms (README, "Store"):
//
//	redis://[user:pass@]host:port[/db][?opts]                 one node
//	rediss://…                                                one node over TLS
//	redis+cluster://[user:pass@]host:port,host:port[/][?opts] Redis Cluster, seed nodes
//	rediss+cluster://…                                        Redis Cluster over TLS
//	redis+sentinel://[user:pass@]host:port,host:port[/db]?master=name[&opts]
//	rediss+sentinel://…                                       Sentinel, TLS to sentinels and nodes
//
// The opts are go-redis's (dial_timeout, max_retries, pool_size, …, see
// redis.ParseURL, ParseClusterURL, ParseFailoverURL). With Sentinel the
// user and password are the Redis nodes' (the ACL user the store runs as);
// sentinels that require their own credentials take sentinel_username and
// sentinel_password options.

// Mode is how a URL connects.
type Mode string

// The connection modes.
const (
	ModeSingle   Mode = "single"
	ModeCluster  Mode = "cluster"
	ModeSentinel Mode = "sentinel"
)

// ErrClusterLayout is Open's answer to a cluster URL, and CheckDeployment's
// to a single-node URL that names a node of a cluster: the single-node
// key layout keeps a namespace in one hash slot and does not run on Redis
// Cluster. OpenStore opens a redis+cluster:// URL on the cluster layout
// (ClusterStore; docs/cluster-layout.md).
var ErrClusterLayout = errors.New("the single-node redis layout does not run on redis cluster: give the cluster as redis+cluster://host:port,... (or store redis { cluster ... }), which uses the cluster layout (issue 15, docs/cluster-layout.md)")

// NewClient parses a URL in any of the connection forms and returns a
// client for it, with the store's fail-fast retry defaults (one dial
// attempt, one retry) unless the URL sets dialer_retries or max_retries.
// No connection is made. Errors never quote the URL, which may hold a
// password.
func NewClient(rawURL string) (redis.UniversalClient, Mode, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, "", errors.New("not a url (want redis://, rediss://, redis+cluster://, rediss+cluster://, redis+sentinel:// or rediss+sentinel://)")
	}
	base, mode, _ := strings.Cut(strings.ToLower(scheme), "+")
	if base != "redis" && base != "rediss" {
		return nil, "", fmt.Errorf("unknown scheme %q (want redis, rediss, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel)", scheme)
	}
	switch mode {
	case "":
		opt, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, "", scrub(err)
		}
		q := queryOf(rawURL)
		failFast(q, &opt.DialerRetries, &opt.MaxRetries)
		return redis.NewClient(opt), ModeSingle, nil
	case "cluster":
		u, hosts, err := splitHosts(base, rest)
		if err != nil {
			return nil, "", err
		}
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return nil, "", errors.New("a cluster has only database 0")
		}
		u.Path = ""
		q := u.Query()
		for _, h := range hosts[1:] {
			q.Add("addr", h)
		}
		u.RawQuery = q.Encode()
		opt, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, "", scrub(err)
		}
		failFast(q, &opt.DialerRetries, &opt.MaxRetries)
		return redis.NewClusterClient(opt), ModeCluster, nil
	case "sentinel":
		u, hosts, err := splitHosts(base, rest)
		if err != nil {
			return nil, "", err
		}
		q := u.Query()
		master := q.Get("master")
		if master == "" {
			return nil, "", errors.New("a sentinel url needs ?master=<name>")
		}
		q.Del("master")
		q.Set("master_name", master)
		sentUser, sentPass := q.Get("sentinel_username"), q.Get("sentinel_password")
		q.Del("sentinel_username")
		q.Del("sentinel_password")
		for _, h := range hosts[1:] {
			q.Add("addr", h)
		}
		user := u.User
		u.User = nil
		u.RawQuery = q.Encode()
		opt, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, "", scrub(err)
		}
		if user != nil {
			opt.Username = user.Username()
			opt.Password, _ = user.Password()
		}
		opt.SentinelUsername, opt.SentinelPassword = sentUser, sentPass
		failFast(q, &opt.DialerRetries, &opt.MaxRetries)
		return redis.NewFailoverClient(opt), ModeSentinel, nil
	default:
		return nil, "", fmt.Errorf("unknown scheme %q (want redis, rediss, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel)", scheme)
	}
}

// splitHosts parses the part of a cluster or sentinel URL after "://":
// userinfo, a comma-separated host list, path and query. It returns a URL
// with scheme base and the first host, and every host.
func splitHosts(base, rest string) (*url.URL, []string, error) {
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hostlist := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hostlist = authority[:i+1], authority[i+1:]
	}
	var hosts []string
	for _, h := range strings.Split(hostlist, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			// Not quoted: with an unescaped '/' in the password, h is a
			// piece of it.
			return nil, nil, fmt.Errorf("host %d of the list: want host:port, comma-separated", len(hosts)+1)
		}
		hosts = append(hosts, net.JoinHostPort(host, port))
	}
	u, err := url.Parse(base + "://" + userinfo + hosts[0] + tail)
	if err != nil {
		return nil, nil, scrub(err)
	}
	return u, hosts, nil
}

// failFast applies the store's retry defaults where the URL sets none:
// go-redis' own (5 dial attempts, 3 retries) hold a request ~2 s before
// its 503 when Redis is down.
func failFast(q url.Values, dialerRetries, maxRetries *int) {
	if !q.Has("dialer_retries") {
		*dialerRetries = 1
	}
	if !q.Has("max_retries") {
		*maxRetries = 1
	}
}

func queryOf(rawURL string) url.Values {
	_, query, _ := strings.Cut(rawURL, "?")
	q, _ := url.ParseQuery(query)
	return q
}

// scrub drops the URL a *url.Error quotes (it may hold a password) and
// every quoted fragment of the message: in a URL whose password has an
// unescaped '/' or '?', the "port" or "database" a parser quotes is a piece
// of that password.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("invalid url: %s", quoted.ReplaceAllString(err.Error(), `"…"`))
}

var quoted = regexp.MustCompile(`"[^"]*"`)

// CheckDeployment asks the server whether it is a Redis Cluster node
// (INFO cluster), so that a redis:// or Sentinel URL naming one node of a
// cluster is refused with ErrClusterLayout instead of failing request by
// request with MOVED. It returns the network error when Redis does not
// answer: callers that tolerate an outage at start ignore those.
func (s *Store) CheckDeployment(ctx context.Context) error {
	info, err := s.c.Info(ctx, "cluster").Result()
	if err != nil {
		return store.Unavailable("check deployment", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if strings.TrimSpace(line) == "cluster_enabled:1" {
			return fmt.Errorf("the url names a node of a redis cluster: %w", ErrClusterLayout)
		}
	}
	return nil
}
