// Package saymon serves the "saymon" contract: a monitoring platform's
// signup (shared/contracts/001_22148c599283ab3c.txt). The caller, an admin
// holding manage-users, first generates a CAPTCHA, then posts the solved
// CAPTCHA with the new user's login, e-mail and password; the user gets a
// confirmation mail and stays at status 0 until the link is followed.
//
// Errors have one shape: {"code": "<machine code>", "message": "<text>"},
// plus "field" (and "rule" for passwords) when one input is at fault.
package saymon

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Name is the contract's name in the Caddyfile.
const Name = "saymon"

// PermManageUsers is the permission the caller needs.
const PermManageUsers = engine.PermManageUsers

const maxLogin = 128

func init() {
	contract.Register(Name, New)
}

// Contract is the saymon wire format.
type Contract struct {
	env             contract.Env
	policy          password.Policy
	tmpl            *mail.Template
	captchaRequired bool
}

// Default confirmation mail. Overridable per handler by files.
const (
	defaultSubject = `Confirm your e-mail address`
	defaultText    = `Hello {{.User.Login}},

an account was created for you. Confirm your e-mail address by opening this link:

{{.Link}}

The link is valid until {{.Expires.Format "2006-01-02 15:04 MST"}}. If you did not expect this mail, ignore it.
`
	defaultHTML = `<!doctype html>
<html><body>
<p>Hello {{.User.Login}},</p>
<p>an account was created for you. Confirm your e-mail address:</p>
<p><a href="{{.Link}}">Confirm e-mail address</a></p>
<p>The link is valid until {{.Expires.Format "2006-01-02 15:04 MST"}}. If you did not expect this mail, ignore it.</p>
</body></html>
`
)

// New builds the contract. Template override files are read here: they are
// configuration, read once per config load.
func New(env contract.Env) (contract.Contract, error) {
	if err := env.Options.Check(Name); err != nil {
		return nil, err
	}
	c := &Contract{env: env, policy: env.PasswordPolicy(password.NIST()), captchaRequired: true}
	switch env.Settings.Captcha {
	case "", "required":
	case "off":
		c.captchaRequired = false
	default:
		return nil, fmt.Errorf("captcha must be required or off, not %q", env.Settings.Captcha)
	}
	parts := [3]string{defaultSubject, defaultText, defaultHTML}
	for i, f := range []string{env.Settings.Template.Subject, env.Settings.Template.Text, env.Settings.Template.HTML} {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("mail template: %w", err)
		}
		parts[i] = string(b)
	}
	t, err := mail.ParseTemplate(parts[0], parts[1], parts[2])
	if err != nil {
		return nil, fmt.Errorf("mail template: %w", err)
	}
	c.tmpl = t
	if env.Engine != nil {
		env.Engine.RegisterResender(engine.ResenderKey(Name, env.Prefix), engine.Resender{Template: t, TTL: env.Settings.LinkTTL})
	}
	return c, nil
}

// MailsLinks implements contract.LinkMailer: the confirmation mail links
// to the confirm route.
func (c *Contract) MailsLinks() bool { return true }

// Routes implements contract.Contract.
func (c *Contract) Routes() []contract.Route {
	return []contract.Route{
		{Method: http.MethodGet, Path: "/users/captcha", Name: "captcha", Limit: contract.LinkLimit, Serve: c.captcha, Admin: true},
		{Method: http.MethodPost, Path: "/users/signup", Name: "signup", Limit: contract.HashLimit, ContentTypes: []string{"application/json"}, Serve: c.signup, Admin: true},
		{Method: http.MethodGet, Path: "/users/confirm", Name: "confirm", Limit: contract.LinkLimit, Serve: c.confirm},
		{Method: http.MethodPost, Path: "/users/confirm", Name: "confirm", Limit: contract.LinkLimit, ContentTypes: contract.ActivationContentTypes, Serve: c.confirm},
	}
}

// apiError is the contract's one error shape.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	Rule    string `json:"rule,omitempty"`
}

// errSignupDisabled is answered when the handler turns signup off, as the
// product does while server.user.auth_enabled is false.
var errSignupDisabled = errors.New("signup disabled")

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
	case errors.Is(err, errSignupDisabled):
		status, e.Code, e.Message = http.StatusForbidden, "signup_disabled", "User signup is disabled on this server (server.user.auth_enabled is false)."
	case errors.As(err, &ce):
		status = http.StatusConflict
		switch ce.Field {
		case "login":
			e.Code, e.Field, e.Message = "login_taken", "login", "A user with this login already exists."
		default:
			e.Code, e.Field, e.Message = "email_taken", "email", "A user with this e-mail already exists."
		}
	case errors.As(err, &ve):
		f := ve.Fields[0]
		e.Field, e.Message = f.Field, f.Message
		e.Code = "invalid_field"
		if f.Field == "password" && f.Rule != "required" {
			e.Code, e.Rule = "weak_password", f.Rule
			e.Message = "Password does not match the password policy: " + f.Message + " (" + f.Rule + ")."
		}
	case errors.As(err, &de):
		e.Code, e.Message = "invalid_json", de.Error()
	case errors.Is(err, engine.ErrCaptchaRequired):
		e.Code, e.Field, e.Message = "captcha_required", "captcha", "A CAPTCHA token and its solution are required; generate one with GET /users/captcha."
	case errors.Is(err, engine.ErrCaptchaWrong):
		e.Code, e.Field, e.Message = "captcha_wrong", "captcha", "The CAPTCHA solution is wrong; generate a new CAPTCHA."
	case errors.Is(err, engine.ErrCaptchaExpired):
		e.Code, e.Field, e.Message = "captcha_expired", "token", "The CAPTCHA token is unknown, expired or already used; generate a new CAPTCHA."
	case errors.Is(err, engine.ErrTokenInvalid):
		e.Code, e.Field, e.Message = "token_invalid", "token", "The confirmation link is invalid or has expired."
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="saymon", charset="UTF-8"`)
		e.Code, e.Message = "unauthenticated", "Authentication required: send HTTP Basic credentials or an access token."
	case errors.As(err, new(*engine.RefusedError)):
		// Refused by the app's before_register hook: msg is its reason.
		e.Code = "forbidden"
	case status == http.StatusForbidden && errors.As(err, &he):
		// Refused by the handler before the route ran (a cross-site
		// request): msg is its message, which says why.
		e.Code = "forbidden"
	case status == http.StatusForbidden:
		e.Code, e.Message = "forbidden", "An admin with the permission "+PermManageUsers+" is required."
	case errors.As(err, &he):
		e.Code = codeForStatus(status)
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", strings.Join(he.Allow, ", "))
		}
	default:
		e.Code = codeForStatus(status)
	}
	contract.LogFailure(c.env.Logger, r, status, err)
	contract.SetRetryAfter(w, retry)
	contract.WriteJSON(w, status, e)
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "body_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusNotFound:
		return "not_found"
	default:
		return "error"
	}
}

func (c *Contract) captcha(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if _, err := contract.RequireAdmin(r, c.env.Engine, req.ClientIP, PermManageUsers); err != nil {
		c.WriteError(w, r, err)
		return
	}
	if c.env.Settings.SignupDisabled {
		c.WriteError(w, r, errSignupDisabled)
		return
	}
	ch, err := c.env.Engine.NewChallenge(r.Context())
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	contract.WriteJSON(w, http.StatusOK, map[string]string{"CAPTCHA": ch.SVG, "token": ch.Token})
}

type signupRequest struct {
	Token    *string `json:"token"`
	Captcha  *string `json:"captcha"`
	Login    *string `json:"login"`
	Email    *string `json:"email"`
	Password *string `json:"password"`
}

// DecodeSignup decodes body as the signup route does: the entry point of
// the decoder worst-case benchmark (internal/decodebench).
func DecodeSignup(body []byte) error {
	var r signupRequest
	return contract.DecodeJSON(body, &r, 0)
}

func (c *Contract) signup(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if _, err := contract.RequireAdmin(r, c.env.Engine, req.ClientIP, PermManageUsers); err != nil {
		c.WriteError(w, r, err)
		return
	}
	if c.env.Settings.SignupDisabled {
		c.WriteError(w, r, errSignupDisabled)
		return
	}
	var body signupRequest
	if err := contract.DecodeJSON(req.Body, &body, 0); err != nil {
		c.env.Engine.Reject(Name, req.ClientIP, err)
		c.WriteError(w, r, err)
		return
	}
	var v engine.ValidationError
	str := func(field string, p *string) string {
		if p == nil || strings.TrimSpace(*p) == "" {
			v.Add(field, "required", "The field "+field+" is required.")
			return ""
		}
		return *p
	}
	login := strings.TrimSpace(str("login", body.Login))
	email := strings.TrimSpace(str("email", body.Email))
	pass := str("password", body.Password)
	if login != "" && !v.Has("login") {
		if utf8.RuneCountInString(login) > maxLogin {
			v.Add("login", "maxLength", fmt.Sprintf("The login must be at most %d characters.", maxLogin))
		} else if strings.IndexFunc(login, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			v.Add("login", "chars", "The login must not contain spaces or control characters.")
		}
	}
	perms := append([]string{}, c.env.Settings.DefaultPermissions...)
	objPerms := contract.ObjectPermissions{Include: []string{}, Exclude: []string{}}
	if op := c.env.Settings.DefaultObjectPermissions; op != nil {
		objPerms.Include = append(objPerms.Include, op.Include...)
		objPerms.Exclude = append(objPerms.Exclude, op.Exclude...)
	}
	attrs, err := attributes(objPerms)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	base := req.BaseURL + c.env.Prefix + "/users/confirm?token="
	reg := engine.Registration{
		Contract:    Name,
		ClientIP:    req.ClientIP,
		Email:       email,
		Login:       login,
		Password:    pass,
		Policy:      c.policy,
		Permissions: perms,
		Attributes:  attrs,
		Invalid:     &v,
		Mail: &engine.MailSpec{
			Template: c.tmpl,
			Link:     func(tok string) string { return base + url.QueryEscape(tok) },
			TTL:      c.env.Settings.LinkTTL,
			Resender: engine.ResenderKey(Name, c.env.Prefix),
		},
	}
	if c.captchaRequired {
		reg.Captcha = &engine.CaptchaAnswer{Token: deref(body.Token), Answer: deref(body.Captcha)}
	}
	res, err := c.env.Engine.Register(r.Context(), reg)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	contract.WriteJSON(w, http.StatusOK, userModel(res.User))
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// confirm serves the mailed link: a GET opens the page whose button posts
// the token back (scanners that fetch links change nothing); the POST, or a
// GET that asks for JSON explicitly, confirms.
func (c *Contract) confirm(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	u := contract.ActivateLink(w, r, req, c.env.Engine, contract.ConfirmPage{
		Title:  "Confirm your e-mail address",
		Text:   "Press the button to confirm the e-mail address of your account.",
		Button: "Confirm e-mail address",
		Field:  "token",
	}, c.WriteError)
	if u == nil {
		return
	}
	if contract.WantsPage(r) {
		// A person who pressed the page's button.
		contract.WriteDonePage(w, fmt.Sprintf("Thank you, %s: your e-mail address is confirmed.", u.Login))
		return
	}
	contract.WriteJSON(w, http.StatusOK, userModel(u))
}

var _ contract.Contract = (*Contract)(nil)
