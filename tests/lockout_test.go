package tests

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// trustLocalProxy reloads s with the test client (127.0.0.1) as a trusted
// proxy, strictly, so X-Forwarded-For sets Caddy's client IP: one test
// client plays clients on many networks, through the same client IP Caddy
// hands the plugin.
func trustLocalProxy(s *site) {
	s.t.Helper()
	s.cfg = strings.Replace(s.cfg, "skip_install_trust", "skip_install_trust\n\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t\ttrusted_proxies_strict\n\t}", 1)
	s.load(s.cfg)
}

func (s *site) from(ip, method, path string, header map[string]string, body string) *response {
	s.t.Helper()
	h := map[string]string{"X-Forwarded-For": ip}
	for k, v := range header {
		h[k] = v
	}
	return s.do(method, path, h, body)
}

// TestLockoutThroughCaddy: indiqus /auth/login and HTTP Basic on an admin
// route share one failure budget per account and client network; a locked
// account answers 429 RATE_LIMITED with Retry-After 60 (the first lock),
// even to the right password; the owner on a clean network logs in; an
// unknown login locks with the same answers.
func TestLockoutThroughCaddy(t *testing.T) { eachBackend(t, testLockoutThroughCaddy) }

func testLockoutThroughCaddy(t *testing.T, backend string) {
	s := startIndiqus(t, backend)
	trustLocalProxy(s.site)
	const attacker = "203.0.113.5"
	loginAs := func(ip, user, pass string) *response {
		return s.from(ip, http.MethodPost, "/auth/login", map[string]string{"Content-Type": "application/json"}, fmt.Sprintf(`{"email":%q,"password":%q}`, user, pass))
	}
	basicAs := func(ip, user, pass string) *response {
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
		return s.from(ip, http.MethodPost, "/api/pass/createNewUser", map[string]string{"Content-Type": "application/json", "Authorization": auth}, fixedIndiqusSample)
	}
	// shape is what a client can see of an answer, but for the job id.
	shape := func(res *response) string {
		env, e := decodeEnvelope(t, res)
		return fmt.Sprintf("%d retry=%q code=%v msg=%v success=%v", res.Status, res.Header.Get("Retry-After"), e["code"], e["message"], env.Success)
	}
	for i := range 3 {
		if res := loginAs(attacker, "root", "guess"); res.Status != http.StatusUnauthorized {
			t.Fatalf("login failure %d: %d %s", i+1, res.Status, res.Body)
		}
	}
	for i := range 2 {
		if res := basicAs(attacker, "root", "guess"); res.Status != http.StatusUnauthorized {
			t.Fatalf("basic failure %d: %d %s", i+1, res.Status, res.Body)
		}
	}
	locked := "429 retry=\"60\" code=RATE_LIMITED msg=too many requests, retry later success=false"
	if got := shape(loginAs(attacker, "root", "rootpw")); got != locked {
		t.Fatalf("right password on /auth/login after 5 shared failures:\n got %s\nwant %s", got, locked)
	}
	if got := shape(basicAs(attacker, "root", "rootpw")); got != locked {
		t.Fatalf("right password over Basic after 5 shared failures:\n got %s\nwant %s", got, locked)
	}
	// The owner, elsewhere, is not locked out.
	if res := loginAs("192.0.2.1", "root", "rootpw"); res.Status != http.StatusOK {
		t.Fatalf("owner from a clean network: %d %s", res.Status, res.Body)
	}
	if res := basicAs("2001:db8:5::1", "root", "rootpw"); res.Status != http.StatusOK {
		t.Fatalf("owner over Basic from a clean network: %d %s", res.Status, res.Body)
	}
	// A login that names nobody: the same answers, failure by failure.
	var known, unknown []string
	for i := range 6 {
		known = append(known, shape(loginAs("198.51.100.1", "auditor", fmt.Sprintf("guess%d", i))))
		unknown = append(unknown, shape(loginAs("198.51.100.2", "nobody", fmt.Sprintf("guess%d", i))))
	}
	if strings.Join(known, "\n") != strings.Join(unknown, "\n") {
		t.Fatalf("known login:\n%s\nunknown login:\n%s", strings.Join(known, "\n"), strings.Join(unknown, "\n"))
	}
	if known[5] != locked {
		t.Fatalf("sixth failure: %s, want %s", known[5], locked)
	}
}

// TestIPv6ClientsGroupedThroughCaddy: IPv6 clients of one /64 share the
// per-client budget; the next /64 has its own. (Each address had its own.)
func TestIPv6ClientsGroupedThroughCaddy(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := startSite(t, backend, "", noraina+` {
			rate_limit me 2/m
		}`)
		trustLocalProxy(s)
		for i, c := range []struct {
			ip   string
			want int
		}{
			{"2001:db8:0:1::1", 401},
			{"2001:db8:0:1::2", 401},
			{"2001:db8:0:1:ffff::3", 429}, // same /64
			{"2001:db8:0:2::1", 401},      // next /64
			{"192.0.2.1", 401},
			{"192.0.2.2", 401},
		} {
			if got := s.from(c.ip, http.MethodGet, "/api/me", nil, "").Status; got != c.want {
				t.Fatalf("request %d from %s: %d, want %d", i+1, c.ip, got, c.want)
			}
		}
	})
}

// TestGlobalCeilingThroughCaddy: a route's global ceiling holds whatever
// the client addresses, and per-client refusals do not spend it.
func TestGlobalCeilingThroughCaddy(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := startSite(t, backend, "", noraina+` {
			rate_limit me 2/m
			global_rate_limit me 5/m
		}`)
		trustLocalProxy(s)
		for i, c := range []struct {
			ip   string
			want int
		}{
			{"192.0.2.1", 401},
			{"192.0.2.1", 401},
			{"192.0.2.1", 429}, // per client; not charged globally
			{"192.0.2.2", 401},
			{"192.0.2.3", 401},
			{"2001:db8::1", 401}, // five in all
			{"192.0.2.4", 429},   // the global ceiling
			{"2001:db8:1::1", 429},
		} {
			if got := s.from(c.ip, http.MethodGet, "/api/me", nil, "").Status; got != c.want {
				t.Fatalf("request %d from %s: %d, want %d", i+1, c.ip, got, c.want)
			}
		}
	})
}

// TestBcryptLongPasswordThroughCaddy: with hash bcrypt, a password over 72
// bytes is a 400 in the contract's envelope naming the limit (it was a 500).
func TestBcryptLongPasswordThroughCaddy(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := startSite(t, backend, "hash bcrypt 4", noraina)
		res := s.postJSON("/api/register", `{"name":"U","mail":"long@example.com","password":"`+strings.Repeat("p", 73)+`"}`)
		if res.Status != http.StatusBadRequest {
			t.Fatalf("73-byte password: %d %s", res.Status, res.Body)
		}
		if e := res.JSON(t); e["status"] != "error" || !strings.Contains(fmt.Sprint(e["message"]), "password: password must be at most 72 bytes") {
			t.Fatalf("envelope: %s", res.Body)
		}
		if keys := s.dataKeys(); len(keys) != 0 {
			t.Fatalf("refused request wrote %v", keys)
		}
		if res := s.postJSON("/api/register", `{"name":"U","mail":"ok@example.com","password":"`+strings.Repeat("p", 72)+`"}`); res.Status != http.StatusCreated {
			t.Fatalf("72-byte password: %d %s", res.Status, res.Body)
		}
	})
}

// TestLockoutConfiguredThroughCaddy: the lockout block's numbers apply: two
// failures per network lock for the configured two minutes.
func TestLockoutConfiguredThroughCaddy(t *testing.T) {
	global := fmt.Sprintf("admin root %s manage-users\n\t\tlockout {\n\t\t\tnetwork_failures 2\n\t\t\twait_increment 2m\n\t\t}", mustBcrypt(t, "rootpw"))
	s := startSite(t, backendEmbedded, global, indiqusHandler)
	for i := range 2 {
		if res := s.postJSON("/auth/login", `{"email":"root","password":"guess"}`); res.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, res.Status, res.Body)
		}
	}
	res := s.postJSON("/auth/login", `{"email":"root","password":"rootpw"}`)
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "120" {
		t.Fatalf("after 2 failures: %d Retry-After %q %s; want 429 with 120", res.Status, res.Header.Get("Retry-After"), res.Body)
	}
}

// TestForwardedForIgnoredWithoutTrustedProxies: the plugin keys clients on
// Caddy's client IP, so without trusted_proxies a client cannot pick its
// address with X-Forwarded-For.
func TestForwardedForIgnoredWithoutTrustedProxies(t *testing.T) {
	s := startSite(t, backendEmbedded, "", noraina+` {
		rate_limit me 2/m
	}`)
	for i, want := range []int{401, 401, 429} {
		if got := s.from(fmt.Sprintf("198.51.100.%d", i+1), http.MethodGet, "/api/me", nil, "").Status; got != want {
			t.Fatalf("request %d: %d, want %d", i+1, got, want)
		}
	}
}

// TestSoajsLockedAdmin: a locked admin gets soajs' 429 envelope (906) with
// Retry-After, even with the right password.
func TestSoajsLockedAdmin(t *testing.T) {
	s := startSoajs(t, backendEmbedded, "")
	for range 5 {
		wantCodes(t, s.addUser(map[string]string{"Authorization": basicHeader("root", "wrong")}, soajsDocQuery, "application/x-www-form-urlencoded", soajsDocForm), 401, 901)
	}
	res := s.addForm(soajsDocQuery, soajsDocForm)
	wantCodes(t, res, 429, 906)
	if got := res.Header.Get("Retry-After"); got != "60" {
		t.Fatalf("Retry-After %q, want 60", got)
	}
}
