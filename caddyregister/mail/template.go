package mail

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"os"
	"strings"
	texttemplate "text/template"
)

// Template renders a message from data. The subject and text body are
// text/template; the HTML body is html/template, so values (a user's name,
// say) are escaped for their context and cannot inject markup. The HTML body
// is optional.
type Template struct {
	src     [3]string // subject, text, html sources, kept for overrides
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template // nil without an HTML body
}

// ParseTemplate parses the three parts. subject and text are required; html
// may be empty for a text-only message.
//
// The templates run with missingkey=error, so a misspelt field in an
// operator's override fails loudly at Render instead of mailing "<no value>".
func ParseTemplate(subject, text, html string) (*Template, error) {
	if strings.TrimSpace(subject) == "" {
		return nil, errors.New("mail: template: empty subject")
	}
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("mail: template: empty text body")
	}
	t := &Template{src: [3]string{subject, text, html}}
	var err error
	if t.subject, err = texttemplate.New("subject").Option("missingkey=error").Parse(subject); err != nil {
		return nil, fmt.Errorf("mail: template subject: %w", err)
	}
	if t.text, err = texttemplate.New("text").Option("missingkey=error").Parse(text); err != nil {
		return nil, fmt.Errorf("mail: template text: %w", err)
	}
	if strings.TrimSpace(html) != "" {
		if t.html, err = htmltemplate.New("html").Option("missingkey=error").Parse(html); err != nil {
			return nil, fmt.Errorf("mail: template html: %w", err)
		}
	}
	return t, nil
}

// MustParseTemplate is ParseTemplate for built-in defaults, which are
// constants and so can only fail through a programming error.
func MustParseTemplate(subject, text, html string) *Template {
	t, err := ParseTemplate(subject, text, html)
	if err != nil {
		panic(err)
	}
	return t
}

// LoadTemplate returns def with the parts named by non-empty file paths
// replaced by those files' contents, so an operator can override just the
// HTML, say, and keep the built-in subject and text. All paths empty returns
// def itself.
func LoadTemplate(def *Template, subjectFile, textFile, htmlFile string) (*Template, error) {
	if def == nil {
		return nil, errors.New("mail: load template: nil default")
	}
	src := def.src
	changed := false
	for i, path := range [3]string{subjectFile, textFile, htmlFile} {
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("mail: load template: %w", err)
		}
		src[i] = string(b)
		changed = true
	}
	if !changed {
		return def, nil
	}
	t, err := ParseTemplate(src[0], src[1], src[2])
	if err != nil {
		return nil, fmt.Errorf("%w (loading %s)", err, strings.Join(nonEmpty(subjectFile, textFile, htmlFile), ", "))
	}
	return t, nil
}

// Render executes the template with data. The subject comes back as one
// line: line breaks in data or in the template become spaces, since a
// subject is a header and must not span lines. html is empty when the
// template has no HTML body.
func (t *Template) Render(data any) (subject, text, html string, err error) {
	var b bytes.Buffer
	if err := t.subject.Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("mail: render subject: %w", err)
	}
	subject = SanitizeHeader(b.String())
	b.Reset()
	if err := t.text.Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("mail: render text: %w", err)
	}
	text = b.String()
	if t.html != nil {
		b.Reset()
		if err := t.html.Execute(&b, data); err != nil {
			return "", "", "", fmt.Errorf("mail: render html: %w", err)
		}
		html = b.String()
	}
	return subject, text, html, nil
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
