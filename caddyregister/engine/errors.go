package engine

import (
	"errors"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/password"
)

// FieldError is one invalid input field. Contracts render it in their own
// envelope and wording; Rule is stable for programs, Message for people.
type FieldError struct {
	Field   string
	Rule    string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ValidationError collects every invalid field of one request, so contracts
// that report all failures at once can.
type ValidationError struct {
	Fields []*FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Fields) == 0 {
		return "invalid input"
	}
	return e.Fields[0].Error()
}

// Add appends a field error.
func (e *ValidationError) Add(field, rule, msg string) {
	e.Fields = append(e.Fields, &FieldError{Field: field, Rule: rule, Message: msg})
}

// Has reports whether field already has an error.
func (e *ValidationError) Has(field string) bool {
	for _, f := range e.Fields {
		if f.Field == field {
			return true
		}
	}
	return false
}

// Err returns e, or nil when it holds no field errors.
func (e *ValidationError) Err() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

// RateLimitedError means the caller must slow down.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string { return "rate limit exceeded" }

// Sentinel errors the engine returns. Store errors (store.ErrUnavailable,
// *store.ConflictError, store.ErrNotFound) pass through unchanged.
var (
	// ErrUnauthenticated means no or invalid credentials.
	ErrUnauthenticated = errors.New("authentication required")
	// ErrForbidden means valid credentials without the needed permission.
	ErrForbidden = errors.New("permission denied")
	// ErrTenantExists means a registration's billing names a company that is
	// already a tenant. Registering never joins an existing tenant: anyone can
	// type a VAT id, so joining must go through the tenant's own admins.
	ErrTenantExists = errors.New("tenant already exists")
	// ErrNotReady means the engine has not loaded its signing key yet (the
	// store was unreachable at start); callers answer 503.
	ErrNotReady = errors.New("engine not ready")
)

// passwordField is the "password" field error for what a password policy
// refused (its rule and message), nil when it accepted.
func passwordField(err error) *FieldError {
	var pe *password.PolicyError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return &FieldError{Field: "password", Rule: pe.Rule, Message: pe.Message}
	default:
		return &FieldError{Field: "password", Rule: "policy", Message: err.Error()}
	}
}
