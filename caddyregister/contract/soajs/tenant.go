package soajs

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

const maxTenantCode = 64

// tenantModel is a tenant as the admin routes show it.
type tenantModel struct {
	ID     string   `json:"id"`
	Code   string   `json:"code"`
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
}

func modelOf(t *store.Tenant) tenantModel {
	m := tenantModel{ID: t.ID, Code: t.Code, Name: t.Name, Groups: t.Groups}
	if m.Groups == nil {
		m.Groups = []string{}
	}
	return m
}

// validCode is a tenant code: letters, digits, _ and -.
func validCode(s string) bool { return validUsername(s) && len(s) <= maxTenantCode }

// parseTenant reads POST /admin/tenant: code and name required, groups
// optional, id optional (drawn when absent).
func parseTenant(in input) (*store.Tenant, *Failures) {
	x := &fields{in: in}
	t := &store.Tenant{}
	if id, ok := x.optional(0, "id"); ok {
		if !store.IsID(id) {
			x.f.add(0, CodeInvalid, invalidMsg("id", "id must be 24 lowercase hexadecimal digits"))
		}
		t.ID = id
	}
	t.Code = strings.TrimSpace(x.required(1, "code"))
	if t.Code != "" && !validCode(t.Code) {
		x.f.add(1, CodeInvalid, invalidMsg("code", fmt.Sprintf("code must be at most %d letters, digits, _ and -", maxTenantCode)))
	}
	t.Name = strings.TrimSpace(x.required(2, "name"))
	if t.Name != "" {
		x.text(2, "name", t.Name, maxName)
	}
	if gs, present, bad := in.strs("groups"); bad != "" {
		x.f.add(posGroups, CodeInvalid, invalidMsg("groups", "groups "+bad))
	} else if present {
		t.Groups = x.groups(gs)
	}
	return t, &x.f
}

func (c *Contract) addTenant(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if !c.requireAdmin(w, r, req) {
		return
	}
	in, err := decodeBody(r, req.Body)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	t, f := parseTenant(in)
	if err := f.err(); err != nil {
		c.WriteError(w, r, err)
		return
	}
	if err := c.env.Engine.CreateTenant(r.Context(), t); err != nil {
		c.WriteError(w, r, err)
		return
	}
	ok(w, modelOf(t))
}

func (c *Contract) listTenants(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if !c.requireAdmin(w, r, req) {
		return
	}
	ts, err := c.env.Engine.ListTenants(r.Context())
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	out := make([]tenantModel, 0, len(ts))
	for _, t := range ts {
		out = append(out, modelOf(t))
	}
	ok(w, out)
}
