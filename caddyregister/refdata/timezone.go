package refdata

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	// Embed Go's copy of the IANA time zone database so that offsets can
	// be computed on hosts (minimal containers, Windows) that have no
	// zoneinfo of their own. Costs about 450 KB of binary.
	_ "time/tzdata"
)

// TimeZone is a Windows time zone, the identifiers .NET and Windows-based
// systems exchange, mapped to IANA zones by CLDR's windowsZones.xml.
type TimeZone struct {
	// ID is the Windows time zone id, e.g. "US Eastern Standard Time".
	ID string
	// DisplayName is "(UTC±hh:mm) <label>", e.g.
	// "(UTC-05:00) Indiana (East)". The offset is the zone's current
	// standard (non-DST) offset computed from IANA data, so it stays right
	// when governments change offsets. The label is the Windows display
	// label that CLDR records in a comment above each zone's mappings; if
	// a zone has none, the ID without " Standard Time" is used instead.
	DisplayName string
	// IANA lists the IANA zones CLDR maps this Windows zone to: the
	// territory "001" (golden) zone first, then the others in file order,
	// without duplicates. IANA[0] is the zone to use for conversions.
	IANA []string
	// StandardOffset is IANA[0]'s current standard offset from UTC.
	StandardOffset time.Duration
}

// timeZoneData is the decoded windowsZones.xml.
type timeZoneData struct {
	list []TimeZone // sorted by StandardOffset, then ID
	byID map[string]TimeZone
}

var (
	timeZonesOnce sync.Once
	timeZones     timeZoneData
	timeZonesErr  error
)

// loadTimeZones decodes windowsZones.xml and computes offsets once.
func loadTimeZones() error {
	timeZonesOnce.Do(func() {
		timeZones, timeZonesErr = decodeTimeZones(time.Now())
	})
	return timeZonesErr
}

// decodeTimeZones parses the embedded CLDR windowsZones.xml. Offsets are
// evaluated at now.
func decodeTimeZones(now time.Time) (timeZoneData, error) {
	raw, err := readData("windowsZones.xml")
	if err != nil {
		return timeZoneData{}, err
	}
	type zone struct {
		label  string
		golden string
		others []string
	}
	zones := map[string]*zone{}
	var order []string
	var lastComment string
	dec := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return timeZoneData{}, fmt.Errorf("decode windowsZones.xml: %w", err)
		}
		switch t := tok.(type) {
		case xml.Comment:
			lastComment = strings.TrimSpace(string(t))
		case xml.StartElement:
			if t.Name.Local != "mapZone" {
				continue
			}
			var id, territory, types string
			for _, a := range t.Attr {
				switch a.Name.Local {
				case "other":
					id = a.Value
				case "territory":
					territory = a.Value
				case "type":
					types = a.Value
				}
			}
			if id == "" || territory == "" || types == "" {
				return timeZoneData{}, fmt.Errorf("decode windowsZones.xml: incomplete mapZone %q", id)
			}
			z, ok := zones[id]
			if !ok {
				// Each zone's block is preceded by a comment holding its
				// Windows display name, e.g. "(UTC-05:00) Indiana (East)".
				z = &zone{label: windowsLabel(lastComment)}
				zones[id] = z
				order = append(order, id)
			}
			// type may list several space-separated IANA zones.
			names := strings.Fields(types)
			if territory == "001" {
				z.golden = names[0]
			}
			z.others = append(z.others, names...)
		}
	}
	if len(zones) == 0 {
		return timeZoneData{}, fmt.Errorf("decode windowsZones.xml: no zones")
	}
	d := timeZoneData{byID: make(map[string]TimeZone, len(zones))}
	for _, id := range order {
		z := zones[id]
		if z.golden == "" {
			return timeZoneData{}, fmt.Errorf("decode windowsZones.xml: %s has no territory 001 zone", id)
		}
		iana := []string{z.golden}
		for _, n := range z.others {
			if !slices.Contains(iana, n) {
				iana = append(iana, n)
			}
		}
		loc, err := time.LoadLocation(z.golden)
		if err != nil {
			return timeZoneData{}, fmt.Errorf("decode windowsZones.xml: %s: %w", id, err)
		}
		off := standardOffset(loc, now)
		label := z.label
		if label == "" {
			label = strings.TrimSuffix(id, " Standard Time")
		}
		tz := TimeZone{ID: id, DisplayName: formatOffset(off) + " " + label, IANA: iana, StandardOffset: off}
		d.list = append(d.list, tz)
		d.byID[id] = tz
	}
	slices.SortFunc(d.list, func(a, b TimeZone) int {
		return cmp.Or(cmp.Compare(a.StandardOffset, b.StandardOffset), strings.Compare(a.ID, b.ID))
	})
	return d, nil
}

// windowsLabel extracts the label from a CLDR comment such as
// "(UTC-05:00) Indiana (East)". The comment's offset is discarded because
// it is a snapshot from when CLDR was published; it returns "" when the
// comment is not in that form.
func windowsLabel(comment string) string {
	if !strings.HasPrefix(comment, "(UTC") {
		return ""
	}
	_, label, ok := strings.Cut(comment, ") ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(label)
}

// standardOffset returns loc's standard (non-DST) UTC offset in effect
// around now. Go exposes no standard offset directly, so it samples now,
// then 1 January and 1 July of the same year (one of which is winter in
// either hemisphere), and takes the first sample not in DST. Sampling now
// first means a zone that changed its standard offset this year reports
// the new one. A zone in DST at all three (not seen in practice) falls
// back to its offset now.
func standardOffset(loc *time.Location, now time.Time) time.Duration {
	now = now.In(loc)
	samples := []time.Time{
		now,
		time.Date(now.Year(), time.January, 1, 12, 0, 0, 0, loc),
		time.Date(now.Year(), time.July, 1, 12, 0, 0, 0, loc),
	}
	for _, t := range samples {
		if !t.IsDST() {
			_, off := t.Zone()
			return time.Duration(off) * time.Second
		}
	}
	_, off := now.Zone()
	return time.Duration(off) * time.Second
}

// formatOffset renders an offset the way Windows display names do:
// "(UTC+05:30)", "(UTC-05:00)", "(UTC+00:00)".
func formatOffset(off time.Duration) string {
	sign := '+'
	if off < 0 {
		sign = '-'
		off = -off
	}
	mins := int(off / time.Minute)
	return fmt.Sprintf("(UTC%c%02d:%02d)", sign, mins/60, mins%60)
}

// TimeZones returns every Windows time zone known to CLDR, sorted by
// standard offset, then ID.
func TimeZones() []TimeZone {
	must(loadTimeZones())
	out := slices.Clone(timeZones.list)
	for i := range out {
		out[i].IANA = slices.Clone(out[i].IANA)
	}
	return out
}

// TimeZoneByID looks up a Windows time zone by its exact id.
func TimeZoneByID(id string) (TimeZone, bool) {
	must(loadTimeZones())
	tz, ok := timeZones.byID[id]
	if ok {
		tz.IANA = slices.Clone(tz.IANA)
	}
	return tz, ok
}

// IsTimeZone reports whether id is exactly (case-sensitively) a Windows
// time zone id, e.g. "India Standard Time". Exact matching keeps stored
// ids byte-identical to what Windows and .NET produce and look up.
func IsTimeZone(id string) bool {
	must(loadTimeZones())
	_, ok := timeZones.byID[id]
	return ok
}
