// Package soajs serves the "soajs" contract: a microservice framework's
// URAC "add user" into a tenant (shared/contracts/003_011d91a7aacb63f3.txt),
// documented prefix /urac, with the routes that use the token it returns and
// two tenant administration routes.
//
// Routes (relative to the prefix; rate-limit route names in brackets):
//
//	POST /admin/addUser    [addUser]        admin (manage-users): create a user in a tenant
//	GET  /join/validate    [confirm]        ?token=: the confirmation page (JSON Accept: activates)
//	POST /join/validate    [confirm]        token: activate a user created with a password
//	POST /resetPassword    [resetPassword]  token, password, confirmation: set the password of a user created without one
//	POST /admin/tenant     [addTenant]      admin: create a tenant {code, name, groups, id?}
//	GET  /admin/tenants    [listTenants]    admin: list the tenants
//
// Bodies are application/x-www-form-urlencoded (the document's curl sends a
// form) or application/json, with the same rules for both; a body without a
// Content-Type is read as JSON when it starts with "{", else as a form. In
// forms, arrays are repeated keys (groups=a&groups=b, also groups[]=a or
// groups[0]=a) and objects use brackets (pin[code]=1234&pin[allowed]=true),
// as Express' qs parses them.
//
// addUser reads tId and tCode from the body or the query string; when both
// carry one, the body wins (each field on its own). They must name one
// existing tenant (else 611). groups are group codes of that tenant (else
// 415). The user's login is the username. Without a password the user is
// created without one and the token is a set-password token for
// POST /resetPassword; with a password (and its confirmation) it is an
// activation token for GET /join/validate. The token is a UUID, single-use,
// valid for link_ttl (24h). It is left out of the reply when it would have no
// use: status "active" with a password (nothing left to do) and status
// "inactive" (the admin disabled the user; a token would undo that).
//
// Fields follow the document's table: username (letters, digits, _ and -;
// the login, unique case-insensitively), firstName, lastName and email
// required; profile a string holding a JSON object (stored as the object);
// groups; status (active, inactive or pendingNew, the default); password
// and confirmation (NIST SP 800-63B policy unless the handler's password
// block overrides it); pin {code, allowed}, of which only allowed is kept
// (the code is a secret the engine cannot hash yet). New users get the
// handler's default_permissions.
//
// Every reply is the document's envelope. Success:
//
//	{"result": true, "data": {...}}
//
// Failure, one detail per failing field or condition, codes[i] being
// details[i].code (the framework builds codes from its details):
//
//	{"result": false, "errors": {"codes": [172, 408], "details": [{"code": 172, "message": "Missing required field: username"}, ...]}}
//
// Codes: 172 missing required field ("Missing required field: <field>"),
// 173 field fails validation ("Validation failed for field: <field> ->
// <why>"), 400 database connection error, 402 e-mail taken, 403 unable to
// register (overload, id collision, unexpected failure), 406 token unknown,
// expired or used, 408 password and confirmation differ, 410 username taken,
// 413 profile not a stringified object, 414 unable to add user (the tenant
// vanished while writing), 415 unknown group, 611 tId/tCode name no tenant,
// 612/613 tenant code/id taken; and, for what the framework's gateway
// answers itself, 901 unauthenticated, 902 forbidden, 903 method not
// allowed, 904 body too large, 905 unsupported content type, 906 rate
// limited.
//
// HTTP status: 200 for the framework's own codes, as the framework answers
// them. Transport-level failures keep their HTTP status: 401 (901, with
// WWW-Authenticate: Basic), 403 (902), 405 (903), 413 (904), 415 (905), 429
// (906), a body that is not JSON or form encoding at all 400 (173, field
// "body"), the store down 503 + Retry-After (400), hashing overloaded 503 +
// Retry-After (403), an unexpected failure 500 (403).
package soajs

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Name is the contract's name in the Caddyfile.
const Name = "soajs"

// PermManageUsers is the permission the admin routes need.
const PermManageUsers = engine.PermManageUsers

// The contract's error codes. The document's own (400, 402, 403, 413, 414,
// 611) and the framework's (172, 173, 406, 408, 410, 415) keep their
// meanings; 612, 613 and 9xx are this contract's.
const (
	CodeMissing         = 172
	CodeInvalid         = 173
	CodeDatabase        = 400
	CodeUserExists      = 402
	CodeRegister        = 403
	CodeToken           = 406
	CodeConfirmation    = 408
	CodeUsernameTaken   = 410
	CodeProfile         = 413
	CodeAddUser         = 414
	CodeGroup           = 415
	CodeTenant          = 611
	CodeTenantCode      = 612
	CodeTenantID        = 613
	CodeUnauthenticated = 901
	CodeForbidden       = 902
	CodeMethod          = 903
	CodeTooLarge        = 904
	CodeMediaType       = 905
	CodeRateLimited     = 906
)

// messages are the fixed texts; 172 and 173 name their field instead.
var messages = map[int]string{
	CodeDatabase:        "Database connection error",
	CodeUserExists:      "User account already exists.",
	CodeRegister:        "Unable to register user. please try again.",
	CodeToken:           "Invalid or token has expired.",
	CodeConfirmation:    "The password and its confirmation do not match",
	CodeUsernameTaken:   "username taken, please choose another username",
	CodeProfile:         "Invalid profile field provided. Profile should be a stringified object.",
	CodeAddUser:         "Unable to add user.",
	CodeGroup:           "Unable to find group",
	CodeTenant:          "invalid tenant id provided",
	CodeTenantCode:      "Tenant code already exists. Choose another",
	CodeTenantID:        "Tenant id already exists. Choose another",
	CodeUnauthenticated: "Authentication required: send HTTP Basic admin credentials or an access token (x-access-token or Authorization: Bearer).",
	CodeForbidden:       "Permission denied: an admin with the " + PermManageUsers + " permission is required.",
	CodeMethod:          "Method not allowed.",
	CodeTooLarge:        "The request body is too large.",
	CodeMediaType:       "Unsupported content type: send application/x-www-form-urlencoded or application/json.",
	CodeRateLimited:     "Too many requests, retry later.",
}

// Codes lists every code the contract answers.
func Codes() []int {
	out := []int{CodeMissing, CodeInvalid}
	for c := range messages {
		out = append(out, c)
	}
	return out
}

func missingMsg(field string) string { return "Missing required field: " + field }

func invalidMsg(field, why string) string {
	return "Validation failed for field: " + field + " -> " + why
}

func init() {
	contract.Register(Name, New)
}

// Contract is the soajs wire format.
type Contract struct {
	env    contract.Env
	policy password.Policy
}

// New builds the contract. It honours the handler's password block,
// default_permissions and link_ttl; it has no options of its own.
func New(env contract.Env) (contract.Contract, error) {
	if err := env.Options.Check(Name); err != nil {
		return nil, err
	}
	// The document states no password policy: NIST's.
	return &Contract{env: env, policy: env.PasswordPolicy(password.NIST())}, nil
}

// bodyTypes are what the routes with a body accept; a request without a
// Content-Type passes as a form and is then sniffed (see decodeBody).
var bodyTypes = []string{formType, jsonType}

const (
	formType = "application/x-www-form-urlencoded"
	jsonType = "application/json"
)

// Routes implements contract.Contract.
func (c *Contract) Routes() []contract.Route {
	return []contract.Route{
		{Method: http.MethodPost, Path: "/admin/addUser", Name: "addUser", Limit: contract.AdminLimit, ContentTypes: bodyTypes, Serve: c.addUser, Admin: true},
		{Method: http.MethodGet, Path: "/join/validate", Name: "confirm", Limit: contract.LinkLimit, Serve: c.joinValidate},
		{Method: http.MethodPost, Path: "/join/validate", Name: "confirm", Limit: contract.LinkLimit, ContentTypes: contract.ActivationContentTypes, Serve: c.joinValidate},
		{Method: http.MethodPost, Path: "/resetPassword", Name: "resetPassword", Limit: contract.SecretLimit, ContentTypes: bodyTypes, Serve: c.resetPassword},
		{Method: http.MethodPost, Path: "/admin/tenant", Name: "addTenant", ContentTypes: bodyTypes, Serve: c.addTenant, Admin: true},
		{Method: http.MethodGet, Path: "/admin/tenants", Name: "listTenants", Serve: c.listTenants, Admin: true},
	}
}

// Detail is one entry of the error envelope.
type Detail struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type okEnvelope struct {
	Result bool `json:"result"`
	Data   any  `json:"data"`
}

type errEnvelope struct {
	Result bool      `json:"result"`
	Errors errorList `json:"errors"`
}

type errorList struct {
	Codes   []int    `json:"codes"`
	Details []Detail `json:"details"`
}

func ok(w http.ResponseWriter, data any) {
	contract.WriteJSON(w, http.StatusOK, okEnvelope{Result: true, Data: data})
}

// failure is one detail and where it sorts in the reply: the document's
// field order.
type failure struct {
	pos int
	Detail
}

// Failures is a request refused with one or more of the contract's codes.
type Failures struct {
	// Status is the HTTP status; 200 unless set.
	Status int
	List   []failure
}

func (f *Failures) Error() string {
	var parts []string
	for _, d := range f.List {
		parts = append(parts, strconv.Itoa(d.Code)+" "+d.Message)
	}
	return "soajs: " + strings.Join(parts, "; ")
}

// InvalidInput marks the failures as the client's for outcome logs.
func (f *Failures) InvalidInput() bool { return true }

func (f *Failures) add(pos, code int, msg string) {
	if msg == "" {
		msg = messages[code]
	}
	f.List = append(f.List, failure{pos: pos, Detail: Detail{Code: code, Message: msg}})
}

// err returns f, or nil when it holds nothing.
func (f *Failures) err() error {
	if f == nil || len(f.List) == 0 {
		return nil
	}
	return f
}

// details returns the list in field order (stable within a field).
func (f *Failures) details() []Detail {
	l := append([]failure(nil), f.List...)
	// Insertion sort: lists are short and stability matters.
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].pos < l[j-1].pos; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
	out := make([]Detail, len(l))
	for i, x := range l {
		out[i] = x.Detail
	}
	return out
}

// errTenantGone is a user whose tenant was deleted between the check and
// the write.
var errTenantGone = errors.New("tenant vanished")

// WriteError implements contract.Contract.
func (c *Contract) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status, retry, _ := contract.Status(err)
	var (
		fs *Failures
		ve *engine.ValidationError
		ce *store.ConflictError
		de *contract.DecodeError
		he *contract.HTTPError
	)
	f := &Failures{}
	switch {
	case errors.As(err, &fs):
		f = fs
		status = fs.Status
		if status == 0 {
			status = http.StatusOK
		}
	case errors.As(err, &ve):
		status = http.StatusOK
		for i, fe := range ve.Fields {
			if fe.Rule == "required" {
				f.add(i, CodeMissing, missingMsg(fe.Field))
			} else {
				f.add(i, CodeInvalid, invalidMsg(fe.Field, fe.Message))
			}
		}
	case errors.As(err, &de):
		status = http.StatusBadRequest
		f.add(0, CodeInvalid, invalidMsg("body", de.Error()))
	case errors.As(err, &ce):
		status = http.StatusOK
		switch ce.Field {
		case "email":
			f.add(0, CodeUserExists, "")
		case "login":
			f.add(0, CodeUsernameTaken, "")
		case "tenant_code":
			f.add(0, CodeTenantCode, "")
		case "tenant_id":
			f.add(0, CodeTenantID, "")
		default:
			// A freshly drawn id or token collided: a retry succeeds.
			f.add(0, CodeRegister, "")
		}
	case errors.Is(err, engine.ErrTenantMismatch):
		status = http.StatusOK
		f.add(0, CodeTenant, "")
	case errors.Is(err, engine.ErrUnknownGroup):
		status = http.StatusOK
		f.add(0, CodeGroup, "")
	case errors.Is(err, engine.ErrTokenInvalid), errors.Is(err, engine.ErrTokenUsed):
		status = http.StatusOK
		f.add(0, CodeToken, "")
	case errors.Is(err, errTenantGone):
		status = http.StatusOK
		f.add(0, CodeAddUser, "")
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, engine.ErrNotReady):
		f.add(0, CodeDatabase, "")
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="soajs", charset="UTF-8"`)
		f.add(0, CodeUnauthenticated, "")
	case status == http.StatusForbidden && errors.As(err, new(*engine.RefusedError)):
		// Refused by the app's before_register hook: its reason.
		_, _, msg := contract.Status(err)
		f.add(0, CodeForbidden, msg)
	case status == http.StatusForbidden && errors.As(err, &he):
		// Refused by the handler before the route ran (a cross-site
		// request): its message says why.
		f.add(0, CodeForbidden, he.Message)
	case status == http.StatusForbidden:
		f.add(0, CodeForbidden, "")
	case status == http.StatusTooManyRequests:
		f.add(0, CodeRateLimited, "")
	case errors.As(err, &he):
		switch status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", strings.Join(he.Allow, ", "))
			f.add(0, CodeMethod, "")
		case http.StatusRequestEntityTooLarge:
			f.add(0, CodeTooLarge, he.Message+".")
		case http.StatusUnsupportedMediaType:
			f.add(0, CodeMediaType, "")
		default:
			f.add(0, CodeInvalid, invalidMsg("body", he.Message))
		}
	default:
		// Overload (503) and anything unexpected (500): the document's
		// "try again".
		if status != http.StatusServiceUnavailable {
			status = http.StatusInternalServerError
		}
		f.add(0, CodeRegister, "")
	}
	contract.LogFailure(c.env.Logger, r, status, err)
	contract.SetRetryAfter(w, retry)
	d := f.details()
	codes := make([]int, len(d))
	for i := range d {
		codes[i] = d[i].Code
	}
	contract.WriteJSON(w, status, errEnvelope{Errors: errorList{Codes: codes, Details: d}})
}

// requireAdmin authenticates the caller and checks manage-users.
func (c *Contract) requireAdmin(w http.ResponseWriter, r *http.Request, req *contract.Request) bool {
	if _, err := contract.RequireAdmin(r, c.env.Engine, req.ClientIP, PermManageUsers); err != nil {
		c.WriteError(w, r, err)
		return false
	}
	return true
}

var _ contract.Contract = (*Contract)(nil)
