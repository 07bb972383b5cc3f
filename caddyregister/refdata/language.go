package refdata

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/text/language/display"
)

// Language is a culture (language plus country) a user can choose.
type Language struct {
	// Code is the lower-case culture code "language-region", e.g. "en-us",
	// "pt-br", "agq-cm": an ISO 639 language and an ISO 3166-1 alpha-2
	// region.
	Code string
	// Name is the English display name, e.g. "English (United States)".
	Name string
	// NativeName is the name in the language itself, e.g.
	// "français (France)"; it falls back to Name where CLDR lacks it.
	NativeName string
}

// languageData is the derived culture list.
type languageData struct {
	list   []Language // sorted by Code
	byCode map[string]Language
}

var (
	languagesOnce sync.Once
	languages     languageData
	languagesErr  error
)

// loadLanguages derives the culture list once.
func loadLanguages() error {
	languagesOnce.Do(func() {
		languages, languagesErr = deriveLanguages()
	})
	return languagesErr
}

// deriveLanguages builds the list from CLDR data compiled into
// golang.org/x/text, not from a hand-typed table. The source is
// display.Supported: the locales for which x/text carries CLDR display
// names (about 260, e.g. "en", "en-GB", "pt-PT", "sr-Latn", "zh-Hant").
// Each is turned into "language-region" using its explicit region or,
// if it has none, CLDR's likely region for it (language.Tag.Region: "en"
// → US, "pt" → BR, "zh" → CN, "hi" → IN). Locales whose region is not a
// country (e.g. "es-419", Latin America) are dropped, and script variants
// that land on the same code (e.g. "sr" and "sr-Latn", both Serbia) are
// merged, keeping the first in x/text's order, which is the script-less
// default.
//
// Names are composed as "<language> (<country>)" from CLDR's language and
// territory names rather than taken from CLDR's locale names, because CLDR
// names some locales idiomatically ("American English", "Brazilian
// Portuguese") while a culture picker needs a uniform, sortable form.
func deriveLanguages() (languageData, error) {
	english := display.English
	d := languageData{byCode: make(map[string]Language)}
	for _, tag := range display.Supported.Tags() {
		base, _ := tag.Base()
		region, _ := tag.Region()
		if !region.IsCountry() {
			continue
		}
		code := strings.ToLower(base.String() + "-" + region.String())
		if _, dup := d.byCode[code]; dup {
			continue
		}
		name := composeName(english.Languages().Name(base), english.Regions().Name(region))
		if name == "" {
			return languageData{}, fmt.Errorf("derive languages: no English name for %s", code)
		}
		native := ""
		if ln, rn := display.Languages(tag), display.Regions(tag); ln != nil && rn != nil {
			native = composeName(ln.Name(base), rn.Name(region))
		}
		if native == "" {
			native = name
		}
		l := Language{Code: code, Name: name, NativeName: native}
		d.byCode[code] = l
		d.list = append(d.list, l)
	}
	if len(d.list) == 0 {
		return languageData{}, fmt.Errorf("derive languages: x/text lists no locales")
	}
	slices.SortFunc(d.list, func(a, b Language) int { return strings.Compare(a.Code, b.Code) })
	return d, nil
}

// composeName returns "lang (region)", or "" if either part is unknown.
func composeName(lang, region string) string {
	if lang == "" || region == "" {
		return ""
	}
	return lang + " (" + region + ")"
}

// Languages returns every culture, sorted by Code.
func Languages() []Language {
	must(loadLanguages())
	return slices.Clone(languages.list)
}

// LanguageByCode looks up a culture by code, ignoring ASCII case.
func LanguageByCode(code string) (Language, bool) {
	must(loadLanguages())
	l, ok := languages.byCode[asciiLower(code)]
	return l, ok
}

// IsLanguage reports whether code is a culture from [Languages], ignoring
// ASCII case: "en-us" and "en-US" both match, because BCP 47 tags are
// case-insensitive and browsers send "en-US". Underscores ("en_US") do not.
func IsLanguage(code string) bool {
	_, ok := LanguageByCode(code)
	return ok
}
