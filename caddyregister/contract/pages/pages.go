// Package pages serves the "pages" contract: server-rendered HTML pages
// for people (sign up, log in, forgot and reset the password, confirm the
// e-mail address, and an account page to change the password, see and end
// sessions, log out and erase the account). Every step is an engine call
// the account API makes too; the pages only turn forms into those calls
// and their outcomes into pages.
//
// The pages are plain HTML forms that work without JavaScript, rendered
// with html/template from embedded files an operator may replace
// (templates <dir>), in the language Accept-Language picks from the
// message catalogues (English and German shipped). Every response carries
// a strict Content-Security-Policy; every form a CSRF token (csrf.go).
package pages

import (
	"fmt"
	"net/http"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/password"
)

// Name is the contract's name in the Caddyfile.
const Name = "pages"

// Contract-specific options.
const (
	// OptCookie is `cookie <name>`: the session cookie the pages set at
	// log-in (contract.SessionCookies), the name register_auth's cookie
	// option reads. Default DefaultCookie.
	OptCookie = "cookie"
	// OptTemplates is `templates <dir>`: files in dir replace the embedded
	// templates, stylesheet and message catalogues of the same names.
	OptTemplates = "templates"
)

// DefaultCookie is the session cookie's name without the cookie option.
const DefaultCookie = "session"

func init() {
	contract.Register(Name, New, OptCookie, OptTemplates)
}

// Contract is the hosted pages.
type Contract struct {
	env     contract.Env
	policy  password.Policy
	cookies contract.SessionCookies
	captcha bool
	ui      *ui
	mail    *mail.Template
}

// Default confirmation mail of a sign-up. Overridable per handler by files
// (mail_template).
const (
	defaultSubject = `Confirm your e-mail address`
	defaultText    = `Hello,

an account was created with this e-mail address. Confirm it by opening this link:

{{.Link}}

The link is valid until {{.Expires.Format "2006-01-02 15:04 MST"}}. If you did not sign up, ignore this mail.
`
	defaultHTML = `<!doctype html>
<html><body>
<p>Hello,</p>
<p>an account was created with this e-mail address. Confirm it:</p>
<p><a href="{{.Link}}">Confirm e-mail address</a></p>
<p>The link is valid until {{.Expires.Format "2006-01-02 15:04 MST"}}. If you did not sign up, ignore this mail.</p>
</body></html>
`
)

var defaultMail = mail.MustParseTemplate(defaultSubject, defaultText, defaultHTML)

// New builds the contract: templates and catalogues are read and parsed
// here, once per config load, so a broken override fails the config.
func New(env contract.Env) (contract.Contract, error) {
	if err := env.Options.Check(Name, OptCookie, OptTemplates); err != nil {
		return nil, err
	}
	c := &Contract{env: env, policy: env.PasswordPolicy(password.NIST())}
	switch env.Settings.Captcha {
	case "", "off":
	case "required":
		c.captcha = true
	default:
		return nil, fmt.Errorf("contract %s: captcha must be required or off, not %q", Name, env.Settings.Captcha)
	}
	name := DefaultCookie
	if lines := env.Options[OptCookie]; len(lines) > 0 {
		args := env.Options.Last(OptCookie)
		if len(lines) != 1 || len(args) != 1 || !contract.ValidCookieName(args[0]) {
			return nil, fmt.Errorf("contract %s: cookie takes one cookie name", Name)
		}
		name = args[0]
	}
	c.cookies = contract.SessionCookies{Name: name, RefreshPath: contract.CookiePath(env.Prefix)}
	var dir string
	if lines := env.Options[OptTemplates]; len(lines) > 0 {
		args := env.Options.Last(OptTemplates)
		if len(lines) != 1 || len(args) != 1 {
			return nil, fmt.Errorf("contract %s: templates takes one directory", Name)
		}
		dir = args[0]
	}
	var err error
	if c.ui, err = loadUI(dir); err != nil {
		return nil, fmt.Errorf("contract %s: %w", Name, err)
	}
	t := env.Settings.Template
	if c.mail, err = mail.LoadTemplate(defaultMail, t.Subject, t.Text, t.HTML); err != nil {
		return nil, err
	}
	if env.Engine != nil {
		env.Engine.RegisterResender(engine.ResenderKey(Name, env.Prefix), engine.Resender{Template: c.mail, TTL: env.Settings.LinkTTL})
	}
	return c, nil
}

// MailsLinks implements contract.LinkMailer: sign-up mails a confirmation
// link and forgot-password a reset link, to these pages.
func (c *Contract) MailsLinks() bool { return true }

// Page paths, relative to the prefix.
const (
	PathSignup      = "/signup"
	PathLogin       = "/login"
	PathLogout      = "/logout"
	PathForgot      = "/password/forgot"
	PathReset       = "/password/reset"
	PathConfirm     = "/confirm"
	PathResend      = "/confirm/resend"
	PathSettings    = "/settings"
	PathChange      = "/settings/password"
	PathEndSession  = "/settings/sessions/end"
	PathDelete      = "/settings/delete"
	PathStylesheet  = "/style.css"
	formContentType = "application/x-www-form-urlencoded"
)

// Routes implements contract.Contract. Every POST takes a form, so the
// handler refuses it cross-site (crossSiteGuarded) before the CSRF token
// is even looked at; the routes that read the session cookie say so.
func (c *Contract) Routes() []contract.Route {
	form := []string{formContentType}
	get, post := http.MethodGet, http.MethodPost
	routes := []contract.Route{
		{Method: get, Path: PathStylesheet, Name: "page_style", Serve: c.stylesheet},
		{Method: get, Path: PathSignup, Name: "page_signup", Limit: contract.LinkLimit, Serve: c.signupPage},
		{Method: post, Path: PathSignup, Name: "signup", Limit: contract.HashLimit, ContentTypes: form, Serve: c.signup},
		{Method: get, Path: PathLogin, Name: "page_login", Limit: contract.LinkLimit, Serve: c.loginPage, Cookie: true},
		{Method: post, Path: PathLogin, Name: "login", Limit: contract.LoginLimit, ContentTypes: form, Serve: c.login, Cookie: true},
		{Method: post, Path: PathLogout, Name: "logout", ContentTypes: form, Serve: c.logout, Cookie: true},
		{Method: get, Path: PathForgot, Name: "page_password_forgot", Serve: c.forgotPage},
		{Method: post, Path: PathForgot, Name: "password_forgot", Limit: contract.SecretLimit, ContentTypes: form, Serve: c.forgot},
		{Method: get, Path: PathReset, Name: "page_password_reset", Limit: contract.SecretLimit, Serve: c.resetPage},
		{Method: post, Path: PathReset, Name: "password_reset", Limit: contract.SecretLimit, ContentTypes: form, Serve: c.reset},
		{Method: get, Path: PathConfirm, Name: "page_confirm", Limit: contract.LinkLimit, Serve: c.confirmPage},
		{Method: post, Path: PathConfirm, Name: "confirm", Limit: contract.LinkLimit, ContentTypes: form, Serve: c.confirm},
		{Method: get, Path: PathResend, Name: "page_activation_resend", Serve: c.resendPage},
		{Method: post, Path: PathResend, Name: "activation_resend", Limit: contract.SecretLimit, ContentTypes: form, Serve: c.resend},
		{Method: get, Path: PathSettings, Name: "page_settings", Limit: contract.LinkLimit, Serve: c.settingsPage, Cookie: true},
		{Method: post, Path: PathChange, Name: "password_change", Limit: contract.LoginLimit, ContentTypes: form, Serve: c.changePassword, Cookie: true},
		{Method: post, Path: PathEndSession, Name: "session_end", Limit: contract.LinkLimit, ContentTypes: form, Serve: c.endSession, Cookie: true},
		{Method: post, Path: PathDelete, Name: "erase", Limit: contract.LoginLimit, ContentTypes: form, Serve: c.erase, Cookie: true},
	}
	// Every page answers HEAD as GET (net/http drops the body), as a
	// static site would: link checkers ask with HEAD.
	for _, rt := range routes {
		if rt.Method == get {
			rt.Method = http.MethodHead
			routes = append(routes, rt)
		}
	}
	return routes
}

// path is a page's path on the site.
func (c *Contract) path(p string) string { return c.env.Prefix + p }

var _ contract.Contract = (*Contract)(nil)
