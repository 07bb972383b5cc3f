// Package noraina serves the "noraina" contract: public self-registration
// with optional billing that founds a tenant, a token in the response, and
// the /me and /user lookups (shared/contracts/000_f4c398cb81e29afb.txt).
//
// Envelopes: success {"status":"success","data":{...}}, failure
// {"status":"error","message":"...","data":null}.
package noraina

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// Name is the contract's name in the Caddyfile.
const Name = "noraina"

// Messages the document prints; clients compare them.
const (
	MsgCreated      = "User successfully created."
	MsgExists       = "User already exists."
	MsgTenantExists = "A company with this VAT ID is already registered; ask its administrator to add you."
)

// Field length limits. The document states none; these are generous bounds
// that keep records and logs sane.
const (
	maxName    = 255
	maxCompany = 255
	maxVAT     = 64
	maxAddress = 1024
)

// OptActivation is the handler option that says how new users become
// active: `activation admin|email|auto`.
const OptActivation = "activation"

// Activation modes. The document says users stay pending "until we
// activate your account": admin, the default.
const (
	// ActivationAdmin keeps new users pending until an admin activates
	// them.
	ActivationAdmin = "admin"
	// ActivationEmail mails a confirmation link to {prefix}/confirm;
	// following it activates. Unconfirmed accounts expire with the link.
	ActivationEmail = "email"
	// ActivationAuto makes new users active at once.
	ActivationAuto = "auto"
)

func init() {
	contract.Register(Name, New, OptActivation)
}

// Contract is the noraina wire format.
type Contract struct {
	env        contract.Env
	policy     password.Policy
	activation string
	tmpl       *mail.Template // the confirmation mail, in email mode
}

// Default confirmation mail (email mode). Overridable per handler by files.
const (
	defaultSubject = `Activate your account`
	defaultText    = `Hello {{.User.Name}},

thank you for registering. Activate your account by opening this link:

{{.Link}}

The link is valid until {{.Expires.Format "2006-01-02 15:04 MST"}}. If you did not register, ignore this mail.
`
	defaultHTML = `<!doctype html>
<html><body>
<p>Hello {{.User.Name}},</p>
<p>thank you for registering. Activate your account:</p>
<p><a href="{{.Link}}">Activate account</a></p>
<p>The link is valid until {{.Expires.Format "2006-01-02 15:04 MST"}}. If you did not register, ignore this mail.</p>
</body></html>
`
)

// New builds the contract.
func New(env contract.Env) (contract.Contract, error) {
	if err := env.Options.Check(Name, OptActivation); err != nil {
		return nil, err
	}
	c := &Contract{env: env, policy: env.PasswordPolicy(password.NIST()), activation: ActivationAdmin}
	if _, set := env.Options[OptActivation]; set {
		args := env.Options.Last(OptActivation)
		if len(args) != 1 {
			return nil, fmt.Errorf("%s takes one of %s, %s or %s", OptActivation, ActivationAdmin, ActivationEmail, ActivationAuto)
		}
		switch args[0] {
		case ActivationAdmin, ActivationEmail, ActivationAuto:
			c.activation = args[0]
		default:
			return nil, fmt.Errorf("%s must be %s, %s or %s, not %q", OptActivation, ActivationAdmin, ActivationEmail, ActivationAuto, args[0])
		}
	}
	if c.activation == ActivationEmail {
		def, err := mail.ParseTemplate(defaultSubject, defaultText, defaultHTML)
		if err != nil {
			return nil, fmt.Errorf("mail template: %w", err)
		}
		t := env.Settings.Template
		if c.tmpl, err = mail.LoadTemplate(def, t.Subject, t.Text, t.HTML); err != nil {
			return nil, err
		}
		if env.Engine != nil {
			env.Engine.RegisterResender(engine.ResenderKey(Name, env.Prefix), engine.Resender{Template: c.tmpl, TTL: env.Settings.LinkTTL})
		}
	}
	return c, nil
}

// MailsLinks implements contract.LinkMailer: only in email mode does the
// contract mail links (to its confirm route).
func (c *Contract) MailsLinks() bool { return c.activation == ActivationEmail }

// Routes implements contract.Contract.
func (c *Contract) Routes() []contract.Route {
	routes := []contract.Route{
		{Method: http.MethodPost, Path: "/register", Name: "register", Limit: contract.HashLimit, ContentTypes: []string{"application/json"}, Serve: c.register},
		{Method: http.MethodGet, Path: "/me", Name: "me", Serve: c.me},
		{Method: http.MethodGet, Path: "/user", Name: "user", Serve: c.me},
	}
	if c.activation == ActivationEmail {
		routes = append(routes,
			contract.Route{Method: http.MethodGet, Path: "/confirm", Name: "confirm", Limit: contract.LinkLimit, Serve: c.confirm},
			contract.Route{Method: http.MethodPost, Path: "/confirm", Name: "confirm", Limit: contract.LinkLimit, ContentTypes: contract.ActivationContentTypes, Serve: c.confirm},
		)
	}
	return routes
}

type envelope struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Data    any    `json:"data"`
}

// WriteError implements contract.Contract.
func (c *Contract) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status, retry, msg := contract.Status(err)
	var ce *store.ConflictError
	var ve *engine.ValidationError
	switch {
	case errors.As(err, &ce):
		msg = MsgExists
	case errors.Is(err, engine.ErrTenantExists):
		msg = MsgTenantExists
	case errors.As(err, &ve):
		msg = validationMessage(ve)
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="noraina"`)
		msg = "Missing, invalid or expired token."
	}
	if status == http.StatusMethodNotAllowed {
		var he *contract.HTTPError
		if errors.As(err, &he) {
			w.Header().Set("Allow", strings.Join(he.Allow, ", "))
		}
	}
	contract.LogFailure(c.env.Logger, r, status, err)
	contract.SetRetryAfter(w, retry)
	contract.WriteJSON(w, status, envelope{Status: "error", Message: sentence(msg), Data: nil})
}

// sentence capitalizes and ends msg with a period, matching the document's
// style ("User already exists.").
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	r, n := utf8.DecodeRuneInString(msg)
	msg = string(unicode.ToUpper(r)) + msg[n:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// wireField maps engine field names to this contract's.
func wireField(f string) string {
	if f == "email" {
		return "mail"
	}
	return f
}

func validationMessage(ve *engine.ValidationError) string {
	parts := make([]string, 0, len(ve.Fields))
	for _, f := range ve.Fields {
		parts = append(parts, wireField(f.Field)+": "+f.Message)
	}
	return "Invalid request: " + strings.Join(parts, "; ")
}

type registerRequest struct {
	Name     *string      `json:"name"`
	Mail     *string      `json:"mail"`
	Password *string      `json:"password"`
	Billing  *billingBody `json:"billing"`
}

type billingBody struct {
	Company       *string      `json:"company"`
	VATID         *string      `json:"vatId"`
	Address       *string      `json:"address"`
	CreditBalance *json.Number `json:"creditBalance"`
}

// DecodeRegister decodes body as the register route does: the entry point
// of the decoder worst-case benchmark (internal/decodebench).
func DecodeRegister(body []byte) error {
	var r registerRequest
	return contract.DecodeJSON(body, &r, 0)
}

func (c *Contract) register(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	var body registerRequest
	if err := contract.DecodeJSON(req.Body, &body, 0); err != nil {
		c.env.Engine.Reject(Name, req.ClientIP, err)
		c.WriteError(w, r, err)
		return
	}
	reg := c.toRegistration(&body)
	reg.ClientIP = req.ClientIP
	reg.UserAgent = r.UserAgent()
	reg.Permissions = append([]string{}, c.env.Settings.DefaultPermissions...)
	switch c.activation {
	case ActivationAuto:
		reg.Status = store.StatusActive
	case ActivationEmail:
		base := req.BaseURL + c.env.Prefix + "/confirm?token="
		reg.Mail = &engine.MailSpec{
			Template: c.tmpl,
			Link:     func(tok string) string { return base + url.QueryEscape(tok) },
			TTL:      c.env.Settings.LinkTTL,
			Resender: engine.ResenderKey(Name, c.env.Prefix),
		}
	}
	res, err := c.env.Engine.Register(r.Context(), *reg)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	contract.WriteJSON(w, http.StatusCreated, envelope{Status: "success", Data: map[string]string{
		"message": MsgCreated,
		"token":   res.Token,
	}})
}

// toRegistration applies the wire rules: required fields, lengths, types.
// Their errors travel in the registration so the engine reports them along
// with its own.
func (c *Contract) toRegistration(b *registerRequest) *engine.Registration {
	var v engine.ValidationError
	str := func(field string, p *string, required bool, max int) string {
		if p == nil || strings.TrimSpace(*p) == "" {
			if required {
				v.Add(field, "required", "is required")
			}
			return ""
		}
		s := *p
		if utf8.RuneCountInString(s) > max {
			v.Add(field, "maxLength", fmt.Sprintf("must be at most %d characters", max))
		} else if hasControl(s) {
			v.Add(field, "chars", "must not contain control characters")
		}
		return s
	}
	name := strings.TrimSpace(str("name", b.Name, true, maxName))
	mail := strings.TrimSpace(str("email", b.Mail, true, engine.MaxEmailLength))
	if b.Password == nil || *b.Password == "" {
		v.Add("password", "required", "is required")
	}
	reg := &engine.Registration{
		Contract:   Name,
		Email:      mail,
		Name:       name,
		Policy:     c.policy,
		IssueToken: true,
	}
	if b.Password != nil {
		reg.Password = *b.Password
	}
	if bb := b.Billing; bb != nil {
		t := &engine.NewTenant{
			Company: strings.TrimSpace(str("billing.company", bb.Company, true, maxCompany)),
			VATID:   strings.TrimSpace(str("billing.vatId", bb.VATID, true, maxVAT)),
			Address: str("billing.address", bb.Address, false, maxAddress),
		}
		if bb.CreditBalance != nil {
			f, err := bb.CreditBalance.Float64()
			if err != nil || f < 0 {
				v.Add("billing.creditBalance", "number", "must be a number not below 0")
			}
			t.CreditBalance = *bb.CreditBalance
		}
		reg.Tenant = t
	}
	reg.Invalid = &v
	return reg
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// userView is what /me and /user answer. The password hash never leaves
// the store.
type userView struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Mail        string      `json:"mail"`
	Status      string      `json:"status"`
	Permissions []string    `json:"permissions"`
	Tenant      *tenantView `json:"tenant"`
	CreatedAt   time.Time   `json:"createdAt"`
}

type tenantView struct {
	ID      string `json:"id"`
	Company string `json:"company"`
	VATID   string `json:"vatId"`
}

func (c *Contract) me(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	tok := token.FromHeaders(r.Header.Get)
	u, p, err := c.env.Engine.Me(r.Context(), tok)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	if u == nil {
		// An admin token: there is no user record to show.
		c.WriteError(w, r, fmt.Errorf("admin %s: %w", p.ID, store.ErrNotFound))
		return
	}
	contract.WriteJSON(w, http.StatusOK, envelope{Status: "success", Data: c.view(r.Context(), u)})
}

func (c *Contract) view(ctx context.Context, u *store.User) userView {
	view := userView{
		ID: u.ID, Name: u.Name, Mail: u.Email, Status: string(u.Status),
		Permissions: u.Permissions, CreatedAt: u.CreatedAt,
	}
	if u.Status != store.StatusActive {
		view.Permissions = []string{}
	}
	if u.TenantID != "" {
		view.Tenant = c.tenant(ctx, u.TenantID)
	}
	return view
}

// MsgActivated is the confirm route's message.
const MsgActivated = "Your account is active."

// confirm serves the mailed link (email mode) as the other contracts'
// confirm routes do: a GET opens the page whose button posts the token
// back (scanners that fetch links change nothing); the POST, or a GET that
// asks for JSON explicitly, activates and answers the user as /me does. A
// second use of the link answers the same.
func (c *Contract) confirm(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	u := contract.ActivateLink(w, r, req, c.env.Engine, contract.ConfirmPage{
		Title:  "Activate your account",
		Text:   "Press the button to activate your account.",
		Button: "Activate account",
		Field:  "token",
	}, c.WriteError)
	if u == nil {
		return
	}
	if contract.WantsPage(r) {
		contract.WriteDonePage(w, "Thank you: your account is active.")
		return
	}
	contract.WriteJSON(w, http.StatusOK, envelope{Status: "success", Message: MsgActivated, Data: c.view(r.Context(), u)})
}

func (c *Contract) tenant(ctx context.Context, id string) *tenantView {
	t, err := c.env.Engine.Store().GetTenant(ctx, id)
	if err != nil {
		// The user is still worth showing; the tenant id says where it belongs.
		return &tenantView{ID: id}
	}
	tv := &tenantView{ID: t.ID, Company: t.Name}
	if t.Billing != nil {
		tv.VATID = t.Billing.VATID
	}
	return tv
}

var _ contract.Contract = (*Contract)(nil)
