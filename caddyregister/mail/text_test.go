package mail_test

import (
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
)

func TestCheckLine(t *testing.T) {
	for _, ok := range []string{"", "John", "Jean-Luc Picard", "Zoë O'Brien", "李小龙", "J. R. R."} {
		if err := mail.CheckLine(ok); err != nil {
			t.Errorf("CheckLine(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"a\nb", "a\rb", "a\tb", "a\u2028b", "a\u2029b", "a\u202eb", "a\u200bb", "a\x00b", "a\u0085b", "a\u00a0b", "Ann\u3164", "Ann\ufe0f", "Ann\u2800"} {
		if err := mail.CheckLine(bad); err == nil {
			t.Errorf("CheckLine(%q) accepted", bad)
		}
	}
}

func TestUnlinkable(t *testing.T) {
	for _, keep := range []string{"John", "J. R. R.", "Acme App", "O'Brien", "Dr. No", "v2 beta", "..."} {
		if got := mail.Unlinkable(keep); got != keep {
			t.Errorf("Unlinkable(%q) = %q", keep, got)
		}
	}
	for _, drop := range []string{"http://evil.example", "evil.example", "www.evil", "EVIL.EXAMPLE", "evil。example", "evil．example",
		"mailto:a", "a@b", "javascript:alert(1)", "//evil", `\\evil`, "x.y", "St.John", "1.2.3.4", "a\nb"} {
		if got := mail.Unlinkable(drop); got != "" {
			t.Errorf("Unlinkable(%q) = %q, want it left out", drop, got)
		}
	}
}
