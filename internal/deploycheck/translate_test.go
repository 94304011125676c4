package deploycheck_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/loomipay/loomipay/internal/testskip"
	"github.com/loomipay/loomipay/shared/console"
	"github.com/loomipay/loomipay/shared/httpapi"
)

// TestTranslatedTemplate expands template.yaml's SAM transform with aws-sam-translator (the code
// CloudFormation runs on deploy), for each samconfig.toml environment's parameters and in both
// partitions (aws, aws-cn), and checks what CloudFormation would be handed:
//   - every Ref, Fn::GetAtt, Fn::Sub variable, condition and DependsOn names a resource, a
//     parameter, a pseudo-parameter or a condition of the template;
//   - every function's environment, with real-length values (a 4096-bit platform certificate,
//     full ARNs, the region's domain), stays under Lambda's 4 KB;
//   - every route of the HTTP API reaches a Lambda function, which API Gateway may invoke for it,
//     and the routes are httpapi.Routes and the console's;
//   - cfn-lint, given the environment's parameter values (which it cannot apply to a template
//     still holding the SAM transform), finds nothing.
//
// It needs python3 with aws-sam-translator (and cfn-lint, which brings it): skipped without
// them, failed under CI=true.
func TestTranslatedTemplate(t *testing.T) {
	python := requireTool(t, "python3", "-c", "import samtranslator")
	root := repoRoot(t)
	d := loadTemplate(t)
	folders := map[string]string{} // function logical id → folder
	for _, f := range d.Functions {
		folders[f.LogicalID] = f.Folder
	}
	for env, overrides := range samconfigEnvironments(t) {
		for _, region := range []string{"us-east-1", "cn-northwest-1"} {
			t.Run(env+"/"+region, func(t *testing.T) {
				t.Parallel()
				params := deployParameters(t, d, overrides, region)
				out := translate(t, python, root, params, region)
				checkNamesResolve(t, out)
				values := maps.Clone(params) // what CloudFormation resolves: defaults too
				for name, p := range d.Template.Parameters {
					if _, given := values[name]; !given && p.Default != nil {
						values[name] = *p.Default
					}
				}
				checkEnvironmentSizes(t, out, values, region)
				checkRoutes(t, out, folders)
				if strings.HasPrefix(region, "cn-") { // once per environment, in both partitions' regions
					lintTranslated(t, out, params, "us-east-1", region)
				}
			})
		}
	}
}

// requireTool returns the path of name after checking that it runs with args; without it the test
// skips, or fails when CI=true.
func requireTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		err = exec.Command(path, args...).Run()
	}
	if err != nil {
		testskip.Missing(t, fmt.Sprintf("%s %s: %v", name, strings.Join(args, " "), err), "pip install cfn-lint (it brings aws-sam-translator)")
	}
	return path
}

// samconfigEnvironments is each samconfig.toml environment's deploy parameter_overrides.
func samconfigEnvironments(t *testing.T) map[string]map[string]string {
	t.Helper()
	var sam map[string]any
	if _, err := toml.Decode(string(readRepoFile(t, "samconfig.toml")), &sam); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for env := range sam {
		deploy, ok := tableAt(sam, env, "deploy", "parameters")
		if !ok {
			continue
		}
		out[env] = parameterOverrides(t, deploy["parameter_overrides"])
	}
	if len(out) < 2 {
		t.Fatalf("samconfig.toml environments with deploy parameters: %v; want default and prod", out)
	}
	return out
}

// platformCert is a self-signed certificate of a 4096-bit key: the largest platform certificate
// a deploy may pass (PEM, about 1.9 KB).
var platformCert = sync.OnceValue(func() string {
	key, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Lakala platform (test)", Organization: []string{"Lakala"}},
		NotBefore: time.Now(), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
})

// deployParameters are an environment's overrides, and for each parameter without a default what
// `sam deploy --guided` would be told: full-length ARNs in the region's partition, a merchant's
// own identity, the certificate.
func deployParameters(t *testing.T, d deployment, overrides map[string]string, region string) map[string]string {
	t.Helper()
	partition := "aws"
	if strings.HasPrefix(region, "cn-") {
		partition = "aws-cn"
	}
	params := map[string]string{}
	for name, p := range d.Template.Parameters {
		if p.Default != nil {
			continue
		}
		switch {
		case strings.HasSuffix(name, "SecretArn"):
			params[name] = fmt.Sprintf("arn:%s:secretsmanager:%s:123456789012:secret:loomipay/production/%s-AbCdEf", partition, region, strings.ToLower(name))
		case name == "RefundRequestIp":
			params[name] = "203.0.113.200"
		default:
			params[name] = "MERCHANT-" + strings.ToUpper(name[len(name)-4:]) + "-0001"
		}
	}
	// Required outside a sandbox stage (a rule), so given: the certificate at its longest.
	params["LakalaPlatformCert"], params["LakalaBaseUrl"] = platformCert(), "https://s2.lakala.com"
	for k, v := range overrides {
		params[k] = v
	}
	return params
}

// translate runs testdata/sam_translate.py and returns the CloudFormation template it prints.
func translate(t *testing.T, python, root string, params map[string]string, region string) map[string]any {
	t.Helper()
	p, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, filepath.Join(root, "internal/deploycheck/testdata/sam_translate.py"), filepath.Join(root, "template.yaml"), string(p))
	cmd.Env = append(os.Environ(), "AWS_DEFAULT_REGION="+region, "AWS_REGION="+region)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("aws-sam-translator: %v\n%s", err, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

var pseudoParameters = []string{"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition", "AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}

var subVariable = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

// checkNamesResolve walks the template and fails on a name that is nothing of it.
func checkNamesResolve(t *testing.T, tmpl map[string]any) {
	t.Helper()
	resources, _ := tmpl["Resources"].(map[string]any)
	params, _ := tmpl["Parameters"].(map[string]any)
	conditions, _ := tmpl["Conditions"].(map[string]any)
	isValue := func(name string) bool {
		_, r := resources[name]
		_, p := params[name]
		return r || p || slices.Contains(pseudoParameters, name)
	}
	isResource := func(name string) bool { _, ok := resources[name]; return ok }
	isCondition := func(name string) bool { _, ok := conditions[name]; return ok }
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", where, i), e)
			}
		case map[string]any:
			for k, e := range v {
				switch k {
				case "Ref":
					if name, _ := e.(string); !isValue(name) {
						t.Errorf("%s: Ref %v names no resource or parameter", where, e)
					}
				case "Fn::GetAtt":
					var res string
					switch a := e.(type) {
					case []any:
						res, _ = a[0].(string)
					case string:
						res, _, _ = strings.Cut(a, ".")
					}
					if !isResource(res) {
						t.Errorf("%s: Fn::GetAtt %v names no resource", where, e)
					}
				case "Fn::Sub":
					s, vars := "", map[string]any{}
					switch a := e.(type) {
					case string:
						s = a
					case []any:
						s, _ = a[0].(string)
						vars, _ = a[1].(map[string]any)
					}
					for _, m := range subVariable.FindAllStringSubmatch(s, -1) {
						name, _, _ := strings.Cut(m[1], ".")
						if _, local := vars[m[1]]; !local && !isValue(name) && !slices.Contains(pseudoParameters, m[1]) {
							t.Errorf("%s: Fn::Sub ${%s} names no resource or parameter", where, m[1])
						}
					}
				case "Fn::If":
					if a, ok := e.([]any); !ok || len(a) != 3 || !isCondition(fmt.Sprint(a[0])) {
						t.Errorf("%s: Fn::If %v names no condition", where, e)
					}
				case "Condition":
					if name, ok := e.(string); ok && !isCondition(name) {
						t.Errorf("%s: Condition %q is not a condition", where, name)
					}
				case "DependsOn":
					deps := []any{e}
					if a, ok := e.([]any); ok {
						deps = a
					}
					for _, dep := range deps {
						if name, _ := dep.(string); !isResource(name) {
							t.Errorf("%s: DependsOn %v names no resource", where, dep)
						}
					}
				}
				walk(where+"."+k, e)
			}
		}
	}
	for _, section := range []string{"Resources", "Outputs", "Conditions"} {
		walk(section, tmpl[section])
	}
}

// resolve evaluates a template value as CloudFormation would, at its longest: parameters take
// their deploy values, pseudo-parameters the region's, a resource's id or attribute a value as
// long as AWS makes them.
func resolve(v any, params map[string]string, region string) string {
	suffix := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	pseudo := map[string]string{"AWS::Region": region, "AWS::URLSuffix": suffix, "AWS::AccountId": "123456789012",
		"AWS::Partition": "aws-cn", "AWS::StackName": "loomipay-production-stack"}
	name := func(n string) string {
		if p, ok := params[n]; ok {
			return p
		}
		if p, ok := pseudo[n]; ok {
			return p
		}
		if strings.Contains(n, ".") { // an attribute: an ARN
			return fmt.Sprintf("arn:aws-cn:lambda:%s:123456789012:function:%s", region, strings.Repeat("x", 64))
		}
		return "a1b2c3d4e5" // a resource's physical id: the variables name only the API's (10 characters)
	}
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		for k, e := range v {
			switch k {
			case "Ref":
				return name(fmt.Sprint(e))
			case "Fn::GetAtt":
				return name("resource.attribute")
			case "Fn::Sub":
				s, vars := "", map[string]any{}
				switch a := e.(type) {
				case string:
					s = a
				case []any:
					s, _ = a[0].(string)
					vars, _ = a[1].(map[string]any)
				}
				return subVariable.ReplaceAllStringFunc(s, func(m string) string {
					n := m[2 : len(m)-1]
					if local, ok := vars[n]; ok {
						return resolve(local, params, region)
					}
					return name(n)
				})
			case "Fn::If":
				a, _ := e.([]any)
				x, y := resolve(a[1], params, region), resolve(a[2], params, region)
				if len(x) >= len(y) {
					return x
				}
				return y
			case "Fn::Join":
				a, _ := e.([]any)
				var parts []string
				items, _ := a[1].([]any)
				for _, i := range items {
					parts = append(parts, resolve(i, params, region))
				}
				return strings.Join(parts, fmt.Sprint(a[0]))
			}
		}
	}
	return fmt.Sprint(v)
}

// checkEnvironmentSizes measures each function's variables as Lambda does (their JSON).
func checkEnvironmentSizes(t *testing.T, tmpl map[string]any, params map[string]string, region string) {
	t.Helper()
	const limit = 4096
	resources, _ := tmpl["Resources"].(map[string]any)
	n := 0
	for id, r := range resources {
		r, _ := r.(map[string]any)
		if r["Type"] != "AWS::Lambda::Function" {
			continue
		}
		n++
		props, _ := r["Properties"].(map[string]any)
		env, _ := props["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		values := map[string]string{}
		for k, v := range vars {
			values[k] = resolve(v, params, region)
		}
		b, err := json.Marshal(values)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > limit {
			t.Errorf("%s: environment is %d bytes; Lambda allows %d", id, len(b), limit)
		}
		t.Logf("%s: environment %d bytes", id, len(b))
	}
	if n != len(expectedFunctions()) {
		t.Errorf("%d Lambda functions in the translated template; want %d", n, len(expectedFunctions()))
	}
}

var integrationFunction = regexp.MustCompile(`/functions/\$\{(\w+)\.Arn\}/invocations$`)

// checkRoutes follows each route of the HTTP API's definition to its Lambda function and to the
// permission that lets API Gateway invoke it for that route.
func checkRoutes(t *testing.T, tmpl map[string]any, folders map[string]string) {
	t.Helper()
	resources, _ := tmpl["Resources"].(map[string]any)
	var apis []string
	for id, r := range resources {
		if r, _ := r.(map[string]any); r["Type"] == "AWS::ApiGatewayV2::Api" {
			apis = append(apis, id)
		}
	}
	slices.Sort(apis)
	if !slices.Equal(apis, []string{"HttpApi", sandboxAPI}) {
		t.Fatalf("AWS::ApiGatewayV2::Api resources: %v; want HttpApi and %s", apis, sandboxAPI)
	}
	// API Gateway's SourceArn of each function's permissions, as METHOD/path with * for {params}.
	allowed := map[string][]string{}
	for _, r := range resources {
		r, _ := r.(map[string]any)
		p, _ := r["Properties"].(map[string]any)
		if r["Type"] != "AWS::Lambda::Permission" || p["Principal"] != "apigateway.amazonaws.com" || p["Action"] != "lambda:InvokeFunction" {
			continue
		}
		fn, _ := p["FunctionName"].(map[string]any)
		source := resolve(p["SourceArn"], nil, "us-east-1")
		if _, route, ok := strings.Cut(source, "/*/"); ok { // after the API id and the stage (*)
			allowed[fmt.Sprint(fn["Ref"])] = append(allowed[fmt.Sprint(fn["Ref"])], route)
		}
	}
	pathParam := regexp.MustCompile(`\{[^}]+\}`)
	routesOf := func(api string) (got []httpapi.Route) {
		r, _ := resources[api].(map[string]any)
		props, _ := r["Properties"].(map[string]any)
		body, _ := props["Body"].(map[string]any)
		paths, _ := body["paths"].(map[string]any)
		for path, methods := range paths {
			// A function with a condition (the sandbox's) has its routes under Fn::If of it.
			methods, _ := whenTrue(methods).(map[string]any)
			for method, op := range methods {
				op, _ := whenTrue(op).(map[string]any)
				integration, _ := op["x-amazon-apigateway-integration"].(map[string]any)
				uri, _ := whenTrue(integration["uri"]).(map[string]any)
				m := integrationFunction.FindStringSubmatch(fmt.Sprint(uri["Fn::Sub"]))
				verb := strings.ToUpper(method)
				if method == "x-amazon-apigateway-any-method" {
					verb = "ANY"
				}
				route := verb + " " + path
				if m == nil {
					t.Errorf("%s: integration %v does not invoke a function", route, integration)
					continue
				}
				fn, _ := resources[m[1]].(map[string]any)
				if fn["Type"] != "AWS::Lambda::Function" || integration["type"] != "aws_proxy" || integration["payloadFormatVersion"] != "2.0" {
					t.Errorf("%s: integration %v; want an aws_proxy (payload 2.0) of a Lambda function", route, integration)
				}
				pattern := strings.Replace(verb, "ANY", "*", 1) + pathParam.ReplaceAllString(path, "*")
				if !slices.ContainsFunc(allowed[m[1]], func(a string) bool { return routeMatches(a, pattern) }) {
					t.Errorf("%s: %s has no permission letting API Gateway invoke it for the route (it has %v)", route, m[1], allowed[m[1]])
				}
				got = append(got, httpapi.Route{Method: verb, Path: path, Function: folders[m[1]]})
			}
		}
		return got
	}
	if got := routesOf(sandboxAPI); fmt.Sprint(got) != fmt.Sprint([]httpapi.Route{{Method: "ANY", Path: "/sandbox/{proxy+}", Function: functionSandbox}}) {
		t.Errorf("routes of the sandbox's API: %v; want %s on the sandbox function alone", got, sandboxRoute)
	}
	got := routesOf("HttpApi")
	want := slices.Clone(httpapi.Routes)
	for _, r := range console.Routes {
		want = append(want, httpapi.Route{Method: r.Method, Path: r.Path, Function: r.Function})
	}
	byRoute := func(a, b httpapi.Route) int {
		return strings.Compare(a.Method+" "+a.Path+" "+a.Function, b.Method+" "+b.Path+" "+b.Function)
	}
	slices.SortFunc(got, byRoute)
	slices.SortFunc(want, byRoute)
	if !slices.Equal(got, want) {
		t.Errorf("routes of the deployed API (method, path, function folder):\n got  %v\n want %v (httpapi.Routes and the console's)", got, want)
	}
}

// routeMatches reports whether a permission's METHOD/path (with * wildcards, as API Gateway
// compares them) covers the route's pattern.
func routeMatches(allowed, route string) bool {
	re := "^" + strings.ReplaceAll(regexp.QuoteMeta(allowed), `\*`, ".*") + "$"
	ok, _ := regexp.MatchString(re, route)
	return ok || allowed == route
}

// lintTranslated runs cfn-lint on the translated template with the environment's parameter
// values: it then checks the values themselves (allowed values and patterns) and everything they
// decide.
func lintTranslated(t *testing.T, tmpl map[string]any, params map[string]string, regions ...string) {
	t.Helper()
	cfnLint := requireTool(t, "cfn-lint", "--version")
	b, err := json.Marshal(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "translated.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--parameters"}
	for k, v := range params {
		args = append(args, k+"="+v)
	}
	args = append(append(args, "--regions"), regions...)
	out, err := exec.Command(cfnLint, append(args, "--template", file)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("cfn-lint on the translated template with these parameters: %v\n%s", err, out)
	}
}

// whenTrue is a value under Fn::If, as when its condition holds (SAM wraps what a function with a
// condition adds to an API in Fn::If of that condition, at every level).
func whenTrue(v any) any {
	for {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		branches, ok := m["Fn::If"].([]any)
		if !ok || len(branches) != 3 {
			return v
		}
		v = branches[1]
	}
}
