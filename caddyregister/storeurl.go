package caddyregister

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
)

// redisURL resolves the store's connection to one URL in the forms
// redisstore.NewClient reads: URL as given, or one built from Cluster or
// Sentinels and their credentials, so that both ways share one parser.
// Errors never quote the password.
func (sc *StoreConfig) redisURL(repl *caddy.Replacer) (string, error) {
	forms := 0
	for _, set := range []bool{sc.URL != "", len(sc.Cluster) > 0, len(sc.Sentinels) > 0} {
		if set {
			forms++
		}
	}
	switch {
	case forms == 0:
		return "", errors.New("needs a url, cluster seed nodes or sentinels")
	case forms > 1:
		return "", errors.New("give one of url, cluster and sentinel")
	case sc.Master != "" && len(sc.Sentinels) == 0:
		return "", errors.New("master goes with sentinel")
	}
	if sc.URL != "" {
		if sc.Username != "" || sc.Password != "" || sc.TLS {
			return "", errors.New("with url, put the user, password and TLS (rediss) in the url")
		}
		u := repl.ReplaceKnown(sc.URL, "")
		if u == "" {
			return "", errors.New("needs a url (it resolved empty)")
		}
		return u, nil
	}
	scheme, hosts := "redis+cluster", sc.Cluster
	if len(sc.Sentinels) > 0 {
		scheme, hosts = "redis+sentinel", sc.Sentinels
		if sc.Master == "" {
			return "", errors.New("sentinel needs master <name>")
		}
	}
	if sc.TLS {
		scheme = "rediss" + strings.TrimPrefix(scheme, "redis")
	}
	resolved := make([]string, 0, len(hosts))
	for _, h := range hosts {
		h = repl.ReplaceKnown(h, "")
		// Several seeds in one placeholder are fine: {env.REDIS_SEEDS}.
		for _, part := range strings.FieldsFunc(h, func(r rune) bool { return r == ',' || r == ' ' }) {
			if _, _, err := net.SplitHostPort(part); err != nil {
				return "", fmt.Errorf("node %q: want host:port", part)
			}
			resolved = append(resolved, part)
		}
	}
	if len(resolved) == 0 {
		return "", errors.New("no node address (the placeholders resolved empty)")
	}
	u := scheme + "://"
	user, pass := repl.ReplaceKnown(sc.Username, ""), repl.ReplaceKnown(sc.Password, "")
	if pass != "" {
		u += url.UserPassword(user, pass).String() + "@"
	} else if user != "" {
		u += url.User(user).String() + "@"
	}
	u += strings.Join(resolved, ",")
	if sc.Master != "" {
		u += "?master=" + url.QueryEscape(repl.ReplaceKnown(sc.Master, ""))
	}
	return u, nil
}

// checkRedisDeployment refuses, at Start, a Redis URL that names one node
// of a Redis Cluster (see redisstore.ErrClusterLayout). A Redis that does
// not answer is left to engine.Start, which logs it and retries on demand.
func (a *App) checkRedisDeployment(ctx context.Context) error {
	rs, ok := a.engine.Store().(*redisstore.Store)
	if !ok {
		return nil
	}
	if err := rs.CheckDeployment(ctx); errors.Is(err, redisstore.ErrClusterLayout) {
		return fmt.Errorf("register: store redis: %w", err)
	}
	return nil
}

// redisSchemes are the URL schemes of the Redis connection forms
// (redisstore.NewClient).
var redisSchemes = []string{"redis://", "rediss://", "redis+cluster://", "rediss+cluster://", "redis+sentinel://", "rediss+sentinel://"}

// isRedisURL reports whether s is a URL in one of the Redis connection
// forms, for the `store <url>` shorthand.
func isRedisURL(s string) bool {
	for _, p := range redisSchemes {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			return true
		}
	}
	return false
}

// parseRedisBlock fills sc from a `store redis { … }` block. Which of url,
// cluster and sentinel is given, and whether the rest fits it, is checked
// at provision (StoreConfig.redisURL), so JSON configs get the same checks.
func parseRedisBlock(d *caddyfile.Dispenser, sc *StoreConfig) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "url", "master", "username", "password", "namespace":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			switch sub {
			case "url":
				sc.URL = v
			case "master":
				sc.Master = v
			case "username":
				sc.Username = v
			case "password":
				sc.Password = v
			case "namespace":
				sc.Namespace = v
			}
		case "cluster", "sentinel":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("%s needs at least one host:port", sub)
			}
			if sub == "cluster" {
				sc.Cluster = append(sc.Cluster, args...)
			} else {
				sc.Sentinels = append(sc.Sentinels, args...)
			}
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			sc.TLS = true
		default:
			return d.Errf("unknown store redis subdirective %q (want url, cluster, sentinel, master, username, password, tls or namespace)", sub)
		}
	}
	if sc.URL == "" && len(sc.Cluster) == 0 && len(sc.Sentinels) == 0 {
		return d.Errf("store redis needs a url, cluster seed nodes or sentinels")
	}
	return nil
}
