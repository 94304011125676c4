package deploycheck_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/httpapi"
)

func TestSAMConfig(t *testing.T) {
	var sam map[string]any
	if _, err := toml.Decode(string(readRepoFile(t, "samconfig.toml")), &sam); err != nil {
		t.Fatalf("samconfig.toml: %v", err)
	}
	parameters := loadTemplate(t).Template.Parameters
	stacks := make(map[string]string)

	for _, env := range []string{"default", "prod"} {
		t.Run(env, func(t *testing.T) {
			params := func(command string) map[string]any {
				cmd, _ := tableAt(sam, env, command)
				p, _ := tableAt(cmd, "parameters")
				return p
			}
			build := params("build")
			if build == nil {
				t.Fatalf("[%s.build.parameters] is missing", env)
			}
			if cached, ok := build["cached"].(bool); !ok || cached {
				t.Errorf("[%s.build.parameters] cached = %v; want false (SAM's cache hashes only CodeUri, not shared/)", env, build["cached"])
			}

			deploy := params("deploy")
			if len(deploy) == 0 {
				t.Fatalf("[%s.deploy.parameters] is missing or empty", env)
			}
			stack, _ := cmpAny(deploy["stack_name"], params("global")["stack_name"]).(string)
			if stack == "" {
				t.Errorf("%s: no stack_name in deploy or global parameters", env)
			}
			for other, s := range stacks {
				if s == stack {
					t.Errorf("%s and %s deploy to the same stack %q", env, other, stack)
				}
			}
			stacks[env] = stack

			overrides := parameterOverrides(t, deploy["parameter_overrides"])
			if overrides["Stage"] == "" {
				t.Errorf("%s: parameter_overrides sets no Stage", env)
			}
			for name, value := range overrides {
				p, ok := parameters[name]
				if !ok {
					t.Errorf("%s: parameter_overrides sets %s, which template.yaml does not declare", env, name)
					continue
				}
				if len(p.AllowedValues) > 0 && !slices.Contains(p.AllowedValues, value) {
					t.Errorf("%s: parameter_overrides %s=%s; template.yaml allows %v", env, name, value, p.AllowedValues)
				}
			}
		})
	}
}

// tableAt follows keys through nested TOML tables.
func tableAt(m map[string]any, keys ...string) (map[string]any, bool) {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}

func cmpAny(a, b any) any {
	if a != nil {
		return a
	}
	return b
}

// parameterOverrides reads SAM's "Key=Value Key=Value" string (or its list form).
func parameterOverrides(t *testing.T, v any) map[string]string {
	t.Helper()
	var pairs []string
	switch v := v.(type) {
	case nil:
	case string:
		pairs = strings.Fields(v)
	case []any:
		for _, p := range v {
			s, _ := p.(string)
			pairs = append(pairs, s)
		}
	default:
		t.Fatalf("parameter_overrides = %v (%T); want a string or a list of strings", v, v)
	}
	out := make(map[string]string)
	for _, p := range pairs {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			t.Errorf("parameter_overrides: %q is not Key=Value", p)
			continue
		}
		out[k] = strings.Trim(val, `"'`)
	}
	return out
}

// TestConfigurationTable: docs/CONFIGURATION.md's one table lists exactly config.Variables (what
// the code reads), with the same defaults.
func TestConfigurationTable(t *testing.T) {
	section := string(readRepoFile(t, "docs/CONFIGURATION.md"))

	type row struct{ name, def string }
	var rows []row
	for line := range strings.Lines(section) {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 3 {
			t.Errorf("docs/CONFIGURATION.md row %q: want | variable | default | meaning |", strings.TrimSpace(line))
			continue
		}
		rows = append(rows, row{name: strings.Trim(strings.TrimSpace(cells[0]), "`"), def: strings.TrimSpace(cells[1])})
	}

	t.Run("names equal config.Variables", func(t *testing.T) {
		var got, want []string
		for _, r := range rows {
			got = append(got, r.name)
		}
		for _, v := range config.Variables {
			want = append(want, v.Name)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("docs/CONFIGURATION.md variables:\n got  %v\n want %v (config.Variables)", got, want)
		}
	})

	t.Run("defaults equal config.Variables", func(t *testing.T) {
		defaults := make(map[string]string)
		for _, v := range config.Variables {
			defaults[v.Name] = v.Default
		}
		for _, r := range rows {
			want, ok := defaults[r.name]
			if !ok {
				continue // reported by the names check
			}
			switch {
			case len(r.def) >= 2 && strings.HasPrefix(r.def, "`") && strings.HasSuffix(r.def, "`"):
				if got := strings.Trim(r.def, "`"); got != want {
					t.Errorf("docs/CONFIGURATION.md default of %s = %q; want %q (config.Variables)", r.name, got, want)
				}
			case r.def == "(empty)":
				if want != "" {
					t.Errorf("docs/CONFIGURATION.md default of %s = (empty); want %q (config.Variables)", r.name, want)
				}
			case want != "":
				t.Errorf("docs/CONFIGURATION.md default of %s = %q; want `%s` (config.Variables)", r.name, r.def, want)
			}
		}
	})
}

// apiGatewayV2Event is the part of an HTTP API (payload 2.0) event the checks read.
type apiGatewayV2Event struct {
	Version        string `json:"version"`
	RouteKey       string `json:"routeKey"`
	RawPath        string `json:"rawPath"`
	RequestContext struct {
		HTTP struct {
			Method string `json:"method"`
			Path   string `json:"path"`
		} `json:"http"`
	} `json:"requestContext"`
}

func TestSampleEvents(t *testing.T) {
	// The router that the functions serve, with each route's pattern as its answer, tells which
	// route a sample's rawPath reaches.
	mux := http.NewServeMux()
	for _, r := range httpapi.Routes {
		mux.HandleFunc(r.Method+" "+r.Path, func(http.ResponseWriter, *http.Request) {})
	}
	covered := make(map[string]bool)

	for _, tc := range []struct{ file, function string }{
		{"createorder.json", httpapi.FunctionCreateOrder},
		{"getorder.json", httpapi.FunctionGetOrder},
		{"refund-create.json", httpapi.FunctionRefund},
		{"refund-get.json", httpapi.FunctionRefund},
		{"webhook.json", httpapi.FunctionWebhook},
		{"close.json", httpapi.FunctionCreateOrder},
		{"list-orders.json", httpapi.FunctionGetOrder},
		{"openapi.json", httpapi.FunctionGetOrder},
		{"healthz.json", httpapi.FunctionGetOrder},
		{"readyz.json", httpapi.FunctionGetOrder},
		{"refund-list.json", httpapi.FunctionRefund},
		{"refund-get-by-merchant-id.json", httpapi.FunctionRefund},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw := readRepoFile(t, filepath.Join("events", tc.file))
			var e apiGatewayV2Event
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("events/%s: %v", tc.file, err)
			}
			if e.Version != "2.0" {
				t.Errorf("events/%s: version = %q; want \"2.0\"", tc.file, e.Version)
			}
			method, path, _ := strings.Cut(e.RouteKey, " ")
			i := slices.IndexFunc(httpapi.Routes, func(r httpapi.Route) bool { return r.Method == method && r.Path == path })
			if i < 0 {
				t.Fatalf("events/%s: routeKey %q is none of httpapi.Routes", tc.file, e.RouteKey)
			}
			covered[e.RouteKey] = true
			if got := httpapi.Routes[i].Function; got != tc.function {
				t.Errorf("events/%s: routeKey %q is served by %s; want %s", tc.file, e.RouteKey, got, tc.function)
			}
			if e.RequestContext.HTTP.Method != method || e.RequestContext.HTTP.Path != e.RawPath {
				t.Errorf("events/%s: requestContext.http = %s %s; want %s %s (routeKey method, rawPath)",
					tc.file, e.RequestContext.HTTP.Method, e.RequestContext.HTTP.Path, method, e.RawPath)
			}
			if _, pattern := mux.Handler(httptest.NewRequest(method, e.RawPath, nil)); pattern != e.RouteKey {
				t.Errorf("events/%s: rawPath %s %s reaches route %q; want %q", tc.file, method, e.RawPath, pattern, e.RouteKey)
			}
		})
	}

	t.Run("every route has a sample", func(t *testing.T) {
		for _, r := range httpapi.Routes {
			if key := r.Method + " " + r.Path; !covered[key] {
				t.Errorf("no events/*.json sample for %s", key)
			}
		}
	})

	t.Run("processor.json", func(t *testing.T) {
		var e map[string]any
		if err := json.Unmarshal(readRepoFile(t, filepath.Join("events", "processor.json")), &e); err != nil {
			t.Fatalf("events/processor.json: %v", err)
		}
	})
}
