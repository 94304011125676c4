package httpapi

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/loomipay/loomipay/api"
	"github.com/loomipay/loomipay/shared/pay"
)

var update = flag.Bool("update", false, "rewrite docs/ERRORS.md from pay.ErrorCodes")

// errorsDoc renders docs/ERRORS.md from pay.ErrorCodes and the one kind-to-status mapping.
func errorsDoc() string {
	var b strings.Builder
	b.WriteString("# Error codes\n\n")
	b.WriteString("<!-- Generated from shared/pay.ErrorCodes and shared/httpapi's status mapping by\n")
	b.WriteString("     `go test ./shared/httpapi -run TestErrorsDoc -update`; a test fails when it is stale. -->\n\n")
	b.WriteString("Every error is JSON `{\"detail\": \"…\", \"code\": \"…\"}` (validation errors add `field`).\n")
	b.WriteString("Match on `code`, show `detail` to people. api/openapi.yaml lists the codes each route answers.\n\n")
	b.WriteString("| code | status | meaning |\n|---|---|---|\n")
	for _, c := range pay.ErrorCodes {
		status := statusOf(&pay.Error{Kind: c.Kind, Code: c.Code})
		fmt.Fprintf(&b, "| `%s` | %d %s | %s |\n", c.Code, status, http.StatusText(status), c.Meaning)
	}
	return b.String()
}

func TestErrorsDoc(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "ERRORS.md")
	want := errorsDoc()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Errorf("docs/ERRORS.md is stale (err %v); run: go test ./shared/httpapi -run TestErrorsDoc -update", err)
	}

	listed := map[string]bool{}
	for _, c := range pay.ErrorCodes {
		if listed[c.Code] {
			t.Errorf("code %s is listed twice in pay.ErrorCodes", c.Code)
		}
		listed[c.Code] = true
	}
	t.Run("every Code constant is listed", func(t *testing.T) {
		for _, c := range codeConstants(t) {
			if !listed[c] {
				t.Errorf("pay's constant code %q is not in pay.ErrorCodes (so not in docs/ERRORS.md)", c)
			}
		}
	})
	t.Run("api/openapi.yaml names exactly the listed codes", func(t *testing.T) {
		doc, err := openapi3.NewLoader().LoadFromData(api.YAML)
		if err != nil {
			t.Fatal(err)
		}
		inDoc := map[string]bool{}
		collectCodes(doc, inDoc)
		for c := range inDoc {
			if !listed[c] {
				t.Errorf("api/openapi.yaml names code %q, which pay.ErrorCodes does not list", c)
			}
		}
		for c := range listed {
			if !inDoc[c] {
				t.Errorf("code %q is in no response of api/openapi.yaml", c)
			}
		}
	})
}

// codeConstants parses shared/pay for every string constant named Code*.
func codeConstants(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join("..", "pay", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if strings.HasPrefix(name.Name, "Code") && i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						out = append(out, s)
					}
				}
			}
			return true
		})
	}
	slices.Sort(out)
	if len(out) < 10 {
		t.Fatalf("found only %d Code constants in shared/pay: %v", len(out), out)
	}
	return out
}

// collectCodes gathers the enum of every error body's code property in every response.
func collectCodes(doc *openapi3.T, into map[string]bool) {
	var visit func(s *openapi3.Schema)
	visit = func(s *openapi3.Schema) {
		if s == nil {
			return
		}
		if code := s.Properties["code"]; code != nil && code.Value != nil {
			for _, v := range code.Value.Enum {
				if c, ok := v.(string); ok {
					into[c] = true
				}
			}
		}
		for _, sub := range s.AllOf {
			visit(sub.Value)
		}
	}
	for _, r := range doc.Components.Responses {
		for _, mt := range r.Value.Content {
			if mt.Schema != nil {
				visit(mt.Schema.Value)
			}
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, r := range op.Responses.Map() {
				for _, mt := range r.Value.Content {
					if mt.Schema != nil {
						visit(mt.Schema.Value)
					}
				}
			}
		}
	}
}
