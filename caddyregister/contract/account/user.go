package account

import (
	"errors"
	"net/http"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

// tokenResponse is RFC 6749 §5.1's token response plus the user.
type tokenResponse struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type"`
	ExpiresIn    int       `json:"expires_in"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	User         *userView `json:"user,omitempty"`
}

func (c *Contract) writeTokens(w http.ResponseWriter, r *http.Request, t *engine.SessionTokens) {
	out := tokenResponse{AccessToken: t.Access, TokenType: "Bearer", ExpiresIn: int(t.AccessTTL / time.Second), RefreshToken: t.Refresh}
	c.setCookies(w, r, t)
	if t.Principal.Kind == engine.KindUser {
		u, err := c.env.Engine.GetUser(r.Context(), t.Principal.ID)
		if err != nil {
			c.WriteError(w, r, err)
			return
		}
		v := viewOf(u)
		out.User = &v
	}
	contract.WriteJSON(w, http.StatusOK, out)
}

type loginRequest struct {
	Identifier string `json:"identifier"`
	Email      string `json:"email"`
	Login      string `json:"login"`
	Password   string `json:"password"`
}

func (c *Contract) login(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	var body loginRequest
	if err := contract.DecodeJSON(req.Body, &body, 0); err != nil {
		c.WriteError(w, r, err)
		return
	}
	id := body.Identifier
	for _, alt := range []string{body.Email, body.Login} {
		if id == "" {
			id = alt
		}
	}
	var v engine.ValidationError
	required(&v, [2]string{"identifier", id}, [2]string{"password", body.Password})
	if err := v.Err(); err != nil {
		c.WriteError(w, r, err)
		return
	}
	t, err := c.env.Engine.LoginSession(r.Context(), req.ClientIP, r.UserAgent(), id, body.Password, c.env.Settings.Sessions)
	if errors.Is(err, engine.ErrUnauthenticated) {
		err = errBadCredentials // never say which part was wrong
	}
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	c.writeTokens(w, r, t)
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (c *Contract) decodeRefresh(w http.ResponseWriter, r *http.Request, body []byte) (string, bool) {
	var in refreshRequest
	ok := c.decodeRequired(w, r, body, &in, func() [][2]string { return [][2]string{{"refresh_token", in.RefreshToken}} })
	return in.RefreshToken, ok
}

func (c *Contract) refresh(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	rt, ok := c.cookieRefresh(r, req.Body)
	if !ok {
		if rt, ok = c.decodeRefresh(w, r, req.Body); !ok {
			return
		}
	}
	t, err := c.env.Engine.Refresh(r.Context(), rt, req.ClientIP, r.UserAgent(), c.env.Settings.Sessions)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	c.writeTokens(w, r, t)
}

// logout ends the session of the Bearer access token, or, without one, of
// the refresh token in the body.
func (c *Contract) logout(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	eng := c.env.Engine
	c.clearCookies(w, r) // whatever comes next, the browser is logged out
	if rt, ok := c.cookieRefresh(r, req.Body); ok {
		if err := eng.LogoutRefresh(r.Context(), rt); err != nil {
			c.WriteError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Header.Get("Authorization") != "" || r.Header.Get("x-access-token") != "" || c.accessCookie(r) != "" {
		p, err := c.cookieBearer(r)
		if err != nil {
			c.WriteError(w, r, err)
			return
		}
		if p.SID != "" {
			if err := eng.Logout(r.Context(), p.ID, p.SID); err != nil && !isNotFound(err) {
				c.WriteError(w, r, err)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	rt, ok := c.decodeRefresh(w, r, req.Body)
	if !ok {
		return
	}
	if err := eng.LogoutRefresh(r.Context(), rt); err != nil {
		c.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *Contract) me(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	// Me reads the user through the engine's one-second user cache, not
	// the store: /me is the route clients call on every page.
	u, _, err := c.env.Engine.Me(r.Context(), token.FromHeaders(r.Header.Get))
	if err == nil && u == nil {
		err = errNoAccount
	}
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	contract.WriteJSON(w, http.StatusOK, viewOf(u))
}

type sessionView struct {
	ID            string    `json:"id"`
	Current       bool      `json:"current"`
	CreatedAt     time.Time `json:"created_at"`
	LastUsedAt    time.Time `json:"last_used_at"`
	ClientIP      string    `json:"client_ip,omitempty"`
	UserAgent     string    `json:"user_agent,omitempty"`
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	ExpiresAt     time.Time `json:"expires_at"`
}

func (c *Contract) sessions(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	p, err := c.userBearer(r)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	ss, err := c.env.Engine.ListSessions(r.Context(), p.ID)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	out := make([]sessionView, 0, len(ss))
	for _, s := range ss {
		out = append(out, sessionView{ID: s.ID, Current: s.ID == p.SID, CreatedAt: s.CreatedAt.UTC(), LastUsedAt: s.LastUsedAt.UTC(),
			ClientIP: s.ClientIP, UserAgent: s.UserAgent, IdleExpiresAt: s.IdleExpiresAt.UTC(), ExpiresAt: s.ExpiresAt.UTC()})
	}
	contract.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

// endSession ends one of the caller's own sessions; another user's sid is
// not found (the store keys sessions by user).
func (c *Contract) endSession(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	p, err := c.userBearer(r)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	if err := c.env.Engine.Logout(r.Context(), p.ID, contract.PathParam(r, "sid")); err != nil {
		c.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type changeRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (c *Contract) changePassword(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	p, err := c.userBearer(r)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	var body changeRequest
	if !c.decodeRequired(w, r, req.Body, &body, func() [][2]string {
		return [][2]string{{"current_password", body.CurrentPassword}, {"new_password", body.NewPassword}}
	}) {
		return
	}
	err = c.env.Engine.ChangePassword(r.Context(), req.ClientIP, p, body.CurrentPassword, body.NewPassword, c.policy)
	if errors.Is(err, engine.ErrUnauthenticated) {
		err = errBadCredentials
	}
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type resendRequest struct {
	Email string `json:"email"`
}

// resend always answers 202 with one body once the address is well formed:
// whether a pending account has it is nobody's business
// (engine.ResendActivation mails in the background).
func (c *Contract) resend(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	var body resendRequest
	if !c.decodeRequired(w, r, req.Body, &body, func() [][2]string { return [][2]string{{"email", body.Email}} }) {
		return
	}
	if err := c.env.Engine.ResendActivation(r.Context(), body.Email, req.ClientIP); err != nil {
		c.WriteError(w, r, err)
		return
	}
	contract.WriteJSON(w, http.StatusAccepted, map[string]string{
		"status": "if a pending account has this address, a new activation link is on its way",
	})
}

type eraseRequest struct {
	Password string `json:"password"`
}

func (c *Contract) erase(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	p, err := c.userBearer(r)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	var body eraseRequest
	if !c.decodeRequired(w, r, req.Body, &body, func() [][2]string { return [][2]string{{"password", body.Password}} }) {
		return
	}
	err = c.env.Engine.DeleteAccount(r.Context(), req.ClientIP, p, body.Password)
	if errors.Is(err, engine.ErrUnauthenticated) {
		err = errBadCredentials
	}
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
