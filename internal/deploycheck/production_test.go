package deploycheck_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"

	"github.com/loomipay/loomipay/shared/config"
)

// publicTestValues are Lakala's published test settings: no default and no prod override may
// hold one.
var publicTestValues = []string{"OP00000003", "82229007392000A", "00dfba8194c41b84cf", "D9296400", "test.wsmsd.cn", "127.0.0.1"}

// TestNoTestDefaults: a deploy names its own merchant; the prod profile sets no test value.
func TestNoTestDefaults(t *testing.T) {
	d := loadTemplate(t)
	for name, p := range d.Template.Parameters {
		if p.Default == nil {
			continue
		}
		for _, v := range publicTestValues {
			if strings.Contains(*p.Default, v) {
				t.Errorf("parameter %s defaults to %q, a public test value", name, *p.Default)
			}
		}
		if strings.HasPrefix(*p.Default, "http://") {
			t.Errorf("parameter %s defaults to an http:// URL", name)
		}
	}
	for _, name := range []string{"Stage", "LakalaAppId", "LakalaSerialNo", "LakalaMerchantNo", "LakalaTermNo", "RefundRequestIp"} {
		p, ok := d.Template.Parameters[name]
		if !ok {
			t.Errorf("template.yaml has no parameter %s", name)
		} else if p.Default != nil {
			t.Errorf("parameter %s has a default (%q); a deploy must set it", name, *p.Default)
		}
	}
	// Lakala's address and certificate are the sandbox's in a sandbox stage, and required by a
	// rule everywhere else; the sandbox is refused in prod by a rule (and by the code).
	var rules struct {
		Rules map[string]struct {
			RuleCondition cfnValue   `yaml:"RuleCondition"`
			Assertions    []cfnValue `yaml:"Assertions"`
		} `yaml:"Rules"`
	}
	if err := yaml.Unmarshal(d.Raw, &rules); err != nil {
		t.Fatal(err)
	}
	required := rules.Rules["LakalaOutsideTheSandbox"]
	for _, name := range []string{"LakalaBaseUrl", "LakalaPlatformCert"} {
		if p := d.Template.Parameters[name]; p.Default == nil || *p.Default != "" {
			continue // required by CloudFormation itself
		}
		if !strings.Contains(fmt.Sprint(required.Assertions), `{"Ref":"`+name+`"}`) {
			t.Errorf("parameter %s may be empty, and no rule LakalaOutsideTheSandbox requires it outside a sandbox stage", name)
		}
	}
	if r := rules.Rules["SandboxNeverInProd"]; r.RuleCondition.String() != `{"Fn::Equals":[{"Ref":"Stage"},"prod"]}` || !strings.Contains(fmt.Sprint(r.Assertions), "LakalaSandbox") {
		t.Errorf("no rule SandboxNeverInProd refusing LakalaSandbox under Stage=prod: %+v", r)
	}
	// What a deploy must give, it cannot give empty: CloudFormation refuses it before any change,
	// where an empty secret ARN would otherwise fall back to a local default at run time.
	for name, p := range d.Template.Parameters {
		switch {
		case strings.HasSuffix(name, "SecretArn"):
			if !strings.HasPrefix(p.AllowedPattern, "^arn:") || p.Default != nil {
				t.Errorf("parameter %s: AllowedPattern %q, default %v; want a required ^arn:… pattern", name, p.AllowedPattern, p.Default)
			}
		case p.Default == nil && len(p.AllowedValues) == 0 && p.AllowedPattern == "" && (p.MinLength == nil || *p.MinLength < 1):
			t.Errorf("parameter %s has no default and accepts an empty value (MinLength or AllowedPattern)", name)
		}
	}
	if p := d.Template.Parameters["LakalaBaseUrl"].AllowedPattern; !strings.HasPrefix(p, "^https://") && !strings.HasPrefix(p, "^(https://") {
		t.Errorf("LakalaBaseUrl's AllowedPattern = %q; want ^https://…", p)
	}
	for _, f := range d.Functions {
		if v := f.Env["STAGE"]; v.String() != `{"Ref":"Stage"}` {
			t.Errorf("%s: STAGE = %s; want !Ref Stage, so the stage checks apply", f.LogicalID, v)
		}
		// Values written into the template itself reach every stage, prod included.
		for name, v := range f.Env {
			text, ok := v.Text()
			if !ok {
				continue
			}
			for _, bad := range append(slices.Clone(publicTestValues), "http://", "localhost") {
				if strings.Contains(text, bad) {
					t.Errorf("%s: %s = %q holds the test value %s", f.LogicalID, name, text, bad)
				}
			}
		}
		if v, declared := f.Env["WEBHOOK_ALLOW_LOOPBACK"]; declared && v.String() != `"false"` {
			t.Errorf("%s: WEBHOOK_ALLOW_LOOPBACK = %q; want \"false\" (loopback webhooks are for local development)", f.LogicalID, v)
		}
	}
	var sam map[string]any
	if _, err := toml.Decode(string(readRepoFile(t, "samconfig.toml")), &sam); err != nil {
		t.Fatal(err)
	}
	deploy, _ := tableAt(sam, "prod", "deploy", "parameters")
	overrides := parameterOverrides(t, deploy["parameter_overrides"])
	if overrides["Stage"] != "prod" {
		t.Errorf("prod profile: Stage = %q; want prod", overrides["Stage"])
	}
	if overrides["LogLevel"] == "debug" {
		t.Error("prod profile: LogLevel=debug")
	}
	if v, ok := overrides["LakalaBaseUrl"]; ok && v != "https://s2.lakala.com" {
		t.Errorf("prod profile: LakalaBaseUrl=%s; want Lakala's production https://s2.lakala.com", v)
	}
	for name, value := range overrides {
		for _, v := range publicTestValues {
			if strings.Contains(value, v) {
				t.Errorf("prod profile: %s=%s is a public test value", name, value)
			}
		}
		if strings.HasPrefix(value, "http://") {
			t.Errorf("prod profile: %s=%s is not https", name, value)
		}
	}
}

// TestDocsStateEveryStageCheck: what a deploy outside dev is refused for is written where the
// person deploying reads the configuration (docs/CONFIGURATION.md, "Stage checks").
func TestDocsStateEveryStageCheck(t *testing.T) {
	section := docSection(t, "docs/CONFIGURATION.md", "Stage checks")
	for _, name := range config.StageChecks {
		if !strings.Contains(section, "`"+name+"`") {
			t.Errorf("docs/CONFIGURATION.md's Stage checks do not name `%s`, which config.Validate refuses outside dev", name)
		}
	}
}

// docSection is the text of a file's "## heading" section, up to the next "## " heading.
func docSection(t *testing.T, file, heading string) string {
	t.Helper()
	_, section, ok := strings.Cut(string(readRepoFile(t, file)), "\n## "+heading+"\n")
	if !ok {
		t.Fatalf("%s has no ## %s section", file, heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	return section
}

// TestLimits: nothing unbounded: API Gateway throttles, every function has a reserved
// concurrency, and docs/DEPLOYING.md states the connection budget those make.
func TestLimits(t *testing.T) {
	d := loadTemplate(t)
	api := d.Template.Resources["HttpApi"]
	var props struct {
		DefaultRouteSettings struct {
			ThrottlingRateLimit  cfnValue `yaml:"ThrottlingRateLimit"`
			ThrottlingBurstLimit cfnValue `yaml:"ThrottlingBurstLimit"`
		} `yaml:"DefaultRouteSettings"`
	}
	if err := api.Properties.Decode(&props); err != nil {
		t.Fatal(err)
	}
	if props.DefaultRouteSettings.ThrottlingRateLimit.v == nil || props.DefaultRouteSettings.ThrottlingBurstLimit.v == nil {
		t.Error("HttpApi has no DefaultRouteSettings throttling (rate and burst)")
	}

	param := func(v *cfnValue) int {
		t.Helper()
		if v == nil {
			return -1
		}
		text, ok := v.Text()
		if ref, isRef := v.Ref(); isRef {
			p := d.Template.Parameters[ref]
			if p.Default == nil {
				t.Fatalf("%s has no default to budget with", ref)
			}
			text, ok = *p.Default, true
		}
		n, err := strconv.Atoi(text)
		if !ok || err != nil {
			t.Fatalf("%s is not a number", v)
		}
		return n
	}
	budget, reserved := 0, 0
	for _, f := range d.Functions {
		if f.Condition == sandboxCondition {
			// A sandbox stage's own: docs/DEPLOYING.md states what it adds; the README's budget is
			// a production stage's.
			if param(f.Props.ReservedConcurrentExecutions) < 1 {
				t.Errorf("%s: no ReservedConcurrentExecutions", f.LogicalID)
			}
			continue
		}
		rc := param(f.Props.ReservedConcurrentExecutions)
		if rc < 1 {
			t.Errorf("%s: no ReservedConcurrentExecutions", f.LogicalID)
			continue
		}
		reserved += rc
		conns := f.Env["DATABASE_MAX_CONNS"]
		budget += rc * param(&conns)
	}
	limits := docSection(t, "docs/DEPLOYING.md", "Limits and the connection budget")
	// Lambda refuses a reservation that leaves an account fewer than 100 unreserved executions.
	flat := strings.Join(strings.Fields(limits), " ")
	for _, want := range []string{
		fmt.Sprintf("reserve %d concurrent executions in all", reserved),
		fmt.Sprintf("concurrency quota of at least %d", reserved+100),
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("docs/DEPLOYING.md's limits do not say %q (the template's reserved concurrencies and Lambda's 100 unreserved)", want)
		}
	}
	m := regexp.MustCompile(`connection budget[^\n]*= (\d+) connections`).FindStringSubmatch(limits)
	if m == nil {
		t.Fatal("docs/DEPLOYING.md states no connection budget ('connection budget … = N connections')")
	}
	if m[1] != strconv.Itoa(budget) {
		t.Errorf("docs/DEPLOYING.md's connection budget = %s; the template's defaults make Σ reserved concurrency × DATABASE_MAX_CONNS = %d", m[1], budget)
	}
}

// TestVPC: what a function in private subnets needs is offered or stated: the NAT (Lakala,
// webhooks, CloudFormation's S3 URL), and optional endpoints for Secrets Manager and for Lambda's
// API (the processor's scale-out), reachable from the functions.
func TestVPC(t *testing.T) {
	d := loadTemplate(t)
	desc := d.Template.Parameters["SubnetIds"].Description
	for _, need := range []string{"NAT", "Lakala", "webhooks", "S3", "CreateSecretsManagerEndpoint", "CreateLambdaEndpoint", "Availability Zone"} {
		if !strings.Contains(desc, need) {
			t.Errorf("SubnetIds' description does not mention %s: %q", need, desc)
		}
	}
	network := docSection(t, "docs/DEPLOYING.md", "Network")
	for _, need := range []string{"NAT gateway", "Lakala", "webhooks", "S3", "Secrets Manager", "CreateSecretsManagerEndpoint",
		"Lambda's API", "CreateLambdaEndpoint", "CloudWatch", "KMS", "rediss://", "TLS", "5432", "6379", "RefundRequestIp"} {
		if !strings.Contains(network, need) {
			t.Errorf("docs/DEPLOYING.md's Network does not state %q", need)
		}
	}

	var endpointGroup string
	for id, r := range d.Template.Resources {
		if r.Type != "AWS::EC2::SecurityGroup" {
			continue
		}
		endpointGroup = id
		var props struct {
			SecurityGroupIngress []struct {
				IpProtocol            string   `yaml:"IpProtocol"`
				FromPort              int      `yaml:"FromPort"`
				ToPort                int      `yaml:"ToPort"`
				SourceSecurityGroupId cfnValue `yaml:"SourceSecurityGroupId"`
			} `yaml:"SecurityGroupIngress"`
		}
		if err := r.Properties.Decode(&props); err != nil {
			t.Fatal(err)
		}
		want := `{"Fn::Select":["0",{"Ref":"SecurityGroupIds"}]}`
		if len(props.SecurityGroupIngress) != 1 || props.SecurityGroupIngress[0].FromPort != 443 || props.SecurityGroupIngress[0].ToPort != 443 || props.SecurityGroupIngress[0].SourceSecurityGroupId.String() != want {
			t.Errorf("%s: ingress %+v; want exactly HTTPS (443) from the functions' first security group", id, props.SecurityGroupIngress)
		}
		if r.Condition == "" {
			t.Errorf("%s: unconditional; want it only with an endpoint", id)
		}
	}
	if endpointGroup == "" {
		t.Fatal("no AWS::EC2::SecurityGroup for the endpoints")
	}
	for id, service := range map[string]string{"SecretsManagerEndpoint": ".secretsmanager", "LambdaEndpoint": ".lambda"} {
		ep, ok := d.Template.Resources[id]
		if !ok || ep.Type != "AWS::EC2::VPCEndpoint" || ep.Condition == "" {
			t.Errorf("no conditional AWS::EC2::VPCEndpoint %s (got %q)", id, ep.Type)
			continue
		}
		var props struct {
			VpcEndpointType   string   `yaml:"VpcEndpointType"`
			ServiceName       cfnValue `yaml:"ServiceName"`
			PrivateDnsEnabled bool     `yaml:"PrivateDnsEnabled"`
			SecurityGroupIds  cfnValue `yaml:"SecurityGroupIds"`
		}
		if err := ep.Properties.Decode(&props); err != nil {
			t.Fatal(err)
		}
		if props.VpcEndpointType != "Interface" || !props.PrivateDnsEnabled || !strings.Contains(props.ServiceName.String(), service+`"`) {
			t.Errorf("%s = %+v; want an Interface endpoint for %s with private DNS", id, props, service)
		}
		// The functions' own groups usually admit nothing inbound: the endpoint needs its own.
		if want := `[{"Ref":"` + endpointGroup + `"}]`; props.SecurityGroupIds.String() != want {
			t.Errorf("%s: SecurityGroupIds = %s; want %s", id, props.SecurityGroupIds, want)
		}
	}
	if _, ok := d.Template.Parameters["SecretsKmsKeyArn"]; !ok {
		t.Error("no SecretsKmsKeyArn parameter")
	}
	kms := d.Template.Resources["SecretsKmsDecryptPolicy"]
	if kms.Type != "AWS::IAM::ManagedPolicy" || kms.Condition == "" {
		t.Errorf("SecretsKmsDecryptPolicy: type %q condition %q; want a conditional AWS::IAM::ManagedPolicy", kms.Type, kms.Condition)
	}
	var doc struct {
		PolicyDocument cfnValue `yaml:"PolicyDocument"`
	}
	if err := kms.Properties.Decode(&doc); err != nil || !strings.Contains(doc.PolicyDocument.String(), `"kms:Decrypt"`) {
		t.Errorf("SecretsKmsDecryptPolicy does not allow kms:Decrypt (%v)", err)
	}
	want := `{"Fn::If":["HasKmsKey",{"Ref":"SecretsKmsDecryptPolicy"},{"Ref":"AWS::NoValue"}]}`
	for _, f := range d.Functions {
		if !slices.Contains(policyValues(f), want) {
			t.Errorf("%s: no kms:Decrypt policy for a customer-managed key (policies %v)", f.LogicalID, policyValues(f))
		}
	}
}

// TestMigrationsRunOnDeploy: the migrate function runs as a custom resource whenever its code
// changes, and every other function is updated only after it succeeded.
func TestMigrationsRunOnDeploy(t *testing.T) {
	d := loadTemplate(t)
	fn := d.function(t, functionMigrate)
	if fn.Props.AutoPublishAlias == "" {
		t.Errorf("%s has no AutoPublishAlias: its version would not change with its code", fn.LogicalID)
	}
	var resource string
	for id, r := range d.Template.Resources {
		if r.Type != "Custom::Migrations" {
			continue
		}
		resource = id
		var props struct {
			ServiceToken   cfnValue `yaml:"ServiceToken"`
			ServiceTimeout cfnValue `yaml:"ServiceTimeout"`
			Version        cfnValue `yaml:"Version"`
		}
		if err := r.Properties.Decode(&props); err != nil {
			t.Fatal(err)
		}
		// CloudFormation refuses to change a custom resource's ServiceToken ("Modifying service
		// token is not allowed"): it must be the alias, whose ARN stays; the version, a property,
		// changes with the code and makes the Update.
		if want := fmt.Sprintf(`{"Ref":"%s.Alias"}`, fn.LogicalID); props.ServiceToken.String() != want {
			t.Errorf("%s.ServiceToken = %s; want %s (an ARN that never changes)", id, props.ServiceToken, want)
		}
		if want := fmt.Sprintf(`{"Ref":"%s.Version"}`, fn.LogicalID); props.Version.String() != want {
			t.Errorf("%s.Version = %s; want %s (a new version re-runs the migrations)", id, props.Version, want)
		}
		// A function that never answers must fail the deploy in bounded time, after its own
		// timeout and retries had their chance.
		cfg := fn.Props.EventInvokeConfig
		if cfg == nil || cfg.MaximumRetryAttempts == nil || cfg.MaximumEventAgeInSeconds == nil {
			t.Fatalf("%s: no EventInvokeConfig with MaximumRetryAttempts and MaximumEventAgeInSeconds (CloudFormation invokes it asynchronously)", fn.LogicalID)
		}
		runs := *cfg.MaximumRetryAttempts + 1
		need := runs*fn.Props.Timeout + 60*(*cfg.MaximumRetryAttempts) // Lambda waits about a minute before a retry
		text, _ := props.ServiceTimeout.Text()
		timeout, err := strconv.Atoi(text)
		if err != nil || timeout < need || timeout > 3600 {
			t.Errorf("%s.ServiceTimeout = %s; want between %d (%d runs of %d s and the retry delay) and 3600", id, props.ServiceTimeout, need, runs, fn.Props.Timeout)
		}
	}
	if resource == "" {
		t.Fatal("no Custom::Migrations resource")
	}
	for _, f := range d.Functions {
		if f.Folder == functionMigrate || f.Folder == functionSandbox {
			continue // the sandbox keeps its state in a schema of its own, which it sets up itself
		}
		deps := d.Template.Resources[f.LogicalID].DependsOn.String()
		if !strings.Contains(deps, `"`+resource+`"`) {
			t.Errorf("%s does not DependsOn %s: new code could run before its migrations", f.LogicalID, resource)
		}
	}
}

// apiGatewayTimeout is the HTTP API's integration limit: a function answering later is cut off
// with a 503 while it keeps running (and holding its connections).
const apiGatewayTimeout = 30 * time.Second

// TestFunctionBounds: every function has a memory size and a timeout; an HTTP function's timeout
// is under API Gateway's, and a request's own deadline is under the function's.
func TestFunctionBounds(t *testing.T) {
	d := loadTemplate(t)
	for _, f := range d.Functions {
		if f.Props.MemorySize <= 0 {
			t.Errorf("%s: no MemorySize (in the function or Globals)", f.LogicalID)
		}
		timeout := time.Duration(f.Props.Timeout) * time.Second
		if timeout <= 0 {
			t.Errorf("%s: no Timeout (in the function or Globals)", f.LogicalID)
			continue
		}
		http := false
		for _, e := range f.Props.Events {
			http = http || e.Type == "HttpApi"
		}
		if !http {
			continue
		}
		if timeout >= apiGatewayTimeout {
			t.Errorf("%s: Timeout %v; want under API Gateway's %v", f.LogicalID, timeout, apiGatewayTimeout)
		}
		text, _ := f.Env["REQUEST_TIMEOUT"].Text()
		if rt, err := time.ParseDuration(text); err != nil || rt <= 0 || rt >= timeout {
			t.Errorf("%s: REQUEST_TIMEOUT %q; want a duration under the function's Timeout %v, so a slow request answers 503 itself", f.LogicalID, text, timeout)
		}
	}
}

// TestLogRetention: every function logs to a log group of the template's with a retention;
// Lambda's own default group would keep everything forever.
func TestLogRetention(t *testing.T) {
	d := loadTemplate(t)
	groups := map[string]bool{}
	for id, r := range d.Template.Resources {
		if r.Type != "AWS::Logs::LogGroup" {
			continue
		}
		var props struct {
			RetentionInDays cfnValue `yaml:"RetentionInDays"`
		}
		if err := r.Properties.Decode(&props); err != nil {
			t.Fatal(err)
		}
		if props.RetentionInDays.v == nil {
			t.Errorf("%s: no RetentionInDays: its logs are kept forever", id)
		}
		groups[id] = true
	}
	used := map[string]string{}
	for _, f := range d.Functions {
		ref, ok := f.Props.LoggingConfig.LogGroup.Ref()
		if !ok || !groups[ref] {
			t.Errorf("%s: LoggingConfig.LogGroup = %s; want !Ref of an AWS::Logs::LogGroup in the template (Lambda's default group has no retention)", f.LogicalID, f.Props.LoggingConfig.LogGroup)
			continue
		}
		if other, dup := used[ref]; dup {
			t.Errorf("%s and %s log to the same group %s", other, f.LogicalID, ref)
		}
		used[ref] = f.LogicalID
	}
}

// TestAsyncInvocationsBounded: what is invoked asynchronously — the processor (by its schedule
// and by itself) and migrate (by CloudFormation) — has a bounded retry count and event age, and
// the schedule does not retry a failed Invoke for a day.
func TestAsyncInvocationsBounded(t *testing.T) {
	d := loadTemplate(t)
	for _, folder := range []string{functionProcessor, functionMigrate, functionSandbox} {
		f := d.function(t, folder)
		c := f.Props.EventInvokeConfig
		if c == nil || c.MaximumRetryAttempts == nil || c.MaximumEventAgeInSeconds == nil {
			t.Errorf("%s: EventInvokeConfig without MaximumRetryAttempts and MaximumEventAgeInSeconds (Lambda's defaults: 2 retries over up to 6 hours)", f.LogicalID)
			continue
		}
		if *c.MaximumEventAgeInSeconds < 60 || *c.MaximumEventAgeInSeconds > 900 {
			t.Errorf("%s: MaximumEventAgeInSeconds = %d; want 60..900", f.LogicalID, *c.MaximumEventAgeInSeconds)
		}
	}
	for _, folder := range []string{functionProcessor, functionSandbox} {
		p := d.function(t, folder)
		if c := p.Props.EventInvokeConfig; c != nil && c.MaximumEventAgeInSeconds != nil && *c.MaximumEventAgeInSeconds > 60 {
			t.Errorf("%s: MaximumEventAgeInSeconds = %d; want at most the schedule's minute (a later trigger is the next one)", p.LogicalID, *c.MaximumEventAgeInSeconds)
		}
		for name, e := range p.Props.Events {
			if e.Type != "ScheduleV2" {
				continue
			}
			rp := e.Properties.RetryPolicy
			if rp == nil || rp.MaximumRetryAttempts == nil || *rp.MaximumRetryAttempts != 0 || rp.MaximumEventAgeInSeconds == nil || *rp.MaximumEventAgeInSeconds > 60 {
				t.Errorf("%s.%s: RetryPolicy %+v; want MaximumRetryAttempts 0 and MaximumEventAgeInSeconds 60 (EventBridge Scheduler's default retries for 24 hours)", p.LogicalID, name, rp)
			}
		}
	}
}

// TestRedisStreamsBounded: the result streams are capped by length as well as by age, so a burst
// within the retention cannot fill Redis. (The task and dead-letter streams are capped in code,
// streams.Config.TaskMaxLen.)
func TestRedisStreamsBounded(t *testing.T) {
	d := loadTemplate(t)
	for _, f := range d.Functions {
		v := f.Env["RESULT_STREAM_MAX_LEN"]
		text, _ := v.Text()
		if ref, ok := v.Ref(); ok {
			if p := d.Template.Parameters[ref]; p.Default != nil {
				text = *p.Default
			}
		}
		if n, err := strconv.Atoi(text); err != nil || n <= 0 {
			t.Errorf("%s: RESULT_STREAM_MAX_LEN = %s (default %q); want a positive cap", f.LogicalID, v, text)
		}
	}
}

// TestEnvironmentFitsLambda: Lambda refuses a function whose environment variables exceed 4 KB
// (measured as their JSON). The platform certificate is a parameter, so the deploy decides its
// size: the template must leave room for a certificate of a 4096-bit key (PEM about 1.9 KB) in
// every function, with full-length ARNs and a few per-app rate limits.
func TestEnvironmentFitsLambda(t *testing.T) {
	const limit, certRoom = 4096, 1900
	d := loadTemplate(t)
	param := map[string]string{
		"LakalaPlatformCert": "", // the room left for it is what is checked
		"Stage":              "staging",
		"LakalaBaseUrl":      "https://s2.lakala.com",
		"RefundRequestIp":    "203.0.113.200",
		"RateLimitApps":      "shop_cn=500:1000,game_x=20:40",
	}
	arn := "arn:aws-cn:secretsmanager:cn-northwest-1:123456789012:secret:loomipay/staging/lakala-private-key-AbCdEf"
	sub := regexp.MustCompile(`\$\{[^}]+\}`)
	for _, f := range d.Functions {
		vars := map[string]string{}
		for name, v := range f.Env {
			// A value of either stage (Fn::If WithSandbox): the longer one. The sandbox's URL is a
			// !Sub, its certificate an attribute holding what LakalaPlatformCert would.
			if m, isMap := v.v.(map[string]any); isMap {
				if branches, isIf := m["Fn::If"].([]any); isIf && len(branches) == 3 {
					sandbox, other := cfnValue{branches[1]}, cfnValue{branches[2]}
					v = other
					if s, ok := sandbox.Text(); ok && len(s) > len(other.String()) {
						v = sandbox
					}
				}
			}
			value, ok := v.Text()
			if ref, isRef := v.Ref(); isRef {
				switch {
				case strings.HasSuffix(ref, "SecretArn"):
					value = arn
				case param[ref] != "" || ref == "LakalaPlatformCert":
					value = param[ref]
				case d.Template.Parameters[ref].Default != nil:
					value = *d.Template.Parameters[ref].Default
				default:
					value = strings.Repeat("x", 24) // an identifier: app id, merchant number …
				}
				ok = true
			}
			if !ok {
				t.Fatalf("%s: %s = %s is neither text nor a !Ref", f.LogicalID, name, v)
			}
			// !Sub strings: the API id and the region are the longest substitutions.
			vars[name] = sub.ReplaceAllString(value, "cn-northwest-1")
		}
		b, err := json.Marshal(vars)
		if err != nil {
			t.Fatal(err)
		}
		if room := limit - len(b); room < certRoom {
			t.Errorf("%s: environment is %d bytes without the certificate, leaving %d for it; want at least %d (Lambda's limit is %d for all variables)",
				f.LogicalID, len(b), room, certRoom, limit)
		}
	}
}

// TestLeastPrivilege: only the processor may invoke a function, and only itself (SAM's
// LambdaInvokePolicy would allow every name it prefixes); no inline statement grants "*"; the
// KMS grant is on the key and through Secrets Manager only. (Which secrets each function may
// read is checked in TestTemplate.)
func TestLeastPrivilege(t *testing.T) {
	d := loadTemplate(t)
	for _, f := range d.Functions {
		for _, p := range policyValues(f) {
			if strings.Contains(p, "LambdaInvokePolicy") {
				t.Errorf("%s: LambdaInvokePolicy grants loomipay-…-processor* (any function of that prefix); grant the one ARN", f.LogicalID)
			}
			if strings.Contains(p, `"Resource":"*"`) {
				t.Errorf("%s: a statement on every resource: %s", f.LogicalID, p)
			}
			if strings.Contains(p, "lambda:InvokeFunction") && f.Folder != functionProcessor {
				t.Errorf("%s may invoke functions; only the processor needs to (itself)", f.LogicalID)
			}
		}
	}
	var kms struct {
		PolicyDocument cfnValue `yaml:"PolicyDocument"`
	}
	r := d.Template.Resources["SecretsKmsDecryptPolicy"]
	if err := r.Properties.Decode(&kms); err != nil {
		t.Fatal(err)
	}
	doc := kms.PolicyDocument.String()
	for _, want := range []string{`"Action":"kms:Decrypt"`, `"Resource":{"Ref":"SecretsKmsKeyArn"}`, `"kms:ViaService"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("SecretsKmsDecryptPolicy lacks %s: %s", want, doc)
		}
	}
}

// TestNoHardCodedDomain: an AWS URL the template builds carries ${AWS::URLSuffix}, since the
// China regions (Lakala's) use amazonaws.com.cn: a hard-coded amazonaws.com would send Lakala's
// notifications nowhere. (The KMS condition lists the .com spelling next to the suffixed one.)
func TestNoHardCodedDomain(t *testing.T) {
	text := string(readRepoFile(t, "template.yaml"))
	for i, line := range strings.Split(text, "\n") {
		code, _, _ := strings.Cut(line, "#")
		if strings.Contains(code, "amazonaws.com") && !strings.Contains(code, "- !Sub secretsmanager.${AWS::Region}.amazonaws.com") {
			t.Errorf("template.yaml line %d hard-codes amazonaws.com: %s", i+1, strings.TrimSpace(line))
		}
	}
	d := loadTemplate(t)
	if v := d.function(t, functionProcessor).Env["LAKALA_NOTIFY_URL"].String(); !strings.Contains(v, "${AWS::URLSuffix}") {
		t.Errorf("processor LAKALA_NOTIFY_URL = %s; want the domain from ${AWS::URLSuffix}", v)
	}
}
