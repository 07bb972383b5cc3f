// Package store defines the records caddyregister keeps and the
// backend-neutral interface every storage backend implements.
//
// A backend must make each write all-or-nothing: a user and its unique index
// entries (and the tenant it creates) appear together or not at all, whatever
// fails in between. The contract test suite in package storetest holds every
// backend to that.
package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Status is a user's lifecycle state.
type Status string

// User statuses. A pending user registered but has not activated the account.
const (
	StatusPending  Status = "pending"
	StatusActive   Status = "active"
	StatusInactive Status = "inactive"
)

// User is a registered account.
type User struct {
	ID           string    `json:"id"`
	Email        string    `json:"email"`
	EmailKey     string    `json:"email_key"`
	Login        string    `json:"login,omitempty"`
	LoginKey     string    `json:"login_key,omitempty"`
	Name         string    `json:"name,omitempty"`
	FirstName    string    `json:"first_name,omitempty"`
	LastName     string    `json:"last_name,omitempty"`
	PasswordHash string    `json:"password_hash,omitempty"`
	Status       Status    `json:"status"`
	TenantID     string    `json:"tenant_id,omitempty"`
	Permissions  []string  `json:"permissions"`
	Contract     string    `json:"contract"`
	Attributes   Attrs     `json:"attributes,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`

	// AdminPermissions are admin permissions (engine.AdminPermissions)
	// the operator granted this user explicitly. Only the admin API sets
	// them (it arrives with a later release; until then nothing does):
	// registration and default_permissions never do, so Permissions can
	// never open an admin route.
	AdminPermissions []string `json:"admin_permissions,omitempty"`

	// PendingUntil, when not zero, is when (Unix milliseconds) a pending
	// user who registered and was sent an e-mail confirmation expires: from
	// then on a registration of its e-mail or login replaces it (see
	// CreateUser). Confirming clears it; users created pending without an
	// expiry (by an admin, or waiting for an admin) never expire. Unix
	// milliseconds rather than a time, so the Redis script compares it as
	// a number.
	PendingUntil int64 `json:"pending_until,omitempty"`

	// Resend, set while the user awaits an e-mail confirmation, lets
	// the link be mailed again (see Resend, Links.ReissueLink).
	Resend *Resend `json:"resend,omitempty"`
}

// PendingExpired reports whether u is a pending user whose confirmation
// window closed at or before now: CreateUser replaces such a user when a
// new registration claims its e-mail or login.
func (u *User) PendingExpired(now time.Time) bool {
	return u.Status == StatusPending && u.PendingUntil > 0 && u.PendingUntil <= now.UnixMilli()
}

// Attrs holds contract-specific attributes that the engine stores but does
// not interpret (a contract's extra profile fields, say).
type Attrs map[string]json.RawMessage

// Tenant is an organisation users belong to.
type Tenant struct {
	ID        string    `json:"id"`
	Code      string    `json:"code"`
	Name      string    `json:"name"`
	Groups    []string  `json:"groups,omitempty"` // group codes (case-sensitive); the tenant's users may only be put in these
	Billing   *Billing  `json:"billing,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Billing is a tenant's billing identity.
type Billing struct {
	Company       string      `json:"company"`
	VATID         string      `json:"vat_id"`
	VATKey        string      `json:"vat_key"`
	Address       string      `json:"address,omitempty"`
	CreditBalance json.Number `json:"credit_balance,omitempty"`
}

// NewUser is one atomic registration: the user, optionally the tenant it
// founds, the mails to send about it and its activation token. Either
// everything is written or nothing is, so no mail is ever sent for a user
// that was not created, and no user is created whose mail is lost.
type NewUser struct {
	User   *User
	Tenant *Tenant
	Mails  []*Mail
	Token  *Token

	// Sequence, when set, names a store-wide sequence whose next number
	// CreateUser draws inside its atomic step, after every claim has
	// passed: a rejected or failed create consumes no number, so at rest
	// every created user holds exactly one number and there are no gaps.
	// The number (1, 2, 3, ...) is stored in the user's
	// Attributes[SeqAttr] as a JSON number, and in the Idempotency record.
	// On success CreateUser also sets it in n.User.Attributes[SeqAttr]
	// (allocating the map if needed) and, with an Idempotency, in
	// n.Idempotency.Seq. A SeqAttr the caller put in Attributes is
	// overwritten.
	Sequence string
	// Idempotency, when set, claims Idempotency.Key in the same atomic
	// step. The key is checked before every other claim: a key held by an
	// unexpired record makes CreateUser fail with
	// *ConflictError{Field: "idempotency"} whatever else would conflict,
	// so the loser of a race (or a retry) can read the winner's record
	// with GetIdempotency and replay. UserID (from n.User.ID) and Seq are
	// filled in by CreateUser; CreatedAt too when zero. ExpiresAt is
	// required.
	Idempotency *Idempotency
	// Session, when set, opens a session for the new user in the same
	// atomic step (a registration that answers with an access token: the
	// token belongs to it, so disabling or erasing the user ends it). It
	// must be the user's (UserID = User.ID) and pass CheckSession.
	Session *Session
}

// SeqAttr is the user attribute CreateUser stores a drawn sequence number
// under (see NewUser.Sequence).
const SeqAttr = "seq"

// MaxIdempotencyKeyLen bounds Idempotency.Key (bytes); callers hash longer
// client-supplied values.
const MaxIdempotencyKeyLen = 1024

// Idempotency records which user a request created, so a retry of the same
// request within ExpiresAt replays instead of creating again.
type Idempotency struct {
	// Key is scoped by the caller (contract, principal, header value).
	Key string `json:"key"`
	// Fingerprint identifies the request body (hex SHA-256, computed by
	// the caller): the same key with another fingerprint is a different
	// request, which the caller rejects.
	Fingerprint string `json:"fingerprint"`
	// UserID is the created user, filled in by CreateUser.
	UserID string `json:"user_id"`
	// Seq is the number drawn from NewUser.Sequence, 0 when none.
	Seq       int64     `json:"seq,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt ends the record: it reads as ErrNotFound from then on and
	// its key can be claimed again.
	ExpiresAt time.Time `json:"expires_at"`
}

// Mail is one message in the durable outbox.
type Mail struct {
	ID       string   `json:"id"`
	To       []string `json:"to"`
	Subject  string   `json:"subject"`
	Text     string   `json:"text"`
	HTML     string   `json:"html,omitempty"`
	Contract string   `json:"contract,omitempty"`
	UserID   string   `json:"user_id,omitempty"`
	// Attempts counts failed deliveries so far.
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// NextAttempt is when the message is due (again).
	NextAttempt time.Time `json:"next_attempt"`
	// Sealed, when set, is the encrypted body (subject, text and HTML)
	// that mail.Sealer made; Text and HTML are then empty, so a link's
	// token is never at rest in clear. Subject keeps a copy with any token
	// blanked, for operators.
	Sealed string `json:"sealed,omitempty"`
	// ExpiresAt, when set, is when the body stops being useful (its
	// link's token expires): an undelivered message is parked then, and
	// a parked one loses its body (DropParkedBodies).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Purpose is the purpose of the link token the mail carries (or, for
	// a notice without a link, a name of its kind), so a reissue scoped
	// to one purpose (LinkReissue.Purpose) drops only the undelivered
	// mails carrying earlier links of that purpose.
	Purpose string `json:"purpose,omitempty"`

	// Kind says how the worker delivers the message: "" (KindMail) by
	// SMTP, KindWebhook by an HTTP POST to To[0] with Text as the JSON
	// body (see outbox.go).
	Kind string `json:"kind,omitempty"`
	// Event is a webhook's event type ("user.created", ...), kept in
	// clear for operators and metrics; the payload itself is sealed.
	Event string `json:"event,omitempty"`
	// Chain, when set, orders the message within its chain: the outbox
	// hands out a chained message only once every earlier message of the
	// same chain was acked or parked (see outbox.go).
	Chain string `json:"chain,omitempty"`
}

// HasBody reports whether m still carries a body, clear or sealed.
func (m *Mail) HasBody() bool { return m.Text != "" || m.HTML != "" || m.Sealed != "" }

// DropBody clears m's body, clear and sealed; the record (recipients,
// subject, times, error) stays for operators.
func (m *Mail) DropBody() { m.Text, m.HTML, m.Sealed = "", "", "" }

// Token is a single-use secret sent to a user (activation, set-password).
// Only its hash is stored; the secret itself exists only in the mail.
type Token struct {
	// Hash is the hex SHA-256 of the secret.
	Hash    string `json:"hash"`
	Purpose string `json:"purpose"`
	UserID  string `json:"user_id"`
	// ExpiresAt bounds the token's life; the record is deleted then, used
	// or not.
	ExpiresAt time.Time `json:"expires_at"`
	// UsedAt is set by the first use; later uses see it and may answer
	// idempotently.
	UsedAt *time.Time `json:"used_at,omitempty"`
}

// Errors backends return. Callers test them with errors.Is / errors.As.
var (
	// ErrNotFound means the record does not exist (or has expired).
	ErrNotFound = errors.New("not found")
	// ErrTokenUsed means a single-use token was used before. UseToken
	// returns it together with the token's user.
	ErrTokenUsed = errors.New("token already used")
	// ErrUnavailable wraps every failure to reach or use the backend, so the
	// HTTP layer can answer 503 without parsing driver errors.
	ErrUnavailable = errors.New("store unavailable")
	// ErrCorrupt is wrapped, with the id of each record, when a sweep
	// (DropParkedBodies) skipped records it cannot decode: it did the rest
	// of its work, and the count it returns with the error is valid. The
	// skipped records need an operator; they must not stop the sweep.
	ErrCorrupt = errors.New("record cannot be decoded")
)

// ConflictError reports which unique field is taken.
type ConflictError struct {
	// Field is "email", "login", "tenant_vat" or "tenant_code"; "id",
	// "tenant_id", "token" or "mail_id" when a freshly drawn id or token
	// collides (callers may retry); "tenant_id" also when CreateTenant or
	// EnsureTenant is given an id already taken (by a tenant with another
	// code, for EnsureTenant); "idempotency" when the NewUser.Idempotency
	// key is held by an unexpired record.
	Field string
}

func (e *ConflictError) Error() string { return e.Field + " already exists" }

// Unavailable wraps err so that errors.Is(err, ErrUnavailable) holds while the
// driver's message stays available for logs.
func Unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// Store is what every backend implements.
type Store interface {
	// CreateUser writes a user, its unique index entries, the optional new
	// tenant, mails, token and idempotency record atomically, drawing the
	// optional sequence number in the same step (see NewUser). It returns
	// *ConflictError when a unique key is taken ("idempotency" first).
	//
	// An e-mail or login held by a user that expired pending
	// (User.PendingExpired at n.User.CreatedAt) is not taken: the same
	// atomic step deletes that user with every index entry, token and
	// queued or parked mail it owns (see UserRefs), then writes the new
	// one. Tenants it founded stay. So of concurrent registrations of an
	// expired address exactly one wins, and the expired user's links stop
	// working.
	// A user joining an existing tenant (n.Tenant nil, n.User.TenantID
	// set) needs that tenant to exist when the step commits: otherwise
	// nothing is written and the error wraps ErrNotFound (checked after
	// the unique keys, so a conflict is reported first).
	CreateUser(ctx context.Context, n NewUser) error
	// GetIdempotency returns the idempotency record under key, or
	// ErrNotFound (also once it has expired).
	GetIdempotency(ctx context.Context, key string) (*Idempotency, error)
	// GetUser returns the user with id, or ErrNotFound.
	GetUser(ctx context.Context, id string) (*User, error)
	// UserIDByEmail resolves a normalized e-mail (see EmailKey).
	UserIDByEmail(ctx context.Context, emailKey string) (string, error)
	// UserIDByLogin resolves a normalized login (see LoginKey).
	UserIDByLogin(ctx context.Context, loginKey string) (string, error)
	// Taken reports the first of the given unique keys already in use, as a
	// *ConflictError, or nil; an e-mail or login held by a user expired
	// pending at keys.Now is not in use (CreateUser would replace it). It is the cheap pre-check before hashing; only
	// CreateUser's own check is authoritative.
	Taken(ctx context.Context, keys UniqueKeys) error
	// GetTenant returns the tenant with id, or ErrNotFound.
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	// TenantIDByVAT resolves a normalized VAT id (see VATKey).
	TenantIDByVAT(ctx context.Context, vatKey string) (string, error)
	// CreateTenant writes a tenant and its code index (and, when it has
	// Billing with a VATKey, its VAT index) atomically. It returns
	// *ConflictError{Field: "tenant_id"} when the id is taken,
	// "tenant_code" when the code is (case-insensitively, see
	// TenantCodeKey), "tenant_vat" when the VAT key is; nothing is written
	// then.
	CreateTenant(ctx context.Context, t *Tenant) error
	// EnsureTenant creates t as CreateTenant does or, when a tenant with
	// t's ID and t's code (case-insensitively) already exists, updates it
	// in one atomic step: its Name becomes t.Name (unless t.Name is empty)
	// and t.Groups missing from its Groups are appended (union, existing
	// order kept); everything else (Code spelling, Billing, CreatedBy,
	// CreatedAt) stays. So declaring the same tenant at every start is
	// idempotent. An id held by a tenant with another code is a
	// *ConflictError{Field: "tenant_id"}; a code held by another id
	// "tenant_code"; a new tenant's VAT key held by another "tenant_vat".
	// t itself is not modified.
	EnsureTenant(ctx context.Context, t *Tenant) error
	// TenantIDByCode resolves a tenant code, case-insensitively (the
	// backend applies TenantCodeKey).
	TenantIDByCode(ctx context.Context, code string) (string, error)
	// ListTenants returns every tenant, sorted by SortTenants. It reads
	// them all: meant for tens or hundreds of tenants, not millions.
	ListTenants(ctx context.Context) ([]*Tenant, error)
	// LoadOrCreateSecret returns the secret stored under name, storing value
	// first if none exists. Concurrent callers all get the same winner, which
	// is how every instance on one store ends up signing with one key.
	LoadOrCreateSecret(ctx context.Context, name string, value []byte) ([]byte, error)
	// SwapSecret replaces the secret stored under name with value if it
	// still holds old, atomically, and reports whether it did. A secret
	// that is absent or holds anything else is left as it is (false, nil):
	// the caller lost a race, re-reads and decides again. This is how the
	// signing key set is migrated (encrypted) and rotated without two
	// instances overwriting each other's key.
	SwapSecret(ctx context.Context, name string, old, value []byte) (bool, error)
	// Ping checks the backend is reachable.
	Ping(ctx context.Context) error

	// PutChallenge stores a CAPTCHA answer hash under token for ttl.
	PutChallenge(ctx context.Context, token string, answerHash []byte, ttl time.Duration) error
	// TakeChallenge returns and deletes the challenge in one atomic step, so
	// of two concurrent callers with one token at most one gets it; the
	// other (and any later caller) gets ErrNotFound, as does an expired one.
	TakeChallenge(ctx context.Context, token string) ([]byte, error)

	// UseToken marks the token with this hash used and applies mutate to
	// its user, atomically: the user is saved with mutate's changes and the
	// token marked used, or neither. A token used before returns its user
	// (unchanged) and ErrTokenUsed; an unknown or expired one ErrNotFound.
	// mutate may return an error to abort without writing; UseToken then
	// returns (nil, err). mutate may run more than once (Redis retries its
	// optimistic transaction, each time on a fresh copy) and, on bbolt,
	// runs under the write lock: do expensive work such as hashing before
	// the call. It must not change ID, TenantID, Email, EmailKey, Login or
	// LoginKey (indexes do not follow); backends refuse that.
	// outbox, when given, builds messages from the user as mutate left it
	// that are enqueued in the same step (the user.activated event).
	UseToken(ctx context.Context, tokenHash string, now time.Time, mutate func(*User) error, outbox ...OutboxFunc) (*User, error)

	// ClaimMail returns one message due at now and hides it from other
	// claimers until now+lease, so with several instances each message is
	// sent by one of them; a claimer that dies lets the lease lapse and the
	// message comes due again. ErrNotFound when nothing is due.
	ClaimMail(ctx context.Context, now time.Time, lease time.Duration) (*Mail, error)
	// AckMail deletes a delivered message.
	AckMail(ctx context.Context, id string) error
	// RetryMail saves m's Attempts and LastError and makes it due again at
	// m.NextAttempt. It returns ErrNotFound for a message already acked,
	// so a claimer whose lease lapsed cannot resurrect it.
	RetryMail(ctx context.Context, m *Mail) error
	// ParkMail moves m out of the outbox into the parked set: it keeps
	// failing and needs an operator, but is never dropped.
	ParkMail(ctx context.Context, m *Mail) error
	// MailCounts reports how many messages are queued and parked.
	MailCounts(ctx context.Context) (queued, parked int, err error)
	// DropParkedBodies clears the body (Mail.DropBody) of parked messages
	// whose ExpiresAt is before now, at most limit of them, and returns how
	// many it cleared. The rest of each record stays for operators: a link
	// that no longer works is no use to resend, and a body kept longer
	// only keeps a token at rest. A record that cannot be decoded is
	// skipped (Redis no longer lists it for the sweep) and named in an
	// error wrapping ErrCorrupt, returned with the count of the others.
	DropParkedBodies(ctx context.Context, now time.Time, limit int) (int, error)
	// Close releases the backend's resources.
	Close() error

	// Sessions: login sessions, refresh-token rotation and the revocation
	// feed (session.go).
	Sessions

	// Links: mailing a confirmation link again (links.go).
	Links

	// Users: updating, erasing and listing users (users.go).
	Users
}

// UniqueKeys are the normalized unique values of a prospective registration.
// Empty fields are not checked.
type UniqueKeys struct {
	EmailKey      string
	LoginKey      string
	TenantVATKey  string
	TenantCodeKey string
	// Now, when set, frees an e-mail or login held by a user that expired
	// pending by then (User.PendingExpired).
	Now time.Time
}

// Of returns the unique keys a NewUser claims, with Now its user's
// CreatedAt.
func (n NewUser) Of() UniqueKeys {
	k := UniqueKeys{EmailKey: n.User.EmailKey, LoginKey: n.User.LoginKey, Now: n.User.CreatedAt}
	if n.Tenant != nil {
		k.TenantCodeKey = TenantCodeKey(n.Tenant.Code)
		k.TenantVATKey = TenantVATKey(n.Tenant)
	}
	return k
}

// EmailKey is the form e-mails are unique on: IdentifierKey of the trimmed
// address. Sub-addresses (+alias) are deliberately kept distinct, since the
// contracts promise aliases work as separate accounts.
func EmailKey(email string) string { return IdentifierKey(email) }

// LoginKey is the form logins are unique on: IdentifierKey of the trimmed
// login.
func LoginKey(login string) string { return IdentifierKey(login) }

// IdentifierKey is the form identifiers that people read (e-mails, logins,
// tenant codes) are unique on: trimmed, then NFKC, lowercasing, full
// Unicode case folding, NFKC again and trimmed again. NFKC makes
// compatibility variants one (full-width "ｕｓｅｒ" is "user", the ligature
// "ﬁ" is "fi"); full folding makes case
// variants one, including those that change length ("straße" folds to
// "strasse"); the second NFKC puts back the normal form that folding can
// undo, so the key of a key is itself (IdentifierKey is idempotent, which
// the tests check by fuzzing). Keys of ASCII identifiers are their
// lowercase, as before this normalisation.
func IdentifierKey(s string) string {
	s = strings.TrimSpace(s)
	if isASCII(s) {
		// The common case, without the three passes' allocations.
		return strings.ToLower(s)
	}
	// Lowercasing before folding makes the fold a fixed point where
	// golang.org/x/text's cases.Fold alone is not: it swaps Cherokee
	// upper and lower case (fold(ꭰ) = Ꭰ, fold(Ꭰ) = ꭰ), so a key's key
	// would differ. A Caser is not safe for concurrent use: a fresh one
	// per call. Trimmed again: NFKC can turn a rune into a space and another (΅ is
	// " ̈́").
	return strings.TrimSpace(norm.NFKC.String(cases.Fold().String(strings.ToLower(norm.NFKC.String(s)))))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Invisible returns the first rune of s that displays as nothing or
// reorders what follows: a format character (Unicode category Cf: zero
// width space and joiners, soft hyphen, byte order mark, the bidi marks,
// embeddings, overrides and isolates U+200E-F, U+202A-E, U+2066-9,
// U+061C, ...), a variation selector, another default-ignorable code
// point (the combining grapheme joiner U+034F, the Hangul fillers U+115F,
// U+1160, U+3164, U+FFA0, ...) or the blank braille pattern U+2800. Two
// identifiers that differ only by such runes read the same, so
// identifiers and names refuse them. ok is false when there is none.
func Invisible(s string) (r rune, ok bool) {
	for _, r := range s {
		if unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point) || r == brailleBlank {
			return r, true
		}
	}
	return 0, false
}

// brailleBlank (U+2800) is a symbol, not a format character, but every
// font draws it as a blank: "admin\u2800" reads as "admin".
const brailleBlank = '\u2800'

// TenantCodeKey is the form tenant codes are unique on (case-insensitive).
func TenantCodeKey(code string) string { return LoginKey(code) }

// SortTenants sorts ts by code, case-insensitively (TenantCodeKey), then
// by code and id, so the order is total.
func SortTenants(ts []*Tenant) {
	slices.SortFunc(ts, func(a, b *Tenant) int {
		return cmp.Or(
			cmp.Compare(TenantCodeKey(a.Code), TenantCodeKey(b.Code)),
			cmp.Compare(a.Code, b.Code),
			cmp.Compare(a.ID, b.ID),
		)
	})
}

// MergeTenant applies a redeclaration of a tenant to its stored record cur,
// as EnsureTenant does: cur.Name becomes decl.Name unless that is empty,
// and decl.Groups missing from cur.Groups are appended (case-sensitive,
// duplicates and empty codes skipped). It reports whether cur changed.
func MergeTenant(cur, decl *Tenant) bool {
	changed := false
	if decl.Name != "" && decl.Name != cur.Name {
		cur.Name, changed = decl.Name, true
	}
	for _, g := range decl.Groups {
		if g != "" && !slices.Contains(cur.Groups, g) {
			cur.Groups, changed = append(cur.Groups, g), true
		}
	}
	return changed
}

// VATKey normalizes a VAT id so "es 12.345.678-x" and "ES12345678X" are one
// company: separators dropped, letters upper-cased.
func VATKey(vat string) string {
	var b strings.Builder
	for _, r := range norm.NFC.String(vat) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}
