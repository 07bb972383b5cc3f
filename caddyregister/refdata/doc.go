// Package refdata provides real, upstream-maintained reference data for
// registration contracts: countries (ISO 3166-1), their subdivisions
// (ISO 3166-2), currencies (ISO 4217), country calling codes and mobile
// number validation (libphonenumber), languages (CLDR via x/text) and
// Windows time zones (CLDR windowsZones.xml).
//
// Contracts must not carry hand-typed tables of countries or states: such
// tables drift from reality and disagree with each other. Everything here
// is either embedded verbatim from a Debian-packaged upstream data set (see
// data/README for sources, licences and how to refresh) or comes from a Go
// module that tracks its own upstream.
//
// The package does no I/O beyond reading its embedded files and Go's time
// zone database (time/tzdata is embedded, so it also works on machines
// without /usr/share/zoneinfo). Each data set is decoded lazily, once, on
// first use, so importing the package costs nothing and a caller that only
// validates currencies never decompresses subdivisions. All functions are
// safe for concurrent use, and returned slices are copies the caller may
// modify.
//
// The embedded data is fixed at build time, so failing to decode it is a
// build defect, not a run-time condition: lookups panic if it happens. Call
// [Load] while provisioning to surface such a defect as an error instead.
package refdata
