package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// CAPTCHA challenges live in process memory: the embedded store serves one
// process, and a challenge is worth minutes at most.
const (
	// maxChallenges bounds the challenges held at once. A Put beyond it
	// fails (with ErrUnavailable, so the client gets a 503 and may retry)
	// until expired ones are swept or taken.
	maxChallenges = 100_000
	// sweepEvery is how many Puts pass between sweeps of expired entries.
	sweepEvery = 1024
	// fullSweepGap spaces the extra sweeps a full map triggers, so a flood
	// does not pay a full scan per Put.
	fullSweepGap = 100 * time.Millisecond
)

var errTooManyChallenges = errors.New("too many pending challenges")

type challenge struct {
	answer  []byte
	expires time.Time
}

// challenges is the in-memory challenge table.
type challenges struct {
	mu        sync.Mutex
	m         map[string]challenge
	limit     int // 0 means maxChallenges
	puts      int
	lastSweep time.Time
}

func (c *challenges) sweep(now time.Time) {
	for k, v := range c.m {
		if !now.Before(v.expires) {
			delete(c.m, k)
		}
	}
	c.lastSweep = now
}

func (c *challenges) put(token string, answer []byte, ttl time.Duration) error {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := c.limit
	if limit <= 0 {
		limit = maxChallenges
	}
	c.puts++
	if c.puts%sweepEvery == 0 || (len(c.m) >= limit && now.Sub(c.lastSweep) >= fullSweepGap) {
		c.sweep(now)
	}
	if _, ok := c.m[token]; !ok && len(c.m) >= limit {
		return errTooManyChallenges
	}
	c.m[token] = challenge{answer: bytes.Clone(answer), expires: now.Add(ttl)}
	return nil
}

func (c *challenges) take(token string) ([]byte, bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.m[token]
	if !ok {
		return nil, false
	}
	delete(c.m, token)
	if !now.Before(ch.expires) {
		return nil, false
	}
	return ch.answer, true
}

// PutChallenge implements store.Store. Challenges are kept in memory, per
// process (see the package comment), not in the file.
func (s *Store) PutChallenge(ctx context.Context, token string, answerHash []byte, ttl time.Duration) error {
	const op = "put challenge"
	if token == "" {
		return errors.New("put challenge: empty token")
	}
	if ttl <= 0 {
		return fmt.Errorf("put challenge: ttl %v is not positive", ttl)
	}
	if err := ctx.Err(); err != nil {
		return store.Unavailable(op, err)
	}
	if err := s.challenges.put(token, answerHash, ttl); err != nil {
		return store.Unavailable(op, err)
	}
	return nil
}

// TakeChallenge implements store.Store: lookup and delete happen under one
// lock, so of concurrent takers exactly one gets the answer.
func (s *Store) TakeChallenge(ctx context.Context, token string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, store.Unavailable("take challenge", err)
	}
	answer, ok := s.challenges.take(token)
	if !ok {
		return nil, store.ErrNotFound
	}
	return answer, nil
}
