package mail_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
)

type activation struct {
	Name string
	Link string
}

var defaultTemplate = mail.MustParseTemplate(
	"Welcome, {{.Name}}",
	"Hello {{.Name}},\nactivate: {{.Link}}\n",
	`<p>Hello {{.Name}},</p><p><a href="{{.Link}}">activate</a></p>`,
)

func TestRenderEscapesHTML(t *testing.T) {
	subj, text, html, err := defaultTemplate.Render(activation{
		Name: `<script>alert("x")</script>`,
		Link: "https://app.example/activate?t=a&b=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, "<script>") {
		t.Errorf("html not escaped: %s", html)
	}
	if !strings.Contains(html, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Errorf("html = %s", html)
	}
	if !strings.Contains(html, `href="https://app.example/activate?t=a&amp;b=1"`) {
		t.Errorf("link not attribute-escaped: %s", html)
	}
	// Text and subject are text/template: no HTML escaping there.
	if !strings.Contains(text, `Hello <script>alert("x")</script>,`) {
		t.Errorf("text = %q", text)
	}
	if subj != `Welcome, <script>alert("x")</script>` {
		t.Errorf("subject = %q", subj)
	}
}

func TestRenderJavascriptURLNeutralised(t *testing.T) {
	_, _, html, err := defaultTemplate.Render(activation{Name: "a", Link: "javascript:alert(1)"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, "javascript:") {
		t.Errorf("javascript: URL kept: %s", html)
	}
}

func TestRenderSubjectSingleLine(t *testing.T) {
	tpl := mail.MustParseTemplate("Welcome,\n{{.Name}}\n", "t", "")
	subj, _, html, err := tpl.Render(map[string]string{"Name": "Ana\r\nBcc: victim@evil.example"})
	if err != nil {
		t.Fatal(err)
	}
	if subj != "Welcome, Ana Bcc: victim@evil.example" {
		t.Errorf("subject = %q", subj)
	}
	if html != "" {
		t.Errorf("html = %q for a template without one", html)
	}
}

func TestRenderMissingKeyFails(t *testing.T) {
	tpl := mail.MustParseTemplate("Hi {{.Nmae}}", "t", "")
	if _, _, _, err := tpl.Render(map[string]string{"Name": "x"}); err == nil {
		t.Fatal("misspelt key rendered without error")
	}
}

func TestParseTemplateErrors(t *testing.T) {
	for name, parts := range map[string][3]string{
		"empty subject": {"", "t", ""},
		"empty text":    {"s", " ", ""},
		"bad subject":   {"{{", "t", ""},
		"bad text":      {"s", "{{.X", ""},
		"bad html":      {"s", "t", "<p>{{end}}</p>"},
	} {
		if _, err := mail.ParseTemplate(parts[0], parts[1], parts[2]); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestLoadTemplateOverrides(t *testing.T) {
	dir := t.TempDir()
	htmlFile := filepath.Join(dir, "activation.html")
	if err := os.WriteFile(htmlFile, []byte(`<h1>{{.Name}}</h1>`), 0o600); err != nil {
		t.Fatal(err)
	}
	tpl, err := mail.LoadTemplate(defaultTemplate, "", "", htmlFile)
	if err != nil {
		t.Fatal(err)
	}
	subj, text, html, err := tpl.Render(activation{Name: "Ana & Bob", Link: "L"})
	if err != nil {
		t.Fatal(err)
	}
	if subj != "Welcome, Ana & Bob" || text != "Hello Ana & Bob,\nactivate: L\n" {
		t.Errorf("defaults not kept: %q %q", subj, text)
	}
	if html != "<h1>Ana &amp; Bob</h1>" {
		t.Errorf("html override = %q", html)
	}

	same, err := mail.LoadTemplate(defaultTemplate, "", "", "")
	if err != nil || same != defaultTemplate {
		t.Errorf("no overrides: got %p, %v; want the default itself", same, err)
	}

	if _, err := mail.LoadTemplate(defaultTemplate, filepath.Join(dir, "missing.txt"), "", ""); err == nil {
		t.Error("missing file: no error")
	}
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("{{.Name"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mail.LoadTemplate(defaultTemplate, "", bad, ""); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("broken override: err = %v, want it to name the file", err)
	}
}
