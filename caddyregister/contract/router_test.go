package contract

import (
	"net/http/httptest"
	"slices"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	p, ok := ParsePattern("/account/users/{id}/logout")
	if !ok {
		t.Fatal("not a pattern")
	}
	cases := []struct {
		path string
		fold bool
		want []string
	}{
		{"/account/users/abc/logout", false, []string{"abc"}},
		{"/account/USERS/abc/logout", false, nil},
		{"/account/USERS/abc/logout", true, []string{"abc"}},
		{"/account/users//logout", false, nil},
		{"/account/users/abc", false, nil},
		{"/account/users/abc/logout/x", false, nil},
		{"/account/users/a/b/logout", false, nil},
	}
	for _, c := range cases {
		got, ok := p.Match(c.path, c.fold)
		if ok != (c.want != nil) || !slices.Equal(got, c.want) {
			t.Errorf("Match(%q, %v) = %q, %v; want %q", c.path, c.fold, got, ok, c.want)
		}
	}
	if _, ok := ParsePattern("/users"); ok {
		t.Error("an exact path parsed as a pattern")
	}
	r := WithPathParams(httptest.NewRequest("GET", "/", nil), p.Names(), []string{"x1"})
	if PathParam(r, "id") != "x1" || PathParam(r, "sid") != "" {
		t.Error("PathParam")
	}
}
