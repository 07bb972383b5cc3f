package rpost

import (
	"net/http"
	"sync"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/refdata"
)

// language is one entry of Lookup/Language.
type language struct {
	Code string `json:"Code"`
	Name string `json:"Name"`
}

// timeZone is one entry of Lookup/TimeZone.
type timeZone struct {
	ID          string   `json:"Id"`
	DisplayName string   `json:"DisplayName"`
	Iana        []string `json:"Iana"`
}

// buildLookups encodes both lists once: they change only with the build.
func (c *Contract) buildLookups() error {
	var langs []language
	for _, l := range refdata.Languages() {
		langs = append(langs, language{Code: l.Code, Name: l.Name})
	}
	var tzs []timeZone
	for _, z := range refdata.TimeZones() {
		tzs = append(tzs, timeZone{ID: z.ID, DisplayName: z.DisplayName, Iana: z.IANA})
	}
	var err error
	if c.languages, err = marshalNoEscape(langs); err != nil {
		return err
	}
	c.timeZones, err = marshalNoEscape(tzs)
	return err
}

// lookup serves an encoded list. The lists are public reference data, so
// caches may keep them for an hour.
func (c *Contract) lookup(body func() []byte) func(http.ResponseWriter, *http.Request, *contract.Request) {
	return func(w http.ResponseWriter, r *http.Request, _ *contract.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body())
	}
}

var (
	codesOnce sync.Once
	alpha3    map[string]string // upper-case alpha-3 → alpha-2
	tzByLower map[string]string // lower-case Windows id → id
)

func loadCodes() {
	codesOnce.Do(func() {
		alpha3 = map[string]string{}
		for _, k := range refdata.Countries() {
			if k.Alpha3 != "" {
				alpha3[asciiUpper(k.Alpha3)] = k.Code
			}
		}
		tzByLower = map[string]string{}
		for _, z := range refdata.TimeZones() {
			tzByLower[asciiLower(z.ID)] = z.ID
		}
	})
}

// countryCode accepts an ISO 3166-1 alpha-2 or alpha-3 code in any ASCII
// case and returns it upper-cased.
func countryCode(s string) (string, bool) {
	if k, ok := refdata.CountryByCodeFold(s); ok {
		return k.Code, true
	}
	loadCodes()
	up := asciiUpper(s)
	if _, ok := alpha3[up]; ok {
		return up, true
	}
	return "", false
}

// timeZoneFold finds a Windows time zone id ignoring case, as .NET's
// TimeZoneInfo.FindSystemTimeZoneById does, and returns its exact spelling.
func timeZoneFold(s string) (string, bool) {
	loadCodes()
	id, ok := tzByLower[asciiLower(s)]
	return id, ok
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
