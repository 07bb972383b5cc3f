package contract

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Activation links arrive by mail, and mail scanners and link previewers
// fetch every link they see: a GET that activated would confirm addresses
// no person ever read. So a mailed link opens a page whose button POSTs the
// token back to the same path (a plain form, no script), and only that POST
// (or a program that asks for JSON explicitly) activates.

// ActivationGET says what a GET to an activation route should do: true
// means activate and answer as the contract's document says (the caller
// asked for JSON explicitly, as programs do); false means serve the
// confirmation page and change nothing. Only an Accept header that names
// application/json (or a +json type) at least as highly as text/html
// activates: browsers, curl (*/*) and scanners get the page.
func ActivationGET(r *http.Request) bool {
	jsonQ, htmlQ := 0.0, 0.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
				q = f
			}
		}
		switch {
		case mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")):
			jsonQ = max(jsonQ, q)
		case mt == "text/html":
			htmlQ = max(htmlQ, q)
		}
	}
	return jsonQ > 0 && jsonQ >= htmlQ
}

// ActivationToken reads the token of a POST to an activation route: the
// field of a form or JSON body, else the query parameter of the same name
// (the mailed link's own query, posted as is).
func ActivationToken(r *http.Request, body []byte, field string) (string, error) {
	if b := bytes.TrimSpace(body); len(b) > 0 {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if strings.EqualFold(mt, "application/json") {
			var m map[string]json.RawMessage
			if err := DecodeJSON(body, &m, 0); err != nil {
				return "", err
			}
			if raw, ok := m[field]; ok {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					return "", &DecodeError{Problem: field + " must be a string", Field: field}
				}
				return s, nil
			}
		} else {
			v, err := url.ParseQuery(string(body))
			if err != nil {
				return "", &HTTPError{Status: http.StatusBadRequest, Message: "the form body is not valid"}
			}
			if v.Has(field) {
				return v.Get(field), nil
			}
		}
	}
	return r.URL.Query().Get(field), nil
}

// LinkToken serves what every mailed link's route shares: a GET that does
// not ask for JSON (ActivationGET) is answered with page, carrying the
// query's page.Field, and ok is false; otherwise it returns the token from
// the POST's body (ActivationToken) or the GET's query, for the contract to
// use and answer as its document says.
func LinkToken(w http.ResponseWriter, r *http.Request, body []byte, page ConfirmPage) (tok string, ok bool, err error) {
	if r.Method == http.MethodGet && !ActivationGET(r) {
		page.Token = r.URL.Query().Get(page.Field)
		WriteConfirmPage(w, page)
		return "", false, nil
	}
	if r.Method == http.MethodPost {
		tok, err = ActivationToken(r, body, page.Field)
		return tok, err == nil, err
	}
	return r.URL.Query().Get(page.Field), true, nil
}

// ActivateLink serves an activation link's route for contracts whose
// document answers the activated user: LinkToken, then the engine's
// Activate. It returns the user to answer, or nil when it already answered
// (the page, or an error through writeErr, the contract's WriteError).
func ActivateLink(w http.ResponseWriter, r *http.Request, req *Request, eng *engine.Engine, page ConfirmPage, writeErr func(http.ResponseWriter, *http.Request, error)) *store.User {
	tok, ok, err := LinkToken(w, r, req.Body, page)
	if err != nil {
		writeErr(w, r, err)
	}
	if !ok {
		return nil
	}
	u, err := eng.Activate(r.Context(), tok)
	if err != nil {
		writeErr(w, r, err)
		return nil
	}
	return u
}

// ActivationContentTypes are the bodies an activation POST accepts; a POST
// without Content-Type is a form (what the page's button sends).
var ActivationContentTypes = []string{"application/x-www-form-urlencoded", "application/json"}

// WantsPage reports whether the reply to a POST should be a page rather
// than the document's JSON: the page's own form was posted by a browser.
func WantsPage(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return (mt == "" || strings.EqualFold(mt, "application/x-www-form-urlencoded")) && !ActivationGET(r) &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// ConfirmPage is the page a mailed activation link opens.
type ConfirmPage struct {
	// Title is the page's heading ("Confirm your e-mail address").
	Title string
	// Text explains what the button does.
	Text string
	// Button is the button's label.
	Button string
	// Field is the form field the token travels in ("token", "code").
	Field string
	// Token is the token from the link, put in a hidden field.
	Token string
	// PasswordField, when set, names a new-password input the form posts
	// with the token (a password reset link).
	PasswordField string
	// Redirects are origins ("https://app.example.com") the button's POST
	// may redirect to (rpost's callback): the CSP's form-action covers the
	// redirect too, so they are listed beside 'self'.
	Redirects []string
}

// pageStyle is the pages' only styling; the CSP allows exactly it, by hash.
const pageStyle = `body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5}button{font:inherit;padding:.6rem 1.2rem;cursor:pointer}`

var (
	pageCSP = "default-src 'none'; style-src 'sha256-" + styleHash() + "'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

	// The form posts to the page's own URL (no action attribute), query
	// included, so the token arrives even if the hidden field were lost.
	confirmTmpl = template.Must(template.New("confirm").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{.Title}}</title><style>` + pageStyle + `</style></head>
<body><main><h1>{{.Title}}</h1><p>{{.Text}}</p>
<form method="post"><input type="hidden" name="{{.Field}}" value="{{.Token}}">
{{- if .PasswordField}}<p><label for="new-password">New password</label><br><input id="new-password" type="password" name="{{.PasswordField}}" autocomplete="new-password" required></p>{{end -}}
<button type="submit">{{.Button}}</button></form>
</main></body></html>
`))
	doneTmpl = template.Must(template.New("done").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{.}}</title><style>` + pageStyle + `</style></head>
<body><main><p>{{.}}</p></main></body></html>
`))
)

func styleHash() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// WriteConfirmPage answers a GET of a mailed link with the page whose
// button activates. The token is in the page, so nothing may cache it,
// frame it or leak it in a Referer.
func WriteConfirmPage(w http.ResponseWriter, p ConfirmPage) {
	csp := pageCSP
	for _, o := range p.Redirects {
		if !strings.ContainsAny(o, " ;,'\"\r\n") { // an origin, nothing that could end the directive
			csp += " " + o
		}
	}
	writePage(w, confirmTmpl, p, csp)
}

// WriteDonePage answers the page's POST with msg.
func WriteDonePage(w http.ResponseWriter, msg string) {
	writePage(w, doneTmpl, msg, pageCSP)
}

func writePage(w http.ResponseWriter, t *template.Template, data any, csp string) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		// Our own templates with strings cannot fail; a 500 if they do.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	// The page's URL holds the token: the button's POST sends only the
	// origin as Referer (no-referrer would make its Origin null too).
	h.Set("Referrer-Policy", "strict-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}
