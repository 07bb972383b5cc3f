package redisstore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// ClusterStore is the Redis Cluster layout (issue 15, docs/cluster-layout.md):
// per-user data lives in the user's slot, each unique index entry in a
// slot of its own, so a registration spreads over the cluster instead of
// sitting in the namespace's slot. Uniqueness across slots rests on
// reservations (cluster_create.go). The single-node layout (Store) stays
// as it is; both are held to one contract suite (storetest).
//
// Keys (ns = the namespace; <k> a shard, Shard(id) = crc32(id) mod
// ClusterShards):
//
//	{ns:u:<uid>}:user            user record (JSON), or a reservation "r:<uid>:<deadline ms>" while it is being created
//	{ns:u:<uid>}:refs            SET of what the user owns (store.UserRefs)
//	{ns:u:<uid>}:token:<hash>    single-use token (JSON), PEXPIREAT its expiry
//	{ns:u:<uid>}:session:<sid>   sessions, and {ns:u:<uid>}:sessions, as in the single-node layout (session.go)
//	{ns:e:<email key>}           e-mail index: "<uid>", or a reservation
//	{ns:l:<login key>}           login index, likewise
//	{ns:k:<hash>}                token index: the token's user id, PEXPIREAT the token's expiry
//	{ns:idem:<key>}              idempotency record (JSON), PEXPIREAT its expiry; a reservation while claimed
//	{ns:users:<k>}               user index shard k (ZSET, score = creation ms)
//	{ns:pend:<k>}                intents: ZSET of half-made registrations, score = reservation deadline (ms)
//	{ns:pend:<k>}:i              HASH uid → the keys the registration reserved (JSON), for the janitor
//	{ns}:seq:<name>              sequences (one key each, by nature)
//	{ns:ob:<k>}:...              outbox shard k: mail:<id>, outbox, outbox:parked, chain:<chain> as single-node (cluster_outbox.go)
//	{ns:c:<token>}               CAPTCHA challenge
//
// Tenants (records, code and VAT indexes, the tenant SET), secrets and
// the revocation feed keep the single-node keys
// in the namespace's slot: they are few and rarely written, and the
// single-node code runs on them unchanged. A founder's tenant keys hold a
// reservation while its registration is in flight, which the readers here
// treat as absent.
type ClusterStore struct {
	c  redis.UniversalClient
	ns string
	// base is the single-node store on the same client: the operations
	// whose keys are one slot in both layouts (tenants, secrets,
	// challenges, sessions but their creation, the revocation feed) run
	// its code.
	base *Store
	// reserveTTL bounds a reservation's life: a registration that has not
	// finalized by then loses its claims.
	reserveTTL time.Duration
	// obs are the outbox shards (cluster_outbox.go).
	obs [ClusterShards]*Store

	// minAck and ackTimeout: min_replicas_ack (cluster_open.go).
	minAck     int
	ackTimeout time.Duration

	janitorOnce sync.Once
	stopJanitor context.CancelFunc

	// The reconcile walk after a failover (maybeReconcile): masters as
	// the last walk saw them, whether users were deferred and when to
	// look again. Only the janitor goroutine touches them.
	masters        string
	reconcileAgain bool
	reconcileAfter time.Time
	reconciles     atomic.Int64
	// onReconcile, when set (SetReconcileLog), hears what each walk did.
	onReconcile func(ReconcileStats)
}

// SetReconcileLog has fn hear what each reconcile walk after a failover
// did (users given an entry back, users erased); set it before the store
// starts.
func (s *ClusterStore) SetReconcileLog(fn func(ReconcileStats)) { s.onReconcile = fn }

// ClusterShards is how many shards the user index, the intents and the
// outbox are each split into: 16 spread over three masters as about
// 5/5/6, so no one slot takes every registration's write.
const ClusterShards = 16

// DefaultReserveTTL is how long a registration's reservations hold
// before they lapse (see ClusterStore.reserveTTL). A registration does
// its three rounds in milliseconds; the margin covers a stalled instance.
const DefaultReserveTTL = 10 * time.Second

// NewCluster returns the cluster layout on client c (normally a
// *redis.ClusterClient) under namespace ns. The store owns the client.
func NewCluster(c redis.UniversalClient, ns string) *ClusterStore {
	base := New(c, ns)
	s := &ClusterStore{c: c, ns: base.ns, base: base, reserveTTL: DefaultReserveTTL}
	for k := range s.obs {
		s.obs[k] = New(c, base.ns+":ob:"+strconv.Itoa(k))
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		cc.AddHook(reloadHook{cc, new(atomic.Bool)})
	}
	return s
}

// Client exposes the underlying client (the rate limiter shares it).
func (s *ClusterStore) Client() redis.UniversalClient { return s.c }

// Namespace is the key namespace, without braces.
func (s *ClusterStore) Namespace() string { return s.ns }

// tag builds a key whose hash tag is {ns:kind:id}, then parts.
func (s *ClusterStore) tag(kind, id string, parts ...string) string {
	k := "{" + s.ns + ":" + kind + ":" + id + "}"
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

// UserKey builds a key in userID's slot: {ns:u:<uid>}:parts...
func (s *ClusterStore) UserKey(userID string, parts ...string) string {
	return s.base.userKey(userID, parts...)
}

// EmailKey is the e-mail index key of a normalized e-mail.
func (s *ClusterStore) EmailKey(emailKey string) string { return s.tag("e", emailKey) }

// LoginKey is the login index key of a normalized login.
func (s *ClusterStore) LoginKey(loginKey string) string { return s.tag("l", loginKey) }

// TokenIndexKey is the key that maps a token's hash to its user.
func (s *ClusterStore) TokenIndexKey(hash string) string { return s.tag("k", hash) }

func (s *ClusterStore) idemKey(key string) string { return s.tag("idem", key) }

// Shard is the shard (0 .. ClusterShards-1) of the user index and of the
// intents that id belongs to.
func Shard(id string) int { return int(crc32.ChecksumIEEE([]byte(id)) % ClusterShards) }

// UsersShardKey is the key of user index shard k.
func (s *ClusterStore) UsersShardKey(k int) string { return s.tag("users", strconv.Itoa(k)) }

func (s *ClusterStore) pendKey(k int) string { return s.tag("pend", strconv.Itoa(k)) }

// reservation is the value a claim holds until its registration
// finalizes: the owner and the deadline, so a reader (and the janitor)
// knows whose it is and until when.
func reservation(uid string, deadline int64) string {
	return "r:" + uid + ":" + strconv.FormatInt(deadline, 10)
}

func isReservation(v string) bool { return strings.HasPrefix(v, "r:") }

// getLiveJSON is getJSON for a key a registration in flight may hold a
// reservation on: that reads as absent.
func getLiveJSON(ctx context.Context, c redis.StringCmdable, op, key string, v any) error {
	b, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) || err == nil && isReservation(string(b)) {
		return store.ErrNotFound
	}
	if err != nil {
		return store.Unavailable(op, err)
	}
	return decodeJSON(op, key, b, v)
}

// GetUser implements store.Store; a user still being created is not
// found.
func (s *ClusterStore) GetUser(ctx context.Context, id string) (*store.User, error) {
	return s.getUser(ctx, s.c, id)
}

func (s *ClusterStore) getUser(ctx context.Context, c redis.StringCmdable, id string) (*store.User, error) {
	if id == "" {
		return nil, store.ErrNotFound
	}
	var u store.User
	if err := getLiveJSON(ctx, c, "get user", s.UserKey(id, "user"), &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// index reads a unique index entry and validates it against the record
// it names: a reservation, or an id whose record is gone or no longer
// carries the key (a crashed delete), is no entry. The second read is the
// price of keeping the index in another slot than the user.
func (s *ClusterStore) index(ctx context.Context, op, key string, match func(*store.User) bool) (string, *store.User, error) {
	id, err := s.c.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil, store.ErrNotFound
	}
	if err != nil {
		return "", nil, store.Unavailable(op, err)
	}
	if isReservation(id) {
		return "", nil, store.ErrNotFound
	}
	u, err := s.GetUser(ctx, id)
	if err != nil {
		return "", nil, err
	}
	if !match(u) {
		return "", nil, store.ErrNotFound
	}
	return id, u, nil
}

// UserIDByEmail implements store.Store.
func (s *ClusterStore) UserIDByEmail(ctx context.Context, emailKey string) (string, error) {
	id, _, err := s.index(ctx, "user by email", s.EmailKey(emailKey), func(u *store.User) bool { return u.EmailKey == emailKey })
	return id, err
}

// UserIDByLogin implements store.Store.
func (s *ClusterStore) UserIDByLogin(ctx context.Context, loginKey string) (string, error) {
	id, _, err := s.index(ctx, "user by login", s.LoginKey(loginKey), func(u *store.User) bool { return u.LoginKey == loginKey })
	return id, err
}

// Taken implements store.Store: one pipelined read of every index, then
// one of the records the permanent entries name. A reservation is taken
// (a registration is in flight); an entry whose record is gone is not.
func (s *ClusterStore) Taken(ctx context.Context, keys store.UniqueKeys) error {
	const op = "taken"
	type probe struct {
		field, key string
		user       bool // a user index: validated against the record
		match      func(*store.User) bool
	}
	var ps []probe
	if keys.EmailKey != "" {
		ps = append(ps, probe{"email", s.EmailKey(keys.EmailKey), true, func(u *store.User) bool { return u.EmailKey == keys.EmailKey }})
	}
	if keys.LoginKey != "" {
		ps = append(ps, probe{"login", s.LoginKey(keys.LoginKey), true, func(u *store.User) bool { return u.LoginKey == keys.LoginKey }})
	}
	if keys.TenantVATKey != "" {
		ps = append(ps, probe{field: "tenant_vat", key: s.base.Key("idx", "tenant_vat", keys.TenantVATKey)})
	}
	if keys.TenantCodeKey != "" {
		ps = append(ps, probe{field: "tenant_code", key: s.base.Key("idx", "tenant_code", keys.TenantCodeKey)})
	}
	if len(ps) == 0 {
		return nil
	}
	cmds := make([]*redis.StringCmd, len(ps))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, pr := range ps {
			cmds[i] = p.Get(ctx, pr.key)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return store.Unavailable(op, err)
	}
	for i, pr := range ps {
		v, err := cmds[i].Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return store.Unavailable(op, err)
		}
		if !pr.user || isReservation(v) {
			return &store.ConflictError{Field: pr.field}
		}
		u, err := s.GetUser(ctx, v)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !pr.match(u) || !keys.Now.IsZero() && u.PendingExpired(keys.Now) {
			continue
		}
		return &store.ConflictError{Field: pr.field}
	}
	return nil
}

// GetIdempotency implements store.Store; a key claimed by a registration
// still in flight is not found yet.
func (s *ClusterStore) GetIdempotency(ctx context.Context, key string) (*store.Idempotency, error) {
	if key == "" {
		return nil, store.ErrNotFound
	}
	var r store.Idempotency
	if err := getLiveJSON(ctx, s.c, "get idempotency", s.idemKey(key), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// GetTenant implements store.Store; a tenant whose founding registration
// is in flight is not found yet.
func (s *ClusterStore) GetTenant(ctx context.Context, id string) (*store.Tenant, error) {
	var t store.Tenant
	if err := getLiveJSON(ctx, s.c, "get tenant", s.base.Key("tenant", id), &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// tenantIndex reads a tenant index entry; a reservation is no entry.
func (s *ClusterStore) tenantIndex(ctx context.Context, op, key string) (string, error) {
	v, err := s.base.getString(ctx, op, key)
	if err != nil {
		return "", err
	}
	if isReservation(v) {
		return "", store.ErrNotFound
	}
	return v, nil
}

// TenantIDByVAT implements store.Store.
func (s *ClusterStore) TenantIDByVAT(ctx context.Context, vatKey string) (string, error) {
	return s.tenantIndex(ctx, "tenant by vat", s.base.Key("idx", "tenant_vat", vatKey))
}

// TenantIDByCode implements store.Store.
func (s *ClusterStore) TenantIDByCode(ctx context.Context, code string) (string, error) {
	key := store.TenantCodeKey(code)
	if key == "" {
		return "", store.ErrNotFound
	}
	return s.tenantIndex(ctx, "tenant by code", s.base.Key("idx", "tenant_code", key))
}

// CreateTenant implements store.Store in the namespace's slot, as the
// single-node layout does (a reservation held by a founding registration
// is a conflict there).
func (s *ClusterStore) CreateTenant(ctx context.Context, t *store.Tenant) error {
	return s.base.CreateTenant(ctx, t)
}

// EnsureTenant implements store.Store in the namespace's slot.
func (s *ClusterStore) EnsureTenant(ctx context.Context, t *store.Tenant) error {
	return s.base.EnsureTenant(ctx, t)
}

// ListTenants implements store.Store; a founder's tenant joins the tenant
// SET only when its registration finalizes.
func (s *ClusterStore) ListTenants(ctx context.Context) ([]*store.Tenant, error) {
	return s.base.ListTenants(ctx)
}

// LoadOrCreateSecret implements store.Store (namespace slot).
func (s *ClusterStore) LoadOrCreateSecret(ctx context.Context, name string, value []byte) ([]byte, error) {
	return s.base.LoadOrCreateSecret(ctx, name, value)
}

// SwapSecret implements store.Store (namespace slot).
func (s *ClusterStore) SwapSecret(ctx context.Context, name string, old, value []byte) (bool, error) {
	return s.base.SwapSecret(ctx, name, old, value)
}

// Ping implements store.Store.
func (s *ClusterStore) Ping(ctx context.Context) error { return s.base.Ping(ctx) }

// PutChallenge implements store.Store. Each challenge has a slot of its
// own ({ns:c:<token>}): one is written per CAPTCHA shown.
func (s *ClusterStore) PutChallenge(ctx context.Context, token string, answerHash []byte, ttl time.Duration) error {
	if token == "" {
		return errors.New("put challenge: empty token")
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("put challenge: ttl %v is below 1ms", ttl)
	}
	if err := s.c.Set(ctx, s.tag("c", token), answerHash, ttl).Err(); err != nil {
		return store.Unavailable("put challenge", err)
	}
	return nil
}

// TakeChallenge implements store.Store with GETDEL, atomic on its key.
func (s *ClusterStore) TakeChallenge(ctx context.Context, token string) ([]byte, error) {
	if token == "" {
		return nil, store.ErrNotFound
	}
	b, err := s.c.GetDel(ctx, s.tag("c", token)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, store.Unavailable("take challenge", err)
	}
	return b, nil
}

func decodeUserJSON(b []byte, key string) (*store.User, error) {
	var u store.User
	if err := decodeJSON("get user", key, b, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// Close implements store.Store; it stops the janitor.
func (s *ClusterStore) Close() error {
	s.janitorOnce.Do(func() {}) // none starts after Close
	if s.stopJanitor != nil {
		s.stopJanitor()
	}
	return s.c.Close()
}

var _ store.Store = (*ClusterStore)(nil)
