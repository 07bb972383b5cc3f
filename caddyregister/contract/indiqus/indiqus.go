// Package indiqus serves the "indiqus" contract: a cloud billing portal's
// admin "create subscriber account" (shared/contracts/002_dcec8cd616d49633.txt)
// with its login and reference-data lookups.
//
// Every reply is the document's job envelope:
//
//	{"httpStatus":200,"success":true,"error":{},"sync":true,"jobId":"<uuid>",
//	 "jobStatusCode":1,"cached":false,"replayed":false,"result":{...}}
//
// Failures carry success false, jobStatusCode 2, result {} and
// error {"code","message","field","details":[{"field","message"}]}.
package indiqus

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/refdata"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Name is the contract's name in the Caddyfile.
const Name = "indiqus"

// PermManageUsers is what an admin token needs to create accounts.
const PermManageUsers = engine.PermManageUsers

// Job status codes of the envelope.
const (
	JobDone   = 1
	JobFailed = 2
)

// AccountTypeEnterprise is the document's account_type for these accounts.
const AccountTypeEnterprise = 1

// sequenceName is the store-wide sequence account numbers come from.
const sequenceName = "indiqus-account"

func init() {
	contract.Register(Name, New, knownOptions...)
}

// Contract is the indiqus wire format.
type Contract struct {
	env    contract.Env
	cfg    *config
	policy password.Policy
}

// New builds the contract from the handler's options.
func New(env contract.Env) (contract.Contract, error) {
	if err := refdata.Load(); err != nil {
		return nil, err
	}
	cfg, err := parseConfig(env.Options)
	if err != nil {
		return nil, err
	}
	// The document: upper and lower case letters, digits and symbols,
	// length as the operator sets it (password { min_length max_length }).
	p := env.PasswordPolicy(password.Policy{MinLength: 8, MaxLength: 64, MinLower: 1, MinUpper: 1, MinDigits: 1, MinSpecial: 1})
	return &Contract{env: env, cfg: cfg, policy: p}, nil
}

// Routes implements contract.Contract.
func (c *Contract) Routes() []contract.Route {
	js := []string{"application/json"}
	return []contract.Route{
		{Method: http.MethodPost, Path: c.cfg.LoginPath, Absolute: true, Name: "login", Limit: contract.LoginLimit, ContentTypes: js, Serve: c.login},
		{Method: http.MethodPost, Path: "/pass/createNewUser", Name: "create", Limit: contract.AdminLimit, ContentTypes: js, Serve: c.create, Admin: true},
		{Method: http.MethodGet, Path: "/countryList", Name: "countries", Serve: c.countries},
		{Method: http.MethodGet, Path: "/stateList", Name: "states", Serve: c.states},
		{Method: http.MethodGet, Path: "/signUpHelper", Name: "helper", Serve: c.helper, Admin: true},
	}
}

// envelope is the document's reply shape.
type envelope struct {
	HTTPStatus    int    `json:"httpStatus"`
	Success       bool   `json:"success"`
	Error         any    `json:"error"`
	Sync          bool   `json:"sync"`
	JobID         string `json:"jobId"`
	JobStatusCode int    `json:"jobStatusCode"`
	Cached        bool   `json:"cached"`
	Replayed      bool   `json:"replayed"`
	Result        any    `json:"result"`
}

// apiError is the error member of a failed envelope.
type apiError struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Field   string        `json:"field,omitempty"`
	Details []fieldDetail `json:"details,omitempty"`
}

type fieldDetail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func ok(w http.ResponseWriter, jobID string, replayed bool, result any) {
	contract.WriteJSON(w, http.StatusOK, envelope{
		HTTPStatus: http.StatusOK, Success: true, Error: struct{}{}, Sync: true,
		JobID: jobID, JobStatusCode: JobDone, Replayed: replayed, Result: result,
	})
}

// WriteError implements contract.Contract.
func (c *Contract) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status, retry, msg := contract.Status(err)
	e := apiError{Message: msg}
	var (
		ce *store.ConflictError
		ve *engine.ValidationError
		de *contract.DecodeError
		he *contract.HTTPError
	)
	switch {
	case errors.As(err, &ve):
		e.Code = "VALIDATION_FAILED"
		e.Field, e.Message = ve.Fields[0].Field, ve.Fields[0].Message
		for _, f := range ve.Fields {
			e.Details = append(e.Details, fieldDetail{Field: f.Field, Message: f.Message})
		}
	case errors.As(err, &de):
		e.Code, e.Message, e.Field = "INVALID_JSON", de.Error(), de.Field
	case errors.As(err, &ce):
		status, e.Code, e.Field, e.Message = http.StatusConflict, "DUPLICATE_EMAIL", "email", "An account with this email already exists."
	case errors.Is(err, engine.ErrIdempotencyMismatch):
		status, e.Code, e.Message = http.StatusUnprocessableEntity, "IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was already used with a different request body."
	case errors.Is(err, engine.ErrNotActivated):
		status, e.Code, e.Message = http.StatusForbidden, "ACCOUNT_NOT_ACTIVATED", "The account is not activated."
	case errors.Is(err, engine.ErrAccountDisabled):
		status, e.Code, e.Message = http.StatusForbidden, "ACCOUNT_DISABLED", "The account is disabled."
	case errors.Is(err, errBadCredentials):
		status, e.Code, e.Message = http.StatusUnauthorized, "INVALID_CREDENTIALS", "Invalid credentials."
	case status == http.StatusUnauthorized:
		e.Code, e.Message = "UNAUTHORIZED", "A valid admin token is required in x-access-token."
	case errors.As(err, new(*engine.RefusedError)):
		// Refused by the app's before_register hook: msg is its reason.
		e.Code = "FORBIDDEN"
	case status == http.StatusForbidden && errors.As(err, &he):
		// Refused by the handler before the route ran (a cross-site
		// request): msg is its message, which says why.
		e.Code = "FORBIDDEN"
	case status == http.StatusForbidden:
		e.Code, e.Message = "FORBIDDEN", "An admin token with the "+PermManageUsers+" permission is required."
	case errors.As(err, &he):
		e.Code = strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_"))
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", strings.Join(he.Allow, ", "))
		}
	case status == http.StatusTooManyRequests:
		e.Code = "RATE_LIMITED"
	case status == http.StatusServiceUnavailable:
		e.Code = "SERVICE_UNAVAILABLE"
	default:
		e.Code = strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="indiqus"`)
	}
	contract.LogFailure(c.env.Logger, r, status, err)
	contract.SetRetryAfter(w, retry)
	contract.WriteJSON(w, status, envelope{
		HTTPStatus: status, Success: false, Error: e, Sync: true,
		JobID: engine.NewUUIDv4(), JobStatusCode: JobFailed, Result: struct{}{},
	})
}

var errBadCredentials = errors.New("invalid credentials")

type loginRequest struct {
	Email    *string `json:"email"`
	Username *string `json:"username"`
	Login    *string `json:"login"`
	Password *string `json:"password"`
}

func (c *Contract) login(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	var body loginRequest
	if err := contract.DecodeJSON(req.Body, &body, 0); err != nil {
		c.WriteError(w, r, err)
		return
	}
	id := firstOf(body.Email, body.Username, body.Login)
	_, tok, err := c.env.Engine.Login(r.Context(), req.ClientIP, r.UserAgent(), id, deref(body.Password))
	switch {
	case errors.Is(err, engine.ErrUnauthenticated):
		// Never say which part was wrong.
		c.WriteError(w, r, errBadCredentials)
		return
	case err != nil:
		c.WriteError(w, r, err)
		return
	}
	ok(w, engine.NewUUIDv4(), false, map[string]any{
		"token":      tok,
		"user_token": tok,
		"token_type": "Bearer",
		"expires_in": int(c.env.Engine.TokenTTL().Seconds()),
	})
}

func firstOf(ps ...*string) string {
	for _, p := range ps {
		if p != nil && strings.TrimSpace(*p) != "" {
			return *p
		}
	}
	return ""
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// requireAdmin accepts an admin token (x-access-token or Bearer) or HTTP
// Basic admin credentials, holding manage-users. User tokens are refused
// even if they carry the permission, as the document wants admin tokens,
// unless the operator granted that user manage-users (engine.RequireAdmin).
func (c *Contract) requireAdmin(r *http.Request, clientIP string) (*engine.Principal, error) {
	return contract.RequireAdmin(r, c.env.Engine, clientIP, PermManageUsers)
}

// DecodeCreate decodes body as the createNewUser route does, before the
// validation that needs the contract's configuration: the entry point of
// the decoder worst-case benchmark (internal/decodebench).
func DecodeCreate(body []byte) error {
	_, err := decodeCreate(body)
	return err
}

// decodeCreate reads the raw values of createNewUser's members that
// validate reads (createFields; of repeated names the last, as PHP's
// json_decode keeps it). Other members are skipped without a copy: a map
// of every member would cost a few dozen bytes for each.
func decodeCreate(body []byte) (map[string]json.RawMessage, error) {
	if err := contract.CheckJSON(body, 0); err != nil {
		return nil, err
	}
	raw := map[string]json.RawMessage{}
	contract.Members(body, func(m contract.JSONMember) bool {
		if name, ok := createNames.Find(m.Key); ok {
			raw[name] = json.RawMessage(m.Value)
		}
		return true
	})
	return raw, nil
}

func (c *Contract) create(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	p, err := c.requireAdmin(r, req.ClientIP)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	raw, err := decodeCreate(req.Body)
	if err != nil {
		c.env.Engine.Reject(Name, req.ClientIP, err)
		c.WriteError(w, r, err)
		return
	}
	reg := c.validate(raw)
	reg.ClientIP = req.ClientIP
	reg.Sequence = sequenceName
	if k := strings.TrimSpace(r.Header.Get("Idempotency-Key")); k != "" {
		if len(k) > 255 {
			c.WriteError(w, r, &contract.HTTPError{Status: http.StatusBadRequest, Message: "Idempotency-Key is longer than 255 characters."})
			return
		}
		sum := sha256.Sum256(req.Body)
		reg.Idempotency = &engine.IdempotencySpec{
			Key:         Name + ":" + p.ID + ":" + k,
			Fingerprint: hex.EncodeToString(sum[:]),
			TTL:         c.cfg.IdempotencyTTL,
		}
	}
	res, err := c.env.Engine.Register(r.Context(), *reg)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	u := res.User
	var seq int64
	_ = json.Unmarshal(u.Attributes[store.SeqAttr], &seq)
	var jobID string
	_ = json.Unmarshal(u.Attributes["jobId"], &jobID)
	// A struct, not a map: the document prints id before email.
	ok(w, jobID, res.Replayed, struct {
		ID    string `json:"id"`
		Email string `json:"email"`
	}{c.accountID(seq), u.Email})
}

// accountID is the document's id: prefix, "E" for Enterprise, and the
// account number, zero-padded to three digits and growing past 999.
func (c *Contract) accountID(seq int64) string {
	return c.cfg.AccountPrefix + "-E" + fmt.Sprintf("%03d", seq)
}

func (c *Contract) countries(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	type country struct {
		Code        string `json:"Country_Code"`
		Name        string `json:"Country_Name"`
		CallingCode string `json:"Calling_Code"`
	}
	var out []country
	for _, k := range refdata.Countries() {
		out = append(out, country{Code: k.Code, Name: k.Name, CallingCode: k.CallingCode})
	}
	ok(w, engine.NewUUIDv4(), false, out)
}

func (c *Contract) states(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	cc := r.URL.Query().Get("country")
	if _, found := refdata.CountryByCode(cc); !found {
		var v engine.ValidationError
		v.Add("country", "country", fmt.Sprintf("country must be an ISO 3166-1 alpha-2 code from countryList, not %q", cc))
		c.WriteError(w, r, &v)
		return
	}
	type state struct {
		Code        string `json:"Subdivision_Code"`
		Name        string `json:"Subdivision_Name"`
		Type        string `json:"Subdivision_Type"`
		CountryCode string `json:"Country_Code"`
	}
	out := []state{}
	for _, s := range refdata.Subdivisions(cc) {
		out = append(out, state{Code: s.Code, Name: s.Name, Type: s.Type, CountryCode: s.CountryCode})
	}
	ok(w, engine.NewUUIDv4(), false, out)
}

func (c *Contract) helper(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if _, err := c.requireAdmin(r, req.ClientIP); err != nil {
		c.WriteError(w, r, err)
		return
	}
	type named struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	list := func(xs []string) []named {
		out := []named{}
		for _, x := range xs {
			out = append(out, named{Name: x, Value: x})
		}
		return out
	}
	taxTypes := c.cfg.TaxTypes
	if taxTypes == nil {
		taxTypes = []TaxType{}
	}
	ok(w, engine.NewUUIDv4(), false, map[string]any{
		"currencies":     list(c.cfg.Currencies),
		"tax_categories": list(c.cfg.TaxCategories),
		"tax_types":      taxTypes,
		"acs_regions":    list(c.cfg.Regions),
		"reseller_codes": list(c.cfg.ResellerCodes),
		"mobile_digits":  c.cfg.MobileDigits,
		"password_policy": map[string]int{
			"min_length": c.policy.MinLength, "max_length": c.policy.MaxLength,
		},
		"account_type": AccountTypeEnterprise,
	})
}

var _ contract.Contract = (*Contract)(nil)
