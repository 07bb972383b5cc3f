package saymon

import (
	"encoding/json"
	"fmt"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// User is the document's User model, field for field and in its order.
type User struct {
	Login             string                     `json:"login"`
	Email             string                     `json:"email"`
	Status            int                        `json:"status"`
	EventFilter       []json.RawMessage          `json:"eventFilter"`
	ObjectPermissions contract.ObjectPermissions `json:"objectPermissions"`
	Permissions       []string                   `json:"permissions"`
	Contacts          []json.RawMessage          `json:"contacts"`
	ID                string                     `json:"id"`
}

// Statuses of the model: 0 until the e-mail is confirmed.
const (
	StatusUnconfirmed = 0
	StatusConfirmed   = 1
	StatusDisabled    = 2
)

func attributes(op contract.ObjectPermissions) (store.Attrs, error) {
	b, err := json.Marshal(op)
	if err != nil {
		return nil, fmt.Errorf("encode object permissions: %w", err)
	}
	return store.Attrs{
		"objectPermissions": b,
		"eventFilter":       json.RawMessage(`[]`),
		"contacts":          json.RawMessage(`[]`),
	}, nil
}

func userModel(u *store.User) User {
	m := User{
		Login:             u.Login,
		Email:             u.Email,
		EventFilter:       []json.RawMessage{},
		ObjectPermissions: contract.ObjectPermissions{Include: []string{}, Exclude: []string{}},
		Permissions:       u.Permissions,
		Contacts:          []json.RawMessage{},
		ID:                u.ID,
	}
	if m.Permissions == nil {
		m.Permissions = []string{}
	}
	switch u.Status {
	case store.StatusActive:
		m.Status = StatusConfirmed
	case store.StatusInactive:
		m.Status = StatusDisabled
	default:
		m.Status = StatusUnconfirmed
	}
	if raw, ok := u.Attributes["objectPermissions"]; ok {
		_ = json.Unmarshal(raw, &m.ObjectPermissions)
	}
	if raw, ok := u.Attributes["eventFilter"]; ok {
		_ = json.Unmarshal(raw, &m.EventFilter)
	}
	if raw, ok := u.Attributes["contacts"]; ok {
		_ = json.Unmarshal(raw, &m.Contacts)
	}
	return m
}
