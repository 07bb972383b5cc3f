package tests

import (
	"fmt"
	"net/http"
	"testing"
)

// TestAccountRefreshReuseRevokes: with the grace window off (sessions {
// refresh_grace off }), presenting a refresh token that was already used
// revokes the whole session (RFC 9700 §4.14): the pair issued by the
// rotation stops working too, access token included.
func TestAccountRefreshReuseRevokes(t *testing.T) { eachBackend(t, testAccountRefreshReuseRevokes) }

func testAccountRefreshReuseRevokes(t *testing.T, backend string) {
	global := fmt.Sprintf("admin root %s manage-users\n\t\tadmin_login_limit 1000/m\n\t\tsessions {\n\t\t\trefresh_grace off\n\t\t}", mustBcrypt(t, "rootpw"))
	s := &accountSite{site: startSite(t, backend, global, noraina+"\n\t"+accountHandler)}
	s.signup(t, "reuse@example.com", "my_password", true)
	first := s.login(t, "reuse@example.com", "my_password")
	second := wantTokens(t, s.postJSON("/account/refresh", fmt.Sprintf(`{"refresh_token":%q}`, first.RefreshToken)))
	if res := s.do(http.MethodGet, "/account/me", bearerH(second.AccessToken), ""); res.Status != 200 {
		t.Fatalf("me with the rotated pair: %d %s", res.Status, res.Body)
	}
	// The spent token again: reuse, so the session ends.
	problem(t, s.postJSON("/account/refresh", fmt.Sprintf(`{"refresh_token":%q}`, first.RefreshToken)), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.postJSON("/account/refresh", fmt.Sprintf(`{"refresh_token":%q}`, second.RefreshToken)), 401, "urn:caddyregister:problem:unauthorized")
	problem(t, s.do(http.MethodGet, "/account/me", bearerH(second.AccessToken), ""), 401, "urn:caddyregister:problem:unauthorized")
}
