package secretbox

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var kek = []byte("0123456789abcdef0123456789abcdef")

func newBox(t *testing.T, k []byte, domain string) *Box {
	t.Helper()
	b, err := New(k, domain)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	b := newBox(t, kek, "ns")
	for _, plain := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("secret "), 1000)} {
		sealed, err := b.Seal("secret:a", plain)
		if err != nil {
			t.Fatal(err)
		}
		if !IsSealed(sealed) || !strings.HasPrefix(string(sealed), "sealed:v1:") {
			t.Fatalf("sealed value %q lacks the version prefix", sealed)
		}
		if len(plain) > 8 && bytes.Contains(sealed, plain) {
			t.Fatal("sealed value contains the plaintext")
		}
		got, err := b.Open("secret:a", sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("Open = %q, %v; want %q", got, err, plain)
		}
		// A second box from the same KEK (another instance) opens it too.
		if got, err := newBox(t, kek, "ns").Open("secret:a", sealed); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("other instance Open = %q, %v", got, err)
		}
	}
}

func TestNoncesDiffer(t *testing.T) {
	b := newBox(t, kek, "ns")
	x, _ := b.Seal("p", []byte("same"))
	y, _ := b.Seal("p", []byte("same"))
	if bytes.Equal(x, y) {
		t.Fatal("two seals of one value are equal: nonce reused")
	}
}

func TestOpenRefuses(t *testing.T) {
	b := newBox(t, kek, "ns")
	sealed, err := b.Seal("secret:a", []byte("key material"))
	if err != nil {
		t.Fatal(err)
	}
	other := append([]byte(nil), kek...)
	other[0] ^= 1
	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)-3] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"other kek":     func() ([]byte, error) { return newBox(t, other, "ns").Open("secret:a", sealed) },
		"other domain":  func() ([]byte, error) { return newBox(t, kek, "ns2").Open("secret:a", sealed) },
		"other purpose": func() ([]byte, error) { return b.Open("secret:b", sealed) },
		"altered":       func() ([]byte, error) { return b.Open("secret:a", flipped) },
		"truncated":     func() ([]byte, error) { return b.Open("secret:a", sealed[:20]) },
		"bad base64":    func() ([]byte, error) { return b.Open("secret:a", []byte("sealed:v1:!!!")) },
	} {
		if got, err := open(); !errors.Is(err, ErrOpen) || got != nil {
			t.Errorf("%s: Open = %q, %v; want ErrOpen", name, got, err)
		}
	}
	if _, err := b.Open("secret:a", []byte("-----BEGIN PRIVATE KEY-----")); err == nil || errors.Is(err, ErrOpen) {
		t.Errorf("clear value: Open err = %v; want a not-sealed error", err)
	}
}

func TestShortKEK(t *testing.T) {
	if _, err := New(kek[:MinKEKLen-1], "ns"); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("short kek: err = %v", err)
	}
}

// TestWithDomain: a Box for another domain opens what a Box of that
// domain sealed (same key), and its own seals do not open in the first.
func TestWithDomain(t *testing.T) {
	src, dst := newBox(t, kek, "embedded"), newBox(t, kek, "ns")
	sealed, err := src.Seal("secret:k", []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Open("secret:k", sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("another domain's box opened it: %v", err)
	}
	plain, err := dst.WithDomain("embedded").Open("secret:k", sealed)
	if err != nil || string(plain) != "key" {
		t.Fatalf("WithDomain(source).Open = %q, %v", plain, err)
	}
	again, err := dst.Seal("secret:k", plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Open("secret:k", again); !errors.Is(err, ErrOpen) {
		t.Fatalf("the resealed value opens in the source's domain: %v", err)
	}
	if _, err := newBox(t, []byte(strings.Repeat("z", 32)), "x").WithDomain("embedded").Open("secret:k", sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("another key opened it: %v", err)
	}
}
