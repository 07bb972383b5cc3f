package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// slotHook records, per script and per MULTI transaction, which kinds of
// hash tag its declared keys carry: "{ns}" (the namespace's slot) or
// "{ns:u:}" (a user's slot).
type slotHook struct {
	names map[string]string // script SHA-1 → name
	mu    sync.Mutex
	seen  map[string]map[string]bool
}

var tagRe = regexp.MustCompile(`\{[^}]*\}`)

func tagKind(key string) string {
	switch t := tagRe.FindString(key); {
	case t == "":
		return "none"
	case strings.Contains(t, ":u:"):
		return "{ns:u:}"
	default:
		return "{ns}"
	}
}

func (h *slotHook) note(op string, keys []any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[op] == nil {
		h.seen[op] = map[string]bool{}
	}
	for _, k := range keys {
		h.seen[op][tagKind(fmt.Sprint(k))] = true
	}
}

func (h *slotHook) script(args []any) (string, []any) {
	sha := fmt.Sprint(args[1])
	if strings.HasPrefix(strings.ToLower(fmt.Sprint(args[0])), "eval") && !strings.HasPrefix(strings.ToLower(fmt.Sprint(args[0])), "evalsha") {
		sum := sha1.Sum([]byte(sha))
		sha = hex.EncodeToString(sum[:])
	}
	name := h.names[sha]
	if name == "" {
		name = "unknown script " + sha
	}
	var n int
	fmt.Sscan(fmt.Sprint(args[2]), &n)
	return name, args[3 : 3+n]
}

func (h *slotHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *slotHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); strings.HasPrefix(strings.ToLower(fmt.Sprint(a[0])), "eval") {
			name, keys := h.script(a)
			h.note(name, keys)
		}
		return next(ctx, cmd)
	}
}

func (h *slotHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && strings.EqualFold(fmt.Sprint(cmds[0].Args()[0]), "multi") {
			var ops []string
			var keys []any
			for _, c := range cmds[1 : len(cmds)-1] {
				a := c.Args()
				op := strings.ToLower(fmt.Sprint(a[0]))
				ops = append(ops, op)
				switch {
				case strings.HasPrefix(op, "eval"):
					// The keys a script declares, not its body.
					_, declared := h.script(a)
					keys = append(keys, declared...)
				case len(a) > 1:
					keys = append(keys, a[1])
				}
			}
			h.note("MULTI "+strings.Join(ops, " "), keys)
		}
		return next(ctx, cmds)
	}
}

// TestSlotsPerOperation pins which scripts span two hash slots: the
// reason the store refuses Redis Cluster (ErrClusterLayout; see
// docs/cluster-layout.md, which lists them). It runs the whole contract
// suite on one node with a hook that reads the keys each script and
// transaction declares. A new script that mixes the namespace's slot and
// a user's fails it; the per-user layout (issue 15) will empty the list,
// and with it lift the refusal.
func TestSlotsPerOperation(t *testing.T) {
	h := &slotHook{seen: map[string]map[string]bool{}, names: map[string]string{}}
	for name, s := range map[string]*redis.Script{
		"createScript": createScript, "swapScript": swapScript, "reissueScript": reissueScript,
		"claimScript": claimScript, "retryScript": retryScript, "parkScript": parkScript,
		"dropBodyScript": dropBodyScript, "takenScript": takenScript,
		"createSessionScript": createSessionScript, "rotateScript": rotateScript, "listScript": listScript,
		"revokeAllScript": revokeAllScript, "revokeScript": revokeScript, "publishScript": publishScript,
		"ensureScript": ensureScript, "listTenantsScript": listTenantsScript,
		"deleteUserScript": deleteUserScript, "userPageScript": userPageScript, "backfillScript": backfillScript,
		"ackScript": ackScript, "enqueueScript": enqueueScript, "swapOutboxScript": swapOutboxScript,
		"putTokenScript": putTokenScript, "putMailScript": putMailScript, "raiseScript": raiseScript,
	} {
		h.names[s.Hash()] = name
	}
	srv := testredis.Start(t)
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		n++
		s, err := Open(srv.URL(0), fmt.Sprintf("slots%d", n))
		if err != nil {
			t.Fatal(err)
		}
		s.Client().AddHook(h)
		t.Cleanup(func() { s.Close() })
		return s
	})
	var cross []string
	for _, op := range slices.Sorted(maps.Keys(h.seen)) {
		kinds := slices.Sorted(maps.Keys(h.seen[op]))
		t.Logf("%-40s %v", op, kinds)
		if strings.HasPrefix(op, "unknown script") {
			t.Errorf("%s: a script this test does not know; add it to the list", op)
		}
		if len(kinds) > 1 {
			cross = append(cross, op)
		}
	}
	want := []string{"createScript", "createSessionScript", "deleteUserScript"}
	if !slices.Equal(cross, want) {
		t.Errorf("scripts spanning two slots: %v, want %v (update docs/cluster-layout.md and ErrClusterLayout)", cross, want)
	}
}
