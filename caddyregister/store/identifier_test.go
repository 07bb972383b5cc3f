package store_test

import (
	"testing"
	"unicode/utf8"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// TestIdentifierKey pins which spellings are one identifier: compatibility
// variants (full-width letters, ligatures) and case variants under full
// folding (ß is ss) collide; ASCII keys are their lowercase, as before.
func TestIdentifierKey(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"ｕｓｅｒ@example.com", "user@example.com"},
		{"ＵＳＥＲ@EXAMPLE.COM", "user@example.com"},
		{"straße", "strasse"},
		{"STRASSE", "straße"},
		{"ﬁnn", "finn"},
		{"ΣΑΣ", "σας"},
		{" Jane@Example.com ", "jane@example.com"},
	} {
		if ka, kb := store.LoginKey(tc.a), store.LoginKey(tc.b); ka != kb {
			t.Errorf("LoginKey(%q) = %q, LoginKey(%q) = %q: want one key", tc.a, ka, tc.b, kb)
		}
		if ka, kb := store.EmailKey(tc.a), store.EmailKey(tc.b); ka != kb {
			t.Errorf("EmailKey(%q) = %q, EmailKey(%q) = %q: want one key", tc.a, ka, tc.b, kb)
		}
	}
	if k := store.LoginKey("straße"); k != "strasse" {
		t.Errorf("LoginKey(straße) = %q, want strasse (full folding)", k)
	}
	for _, s := range []string{"Jane.Doe+x@Example.COM", "ABC_def-09"} {
		if k, want := store.EmailKey(s), asciiLower(s); k != want {
			t.Errorf("EmailKey(%q) = %q, want %q (ASCII keys unchanged)", s, k, want)
		}
	}
	// Distinct identifiers stay distinct.
	if store.LoginKey("user1") == store.LoginKey("user2") || store.EmailKey("a+x@example.com") == store.EmailKey("a@example.com") {
		t.Error("distinct identifiers share a key")
	}
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzIdentifierKey: the key of a key is itself, so a key stored once is
// found again whatever path normalises it a second time.
func FuzzIdentifierKey(f *testing.F) {
	for _, s := range []string{
		"user@example.com", "ｕｓｅｒ@example.com", "straße", "ẞ", "İstanbul", "ǅemal",
		"ΣΑΣ", "ﬀ", "\u0345", "ᾳ", "ϐ", "ﬅ", "\u1e9b\u0323", "Å", "㎒", "①", "ｶﾞ", "\u0390", "ΐ", "\uab70",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		k := store.IdentifierKey(s)
		if k2 := store.IdentifierKey(k); k2 != k {
			t.Fatalf("IdentifierKey(%q) = %q, but IdentifierKey of that = %q", s, k, k2)
		}
	})
}

func TestInvisible(t *testing.T) {
	for _, s := range []string{"us\u200ber", "\u202Eevil", "a\u200db", "soft\u00adhyphen", "\ufeffbom", "a\u2066b", "a\u200eb", "a\u061cb",
		// Drawn as nothing though not format characters: variation
		// selectors, the combining grapheme joiner, Hangul fillers, the
		// Mongolian free variation selector, the blank braille pattern.
		"admin\ufe0f", "admin\u034f", "admin\u3164", "ad\u115fmin", "admin\u180b", "admin\u2800", "a\U000E0100b"} {
		if _, ok := store.Invisible(s); !ok {
			t.Errorf("Invisible(%q) found nothing", s)
		}
	}
	for _, s := range []string{"user", "José Müller", "山田", "ｕｓｅｒ"} {
		if r, ok := store.Invisible(s); ok {
			t.Errorf("Invisible(%q) = U+%04X", s, r)
		}
	}
}
