package rpost

import (
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/mail"
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
	// Line marks text that may go into a mail: one line of printable
	// text (mail.CheckLine).
	Line bool
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
	pFirstName:               {Name: "FirstName", Required: true, Max: 255, Line: true},
	pLastName:                {Name: "LastName", Required: true, Max: 255, Line: true},
	pPhoneNumber:             {Name: "PhoneNumber", Max: 100},
	pAlternateEmail:          {Name: "AlternateEmail", Max: 256, Email: true},
	pConfirmationCallbackURL: {Name: "ConfirmationCallbackUrl", Max: 250},
	pRegistrationApp:         {Name: "RegistrationApp", Required: true, Max: 30, Line: true},
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
	msgLine      = "The field %s must be one line of printable text (no line breaks, tabs, control or invisible characters)."
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

// bindErrors are binding failures by property index.
type bindErrors [numProps]*engine.FieldError

// msgRepeated is Json.NET's wording when a property is read twice
// (DuplicatePropertyNameHandling.Error); ASP.NET itself keeps the last
// silently, which lets a proxy and the app read different values.
const msgRepeated = "Property with the name '%s' already exists in the current JSON object. %s"

// bind decodes body into the model the way ASP.NET Web API's JSON
// formatter does: property names match case-insensitively, unknown
// properties are ignored, null is "not given". A value of the wrong JSON
// type is a binding error worded as Json.NET words it; so is a property
// given twice (in any spelling). A body that is not JSON is a
// *contract.DecodeError.
//
// The body is walked once: only the model's properties are converted, at
// most once each, and line and position are counted in the same forward
// pass, only for the members that fail.
func bind(body []byte) (*form, *bindErrors, error) {
	if err := contract.CheckJSON(body, 0); err != nil {
		return nil, nil, err
	}
	f := &form{}
	var be bindErrors
	var seen [numProps]bool
	pos := &cursor{body: body, line: 1}
	contract.Members(body, func(m contract.JSONMember) bool {
		i := propIndex(m.Key)
		switch {
		case i < 0:
		case seen[i]:
			if be[i] == nil || be[i].Rule != "repeated" {
				name := contract.UnquoteKey(m.Key)
				be[i] = &engine.FieldError{Field: modelPrefix + "." + props[i].Name, Rule: "repeated", Message: fmt.Sprintf(msgRepeated, name, pos.path(name, m.KeyEnd))}
			}
			f.vals[i] = value{}
		default:
			seen[i] = true
			f.vals[i], be[i] = convert(m, props[i], pos)
		}
		return true
	})
	return f, &be, nil
}

// propNames finds a member's property, case-insensitively.
var propNames = func() *contract.NameSet {
	names := make([]string, numProps)
	for i := range props {
		names[i] = props[i].Name
	}
	return contract.NewNameSet(true, names...)
}()

func propIndex(key []byte) int {
	name, ok := propNames.Find(key)
	if !ok {
		return -1
	}
	for i := range props {
		if props[i].Name == name {
			return i
		}
	}
	return -1
}

// cursor turns byte offsets into Json.NET's positions (1-based line, and
// the characters of that line up to the offset) in one forward pass:
// offsets are asked in increasing order as the members are walked.
type cursor struct {
	body           []byte
	off, line, col int
}

func (c *cursor) at(off int) (line, col int) {
	off = min(off, len(c.body))
	if off < c.off {
		c.off, c.line, c.col = 0, 1, 0
	}
	for c.off < off {
		r, n := utf8.DecodeRune(c.body[c.off:])
		if r == '\n' {
			c.line++
			c.col = 0
		} else {
			c.col++
		}
		c.off += n
	}
	return c.line, c.col
}

// path is Json.NET's "Path 'x', line l, position p." for offset off.
func (c *cursor) path(name string, off int) string {
	line, col := c.at(off)
	return fmt.Sprintf("Path '%s', line %d, position %d.", name, line, col)
}

// convert binds one member to p's type.
func convert(m contract.JSONMember, p prop, pos *cursor) (value, *engine.FieldError) {
	raw := m.Value
	key := modelPrefix + "." + p.Name
	fail := func(format string, args ...any) *engine.FieldError {
		return &engine.FieldError{Field: key, Rule: "type", Message: fmt.Sprintf(format, args...)}
	}
	path := func() string { return pos.path(contract.UnquoteKey(m.Key), m.ValueStart+len(raw)) }
	switch raw[0] {
	case 'n':
		return value{}, nil
	case '{', '[':
		return value{}, fail("Unexpected character encountered while parsing value: %c. %s", raw[0], pos.path(contract.UnquoteKey(m.Key), m.ValueStart+1))
	}
	switch p.Kind {
	case kindBool:
		switch raw[0] {
		case 't', 'f':
			b := raw[0] == 't'
			return value{Bool: &b}, nil
		case '"':
			s, _ := contract.Unquote(raw)
			return value{}, fail("Could not convert string to boolean: %s. %s", clip(s), path())
		default:
			return value{}, fail("Error converting value %s to type 'System.Boolean'. %s", clipRaw(raw), path())
		}
	default:
		switch raw[0] {
		case '"':
			s, ok := contract.Unquote(raw)
			if !ok {
				return value{}, fail("Invalid string. %s", path())
			}
			return value{Str: &s}, nil
		case 't', 'f':
			return value{}, fail("Error converting value %s to type 'System.String'. %s", dotnetBool(raw), path())
		default:
			return value{}, fail("Error converting value %s to type 'System.String'. %s", clipRaw(raw), path())
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

// clip shortens echoed values to 64 characters.
func clip(s string) string {
	const max = 64
	n := 0
	for i := range s {
		if n == max {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// clipRaw is clip for a raw value, without copying all of a long one: 64
// characters are at most 256 bytes.
func clipRaw(raw []byte) string {
	return clip(string(raw[:min(len(raw), 257)]))
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
		if p.Line && mail.CheckLine(s) != nil {
			add("line", fmt.Sprintf(msgLine, p.Name))
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
