package caddyregister

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestAdaptPages: `register pages` mounts at the root by default; cookie
// and templates are its options, and a typo is refused at adapt time.
func TestAdaptPages(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := adapt(t, `{
	register
}
:8080 {
	register pages {
		cookie sid
		templates `+dir+`
		captcha required
	}
}`)
	var h map[string]any
	for _, x := range handlers(cfg) {
		if x["contract"] == "pages" {
			h = x
		}
	}
	if h == nil || h["prefix"] != nil || h["captcha"] != "required" {
		t.Fatalf("handler: %v", h)
	}
	want := map[string]any{"cookie": []any{[]any{"sid"}}, "templates": []any{[]any{dir}}}
	if !reflect.DeepEqual(h["options"], want) {
		t.Fatalf("options %v, want %v", h["options"], want)
	}
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte("{\n\tregister\n}\n:8080 {\n\tregister pages {\n\t\ttemplate "+filepath.Join(dir, "x")+"\n\t}\n}\n"), nil); err == nil {
		t.Fatal("a misspelt option adapted")
	}
}
