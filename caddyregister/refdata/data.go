package refdata

import (
	"bytes"
	"compress/gzip"
	"embed"
	"errors"
	"fmt"
	"io"
	"strings"
)

// dataFS holds the upstream files verbatim (or gzipped) so that refreshing
// them is a copy, never an edit; see data/README.
//
//go:embed data/iso_3166-1.json data/iso_3166-2.json.gz data/iso_4217.json data/windowsZones.xml
var dataFS embed.FS

// licenseFS carries the upstream licence notices inside the binary: the
// Unicode licence asks that its notice appear with all copies of the data,
// and a binary embedding the files is such a copy.
//
//go:embed data/LICENSE-iso-codes data/LICENSE-cldr
var licenseFS embed.FS

// LicenseNotices returns the copyright and licence notices of the embedded
// data (iso-codes, LGPL-2.1-or-later; Unicode CLDR, Unicode-DFS-2016), for
// a program's "licences" or "about" output.
func LicenseNotices() string {
	var b strings.Builder
	for _, name := range []string{"LICENSE-iso-codes", "LICENSE-cldr"} {
		text, err := licenseFS.ReadFile("data/" + name)
		if err != nil {
			panic("refdata: read embedded " + name + ": " + err.Error())
		}
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.Write(text)
	}
	return b.String()
}

// readData returns the contents of an embedded data file, transparently
// gunzipping files whose name ends in ".gz".
func readData(name string) ([]byte, error) {
	raw, err := dataFS.ReadFile("data/" + name)
	if err != nil {
		return nil, fmt.Errorf("read embedded %s: %w", name, err)
	}
	if !strings.HasSuffix(name, ".gz") {
		return raw, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("gunzip embedded %s: %w", name, err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("gunzip embedded %s: %w", name, err)
	}
	return out, nil
}

// must turns a data-set load error into a panic. The embedded data cannot
// change at run time, so an error here means the binary was built from a
// broken refresh; the tests and [Load] catch that before it ships.
func must(err error) {
	if err != nil {
		panic("refdata: " + err.Error())
	}
}

// Load decodes every embedded data set and reports the first failure. It
// is optional: lookups load what they need on first use. Calling it while
// provisioning turns a corrupt build into a clean start-up error rather
// than a panic inside a request, and moves the one-off decoding cost
// (a few milliseconds) out of the first request.
func Load() error {
	return errors.Join(
		loadCountries(),
		loadSubdivisions(),
		loadCurrencies(),
		loadLanguages(),
		loadTimeZones(),
	)
}

// asciiUpper upper-cases ASCII letters only. strings.ToUpper would also
// map non-ASCII look-alikes (e.g. "ı" to "I"), letting them match codes.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// asciiLower lower-cases ASCII letters only; see asciiUpper.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
