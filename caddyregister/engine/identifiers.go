package engine

import (
	"fmt"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// Engine field names of the text a registration carries. A contract whose
// wire names differ maps them in Registration.FieldNames.
const (
	FieldEmail     = "email"
	FieldLogin     = "login"
	FieldName      = "name"
	FieldFirstName = "firstName"
	FieldLastName  = "lastName"
	FieldCompany   = "billing.company"
)

// RuleInvisible is the FieldError rule of text holding an invisible or
// bidi control character (see store.Invisible).
const RuleInvisible = "invisible"

// checkIdentifiers refuses invisible format characters and bidi controls
// in the e-mail, login and names (the founded company's too) of r: two accounts whose identifiers
// differ only by a zero width space, or whose name is reordered by an
// override, read the same to people (an admin, the recipient of a mail).
// The unique keys (store.IdentifierKey) already fold look-alike letters;
// these characters are refused instead, because folding them away would
// store an address or a name other than the one the user typed. Fields the
// contract already reported are skipped; so is Name when a first or last
// name failed, since contracts build Name from them.
func (r *Registration) checkIdentifiers(v *ValidationError) {
	nameFailed := false
	fields := []struct {
		field, value string
	}{
		{FieldEmail, r.Email},
		{FieldLogin, r.Login},
		{FieldFirstName, r.FirstName},
		{FieldLastName, r.LastName},
		{FieldName, r.Name},
	}
	if r.Tenant != nil {
		// The company names the tenant to admins as a user's name does.
		fields = append(fields, struct{ field, value string }{FieldCompany, r.Tenant.Company})
	}
	for _, f := range fields {
		wire := r.fieldName(f.field)
		if f.field == FieldName && nameFailed {
			continue
		}
		c, bad := store.Invisible(f.value)
		if !bad {
			continue
		}
		if f.field == FieldFirstName || f.field == FieldLastName {
			nameFailed = true
		}
		if v.Has(wire) {
			continue
		}
		v.Add(wire, RuleInvisible, fmt.Sprintf("must not contain invisible or text-direction control characters (found U+%04X)", c))
	}
}

// fieldName is the contract's name for the engine field f.
func (r *Registration) fieldName(f string) string {
	if n, ok := r.FieldNames[f]; ok {
		return n
	}
	return f
}
