package refdata

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConcurrentFirstUse(t *testing.T) {
	// First in the file so it really is the first use in a plain
	// "go test" run; with -race it checks the lazy loaders are safe when
	// first used from many goroutines at once.
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			FindSubdivision("IN", "IN-KA")
			ValidCurrency("INR")
			IsLanguage("en-us")
			IsTimeZone("UTC")
			CountryByCode("IN")
		}()
	}
	for range 8 {
		<-done
	}
}

func TestLoad(t *testing.T) {
	if err := Load(); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func TestCountryByCode(t *testing.T) {
	tests := []struct {
		code        string
		ok          bool
		name        string
		alpha3      string
		callingCode string
	}{
		{code: "IN", ok: true, name: "India", alpha3: "IND", callingCode: "91"},
		{code: "US", ok: true, name: "United States", alpha3: "USA", callingCode: "1"},
		{code: "GB", ok: true, name: "United Kingdom", alpha3: "GBR", callingCode: "44"},
		{code: "AQ", ok: true, name: "Antarctica", alpha3: "ATA", callingCode: ""},
		{code: "XX", ok: false},
		{code: "in", ok: false}, // case sensitive
		{code: "IND", ok: false},
		{code: "", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			c, ok := CountryByCode(tt.code)
			if ok != tt.ok {
				t.Fatalf("CountryByCode(%q) ok = %v, want %v", tt.code, ok, tt.ok)
			}
			if !ok {
				return
			}
			if c.Code != tt.code || c.Name != tt.name || c.Alpha3 != tt.alpha3 || c.CallingCode != tt.callingCode {
				t.Errorf("CountryByCode(%q) = %+v, want name %q alpha3 %q calling code %q",
					tt.code, c, tt.name, tt.alpha3, tt.callingCode)
			}
		})
	}
}

func TestCountryByCodeFold(t *testing.T) {
	for _, code := range []string{"in", "In", "IN"} {
		if c, ok := CountryByCodeFold(code); !ok || c.Code != "IN" {
			t.Errorf("CountryByCodeFold(%q) = %+v, %v; want IN", code, c, ok)
		}
	}
	// Non-ASCII look-alikes must not fold onto a code.
	if _, ok := CountryByCodeFold("ın"); ok { // dotless i
		t.Error(`CountryByCodeFold("ın") matched`)
	}
}

func TestCountries(t *testing.T) {
	all := Countries()
	if len(all) < 240 {
		t.Fatalf("Countries() has %d entries, want >= 240", len(all))
	}
	seen := map[string]bool{}
	for _, c := range all {
		if len(c.Code) != 2 || len(c.Alpha3) != 3 || c.Name == "" {
			t.Errorf("malformed country %+v", c)
		}
		if seen[c.Code] {
			t.Errorf("duplicate country %s", c.Code)
		}
		seen[c.Code] = true
	}
	// English collation: "Åland Islands" sorts between Afghanistan and
	// Albania, not after Zimbabwe.
	if all[0].Code != "AF" || all[1].Code != "AX" {
		t.Errorf("Countries() starts %s, %s; want AF, AX", all[0].Code, all[1].Code)
	}
	// Returned slices are copies.
	all[0].Name = "changed"
	if Countries()[0].Name == "changed" {
		t.Error("Countries() returned shared backing array")
	}
}

func TestIsCallingCode(t *testing.T) {
	tests := []struct {
		code string
		want bool
	}{
		{"91", true},
		{"1", true},
		{"44", true},
		{"383", true}, // Kosovo: not in ISO 3166-1, but a real country code
		{"+91", false},
		{"091", false},
		{"0", false},
		{"800", false}, // international freephone, not a country
		{"999", false},
		{"12345", false},
		{"", false},
		{"9a", false},
		{"-1", false},
	}
	for _, tt := range tests {
		if got := IsCallingCode(tt.code); got != tt.want {
			t.Errorf("IsCallingCode(%q) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestSubdivisions(t *testing.T) {
	in := Subdivisions("IN")
	i := slices.IndexFunc(in, func(s Subdivision) bool { return s.Code == "IN-KA" })
	if i < 0 {
		t.Fatal(`Subdivisions("IN") lacks IN-KA`)
	}
	ka := in[i]
	if ka.CountryCode != "IN" || ka.PlainName != "Karnataka" || ka.Name != "Karnātaka" || ka.Type != "State" || ka.Parent != "" {
		t.Errorf("IN-KA = %+v", ka)
	}
	if !slices.IsSortedFunc(in, func(a, b Subdivision) int { return strings.Compare(a.Code, b.Code) }) {
		t.Error(`Subdivisions("IN") not sorted by code`)
	}
	if got := Subdivisions("XX"); got != nil {
		t.Errorf(`Subdivisions("XX") = %v, want nil`, got)
	}
	if got := Subdivisions("in"); got != nil {
		t.Errorf(`Subdivisions("in") = %v, want nil (case sensitive)`, got)
	}

	total := 0
	for _, c := range Countries() {
		subs := Subdivisions(c.Code)
		total += len(subs)
		for _, s := range subs {
			if s.CountryCode != c.Code || !strings.HasPrefix(s.Code, c.Code+"-") || s.Name == "" || s.Type == "" {
				t.Errorf("malformed subdivision %+v", s)
			}
			if s.Parent != "" {
				if p, ok := FindSubdivision(c.Code, s.Parent); !ok || p.Code != s.Parent {
					t.Errorf("%s: parent %q does not resolve", s.Code, s.Parent)
				}
			}
		}
	}
	if total < 4000 {
		t.Errorf("%d subdivisions in total, want >= 4000", total)
	}
}

func TestFindSubdivision(t *testing.T) {
	tests := []struct {
		country, query string
		ok             bool
		code           string
	}{
		{"IN", "IN-KA", true, "IN-KA"},
		{"IN", "Karnataka", true, "IN-KA"}, // PlainName
		{"IN", "Karnātaka", true, "IN-KA"}, // ISO name
		{"IN", "Kerala", true, "IN-KL"},
		{"US", "California", true, "US-CA"},
		{"US", "US-CA", true, "US-CA"},
		{"ES", "ES-AL", true, "ES-AL"},
		{"IN", "karnataka", false, ""}, // case sensitive
		{"IN", "in-ka", false, ""},
		{"US", "IN-KA", false, ""}, // another country's code
		{"US", "Karnataka", false, ""},
		{"in", "IN-KA", false, ""},
		{"IN", "", false, ""},
		{"", "", false, ""},
		// "Dhaka" is both a division and a district; the division wins.
		{"BD", "Dhaka", true, "BD-C"},
	}
	for _, tt := range tests {
		t.Run(tt.country+"/"+tt.query, func(t *testing.T) {
			s, ok := FindSubdivision(tt.country, tt.query)
			if ok != tt.ok || s.Code != tt.code {
				t.Errorf("FindSubdivision(%q, %q) = %q, %v; want %q, %v", tt.country, tt.query, s.Code, ok, tt.code, tt.ok)
			}
		})
	}
}

func TestSubdivisionParentNormalised(t *testing.T) {
	// iso-codes spells AZ parents country-relative ("NX") and GB parents
	// in full ("GB-SCT"); both must come out as full codes.
	for code, parent := range map[string]string{"AZ-BAB": "AZ-NX", "GB-ABD": "GB-SCT"} {
		s, ok := FindSubdivision(code[:2], code)
		if !ok || s.Parent != parent {
			t.Errorf("%s parent = %q (found %v), want %q", code, s.Parent, ok, parent)
		}
	}
}

func TestValidCurrency(t *testing.T) {
	tests := []struct {
		code string
		want bool
	}{
		{"INR", true},
		{"USD", true},
		{"EUR", true},
		{"VES", true}, // unknown to x/text v0.43's table
		{"inr", false},
		{"Inr", false},
		{"XYZ", false},
		{"DEM", false}, // withdrawn
		{"", false},
		{"US", false},
		{"USDX", false},
	}
	for _, tt := range tests {
		if got := ValidCurrency(tt.code); got != tt.want {
			t.Errorf("ValidCurrency(%q) = %v, want %v", tt.code, got, tt.want)
		}
	}
	if n := len(Currencies()); n < 150 {
		t.Errorf("Currencies() has %d entries, want >= 150", n)
	}
}

func TestValidMobile(t *testing.T) {
	tests := []struct {
		name                         string
		callingCode, number, country string
		digits                       int
		wantErr                      error  // nil: valid
		wantMsg                      string // substring of the error
	}{
		{"india", "91", "9876543210", "IN", 10, nil, ""},
		{"india no digit rule", "91", "9876543210", "IN", 0, nil, ""},
		{"india any region", "91", "9876543210", "", 10, nil, ""},
		{"us", "1", "2025550123", "US", 10, nil, ""},
		{"us any region", "1", "2025550123", "", 0, nil, ""},
		{"too few digits", "91", "987654321", "IN", 10, ErrMobileDigits, "must have 10 digits"},
		{"too many digits", "91", "98765432101", "IN", 10, ErrMobileDigits, "must have 10 digits"},
		{"invalid for IN", "91", "1234567890", "IN", 10, ErrMobile, "not a valid mobile number for IN"},
		{"landline", "91", "8022334455", "IN", 10, ErrMobile, "not a valid mobile number for IN"},
		{"trunk prefix", "91", "09876543210", "IN", 0, ErrMobile, "without a trunk prefix"},
		{"punctuation", "91", "98765-43210", "IN", 0, ErrMobile, "digits only"},
		{"empty number", "91", "", "IN", 10, ErrMobile, "digits only"},
		{"plus calling code", "+91", "9876543210", "IN", 10, ErrCallingCode, `"+91"`},
		{"unknown calling code", "999", "9876543210", "", 10, ErrCallingCode, ""},
		{"calling code of another country", "1", "9876543210", "IN", 10, ErrCallingCode, "IN does not use +1"},
		{"US number for CA", "1", "2025550123", "CA", 10, ErrMobile, "for CA"},
		{"unknown country", "91", "9876543210", "XX", 10, ErrCountry, ""},
		{"lower-case country", "91", "9876543210", "in", 10, ErrCountry, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidMobile(tt.callingCode, tt.number, tt.country, tt.digits)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ValidMobile = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidMobile = %v, want errors.Is %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ValidMobile = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestLanguages(t *testing.T) {
	all := Languages()
	if len(all) < 150 {
		t.Fatalf("Languages() has %d entries, want >= 150", len(all))
	}
	byCode := map[string]Language{}
	for _, l := range all {
		if l.Code != strings.ToLower(l.Code) || strings.Count(l.Code, "-") != 1 || l.Name == "" || l.NativeName == "" {
			t.Errorf("malformed language %+v", l)
		}
		byCode[l.Code] = l
	}
	for code, name := range map[string]string{
		"en-us": "English (United States)",
		"en-gb": "English (United Kingdom)",
		"fr-fr": "French (France)",
		"de-de": "German (Germany)",
		"es-es": "Spanish (Spain)",
		"pt-br": "Portuguese (Brazil)",
		"ja-jp": "Japanese (Japan)",
		"zh-cn": "Chinese (China)",
		"hi-in": "Hindi (India)",
	} {
		if got := byCode[code].Name; got != name {
			t.Errorf("language %s name = %q, want %q", code, got, name)
		}
	}
	if got := byCode["fr-fr"].NativeName; got != "français (France)" {
		t.Errorf("fr-fr native name = %q", got)
	}
}

func TestIsLanguage(t *testing.T) {
	tests := []struct {
		code string
		want bool
	}{
		{"en-us", true},
		{"EN-US", true},
		{"en-US", true},
		{"hi-in", true},
		{"xx-yy", false},
		{"en", false},
		{"en_us", false},
		{"es-419", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsLanguage(tt.code); got != tt.want {
			t.Errorf("IsLanguage(%q) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestTimeZones(t *testing.T) {
	all := TimeZones()
	if len(all) < 130 {
		t.Fatalf("TimeZones() has %d entries, want >= 130", len(all))
	}
	if !slices.IsSortedFunc(all, func(a, b TimeZone) int {
		if a.StandardOffset != b.StandardOffset {
			return int((a.StandardOffset - b.StandardOffset) / time.Minute)
		}
		return strings.Compare(a.ID, b.ID)
	}) {
		t.Error("TimeZones() not sorted by offset, then id")
	}
	for _, tz := range all {
		if tz.ID == "" || len(tz.IANA) == 0 || !strings.HasPrefix(tz.DisplayName, "(UTC") {
			t.Errorf("malformed time zone %+v", tz)
		}
	}

	tests := []struct {
		id         string
		golden     string
		alsoIANA   string
		namePrefix string
	}{
		{"US Eastern Standard Time", "America/Indianapolis", "America/Indiana/Marengo", "(UTC-05:00) "},
		{"Eastern Standard Time", "America/New_York", "America/Toronto", "(UTC-05:00) "},
		{"India Standard Time", "Asia/Calcutta", "", "(UTC+05:30) "},
		{"GMT Standard Time", "Europe/London", "Europe/Dublin", "(UTC+00:00) "},
		{"Nepal Standard Time", "Asia/Katmandu", "", "(UTC+05:45) "},
		{"Newfoundland Standard Time", "America/St_Johns", "", "(UTC-03:30) "},
		{"UTC", "Etc/UTC", "", "(UTC+00:00) "},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if !IsTimeZone(tt.id) {
				t.Fatalf("IsTimeZone(%q) = false", tt.id)
			}
			tz, ok := TimeZoneByID(tt.id)
			if !ok {
				t.Fatalf("TimeZoneByID(%q) not found", tt.id)
			}
			if tz.IANA[0] != tt.golden {
				t.Errorf("IANA[0] = %q, want %q", tz.IANA[0], tt.golden)
			}
			if tt.alsoIANA != "" && !slices.Contains(tz.IANA, tt.alsoIANA) {
				t.Errorf("IANA %v lacks %q", tz.IANA, tt.alsoIANA)
			}
			if !strings.HasPrefix(tz.DisplayName, tt.namePrefix) {
				t.Errorf("DisplayName = %q, want prefix %q", tz.DisplayName, tt.namePrefix)
			}
		})
	}
	if tz, _ := TimeZoneByID("Eastern Standard Time"); tz.DisplayName != "(UTC-05:00) Eastern Time (US & Canada)" {
		t.Errorf("Eastern Standard Time display name = %q", tz.DisplayName)
	}
	for _, id := range []string{"us eastern standard time", "America/New_York", "", "Eastern"} {
		if IsTimeZone(id) {
			t.Errorf("IsTimeZone(%q) = true", id)
		}
	}
}

func TestStandardOffset(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	syd, err := time.LoadLocation("Australia/Sydney")
	if err != nil {
		t.Fatal(err)
	}
	// Evaluated in each hemisphere's summer, when "now" is in DST.
	summer := time.Date(2025, time.July, 15, 0, 0, 0, 0, time.UTC)
	winter := time.Date(2025, time.January, 15, 0, 0, 0, 0, time.UTC)
	if got := standardOffset(ny, summer); got != -5*time.Hour {
		t.Errorf("New York standard offset in July = %v, want -5h", got)
	}
	if got := standardOffset(syd, winter); got != 10*time.Hour {
		t.Errorf("Sydney standard offset in January = %v, want 10h", got)
	}
	for off, want := range map[time.Duration]string{
		-5 * time.Hour:                  "(UTC-05:00)",
		5*time.Hour + 30*time.Minute:    "(UTC+05:30)",
		0:                               "(UTC+00:00)",
		-(3*time.Hour + 30*time.Minute): "(UTC-03:30)",
	} {
		if got := formatOffset(off); got != want {
			t.Errorf("formatOffset(%v) = %q, want %q", off, got, want)
		}
	}
}

func BenchmarkFindSubdivision(b *testing.B) {
	if err := Load(); err != nil {
		b.Fatal(err)
	}
	queries := [][2]string{{"IN", "IN-KA"}, {"IN", "Karnataka"}, {"US", "California"}, {"US", "IN-KA"}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		q := queries[i%len(queries)]
		FindSubdivision(q[0], q[1])
	}
}

func TestLicenseNotices(t *testing.T) {
	n := LicenseNotices()
	for _, want := range []string{"iso-codes", "GNU LESSER GENERAL PUBLIC LICENSE", "Unicode, Inc.", "PERMISSION NOTICE"} {
		if !strings.Contains(n, want) {
			t.Errorf("LicenseNotices() lacks %q", want)
		}
	}
}
