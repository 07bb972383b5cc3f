package tests

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Registrant text in mails: one line of printable text, and never a link.
func TestRpostMailText(t *testing.T) {
	s := startRpost(t, backendRedis, "")
	before := s.dataKeys()
	for _, c := range []struct{ field, value string }{
		{"FirstName", "Evil\nClick https://evil.example"},
		{"LastName", "Smith\u202etxt.exe"},
		{"RegistrationApp", "App\tx"},
		{"FirstName", "Zero\u200bwidth"},
	} {
		v, _ := json.Marshal(c.value)
		res := s.register(rpostJSON, rpostBody(map[string]string{c.field: string(v)}))
		want := modelStateBody("model."+c.field, "The field "+c.field+" must be one line of printable text (no line breaks, tabs, control or invisible characters).")
		if res.Status != 400 || string(res.Body) != want {
			t.Fatalf("%s %q: %d %s\nwant %s", c.field, c.value, res.Status, res.Body, want)
		}
	}
	if !equalStrings(before, s.dataKeys()) {
		t.Fatal("refused registrations changed the store")
	}

	// URL-like names and apps are accepted, stored, and left out of the mail.
	expectRegistered(t, s.register(rpostJSON, rpostBody(map[string]string{
		"FirstName": `"http://evil.example/login"`, "LastName": `"evil.example"`, "RegistrationApp": `"www.evil.example"`,
	})), "user@company.com")
	m := s.sink.waitFor("user@company.com", 30*time.Second)
	_, text, html := m.parts(t)
	text = strings.ReplaceAll(text, "\r\n", "\n")
	for _, part := range []string{text, html} {
		if strings.Contains(strings.ToLower(part), "evil") {
			t.Fatalf("registrant's URL-like text in the mail:\n%s", part)
		}
	}
	if !strings.HasPrefix(text, "Hello,\n") || !strings.Contains(text, "thank you for registering. Activate") || !rpostActivateRE.MatchString(text) {
		t.Fatalf("text part:\n%s", text)
	}
	// Plain names still greet.
	expectRegistered(t, s.register(rpostJSON, rpostBody(map[string]string{"Email": `"named@company.com"`, "FirstName": `"Zoë"`, "RegistrationApp": `"Acme Mail"`})), "named@company.com")
	_, text, html = s.sink.waitFor("named@company.com", 30*time.Second).parts(t)
	text = strings.ReplaceAll(text, "\r\n", "\n")
	if !strings.HasPrefix(text, "Hello Zoë,\n") || !strings.Contains(text, "registering with Acme Mail.") || !strings.Contains(html, "Hello Zoë,") {
		t.Fatalf("named mail:\n%s\n%s", text, html)
	}
}
