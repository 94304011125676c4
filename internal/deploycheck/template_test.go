package deploycheck_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/console"
	"github.com/loomipay/loomipay/shared/httpapi"
)

// functionProcessor is the scheduled function's folder; the HTTP functions' names come from httpapi.
const functionProcessor = "processor"

// functionMigrate applies the migrations inside the VPC (a custom resource on every deploy).
const functionMigrate = "migrate"

// functionSandbox is the Lakala sandbox of a sandbox stage, deployed under the condition
// sandboxCondition on an HTTP API of its own (sandboxAPI), its routes all under sandboxRoute.
const (
	functionSandbox  = "sandbox"
	sandboxCondition = "WithSandbox"
	sandboxAPI       = "SandboxHttpApi"
	sandboxRoute     = "ANY /sandbox/{proxy+}"
)

// merchantSecrets is the secrets of the merchants an operator adds (shared/merchants.SecretPrefix):
// the functions that call Lakala or verify its notifications may read them.
const merchantSecrets = `{"Fn::Sub":"arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:loomipay/${Stage}/merchants/*"}`

// deadlineMargin is processor.Config.DeadlineMargin's default (set in an unexported method, so
// repeated here): Run stops this long before the invocation's deadline to finish and ack.
const deadlineMargin = 5 * time.Second

func expectedFunctions() []string {
	return []string{httpapi.FunctionCreateOrder, httpapi.FunctionGetOrder, functionMigrate, functionProcessor, httpapi.FunctionRefund, httpapi.FunctionWebhook,
		console.Function, functionSandbox}
}

func TestTemplate(t *testing.T) {
	d := loadTemplate(t)
	root := repoRoot(t)

	t.Run("six functions with a main.go each", func(t *testing.T) {
		var folders []string
		for _, f := range d.Functions {
			folders = append(folders, f.Folder)
			if want := "functions/" + f.Folder; f.Props.CodeUri != want {
				t.Errorf("%s: CodeUri = %q; want %q", f.LogicalID, f.Props.CodeUri, want)
			}
			if _, err := os.Stat(filepath.Join(root, f.Props.CodeUri, "main.go")); err != nil {
				t.Errorf("%s: CodeUri %s has no main.go: %v", f.LogicalID, f.Props.CodeUri, err)
			}
		}
		want := expectedFunctions()
		slices.Sort(want)
		if !slices.Equal(folders, want) {
			t.Errorf("function folders in template.yaml = %v; want %v", folders, want)
		}
		mains, err := filepath.Glob(filepath.Join(root, "functions", "*", "main.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mains {
			if name := filepath.Base(filepath.Dir(m)); !slices.Contains(folders, name) {
				t.Errorf("functions/%s/main.go is not deployed by any function in template.yaml", name)
			}
		}
	})

	t.Run("runtime, handler, architecture and build method", func(t *testing.T) {
		g := d.Template.Globals.Function
		if g.Runtime != "provided.al2023" {
			t.Errorf("Globals.Function.Runtime = %q; want provided.al2023", g.Runtime)
		}
		if g.Handler != "bootstrap" {
			t.Errorf("Globals.Function.Handler = %q; want bootstrap", g.Handler)
		}
		if !slices.Equal(g.Architectures, []string{"arm64"}) {
			t.Errorf("Globals.Function.Architectures = %v; want [arm64]", g.Architectures)
		}
		for _, f := range d.Functions {
			if f.Props.Runtime != "provided.al2023" || f.Props.Handler != "bootstrap" || !slices.Equal(f.Props.Architectures, []string{"arm64"}) {
				t.Errorf("%s: runtime %q, handler %q, architectures %v; want provided.al2023, bootstrap, [arm64]",
					f.LogicalID, f.Props.Runtime, f.Props.Handler, f.Props.Architectures)
			}
			if f.BuildMethod != "go1.x" {
				t.Errorf("%s: Metadata.BuildMethod = %q; want go1.x", f.LogicalID, f.BuildMethod)
			}
		}
	})

	t.Run("HTTP routes equal httpapi.Routes", func(t *testing.T) {
		var apis []string
		for id, r := range d.Template.Resources {
			if r.Type == "AWS::Serverless::HttpApi" {
				apis = append(apis, id)
			}
		}
		slices.Sort(apis)
		if !slices.Equal(apis, []string{"HttpApi", sandboxAPI}) {
			t.Fatalf("HttpApi resources = %v; want HttpApi and %s", apis, sandboxAPI)
		}
		if c := d.Template.Resources[sandboxAPI].Condition; c != sandboxCondition {
			t.Errorf("%s: Condition %q; want %s (only a sandbox stage has it)", sandboxAPI, c, sandboxCondition)
		}
		var got []httpapi.Route
		for _, f := range d.Functions {
			api := "HttpApi"
			if f.Folder == functionSandbox {
				api = sandboxAPI
				if f.Condition != sandboxCondition {
					t.Errorf("%s: Condition %q; want %s (never in prod)", f.LogicalID, f.Condition, sandboxCondition)
				}
			}
			for name, e := range f.Props.Events {
				if e.Type != "HttpApi" {
					continue
				}
				p := e.Properties
				if f.Folder == functionSandbox {
					if route := p.Method + " " + p.Path; route != sandboxRoute {
						t.Errorf("%s.%s: route %s; want %s (everything of the sandbox under /sandbox/)", f.LogicalID, name, route, sandboxRoute)
					}
				} else {
					got = append(got, httpapi.Route{Method: p.Method, Path: p.Path, Function: f.Folder})
				}
				if p.PayloadFormatVersion != "2.0" {
					t.Errorf("%s.%s: PayloadFormatVersion = %q; want \"2.0\" (httpadapter.NewV2)", f.LogicalID, name, p.PayloadFormatVersion)
				}
				if ref, _ := p.ApiId.Ref(); ref != api {
					t.Errorf("%s.%s: ApiId = %s; want !Ref %s", f.LogicalID, name, p.ApiId, api)
				}
			}
		}
		want := slices.Clone(httpapi.Routes)
		for _, r := range console.Routes { // the console's function
			want = append(want, httpapi.Route{Method: r.Method, Path: r.Path, Function: r.Function})
		}
		byRoute := func(a, b httpapi.Route) int {
			return strings.Compare(a.Method+" "+a.Path+" "+a.Function, b.Method+" "+b.Path+" "+b.Function)
		}
		slices.SortFunc(got, byRoute)
		slices.SortFunc(want, byRoute)
		if !slices.Equal(got, want) {
			t.Errorf("HttpApi events (method, path, function folder):\n got  %v\n want %v (httpapi.Routes)", got, want)
		}
	})

	t.Run("events are HTTP routes or the processor's schedule", func(t *testing.T) {
		for _, f := range d.Functions {
			for name, e := range f.Props.Events {
				want := "HttpApi"
				if f.Folder == functionProcessor || (f.Folder == functionSandbox && e.Type == "ScheduleV2") {
					want = "ScheduleV2" // the sandbox's notification retries, too
				}
				if e.Type != want {
					t.Errorf("%s.%s: Type = %q; want %q", f.LogicalID, name, e.Type, want)
				}
			}
		}
	})

	t.Run("processor schedule, concurrency, retries and timeout", func(t *testing.T) {
		p := d.function(t, functionProcessor)
		var schedules []string
		for name, e := range p.Props.Events {
			if e.Type == "ScheduleV2" {
				schedules = append(schedules, name)
				if got := e.Properties.ScheduleExpression; got != "rate(1 minute)" {
					t.Errorf("%s.%s: ScheduleExpression = %q; want rate(1 minute)", p.LogicalID, name, got)
				}
			}
		}
		if len(schedules) != 1 {
			t.Errorf("%s: ScheduleV2 events = %v; want exactly one", p.LogicalID, schedules)
		}
		// Scale-out: the reserved concurrency caps the runs, and the processor knows the same cap.
		rc := p.Props.ReservedConcurrentExecutions
		if rc == nil {
			t.Fatalf("%s: no ReservedConcurrentExecutions: nothing caps the runs", p.LogicalID)
		}
		if ref, _ := rc.Ref(); ref == "" || p.Env["PROCESSOR_MAX_RUNS"].String() != rc.String() {
			t.Errorf("%s: ReservedConcurrentExecutions = %s, PROCESSOR_MAX_RUNS = %s; want the same !Ref parameter", p.LogicalID, rc, p.Env["PROCESSOR_MAX_RUNS"])
		}
		self := `"Resource":{"Fn::Sub":"arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:loomipay-${Stage}-processor"}`
		if !strings.Contains(fmt.Sprint(policyValues(p)), `"Action":"lambda:InvokeFunction","Effect":"Allow",`+self) {
			t.Errorf("%s: no lambda:InvokeFunction on loomipay-${Stage}-processor itself: the scheduled run cannot start extra runs; policies %v", p.LogicalID, policyValues(p))
		}
		var retries *int
		if c := p.Props.EventInvokeConfig; c != nil {
			retries = c.MaximumRetryAttempts
		}
		if retries == nil || *retries != 0 {
			t.Errorf("%s: EventInvokeConfig.MaximumRetryAttempts = %s; want 0 (the next schedule is the retry)", p.LogicalID, intText(retries))
		}
		if timeout := time.Duration(p.Props.Timeout) * time.Second; timeout <= deadlineMargin {
			t.Errorf("%s: Timeout = %v; want more than the processor's deadline margin %v, or a run does no work", p.LogicalID, timeout, deadlineMargin)
		}
	})

	t.Run("environment declares exactly the variables the code reads", func(t *testing.T) {
		declared := make(map[string][]string) // variable → functions that have it
		for _, f := range d.Functions {
			for name := range f.Env {
				declared[name] = append(declared[name], f.LogicalID)
			}
		}
		known := make(map[string]bool)
		for _, v := range config.Variables {
			known[v.Name] = true
			if v.Secret {
				known[v.Name+"_SECRET_ARN"] = true
				known[v.Name+"_SECRET_KEY"] = true // picks a key of a JSON secret (shared/secrets)
			}
			_, plain := declared[v.Name]
			_, arn := declared[v.Name+"_SECRET_ARN"]
			switch {
			case v.Secret && plain && !emptyEverywhere(d.Functions, v.Name):
				// An empty declaration is allowed (and wanted): sam local invoke --env-vars can
				// only set variables the template declares, and empty falls through to the ARN.
				t.Errorf("%s is a secret: declare %s_SECRET_ARN, not the value (in %v)", v.Name, v.Name, declared[v.Name])
			case v.Secret && !arn:
				t.Errorf("%s_SECRET_ARN is declared by no function; config.Variables reads %s", v.Name, v.Name)
			case v.WorkerOnly && (plain || arn):
				t.Errorf("%s is read only by loomipay worker; no function should declare it (in %v)", v.Name, declared[v.Name])
			case !v.Secret && !plain && !v.WorkerOnly:
				t.Errorf("%s is declared by no function; config.Variables reads it", v.Name)
			}
		}
		for name, funcs := range declared {
			if !known[name] {
				t.Errorf("%s is declared (in %v) but the code does not read it (config.Variables)", name, funcs)
			}
		}
	})

	t.Run("secret ARNs come from parameters and have a read policy", func(t *testing.T) {
		for _, f := range d.Functions {
			policies := f.secretPolicyARNs()
			var carried []string
			for name, value := range f.Env {
				if !strings.HasSuffix(name, "_SECRET_ARN") {
					continue
				}
				ref, isRef := value.Ref()
				text, isText := value.Text()
				switch {
				case isText && text == "":
					continue // this function does not read that secret (a Globals variable emptied)
				case isRef:
					if _, ok := d.Template.Parameters[ref]; !ok {
						t.Errorf("%s: %s = !Ref %s, which is not a template parameter", f.LogicalID, name, ref)
					}
				case isText && strings.HasPrefix(text, "arn:"):
				default:
					t.Errorf("%s: %s = %s; want !Ref of a parameter or an arn:… string", f.LogicalID, name, value)
				}
				if !slices.Contains(policies, value.String()) {
					t.Errorf("%s: %s = %s has no AWSSecretsManagerGetSecretValuePolicy with that SecretArn (policies for %v)",
						f.LogicalID, name, value, policies)
				}
				carried = append(carried, value.String())
			}
			// Least privilege: a function may read exactly the secrets it is given, no other — and
			// the added merchants' secrets if it calls Lakala or verifies its notifications.
			readsMerchants := slices.Contains([]string{httpapi.FunctionCreateOrder, httpapi.FunctionWebhook, functionProcessor, console.Function}, f.Folder)
			if slices.Contains(policies, merchantSecrets) != readsMerchants {
				t.Errorf("%s: may read the merchants' secrets %s: %v; want %v", f.LogicalID, merchantSecrets, !readsMerchants, readsMerchants)
			}
			for _, p := range policies {
				if p == merchantSecrets && readsMerchants {
					continue
				}
				if !slices.Contains(carried, p) {
					t.Errorf("%s: may read secret %s, which none of its *_SECRET_ARN names", f.LogicalID, p)
				}
			}
		}
	})

	t.Run("each function has what it needs to start", func(t *testing.T) {
		// config.Open needs the database; a Lambda has no local Redis to fall back on; the webhook
		// verifies with the platform certificate; deps.Processor needs the key, cert and notify URL.
		needs := map[string][]string{
			functionMigrate:             {"DATABASE_URL"},                                                            // migrations touch PostgreSQL only
			httpapi.FunctionCreateOrder: {"DATABASE_URL", "REDIS_URL", "LAKALA_PRIVATE_KEY", "LAKALA_PLATFORM_CERT"}, // the close route
			httpapi.FunctionGetOrder:    {"DATABASE_URL", "REDIS_URL"},
			httpapi.FunctionRefund:      {"DATABASE_URL", "REDIS_URL"},
			httpapi.FunctionWebhook:     {"DATABASE_URL", "REDIS_URL", "LAKALA_PLATFORM_CERT"},
			functionProcessor:           {"DATABASE_URL", "REDIS_URL", "LAKALA_PRIVATE_KEY", "LAKALA_PLATFORM_CERT", "LAKALA_NOTIFY_URL"},
			console.Function:            {"DATABASE_URL", "REDIS_URL", "LAKALA_PRIVATE_KEY", "LAKALA_PLATFORM_CERT"}, // an operator's close
			functionSandbox:             {"DATABASE_URL", "LAKALA_PRIVATE_KEY", "LAKALA_SANDBOX"},                    // the key's public half verifies the stage's requests
		}
		for folder, vars := range needs {
			f := d.function(t, folder)
			for _, v := range vars {
				_, plain := f.Env[v]
				arnValue, arn := f.Env[v+"_SECRET_ARN"]
				if text, isText := arnValue.Text(); arn && isText && text == "" {
					arn = false
				}
				if !plain && !arn {
					t.Errorf("%s: neither %s nor %s_SECRET_ARN is set; the function cannot start without it", f.LogicalID, v, v)
				}
			}
		}
	})

	t.Run("no literal secrets", func(t *testing.T) {
		credentialURL := regexp.MustCompile(`(?i)\b(postgres(ql)?|rediss?)://[^\s/@:]*:[^\s/@]+@`)
		text := string(d.Raw)
		lower := strings.ToLower(text)
		for _, marker := range []string{"-----begin", "password"} {
			if i := strings.Index(lower, marker); i >= 0 {
				t.Errorf("template.yaml line %d contains %q: pass secrets as Secrets Manager ARNs", lineOf(text, i), marker)
			}
		}
		if loc := credentialURL.FindStringIndex(text); loc != nil {
			t.Errorf("template.yaml line %d has a URL with credentials: %q", lineOf(text, loc[0]), text[loc[0]:loc[1]])
		}
	})

	t.Run("outputs ApiUrl and WebhookUrl", func(t *testing.T) {
		webhookPath := ""
		for _, r := range httpapi.Routes {
			if r.Function == httpapi.FunctionWebhook {
				webhookPath = r.Path
			}
		}
		apiURL, ok := d.Template.Outputs["ApiUrl"]
		if !ok {
			t.Fatal("Outputs has no ApiUrl")
		}
		webhookURL, ok := d.Template.Outputs["WebhookUrl"]
		if !ok {
			t.Fatal("Outputs has no WebhookUrl")
		}
		api, _ := apiURL.Value.Text()
		hook, _ := webhookURL.Value.Text()
		if !strings.HasSuffix(hook, webhookPath) {
			t.Errorf("WebhookUrl = %s; want it to end with %s", webhookURL.Value, webhookPath)
		}
		if hook != api+webhookPath {
			t.Errorf("WebhookUrl = %s; want ApiUrl (%s) + %s", webhookURL.Value, apiURL.Value, webhookPath)
		}
		notify := d.function(t, functionProcessor).Env["LAKALA_NOTIFY_URL"]
		if notify.String() != webhookURL.Value.String() {
			t.Errorf("processor LAKALA_NOTIFY_URL = %s; want the WebhookUrl output %s", notify, webhookURL.Value)
		}
	})
}

func policyValues(f function) []string {
	var out []string
	for _, p := range f.Props.Policies {
		out = append(out, p.String())
	}
	return out
}

func lineOf(text string, offset int) int {
	return strings.Count(text[:offset], "\n") + 1
}

// emptyEverywhere reports whether every function that declares name gives it the empty string.
func emptyEverywhere(funcs []function, name string) bool {
	for _, f := range funcs {
		if v, ok := f.Env[name]; ok {
			if text, isText := v.Text(); !isText || text != "" {
				return false
			}
		}
	}
	return true
}

func intText(p *int) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
