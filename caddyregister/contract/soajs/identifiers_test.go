package soajs

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// TestInvisibleCharactersNamed: the engine's refusal of invisible and
// bidi control characters reaches soajs' envelope naming soajs' field.
func TestInvisibleCharactersNamed(t *testing.T) {
	s := engineWith(t, func(s store.Store) store.Store { return s })
	for _, c := range []struct{ field, value, want string }{
		{"firstName", "Jo\u202Ehn", "Validation failed for field: firstName -> must not contain invisible or text-direction control characters (found U+202E)"},
		{"lastName", "D\u00adoe", "Validation failed for field: lastName -> must not contain invisible or text-direction control characters (found U+00AD)"},
		{"email", "jo\u200bhn@domain.com", "Validation failed for field: email -> must not contain invisible or text-direction control characters (found U+200B)"},
	} {
		form := url.Values{"username": {"john"}, "firstName": {"John"}, "lastName": {"Doe"}, "email": {"johndoe@domain.com"}}
		form.Set(c.field, c.value)
		w := serveAddUser(t, s, form.Encode())
		var env errEnvelope
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Result || len(env.Errors.Details) != 1 {
			t.Fatalf("%s: %d %s", c.field, w.Code, w.Body)
		}
		if got := env.Errors.Details[0].Message; got != c.want {
			t.Errorf("%s: message %q, want %q", c.field, got, c.want)
		}
	}
	// A full-width spelling of an existing e-mail is that e-mail.
	if w := serveAddUser(t, s, docForm); w.Code != 200 || !strings.Contains(w.Body.String(), `"result":true`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	dup := url.Values{"username": {"john2"}, "firstName": {"John"}, "lastName": {"Doe"}, "email": {"ｊｏｈｎｄｏｅ@domain.com"}}
	w := serveAddUser(t, s, dup.Encode())
	if codes := envelopeCodes(t, w); len(codes) != 1 || codes[0] != CodeUserExists {
		t.Errorf("full-width duplicate: %d %s", w.Code, w.Body)
	}
}
