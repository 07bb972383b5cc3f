package pages

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
)

func (c *Contract) signupView(w http.ResponseWriter, r *http.Request) (*view, error) {
	v := c.newView(w, r, "signup")
	if c.captcha {
		ch, err := c.captchaFor(r)
		if err != nil {
			return nil, err
		}
		v.Captcha = ch
	}
	return v, nil
}

func (c *Contract) signupPage(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	if c.env.Settings.SignupDisabled {
		c.message(w, r, http.StatusForbidden, "signup", "msg_signup_disabled", PathLogin, "link_login")
		return
	}
	v, err := c.signupView(w, r)
	if err != nil {
		c.message(w, r, http.StatusServiceUnavailable, "error", "err_unavailable", "", "")
		return
	}
	// The "new image" link comes back here with the address typed so far.
	v.Values["email"] = r.URL.Query().Get("email")
	c.ui.render(w, http.StatusOK, "signup", v)
}

// signup registers a pending user and mails the confirmation link, as the
// other contracts' signups do (engine.Register: policy, uniqueness, the
// CAPTCHA, the mail in the same step as the user).
func (c *Contract) signup(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if c.env.Settings.SignupDisabled {
		c.message(w, r, http.StatusForbidden, "signup", "msg_signup_disabled", PathLogin, "link_login")
		return
	}
	form, ok := c.readForm(w, r, req)
	if !ok {
		return
	}
	v, err := c.signupView(w, r)
	if err != nil {
		c.message(w, r, http.StatusServiceUnavailable, "error", "err_unavailable", "", "")
		return
	}
	email := strings.TrimSpace(form.Get("email"))
	v.Values["email"] = email
	var invalid engine.ValidationError
	if form.Get("password") == "" {
		invalid.Add("password", "required", "is required")
	}
	base := req.BaseURL + c.path(PathConfirm) + "?token="
	reg := engine.Registration{
		Contract:    Name,
		ClientIP:    req.ClientIP,
		Email:       email,
		Password:    form.Get("password"),
		Policy:      c.policy,
		Permissions: append([]string{}, c.env.Settings.DefaultPermissions...),
		Invalid:     &invalid,
		Mail: &engine.MailSpec{
			Template: c.mail,
			Link:     func(tok string) string { return base + url.QueryEscape(tok) },
			TTL:      c.env.Settings.LinkTTL,
			Resender: engine.ResenderKey(Name, c.env.Prefix),
		},
	}
	if c.captcha {
		reg.Captcha = &engine.CaptchaAnswer{Token: form.Get("captcha_token"), Answer: form.Get("captcha")}
	}
	if _, err := c.env.Engine.Register(r.Context(), reg); err != nil {
		c.fail(w, r, "signup", v, err)
		return
	}
	c.message(w, r, http.StatusOK, "signup_done", "msg_signup_done", PathResend+"?email="+url.QueryEscape(email), "link_resend")
}

// confirmPage is the mailed link's landing: a button that posts the token
// back. The GET changes nothing (mail scanners fetch links too).
func (c *Contract) confirmPage(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	v := c.newView(w, r, "confirm")
	v.Token = r.URL.Query().Get("token")
	c.ui.render(w, http.StatusOK, "confirm", v)
}

func (c *Contract) confirm(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	form, ok := c.readForm(w, r, req)
	if !ok {
		return
	}
	tok, err := contract.ActivationToken(r, req.Body, "token")
	if err == nil && tok == "" {
		err = engine.ErrTokenInvalid
	}
	var email string
	if err == nil {
		u, aerr := c.env.Engine.Activate(r.Context(), tok)
		if err = aerr; u != nil {
			email = u.Email
		}
	}
	if err != nil {
		v := c.newView(w, r, "confirm")
		v.Token = form.Get("token")
		c.fail(w, r, "confirm", v, err)
		return
	}
	c.message(w, r, http.StatusOK, "confirmed", "msg_confirmed", PathLogin+"?email="+url.QueryEscape(email), "link_login")
}

func (c *Contract) resendPage(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	c.emailForm(w, r, "resend")
}

// resend answers the same whether or not a pending account has the
// address (engine.ResendActivation works after the answer).
func (c *Contract) resend(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	c.sendLink(w, r, req, "resend", "msg_resent", func(email string) error {
		return c.env.Engine.ResendActivation(r.Context(), email, req.ClientIP)
	})
}
