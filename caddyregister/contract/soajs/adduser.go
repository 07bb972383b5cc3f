package soajs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Limits the document leaves open.
const (
	maxUsername  = 128
	maxName      = 255
	maxGroups    = 100
	maxGroupCode = 64
	maxPinCode   = 64
)

// Where each field's failures sort in a reply: the document's table order.
const (
	posTID = iota
	posTCode
	posUsername
	posFirstName
	posLastName
	posEmail
	posProfile
	posGroups
	posStatus
	posPassword
	posConfirmation
	posPin
)

// Statuses of the document's enum.
const (
	statusPending  = "pendingNew"
	statusActive   = "active"
	statusInactive = "inactive"
)

// addUserRequest is an addUser body that passed the wire checks.
type addUserRequest struct {
	TenantID   string
	TenantCode string
	Username   string
	FirstName  string
	LastName   string
	Email      string
	// Profile is the compacted JSON object the profile string held.
	Profile  json.RawMessage
	Groups   []string
	Status   store.Status
	Password string
	Pin      *pinRequest
}

type pinRequest struct {
	Code    string
	Allowed bool
}

// fields collects failures while reading one input.
type fields struct {
	in input
	f  Failures
}

// required reads a required string: absent, null or blank is 172.
func (x *fields) required(pos int, name string) string {
	v, present, bad := x.in.str(name)
	switch {
	case bad != "":
		x.f.add(pos, CodeInvalid, invalidMsg(name, name+" "+bad))
		return ""
	case !present || strings.TrimSpace(v) == "":
		x.f.add(pos, CodeMissing, missingMsg(name))
		return ""
	}
	return v
}

// optional reads an optional string; blank counts as not given.
func (x *fields) optional(pos int, name string) (string, bool) {
	v, present, bad := x.in.str(name)
	if bad != "" {
		x.f.add(pos, CodeInvalid, invalidMsg(name, name+" "+bad))
		return "", false
	}
	if !present || strings.TrimSpace(v) == "" {
		return "", false
	}
	return v, true
}

// fromBodyOrQuery reads tId or tCode: the body's value when it has one,
// else the query string's.
func (x *fields) fromBodyOrQuery(pos int, name string, query url.Values) string {
	if v, ok := x.optional(pos, name); ok {
		return strings.TrimSpace(v)
	}
	if x.f.hasAt(pos) {
		return ""
	}
	q := query[name]
	switch {
	case len(q) > 1:
		x.f.add(pos, CodeInvalid, invalidMsg(name, name+" must be a single value, not a list"))
		return ""
	case len(q) == 0 || strings.TrimSpace(q[0]) == "":
		x.f.add(pos, CodeMissing, missingMsg(name))
		return ""
	case !utf8.ValidString(q[0]):
		x.f.add(pos, CodeInvalid, invalidMsg(name, name+" must be valid UTF-8 text"))
		return ""
	}
	return strings.TrimSpace(q[0])
}

func (f *Failures) hasAt(pos int) bool {
	for _, d := range f.List {
		if d.pos == pos {
			return true
		}
	}
	return false
}

func validUsername(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// text checks a free-text field: at most max characters, no control
// characters.
func (x *fields) text(pos int, name, v string, max int) {
	switch {
	case utf8.RuneCountInString(v) > max:
		x.f.add(pos, CodeInvalid, invalidMsg(name, fmt.Sprintf("%s must be at most %d characters", name, max)))
	case hasControl(v):
		x.f.add(pos, CodeInvalid, invalidMsg(name, name+" must not contain control characters"))
	}
}

// parseAddUser applies the document's table to one body. It touches no
// store: the tenant, its groups and uniqueness are checked by the caller.
func parseAddUser(in input, query url.Values, policy password.Policy) (*addUserRequest, *Failures) {
	x := &fields{in: in}
	a := &addUserRequest{}
	a.TenantID = x.fromBodyOrQuery(posTID, "tId", query)
	a.TenantCode = x.fromBodyOrQuery(posTCode, "tCode", query)

	a.Username = x.required(posUsername, "username")
	if a.Username != "" {
		switch {
		case !validUsername(a.Username):
			x.f.add(posUsername, CodeInvalid, invalidMsg("username", "username must contain only letters, digits, _ and -"))
		case len(a.Username) > maxUsername:
			x.f.add(posUsername, CodeInvalid, invalidMsg("username", fmt.Sprintf("username must be at most %d characters", maxUsername)))
		}
	}
	a.FirstName = strings.TrimSpace(x.required(posFirstName, "firstName"))
	if a.FirstName != "" {
		x.text(posFirstName, "firstName", a.FirstName, maxName)
	}
	a.LastName = strings.TrimSpace(x.required(posLastName, "lastName"))
	if a.LastName != "" {
		x.text(posLastName, "lastName", a.LastName, maxName)
	}
	a.Email = strings.TrimSpace(x.required(posEmail, "email"))
	if a.Email != "" {
		if err := engine.CheckEmail(a.Email); err != nil {
			x.f.add(posEmail, CodeInvalid, invalidMsg("email", err.Error()))
		}
	}

	// profile: a string holding a JSON object; anything else is 413.
	if v, present, bad := in.str("profile"); bad != "" {
		x.f.add(posProfile, CodeProfile, "")
	} else if present && strings.TrimSpace(v) != "" {
		if err := contract.CheckJSON([]byte(v), 0); err != nil {
			x.f.add(posProfile, CodeProfile, "")
		} else if a.Profile, err = compact([]byte(v)); err != nil {
			x.f.add(posProfile, CodeProfile, "")
		}
	}

	if gs, present, bad := in.strs("groups"); bad != "" {
		x.f.add(posGroups, CodeInvalid, invalidMsg("groups", "groups "+bad))
	} else if present {
		a.Groups = x.groups(gs)
	}
	return a, x.rest(a, policy)
}

// groups checks and dedupes group codes (whether the tenant has them is the
// caller's check).
func (x *fields) groups(gs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range gs {
		g = strings.TrimSpace(g)
		switch {
		case g == "":
			x.f.add(posGroups, CodeInvalid, invalidMsg("groups", "groups must not contain empty group codes"))
			return nil
		case utf8.RuneCountInString(g) > maxGroupCode || hasControl(g):
			x.f.add(posGroups, CodeInvalid, invalidMsg("groups", fmt.Sprintf("group codes must be at most %d characters, without control characters", maxGroupCode)))
			return nil
		}
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	if len(out) > maxGroups {
		x.f.add(posGroups, CodeInvalid, invalidMsg("groups", fmt.Sprintf("groups must list at most %d group codes", maxGroups)))
		return nil
	}
	return out
}

// rest reads the fields after groups.
func (x *fields) rest(a *addUserRequest, policy password.Policy) *Failures {
	a.Status = store.StatusPending
	if s, ok := x.optional(posStatus, "status"); ok {
		switch s {
		case statusPending:
		case statusActive:
			a.Status = store.StatusActive
		case statusInactive:
			a.Status = store.StatusInactive
		default:
			x.f.add(posStatus, CodeInvalid, invalidMsg("status", "status must be one of active, inactive, pendingNew"))
		}
	}

	pass, pPresent, pBad := x.in.str("password")
	conf, cPresent, cBad := x.in.str("confirmation")
	if pBad != "" {
		x.f.add(posPassword, CodeInvalid, invalidMsg("password", "password "+pBad))
	}
	if cBad != "" {
		x.f.add(posConfirmation, CodeInvalid, invalidMsg("confirmation", "confirmation "+cBad))
	}
	if pBad == "" && cBad == "" {
		if !pPresent {
			pass = ""
		}
		if !cPresent {
			conf = ""
		}
		switch {
		case pass != conf:
			x.f.add(posPassword, CodeConfirmation, "")
		case pass != "":
			var ids []string
			for _, id := range []string{a.Email, a.Username} {
				if id != "" {
					ids = append(ids, id)
				}
			}
			var pe *password.PolicyError
			if err := policy.Check(pass, ids...); errors.As(err, &pe) {
				x.f.add(posPassword, CodeInvalid, invalidMsg("password", pe.Message))
			} else if err != nil {
				x.f.add(posPassword, CodeInvalid, invalidMsg("password", err.Error()))
			} else {
				a.Password = pass
			}
		}
	}

	if p, present, bad := x.in.obj("pin"); bad != "" {
		x.f.add(posPin, CodeInvalid, invalidMsg("pin", "pin "+bad))
	} else if present {
		pin := &pinRequest{}
		failed := false
		code, cPresent, cBad := p.str("code")
		switch {
		case cBad != "":
			x.f.add(posPin, CodeInvalid, invalidMsg("pin.code", "pin.code "+cBad))
			failed = true
		case !cPresent || strings.TrimSpace(code) == "":
			x.f.add(posPin, CodeMissing, missingMsg("pin.code"))
			failed = true
		case utf8.RuneCountInString(code) > maxPinCode || hasControl(code):
			x.f.add(posPin, CodeInvalid, invalidMsg("pin.code", fmt.Sprintf("pin.code must be at most %d characters, without control characters", maxPinCode)))
			failed = true
		}
		allowed, aPresent, aBad := p.boolean("allowed")
		switch {
		case aBad != "":
			x.f.add(posPin, CodeInvalid, invalidMsg("pin.allowed", "pin.allowed "+aBad))
			failed = true
		case !aPresent:
			x.f.add(posPin, CodeMissing, missingMsg("pin.allowed"))
			failed = true
		}
		if !failed {
			pin.Code, pin.Allowed = code, allowed
			a.Pin = pin
		}
	}
	return &x.f
}

func (c *Contract) addUser(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if !c.requireAdmin(w, r, req) {
		return
	}
	eng := c.env.Engine
	in, err := decodeBody(r, req.Body)
	if err != nil {
		eng.Reject(Name, req.ClientIP, err)
		c.WriteError(w, r, err)
		return
	}
	query, _ := url.ParseQuery(r.URL.RawQuery)
	a, f := parseAddUser(in, query, c.policy)

	var tenant *store.Tenant
	if a.TenantID != "" && a.TenantCode != "" {
		t, err := eng.ResolveTenant(r.Context(), a.TenantID, a.TenantCode)
		switch {
		case errors.Is(err, engine.ErrTenantMismatch):
			f.add(posTCode, CodeTenant, "")
		case err != nil:
			c.WriteError(w, r, err)
			return
		default:
			tenant = t
			if err := engine.CheckGroups(t, a.Groups); err != nil {
				f.add(posGroups, CodeGroup, "")
			}
		}
	}
	if err := f.err(); err != nil {
		eng.Reject(Name, req.ClientIP, err)
		c.WriteError(w, r, err)
		return
	}

	reg, err := c.registration(a, tenant)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	reg.ClientIP = req.ClientIP
	res, err := eng.Register(r.Context(), *reg)
	if errors.Is(err, store.ErrNotFound) {
		// The tenant was deleted between the check and the write.
		err = fmt.Errorf("%w: %w", errTenantGone, err)
	}
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	ok(w, addUserData{ID: res.User.ID, Token: res.UserToken})
}

type addUserData struct {
	ID    string `json:"id"`
	Token string `json:"token,omitempty"`
}

// registration turns a checked request into the engine's terms.
func (c *Contract) registration(a *addUserRequest, t *store.Tenant) (*engine.Registration, error) {
	attrs := store.Attrs{}
	put := func(k string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", k, err)
		}
		attrs[k] = b
		return nil
	}
	if a.Profile != nil {
		attrs["profile"] = a.Profile
	}
	groups := a.Groups
	if groups == nil {
		groups = []string{}
	}
	if err := put("groups", groups); err != nil {
		return nil, err
	}
	if a.Pin != nil {
		// The code is a secret the engine has no hashing step for yet; only
		// whether PIN login is allowed is kept.
		if err := put("pin", map[string]bool{"allowed": a.Pin.Allowed}); err != nil {
			return nil, err
		}
	}
	reg := &engine.Registration{
		Contract:    Name,
		Email:       a.Email,
		Login:       a.Username,
		Name:        strings.TrimSpace(a.FirstName + " " + a.LastName),
		FirstName:   a.FirstName,
		LastName:    a.LastName,
		Password:    a.Password,
		Policy:      c.policy,
		Status:      a.Status,
		Permissions: append([]string{}, c.env.Settings.DefaultPermissions...),
		Attributes:  attrs,
		TenantID:    t.ID,
		Invalid:     &engine.ValidationError{},
		NoPassword:  a.Password == "",
		FieldNames:  map[string]string{engine.FieldLogin: "username"},
	}
	ttl := c.env.Settings.LinkTTL
	switch {
	case a.Status == store.StatusInactive:
		// Disabled by the admin: no token that would activate the user.
	case a.Password == "":
		reg.UserToken = &engine.TokenSpec{Purpose: engine.PurposeSetPassword, TTL: ttl, UUIDShape: true}
	case a.Status == store.StatusPending:
		reg.UserToken = &engine.TokenSpec{Purpose: engine.PurposeActivate, TTL: ttl, UUIDShape: true}
	}
	return reg, nil
}

// compact returns b without insignificant whitespace.
func compact(b []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
