package pages

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

func newPages(t *testing.T, settings contract.Settings, opts contract.Options) (*Contract, error) {
	t.Helper()
	c, err := New(contract.Env{Options: opts, Settings: settings})
	if err != nil {
		return nil, err
	}
	return c.(*Contract), nil
}

func get(c *Contract, path, lang string, serve func(http.ResponseWriter, *http.Request, *contract.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "http://localhost"+path, nil)
	if lang != "" {
		r.Header.Set("Accept-Language", lang)
	}
	w := httptest.NewRecorder()
	serve(w, r, &contract.Request{})
	return w
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTemplatesDir: files in the templates directory replace the embedded
// ones by name; a catalogue there is laid over the shipped one of its
// language, or adds a language.
func TestTemplatesDir(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "style.css", "body{color:red}")
	write(t, dir, "login.html", `{{define "content"}}<p>custom {{.T.button_login}}</p>{{end}}`)
	write(t, dir, "messages/en.json", `{"button_login":"Sign in"}`)
	write(t, dir, "messages/fr.json", `{"title_login":"Connexion"}`)
	c, err := newPages(t, contract.Settings{}, contract.Options{OptTemplates: {{dir}}})
	if err != nil {
		t.Fatal(err)
	}
	if w := get(c, "/style.css", "", c.stylesheet); w.Body.String() != "body{color:red}" {
		t.Fatalf("stylesheet: %q", w.Body)
	}
	en := get(c, "/login", "en", c.loginPage).Body.String()
	if !strings.Contains(en, "<h1>Log in</h1>") || !strings.Contains(en, "<p>custom Sign in</p>") {
		t.Fatalf("en:\n%s", en)
	}
	fr := get(c, "/login", "fr-CA,fr;q=0.9", c.loginPage).Body.String()
	if !strings.Contains(fr, "<h1>Connexion</h1>") || !strings.Contains(fr, `<html lang="fr">`) || !strings.Contains(fr, "<p>custom Sign in</p>") {
		t.Fatalf("fr:\n%s", fr)
	}
	// Pages not overridden keep the embedded template.
	if s := get(c, "/signup", "de", c.signupPage).Body.String(); !strings.Contains(s, "<h1>Konto anlegen</h1>") {
		t.Fatalf("de signup:\n%s", s)
	}
}

// TestBadConfig: a broken override or option fails the config load.
func TestBadConfig(t *testing.T) {
	broken := t.TempDir()
	write(t, broken, "login.html", `{{define "content"}}{{.Nope`)
	badJSON := t.TempDir()
	write(t, badJSON, "messages/de.json", `{"title_login":`)
	badLang := t.TempDir()
	write(t, badLang, "messages/not a tag.json", `{}`)
	for name, opts := range map[string]contract.Options{
		"template":      {OptTemplates: {{broken}}},
		"catalogue":     {OptTemplates: {{badJSON}}},
		"language":      {OptTemplates: {{badLang}}},
		"two dirs":      {OptTemplates: {{broken, badJSON}}},
		"cookie name":   {OptCookie: {{"a;b"}}},
		"two cookies":   {OptCookie: {{"a"}, {"b"}}},
		"unknown":       {"colour": {{"red"}}},
		"missing dir":   {OptTemplates: {{filepath.Join(broken, "nope")}}},
		"cookie no arg": {OptCookie: {{}}},
	} {
		if _, err := newPages(t, contract.Settings{}, opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := newPages(t, contract.Settings{Captcha: "maybe"}, nil); err == nil {
		t.Error("captcha maybe: no error")
	}
}

// TestCatalogues: the shipped German catalogue translates every text the
// English one has (rule_* texts are German-only refinements).
func TestCatalogues(t *testing.T) {
	read := func(name string) map[string]string {
		b, err := embedded.ReadFile("templates/messages/" + name)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	en, de := read("en.json"), read("de.json")
	for k := range en {
		if de[k] == "" || (de[k] == en[k] && !strings.HasPrefix(k, "heading_")) {
			t.Errorf("de.json: %s untranslated", k)
		}
	}
}
