package account

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Admin routes: configured admins (HTTP Basic or an admin token) or users
// the operator granted manage-users (engine.RequireAdmin).

func (c *Contract) admin(w http.ResponseWriter, r *http.Request, req *contract.Request) bool {
	if _, err := contract.RequireAdmin(r, c.env.Engine, req.ClientIP, engine.PermManageUsers); err != nil {
		c.WriteError(w, r, err)
		return false
	}
	return true
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func (c *Contract) listUsers(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if !c.admin(w, r, req) {
		return
	}
	q := r.URL.Query()
	uq := engine.UserQuery{Status: q.Get("status"), TenantID: q.Get("tenant"), EmailPrefix: q.Get("email"), Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			var v engine.ValidationError
			v.Add("limit", "range", "must be a whole number from 1 to "+strconv.Itoa(store.MaxUserPage))
			c.WriteError(w, r, &v)
			return
		}
		uq.Limit = n
	}
	page, err := c.env.Engine.ListUsers(r.Context(), uq)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	users := make([]adminUserView, 0, len(page.Users))
	for _, u := range page.Users {
		users = append(users, adminViewOf(u))
	}
	var next *string
	if page.Next != "" {
		next = &page.Next
	}
	contract.WriteJSON(w, http.StatusOK, map[string]any{"users": users, "next_cursor": next})
}

func (c *Contract) getUser(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if !c.admin(w, r, req) {
		return
	}
	u, err := c.env.Engine.GetUser(r.Context(), contract.PathParam(r, "id"))
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	contract.WriteJSON(w, http.StatusOK, adminViewOf(u))
}

type patchRequest struct {
	Status           *string   `json:"status"`
	Permissions      *[]string `json:"permissions"`
	AdminPermissions *[]string `json:"admin_permissions"`
}

func (c *Contract) updateUser(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if !c.admin(w, r, req) {
		return
	}
	var body patchRequest
	if err := contract.DecodeJSON(req.Body, &body, 0); err != nil {
		c.WriteError(w, r, err)
		return
	}
	up := engine.UserUpdate{Status: body.Status, Permissions: body.Permissions, AdminPermissions: body.AdminPermissions}
	u, err := c.env.Engine.UpdateUser(r.Context(), contract.PathParam(r, "id"), up)
	if err != nil && u == nil {
		c.WriteError(w, r, err)
		return
	}
	if err != nil {
		// Stored, but the sessions' revocation failed: they still end at
		// their next refresh, which re-reads the user; say so in the log.
		contract.LogFailure(c.env.Logger, r, http.StatusInternalServerError, err)
	}
	contract.WriteJSON(w, http.StatusOK, adminViewOf(u))
}

func (c *Contract) deleteUser(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if !c.admin(w, r, req) {
		return
	}
	if err := c.env.Engine.DeleteUser(r.Context(), contract.PathParam(r, "id")); err != nil {
		c.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *Contract) logoutUser(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if !c.admin(w, r, req) {
		return
	}
	id := contract.PathParam(r, "id")
	if _, err := c.env.Engine.GetUser(r.Context(), id); err != nil {
		c.WriteError(w, r, err)
		return
	}
	sids, err := c.env.Engine.RevokeUserSessions(r.Context(), id, "")
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	contract.WriteJSON(w, http.StatusOK, map[string]int{"sessions_ended": len(sids)})
}
