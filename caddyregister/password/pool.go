package password

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// DefaultMaxWait is how long a caller queues for a hashing slot by default:
// long enough to absorb a burst, short enough that the client gets a
// "try again" answer before it gives up on its own.
const DefaultMaxWait = 2 * time.Second

// Pool bounds concurrent hashing so a flood can't exhaust memory or CPU: at
// most Size hashes or verifications run at once, and a caller that waits
// longer than MaxWait for a slot gets an *OverloadedError to turn into a 503
// with Retry-After, instead of piling up goroutines each holding tens of
// MiB.
//
// Create pools with [NewPool]; the zero Pool is not usable. A Pool is safe
// for concurrent use.
type Pool struct {
	sem chan struct{}
	// reserved is one more slot, for callers marked WithReserved (admin
	// authentication) when every other slot is taken: a registration
	// flood fills sem, and operators must still be able to log in to
	// deal with it.
	reserved chan struct{}
	maxWait  time.Duration
	obs      Observer

	// waiting counts callers queued for a slot; avgNanos is a moving
	// average of how long a slot is held. Together they predict a new
	// caller's wait, so a caller who cannot be served within its budget is
	// refused at once instead of after waiting the whole budget: under a
	// flood, refusals are fast and cost nothing.
	waiting  atomic.Int64
	avgNanos atomic.Int64
}

// PoolConfig configures [NewPool].
type PoolConfig struct {
	// Size is the number of concurrent hashes; 0 means runtime.GOMAXPROCS(0),
	// since hashing is CPU-bound and more would only add memory pressure.
	Size int
	// MaxWait is the longest a caller queues for a slot; 0 means
	// DefaultMaxWait.
	MaxWait time.Duration
	// Observer is optional; called with the queue wait and the hash duration for metrics.
	Observer Observer
}

// Observer receives timings from a [Pool], typically to feed histograms.
// Its methods are called synchronously on the hashing goroutine and must be
// cheap and safe for concurrent use.
type Observer interface {
	// ObserveQueueWait is called once per request with the time spent
	// waiting for a slot, whether or not a slot was obtained, so the
	// histogram also shows the waits that ended in overload.
	ObserveQueueWait(d time.Duration)
	// ObserveHash is called after each hash or verification with the
	// algorithm ("argon2id", "bcrypt", or "unknown" for an unparseable
	// stored hash) and how long it took.
	ObserveHash(hasher string, d time.Duration)
}

// NewPool returns a Pool configured by cfg; zero or negative fields take
// their defaults.
func NewPool(cfg PoolConfig) *Pool {
	size := cfg.Size
	if size <= 0 {
		size = runtime.GOMAXPROCS(0)
	}
	maxWait := cfg.MaxWait
	if maxWait <= 0 {
		maxWait = DefaultMaxWait
	}
	return &Pool{sem: make(chan struct{}, size), reserved: make(chan struct{}, ReservedSlots), maxWait: maxWait, obs: cfg.Observer}
}

// ReservedSlots is how many slots a Pool keeps, beyond its Size, for
// callers marked WithReserved.
const ReservedSlots = 1

// Size returns the number of hashes that may run at once, not counting
// the reserved slot.
func (p *Pool) Size() int { return cap(p.sem) }

type reservedKey struct{}

// WithReserved marks ctx's hashing as admin authentication: when every
// slot is taken, it may use the reserved one before it queues.
func WithReserved(ctx context.Context) context.Context {
	return context.WithValue(ctx, reservedKey{}, true)
}

// Hash waits for a slot (honouring ctx cancellation and MaxWait), then
// hashes password with h. Once hashing has started it runs to completion
// even if ctx is cancelled, because the underlying algorithms cannot be
// interrupted.
func (p *Pool) Hash(ctx context.Context, h Hasher, password []byte) (string, error) {
	var (
		encoded string
		err     error
	)
	if perr := p.run(ctx, h.Name(), func() { encoded, err = h.Hash(password) }); perr != nil {
		return "", perr
	}
	return encoded, err
}

// Verify waits for a slot like [Pool.Hash], then calls [Verify]. It goes
// through the pool because verification costs exactly as much as hashing,
// and logins are the easier endpoint to flood.
func (p *Pool) Verify(ctx context.Context, encoded string, password []byte) (bool, error) {
	var (
		ok  bool
		err error
	)
	if perr := p.run(ctx, kindOf(encoded), func() { ok, err = Verify(encoded, password) }); perr != nil {
		return false, perr
	}
	return ok, err
}

// DummyVerify waits for a slot like [Pool.Hash], then calls [DummyVerify].
// It must share the pool with real verifications, otherwise unknown-user
// logins would be measurably faster under load.
func (p *Pool) DummyVerify(ctx context.Context, h Hasher, password []byte) error {
	return p.run(ctx, h.Name(), func() { DummyVerify(h, password) })
}

// run executes fn while holding a slot and reports timings to the observer.
func (p *Pool) run(ctx context.Context, name string, fn func()) error {
	sem, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	// Release in a defer so a panicking Hasher cannot leak the slot.
	defer func() { <-sem }()
	start := time.Now()
	fn()
	d := time.Since(start)
	p.record(d)
	if p.obs != nil {
		p.obs.ObserveHash(name, d)
	}
	return nil
}

// record folds d into the moving average (weight 1/8).
func (p *Pool) record(d time.Duration) {
	for {
		old := p.avgNanos.Load()
		next := int64(d)
		if old > 0 {
			next = old + (int64(d)-old)/8
		}
		if p.avgNanos.CompareAndSwap(old, next) {
			return
		}
	}
}

// expectedWait predicts how long a caller joining the queue now waits:
// everyone ahead of it, served Size at a time.
func (p *Pool) expectedWait(ahead int64) time.Duration {
	avg := p.avgNanos.Load()
	if avg <= 0 {
		return 0
	}
	return time.Duration((ahead/int64(cap(p.sem)) + 1) * avg)
}

// acquire takes a slot and returns the channel to release it to.
// A caller marked WithReserved takes a free shared slot, else the
// reserved one, and only queues when both are busy.
func (p *Pool) acquire(ctx context.Context) (chan struct{}, error) {
	if ctx.Value(reservedKey{}) != nil && ctx.Err() == nil {
		for _, sem := range []chan struct{}{p.sem, p.reserved} {
			select {
			case sem <- struct{}{}:
				if p.obs != nil {
					p.obs.ObserveQueueWait(0)
				}
				return sem, nil
			default:
			}
		}
	}
	if err := p.acquireShared(ctx); err != nil {
		return nil, err
	}
	return p.sem, nil
}

func (p *Pool) acquireShared(ctx context.Context) error {
	start := time.Now()
	observe := func() {
		if p.obs != nil {
			p.obs.ObserveQueueWait(time.Since(start))
		}
	}
	// A cancelled request must not consume a slot even if one is free; select
	// would otherwise pick between the ready cases at random.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting for a password hashing slot: %w", err)
	}
	select {
	case p.sem <- struct{}{}:
		observe()
		return nil
	default:
	}
	// A caller is served only if its hash can still finish within its
	// budget: queueing until the last moment and then hashing would answer
	// later than MaxWait promises.
	wait := p.budget(ctx) - time.Duration(p.avgNanos.Load())
	ahead := p.waiting.Add(1) - 1
	defer p.waiting.Add(-1)
	if wait <= 0 || p.expectedWait(ahead) > wait {
		observe()
		return p.Shed(ctx)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case p.sem <- struct{}{}:
		observe()
		return nil
	case <-ctx.Done():
		observe()
		return fmt.Errorf("waiting for a password hashing slot: %w", ctx.Err())
	case <-timer.C:
		observe()
		return p.overloaded()
	}
}

// budget is how long a caller may still queue: MaxWait, counted from the
// request's arrival when known, so time spent before queueing (parsing,
// the duplicate pre-check) is not added to the client's wait.
//
// An eighth of MaxWait is kept back for what happens outside the pool
// (the request waiting in the kernel and in net/http before it reaches
// Caddy, writing the answer, a hash slower than the average), so the
// client, not just the pool, sees its answer within MaxWait plus a hash.
// Under 500 clients on two cores that outside time reached 200 ms.
func (p *Pool) budget(ctx context.Context) time.Duration {
	full := p.maxWait - p.maxWait/8
	wait := full
	if t, ok := ctx.Value(arrivalKey{}).(time.Time); ok {
		wait = min(wait, time.Until(t.Add(full)))
	}
	return wait
}

// WouldShed reports whether a caller queueing now would be refused. Callers
// ask before doing other work for a request (a store round trip, say), so
// that under a flood refusals cost next to nothing. It is a prediction:
// Hash still decides.
func (p *Pool) WouldShed(ctx context.Context) bool {
	if len(p.sem) < cap(p.sem) {
		return false
	}
	wait := p.budget(ctx)
	return wait <= 0 || p.expectedWait(p.waiting.Load()) > wait
}

type arrivalKey struct{}

// WithArrival records when the request arrived: the pool's MaxWait is then
// measured from that moment rather than from when the caller queues.
func WithArrival(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, arrivalKey{}, t)
}

// ShedDelay is how long a predicted refusal is held before it is
// answered. Clients under a flood retry as soon as they are answered; a
// refusal that came back in microseconds would let them take the CPU the
// admitted requests need to hash. A quarter second keeps refusals fast for
// people while slowing a retry loop a thousandfold.
const ShedDelay = 250 * time.Millisecond

// Shed waits ShedDelay (bounded by the caller's budget and ctx) and returns
// the overload error.
func (p *Pool) Shed(ctx context.Context) error {
	d := min(ShedDelay, p.budget(ctx))
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	return p.overloaded()
}

// overloaded builds the error for a shed request. The hint is at least a
// second because Retry-After has one-second resolution.
func (p *Pool) overloaded() *OverloadedError {
	return &OverloadedError{RetryAfter: max(time.Second, p.maxWait)}
}

// ErrOverloaded matches any *OverloadedError with errors.Is, for callers that
// only need to know that load was shed.
var ErrOverloaded = errors.New("password hashing is overloaded")

// OverloadedError is returned by [Pool] methods when no hashing slot became
// free within MaxWait.
type OverloadedError struct {
	// RetryAfter is a hint for the Retry-After header: by then the queue
	// has had at least one full MaxWait to drain.
	RetryAfter time.Duration
}

// Error returns "password hashing is overloaded".
func (e *OverloadedError) Error() string { return ErrOverloaded.Error() }

// Is makes errors.Is(err, ErrOverloaded) true.
func (e *OverloadedError) Is(target error) bool { return target == ErrOverloaded }
