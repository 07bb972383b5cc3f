package soajs

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
)

// userData is what the token routes answer.
type userData struct {
	ID string `json:"id"`
}

// joinValidate uses an activation token (a user added with a password):
// the user becomes active. Following it again answers the same. A GET
// opens the page whose button posts the token back (scanners that fetch
// links change nothing); the POST, or a GET that asks for JSON explicitly,
// activates.
func (c *Contract) joinValidate(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	tok, proceed, err := contract.LinkToken(w, r, req.Body, contract.ConfirmPage{
		Title:  "Activate your account",
		Text:   "Press the button to activate your account.",
		Button: "Activate my account",
		Field:  "token",
	})
	if err != nil {
		c.WriteError(w, r, err)
	}
	if !proceed {
		return
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		f := &Failures{}
		f.add(0, CodeMissing, missingMsg("token"))
		c.WriteError(w, r, f)
		return
	}
	u, err := c.env.Engine.Activate(r.Context(), tok)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	if contract.WantsPage(r) {
		contract.WriteDonePage(w, "Your account is activated.")
		return
	}
	ok(w, userData{ID: u.ID})
}

// resetPassword uses a set-password token (a user added without a
// password): the password is set and the user becomes active. The token
// works once. token is read from the body or, as the framework has it, the
// query string (the body wins).
func (c *Contract) resetPassword(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	in, err := decodeBody(r, req.Body)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	query, _ := url.ParseQuery(r.URL.RawQuery)
	tok, pass, f := parseResetPassword(in, query)
	if err := f.err(); err != nil {
		c.WriteError(w, r, err)
		return
	}
	u, err := c.env.Engine.SetPassword(r.Context(), tok, engine.PurposeSetPassword, pass, c.policy)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	ok(w, userData{ID: u.ID})
}

func parseResetPassword(in input, query url.Values) (tok, pass string, f *Failures) {
	x := &fields{in: in}
	tok = x.fromBodyOrQuery(0, "token", query)
	pass, pPresent, pBad := in.str("password")
	conf, cPresent, cBad := in.str("confirmation")
	switch {
	case pBad != "":
		x.f.add(1, CodeInvalid, invalidMsg("password", "password "+pBad))
	case !pPresent || pass == "":
		x.f.add(1, CodeMissing, missingMsg("password"))
	}
	switch {
	case cBad != "":
		x.f.add(2, CodeInvalid, invalidMsg("confirmation", "confirmation "+cBad))
	case !cPresent || conf == "":
		x.f.add(2, CodeMissing, missingMsg("confirmation"))
	}
	if x.f.err() == nil && pass != conf {
		x.f.add(1, CodeConfirmation, "")
	}
	return tok, pass, &x.f
}
