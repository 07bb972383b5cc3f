package refdata

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Currency is one ISO 4217 currency as published by iso-codes.
type Currency struct {
	// Code is the alphabetic code, e.g. "INR".
	Code string
	// Numeric is the three-digit numeric code, e.g. "356".
	Numeric string
	// Name is the ISO English name, e.g. "Indian Rupee".
	Name string
}

// currencyData is the decoded ISO 4217 table.
type currencyData struct {
	list   []Currency // sorted by Code
	byCode map[string]Currency
}

var (
	currenciesOnce sync.Once
	currencies     currencyData
	currenciesErr  error
)

// loadCurrencies decodes iso_4217.json once.
//
// The list comes from iso-codes rather than golang.org/x/text/currency
// because x/text's table is both stale and historical: as of x/text v0.43
// currency.ParseISO rejects current codes such as VES, VED and SLE and
// accepts withdrawn ones such as DEM, neither of which a registration form
// should do. iso-codes tracks the ISO 4217 maintenance agency's list of
// current codes (it includes the funds, metals and testing codes like XAU
// and XTS because ISO lists them).
func loadCurrencies() error {
	currenciesOnce.Do(func() {
		currencies, currenciesErr = decodeCurrencies()
	})
	return currenciesErr
}

// decodeCurrencies parses the embedded iso-codes ISO 4217 file.
func decodeCurrencies() (currencyData, error) {
	raw, err := readData("iso_4217.json")
	if err != nil {
		return currencyData{}, err
	}
	var doc struct {
		Entries []struct {
			Alpha3  string `json:"alpha_3"`
			Numeric string `json:"numeric"`
			Name    string `json:"name"`
		} `json:"4217"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return currencyData{}, fmt.Errorf("decode iso_4217.json: %w", err)
	}
	if len(doc.Entries) == 0 {
		return currencyData{}, fmt.Errorf("decode iso_4217.json: no currencies")
	}
	d := currencyData{byCode: make(map[string]Currency, len(doc.Entries))}
	for _, e := range doc.Entries {
		c := Currency{Code: e.Alpha3, Numeric: e.Numeric, Name: e.Name}
		d.list = append(d.list, c)
		d.byCode[c.Code] = c
	}
	slices.SortFunc(d.list, func(a, b Currency) int { return strings.Compare(a.Code, b.Code) })
	return d, nil
}

// Currencies returns every current ISO 4217 currency, sorted by code.
func Currencies() []Currency {
	must(loadCurrencies())
	return slices.Clone(currencies.list)
}

// ValidCurrency reports whether code is a current ISO 4217 alphabetic
// code written exactly, in upper case ("INR"; not "inr"): contracts define
// the field as case sensitive so that stored values are canonical.
func ValidCurrency(code string) bool {
	must(loadCurrencies())
	_, ok := currencies.byCode[code]
	return ok
}
