package caddyregister

import (
	"context"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The deferred store's store.Sessions methods: like the others, they pass
// through once Start opened the embedded store.

func (d *deferredStore) CreateSession(ctx context.Context, sess *store.Session, outbox ...*store.Mail) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.CreateSession(ctx, sess, outbox...)
}

func (d *deferredStore) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Session, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.RotateRefresh(ctx, r)
}

func (d *deferredStore) GetSession(ctx context.Context, userID, sid string) (*store.Session, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.GetSession(ctx, userID, sid)
}

func (d *deferredStore) ListSessions(ctx context.Context, userID string) ([]*store.Session, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.ListSessions(ctx, userID)
}

func (d *deferredStore) RevokeSession(ctx context.Context, userID, sid string) error {
	s, err := d.get()
	if err != nil {
		return err
	}
	return s.RevokeSession(ctx, userID, sid)
}

func (d *deferredStore) RevokeUserSessions(ctx context.Context, userID, exceptSID string) ([]string, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.RevokeUserSessions(ctx, userID, exceptSID)
}

func (d *deferredStore) Revocations(ctx context.Context, after uint64, limit int) ([]store.Revocation, uint64, error) {
	s, err := d.get()
	if err != nil {
		return nil, 0, err
	}
	return s.Revocations(ctx, after, limit)
}

// The deferred store's store.Users methods.

func (d *deferredStore) UpdateUser(ctx context.Context, id string, p store.UserPatch) (*store.User, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.UpdateUser(ctx, id, p)
}

func (d *deferredStore) DeleteUser(ctx context.Context, id string, outbox ...*store.Mail) (*store.User, []string, error) {
	s, err := d.get()
	if err != nil {
		return nil, nil, err
	}
	return s.DeleteUser(ctx, id, outbox...)
}

func (d *deferredStore) ListUsers(ctx context.Context, f store.UserFilter) (*store.UserPage, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.ListUsers(ctx, f)
}

func (d *deferredStore) BackfillUserIndex(ctx context.Context) (int, error) {
	s, err := d.get()
	if err != nil {
		return 0, err
	}
	return s.BackfillUserIndex(ctx)
}
