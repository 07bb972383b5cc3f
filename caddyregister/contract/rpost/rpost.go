// Package rpost serves the "rpost" contract: an e-mail service's account
// registration, an ASP.NET Web API (shared/contracts/004_83138935d8ea9843.txt).
//
//	POST {prefix}/Account/Register   UserRegisterBindingModel → 200, activation mail
//	GET  {prefix}/Account/Activate   ?code=<token>, the mail's link: the confirmation page
//	POST {prefix}/Account/Activate   code in a form or JSON body or the query: activates
//	GET  {prefix}/Lookup/Language    [{"Code","Name"}]
//	GET  {prefix}/Lookup/TimeZone    [{"Id","DisplayName","Iana"}]
//
// Invalid models are answered as ASP.NET answers them:
//
//	400 {"Message":"The request is invalid.","ModelState":{"model.Email":["The Email field is required."]}}
//
// and every other error as {"Message":"..."} with its status.
package rpost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
	"github.com/caddyregister/caddyregister/caddyregister/password"
	"github.com/caddyregister/caddyregister/caddyregister/refdata"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Name is the contract's name in the Caddyfile.
const Name = "rpost"

// Contract-specific options.
const optCallbackOrigins = "callback_origins"

func init() {
	contract.Register(Name, New, optCallbackOrigins)
}

// DefaultPolicy is the document's password rule: 8 to 25 characters, an
// uppercase letter, a lowercase letter, a digit and no spaces.
var DefaultPolicy = password.Policy{MinLength: 8, MaxLength: 25, MinUpper: 1, MinLower: 1, MinDigits: 1, NoSpaces: true}

// Attribute keys stored on the user.
const (
	attrCallback    = "ConfirmationCallbackUrl"
	attrViaCallback = "ActivateViaCallbackUrl"
)

// Messages of the contract.
const (
	msgInvalid      = "The request is invalid."
	msgActivated    = "Your account has been activated."
	msgInvalidCode  = "The activation code is invalid or has expired."
	statusPending   = "PendingActivation"
	defaultSubject  = `Activate your account`
	defaultTextBody = `Hello{{with .User.FirstName}} {{.}}{{end}},

thank you for registering{{with .RegistrationApp}} with {{.}}{{end}}. Activate your account by opening this link:

{{.Link}}

The link is valid until {{.Expires.Format "2006-01-02 15:04 MST"}}. If you did not register, ignore this mail.
`
	defaultHTMLBody = `<!doctype html>
<html><body>
<p>Hello{{with .User.FirstName}} {{.}}{{end}},</p>
<p>thank you for registering{{with .RegistrationApp}} with {{.}}{{end}}. Activate your account:</p>
<p><a href="{{.Link}}">Activate my account</a></p>
<p>The link is valid until {{.Expires.Format "2006-01-02 15:04 MST"}}. If you did not register, ignore this mail.</p>
</body></html>
`
)

// Contract is the rpost wire format.
type Contract struct {
	env       contract.Env
	policy    password.Policy
	val       *validator
	origins   *origins
	tmpl      *mail.Template
	languages []byte // encoded Lookup/Language
	timeZones []byte // encoded Lookup/TimeZone
}

// New builds the contract from the handler's settings and options.
func New(env contract.Env) (contract.Contract, error) {
	if err := env.Options.Check(Name, optCallbackOrigins); err != nil {
		return nil, err
	}
	if err := refdata.Load(); err != nil {
		return nil, err
	}
	c := &Contract{env: env, policy: env.PasswordPolicy(DefaultPolicy)}
	if err := c.policy.Validate(); err != nil {
		return nil, err
	}
	var err error
	if c.origins, err = parseOrigins(env.Options.All(optCallbackOrigins)); err != nil {
		return nil, err
	}
	def, err := mail.ParseTemplate(defaultSubject, defaultTextBody, defaultHTMLBody)
	if err != nil {
		return nil, fmt.Errorf("mail template: %w", err)
	}
	t := env.Settings.Template
	if c.tmpl, err = mail.LoadTemplate(def, t.Subject, t.Text, t.HTML); err != nil {
		return nil, err
	}
	if env.Engine != nil {
		env.Engine.RegisterResender(engine.ResenderKey(Name, env.Prefix), engine.Resender{Template: c.tmpl, TTL: env.Settings.LinkTTL, Data: resendData})
	}
	if err := c.buildLookups(); err != nil {
		return nil, err
	}
	c.val = &validator{
		checkPassword: func(pass, email string) bool { return c.policy.Check(pass, email) == nil },
		passwordMsg:   PolicySentence(c.policy),
		origins:       c.origins,
		lookupPath:    env.Prefix + "/Lookup",
	}
	return c, nil
}

// MailsLinks implements contract.LinkMailer: the activation mail links to
// the Activate route (unless the app asked for its callback).
func (c *Contract) MailsLinks() bool { return true }

// Routes implements contract.Contract.
// CaseInsensitiveRoutes: ASP.NET Web API matches routes case-insensitively.
func (c *Contract) CaseInsensitiveRoutes() bool { return true }

func (c *Contract) Routes() []contract.Route {
	return []contract.Route{
		{Method: http.MethodPost, Path: "/Account/Register", Name: "register", Limit: contract.HashLimit, ContentTypes: []string{"application/json", "text/json"}, Serve: c.register},
		{Method: http.MethodGet, Path: "/Account/Activate", Name: "confirm", Limit: contract.LinkLimit, Serve: c.activate},
		{Method: http.MethodPost, Path: "/Account/Activate", Name: "confirm", Limit: contract.LinkLimit, ContentTypes: contract.ActivationContentTypes, Serve: c.activate},
		{Method: http.MethodGet, Path: "/Lookup/Language", Name: "languages", Serve: c.lookup(func() []byte { return c.languages })},
		{Method: http.MethodGet, Path: "/Lookup/TimeZone", Name: "timezones", Serve: c.lookup(func() []byte { return c.timeZones })},
	}
}

// PolicySentence describes p in the document's words; for the default
// policy it is the document's sentence exactly.
func PolicySentence(p password.Policy) string {
	var b strings.Builder
	b.WriteString("Password should be ")
	switch {
	case p.MinLength > 0 && p.MaxLength > 0:
		fmt.Fprintf(&b, "a minimum of %d and maximum of %d characters", p.MinLength, p.MaxLength)
	case p.MinLength > 0:
		fmt.Fprintf(&b, "a minimum of %d characters", p.MinLength)
	case p.MaxLength > 0:
		fmt.Fprintf(&b, "a maximum of %d characters", p.MaxLength)
	default:
		b.WriteString("any length")
	}
	var parts []string
	for _, r := range []struct {
		n          int
		one, other string
	}{
		{p.MinUpper, "uppercase letter", "uppercase letters"},
		{p.MinLower, "lowercase letter", "lowercase letters"},
		{p.MinDigits, "number", "numbers"},
		{p.MinSpecial, "special character", "special characters"},
	} {
		switch {
		case r.n == 1:
			parts = append(parts, "one "+r.one)
		case r.n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", r.n, r.other))
		}
	}
	if len(parts) > 0 {
		parts[0] = "at least " + parts[0]
	}
	if p.NoSpaces {
		parts = append(parts, "no spaces")
	}
	switch len(parts) {
	case 0:
	case 1:
		b.WriteString(", including " + parts[0])
	default:
		b.WriteString(", including " + strings.Join(parts[:len(parts)-1], ", ") + ", and " + parts[len(parts)-1])
	}
	b.WriteString(".")
	if p.NotEqualIdentifiers {
		b.WriteString(" It must not be the same as the e-mail address.")
	}
	return b.String()
}

// registered is the success reply.
type registered struct {
	UserID              string `json:"UserId"`
	Email               string `json:"Email"`
	Status              string `json:"Status"`
	ActivationEmailSent bool   `json:"ActivationEmailSent"`
	Message             string `json:"Message"`
}

func (c *Contract) register(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	f, be, err := bind(req.Body)
	if err == nil {
		if v := c.val.validate(f, be); v != nil {
			err = v
		}
	}
	if err != nil {
		c.env.Engine.Reject(Name, req.ClientIP, err)
		c.WriteError(w, r, err)
		return
	}
	email := strings.TrimSpace(f.str(pEmail))
	attrs, err := attributes(f)
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	callback := f.str(pConfirmationCallbackURL)
	var link func(string) string
	if callback != "" && f.flag(pActivateViaCallbackURL) {
		link = func(tok string) string { return withCode(callback, tok) }
	} else {
		base := req.BaseURL + c.env.Prefix + "/Account/Activate?code="
		link = func(tok string) string { return base + url.QueryEscape(tok) }
	}
	first, last := strings.TrimSpace(f.str(pFirstName)), strings.TrimSpace(f.str(pLastName))
	res, err := c.env.Engine.Register(r.Context(), engine.Registration{
		Contract:    Name,
		ClientIP:    req.ClientIP,
		Email:       email,
		Name:        strings.TrimSpace(first + " " + last),
		FirstName:   first,
		LastName:    last,
		FieldNames:  map[string]string{engine.FieldFirstName: modelPrefix + ".FirstName", engine.FieldLastName: modelPrefix + ".LastName"},
		Password:    f.str(pPassword),
		Policy:      c.policy,
		Permissions: append([]string{}, c.env.Settings.DefaultPermissions...),
		Attributes:  attrs,
		Mail: &engine.MailSpec{
			Template: c.tmpl,
			Link:     link,
			TTL:      c.env.Settings.LinkTTL,
			Data:     map[string]any{"RegistrationApp": f.str(pRegistrationApp)},
			Resender: engine.ResenderKey(Name, c.env.Prefix),
		},
	})
	if err != nil {
		c.WriteError(w, r, err)
		return
	}
	contract.WriteJSON(w, http.StatusOK, registered{
		UserID:              res.User.ID,
		Email:               res.User.Email,
		Status:              statusPending,
		ActivationEmailSent: true,
		Message:             "Registration successful. An e-mail with an activation link has been sent to " + res.User.Email + ".",
	})
}

// resendData is the template data of a resent activation mail: what
// register passes, from the attributes the user record keeps.
func resendData(u *store.User) map[string]any {
	var app string
	_ = json.Unmarshal(u.Attributes[props[pRegistrationApp].Name], &app)
	return map[string]any{"RegistrationApp": app}
}

// attributes are the model's other properties as the user record keeps
// them, under their PascalCase names; codes in their canonical form.
func attributes(f *form) (store.Attrs, error) {
	a := store.Attrs{}
	for i, p := range props {
		switch i {
		case pEmail, pPassword, pConfirmPassword, pFirstName, pLastName:
			continue
		}
		v := f.vals[i]
		var x any
		switch {
		case v.Bool != nil:
			x = *v.Bool
		case v.Str != nil && *v.Str != "":
			s := *v.Str
			switch i {
			case pLanguage:
				if l, ok := refdata.LanguageByCode(s); ok {
					s = l.Code
				}
			case pTimeZone:
				if z, ok := timeZoneFold(s); ok {
					s = z
				}
			case pCountry:
				if cc, ok := countryCode(s); ok {
					s = cc
				}
			case pAlternateEmail, pNotificationEmail:
				s = strings.TrimSpace(s)
			}
			x = s
		default:
			continue
		}
		b, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", p.Name, err)
		}
		a[p.Name] = b
	}
	return a, nil
}

// activate serves the mailed link: a GET opens the page whose button posts
// the code back (scanners that fetch links change nothing); the POST, or a
// GET that asks for JSON explicitly (an app activating with the code its
// callback received), activates.
func (c *Contract) activate(w http.ResponseWriter, r *http.Request, req *contract.Request) {
	u := contract.ActivateLink(w, r, req, c.env.Engine, contract.ConfirmPage{
		Title:  "Activate your account",
		Text:   "Press the button to activate your account.",
		Button: "Activate my account",
		Field:  "code",
		// The POST may redirect to the registration's callback.
		Redirects: c.origins.list,
	}, c.WriteError)
	if u == nil {
		return
	}
	var callback string
	var via bool
	_ = json.Unmarshal(u.Attributes[attrCallback], &callback)
	_ = json.Unmarshal(u.Attributes[attrViaCallback], &via)
	if callback != "" && !via && c.origins.allows(callback) {
		// A person following the mail's link goes back to the app.
		w.Header().Set("Location", callback)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.WriteHeader(http.StatusFound)
		return
	}
	if contract.WantsPage(r) {
		contract.WriteDonePage(w, msgActivated)
		return
	}
	contract.WriteJSON(w, http.StatusOK, message{Message: msgActivated})
}

// message is the body of every reply that is not a ModelState.
type message struct {
	Message string `json:"Message"`
}

// WriteError implements contract.Contract.
func (c *Contract) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status, retry, msg := contract.Status(err)
	var (
		ve *engine.ValidationError
		de *contract.DecodeError
		ce *store.ConflictError
		he *contract.HTTPError
	)
	switch {
	case errors.As(err, &ve):
		contract.WriteJSON(w, http.StatusBadRequest, invalid{Message: msgInvalid, ModelState: c.modelState(ve)})
		return
	case errors.As(err, &de):
		contract.WriteJSON(w, http.StatusBadRequest, invalid{Message: msgInvalid, ModelState: modelState{{modelPrefix, []string{de.Error()}}}})
		return
	case errors.As(err, &ce) && ce.Field == "email":
		contract.WriteJSON(w, http.StatusBadRequest, invalid{Message: msgInvalid, ModelState: modelState{{modelPrefix + ".Email", []string{msgDuplicate}}}})
		return
	case errors.Is(err, engine.ErrTokenInvalid):
		status, msg = http.StatusBadRequest, msgInvalidCode
	case errors.As(err, &he):
		switch status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", strings.Join(he.Allow, ", "))
			msg = fmt.Sprintf("The requested resource does not support http method '%s'.", r.Method)
		case http.StatusUnsupportedMediaType:
			msg = fmt.Sprintf("The request entity's media type '%s' is not supported for this resource.", mediaType(r))
		default:
			msg = he.Message
		}
	case status == http.StatusTooManyRequests:
		msg = "Too many requests; retry later."
	case status == http.StatusServiceUnavailable:
		msg = "The service is temporarily unavailable; retry later."
	case status >= http.StatusInternalServerError:
		msg = "An error has occurred."
	}
	contract.LogFailure(c.env.Logger, r, status, err)
	contract.SetRetryAfter(w, retry)
	contract.WriteJSON(w, status, message{Message: msg})
}

func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(mt)
}

// invalid is ASP.NET's invalid-model reply.
type invalid struct {
	Message    string     `json:"Message"`
	ModelState modelState `json:"ModelState"`
}

// modelState keeps keys in the order failures were found (property order),
// as ASP.NET writes them.
type modelState []stateEntry

type stateEntry struct {
	Key      string
	Messages []string
}

// MarshalJSON writes the entries as one object, in order.
func (m modelState) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshalNoEscape(e.Key)
		if err != nil {
			return nil, err
		}
		v, err := marshalNoEscape(e.Messages)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// marshalNoEscape encodes v without HTML escaping, as contract.WriteJSON
// does: messages are compared as written.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// modelState groups field errors by key. The contract's own errors are
// keyed "model.<Property>" already; the engine's few ("email",
// "password") are mapped to their property and wording.
func (c *Contract) modelState(ve *engine.ValidationError) modelState {
	var m modelState
	for _, fe := range ve.Fields {
		key, msg := fe.Field, fe.Message
		switch {
		case key == modelPrefix || strings.HasPrefix(key, modelPrefix+"."):
		case key == "email":
			key, msg = modelPrefix+".Email", fmt.Sprintf(msgEmail, "Email")
		case key == "password":
			key, msg = modelPrefix+".Password", c.val.passwordMsg
		default:
			key = modelPrefix + "." + key
		}
		found := false
		for i := range m {
			if m[i].Key == key {
				m[i].Messages = append(m[i].Messages, msg)
				found = true
				break
			}
		}
		if !found {
			m = append(m, stateEntry{Key: key, Messages: []string{msg}})
		}
	}
	return m
}

var _ contract.Contract = (*Contract)(nil)
