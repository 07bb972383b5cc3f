package pages

import (
	"net/http"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

func (c *Contract) forgotPage(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	v := c.newView(w, r, "forgot")
	v.Values["email"] = r.URL.Query().Get("email")
	c.ui.render(w, http.StatusOK, "forgot", v)
}

// forgot answers the same whether or not an account has the address
// (engine.ForgotPassword mails after the answer); the link opens the
// reset page.
func (c *Contract) forgot(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	form, ok := c.readForm(w, r, req)
	if !ok {
		return
	}
	v := c.newView(w, r, "forgot")
	email := strings.TrimSpace(form.Get("email"))
	v.Values["email"] = email
	if err := c.env.Engine.ForgotPassword(r.Context(), email, req.ClientIP, req.BaseURL+c.path(PathReset)); err != nil {
		c.fail(w, r, "forgot", v, err)
		return
	}
	c.message(w, r, http.StatusOK, "forgot", "msg_forgot_sent", PathLogin, "link_login")
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
