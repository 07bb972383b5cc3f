package mail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileSender(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	s, from, err := ParseURL("file://" + dir + "?from=Demo%20%3Cdemo@example.com%3E")
	if err != nil {
		t.Fatal(err)
	}
	if from != `"Demo" <demo@example.com>` && from != "Demo <demo@example.com>" {
		t.Fatalf("from %q", from)
	}
	link := "http://localhost:8080/account/password/reset?token=" + strings.Repeat("Ab-_", 11) + "&x=1"
	m := &Message{ID: "m1", To: []string{"ada@example.com"}, Subject: "Reset", Text: "Follow " + link + " within an hour.\n"}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 || !strings.HasSuffix(files[0], "-m1.eml") {
		t.Fatalf("files %v", files)
	}
	st, err := os.Stat(files[0])
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	b, _ := os.ReadFile(files[0])
	for _, want := range []string{"To: <ada@example.com>", "Subject: Reset", link, "Message-ID: <m1@example.com>"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("message lacks %q:\n%s", want, b)
		}
	}

	// A message that cannot be built is permanent and leaves no file.
	if err := s.Send(context.Background(), &Message{ID: "m2", Subject: "x", Text: "x"}); !errors.Is(err, ErrPermanent) {
		t.Fatalf("no recipient: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 1 {
		t.Fatalf("files after a refused message: %v", files)
	}
}

func TestFileURLErrors(t *testing.T) {
	for _, u := range []string{"file://relative/dir", "file:///tmp/x?starttls=none", "file://user@/tmp/x", "file://example.com/tmp/x", "file:///tmp/x?from=not-an-address"} {
		if _, _, err := ParseURL(u); err == nil {
			t.Errorf("ParseURL(%q): no error", u)
		}
	}
}
