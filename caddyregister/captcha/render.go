package captcha

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"

	"golang.org/x/image/font/sfnt"
)

// Distortion ranges. Rotation and scale stay small enough that the
// characters of DefaultAlphabet cannot turn into one another.
const (
	maxRotation = 25 * math.Pi / 180 // ± radians per character
	maxScale    = 0.15               // ± fraction of the nominal size
	maxShiftX   = 0.15               // ± fraction of the cell width
	maxShiftY   = 0.8                // fraction of the free vertical room used
	minDecoys   = 2
	maxDecoys   = 4
	minContrast = 4.5 // WCAG AA between characters and background
)

// Generate returns a new challenge: an SVG document and the answer shown in
// it. All randomness comes from crypto/rand. The error is reserved for a
// Generator not made by [New]; rendering itself cannot fail.
//
// The answer is returned as displayed (in the alphabet's case); store
// [HashAnswer] of it rather than the answer itself.
func (g *Generator) Generate() (svg string, answer string, err error) {
	if g == nil || len(g.glyphs) == 0 {
		return "", "", errors.New("captcha: generator not initialised, use New")
	}
	rnd := newRand()
	n := g.cfg.Length
	picks := make([]int, n)
	ans := make([]rune, n)
	for i := range picks {
		picks[i] = rnd.IntN(len(g.runes))
		ans[i] = g.runes[picks[i]]
	}

	w, h := float64(g.cfg.Width), float64(g.cfg.Height)
	cell := cellWidth(g.cfg)
	margin := w * marginFrac
	bg := randColor(rnd, 0.2, 0.6, 0.92, 0.97)
	wv := newWarp(rnd, w, h, cell)

	// Characters and decoys are shuffled together so the document order
	// neither gives the reading order nor tells decoys from characters.
	var fg []rgb
	var shapes [][]byte
	var boxes []box
	for i, p := range picks {
		c := randContrasting(rnd, bg, minContrast, 0.45, 0.95, 0.12, 0.45)
		fg = append(fg, c)
		gl := g.glyphs[rnd.IntN(len(g.glyphs))][p]
		cx := margin + cell*(float64(i)+0.5)
		path, bb := g.glyphPath(rnd, gl, cx, w, h, cell, wv, c)
		shapes = append(shapes, path)
		boxes = append(boxes, bb)
	}
	for range minDecoys + rnd.IntN(maxDecoys-minDecoys+1) {
		shapes = append(shapes, g.decoy(rnd, w, h, boxes, fg[rnd.IntN(len(fg))]))
	}
	rnd.Shuffle(len(shapes), func(i, j int) { shapes[i], shapes[j] = shapes[j], shapes[i] })

	// Half the noise is drawn under the characters and half over them, so
	// it cannot be removed simply by keeping the topmost shapes.
	noise := make([][]byte, g.cfg.Noise)
	for i := range noise {
		c := randContrasting(rnd, bg, 2, 0.3, 0.8, 0.3, 0.65)
		if rnd.IntN(2) == 0 {
			c = fg[rnd.IntN(len(fg))] // same colours as characters: colour filtering does not separate them
		}
		noise[i] = noiseCurve(rnd, w, h, c)
	}

	b := make([]byte, 0, 12<<10)
	b = append(b, `<svg xmlns="http://www.w3.org/2000/svg" width="`...)
	b = strconv.AppendInt(b, int64(g.cfg.Width), 10)
	b = append(b, `" height="`...)
	b = strconv.AppendInt(b, int64(g.cfg.Height), 10)
	b = append(b, `" viewBox="0 0 `...)
	b = strconv.AppendInt(b, int64(g.cfg.Width), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(g.cfg.Height), 10)
	b = append(b, `"><rect width="100%" height="100%" fill="`...)
	b = bg.append(b)
	b = append(b, `"/>`...)
	half := len(noise) / 2
	for _, e := range noise[:half] {
		b = append(b, e...)
	}
	for _, e := range shapes {
		b = append(b, e...)
	}
	for _, e := range noise[half:] {
		b = append(b, e...)
	}
	b = append(b, "</svg>"...)
	return string(b), string(ans), nil
}

// box is an axis-aligned rectangle in image coordinates.
type box struct{ minX, minY, maxX, maxY float64 }

func (b box) contains(p point) bool {
	return p.x >= b.minX && p.x <= b.maxX && p.y >= b.minY && p.y <= b.maxY
}

// glyphPath renders one character as a filled path: random scale and
// rotation about its centre, random offset within its cell (kept inside the
// image), then the global warp, all computed into the coordinates. It also
// returns the character's bounding box (before the warp, which moves points
// by a few px only).
func (g *Generator) glyphPath(rnd *rand.Rand, gl glyph, cx, w, h, cell float64, wv warp, c rgb) ([]byte, box) {
	s := g.em * uniform(rnd, 1-maxScale, 1+maxScale)
	sin, cos := math.Sincos(uniform(rnd, -maxRotation, maxRotation))
	tr := func(p point) point {
		x, y := p.x*s, p.y*s
		return point{x*cos - y*sin, x*sin + y*cos}
	}

	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, sg := range gl.segs {
		for _, p := range sg.pts[:numPoints(sg.op)] {
			q := tr(p)
			minX, maxX = math.Min(minX, q.x), math.Max(maxX, q.x)
			minY, maxY = math.Min(minY, q.y), math.Max(maxY, q.y)
		}
	}
	// Keep the warped outline inside the image: pad by the warp amplitude
	// plus a pixel.
	padX, padY := wv.ax+1, wv.ay+1
	cx += uniform(rnd, -maxShiftX, maxShiftX) * cell
	cx = clamp(cx, padX-minX, w-padX-maxX)
	lo, hi := padY-minY, h-padY-maxY
	cy := h / 2
	if lo < hi {
		cy = (lo+hi)/2 + uniform(rnd, -0.5, 0.5)*maxShiftY*(hi-lo)
	}

	b := append([]byte(nil), `<path d="`...)
	var last sfnt.SegmentOp = 255
	first := true
	for _, sg := range gl.segs {
		if sg.op == sfnt.SegmentOpMoveTo {
			if !first {
				b = append(b, 'Z')
			}
			first = false
		}
		// SVG repeats the previous command for further argument sets (and
		// turns M into L), so the letter is only written when it changes.
		if sg.op != last {
			b = append(b, "MLQC"[sg.op])
		} else {
			b = append(b, ' ')
		}
		last = sg.op
		if last == sfnt.SegmentOpMoveTo {
			last = sfnt.SegmentOpLineTo
		}
		for k, p := range sg.pts[:numPoints(sg.op)] {
			q := tr(p)
			q = wv.apply(point{q.x + cx, q.y + cy})
			if k > 0 {
				b = append(b, ' ')
			}
			b = appendPoint(b, q)
		}
	}
	b = append(b, `Z" fill="`...)
	b = c.append(b)
	return append(b, `"/>`...), box{minX + cx, minY + cy, maxX + cx, maxY + cy}
}

// decoy is a short curved stroke in a character colour and nearly the
// weight of a glyph stem, to confuse segmentation by a bot. It is kept out
// of the core of every character's box: a stroke across the middle of a
// letter can change what a human reads (F plus a bar is E, C plus a hook
// is G), whereas one in a gap or at a letter's edge reads as clutter.
func (g *Generator) decoy(rnd *rand.Rand, w, h float64, boxes []box, c rgb) []byte {
	cores := make([]box, len(boxes))
	for i, bb := range boxes {
		dx, dy := 0.12*(bb.maxX-bb.minX), 0.12*(bb.maxY-bb.minY)
		cores[i] = box{bb.minX + dx, bb.minY + dy, bb.maxX - dx, bb.maxY - dy}
	}
	var p0, p1, p2 point
	for range 24 { // if no free spot turns up, the last try is used
		p0 = point{uniform(rnd, 0.02, 0.98) * w, uniform(rnd, 0.1, 0.9) * h}
		l := uniform(rnd, 0.25, 0.45) * g.em
		sin, cos := math.Sincos(uniform(rnd, 0, 2*math.Pi))
		p2 = point{p0.x + l*cos, p0.y + l*sin}
		bend := uniform(rnd, -0.4, 0.4) * l
		p1 = point{(p0.x+p2.x)/2 - bend*sin, (p0.y+p2.y)/2 + bend*cos}
		if !hitsAny(cores, p0, p1, p2) {
			break
		}
	}
	b := append([]byte(nil), `<path d="M`...)
	b = appendPoint(b, p0)
	b = append(b, 'Q')
	b = appendPoint(b, p1)
	b = append(b, ' ')
	b = appendPoint(b, p2)
	return strokeAttrs(b, c, uniform(rnd, 0.04, 0.07)*g.em)
}

// hitsAny reports whether the quadratic curve p0-p1-p2, sampled at a few
// points, enters any of the boxes.
func hitsAny(boxes []box, p0, p1, p2 point) bool {
	for i := range 9 {
		t := float64(i) / 8
		a, b, c := (1-t)*(1-t), 2*(1-t)*t, t*t
		p := point{a*p0.x + b*p1.x + c*p2.x, a*p0.y + b*p1.y + c*p2.y}
		for _, bb := range boxes {
			if bb.contains(p) {
				return true
			}
		}
	}
	return false
}

// noiseCurve is a cubic Bézier from near the left edge to near the right
// edge, wandering vertically, so every character is likely crossed by some.
func noiseCurve(rnd *rand.Rand, w, h float64, c rgb) []byte {
	pts := [4]point{
		{uniform(rnd, 0, 0.15) * w, uniform(rnd, 0.1, 0.9) * h},
		{uniform(rnd, 0.2, 0.5) * w, uniform(rnd, -0.3, 1.3) * h},
		{uniform(rnd, 0.5, 0.8) * w, uniform(rnd, -0.3, 1.3) * h},
		{uniform(rnd, 0.85, 1) * w, uniform(rnd, 0.1, 0.9) * h},
	}
	b := append([]byte(nil), `<path d="M`...)
	b = appendPoint(b, pts[0])
	b = append(b, 'C')
	for i, p := range pts[1:] {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendPoint(b, p)
	}
	return strokeAttrs(b, c, uniform(rnd, 1, 2.2))
}

func strokeAttrs(b []byte, c rgb, width float64) []byte {
	b = append(b, `" fill="none" stroke="`...)
	b = c.append(b)
	b = append(b, `" stroke-width="`...)
	b = appendNum(b, width)
	return append(b, `" stroke-linecap="round"/>`...)
}

// warp is a gentle sine displacement applied to every character point. It
// bends the straight strokes of the font outlines, so the path data no
// longer matches the font's outlines under any affine transform.
type warp struct {
	ax, ky, py float64 // horizontal displacement as a function of y
	ay, kx, px float64 // vertical displacement as a function of x
}

func newWarp(rnd *rand.Rand, w, h, cell float64) warp {
	return warp{
		ax: uniform(rnd, 0.02, 0.05) * cell,
		ky: 2 * math.Pi / (h * uniform(rnd, 0.8, 1.6)),
		py: uniform(rnd, 0, 2*math.Pi),
		ay: uniform(rnd, 0.03, 0.06) * h,
		kx: 2 * math.Pi / (w * uniform(rnd, 0.35, 0.8)),
		px: uniform(rnd, 0, 2*math.Pi),
	}
}

func (wv warp) apply(p point) point {
	return point{
		x: p.x + wv.ax*math.Sin(wv.ky*p.y+wv.py),
		y: p.y + wv.ay*math.Sin(wv.kx*p.x+wv.px),
	}
}

func numPoints(op sfnt.SegmentOp) int {
	switch op {
	case sfnt.SegmentOpQuadTo:
		return 2
	case sfnt.SegmentOpCubeTo:
		return 3
	}
	return 1
}

func uniform(rnd *rand.Rand, lo, hi float64) float64 {
	return lo + rnd.Float64()*(hi-lo)
}

func clamp(v, lo, hi float64) float64 {
	if lo > hi {
		// The shape is wider than the room; centre it in the image span.
		return (lo + hi) / 2
	}
	return math.Min(math.Max(v, lo), hi)
}

func appendPoint(b []byte, p point) []byte {
	b = appendNum(b, p.x)
	b = append(b, ' ')
	return appendNum(b, p.y)
}

// appendNum writes v rounded to 0.1 px, which is invisible at any sane zoom
// and keeps the document small.
func appendNum(b []byte, v float64) []byte {
	v = math.Round(v*10)/10 + 0 // + 0 turns -0 into 0
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

// rgb is an sRGB colour. It is written as rgb(r,g,b) rather than #rrggbb
// so no run of hex digits in the document can spell out an answer.
type rgb struct{ r, g, b uint8 }

func (c rgb) append(b []byte) []byte {
	b = append(b, "rgb("...)
	b = strconv.AppendUint(b, uint64(c.r), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(c.g), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(c.b), 10)
	return append(b, ')')
}

// randColor picks a random hue with saturation and lightness in the given
// ranges.
func randColor(rnd *rand.Rand, sLo, sHi, lLo, lHi float64) rgb {
	return hsl(uniform(rnd, 0, 1), uniform(rnd, sLo, sHi), uniform(rnd, lLo, lHi))
}

// randContrasting picks random colours until one has at least the given
// contrast ratio against bg; HSL lightness alone is not enough because
// yellows and greens are far brighter than blues at the same lightness.
func randContrasting(rnd *rand.Rand, bg rgb, minRatio, sLo, sHi, lLo, lHi float64) rgb {
	for range 32 {
		c := randColor(rnd, sLo, sHi, lLo, lHi)
		if contrast(c, bg) >= minRatio {
			return c
		}
	}
	return rgb{40, 40, 40} // practically unreachable with the ranges used
}

// hsl converts hue, saturation and lightness, all in [0, 1], to sRGB.
func hsl(h, s, l float64) rgb {
	q := l + s - l*s
	if l < 0.5 {
		q = l * (1 + s)
	}
	p := 2*l - q
	conv := func(t float64) uint8 {
		t -= math.Floor(t)
		var v float64
		switch {
		case t < 1.0/6:
			v = p + (q-p)*6*t
		case t < 0.5:
			v = q
		case t < 2.0/3:
			v = p + (q-p)*(2.0/3-t)*6
		default:
			v = p
		}
		return uint8(math.Round(clamp(v, 0, 1) * 255))
	}
	return rgb{conv(h + 1.0/3), conv(h), conv(h - 1.0/3)}
}

// luminance is the WCAG relative luminance of c.
func luminance(c rgb) float64 {
	lin := func(u uint8) float64 {
		v := float64(u) / 255
		if v <= 0.04045 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c.r) + 0.7152*lin(c.g) + 0.0722*lin(c.b)
}

// contrast is the WCAG contrast ratio between a and b, from 1 to 21.
func contrast(a, b rgb) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}
