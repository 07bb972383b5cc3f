package captcha

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newGen(t testing.TB, cfg Config) *Generator {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return g
}

func TestNewDefaults(t *testing.T) {
	got := newGen(t, Config{}).Config()
	want := Config{Length: 5, Width: 200, Height: 70, Alphabet: DefaultAlphabet, Noise: 6}
	if got != want {
		t.Fatalf("Config() = %+v, want %+v", got, want)
	}
}

func TestNewValidation(t *testing.T) {
	bad := map[string]Config{
		"negative length":      {Length: -1},
		"length too short":     {Length: 2},
		"length too long":      {Length: 17, Width: 1000},
		"height too small":     {Height: 10},
		"height too large":     {Height: 2000},
		"negative width":       {Width: -5},
		"width too large":      {Width: 5000},
		"cells too narrow":     {Width: 60},
		"negative noise":       {Noise: -1},
		"noise too high":       {Noise: MaxNoise + 1},
		"alphabet too short":   {Alphabet: "ACEFHJKLM"},
		"alphabet duplicate":   {Alphabet: "ACEFHJKLMNA"},
		"alphabet case dup":    {Alphabet: "ACEFHJKLMNa"},
		"alphabet space":       {Alphabet: "ACEFHJKLMN P"},
		"alphabet control":     {Alphabet: "ACEFHJKLMN\x01"},
		"alphabet no glyph":    {Alphabet: "ACEFHJKLMN\u4e00"},
		"alphabet bad utf8":    {Alphabet: "ACEFHJKLMN\xff"},
		"alphabet zero width":  {Alphabet: "ACEFHJKLMN\u200b"},
		"alphabet ligature ﬀ":  {Alphabet: "ACEFHJKLMN\ufb00"},
		"alphabet fullwidth A": {Alphabet: "ACEFHJKLMN\uff21"},
	}
	for name, cfg := range bad {
		t.Run(name, func(t *testing.T) {
			g, err := New(cfg)
			if err == nil {
				t.Fatalf("New(%+v) = %v, want error", cfg, g)
			}
			if !strings.HasPrefix(err.Error(), "captcha: ") {
				t.Errorf("error %q lacks package prefix", err)
			}
		})
	}

	good := []Config{
		{Length: MinLength},
		{Length: MaxLength, Width: MaxLength * 20},
		{Alphabet: "acefhjkmnprtwxy34679"},
		{Alphabet: "ÄÖÜÉÈÀÇÑÅØ"},
		{Width: 120, Height: 40, Noise: 1},
	}
	for _, cfg := range good {
		newGen(t, cfg)
	}
}

func TestDefaultAlphabetHasNoLookalikes(t *testing.T) {
	if strings.ContainsAny(DefaultAlphabet, "0Oo1lIi") {
		t.Fatalf("DefaultAlphabet %q contains one of 0Oo1lIi", DefaultAlphabet)
	}
	// The other pairs the alphabet's documentation promises to avoid.
	if strings.ContainsAny(DefaultAlphabet, "QD5S2Z8BGVuv") {
		t.Fatalf("DefaultAlphabet %q contains a documented look-alike", DefaultAlphabet)
	}
	if strings.ToUpper(DefaultAlphabet) != DefaultAlphabet {
		t.Fatalf("DefaultAlphabet %q mixes cases", DefaultAlphabet)
	}
	runes, err := alphabetRunes(DefaultAlphabet)
	if err != nil {
		t.Fatal(err)
	}
	if len(runes) < MinAlphabet {
		t.Fatalf("DefaultAlphabet has %d characters", len(runes))
	}
}

// svgInfo is what checkSVG learns from a document.
type svgInfo struct {
	bg    rgb
	fills []rgb // fill colours of filled paths (characters)
	paths int
}

// checkSVG decodes doc as XML and verifies the structural promises: one
// svg root in the SVG namespace with size attributes, only rect and path
// elements, no text content, no id or class attributes.
func checkSVG(t *testing.T, doc string, w, h int) svgInfo {
	t.Helper()
	var info svgInfo
	dec := xml.NewDecoder(strings.NewReader(doc))
	depth := 0
	sawRoot := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				switch a.Name.Local {
				case "id", "class", "title", "aria-label", "name":
					t.Fatalf("element %s has attribute %s=%q", tok.Name.Local, a.Name.Local, a.Value)
				}
				attrs[a.Name.Local] = a.Value
			}
			if tok.Name.Space != "http://www.w3.org/2000/svg" {
				t.Fatalf("element %s in namespace %q", tok.Name.Local, tok.Name.Space)
			}
			switch {
			case depth == 0:
				if sawRoot || tok.Name.Local != "svg" {
					t.Fatalf("unexpected root element %s", tok.Name.Local)
				}
				sawRoot = true
				if attrs["width"] != fmt.Sprint(w) || attrs["height"] != fmt.Sprint(h) ||
					attrs["viewBox"] != fmt.Sprintf("0 0 %d %d", w, h) {
					t.Fatalf("root attributes %v, want %dx%d", attrs, w, h)
				}
			case depth == 1 && tok.Name.Local == "rect":
				info.bg = parseRGB(t, attrs["fill"])
			case depth == 1 && tok.Name.Local == "path":
				info.paths++
				if attrs["d"] == "" {
					t.Fatal("path without d")
				}
				if f := attrs["fill"]; f != "none" {
					info.fills = append(info.fills, parseRGB(t, f))
				}
			default:
				t.Fatalf("unexpected element %s at depth %d", tok.Name.Local, depth)
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) > 0 {
				t.Fatalf("SVG contains text %q", tok)
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			t.Fatalf("SVG contains %T", tok)
		}
	}
	if !sawRoot {
		t.Fatal("no root element")
	}
	return info
}

func parseRGB(t *testing.T, s string) rgb {
	t.Helper()
	var c rgb
	if _, err := fmt.Sscanf(s, "rgb(%d,%d,%d)", &c.r, &c.g, &c.b); err != nil {
		t.Fatalf("colour %q: %v", s, err)
	}
	return c
}

func TestGenerate(t *testing.T) {
	g := newGen(t, Config{})
	const n = 200
	seen := make(map[string]bool, n)
	answers := make(map[string]bool, n)
	maxSize := 0
	for range n {
		svg, answer, err := g.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len([]rune(answer)) != DefaultLength {
			t.Fatalf("answer %q has length %d", answer, len(answer))
		}
		for _, r := range answer {
			if !strings.ContainsRune(DefaultAlphabet, r) {
				t.Fatalf("answer %q has %q outside the alphabet", answer, r)
			}
		}
		if strings.Contains(strings.ToLower(svg), strings.ToLower(answer)) {
			t.Fatalf("SVG contains the answer %q:\n%s", answer, svg)
		}
		for _, tag := range []string{"<text", "<title", "<desc", "<tspan", "<use", "<symbol", "id=", "class="} {
			if strings.Contains(svg, tag) {
				t.Fatalf("SVG contains %q", tag)
			}
		}
		info := checkSVG(t, svg, DefaultWidth, DefaultHeight)
		// One filled path per character, plus the noise curves and at
		// least the minimum number of decoys as stroked paths.
		if len(info.fills) != DefaultLength {
			t.Fatalf("%d filled paths, want %d", len(info.fills), DefaultLength)
		}
		if least := DefaultLength + DefaultNoise + minDecoys; info.paths < least {
			t.Fatalf("%d paths, want at least %d", info.paths, least)
		}
		for _, c := range info.fills {
			if r := contrast(c, info.bg); r < minContrast {
				t.Fatalf("character colour %v on %v has contrast %.2f", c, info.bg, r)
			}
		}
		// Go fonts are TrueType, so real outlines have quadratic segments.
		if !strings.Contains(svg, "Q") {
			t.Fatal("no quadratic segments: characters not drawn from font outlines")
		}
		if seen[svg] {
			t.Fatal("duplicate SVG")
		}
		seen[svg] = true
		answers[answer] = true
		maxSize = max(maxSize, len(svg))
	}
	if len(answers) < n*9/10 {
		t.Fatalf("only %d distinct answers in %d", len(answers), n)
	}
	if maxSize > 30<<10 {
		t.Fatalf("largest SVG is %d bytes", maxSize)
	}
	t.Logf("largest SVG of %d: %d bytes", n, maxSize)
}

func TestGenerateCustomConfig(t *testing.T) {
	cfg := Config{Length: 8, Width: 320, Height: 90, Noise: 12, Alphabet: "acefhjkmnprtwxy"}
	g := newGen(t, cfg)
	for range 50 {
		svg, answer, err := g.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(answer) != 8 || strings.Trim(answer, cfg.Alphabet) != "" {
			t.Fatalf("answer %q does not fit the config", answer)
		}
		if !Check(HashAnswer(answer), strings.ToUpper(answer)) {
			t.Fatalf("upper-cased answer %q rejected", answer)
		}
		info := checkSVG(t, svg, 320, 90)
		if info.paths < 8+12+minDecoys {
			t.Fatalf("%d paths", info.paths)
		}
	}
}

func TestGenerateConcurrent(t *testing.T) {
	g := newGen(t, Config{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, _, err := g.Generate(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestGenerateUninitialised(t *testing.T) {
	var nilGen *Generator
	if _, _, err := nilGen.Generate(); err == nil {
		t.Fatal("nil Generator: no error")
	}
	if _, _, err := (&Generator{}).Generate(); err == nil {
		t.Fatal("zero Generator: no error")
	}
}

func TestNormalize(t *testing.T) {
	tests := map[string]string{
		"ACE7K":             "ace7k",
		"  ace7k \n":        "ace7k",
		"a C\tE 7k":         "ace7k",
		"ＡＣＥ７Ｋ":             "ace7k", // full-width input
		"AC\u200bE7K\ufeff": "ace7k", // zero-width characters
		"\u212aelvin":       "kelvin",
		"":                  "",
	}
	for in, want := range tests {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	stored := HashAnswer("ACE7K")
	if len(stored) != 32 {
		t.Fatalf("hash length %d", len(stored))
	}
	if bytes.Contains(stored, []byte("ace7k")) || bytes.Contains(stored, []byte("ACE7K")) {
		t.Fatal("hash contains the answer")
	}
	for _, ok := range []string{"ACE7K", "ace7k", "Ace7k", " ace7k ", "ACE 7K", "ａｃｅ７ｋ"} {
		if !Check(stored, ok) {
			t.Errorf("Check(%q) = false, want true", ok)
		}
	}
	for _, bad := range []string{"ACE7", "ACE7KK", "ACE7X", "", "ACE-7K", "KE7CA"} {
		if Check(stored, bad) {
			t.Errorf("Check(%q) = true, want false", bad)
		}
	}
	if Check(nil, "") || Check([]byte{}, "ACE7K") || Check(stored[:16], "ACE7K") {
		t.Error("Check accepted a malformed stored hash")
	}
}

// TestWriteSample writes one challenge to a temporary file for manual
// inspection (go test -v shows the path); it needs no external tools.
func TestWriteSample(t *testing.T) {
	svg, answer, err := newGen(t, Config{}).Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "captcha.svg")
	if err := os.WriteFile(path, []byte(svg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("sample %s (%d bytes), answer %s", path, len(svg), answer)
}

func BenchmarkGenerate(b *testing.B) {
	g := newGen(b, Config{})
	b.ReportAllocs()
	size := 0
	for b.Loop() {
		svg, _, err := g.Generate()
		if err != nil {
			b.Fatal(err)
		}
		size += len(svg)
	}
	b.ReportMetric(float64(size)/float64(b.N), "bytes/svg")
}
