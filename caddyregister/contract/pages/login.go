package pages

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// returnTo is where a log-in goes on: return_to when it is a path on this
// site (contract.SafeReturnTo, as the gate builds it), else the account
// page.
func (c *Contract) returnTo(s string) string {
	if s == "" {
		return c.path(PathSettings)
	}
	return contract.SafeReturnTo(s)
}

// session is the browser's session: its access cookie, or, when that is
// gone or expired, a refresh of its refresh cookie (the new cookies are
// set on w). nil when there is none; err only when the store failed.
func (c *Contract) session(w http.ResponseWriter, r *http.Request, req *contract.Request) (*engine.Principal, error) {
	eng := c.env.Engine
	if tok := c.cookies.Access(r); tok != "" {
		p, err := eng.AuthenticateToken(r.Context(), tok)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, engine.ErrUnauthenticated) {
			return nil, err
		}
	}
	rt := c.cookies.Refresh(r)
	if rt == "" {
		return nil, nil
	}
	t, err := eng.Refresh(r.Context(), rt, req.ClientIP, r.UserAgent(), c.env.Settings.Sessions)
	switch {
	case errors.Is(err, engine.ErrRefreshConflict):
		// Another request of this browser (a second tab, a prefetch) has
		// just rotated the token, and its answer carries the successor:
		// clearing the cookies here could wipe that out.
		return nil, nil
	case errors.Is(err, engine.ErrUnauthenticated), errors.Is(err, engine.ErrAccountDisabled), errors.Is(err, engine.ErrNotActivated):
		c.cookies.Clear(w, r) // spent, revoked or expired: forget it
		return nil, nil
	case err != nil:
		return nil, err
	}
	c.cookies.Set(w, r, t)
	return t.Principal, nil
}

func redirect(w http.ResponseWriter, to string) {
	w.Header().Set("Location", to)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}

// loginPage shows the form; a browser that still has a session (a live
// access cookie, or a refresh cookie: the gate sent it here because the
// access token expired) goes straight on to return_to.
func (c *Contract) loginPage(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	q := r.URL.Query()
	p, err := c.session(w, r, req)
	if err != nil {
		c.message(w, r, http.StatusServiceUnavailable, "error", "err_unavailable", "", "")
		return
	}
	if p != nil && (p.Kind != engine.KindUser || p.Status == "active") {
		redirect(w, c.returnTo(q.Get("return_to")))
		return
	}
	v := c.newView(w, r, "login")
	v.ReturnTo = q.Get("return_to")
	v.Values["email"] = q.Get("email")
	if n := q.Get("notice"); n != "" {
		v.Notice = v.T["notice_"+n] // only the catalogue's notices
	}
	c.ui.render(w, http.StatusOK, "login", v)
}

func (c *Contract) login(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	form, ok := c.readForm(w, r, req)
	if !ok {
		return
	}
	v := c.newView(w, r, "login")
	email, pass := strings.TrimSpace(form.Get("email")), form.Get("password")
	v.Values["email"], v.ReturnTo = email, form.Get("return_to")
	if email == "" {
		v.Errors["email"] = v.T["err_required"]
	}
	if pass == "" {
		v.Errors["password"] = v.T["err_required"]
	}
	if len(v.Errors) > 0 {
		c.ui.render(w, http.StatusBadRequest, "login", v)
		return
	}
	t, err := c.env.Engine.LoginSession(r.Context(), req.ClientIP, r.UserAgent(), email, pass, c.env.Settings.Sessions)
	switch {
	case errors.Is(err, engine.ErrNotActivated):
		v.Error = v.T["err_not_activated"]
		v.Link, v.LinkText = c.path(PathResend)+"?email="+url.QueryEscape(email), v.T["link_resend"]
		c.ui.render(w, http.StatusForbidden, "login", v)
		return
	case errors.Is(err, engine.ErrAccountDisabled):
		v.Error = v.T["err_disabled"]
		c.ui.render(w, http.StatusForbidden, "login", v)
		return
	case errors.Is(err, engine.ErrUnauthenticated):
		// One message for an unknown address and a wrong password.
		v.Errors["password"] = v.T["err_credentials"]
		c.ui.render(w, http.StatusUnauthorized, "login", v)
		return
	case err != nil:
		c.fail(w, r, "login", v, err)
		return
	}
	c.cookies.Set(w, r, t)
	redirect(w, c.returnTo(form.Get("return_to")))
}

// logout ends the session (by the access cookie, else the refresh cookie)
// and clears the cookies, whatever the store says.
func (c *Contract) logout(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	if _, ok := c.readForm(w, r, req); !ok {
		return
	}
	eng := c.env.Engine
	c.cookies.Clear(w, r)
	var err error
	if p, aerr := eng.AuthenticateToken(r.Context(), c.cookies.Access(r)); aerr == nil && p.SID != "" {
		err = eng.Logout(r.Context(), p.ID, p.SID)
	} else if rt := c.cookies.Refresh(r); rt != "" {
		err = eng.LogoutRefresh(r.Context(), rt)
	}
	if err != nil && !errors.Is(err, engine.ErrUnauthenticated) && !errors.Is(err, store.ErrNotFound) {
		contract.LogFailure(c.env.Logger, r, http.StatusServiceUnavailable, err)
	}
	redirect(w, c.path(PathLogin)+"?notice=logged_out")
}
