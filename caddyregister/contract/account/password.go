package account

import (
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
)

// The mailed reset link opens GET {prefix}/password/reset?token=…: a page
// whose form posts the token and the new password back to the same path.
// Programs POST {"token","password"} as JSON. Forgot always answers 202,
// whether or not the address has an account (the engine does the rest
// after the answer, so its timing tells nothing either).

// MailsLinks implements contract.LinkMailer: forgot mails a reset link,
// so the handler's link host rules apply (public_url or a host-bound site).
func (c *Contract) MailsLinks() bool { return true }

type forgotRequest struct {
	Email string `json:"email"`
}

func (c *Contract) forgot(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	var body forgotRequest
	if !c.decodeRequired(w, r, req.Body, &body, func() [][2]string { return [][2]string{{"email", body.Email}} }) {
		return
	}
	if err := c.env.Engine.ForgotPassword(r.Context(), body.Email, req.ClientIP, req.BaseURL+c.env.Prefix+"/password/reset"); err != nil {
		c.WriteError(w, r, err)
		return
	}
	contract.WriteJSON(w, http.StatusAccepted, map[string]string{
		"status": "if an active account has this address, a password reset link is on its way",
	})
}

// resetPage answers the mailed link: the form, never a change (scanners
// fetch links too).
func (c *Contract) resetPage(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
	contract.WriteConfirmPage(w, contract.ConfirmPage{
		Title:         "Choose a new password",
		Text:          "Enter the new password for your account. Every session of the account is ended; log in again afterwards.",
		Button:        "Set the new password",
		Field:         "token",
		Token:         r.URL.Query().Get("token"),
		PasswordField: "password",
	})
}

type resetRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

func (c *Contract) reset(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	var body resetRequest
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if strings.EqualFold(mt, "application/json") {
		if err := contract.DecodeJSON(req.Body, &body, 0); err != nil {
			c.WriteError(w, r, err)
			return
		}
	} else {
		form, err := url.ParseQuery(string(req.Body))
		if err != nil {
			c.WriteError(w, r, &contract.HTTPError{Status: http.StatusBadRequest, Message: "the form body is not valid"})
			return
		}
		body.Token, body.Password = form.Get("token"), form.Get("password")
	}
	var v engine.ValidationError
	required(&v, [2]string{"token", body.Token}, [2]string{"password", body.Password})
	if err := v.Err(); err != nil {
		c.WriteError(w, r, err)
		return
	}
	if err := c.env.Engine.ResetPassword(r.Context(), body.Token, body.Password, c.policy); err != nil {
		c.WriteError(w, r, err)
		return
	}
	if contract.WantsPage(r) {
		contract.WriteDonePage(w, "Your password is changed. Log in with the new one.")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
