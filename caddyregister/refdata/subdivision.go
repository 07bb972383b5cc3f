package refdata

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Subdivision is one ISO 3166-2 subdivision (state, province, district,
// ...) as published by iso-codes.
type Subdivision struct {
	// Code is the ISO 3166-2 code, e.g. "IN-KA".
	Code string
	// CountryCode is the ISO 3166-1 alpha-2 code of the country, e.g. "IN".
	CountryCode string
	// Name is the ISO name, usually in the local language romanised,
	// e.g. "Karnātaka" (ISO keeps the diacritics of the romanisation).
	Name string
	// PlainName is Name with combining diacritics removed, e.g.
	// "Karnataka": the spelling people type and most contracts list. It
	// equals Name when Name has no diacritics.
	PlainName string
	// Type is the ISO category, e.g. "State", "Union territory".
	Type string
	// Parent is the full ISO 3166-2 code of the enclosing subdivision, e.g.
	// "ES-AN" for "ES-AL", or "" for a top-level subdivision. iso-codes
	// writes some parents without the country prefix; they are normalised
	// here so Parent can always be passed back to [FindSubdivision].
	Parent string
}

// subdivisionData is the decoded ISO 3166-2 table with lookup indexes.
type subdivisionData struct {
	byCountry map[string][]Subdivision // country → sorted by Code
	byCode    map[string]Subdivision
	byName    map[nameKey]Subdivision // exact Name
	byPlain   map[nameKey]Subdivision // PlainName
	total     int
}

// nameKey indexes subdivisions by exact name within one country.
type nameKey struct{ country, name string }

var (
	subdivisionsOnce sync.Once
	subdivisions     subdivisionData
	subdivisionsErr  error
)

// loadSubdivisions gunzips and decodes iso_3166-2.json once; it is the
// largest data set (~5000 entries), so nothing else triggers it.
func loadSubdivisions() error {
	subdivisionsOnce.Do(func() {
		subdivisions, subdivisionsErr = decodeSubdivisions()
	})
	return subdivisionsErr
}

// decodeSubdivisions parses the embedded iso-codes ISO 3166-2 file.
func decodeSubdivisions() (subdivisionData, error) {
	raw, err := readData("iso_3166-2.json.gz")
	if err != nil {
		return subdivisionData{}, err
	}
	var doc struct {
		Entries []struct {
			Code   string `json:"code"`
			Name   string `json:"name"`
			Type   string `json:"type"`
			Parent string `json:"parent"`
		} `json:"3166-2"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return subdivisionData{}, fmt.Errorf("decode iso_3166-2.json: %w", err)
	}
	if len(doc.Entries) == 0 {
		return subdivisionData{}, fmt.Errorf("decode iso_3166-2.json: no subdivisions")
	}
	d := subdivisionData{
		byCountry: make(map[string][]Subdivision),
		byCode:    make(map[string]Subdivision, len(doc.Entries)),
		byName:    make(map[nameKey]Subdivision, len(doc.Entries)),
		byPlain:   make(map[nameKey]Subdivision, len(doc.Entries)),
		total:     len(doc.Entries),
	}
	for _, e := range doc.Entries {
		country, _, ok := strings.Cut(e.Code, "-")
		if !ok || country == "" {
			return subdivisionData{}, fmt.Errorf("decode iso_3166-2.json: malformed code %q", e.Code)
		}
		d.byCode[e.Code] = Subdivision{
			Code:        e.Code,
			CountryCode: country,
			Name:        e.Name,
			PlainName:   stripDiacritics(e.Name),
			Type:        e.Type,
			Parent:      e.Parent,
		}
	}
	// Normalise parents only once every code is known: iso-codes mixes
	// "NX" (country-relative) and "GB-ENG" (full) spellings.
	for code, s := range d.byCode {
		if s.Parent != "" {
			if _, full := d.byCode[s.Parent]; !full {
				s.Parent = s.CountryCode + "-" + s.Parent
				if _, ok := d.byCode[s.Parent]; !ok {
					return subdivisionData{}, fmt.Errorf("decode iso_3166-2.json: %s has unknown parent %q", code, s.Parent)
				}
				d.byCode[code] = s
			}
		}
		d.byCountry[s.CountryCode] = append(d.byCountry[s.CountryCode], s)
	}
	for country, list := range d.byCountry {
		slices.SortFunc(list, func(a, b Subdivision) int { return strings.Compare(a.Code, b.Code) })
		d.byCountry[country] = list
		// A few names repeat within a country (e.g. BD "Dhaka" is both a
		// division and a district). Prefer the top-level entry, then the
		// lowest code, so a name always resolves to the same, broadest
		// subdivision — the one a "state" form field means.
		for _, s := range list {
			preferIndex(d.byName, nameKey{country, s.Name}, s)
			preferIndex(d.byPlain, nameKey{country, s.PlainName}, s)
		}
	}
	return d, nil
}

// preferIndex stores s under k unless k already holds a subdivision that
// is at least as broad; list order (by code) breaks ties.
func preferIndex(m map[nameKey]Subdivision, k nameKey, s Subdivision) {
	if prev, dup := m[k]; dup && (prev.Parent == "" || s.Parent != "") {
		return
	}
	m[k] = s
}

// stripDiacritics removes combining marks after canonical decomposition,
// turning "Karnātaka" into "Karnataka" and "Abū Z̧aby" into "Abu Zaby".
// Letters that are not decomposable (e.g. "ø", "ł") are left alone: the aim
// is the spelling a person without the right keyboard types, not ASCII.
func stripDiacritics(s string) string {
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		// Cannot happen for valid UTF-8 from encoding/json; keep the
		// original rather than lose the name.
		return s
	}
	return out
}

// Subdivisions returns the ISO 3166-2 subdivisions of the country with the
// exact alpha-2 code country, sorted by code, including nested levels
// (check Parent). It returns nil for an unknown country or one with none.
func Subdivisions(country string) []Subdivision {
	must(loadSubdivisions())
	return slices.Clone(subdivisions.byCountry[country])
}

// FindSubdivision resolves codeOrName within country (an exact alpha-2
// code): either the exact ISO 3166-2 code ("IN-KA"), the exact ISO name
// ("Karnātaka") or the exact PlainName ("Karnataka"). Matching is
// case-sensitive, like the contracts it serves, so that accepted values are
// always canonical spellings; callers wanting more leniency should offer
// the list from [Subdivisions] rather than guess. A code belonging to
// another country does not match. Where a name is shared by two
// subdivisions of a country, the top-level one wins, then the lower code.
func FindSubdivision(country, codeOrName string) (Subdivision, bool) {
	must(loadSubdivisions())
	if s, ok := subdivisions.byCode[codeOrName]; ok {
		if s.CountryCode == country {
			return s, true
		}
		return Subdivision{}, false
	}
	k := nameKey{country, codeOrName}
	if s, ok := subdivisions.byName[k]; ok {
		return s, true
	}
	s, ok := subdivisions.byPlain[k]
	return s, ok
}
