package rpost

import (
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// TestResendData: a resent activation mail gets the RegistrationApp the
// registration's mail had, from the attribute the user record keeps.
func TestResendData(t *testing.T) {
	f := &form{}
	app := "My App"
	f.vals[pRegistrationApp].Str = &app
	attrs, err := attributes(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := resendData(&store.User{Attributes: attrs})["RegistrationApp"]; got != app {
		t.Fatalf("RegistrationApp = %v, want %q", got, app)
	}
	if got := resendData(&store.User{})["RegistrationApp"]; got != "" {
		t.Fatalf("without the attribute: %v", got)
	}
}
