package engine

import (
	"testing"
	"time"
)

// TestSessionCacheDeadWins: a store read that raced a revocation (its put
// arrives after the kill) cannot bring the sid back, and a read started
// before a flush is not cached.
func TestSessionCacheDeadWins(t *testing.T) {
	c := newSessionCache()
	live := sessionEntry{live: true, until: time.Now().Add(time.Minute)}

	_, _, epoch := c.get("a")
	c.kill("a")
	c.put("a", live, epoch)
	if e, ok, _ := c.get("a"); !ok || e.live {
		t.Fatalf("after kill then a late live put: %+v, %v; want dead", e, ok)
	}

	_, _, epoch = c.get("b")
	c.mu.Lock()
	c.flushLocked()
	c.mu.Unlock()
	c.put("b", live, epoch)
	if _, ok, _ := c.get("b"); ok {
		t.Fatal("a read from before a flush was cached")
	}

	_, _, epoch = c.get("c")
	c.put("c", live, epoch)
	if e, ok, _ := c.get("c"); !ok || !e.live {
		t.Fatalf("plain put: %+v, %v", e, ok)
	}
	c.kill("c")
	if e, _, _ := c.get("c"); e.live {
		t.Fatal("kill did not override a live entry")
	}
}
