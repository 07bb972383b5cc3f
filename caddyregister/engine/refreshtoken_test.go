package engine

import (
	"strings"
	"testing"
)

// FuzzParseRefreshToken: no input panics, and what parses is exactly a
// 24-hex user id, a 128-bit sid and a 256-bit secret, in base64url.
func FuzzParseRefreshToken(f *testing.F) {
	tok, _, err := newRefreshToken("0123456789abcdef01234567", strings.Repeat("A", 22))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{tok, "", ".", "..", "a.b.c", tok + ".", "." + tok, strings.ToUpper(tok)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		uid, sid, ok := parseRefreshToken(s)
		if !ok {
			return
		}
		if len(uid) != 24 || len(sid) != 22 || len(s) != 24+1+22+1+43 || !strings.HasPrefix(s, uid+"."+sid+".") {
			t.Fatalf("parsed %q as %q, %q", s, uid, sid)
		}
	})
}

func TestRefreshTokenShape(t *testing.T) {
	sid, err := randomB64(sidBytes)
	if err != nil {
		t.Fatal(err)
	}
	tok, hash, err := newRefreshToken("0123456789abcdef01234567", sid)
	if err != nil {
		t.Fatal(err)
	}
	uid, gotSID, ok := parseRefreshToken(tok)
	if !ok || uid != "0123456789abcdef01234567" || gotSID != sid || hash != hashRefresh(tok) || len(hash) != 64 {
		t.Fatalf("token %q: %q %q %v, hash %q", tok, uid, gotSID, ok, hash)
	}
	tok2, _, _ := newRefreshToken("0123456789abcdef01234567", sid)
	if tok2 == tok {
		t.Fatal("two tokens alike")
	}
}
