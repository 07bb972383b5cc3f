package indiqus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/refdata"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

const maxText = 255

// fields reads the request's values with the document's types, collecting
// every problem with the field it belongs to.
type fields struct {
	raw map[string]json.RawMessage
	v   engine.ValidationError
}

func (f *fields) fail(field, rule, msg string) { f.v.Add(field, rule, msg) }

// createFields are the members of createNewUser's body that validate
// reads; decodeCreate keeps only these.
var createFields = []string{
	"fname", "lname", "organization_name", "email", "countryCode", "mobileNumber", "password",
	"acsRegion", "address", "city", "country", "state", "zipcode", "currency", "tax_category",
	"tax_type1", "taxation_id1", "tax_type2", "taxation_id2", "tax_type3", "taxation_id3",
	"credit_period", "credit_limit", "resellerCode",
}

var createNames = contract.NewNameSet(false, createFields...)

// get returns member name's raw value. Reading a name missing from
// createFields is a bug that every test of validate would trip on.
func (f *fields) get(name string) (json.RawMessage, bool) {
	if !slices.Contains(createFields, name) {
		panic("indiqus: " + name + " is missing from createFields")
	}
	r, ok := f.raw[name]
	return r, ok
}

func isNull(r json.RawMessage) bool {
	return r == nil || bytes.Equal(bytes.TrimSpace(r), []byte("null"))
}

// str returns a string field. Absent, null and "" count as not given.
func (f *fields) str(name string, required bool) string {
	r, ok := f.get(name)
	if !ok || isNull(r) {
		if required {
			f.fail(name, "required", name+" is required")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		f.fail(name, "type", name+" must be a string")
		return ""
	}
	if strings.TrimSpace(s) == "" {
		if required {
			f.fail(name, "required", name+" is required")
		}
		return ""
	}
	return s
}

// digits returns a field that may be a string of digits or a JSON integer
// (the document's sample sends zipcode as a number).
func (f *fields) digits(name string, required bool) string {
	r, ok := f.get(name)
	if !ok || isNull(r) {
		if required {
			f.fail(name, "required", name+" is required")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		var n json.Number
		d := json.NewDecoder(bytes.NewReader(r))
		d.UseNumber()
		if d.Decode(&n) != nil {
			f.fail(name, "type", name+" must be a string of digits or a number")
			return ""
		}
		s = n.String()
	}
	s = strings.TrimSpace(s)
	if s == "" {
		if required {
			f.fail(name, "required", name+" is required")
		}
		return ""
	}
	if strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		f.fail(name, "digits", name+" must contain only digits")
		return ""
	}
	return s
}

// number returns a numeric field (JSON number; a numeric string is not
// accepted, as the document types these as numbers).
func (f *fields) number(name string, required bool) (float64, bool) {
	r, ok := f.get(name)
	if !ok || isNull(r) {
		if required {
			f.fail(name, "required", name+" is required")
		}
		return 0, false
	}
	var n float64
	if err := json.Unmarshal(r, &n); err != nil || math.IsInf(n, 0) || math.IsNaN(n) {
		f.fail(name, "type", name+" must be a number")
		return 0, false
	}
	return n, true
}

func (f *fields) maxLen(name, s string, max int) {
	if utf8.RuneCountInString(s) > max {
		f.fail(name, "max", fmt.Sprintf("%s must not exceed %d characters", name, max))
	}
}

func onlyLetters(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) }) < 0
}

// alphaNumSpace allows letters, digits and inner spaces: organisation names
// such as "Acme Cloud 2" are alphanumeric words.
func alphaNumSpace(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != ' ' }) < 0
}

func alphaNum(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) < 0
}

// validate applies the document's table. The engine checks the e-mail's
// syntax and the password policy and reports them with these errors.
func (c *Contract) validate(raw map[string]json.RawMessage) *engine.Registration {
	f := &fields{raw: raw}
	attrs := store.Attrs{}
	put := func(k string, v any) {
		b, _ := json.Marshal(v)
		attrs[k] = b
	}

	fname := f.str("fname", true)
	if fname != "" {
		f.maxLen("fname", fname, maxText)
		if !onlyLetters(fname) {
			f.fail("fname", "alpha", "fname must contain only letters")
		}
	}
	lname := f.str("lname", true)
	if lname != "" {
		f.maxLen("lname", lname, maxText)
		if !onlyLetters(lname) {
			f.fail("lname", "alpha", "lname must contain only letters")
		}
	}
	org := f.str("organization_name", true)
	if org != "" {
		f.maxLen("organization_name", org, maxText)
		if !alphaNumSpace(org) {
			f.fail("organization_name", "alpha_num", "organization_name must contain only letters, digits and spaces")
		}
	}
	email := strings.TrimSpace(f.str("email", true))
	if email != "" {
		f.maxLen("email", email, maxText)
	}
	cc := strings.TrimPrefix(f.digitsOrPlus("countryCode"), "+")
	if cc != "" {
		if len(cc) > 4 {
			f.fail("countryCode", "max", "countryCode must not exceed 4 characters")
		} else if !refdata.IsCallingCode(cc) {
			f.fail("countryCode", "calling_code", fmt.Sprintf("countryCode %s is not a country calling code; see countryList", cc))
		}
	}
	mobile := f.digits("mobileNumber", true)
	pass := f.str("password", true)
	region := f.str("acsRegion", false)
	if region != "" && !slices.Contains(c.cfg.Regions, region) {
		f.fail("acsRegion", "region", fmt.Sprintf("acsRegion must be one of the regions from signUpHelper (%s)", strings.Join(c.cfg.Regions, ", ")))
	}
	address := f.str("address", true)
	f.maxLen("address", address, maxText)
	city := f.str("city", true)
	f.maxLen("city", city, maxText)
	country := f.str("country", true)
	countryOK := false
	if country != "" {
		if _, countryOK = refdata.CountryByCode(country); !countryOK {
			f.fail("country", "country", fmt.Sprintf("country must be a Country_Code from countryList, not %q", country))
		}
	}
	state := f.str("state", true)
	stateCode := ""
	if state != "" && countryOK {
		if sd, ok := refdata.FindSubdivision(country, state); ok {
			stateCode = sd.Code
		} else {
			f.fail("state", "subdivision", fmt.Sprintf("state must be a Subdivision_Code (or name) of %s from stateList, not %q", country, state))
		}
	}
	zip := f.digits("zipcode", false)
	if len(zip) > 20 {
		f.fail("zipcode", "max", "zipcode must not exceed 20 digits")
	}
	if cc != "" && mobile != "" && !f.v.Has("countryCode") {
		if err := refdata.ValidMobile(cc, mobile, country, c.cfg.MobileDigits); err != nil {
			f.fail("mobileNumber", "mobile", "mobileNumber: "+err.Error())
		}
	}
	currency := f.str("currency", true)
	if currency != "" && !slices.Contains(c.cfg.Currencies, currency) {
		f.fail("currency", "currency", fmt.Sprintf("currency must be one of the currencies from signUpHelper (%s)", strings.Join(c.cfg.Currencies, ", ")))
	}
	taxCat := f.str("tax_category", true)
	if taxCat != "" && !slices.Contains(c.cfg.TaxCategories, taxCat) {
		f.fail("tax_category", "tax_category", fmt.Sprintf("tax_category must be one of the tax categories from signUpHelper (%s)", strings.Join(c.cfg.TaxCategories, ", ")))
	}
	type tax struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	var taxes []tax
	for i := 1; i <= 3; i++ {
		tn, in := "tax_type"+strconv.Itoa(i), "taxation_id"+strconv.Itoa(i)
		typ, id := f.str(tn, false), f.str(in, false)
		if typ == "" {
			if id != "" {
				f.fail(tn, "required", fmt.Sprintf("%s is required when %s is given", tn, in))
			}
			continue
		}
		tt, known := c.cfg.taxType(typ)
		if !known {
			f.fail(tn, "tax_type", fmt.Sprintf("%s must be one of the tax types from signUpHelper, not %q", tn, typ))
			continue
		}
		switch {
		case id == "":
			f.fail(in, "required", fmt.Sprintf("%s is required for tax type %s", in, typ))
		case tt.AlphaNum && !alphaNum(id):
			f.fail(in, "alpha_num", fmt.Sprintf("%s must be alphanumeric for tax type %s", in, typ))
		case tt.Min > 0 && utf8.RuneCountInString(id) < tt.Min:
			f.fail(in, "min", fmt.Sprintf("%s must have at least %d characters for tax type %s", in, tt.Min, typ))
		case tt.Max > 0 && utf8.RuneCountInString(id) > tt.Max:
			f.fail(in, "max", fmt.Sprintf("%s must have at most %d characters for tax type %s", in, tt.Max, typ))
		}
		taxes = append(taxes, tax{Type: typ, ID: id})
	}
	if period, ok := f.number("credit_period", true); ok && (period != math.Trunc(period) || period < 1 || period > 30) {
		f.fail("credit_period", "range", "credit_period must be a whole number between 1 and 30")
	}
	if limit, ok := f.number("credit_limit", true); ok && limit < 0 {
		f.fail("credit_limit", "range", "credit_limit must be greater than or equal to 0")
	}
	reseller := f.str("resellerCode", true)
	if reseller != "" && !slices.Contains(c.cfg.ResellerCodes, reseller) {
		f.fail("resellerCode", "reseller", "resellerCode is not a known reseller code")
	}

	for _, k := range []string{"organization_name", "countryCode", "mobileNumber", "acsRegion", "address", "city", "country", "zipcode", "currency", "tax_category", "credit_period", "credit_limit", "resellerCode"} {
		if r, ok := f.get(k); ok && !isNull(r) {
			attrs[k] = r
		}
	}
	put("state", stateCode)
	put("countryCode", cc)
	put("taxes", taxes)
	put("account_type", AccountTypeEnterprise)
	put("jobId", engine.NewUUIDv4())

	return &engine.Registration{
		Contract:   Name,
		Email:      email,
		FirstName:  fname,
		LastName:   lname,
		Name:       strings.TrimSpace(fname + " " + lname),
		FieldNames: map[string]string{engine.FieldFirstName: "fname", engine.FieldLastName: "lname"},
		Password:   pass,
		Policy:     c.policy,
		// Admin-created accounts need no activation.
		Status:      store.StatusActive,
		Permissions: []string{},
		Attributes:  attrs,
		Invalid:     &f.v,
	}
}

// digitsOrPlus reads countryCode: a string like "91" or "+91", or a number.
func (f *fields) digitsOrPlus(name string) string {
	if r, ok := f.get(name); ok {
		var s string
		if json.Unmarshal(r, &s) == nil && strings.HasPrefix(strings.TrimSpace(s), "+") {
			f.raw[name], _ = json.Marshal(strings.TrimPrefix(strings.TrimSpace(s), "+"))
		}
	}
	return f.digits(name, true)
}
