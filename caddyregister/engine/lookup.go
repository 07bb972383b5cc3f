package engine

import (
	"context"
	"errors"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// LookupUser finds a user by id, e-mail or login, in that order, as an
// operator names one (the admin API takes ids; a command line may take
// any). An unknown user is store.ErrNotFound.
func (e *Engine) LookupUser(ctx context.Context, ref string) (*store.User, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, store.ErrNotFound
	}
	if store.IsID(ref) {
		u, err := e.cfg.Store.GetUser(ctx, ref)
		if !errors.Is(err, store.ErrNotFound) {
			return u, err
		}
	}
	return e.findUser(ctx, ref)
}
