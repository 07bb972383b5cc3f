// Package boltstore is the embedded backend of the store: one bbolt file
// (go.etcd.io/bbolt) on local disk, for single-node deployments that run
// without Redis.
//
// Layout: one bucket per record kind, keys and values as below.
//
//	users            <user id>         -> user record (JSON)
//	user_refs        <user id>0<ref>   -> empty; what the user owns besides its record and indexes (ref "token:<hash>" or "mail:<id>", see store.UserRefs; 0 is a zero byte)
//	idx_email        <email key>       -> user id, unique on the normalized e-mail (store.EmailKey)
//	idx_login        <login key>       -> user id, unique on the normalized login (store.LoginKey)
//	tenants          <tenant id>       -> tenant record (JSON)
//	idx_tenant_vat   <vat key>         -> tenant id, unique on the normalized VAT id
//	idx_tenant_code  <code key>        -> tenant id, unique on the lowercased code
//	secrets          <name>            -> secret bytes (signing key PEM)
//	mail             <mail id>         -> outbox message (JSON), until delivered
//	outbox           <due><mail id>    -> mail id; <due> is 8 bytes big-endian unix ms, so a cursor walks it in due order; a claim re-keys it to the lease's end
//	outbox_by_id     <mail id>         -> the message's current outbox key
//	outbox_parked    <mail id>         -> when it was parked (8 bytes big-endian unix ms)
//	tokens           <hash>            -> single-use token (JSON) by its SHA-256 hex
//	token_expiry     <expiry><hash>    -> empty; <expiry> as <due>, for sweeping expired tokens
//	seq              <sequence name>   -> last number drawn (8 bytes big-endian)
//	idem             <key>             -> idempotency record (JSON)
//	idem_expiry      <expiry><key>     -> empty; <expiry> as <due>, for sweeping expired records
//	sessions         <user id>\x00<sid> -> session (JSON); a prefix scan lists a user's (session.go)
//	session_expiry   <expiry><key>     -> empty; <expiry> = idle expiry, swept like token_expiry
//	users_by_created <created><id>     -> empty; the ordered user index ListUsers walks (users.go)
//	meta             <name>            -> store bookkeeping (user_index: the index was backfilled)
//
// Expired tokens read as not found; they are deleted when UseToken meets
// one and swept (a bounded number per call) by ClaimMail, which the mail
// sender calls periodically. Expired idempotency records likewise read as
// not found and no longer hold their key; they are swept (a bounded number
// per call) by CreateUser and ClaimMail.
//
// CAPTCHA challenges are not in the file: they live in process memory
// (bounded, see maxChallenges), which is enough because the embedded store
// serves one process anyway. A restart forgets them; a user then just gets
// a new challenge.
//
// Atomicity: CreateUser checks every unique key (the idempotency key first),
// draws the sequence number and writes the user, its indexes, its tenant,
// its mails, its token and its idempotency record in one read-write
// transaction, so a registration appears whole or not at all, and a
// rejected one consumes no number. A user expired pending that holds the
// new user's e-mail or login is deleted in that same transaction, with
// everything its user_refs name (see store.Store.CreateUser); a refusal
// rolls the deletion back with the rest. CreateTenant and EnsureTenant likewise
// check and write a tenant and its indexes in one transaction each.
// ListTenants walks the tenants bucket (fine for the tens or hundreds of
// tenants an operator runs).
//
// Durability: bbolt fsyncs the file on every commit (NoSync stays false), and
// CreateUser returns only after the commit, so an acknowledged registration
// survives a crash or kill -9 of the process.
//
// Concurrency: bbolt serializes writers (one read-write transaction at a time,
// each paying an fsync), while readers run in parallel with each other and
// with the writer. That is plenty for a single node; several Caddy processes
// cannot share one file (bbolt takes an exclusive flock, and Open fails after
// one second if another process holds it), so scale-out needs the Redis
// backend.
package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Bucket names.
var (
	bucketUsers      = []byte("users")
	bucketUserRefs   = []byte("user_refs")
	bucketEmail      = []byte("idx_email")
	bucketLogin      = []byte("idx_login")
	bucketTenants    = []byte("tenants")
	bucketTenantVAT  = []byte("idx_tenant_vat")
	bucketTenantCode = []byte("idx_tenant_code")
	bucketSecrets    = []byte("secrets")
	bucketMail       = []byte("mail")
	bucketOutbox     = []byte("outbox")
	bucketOutboxByID = []byte("outbox_by_id")
	bucketParked     = []byte("outbox_parked")
	bucketTokens     = []byte("tokens")
	bucketTokenExp   = []byte("token_expiry")
	bucketSeq        = []byte("seq")
	bucketIdem       = []byte("idem")
	bucketIdemExp    = []byte("idem_expiry")

	allBuckets = [][]byte{
		bucketUsers, bucketUserRefs, bucketEmail, bucketLogin,
		bucketTenants, bucketTenantVAT, bucketTenantCode,
		bucketSecrets,
		bucketMail, bucketOutbox, bucketOutboxByID, bucketParked,
		bucketTokens, bucketTokenExp,
		bucketSeq, bucketIdem, bucketIdemExp,
	}
)

// lockTimeout bounds how long Open waits for the file lock.
const lockTimeout = 1 * time.Second

// batchWindow is how long a registration that follows another closely
// waits for more to share its commit. Each commit costs two fdatasyncs,
// and a goroutine blocked in one keeps its scheduler P: on two cores,
// committing registrations one by one left the CPU idle 2% of the time and
// cost 3% of registrations/s against 25 ms batches. Registrations under
// load arrive a hash time ÷ pool size apart (11 ms on two cores), so the
// window must be longer than that to gather any. A registration with none
// in the previous window commits at once, without waiting.
const batchWindow = 25 * time.Millisecond

// Store is the embedded bbolt backend. It is safe for concurrent use.
type Store struct {
	db         *bolt.DB
	path       string
	challenges challenges
	feed       revocationFeed // revoked sessions, for engines' caches (session.go)

	// lastCreate is when CreateUser last wrote (Unix nanoseconds): it
	// tells a stream of registrations, worth batching, from a lone one.
	lastCreate atomic.Int64
	// clock is the wall clock of the batching decision and of the
	// idempotency records' expiry; tests replace it.
	clock func() time.Time
}

var _ store.Store = (*Store)(nil)

// lockedError reports that another process holds the file lock. It unwraps to
// bbolt's ErrTimeout.
type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return "embedded store " + e.path + " is locked by another process (is another Caddy running with the same data directory?)"
}

func (e *lockedError) Unwrap() error { return bolterrors.ErrTimeout }

// Open opens (creating if needed, with parent directories 0700 and the file
// 0600) the bbolt file at path. If another process holds the file, Open fails
// after about a second instead of waiting forever.
func Open(path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("embedded store %s: create directory: %w", path, err)
		}
	}
	// The file holds the signing key (in clear without a key-encryption
	// key) and password hashes: its mode is what protects them, so a file
	// made readable by others (a copy, a restore, a umask) is tightened.
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, fi.Mode().Perm()&0o700); err != nil {
			return nil, fmt.Errorf("embedded store %s: restrict mode to the owner: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err == nil {
		db.MaxBatchDelay = batchWindow
	}
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, &lockedError{path: path}
		}
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	return &Store{db: db, path: path, challenges: challenges{m: make(map[string]challenge)}, clock: time.Now}, nil
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// claim is one unique key a registration takes.
type claim struct {
	field  string
	bucket []byte
	key    []byte
	value  []byte
}

// CreateUser implements store.Store in one read-write transaction: every
// unique key (the user and tenant ids, the mail ids and the token hash
// included) is checked before anything is written; then the user, its
// indexes, the tenant, the mails (queued at their NextAttempt) and the
// token go in together. A user joining an existing tenant (no n.Tenant,
// TenantID set) is refused with an ErrNotFound-wrapped error, in the same
// transaction, when that tenant does not exist. A mail id or token hash already stored is a
// conflict ("mail_id", "token") like any other unique key. The idempotency
// key is checked first, so it is the conflict reported when it is held by
// an unexpired record; the sequence number is drawn after every check
// passed.
func (s *Store) CreateUser(ctx context.Context, n store.NewUser) error {
	const op = "create user"
	idem, err := store.PrepareIdempotency(n) // checks n.User first
	if err != nil {
		return err
	}
	u := n.User
	if err := ctx.Err(); err != nil {
		return store.Unavailable(op, err)
	}
	userJSON, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encode user: %w", err)
	}
	id := []byte(u.ID)
	claims := []claim{
		{"id", bucketUsers, id, userJSON},
		{"email", bucketEmail, []byte(u.EmailKey), id},
	}
	if u.LoginKey != "" {
		claims = append(claims, claim{"login", bucketLogin, []byte(u.LoginKey), id})
	}
	if t := n.Tenant; t != nil {
		tenantJSON, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("encode tenant: %w", err)
		}
		tid := []byte(t.ID)
		claims = append(claims, claim{"tenant_id", bucketTenants, tid, tenantJSON})
		keys := n.Of()
		if keys.TenantVATKey != "" {
			claims = append(claims, claim{"tenant_vat", bucketTenantVAT, []byte(keys.TenantVATKey), tid})
		}
		if keys.TenantCodeKey != "" {
			claims = append(claims, claim{"tenant_code", bucketTenantCode, []byte(keys.TenantCodeKey), tid})
		}
	}

	// Further writes, after the claims: queue entries, the token's
	// expiry index and the user's refs.
	var puts []claim
	for _, ref := range store.UserRefs(n) {
		puts = append(puts, claim{"", bucketUserRefs, refKey(u.ID, ref), []byte{}})
	}
	puts = append(puts, claim{"", bucketUsersByCreated, userIndexKey(u), []byte{}}) // users.go
	tok, tokJSON, err := store.PrepareToken(n)
	if err != nil {
		return err
	}
	if tok != nil {
		claims = append(claims, claim{"token", bucketTokens, []byte(tok.Hash), tokJSON})
		puts = append(puts, claim{"", bucketTokenExp, timeKey(tok.ExpiresAt, tok.Hash), []byte{}})
	}
	mailJSON, err := store.PrepareMails(n.Mails)
	if err != nil {
		return err
	}
	var chained []*store.Mail
	for i, m := range n.Mails {
		mid := []byte(m.ID)
		qkey := timeKey(m.NextAttempt, m.ID)
		claims = append(claims, claim{"mail_id", bucketMail, mid, mailJSON[i]})
		if m.Chain != "" {
			chained = append(chained, m) // queued after the claims, below
			continue
		}
		puts = append(puts,
			claim{"", bucketOutbox, qkey, mid},
			claim{"", bucketOutboxByID, mid, qkey})
	}

	sess, err := store.PrepareSession(n)
	if err != nil {
		return err
	}

	// A user joining an existing tenant needs it to exist at commit.
	var joins []byte
	if n.Tenant == nil && u.TenantID != "" {
		joins = []byte(u.TenantID)
	}

	var conflict *store.ConflictError
	var missing error
	var seq int64
	// In a stream of registrations, Batch coalesces them into one commit
	// (see batchWindow); each still returns only after its data is
	// durable. bbolt may run the function again (alone) when another in
	// the batch fails, so it resets what it reports. A lone registration
	// commits at once.
	write := s.db.Update
	if now := s.clock().UnixNano(); now-s.lastCreate.Swap(now) < int64(batchWindow) {
		write = s.db.Batch
	}
	err = write(func(tx *bolt.Tx) error {
		conflict, missing, seq = nil, nil, 0
		now := s.clock()
		if idem != nil {
			taken, err := idemTaken(tx, idem.Key, now)
			if err != nil {
				return err
			}
			if taken {
				conflict = &store.ConflictError{Field: "idempotency"}
				return conflict
			}
		}
		// An e-mail or login held by a user expired pending is freed
		// first; a later refusal rolls that back with the rest.
		if err := dropExpiredHolders(tx, claims, u.CreatedAt); err != nil {
			return err
		}
		if err := checkClaims(tx, claims, &conflict); err != nil {
			return err // a conflict rolls back; nothing was written
		}
		if joins != nil {
			b, err := bucket(tx, bucketTenants)
			if err != nil {
				return err
			}
			if !has(b, joins) {
				missing = fmt.Errorf("%s: tenant %s: %w", op, u.TenantID, store.ErrNotFound)
				return missing
			}
		}
		if err := sweepIdempotency(tx, now.UnixMilli()); err != nil {
			return err
		}
		if n.Sequence != "" {
			if seq, err = nextSeq(tx, n.Sequence); err != nil {
				return err
			}
			if claims[0].value, err = encodeUser(u, seq); err != nil {
				return err
			}
		}
		if idem != nil {
			if err := putIdempotency(tx, idem, seq); err != nil {
				return err
			}
		}
		if sess != nil {
			if err := putSession(tx, sess, time.Time{}); err != nil {
				return err
			}
		}
		if err := putAll(tx, append(claims, puts...)); err != nil {
			return err
		}
		return queueChained(tx, chained)
	})
	if conflict != nil {
		return conflict
	}
	if missing != nil {
		return missing
	}
	if errors.Is(err, errEncode) {
		return err
	}
	if err != nil {
		return store.Unavailable(op, err)
	}
	store.FinishCreate(n, idem, seq)
	return nil
}

// GetUser implements store.Store.
func (s *Store) GetUser(ctx context.Context, id string) (*store.User, error) {
	var u store.User
	if err := s.getJSON(ctx, "get user", bucketUsers, id, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// GetTenant implements store.Store.
func (s *Store) GetTenant(ctx context.Context, id string) (*store.Tenant, error) {
	var t store.Tenant
	if err := s.getJSON(ctx, "get tenant", bucketTenants, id, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// UserIDByEmail implements store.Store.
func (s *Store) UserIDByEmail(ctx context.Context, emailKey string) (string, error) {
	return s.getString(ctx, "user by email", bucketEmail, emailKey)
}

// UserIDByLogin implements store.Store.
func (s *Store) UserIDByLogin(ctx context.Context, loginKey string) (string, error) {
	return s.getString(ctx, "user by login", bucketLogin, loginKey)
}

// TenantIDByVAT implements store.Store.
func (s *Store) TenantIDByVAT(ctx context.Context, vatKey string) (string, error) {
	return s.getString(ctx, "tenant by vat", bucketTenantVAT, vatKey)
}

// Taken implements store.Store in one read-only transaction.
func (s *Store) Taken(ctx context.Context, k store.UniqueKeys) error {
	const op = "check unique keys"
	type check struct {
		field  string
		bucket []byte
		key    string
	}
	checks := []check{
		{"email", bucketEmail, k.EmailKey},
		{"login", bucketLogin, k.LoginKey},
		{"tenant_vat", bucketTenantVAT, k.TenantVATKey},
		{"tenant_code", bucketTenantCode, k.TenantCodeKey},
	}
	if err := ctx.Err(); err != nil {
		return store.Unavailable(op, err)
	}
	var conflict *store.ConflictError
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, c := range checks {
			if c.key == "" {
				continue
			}
			b, err := bucket(tx, c.bucket)
			if err != nil {
				return err
			}
			if !has(b, []byte(c.key)) {
				continue
			}
			if (c.field == "email" || c.field == "login") && !k.Now.IsZero() {
				// Held by a user expired pending: CreateUser frees it.
				u, err := expiredHolder(tx, c.bucket, []byte(c.key), k.Now)
				if err != nil {
					return err
				}
				if u != nil {
					continue
				}
			}
			conflict = &store.ConflictError{Field: c.field}
			return nil
		}
		return nil
	})
	if err != nil {
		return store.Unavailable(op, err)
	}
	if conflict != nil {
		return conflict
	}
	return nil
}

// Ping implements store.Store: nil while the store is open.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return store.Unavailable("ping", err)
	}
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return store.Unavailable("ping", err)
	}
	return nil
}

// Close implements store.Store. It waits for open transactions to finish and
// releases the file lock.
func (s *Store) Close() error { return s.db.Close() }

// lookup runs use on the value under key in bucket name, in a read-only
// transaction, or returns ErrNotFound. The value lives in the mmap: use
// must copy what it keeps.
func (s *Store) lookup(ctx context.Context, op string, name []byte, key string, use func(v []byte)) error {
	if err := ctx.Err(); err != nil {
		return store.Unavailable(op, err)
	}
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, name)
		if err != nil {
			return err
		}
		if v := get(b, key); v != nil {
			found = true
			use(v)
		}
		return nil
	})
	if err != nil {
		return store.Unavailable(op, err)
	}
	if !found {
		return store.ErrNotFound
	}
	return nil
}

func (s *Store) getJSON(ctx context.Context, op string, name []byte, key string, v any) error {
	var decodeErr error
	err := s.lookup(ctx, op, name, key, func(data []byte) {
		decodeErr = json.Unmarshal(data, v) // copies out of the mmap
	})
	if err != nil {
		return err
	}
	if decodeErr != nil {
		return fmt.Errorf("%s: decode %s/%s: %w", op, name, key, decodeErr)
	}
	return nil
}

func (s *Store) getString(ctx context.Context, op string, name []byte, key string) (string, error) {
	var out string
	err := s.lookup(ctx, op, name, key, func(v []byte) {
		out = string(v) // string() copies out of the mmap
	})
	return out, err
}

// bucket returns the named bucket; Open creates them all, so a missing one
// means the file was tampered with.
func bucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	b := tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("bucket %s missing", name)
	}
	return b, nil
}

// buckets returns the named buckets, in order (see bucket).
func buckets(tx *bolt.Tx, names ...[]byte) ([]*bolt.Bucket, error) {
	bs := make([]*bolt.Bucket, len(names))
	for i, name := range names {
		b, err := bucket(tx, name)
		if err != nil {
			return nil, err
		}
		bs[i] = b
	}
	return bs, nil
}

// get returns the value under key, or nil. Empty keys are never stored.
func get(b *bolt.Bucket, key string) []byte {
	if key == "" {
		return nil
	}
	return b.Get([]byte(key))
}

// has reports whether key exists in b, even with an empty value.
func has(b *bolt.Bucket, key []byte) bool {
	k, _ := b.Cursor().Seek(key)
	return k != nil && bytes.Equal(k, key)
}
