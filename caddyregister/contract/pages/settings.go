package pages

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// sessionView is one session on the account page.
type sessionView struct {
	ID, ClientIP, UserAgent string
	Current                 bool
	CreatedAt, LastUsedAt   string
}

// account is the browser's logged-in principal for the account page and
// its forms; without one it has sent the browser to log in (ok false).
func (c *Contract) account(w http.ResponseWriter, r *http.Request, req *contract.Request) (*engine.Principal, bool) {
	p, err := c.session(w, r, req)
	if err != nil {
		c.message(w, r, http.StatusServiceUnavailable, "error", "err_unavailable", "", "")
		return nil, false
	}
	if p == nil {
		redirect(w, c.path(PathLogin)+"?return_to="+url.QueryEscape(c.path(PathSettings)))
		return nil, false
	}
	return p, true
}

// settingsView is the account page for p, with errors or a notice added
// by the caller.
func (c *Contract) settingsView(w http.ResponseWriter, r *http.Request, p *engine.Principal) (*view, error) {
	v := c.newView(w, r, "settings")
	if p.Kind != engine.KindUser {
		v.Admin, v.Email = true, p.ID
		return v, nil
	}
	eng := c.env.Engine
	u, err := eng.GetUser(r.Context(), p.ID)
	if err != nil {
		return nil, err
	}
	v.Email, v.Status = u.Email, string(u.Status)
	ss, err := eng.ListSessions(r.Context(), p.ID)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ss, func(a, b *store.Session) int { return b.LastUsedAt.Compare(a.LastUsedAt) })
	const stamp = "2006-01-02 15:04 MST"
	for _, s := range ss {
		v.Sessions = append(v.Sessions, sessionView{ID: s.ID, ClientIP: s.ClientIP, UserAgent: shortAgent(s.UserAgent), Current: s.ID == p.SID,
			CreatedAt: s.CreatedAt.UTC().Format(stamp), LastUsedAt: s.LastUsedAt.UTC().Format(stamp)})
	}
	return v, nil
}

// shortAgent keeps a User-Agent readable in a table cell.
func shortAgent(ua string) string {
	if len(ua) > 80 {
		return ua[:77] + "…"
	}
	return ua
}

func (c *Contract) settingsPage(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	p, ok := c.account(w, r, req)
	if !ok {
		return
	}
	c.showSettings(w, r, p, http.StatusOK, func(v *view) {
		if n := r.URL.Query().Get("notice"); n != "" {
			v.Notice = v.T["notice_"+n]
		}
	})
}

func (c *Contract) showSettings(w http.ResponseWriter, r *http.Request, p *engine.Principal, status int, edit func(v *view)) {
	v, err := c.settingsView(w, r, p)
	if errors.Is(err, store.ErrNotFound) {
		c.cookies.Clear(w, r) // erased meanwhile
		redirect(w, c.path(PathLogin))
		return
	}
	if err != nil {
		st, _, _ := contract.Status(err)
		contract.LogFailure(c.env.Logger, r, st, err)
		c.message(w, r, st, "error", "err_unavailable", "", "")
		return
	}
	if edit != nil {
		edit(v)
	}
	c.ui.render(w, status, "settings", v)
}

// postAccount reads an account form: its principal and fields.
func (c *Contract) postAccount(w http.ResponseWriter, r *http.Request, req *contract.Request) (*engine.Principal, url.Values, bool) {
	form, ok := c.readForm(w, r, req)
	if !ok {
		return nil, nil, false
	}
	p, ok := c.account(w, r, req)
	if !ok {
		return nil, nil, false
	}
	if p.Kind != engine.KindUser {
		c.showSettings(w, r, p, http.StatusForbidden, nil)
		return nil, nil, false
	}
	return p, form, true
}

// formError shows the account page with field errors from err (the
// current password's check says ErrUnauthenticated).
func (c *Contract) formError(w http.ResponseWriter, r *http.Request, p *engine.Principal, err error, passwordField string) {
	status, retry, _ := contract.Status(err)
	c.showSettings(w, r, p, status, func(v *view) {
		var ve *engine.ValidationError
		switch {
		case errors.Is(err, engine.ErrUnauthenticated):
			v.Errors[passwordField] = v.T["err_current_password"]
		case errors.As(err, &ve):
			for _, f := range ve.Fields {
				v.Errors[f.Field] = c.fieldText(v, f)
			}
		case status == http.StatusTooManyRequests:
			v.Errors[passwordField] = v.T["err_rate_limited"]
			contract.SetRetryAfter(w, retry)
		default:
			contract.LogFailure(c.env.Logger, r, status, err)
			v.Error = v.T["err_unavailable"]
		}
	})
}

func (c *Contract) changePassword(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	p, form, ok := c.postAccount(w, r, req)
	if !ok {
		return
	}
	cur, next := form.Get("current_password"), form.Get("new_password")
	var v engine.ValidationError
	for name, val := range map[string]string{"current_password": cur, "new_password": next} {
		if val == "" {
			v.Add(name, "required", "is required")
		}
	}
	err := v.Err()
	if err == nil {
		err = c.env.Engine.ChangePassword(r.Context(), req.ClientIP, p, cur, next, c.policy)
	}
	if err != nil {
		c.formError(w, r, p, err, "current_password")
		return
	}
	redirect(w, c.path(PathSettings)+"?notice=password_changed")
}

// endSession ends one of the user's sessions; ending the current one is a
// log-out.
func (c *Contract) endSession(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	p, form, ok := c.postAccount(w, r, req)
	if !ok {
		return
	}
	sid := strings.TrimSpace(form.Get("sid"))
	err := c.env.Engine.Logout(r.Context(), p.ID, sid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.formError(w, r, p, err, "sid")
		return
	}
	if sid == p.SID {
		c.cookies.Clear(w, r)
		redirect(w, c.path(PathLogin)+"?notice=logged_out")
		return
	}
	redirect(w, c.path(PathSettings)+"?notice=session_ended")
}

// erase deletes the account after the password checks out.
func (c *Contract) erase(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	p, form, ok := c.postAccount(w, r, req)
	if !ok {
		return
	}
	var err error = &engine.ValidationError{Fields: []*engine.FieldError{{Field: "delete_password", Rule: "required", Message: "is required"}}}
	if pass := form.Get("delete_password"); pass != "" {
		err = c.env.Engine.DeleteAccount(r.Context(), req.ClientIP, p, pass)
	}
	if err != nil {
		c.formError(w, r, p, err, "delete_password")
		return
	}
	c.cookies.Clear(w, r)
	c.message(w, r, http.StatusOK, "deleted", "msg_deleted", PathSignup, "link_signup")
}
