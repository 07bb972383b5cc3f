package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	accountapi "github.com/caddyregister/caddyregister/caddyregister/contract/account"
	indiqusapi "github.com/caddyregister/caddyregister/caddyregister/contract/indiqus"
	norainaapi "github.com/caddyregister/caddyregister/caddyregister/contract/noraina"
	rpostapi "github.com/caddyregister/caddyregister/caddyregister/contract/rpost"
	saymonapi "github.com/caddyregister/caddyregister/caddyregister/contract/saymon"
	soajsapi "github.com/caddyregister/caddyregister/caddyregister/contract/soajs"
)

// Conformance: every request a black-box test sends through site.do to a
// register handler is checked against the OpenAPI document of the
// handler's contract, so each test of a contract is also a test that its
// document does not drift from the code:
//
//   - the request's operation must be in the document (a route the handler
//     serves that the document lacks is drift; a wrong method must be
//     answered 405);
//   - the response must be documented: its status, content type, headers
//     and body (kin-openapi's openapi3filter.ValidateResponse);
//   - the request is validated too (ValidateRequest). Tests send bad input
//     on purpose, so a request the document refuses is not an error in
//     itself, but the server must then refuse it as well (4xx): a request
//     the document calls invalid that the server accepts means the document
//     is stricter than the code.

// documents are the contracts' OpenAPI documents, by contract name.
var documents = map[string][]byte{
	accountapi.Name: accountapi.Document,
	indiqusapi.Name: indiqusapi.Document,
	norainaapi.Name: norainaapi.Document,
	rpostapi.Name:   rpostapi.Document,
	saymonapi.Name:  saymonapi.Document,
	soajsapi.Name:   soajsapi.Document,
}

// foldContracts match paths case-insensitively (contract.CaseInsensitiveRoutes).
var foldContracts = map[string]bool{rpostapi.Name: true}

// defaultPrefixes are the contracts' documented prefixes (a handler
// directive without one uses them).
var defaultPrefixes = map[string]string{
	accountapi.Name: "/account", indiqusapi.Name: "/api", norainaapi.Name: "/api",
	rpostapi.Name: "/api/v1", saymonapi.Name: "/node/api", soajsapi.Name: "/urac",
}

func init() {
	// Pages (confirmation links, the reset form) and rpost's text/json.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/json", openapi3filter.JSONBodyDecoder)
}

// apiHandler is one register handler of a site's config, with its
// document's router.
type apiHandler struct {
	contract string
	prefix   string
	fold     bool
	doc      *openapi3.T
	router   routers.Router
}

var (
	handlerRE   = regexp.MustCompile(`(?m)^\s*register\s+([a-z]+)(?:[ \t]+(/[^\s{]*))?[ \t]*\{?[ \t]*$`)
	loginPathRE = regexp.MustCompile(`(?m)^\s*login_path\s+(\S+)`)

	apiCacheMu sync.Mutex
	apiCache   = map[string][]*apiHandler{}
)

// apiHandlers returns the documented handlers of the config cfg served at
// base, built once per config.
func apiHandlers(base, cfg string) ([]*apiHandler, error) {
	apiCacheMu.Lock()
	defer apiCacheMu.Unlock()
	key := base + "\x00" + cfg
	if hs, ok := apiCache[key]; ok {
		return hs, nil
	}
	var hs []*apiHandler
	for _, m := range handlerRE.FindAllStringSubmatch(cfg, -1) {
		name, prefix := m[1], m[2]
		raw, ok := documents[name]
		if !ok {
			continue
		}
		if prefix == "" {
			prefix = defaultPrefixes[name]
		}
		prefix = "/" + strings.Trim(prefix, "/")
		if prefix == "/" {
			prefix = ""
		}
		doc, err := openapi3.NewLoader().LoadFromData(raw)
		if err != nil {
			return nil, fmt.Errorf("%s document: %w", name, err)
		}
		// As the handler serves it (openapi on): servers name the prefix.
		doc.Servers = openapi3.Servers{{URL: base + prefix}}
		for p, item := range doc.Paths.Map() {
			for _, srv := range item.Servers {
				srv.URL = base + strings.TrimSuffix(srv.URL, "/")
			}
			if name == indiqusapi.Name && p == "/auth/login" {
				if lp := loginPathRE.FindStringSubmatch(cfg); lp != nil {
					doc.Paths.Delete(p)
					doc.Paths.Set(lp[1], item)
				}
			}
		}
		if err := doc.Validate(context.Background()); err != nil {
			return nil, fmt.Errorf("%s document: %w", name, err)
		}
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			return nil, fmt.Errorf("%s document: router: %w", name, err)
		}
		hs = append(hs, &apiHandler{contract: name, prefix: prefix, fold: foldContracts[name], doc: doc, router: r})
	}
	apiCache[key] = hs
	return hs, nil
}

// canonicalPath is p as the handler matches it: cleaned, and for a
// case-insensitive contract spelled as its document spells the path it
// matches (gorillamux matches case-sensitively).
func (h *apiHandler) canonicalPath(p string) string {
	c := path.Clean(p)
	if !h.fold {
		return c
	}
	segs := strings.Split(strings.Trim(c, "/"), "/")
	for tmpl, item := range h.doc.Paths.Map() {
		full := h.prefix + tmpl
		if len(item.Servers) > 0 {
			full = tmpl
		}
		ts := strings.Split(strings.Trim(full, "/"), "/")
		if len(ts) != len(segs) {
			continue
		}
		out := make([]string, len(ts))
		match := true
		for i, t := range ts {
			switch {
			case strings.HasPrefix(t, "{"):
				out[i] = segs[i]
			case strings.EqualFold(t, segs[i]):
				out[i] = t
			default:
				match = false
			}
		}
		if match {
			return "/" + strings.Join(out, "/")
		}
	}
	return c
}

// underPrefix reports whether p is the handler's to answer (its prefix, or
// a path-level server's path such as indiqus' login).
func (h *apiHandler) underPrefix(p string) bool {
	c := path.Clean(p)
	if h.fold {
		c, p = strings.ToLower(c), strings.ToLower(h.prefix)
	} else {
		p = h.prefix
	}
	return p == "" || c == p || strings.HasPrefix(c, p+"/")
}

// conform checks one exchange against the documents of the site's
// handlers and fails the test on a mismatch.
func (s *site) conform(method, target string, header http.Header, body []byte, res *response) {
	s.t.Helper()
	if err := conformance(s.base, s.loaded, method, target, header, body, res); err != nil {
		s.t.Errorf("OpenAPI conformance: %s %s → %d: %v\nresponse: %.600s", method, target, res.Status, err, res.Body)
	}
}

// errNotDocumented marks an exchange no document describes.
var errNotDocumented = errors.New("route not in the document")

func conformance(base, cfg, method, target string, header http.Header, body []byte, res *response) error {
	hs, err := apiHandlers(base, cfg)
	if err != nil || len(hs) == 0 {
		return err
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil // the test sends a raw target on purpose; nothing to match
	}
	if isFallback(res) {
		// No handler took it: a route the contract serves only in some
		// modes (noraina's /confirm), or a path beside the routes.
		return nil
	}
	if p := strings.ToLower(path.Clean(u.Path)); strings.HasSuffix(p, "/openapi.json") || strings.HasPrefix(p, "/.well-known/") {
		return nil // the handler's own documents, not the contract's routes
	}
	var owner *apiHandler
	for _, h := range hs {
		cu := *u
		cu.Path = h.canonicalPath(u.Path)
		req, err := http.NewRequest(method, base+cu.String(), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header = header.Clone()
		route, params, err := h.router.FindRoute(req)
		switch {
		case errors.Is(err, routers.ErrMethodNotAllowed):
			if res.Status != http.StatusMethodNotAllowed {
				return fmt.Errorf("%s: method not in the document, but answered %d", h.contract, res.Status)
			}
			return h.validateMethodNotAllowed(res)
		case err != nil:
			if owner == nil && h.underPrefix(u.Path) {
				owner = h
			}
			continue
		}
		return validateExchange(req, route, params, body, res)
	}
	if owner != nil {
		return fmt.Errorf("%w of contract %s (prefix %q), yet answered by the handler", errNotDocumented, owner.contract, owner.prefix)
	}
	return nil
}

// refused reports whether the server answered with an error: a 4xx or
// 5xx, or soajs' error envelope, which that framework answers with 200.
func refused(res *response) bool {
	if res.Status >= http.StatusBadRequest {
		return true
	}
	var env struct {
		Result *bool `json:"result"`
	}
	return json.Unmarshal(res.Body, &env) == nil && env.Result != nil && !*env.Result
}

// validateMethodNotAllowed checks a 405 against the document's
// MethodNotAllowed response, which no operation refers to (OpenAPI lists
// the methods a path has, not the answer to the others): the Allow header
// and the body in the contract's envelope.
func (h *apiHandler) validateMethodNotAllowed(res *response) error {
	ref := h.doc.Components.Responses["MethodNotAllowed"]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("%s: the document has no MethodNotAllowed response", h.contract)
	}
	if res.Header.Get("Allow") == "" {
		return fmt.Errorf("%s: 405 without Allow", h.contract)
	}
	mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil {
		return fmt.Errorf("%s: 405 content type: %w", h.contract, err)
	}
	media := ref.Value.Content.Get(mt)
	if media == nil {
		return fmt.Errorf("%s: 405 with Content-Type %q, not documented", h.contract, mt)
	}
	var v any
	if err := json.Unmarshal(res.Body, &v); err != nil {
		return fmt.Errorf("%s: 405 body: %w", h.contract, err)
	}
	if err := media.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("%s: 405 body: %w", h.contract, err)
	}
	return nil
}

// isFallback is the test sites' answer for requests no handler took.
func isFallback(res *response) bool {
	return res.Status == http.StatusOK && string(res.Body) == "fallback"
}

func validateExchange(req *http.Request, route *routers.Route, params map[string]string, body []byte, res *response) error {
	ctx := context.Background()
	if req.Header.Get("Content-Type") == "" && len(bytes.TrimSpace(body)) > 0 {
		// The handler reads a body without Content-Type as its route's
		// first type; soajs sniffs a JSON object.
		ct := "application/json"
		if b := bytes.TrimSpace(body); b[0] != '{' && b[0] != '[' {
			ct = "application/x-www-form-urlencoded"
		}
		req.Header.Set("Content-Type", ct)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr != nil && !refused(res) {
		return fmt.Errorf("the document refuses the request (%v), the server answered %d", reqErr, res.Status)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: res.Status, Header: res.Header,
		Body:    io.NopCloser(bytes.NewReader(res.Body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	exercised.Store(fmt.Sprintf("%s %s %d", route.Method, route.Path, res.Status), true)
	validated.Add(1)
	return nil
}

// exercised records "METHOD /path status" of every exchange validated, for
// reportExercised.
var exercised sync.Map

// validated counts the exchanges validated against a document.
var validated atomic.Int64

// reportExercised prints, when OPENAPI_COVERAGE is set, the documented
// operations and statuses no test exchange exercised: statuses the
// documents promise that only the code review vouches for.
func reportExercised() {
	if os.Getenv("OPENAPI_COVERAGE") == "" {
		return
	}
	seen, missing := 0, 0
	for name, raw := range documents {
		doc, err := openapi3.NewLoader().LoadFromData(raw)
		if err != nil {
			continue
		}
		for p, item := range doc.Paths.Map() {
			for m, op := range item.Operations() {
				for status := range op.Responses.Map() {
					if _, ok := exercised.Load(fmt.Sprintf("%s %s %s", m, p, status)); ok {
						seen++
						continue
					}
					missing++
					fmt.Fprintf(os.Stderr, "openapi coverage: %s %s %s %s not exercised\n", name, m, p, status)
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "openapi coverage: %d exchanges validated; %d documented (operation, status) pairs exercised, %d not\n", validated.Load(), seen, missing)
}
