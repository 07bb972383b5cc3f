package contract

import (
	"context"
	"net/http"
	"strings"
)

// Path parameters. A Route.Path may hold segments written {name} (as
// "/users/{id}"); each matches one non-empty path segment, which the
// route reads with PathParam. The handler serves exact paths with one map
// lookup and tries patterns only when no exact path matched, so routes
// without parameters cost what they did.

// Pattern is a route path with {name} segments.
type Pattern struct {
	segs  []string // literal segments, or "" where a parameter goes
	names []string // parameter names, in order
}

// ParsePattern returns the pattern of path, or ok false when path has no
// {name} segment (an exact path).
func ParsePattern(path string) (p *Pattern, ok bool) {
	if !strings.Contains(path, "{") {
		return nil, false
	}
	p = &Pattern{}
	for _, s := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' {
			p.segs = append(p.segs, "")
			p.names = append(p.names, s[1:len(s)-1])
			continue
		}
		p.segs = append(p.segs, s)
	}
	return p, len(p.names) > 0
}

// Match reports whether the clean path p matches, and its parameter
// values in the pattern's order. Literal segments compare case-
// insensitively when fold is set (CaseInsensitiveRoutes).
func (pt *Pattern) Match(p string, fold bool) ([]string, bool) {
	rest := strings.TrimPrefix(p, "/")
	var vals []string
	for i, lit := range pt.segs {
		seg, tail, more := strings.Cut(rest, "/")
		if more != (i < len(pt.segs)-1) {
			return nil, false
		}
		switch {
		case lit == "":
			if seg == "" {
				return nil, false
			}
			vals = append(vals, seg)
		case fold && !strings.EqualFold(seg, lit), !fold && seg != lit:
			return nil, false
		}
		rest = tail
	}
	return vals, true
}

// Names are the pattern's parameter names, in order.
func (pt *Pattern) Names() []string { return pt.names }

type pathParamsKey struct{}

type pathParams struct {
	names, values []string
}

// WithPathParams returns r carrying the parameter values of the pattern
// the handler matched (names and values in the same order).
func WithPathParams(r *http.Request, names, values []string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), pathParamsKey{}, &pathParams{names: names, values: values}))
}

// PathParam is the value of the path parameter name of the route serving
// r ("" when there is none).
func PathParam(r *http.Request, name string) string {
	pp, _ := r.Context().Value(pathParamsKey{}).(*pathParams)
	if pp == nil {
		return ""
	}
	for i, n := range pp.names {
		if n == name {
			return pp.values[i]
		}
	}
	return ""
}
