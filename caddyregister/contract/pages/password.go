package pages

import (
	"net/http"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

func (c *Contract) forgotPage(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	c.emailForm(w, r, "forgot")
}

// forgot answers the same whether or not an account has the address
// (engine.ForgotPassword mails after the answer); the link opens the
// reset page.
func (c *Contract) forgot(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	c.sendLink(w, r, req, "forgot", "msg_forgot_sent", func(email string) error {
		return c.env.Engine.ForgotPassword(r.Context(), email, req.ClientIP, req.BaseURL+c.path(PathReset))
	})
}

// emailForm renders page, a form that asks for an address (forgot,
// resend), filled from ?email=.
func (c *Contract) emailForm(w http.ResponseWriter, r *http.Request, page string) {
	v := c.newView(w, r, page)
	v.Values["email"] = r.URL.Query().Get("email")
	c.ui.render(w, http.StatusOK, page, v)
}

// sendLink answers page's address form with message msg, the same
// whether or not an account has the address (send mails after the
// answer); only send's refusals (a malformed address, a rate limit) show
// on the form.
func (c *Contract) sendLink(w http.ResponseWriter, r *http.Request, req *contract.Request, page, msg string, send func(email string) error) {
	form, ok := c.readForm(w, r, req)
	if !ok {
		return
	}
	v := c.newView(w, r, page)
	email := strings.TrimSpace(form.Get("email"))
	v.Values["email"] = email
	if err := send(email); err != nil {
		c.fail(w, r, page, v, err)
		return
	}
	c.message(w, r, http.StatusOK, page, msg, PathLogin, "link_login")
}

// resetPage is the mailed reset link's landing: the form, never a change.
func (c *Contract) resetPage(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	v := c.newView(w, r, "reset")
	v.Token = r.URL.Query().Get("token")
	c.ui.render(w, http.StatusOK, "reset", v)
}

func (c *Contract) reset(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	form, ok := c.readForm(w, r, req)
	if !ok {
		return
	}
	v := c.newView(w, r, "reset")
	v.Token = form.Get("token")
	if form.Get("password") == "" {
		v.Errors["password"] = v.T["err_required"]
		c.ui.render(w, http.StatusBadRequest, "reset", v)
		return
	}
	if err := c.env.Engine.ResetPassword(r.Context(), v.Token, form.Get("password"), c.policy); err != nil {
		c.fail(w, r, "reset", v, err)
		return
	}
	c.message(w, r, http.StatusOK, "reset", "msg_reset_done", PathLogin, "link_login")
}
