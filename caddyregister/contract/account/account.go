// Package account serves the "account" contract: the product's own API for
// what a user does after signing up (log in, refresh, log out, see and end
// sessions, change the password, have the activation link sent again,
// erase the account) and for operators managing users. Users of every
// contract are the same users, so this API serves all of them.
//
// Bodies are JSON. Errors are RFC 9457 problem details
// (application/problem+json): type, title, status, detail, and for invalid
// input errors: [{"field","code","message"}]. Token answers use the OAuth
// 2.0 token response names (RFC 6749 §5.1) plus the user.
package account

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// Name is the contract's name in the Caddyfile.
const Name = "account"

func init() {
	contract.Register(Name, New, OptCookie)
}

// Contract is the account API.
type Contract struct {
	env    contract.Env
	policy password.Policy
	// cookies are the session cookies (option cookie); no name: tokens
	// travel in bodies and headers only.
	cookies contract.SessionCookies
}

// New builds the contract. Its password policy (for a password change) is
// NIST SP 800-63B's unless the handler's password block overrides it.
func New(env contract.Env) (contract.Contract, error) {
	if err := env.Options.Check(Name, OptCookie); err != nil {
		return nil, err
	}
	c := &Contract{env: env, policy: env.PasswordPolicy(password.NIST())}
	if lines := env.Options[OptCookie]; len(lines) > 0 {
		args := env.Options.Last(OptCookie)
		if len(lines) != 1 || len(args) != 1 || !contract.ValidCookieName(args[0]) {
			return nil, fmt.Errorf("contract %s: cookie takes one cookie name", Name)
		}
		c.cookies = contract.SessionCookies{Name: args[0], RefreshPath: contract.CookiePath(env.Prefix)}
	}
	return c, nil
}

// Routes implements contract.Contract.
func (c *Contract) Routes() []contract.Route {
	js := []string{"application/json"}
	return []contract.Route{
		// With the cookie option these take and set cookies: Cookie routes,
		// refused when a page of another site posts them.
		{Method: http.MethodPost, Path: "/login", Name: "login", Limit: contract.LoginLimit, ContentTypes: js, Serve: c.login, Cookie: c.cookies.Name != ""},
		{Method: http.MethodPost, Path: "/refresh", Name: "refresh", Limit: contract.LinkLimit, ContentTypes: js, Serve: c.refresh, Cookie: c.cookies.Name != ""},
		{Method: http.MethodPost, Path: "/logout", Name: "logout", ContentTypes: js, Serve: c.logout, Cookie: c.cookies.Name != ""},
		{Method: http.MethodGet, Path: "/me", Name: "me", Serve: c.me},
		{Method: http.MethodDelete, Path: "/me", Name: "erase", Limit: contract.LoginLimit, ContentTypes: js, Serve: c.erase},
		{Method: http.MethodGet, Path: "/sessions", Name: "sessions", Serve: c.sessions},
		{Method: http.MethodDelete, Path: "/sessions/{sid}", Name: "session_end", Serve: c.endSession},
		{Method: http.MethodPost, Path: "/password/change", Name: "password_change", Limit: contract.LoginLimit, ContentTypes: js, Serve: c.changePassword},
		{Method: http.MethodPost, Path: "/activation/resend", Name: "activation_resend", Limit: contract.SecretLimit, ContentTypes: js, Serve: c.resend},
		{Method: http.MethodPost, Path: "/password/forgot", Name: "password_forgot", Limit: contract.SecretLimit, ContentTypes: js, Serve: c.forgot},
		{Method: http.MethodGet, Path: "/password/reset", Name: "password_reset", Limit: contract.SecretLimit, Serve: c.resetPage},
		// The page's form posts a form; programs post JSON.
		{Method: http.MethodPost, Path: "/password/reset", Name: "password_reset", Limit: contract.SecretLimit, ContentTypes: []string{"application/x-www-form-urlencoded", "application/json"}, Serve: c.reset},

		{Method: http.MethodGet, Path: "/users", Name: "users_list", Serve: c.listUsers, Admin: true},
		{Method: http.MethodGet, Path: "/users/{id}", Name: "user_get", Serve: c.getUser, Admin: true},
		{Method: http.MethodPatch, Path: "/users/{id}", Name: "user_update", Limit: contract.AdminLimit, ContentTypes: append(js, "application/merge-patch+json"), Serve: c.updateUser, Admin: true},
		{Method: http.MethodDelete, Path: "/users/{id}", Name: "user_delete", Limit: contract.AdminLimit, Serve: c.deleteUser, Admin: true},
		{Method: http.MethodPost, Path: "/users/{id}/logout", Name: "user_logout", Limit: contract.AdminLimit, Serve: c.logoutUser, Admin: true},
	}
}

// Problem types (RFC 9457 §3.1.1). Statuses that need no more than their
// name use about:blank.
const (
	// TypeBase prefixes every problem type of this plugin; the gate's
	// refusals use the same names where they mean the same.
	TypeBase           = "urn:caddyregister:problem:"
	TypeInvalidInput   = TypeBase + "invalid-input"
	TypeBadCredentials = TypeBase + "invalid-credentials"
	TypeNotActivated   = TypeBase + "account-not-activated"
	TypeDisabled       = TypeBase + "account-disabled"
	TypeUnauthorized   = TypeBase + "unauthorized"
	TypeForbidden      = TypeBase + "forbidden"
	TypeRateLimited    = TypeBase + "rate-limited"
	TypeNotFound       = TypeBase + "not-found"
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Errors []ProblemField `json:"errors,omitempty"`
}

// ProblemField is one invalid input field.
type ProblemField struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errBadCredentials is every login failure before the password verified:
// one body for unknown accounts and wrong passwords.
var errBadCredentials = errors.New("invalid credentials")

// errNoAccount refuses an admin token on a route about the caller's own
// account.
var errNoAccount = fmt.Errorf("%w: admin tokens have no account; use the admin routes", engine.ErrForbidden)

// WriteError implements contract.Contract.
func (c *Contract) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status, retry, msg := contract.Status(err)
	p := Problem{Type: "about:blank", Status: status, Detail: msg}
	var (
		ve *engine.ValidationError
		de *contract.DecodeError
		he *contract.HTTPError
	)
	switch {
	case errors.As(err, &ve):
		p.Type, p.Detail = TypeInvalidInput, "the request has invalid fields"
		for _, f := range ve.Fields {
			p.Errors = append(p.Errors, ProblemField{Field: f.Field, Code: f.Rule, Message: f.Message})
		}
	case errors.As(err, &de):
		field := de.Field
		if field == "" {
			field = "body"
		}
		p.Type, p.Detail = TypeInvalidInput, "the request body is not the JSON this route takes"
		p.Errors = []ProblemField{{Field: field, Code: "json", Message: de.Error()}}
	case errors.Is(err, errBadCredentials):
		status, p.Type, p.Detail = http.StatusUnauthorized, TypeBadCredentials, "the identifier or the password is wrong"
	case errors.Is(err, engine.ErrNotActivated):
		status, p.Type, p.Detail = http.StatusForbidden, TypeNotActivated, "the account is not activated yet"
	case errors.Is(err, engine.ErrAccountDisabled):
		status, p.Type, p.Detail = http.StatusForbidden, TypeDisabled, "the account is disabled"
	case status == http.StatusUnauthorized:
		p.Type, p.Detail = TypeUnauthorized, "a valid access token is required (Authorization: Bearer)"
	case errors.Is(err, errNoAccount):
		p.Type, p.Detail = TypeForbidden, "admin tokens have no account; use the admin routes"
	case status == http.StatusForbidden && errors.As(err, &he):
		p.Type = TypeForbidden // refused before the route ran: msg says why
	case status == http.StatusForbidden:
		p.Type, p.Detail = TypeForbidden, "an admin with the "+engine.PermManageUsers+" permission is required"
	case status == http.StatusTooManyRequests:
		p.Type = TypeRateLimited
	case status == http.StatusNotFound:
		p.Type, p.Detail = TypeNotFound, "no such user or session"
	case errors.As(err, &he) && status == http.StatusMethodNotAllowed:
		w.Header().Set("Allow", strings.Join(he.Allow, ", "))
	}
	p.Status = status
	p.Title = http.StatusText(status)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="account"`)
	}
	contract.LogFailure(c.env.Logger, r, status, err)
	contract.SetRetryAfter(w, retry)
	writeProblem(w, p)
}

func writeProblem(w http.ResponseWriter, p Problem) {
	// WriteJSON sets application/json; the problem type replaces it.
	h := w.Header()
	contract.WriteJSON(headerOverride{w, h}, p.Status, p)
}

// headerOverride swaps the JSON content type for the problem one just
// before the status goes out.
type headerOverride struct {
	http.ResponseWriter
	h http.Header
}

func (o headerOverride) WriteHeader(status int) {
	o.h.Set("Content-Type", "application/problem+json")
	o.ResponseWriter.WriteHeader(status)
}

// userView is a user as this API shows it: never the password hash.
type userView struct {
	ID          string    `json:"id"`
	Email       string    `json:"email"`
	Login       string    `json:"login,omitempty"`
	Name        string    `json:"name,omitempty"`
	Status      string    `json:"status"`
	Tenant      string    `json:"tenant,omitempty"`
	Permissions []string  `json:"permissions"`
	CreatedAt   time.Time `json:"created_at"`
}

// adminUserView adds what operators manage.
type adminUserView struct {
	userView
	AdminPermissions []string  `json:"admin_permissions,omitempty"`
	Contract         string    `json:"contract,omitempty"`
	UpdatedAt        time.Time `json:"updated_at"`
}

func viewOf(u *store.User) userView {
	name := u.Name
	if name == "" {
		name = strings.TrimSpace(u.FirstName + " " + u.LastName)
	}
	perms := u.Permissions
	if perms == nil {
		perms = []string{}
	}
	return userView{ID: u.ID, Email: u.Email, Login: u.Login, Name: name, Status: string(u.Status),
		Tenant: u.TenantID, Permissions: perms, CreatedAt: u.CreatedAt.UTC()}
}

func adminViewOf(u *store.User) adminUserView {
	return adminUserView{userView: viewOf(u), AdminPermissions: u.AdminPermissions, Contract: u.Contract, UpdatedAt: u.UpdatedAt.UTC()}
}

// bearer authenticates the caller's access token (Authorization: Bearer
// or x-access-token), sessions checked (engine.AuthenticateToken).
func (c *Contract) bearer(r *http.Request) (*engine.Principal, error) {
	return c.env.Engine.AuthenticateToken(r.Context(), token.FromHeaders(r.Header.Get))
}

// userBearer is bearer for routes about the caller's own account: admin
// tokens have no account.
func (c *Contract) userBearer(r *http.Request) (*engine.Principal, error) {
	p, err := c.bearer(r)
	if err != nil {
		return nil, err
	}
	if p.Kind != engine.KindUser {
		return nil, errNoAccount
	}
	return p, nil
}

// required adds a "required" error for each named field that is empty.
// decodeRequired decodes a JSON body into dst and checks that the fields
// fields returns (name and value, read after decoding) are not blank. On
// failure it answers the problem and returns false.
func (c *Contract) decodeRequired(w http.ResponseWriter, r *http.Request, body []byte, dst any, fields func() [][2]string) bool {
	if err := contract.DecodeJSON(body, dst, 0); err != nil {
		c.WriteError(w, r, err)
		return false
	}
	var v engine.ValidationError
	required(&v, fields()...)
	if err := v.Err(); err != nil {
		c.WriteError(w, r, err)
		return false
	}
	return true
}

func required(v *engine.ValidationError, fields ...[2]string) {
	for _, f := range fields {
		if strings.TrimSpace(f[1]) == "" {
			v.Add(f[0], "required", "is required")
		}
	}
}
