package refdata

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/nyaruka/phonenumbers"
)

// Errors returned (wrapped) by [ValidMobile], so callers can map each
// failure to the right contract field with errors.Is while the message
// still says exactly what was wrong.
var (
	// ErrCallingCode means the calling code is malformed, unknown, or not
	// the one used by the given country.
	ErrCallingCode = errors.New("invalid calling code")
	// ErrCountry means the country is not an ISO 3166-1 alpha-2 code.
	ErrCountry = errors.New("unknown country")
	// ErrMobileDigits means the number has the wrong number of digits.
	ErrMobileDigits = errors.New("wrong number of digits")
	// ErrMobile means the number is not a valid mobile number.
	ErrMobile = errors.New("not a valid mobile number")
)

// ValidMobile checks a mobile number entered as separate calling code and
// national number, the way registration forms collect it.
//
//   - callingCode must satisfy [IsCallingCode] (digits, no "+").
//   - number must be the national significant number as digits only, with
//     no trunk prefix ("9876543210", not "09876543210" or "98765-43210"):
//     a canonical form keeps stored values comparable, and rejecting
//     letters stops libphonenumber's vanity-number conversion.
//   - country, if not "", must be an exact ISO 3166-1 alpha-2 code that
//     uses callingCode, and the number must be valid for that region; if
//     "", the number must be valid for any region using callingCode.
//   - digits, if > 0, is the exact number of digits required of number.
//   - The number must be a mobile number according to libphonenumber's
//     metadata (MOBILE, or FIXED_LINE_OR_MOBILE where a country's plan does
//     not distinguish them, as in the US), because the field exists to
//     reach the user by SMS.
//
// It returns nil when all checks pass, otherwise an error wrapping
// [ErrCallingCode], [ErrCountry], [ErrMobileDigits] or [ErrMobile] that
// names the failing part, e.g. "not a valid mobile number for IN".
func ValidMobile(callingCode, number, country string, digits int) error {
	if !IsCallingCode(callingCode) {
		return fmt.Errorf("%w %q", ErrCallingCode, callingCode)
	}
	where := "calling code +" + callingCode
	if country != "" {
		if _, ok := CountryByCode(country); !ok {
			return fmt.Errorf("%w %q", ErrCountry, country)
		}
		if cc := phonenumbers.GetCountryCodeForRegion(country); strconv.Itoa(cc) != callingCode {
			return fmt.Errorf("%w: %s does not use +%s", ErrCallingCode, country, callingCode)
		}
		where = country
	}
	if !allDigits(number) {
		return fmt.Errorf("%w for %s: must contain digits only", ErrMobile, where)
	}
	if digits > 0 && len(number) != digits {
		return fmt.Errorf("%w: must have %d digits, has %d", ErrMobileDigits, digits, len(number))
	}
	num, err := phonenumbers.Parse("+"+callingCode+number, "")
	if err != nil {
		return fmt.Errorf("%w for %s: %w", ErrMobile, where, err)
	}
	// libphonenumber strips a trunk prefix even after "+cc" ("+91 0987...")
	// and would accept it; insist on the canonical national number.
	if nsn := phonenumbers.GetNationalSignificantNumber(num); nsn != number {
		return fmt.Errorf("%w for %s: enter it as %s, without a trunk prefix", ErrMobile, where, nsn)
	}
	valid := phonenumbers.IsValidNumber(num)
	if country != "" {
		valid = phonenumbers.IsValidNumberForRegion(num, country)
	}
	if !valid {
		return fmt.Errorf("%w for %s", ErrMobile, where)
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		return nil
	default:
		return fmt.Errorf("%w for %s: not a mobile line", ErrMobile, where)
	}
}
