package pages

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/text/language"
)

// The embedded look and words. An operator's templates directory replaces
// any of these files by name: layout.html, <page>.html, style.css and
// messages/<lang>.json (a catalogue there for a language not shipped adds
// that language).
//
//go:embed templates/*.html templates/style.css templates/messages/*.json
var embedded embed.FS

// pageNames are the page templates; each is parsed with layout.html.
var pageNames = []string{"signup", "login", "forgot", "reset", "confirm", "resend", "settings", "message"}

// CSP is the pages' Content-Security-Policy: nothing but this site's
// stylesheet, images from here or data: (the CAPTCHA), forms posting here,
// no frames, no base. No script at all.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// defaultLang is the catalogue every other falls back to, key by key.
const defaultLang = "en"

// ui holds the parsed templates, the stylesheet and the catalogues.
type ui struct {
	pages   map[string]*template.Template
	css     []byte
	langs   []string                     // catalogue tags, defaultLang first
	cat     map[string]map[string]string // by tag: key → text
	matcher language.Matcher
}

// loadUI reads the embedded files, each replaced by dir's file of the same
// name when dir has one (catalogues: merged over the shipped one).
func loadUI(dir string) (*ui, error) {
	sub, _ := fs.Sub(embedded, "templates")
	read := func(name string) ([]byte, error) {
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
			if err == nil {
				return b, nil
			}
			if !os.IsNotExist(err) {
				return nil, fmt.Errorf("templates: %w", err)
			}
		}
		return fs.ReadFile(sub, name)
	}
	var dirFS fs.FS
	if dir != "" {
		// A typo in the path must not fall back to the embedded look.
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("templates %q: not a directory", dir)
		}
		dirFS = os.DirFS(dir)
	}
	u := &ui{pages: map[string]*template.Template{}, cat: map[string]map[string]string{}}
	layout, err := read("layout.html")
	if err != nil {
		return nil, err
	}
	for _, p := range pageNames {
		b, err := read(p + ".html")
		if err != nil {
			return nil, err
		}
		t, err := template.New("layout.html").Funcs(funcs).Parse(string(layout))
		if err == nil {
			_, err = t.New(p + ".html").Parse(string(b))
		}
		if err != nil {
			return nil, fmt.Errorf("templates: %s: %w", p, err)
		}
		u.pages[p] = t
	}
	if u.css, err = read("style.css"); err != nil {
		return nil, err
	}
	// Catalogues: the shipped ones, and any the operator adds.
	names := map[string]bool{}
	ents, _ := fs.ReadDir(sub, "messages")
	for _, e := range ents {
		names[e.Name()] = true
	}
	if dir != "" {
		ents, err := os.ReadDir(filepath.Join(dir, "messages"))
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("templates: %w", err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".json") {
				names[e.Name()] = true
			}
		}
	}
	var tags []language.Tag
	for n := range names {
		lang := strings.TrimSuffix(n, ".json")
		tag, err := language.Parse(lang)
		if err != nil {
			return nil, fmt.Errorf("templates: messages/%s: %q is not a language tag", n, lang)
		}
		// The operator's catalogue is laid over the shipped one of its
		// language, so it need only hold the texts it changes.
		m := map[string]string{}
		for _, src := range []fs.FS{sub, dirFS} {
			if src == nil {
				continue
			}
			b, err := fs.ReadFile(src, "messages/"+n)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err == nil {
				err = json.Unmarshal(b, &m)
			}
			if err != nil {
				return nil, fmt.Errorf("templates: messages/%s: %w", n, err)
			}
		}
		u.cat[tag.String()] = m
		u.langs = append(u.langs, tag.String())
	}
	en := u.cat[defaultLang]
	if en == nil {
		return nil, fmt.Errorf("templates: messages/%s.json is missing", defaultLang)
	}
	for _, m := range u.cat {
		for k, v := range en {
			if _, ok := m[k]; !ok {
				m[k] = v
			}
		}
	}
	slices.Sort(u.langs)
	u.langs = slices.DeleteFunc(u.langs, func(s string) bool { return s == defaultLang })
	u.langs = append([]string{defaultLang}, u.langs...)
	for _, l := range u.langs {
		tags = append(tags, language.MustParse(l))
	}
	u.matcher = language.NewMatcher(tags)
	return u, nil
}

// lang picks the catalogue for r's Accept-Language.
func (u *ui) lang(r *http.Request) string {
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, conf := u.matcher.Match(tags...)
	if conf == language.No {
		return defaultLang
	}
	return u.langs[i]
}

var funcs = template.FuncMap{
	// field describes one input for the "field" template: its label,
	// value and error from the view.
	"field": func(v *view, name, typ, autocomplete string) fieldView {
		return fieldView{Name: name, Type: typ, Autocomplete: autocomplete, Label: v.T["label_"+name],
			Value: v.Values[name], Error: v.Errors[name], Hint: v.T["hint_"+name]}
	},
}

// fieldView is one labelled input.
type fieldView struct {
	Name, Type, Autocomplete, Label, Value, Error, Hint string
}

// render writes page p with status.
func (u *ui) render(w http.ResponseWriter, status int, p string, v *view) {
	var b bytes.Buffer
	if err := u.pages[p].ExecuteTemplate(&b, "layout.html", v); err != nil {
		// An operator's template that fails at run time: say so plainly.
		http.Error(w, "page template failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	setHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", v.Lang)
	h.Add("Vary", "Accept-Language")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// setHeaders are every page's security headers. The reset and confirm
// pages' URLs hold a token: the form's POST sends only the origin as
// Referer (no-referrer would make its Origin null, which the cross-site
// check refuses).
func setHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "strict-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
}
