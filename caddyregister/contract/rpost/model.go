package rpost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/refdata"
)

// modelPrefix is the ModelState key prefix: ASP.NET Web API names the
// action's parameter, here "model" (UserRegisterBindingModel model).
const modelPrefix = "model"

type kind int

const (
	kindString kind = iota
	kindBool
)

// prop is one property of the document's UserRegisterBindingModel.
type prop struct {
	Name     string
	Kind     kind
	Required bool
	// Max is the maximum length in UTF-16 code units, as .NET counts
	// string.Length; 0 is none.
	Max   int
	Email bool
}

// Property indexes, in the document's table order (which is also the order
// ModelState lists failures in).
const (
	pEmail = iota
	pPassword
	pConfirmPassword
	pFirstName
	pLastName
	pPhoneNumber
	pAlternateEmail
	pConfirmationCallbackURL
	pRegistrationApp
	pLanguage
	pTimeZone
	pNotificationEmail
	pCountry
	pCompanyName
	pIndustry
	pRPostTermCondition
	pClientID
	pCustomerCode
	pIsAdminUser
	pActivateViaCallbackURL
	pIPAddress
	pOriginatingURL
	pRegistrationAppSite
	numProps
)

var props = [numProps]prop{
	pEmail:                   {Name: "Email", Required: true, Max: 256, Email: true},
	pPassword:                {Name: "Password", Required: true},
	pConfirmPassword:         {Name: "ConfirmPassword"},
	pFirstName:               {Name: "FirstName", Required: true, Max: 255},
	pLastName:                {Name: "LastName", Required: true, Max: 255},
	pPhoneNumber:             {Name: "PhoneNumber", Max: 100},
	pAlternateEmail:          {Name: "AlternateEmail", Max: 256, Email: true},
	pConfirmationCallbackURL: {Name: "ConfirmationCallbackUrl", Max: 250},
	pRegistrationApp:         {Name: "RegistrationApp", Required: true, Max: 30},
	pLanguage:                {Name: "Language", Required: true, Max: 10},
	pTimeZone:                {Name: "TimeZone", Max: 100},
	pNotificationEmail:       {Name: "NotificationEmail", Max: 255, Email: true},
	pCountry:                 {Name: "Country", Max: 5},
	pCompanyName:             {Name: "CompanyName", Max: 250},
	pIndustry:                {Name: "Industry", Max: 50},
	pRPostTermCondition:      {Name: "RPostTermCondition", Kind: kindBool},
	pClientID:                {Name: "ClientId"},
	pCustomerCode:            {Name: "CustomerCode"},
	pIsAdminUser:             {Name: "IsAdminUser", Kind: kindBool},
	pActivateViaCallbackURL:  {Name: "ActivateViaCallbackUrl", Kind: kindBool},
	pIPAddress:               {Name: "IPAddress"},
	pOriginatingURL:          {Name: "OriginatingURL"},
	pRegistrationAppSite:     {Name: "RegistrationAppSite"},
}

// ASP.NET DataAnnotations messages.
const (
	msgRequired  = "The %s field is required."
	msgMaxLength = "The field %s must be a string with a maximum length of %d."
	msgEmail     = "The %s field is not a valid e-mail address."
	msgCompare   = "'ConfirmPassword' and 'Password' do not match."
	msgDuplicate = "An account with this e-mail address already exists."
)

// value is one bound property: nil pointers are "not given" (absent or
// JSON null).
type value struct {
	Str  *string
	Bool *bool
}

// form is a bound and validated request.
type form struct {
	vals [numProps]value
}

func (f *form) str(i int) string {
	if p := f.vals[i].Str; p != nil {
		return *p
	}
	return ""
}

func (f *form) flag(i int) bool {
	p := f.vals[i].Bool
	return p != nil && *p
}

// member is one top-level property of the body, with the byte offsets of
// its value.
type member struct {
	Key        string
	Raw        json.RawMessage
	Start, End int64
}

// members lists the object's properties in order. body must already have
// passed contract.DecodeJSON (a JSON object, valid UTF-8, bounded depth).
func members(body []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("request body must be a JSON object")
	}
	var out []member
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := kt.(string)
		if !ok {
			return nil, errors.New("object key is not a string")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		end := dec.InputOffset()
		out = append(out, member{Key: key, Raw: raw, Start: end - int64(len(raw)), End: end})
	}
	return out, nil
}

// bindErrors are binding failures by property index.
type bindErrors [numProps]*engine.FieldError

// bind decodes body into the model the way ASP.NET Web API's JSON
// formatter does: property names match case-insensitively (the last of
// several spellings wins), unknown properties are ignored, null is "not
// given". A value of the wrong JSON type is a binding error worded as
// Json.NET words it. A body that is not JSON is a *contract.DecodeError.
func bind(body []byte) (*form, *bindErrors, error) {
	var probe map[string]json.RawMessage
	if err := contract.DecodeJSON(body, &probe, 0); err != nil {
		return nil, nil, err
	}
	ms, err := members(body)
	if err != nil {
		// Cannot happen after DecodeJSON; answered as a body error anyway.
		return nil, nil, &contract.DecodeError{Problem: err.Error()}
	}
	f := &form{}
	var be bindErrors
	for _, m := range ms {
		i := propIndex(m.Key)
		if i < 0 {
			continue
		}
		f.vals[i], be[i] = convert(body, m, props[i])
	}
	return f, &be, nil
}

func propIndex(key string) int {
	for i := range props {
		if strings.EqualFold(key, props[i].Name) {
			return i
		}
	}
	return -1
}

// convert binds one member to p's type.
func convert(body []byte, m member, p prop) (value, *engine.FieldError) {
	raw := m.Raw
	key := modelPrefix + "." + p.Name
	line, pos := lineCol(body, m.End)
	path := fmt.Sprintf("Path '%s', line %d, position %d.", m.Key, line, pos)
	switch raw[0] {
	case 'n':
		return value{}, nil
	case '{', '[':
		l, c := lineCol(body, m.Start+1)
		return value{}, &engine.FieldError{Field: key, Rule: "type", Message: fmt.Sprintf("Unexpected character encountered while parsing value: %c. Path '%s', line %d, position %d.", raw[0], m.Key, l, c)}
	}
	switch p.Kind {
	case kindBool:
		switch raw[0] {
		case 't', 'f':
			b := raw[0] == 't'
			return value{Bool: &b}, nil
		case '"':
			var s string
			_ = json.Unmarshal(raw, &s)
			return value{}, &engine.FieldError{Field: key, Rule: "type", Message: fmt.Sprintf("Could not convert string to boolean: %s. %s", clip(s), path)}
		default:
			return value{}, &engine.FieldError{Field: key, Rule: "type", Message: fmt.Sprintf("Error converting value %s to type 'System.Boolean'. %s", clip(string(raw)), path)}
		}
	default:
		switch raw[0] {
		case '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return value{}, &engine.FieldError{Field: key, Rule: "type", Message: "Invalid string. " + path}
			}
			return value{Str: &s}, nil
		case 't', 'f':
			return value{}, &engine.FieldError{Field: key, Rule: "type", Message: fmt.Sprintf("Error converting value %s to type 'System.String'. %s", dotnetBool(raw), path)}
		default:
			return value{}, &engine.FieldError{Field: key, Rule: "type", Message: fmt.Sprintf("Error converting value %s to type 'System.String'. %s", clip(string(raw)), path)}
		}
	}
}

// dotnetBool writes a JSON boolean as .NET prints it.
func dotnetBool(raw []byte) string {
	if raw[0] == 't' {
		return "True"
	}
	return "False"
}

// clip shortens echoed values.
func clip(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max]) + "…"
}

// lineCol is Json.NET's position: 1-based line, and the number of
// characters of that line up to off.
func lineCol(body []byte, off int64) (int, int) {
	if off > int64(len(body)) {
		off = int64(len(body))
	}
	line, col := 1, 0
	for _, r := range string(body[:off]) {
		if r == '\n' {
			line++
			col = 0
		} else {
			col++
		}
	}
	return line, col
}

// utf16Len is .NET's string.Length.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if l := utf16.RuneLen(r); l > 0 {
			n += l
		} else {
			n++ // not a valid rune: .NET would hold U+FFFD, one unit
		}
	}
	return n
}

// validator holds what validation needs beyond the model: the password
// policy sentence and check, and the callback allow-list.
type validator struct {
	checkPassword func(pass, email string) bool
	passwordMsg   string
	origins       *origins
	lookupPath    string // "{prefix}/Lookup"
}

// validate runs every rule of the document's table on f and returns the
// failures in property order (binding errors first for their property), or
// nil.
func (val *validator) validate(f *form, be *bindErrors) *engine.ValidationError {
	var v engine.ValidationError
	for i := range props {
		p := props[i]
		key := modelPrefix + "." + p.Name
		if be != nil && be[i] != nil {
			v.Fields = append(v.Fields, be[i])
			continue
		}
		add := func(rule, msg string) { v.Add(key, rule, msg) }
		if p.Kind == kindBool {
			continue
		}
		sp := f.vals[i].Str
		if sp == nil || (!p.Required && *sp == "") {
			if p.Required {
				add("required", fmt.Sprintf(msgRequired, p.Name))
			}
			continue
		}
		s := *sp
		if p.Required && strings.TrimSpace(s) == "" {
			add("required", fmt.Sprintf(msgRequired, p.Name))
			continue
		}
		tooLong := p.Max > 0 && utf16Len(s) > p.Max
		if tooLong {
			add("maxLength", fmt.Sprintf(msgMaxLength, p.Name, p.Max))
		}
		if p.Email && engine.CheckEmail(s) != nil {
			add("email", fmt.Sprintf(msgEmail, p.Name))
		}
		if tooLong {
			// Membership checks would only repeat the problem, and would
			// echo a long value.
			continue
		}
		switch i {
		case pPassword:
			if !val.checkPassword(s, strings.TrimSpace(f.str(pEmail))) {
				add("password", val.passwordMsg)
			}
		case pConfirmPassword:
			if f.vals[pPassword].Str != nil && s != f.str(pPassword) {
				add("compare", msgCompare)
			}
		case pConfirmationCallbackURL:
			if msg := val.origins.check(s); msg != "" {
				add("callback", msg)
			}
		case pLanguage:
			if _, ok := refdata.LanguageByCode(s); !ok {
				add("language", fmt.Sprintf("The value '%s' is not valid for Language; use a Code from GET %s/Language.", s, val.lookupPath))
			}
		case pTimeZone:
			if _, ok := timeZoneFold(s); !ok {
				add("timeZone", fmt.Sprintf("The value '%s' is not valid for TimeZone; use an Id from GET %s/TimeZone.", s, val.lookupPath))
			}
		case pCountry:
			if _, ok := countryCode(s); !ok {
				add("country", fmt.Sprintf("The value '%s' is not valid for Country; use an ISO 3166-1 country code.", s))
			}
		}
	}
	if len(v.Fields) == 0 {
		return nil
	}
	return &v
}

// DecodeRegister binds body as the Register route does, without the
// validation that needs the contract's configuration: the entry point of
// the decoder worst-case benchmark (internal/decodebench).
func DecodeRegister(body []byte) error {
	_, _, err := bind(body)
	return err
}
