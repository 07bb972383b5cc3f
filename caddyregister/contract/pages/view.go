package pages

import (
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// view is what a page template gets.
type view struct {
	// T is the catalogue of the page's language: key → text.
	T    map[string]string
	Lang string
	// Page is the page's name; its title is T["title_"+Page].
	Page string
	// P holds the pages' paths by name (signup, login, …, style).
	P map[string]string
	// CSRF is the token every form posts (field "csrf").
	CSRF string
	// Values are the fields' values to show again (never passwords).
	Values map[string]string
	// Errors are the fields' error messages, by field name.
	Errors map[string]string
	// Error is an error about the whole form; Notice a message of success.
	Error, Notice string
	// Text, Link and LinkText are the message page's words.
	Text, Link, LinkText string
	// Captcha is the signup form's challenge, when the site requires one.
	Captcha *captchaView
	// ReturnTo is where a log-in goes on (a path on this site).
	ReturnTo string
	// Token is a mailed link's token (reset, confirm).
	Token string
	// Email and Status are the logged-in user's; Admin marks a configured
	// admin's login, which has no account page.
	Email, Status string
	Admin         bool
	Sessions      []sessionView
}

// captchaView is a CAPTCHA image and its token.
type captchaView struct {
	Src   template.URL // a data: URI of the engine's SVG
	Token string
}

func (c *Contract) newView(w http.ResponseWriter, r *http.Request, page string) *view {
	lang := c.ui.lang(r)
	v := &view{T: c.ui.cat[lang], Lang: lang, Page: page, CSRF: csrfToken(w, r),
		Values: map[string]string{}, Errors: map[string]string{}, P: map[string]string{}}
	for name, p := range map[string]string{"signup": PathSignup, "login": PathLogin, "logout": PathLogout, "forgot": PathForgot,
		"reset": PathReset, "confirm": PathConfirm, "resend": PathResend, "settings": PathSettings, "change": PathChange,
		"end_session": PathEndSession, "delete": PathDelete, "style": PathStylesheet} {
		v.P[name] = c.path(p)
	}
	return v
}

// message answers a page with a title, a text and an optional link.
func (c *Contract) message(w http.ResponseWriter, r *http.Request, status int, title, text, linkPath, linkText string) {
	v := c.newView(w, r, "message")
	v.Page = title
	v.Text = v.T[text]
	if linkPath != "" {
		v.Link, v.LinkText = c.path(linkPath), v.T[linkText]
	}
	c.ui.render(w, status, "message", v)
}

// readForm parses a POST's form and checks its CSRF token; on failure it
// has answered (400, 403) and ok is false.
func (c *Contract) readForm(w http.ResponseWriter, r *http.Request, req *contract.Request) (url.Values, bool) {
	form, err := url.ParseQuery(string(req.Body))
	if err != nil {
		c.message(w, r, http.StatusBadRequest, "error", "msg_bad_form", "", "")
		return nil, false
	}
	if !csrfOK(r, form) {
		c.message(w, r, http.StatusForbidden, "error", "msg_csrf", "", "")
		return nil, false
	}
	return form, true
}

// fail shows err on the form of page v, with the status the contracts
// give it: field errors by field, the rest as the form's error.
func (c *Contract) fail(w http.ResponseWriter, r *http.Request, page string, v *view, err error) {
	status, retry, _ := contract.Status(err)
	var ve *engine.ValidationError
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ve):
		for _, f := range ve.Fields {
			if _, dup := v.Errors[f.Field]; !dup {
				v.Errors[f.Field] = c.fieldText(v, f)
			}
		}
	case errors.As(err, &ce):
		v.Errors["email"] = v.T["err_taken"]
	case errors.Is(err, engine.ErrCaptchaRequired), errors.Is(err, engine.ErrCaptchaWrong), errors.Is(err, engine.ErrCaptchaExpired):
		v.Errors["captcha"] = v.T["err_captcha"]
	case errors.Is(err, engine.ErrTokenInvalid):
		v.Error = v.T["err_link"]
	case status == http.StatusTooManyRequests:
		v.Error = v.T["err_rate_limited"]
	case status == http.StatusServiceUnavailable:
		v.Error = v.T["err_unavailable"]
	default:
		contract.LogFailure(c.env.Logger, r, status, err)
		v.Error = v.T["err_internal"]
	}
	contract.SetRetryAfter(w, retry)
	c.ui.render(w, status, page, v)
}

// fieldText is a field error in the page's language: the catalogue's
// text for the rule (rule_<rule>), else the engine's English sentence,
// which is more precise ("at least 10 characters"): the shipped English
// catalogue has no rule texts.
func (c *Contract) fieldText(v *view, f *engine.FieldError) string {
	if s, ok := v.T["rule_"+f.Rule]; ok {
		return s
	}
	if f.Rule == "required" {
		return v.T["err_required"]
	}
	msg := f.Message
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	return msg
}

// captchaFor draws a new challenge for the signup form.
func (c *Contract) captchaFor(r *http.Request) (*captchaView, error) {
	ch, err := c.env.Engine.NewChallenge(r.Context())
	if err != nil {
		return nil, err
	}
	src := "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(ch.SVG))
	return &captchaView{Src: template.URL(src), Token: ch.Token}, nil
}

func (c *Contract) stylesheet(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(c.ui.css)
}

// WriteError implements contract.Contract: what the handler refuses before
// a page runs (a cross-site post, a rate limit, a wrong method or body) is
// answered as a page too.
func (c *Contract) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status, retry, _ := contract.Status(err)
	var he *contract.HTTPError
	if errors.As(err, &he) && status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", strings.Join(he.Allow, ", "))
	}
	contract.LogFailure(c.env.Logger, r, status, err)
	contract.SetRetryAfter(w, retry)
	text := "err_internal"
	switch {
	case status == http.StatusForbidden:
		text = "msg_csrf" // the handler's cross-site refusal
	case status == http.StatusTooManyRequests:
		text = "err_rate_limited"
	case status == http.StatusServiceUnavailable:
		text = "err_unavailable"
	case status < http.StatusInternalServerError:
		text = "msg_bad_form"
	}
	c.message(w, r, status, "error", text, "", "")
}
