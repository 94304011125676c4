// Package apicheck holds every HTTP exchange of the tests to api/openapi.yaml: a response must
// be one the document describes for its route and status (body schema, error code enums,
// content type), and a request the document calls invalid must have been refused with a 4xx.
// testenv wires it into every test stack and into testenv.Do, so each HTTP test goes through
// it without asking.
package apicheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/loomipay/loomipay/api"
	"github.com/loomipay/loomipay/shared/httpapi"
)

// Checker validates exchanges against the document.
type Checker struct {
	Doc    *openapi3.T
	router routers.Router
}

// Load parses and validates api/openapi.yaml (examples included) once per test binary.
var Load = sync.OnceValues(func() (*Checker, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.YAML)
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	// Tests serve on random ports: match routes by path alone, whatever the server.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route api/openapi.yaml: %w", err)
	}
	return &Checker{Doc: doc, router: router}, nil
})

// Must is Load for a test.
func Must(t testing.TB) *Checker {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bearer is the document's only security scheme: a request without a Bearer credential does
// not match it (and must then be refused).
func bearer(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
		return errors.New("no Bearer credential")
	}
	return nil
}

// Check validates one exchange. req's body is not read (reqBody is); respHeader and respBody
// are the response as received.
// functions, if given, are the Lambda functions whose routes the server mounts (a function
// answers the other routes 404/405).
func (c *Checker) Check(req *http.Request, reqBody []byte, status int, respHeader http.Header, respBody []byte, functions ...string) error {
	ctx := context.Background()
	what := req.Method + " " + req.URL.RequestURI()
	r := req.Clone(ctx)
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	if len(reqBody) > 0 && r.Header.Get("Content-Type") == "" {
		// The service reads every body as JSON whatever its Content-Type; validate it as such.
		r.Header.Set("Content-Type", "application/json")
	}
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		return c.checkUnrouted(what, err, status, respHeader, respBody)
	}
	if len(functions) > 0 && !served(route.Method, route.Path, functions) {
		return c.checkUnrouted(what, errors.New("the function does not serve it"), status, respHeader, respBody)
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearer}}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr != nil && (status < 400 || status >= 500) {
		return fmt.Errorf("%s: the request breaks api/openapi.yaml (%v), yet the service answered %d %s", what, reqErr, status, respBody)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: respHeader,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("%s: response %d %s does not match api/openapi.yaml: %w", what, status, respBody, err)
	}
	return nil
}

// checkUnrouted: a method and path the document lacks must be a JSON 404, or a JSON 405 with
// Allow (a known path, another method), with the Error body.
func (c *Checker) checkUnrouted(what string, routeErr error, status int, header http.Header, body []byte) error {
	switch {
	case status == http.StatusMethodNotAllowed && header.Get("Allow") == "":
		return fmt.Errorf("%s: 405 without an Allow header", what)
	case status != http.StatusNotFound && status != http.StatusMethodNotAllowed:
		return fmt.Errorf("%s: not a route of api/openapi.yaml (%v), yet the service answered %d %s; want 404 or 405", what, routeErr, status, body)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("%s: error Content-Type %q; want application/json", what, ct)
	}
	v, err := decode(body)
	if err != nil {
		return fmt.Errorf("%s: error body %s: %w", what, body, err)
	}
	resp := map[int]string{http.StatusNotFound: "NotFound", http.StatusMethodNotAllowed: "MethodNotAllowed"}[status]
	schema := c.Doc.Components.Responses[resp].Value.Content["application/json"].Schema.Value
	if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("%s: %d body %s does not match components.responses.%s: %w", what, status, body, resp, err)
	}
	return nil
}

func decode(body []byte) (any, error) {
	var v any
	dec := jsonDecoder(body)
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func served(method, path string, functions []string) bool {
	for _, r := range httpapi.Routes {
		if r.Method == method && r.Path == path && slices.Contains(functions, r.Function) {
			return true
		}
	}
	return false
}
