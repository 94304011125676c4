package deploycheck_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/loomipay/loomipay/internal/apicheck"
	"github.com/loomipay/loomipay/shared/console"
	"github.com/loomipay/loomipay/shared/httpapi"
)

// TestRoutesAgreeEverywhere fails when a route is in the code (httpapi.Routes), the OpenAPI
// document (api/openapi.yaml) or template.yaml but not in all three. The operators' console
// (HTML pages behind its own login, not an API for main apps) is left out of the
// document; TestTemplate checks its routes against console.Routes.
func TestRoutesAgreeEverywhere(t *testing.T) {
	sources := map[string]map[string]bool{"httpapi.Routes": {}, "api/openapi.yaml": {}, "template.yaml": {}}
	for _, r := range httpapi.Routes {
		sources["httpapi.Routes"][r.Method+" "+r.Path] = true
	}
	for path, item := range apicheck.Must(t).Doc.Paths.Map() {
		for method := range item.Operations() {
			sources["api/openapi.yaml"][method+" "+path] = true
		}
	}
	for _, f := range loadTemplate(t).Functions {
		if f.Folder == console.Function || f.Folder == functionSandbox {
			continue // the console's pages, and the Lakala sandbox on an API of its own
		}
		for _, e := range f.Props.Events {
			if e.Type == "HttpApi" {
				sources["template.yaml"][e.Properties.Method+" "+e.Properties.Path] = true
			}
		}
	}
	all := map[string]bool{}
	for _, routes := range sources {
		for r := range routes {
			all[r] = true
		}
	}
	for _, route := range slices.Sorted(func(yield func(string) bool) {
		for r := range all {
			if !yield(r) {
				return
			}
		}
	}) {
		var missing []string
		for name, routes := range sources {
			if !routes[route] {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			t.Errorf("route %s is missing from %s", route, strings.Join(missing, " and "))
		}
	}
	if len(all) != len(httpapi.Routes) {
		t.Errorf("%d distinct routes across the three; httpapi.Routes has %d", len(all), len(httpapi.Routes))
	}
}
