// Package captcha makes self-hosted CAPTCHA challenges rendered as SVG
// images, so registration forms can resist simple bots without sending
// visitors' data to a third-party service.
//
// Characters are drawn as filled outlines taken from the embedded Go fonts
// and transformed numerically (rotation, scale, offset and a gentle wave
// warp) straight into the path data, then mixed with noise curves and decoy
// strokes. The SVG never contains the answer as text: no <text> element, no
// title, no ids or class names.
//
// The package is deliberately storage-free: [Generator.Generate] hands back
// the image and its answer, the caller stores [HashAnswer] of the answer next
// to its challenge id, and later verifies the user's reply with [Check].
//
// A vector CAPTCHA is easier for a determined, targeted bot to parse than a
// raster one, because the glyph outlines are there in machine-readable form;
// the per-glyph distortion and the global warp raise the bar for template
// matching against the public Go fonts, but this is a speed bump against
// generic spam bots, not a defence against an adversary who targets this
// site specifically. Pair it with rate limiting.
package captcha

import (
	"errors"
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"

	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goitalic"
	"golang.org/x/image/font/gofont/gomedium"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
)

// DefaultAlphabet is the set of characters challenges are drawn from
// (22 characters, so a 5-character answer has about 5.2 million values).
// It is upper case only: answers are compared case-insensitively anyway,
// and one case keeps the shapes the user sees unambiguous. Characters that
// are easy to confuse once rotated and warped are left out: 0/O/Q/D, 1/I,
// 2/Z, 5/S, 8/B, G (too close to 6 and C) and V (too close to U and Y);
// lower case is left out altogether (o, l, i and friends).
const DefaultAlphabet = "ACEFHJKLMNPRTUWXY34679"

// Defaults applied by [New] to zero-valued [Config] fields.
const (
	DefaultLength = 5
	DefaultWidth  = 200
	DefaultHeight = 70
	DefaultNoise  = 6
)

// Limits enforced by [New]. They keep the guessing odds meaningful at the
// low end and the SVG size (and generation time) bounded at the high end.
const (
	MinLength   = 3
	MaxLength   = 16
	MinHeight   = 24
	MaxHeight   = 1000
	MaxWidth    = 3000
	MaxNoise    = 50
	MinAlphabet = 10
	// MinCellWidth is the narrowest horizontal space per character, in px;
	// below it characters overlap so much they stop being legible.
	MinCellWidth = 14
)

// Config describes the challenges a [Generator] produces. Zero fields take
// the defaults.
type Config struct {
	// Length is the number of characters per challenge; default 5.
	Length int
	// Width is the image width in px; default 200.
	Width int
	// Height is the image height in px; default 70.
	Height int
	// Alphabet lists the characters challenges use; default
	// [DefaultAlphabet]. It must hold at least [MinAlphabet] characters
	// that are distinct after [Normalize] (so "a" and "A" count once and
	// are rejected as a duplicate) and that every embedded font can draw.
	Alphabet string
	// Noise is the number of random curves crossing the image; default 6.
	// It cannot be switched off: an image without any noise is trivially
	// read by off-the-shelf OCR.
	Noise int
}

// Generator renders challenges. It holds the glyph outlines of every
// alphabet character in every embedded font, extracted once by [New], so
// Generate never touches the font parser. A Generator is immutable and safe
// for concurrent use.
type Generator struct {
	cfg   Config
	runes []rune
	// glyphs[f][i] is the outline of runes[i] in font f.
	glyphs [][]glyph
	// em is the nominal font size in px before the per-character scale.
	em float64
}

// glyph is one character outline in em units, Y down, translated so its
// bounding box is centred on the origin; rotating about the origin then
// spins the character in place.
type glyph struct {
	segs []segment
}

// segment mirrors sfnt.Segment in float64 em units.
type segment struct {
	op  sfnt.SegmentOp
	pts [3]point
}

type point struct{ x, y float64 }

// fontSources are the embedded TrueType fonts characters are picked from.
// Mixing families and weights means a bot cannot learn one outline per
// character; italic adds a slant on top of the random rotation.
var fontSources = [][]byte{
	goregular.TTF,
	gomedium.TTF,
	gobold.TTF,
	goitalic.TTF,
	gomono.TTF,
	gomonobold.TTF,
}

// New validates cfg, applies defaults and extracts the glyph outlines.
func New(cfg Config) (*Generator, error) {
	if err := applyDefaults(&cfg); err != nil {
		return nil, err
	}
	runes, err := alphabetRunes(cfg.Alphabet)
	if err != nil {
		return nil, err
	}
	g := &Generator{cfg: cfg, runes: runes}
	var maxH, sumW float64
	for _, src := range fontSources {
		f, err := sfnt.Parse(src)
		if err != nil {
			return nil, fmt.Errorf("captcha: parse embedded font: %w", err)
		}
		glyphs, err := loadGlyphs(f, runes)
		if err != nil {
			return nil, err
		}
		for _, gl := range glyphs {
			w, h := gl.size()
			maxH = math.Max(maxH, h)
			sumW += w
		}
		g.glyphs = append(g.glyphs, glyphs)
	}
	avgW := sumW / float64(len(fontSources)*len(runes))
	cell := cellWidth(cfg)
	// Size the font so the tallest glyph fills ~60% of the height (leaving
	// room to bob up and down and rotate) and an average glyph ~85% of its
	// cell; wide glyphs like W may then touch their neighbours, which
	// costs a human nothing and makes segmentation harder for a bot.
	g.em = math.Min(0.6*float64(cfg.Height)/maxH, 0.85*cell/avgW)
	return g, nil
}

// Config returns the effective configuration, defaults applied.
func (g *Generator) Config() Config { return g.cfg }

func applyDefaults(cfg *Config) error {
	if cfg.Length == 0 {
		cfg.Length = DefaultLength
	}
	if cfg.Width == 0 {
		cfg.Width = DefaultWidth
	}
	if cfg.Height == 0 {
		cfg.Height = DefaultHeight
	}
	if cfg.Noise == 0 {
		cfg.Noise = DefaultNoise
	}
	if cfg.Alphabet == "" {
		cfg.Alphabet = DefaultAlphabet
	}
	switch {
	case cfg.Length < MinLength || cfg.Length > MaxLength:
		return fmt.Errorf("captcha: length %d outside %d..%d", cfg.Length, MinLength, MaxLength)
	case cfg.Height < MinHeight || cfg.Height > MaxHeight:
		return fmt.Errorf("captcha: height %d outside %d..%d", cfg.Height, MinHeight, MaxHeight)
	case cfg.Width < 1 || cfg.Width > MaxWidth:
		return fmt.Errorf("captcha: width %d outside 1..%d", cfg.Width, MaxWidth)
	case cellWidth(*cfg) < MinCellWidth:
		return fmt.Errorf("captcha: width %d too narrow for %d characters (need %d px each)",
			cfg.Width, cfg.Length, MinCellWidth)
	case cfg.Noise < 0 || cfg.Noise > MaxNoise:
		return fmt.Errorf("captcha: noise %d outside 1..%d", cfg.Noise, MaxNoise)
	}
	return nil
}

// marginFrac is the share of the width kept free on each side so rotated
// edge characters are not clipped.
const marginFrac = 0.04

func cellWidth(cfg Config) float64 {
	return float64(cfg.Width) * (1 - 2*marginFrac) / float64(cfg.Length)
}

// alphabetRunes checks the alphabet's characters are usable and distinct
// after normalisation; duplicates would silently skew the odds and
// case-variants would be indistinguishable to the checker.
func alphabetRunes(alphabet string) ([]rune, error) {
	if !utf8.ValidString(alphabet) {
		return nil, errors.New("captcha: alphabet is not valid UTF-8")
	}
	seen := make(map[string]rune)
	var runes []rune
	for _, r := range alphabet {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return nil, fmt.Errorf("captcha: alphabet character %q is not drawable", r)
		}
		n := Normalize(string(r))
		if utf8.RuneCountInString(n) != 1 {
			return nil, fmt.Errorf("captcha: alphabet character %q does not normalise to a single character", r)
		}
		if prev, ok := seen[n]; ok {
			return nil, fmt.Errorf("captcha: alphabet characters %q and %q are the same answer", prev, r)
		}
		seen[n] = r
		runes = append(runes, r)
	}
	if len(runes) < MinAlphabet {
		return nil, fmt.Errorf("captcha: alphabet has %d distinct characters, need at least %d", len(runes), MinAlphabet)
	}
	return runes, nil
}

// loadGlyphs extracts the outline of every rune from f.
func loadGlyphs(f *sfnt.Font, runes []rune) ([]glyph, error) {
	var buf sfnt.Buffer
	upem := int(f.UnitsPerEm())
	// Loading at ppem = unitsPerEm gives unscaled font units in 26.6
	// fixed point; dividing by 64*upem then yields em units.
	ppem := fixed.I(upem)
	scale := 1 / float64(64*upem)
	out := make([]glyph, len(runes))
	for i, r := range runes {
		idx, err := f.GlyphIndex(&buf, r)
		if err != nil {
			return nil, fmt.Errorf("captcha: look up glyph %q: %w", r, err)
		}
		if idx == 0 {
			return nil, fmt.Errorf("captcha: embedded font has no glyph for %q", r)
		}
		segs, err := f.LoadGlyph(&buf, idx, ppem, nil)
		if err != nil {
			return nil, fmt.Errorf("captcha: load glyph %q: %w", r, err)
		}
		if len(segs) == 0 {
			return nil, fmt.Errorf("captcha: glyph for %q has no outline", r)
		}
		b := segs.Bounds()
		cx := float64(b.Min.X+b.Max.X) / 2
		cy := float64(b.Min.Y+b.Max.Y) / 2
		gs := make([]segment, len(segs))
		for j, s := range segs {
			gs[j].op = s.Op
			for k := range s.Args {
				gs[j].pts[k] = point{
					x: (float64(s.Args[k].X) - cx) * scale,
					y: (float64(s.Args[k].Y) - cy) * scale,
				}
			}
		}
		out[i] = glyph{segs: gs}
	}
	return out, nil
}

// size is the glyph's bounding box in em units (control points included,
// which is conservative and all layout needs).
func (gl glyph) size() (w, h float64) {
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, s := range gl.segs {
		for _, p := range s.pts[:numPoints(s.op)] {
			minX, maxX = math.Min(minX, p.x), math.Max(maxX, p.x)
			minY, maxY = math.Min(minY, p.y), math.Max(maxY, p.y)
		}
	}
	return maxX - minX, maxY - minY
}
