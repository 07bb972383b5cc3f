package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Request paths reach a contract's routes as its framework would route
// them: a trailing slash and repeated slashes do not let a request slip
// past to the app behind; case does only for case-sensitive frameworks
// (noraina's), while rpost (ASP.NET) matches any case.
func TestRoutesMatchLikeTheFramework(t *testing.T) {
	s := startSite(t, backendRedis, "", noraina)
	for i, p := range []string{"/api/register/", "//api/register", "/api//register//"} {
		body := fmt.Sprintf(`{"name":"User","mail":"slash%d@example.com","password":"my_password"}`, i)
		if res := s.postJSON(p, body); res.Status != http.StatusCreated {
			t.Errorf("POST %s: %d %s", p, res.Status, res.Body)
		}
	}
	// noraina's framework is case-sensitive: the app behind gets it.
	if res := s.postJSON("/API/register", `{"name":"User","mail":"upper@example.com","password":"my_password"}`); res.Status != 200 || string(res.Body) != "fallback" {
		t.Errorf("POST /API/register: %d %s, want the app behind", res.Status, res.Body)
	}
	if res := s.do(http.MethodGet, "//.well-known/jwks.json/", nil, ""); res.Status != 200 || !strings.Contains(string(res.Body), `"keys"`) {
		t.Errorf("JWKS with extra slashes: %d %s", res.Status, res.Body)
	}

	r := startRpost(t, backendRedis, "")
	for i, p := range []string{"/API/V1/account/register", "/api/v1/Account/Register/", "//api/v1/ACCOUNT/register"} {
		email := fmt.Sprintf("case%d@company.com", i)
		res := r.do(http.MethodPost, p, map[string]string{"Content-Type": rpostJSON}, rpostBody(map[string]string{"Email": fmt.Sprintf("%q", email)}))
		expectRegistered(t, res, email)
	}
}

// A property given twice, in any spelling, is refused in rpost's envelope
// (ASP.NET would bind the last silently), and nothing is stored.
func TestRpostRepeatedProperty(t *testing.T) {
	r := startRpost(t, backendRedis, "")
	before := r.dataKeys()
	body := strings.Replace(rpostBody(nil), `"Email": "user@company.com",`, `"Email": "user@company.com", "email": "other@company.com",`, 1)
	res := r.register(rpostJSON, body)
	want := `{"Message":"The request is invalid.","ModelState":{"model.Email":["Property with the name 'email' already exists in the current JSON object. Path 'email', line 2, position 36."]}}`
	if res.Status != 400 || string(res.Body) != want {
		t.Fatalf("repeated Email: %d\n got %s\nwant %s", res.Status, res.Body, want)
	}
	if after := r.dataKeys(); !equalStrings(before, after) {
		t.Fatalf("store changed: %v → %v", before, after)
	}
}
