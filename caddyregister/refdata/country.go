package refdata

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/collate"
	"golang.org/x/text/language"
)

// Country is one ISO 3166-1 country, as published by iso-codes, with its
// international calling code from libphonenumber.
type Country struct {
	// Code is the ISO 3166-1 alpha-2 code, e.g. "IN".
	Code string
	// Alpha3 is the ISO 3166-1 alpha-3 code, e.g. "IND".
	Alpha3 string
	// Name is the ISO short name in English, e.g. "India" or
	// "Bolivia, Plurinational State of".
	Name string
	// CommonName is the everyday name iso-codes records where it differs
	// from Name (e.g. "Bolivia", "Taiwan"), else "". Forms may prefer it
	// for display; Name stays the canonical value.
	CommonName string
	// CallingCode is the country calling code without "+", e.g. "91", or
	// "" when libphonenumber knows none for the territory (e.g. "AQ").
	CallingCode string
}

// countryData is the decoded ISO 3166-1 table plus the indexes that make
// lookups O(1).
type countryData struct {
	byName []Country          // sorted by Name, English collation
	byCode map[string]Country // alpha-2 → country
}

var (
	countriesOnce sync.Once
	countries     countryData
	countriesErr  error
)

// loadCountries decodes iso_3166-1.json once.
func loadCountries() error {
	countriesOnce.Do(func() {
		countries, countriesErr = decodeCountries()
	})
	return countriesErr
}

// decodeCountries parses the embedded iso-codes ISO 3166-1 file.
func decodeCountries() (countryData, error) {
	raw, err := readData("iso_3166-1.json")
	if err != nil {
		return countryData{}, err
	}
	var doc struct {
		Entries []struct {
			Alpha2     string `json:"alpha_2"`
			Alpha3     string `json:"alpha_3"`
			Name       string `json:"name"`
			CommonName string `json:"common_name"`
		} `json:"3166-1"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return countryData{}, fmt.Errorf("decode iso_3166-1.json: %w", err)
	}
	if len(doc.Entries) == 0 {
		return countryData{}, fmt.Errorf("decode iso_3166-1.json: no countries")
	}
	d := countryData{
		byName: make([]Country, 0, len(doc.Entries)),
		byCode: make(map[string]Country, len(doc.Entries)),
	}
	for _, e := range doc.Entries {
		c := Country{Code: e.Alpha2, Alpha3: e.Alpha3, Name: e.Name, CommonName: e.CommonName}
		if n := phonenumbers.GetCountryCodeForRegion(e.Alpha2); n > 0 {
			c.CallingCode = strconv.Itoa(n)
		}
		d.byName = append(d.byName, c)
		d.byCode[c.Code] = c
	}
	// English collation rather than byte order, so "Åland Islands" sorts
	// with the A's where a person looking down a list expects it.
	col := collate.New(language.English)
	slices.SortStableFunc(d.byName, func(a, b Country) int {
		return col.CompareString(a.Name, b.Name)
	})
	return d, nil
}

// Countries returns every ISO 3166-1 country, sorted by English name.
func Countries() []Country {
	must(loadCountries())
	return slices.Clone(countries.byName)
}

// CountryByCode looks up a country by its exact, upper-case ISO 3166-1
// alpha-2 code. It is case-sensitive because the registration contracts it
// serves define the field as case sensitive: "in" is not a country code.
func CountryByCode(code string) (Country, bool) {
	must(loadCountries())
	c, ok := countries.byCode[code]
	return c, ok
}

// CountryByCodeFold is [CountryByCode] ignoring ASCII case, for inputs
// (such as Accept-Language regions or legacy data) that are not bound by a
// case-sensitive contract.
func CountryByCodeFold(code string) (Country, bool) {
	return CountryByCode(asciiUpper(code))
}

// IsCallingCode reports whether code is an international calling code in
// use by at least one country or territory, written as 1–4 ASCII digits
// with no "+" and no leading zero (e.g. "91", "1", "44"). The "+" form is
// rejected rather than stripped so that a contract field has one canonical
// spelling. Non-geographic codes such as 800 (international freephone) are
// not country calling codes and report false.
func IsCallingCode(code string) bool {
	if len(code) < 1 || len(code) > 4 || code[0] == '0' || !allDigits(code) {
		return false
	}
	n, err := strconv.Atoi(code)
	if err != nil {
		return false
	}
	for _, r := range phonenumbers.GetRegionCodesForCountryCode(n) {
		if r != phonenumbers.UNKNOWN_REGION && r != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY {
			return true
		}
	}
	return false
}

// allDigits reports whether s is non-empty and only ASCII digits. It is
// stricter than strconv.Atoi, which would accept signs.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
