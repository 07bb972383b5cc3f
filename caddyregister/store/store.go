// Package store defines the records caddyregister keeps and the
// backend-neutral interface every storage backend implements.
//
// A backend must make each write all-or-nothing: a user and its unique index
// entries (and the tenant it creates) appear together or not at all, whatever
// fails in between. The contract test suite in package storetest holds every
// backend to that.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

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
}

// Attrs holds contract-specific attributes that the engine stores but does
// not interpret (a contract's extra profile fields, say).
type Attrs map[string]json.RawMessage

// Tenant is an organisation users belong to.
type Tenant struct {
	ID        string    `json:"id"`
	Code      string    `json:"code"`
	Name      string    `json:"name"`
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

// NewUser is one atomic registration: the user, and optionally the tenant it
// founds. Either everything is written or nothing is.
type NewUser struct {
	User   *User
	Tenant *Tenant
}

// Errors backends return. Callers test them with errors.Is / errors.As.
var (
	// ErrNotFound means the record does not exist (or has expired).
	ErrNotFound = errors.New("not found")
	// ErrUnavailable wraps every failure to reach or use the backend, so the
	// HTTP layer can answer 503 without parsing driver errors.
	ErrUnavailable = errors.New("store unavailable")
)

// ConflictError reports which unique field is taken.
type ConflictError struct {
	// Field is "email", "login", "tenant_vat" or "tenant_code"; "id" or
	// "tenant_id" when a freshly drawn id collides (callers may retry).
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
	// CreateUser writes a user, its unique index entries and the optional new
	// tenant atomically. It returns *ConflictError when a unique key is taken.
	CreateUser(ctx context.Context, n NewUser) error
	// GetUser returns the user with id, or ErrNotFound.
	GetUser(ctx context.Context, id string) (*User, error)
	// UserIDByEmail resolves a normalized e-mail (see EmailKey).
	UserIDByEmail(ctx context.Context, emailKey string) (string, error)
	// UserIDByLogin resolves a normalized login (see LoginKey).
	UserIDByLogin(ctx context.Context, loginKey string) (string, error)
	// Taken reports the first of the given unique keys already in use, as a
	// *ConflictError, or nil. It is the cheap pre-check before hashing; only
	// CreateUser's own check is authoritative.
	Taken(ctx context.Context, keys UniqueKeys) error
	// GetTenant returns the tenant with id, or ErrNotFound.
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	// TenantIDByVAT resolves a normalized VAT id (see VATKey).
	TenantIDByVAT(ctx context.Context, vatKey string) (string, error)
	// LoadOrCreateSecret returns the secret stored under name, storing value
	// first if none exists. Concurrent callers all get the same winner, which
	// is how every instance on one store ends up signing with one key.
	LoadOrCreateSecret(ctx context.Context, name string, value []byte) ([]byte, error)
	// Ping checks the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}

// UniqueKeys are the normalized unique values of a prospective registration.
// Empty fields are not checked.
type UniqueKeys struct {
	EmailKey      string
	LoginKey      string
	TenantVATKey  string
	TenantCodeKey string
}

// Of returns the unique keys a NewUser claims.
func (n NewUser) Of() UniqueKeys {
	k := UniqueKeys{EmailKey: n.User.EmailKey, LoginKey: n.User.LoginKey}
	if n.Tenant != nil {
		k.TenantCodeKey = TenantCodeKey(n.Tenant.Code)
		if n.Tenant.Billing != nil {
			k.TenantVATKey = n.Tenant.Billing.VATKey
		}
	}
	return k
}

// EmailKey is the form e-mails are unique on: trimmed, Unicode NFC,
// lowercased. Sub-addresses (+alias) are deliberately kept distinct, since
// the contracts promise aliases work as separate accounts.
func EmailKey(email string) string {
	return strings.ToLower(norm.NFC.String(strings.TrimSpace(email)))
}

// LoginKey is the form logins are unique on (case-insensitive).
func LoginKey(login string) string {
	return strings.ToLower(norm.NFC.String(strings.TrimSpace(login)))
}

// TenantCodeKey is the form tenant codes are unique on (case-insensitive).
func TenantCodeKey(code string) string { return LoginKey(code) }

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
