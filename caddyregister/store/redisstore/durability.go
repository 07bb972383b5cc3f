package redisstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Durability is what Redis says about keeping its data, read at start so
// operators hear of a setup that can lose the signing key and the users.
type Durability struct {
	// Persistent is false when Redis has neither RDB snapshots nor the
	// append-only file: a restart empties it.
	Persistent bool
	// EvictionPolicy is maxmemory-policy; anything but "noeviction" lets
	// Redis drop keys (a user, the signing key) when memory is full.
	EvictionPolicy string
	// Source is "config" (CONFIG GET, exact) or "info" (INFO, when ACLs
	// forbid CONFIG, as managed Redis services often do). INFO does not
	// show the snapshot schedule, so Persistent then means "AOF on or a
	// snapshot was taken since start".
	Source string
}

// Durability reads the persistence settings and eviction policy, by
// CONFIG GET or, when that is refused, by INFO. An error means neither
// worked.
func (s *Store) Durability(ctx context.Context) (Durability, error) {
	// Several names in one CONFIG GET need Redis 7, which the store needs
	// anyway (SET NX GET).
	cmd := redis.NewMapStringStringCmd(ctx, "config", "get", "save", "appendonly", "maxmemory-policy")
	_ = s.c.Process(ctx, cmd)
	cfg, cerr := cmd.Result()
	if cerr == nil {
		if _, ok := cfg["appendonly"]; ok {
			return Durability{
				Persistent:     strings.TrimSpace(cfg["save"]) != "" || cfg["appendonly"] == "yes",
				EvictionPolicy: cfg["maxmemory-policy"],
				Source:         "config",
			}, nil
		}
		cerr = errors.New("CONFIG GET returned no appendonly setting")
	}
	info, ierr := s.c.Info(ctx, "persistence", "memory").Result()
	if ierr != nil {
		return Durability{}, fmt.Errorf("redis durability: config get: %w; info: %w", cerr, ierr)
	}
	f := infoFields(info)
	if _, ok := f["aof_enabled"]; !ok {
		return Durability{}, fmt.Errorf("redis durability: config get: %w; info persistence has no aof_enabled", cerr)
	}
	saves := f["rdb_saves"]
	return Durability{
		Persistent:     f["aof_enabled"] == "1" || (saves != "" && saves != "0"),
		EvictionPolicy: f["maxmemory_policy"],
		Source:         "info",
	}, nil
}

// infoFields parses INFO's "name:value" lines.
func infoFields(info string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}
