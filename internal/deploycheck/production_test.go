package deploycheck_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

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
	for _, name := range []string{"Stage", "LakalaBaseUrl", "LakalaAppId", "LakalaSerialNo", "LakalaMerchantNo", "LakalaTermNo", "RefundRequestIp"} {
		p, ok := d.Template.Parameters[name]
		if !ok {
			t.Errorf("template.yaml has no parameter %s", name)
		} else if p.Default != nil {
			t.Errorf("parameter %s has a default (%q); a deploy must set it", name, *p.Default)
		}
	}
	for _, f := range d.Functions {
		if v := f.Env["STAGE"]; v.String() != `{"Ref":"Stage"}` {
			t.Errorf("%s: STAGE = %s; want !Ref Stage, so the stage checks apply", f.LogicalID, v)
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

// TestREADMEStatesEveryStageCheck: what a deploy outside dev is refused for is written where the
// person deploying reads the configuration.
func TestREADMEStatesEveryStageCheck(t *testing.T) {
	readme := string(readRepoFile(t, "README.md"))
	_, para, ok := strings.Cut(readme, "**Stage checks.**")
	if !ok {
		t.Fatal("README.md has no **Stage checks.** paragraph")
	}
	para, _, _ = strings.Cut(para, "\n\n")
	for _, name := range config.StageChecks {
		if !strings.Contains(para, "`"+name+"`") {
			t.Errorf("README's Stage checks do not name `%s`, which config.Validate refuses outside dev", name)
		}
	}
}

// TestLimits: nothing unbounded: API Gateway throttles, every function has a reserved
// concurrency, and the README states the connection budget those make.
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
	budget := 0
	for _, f := range d.Functions {
		rc := param(f.Props.ReservedConcurrentExecutions)
		if rc < 1 {
			t.Errorf("%s: no ReservedConcurrentExecutions", f.LogicalID)
			continue
		}
		conns := f.Env["DATABASE_MAX_CONNS"]
		budget += rc * param(&conns)
	}
	readme := string(readRepoFile(t, "README.md"))
	m := regexp.MustCompile(`connection budget[^\n]*= (\d+) connections`).FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("README states no connection budget ('connection budget … = N connections')")
	}
	if m[1] != strconv.Itoa(budget) {
		t.Errorf("README's connection budget = %s; the template's defaults make Σ reserved concurrency × DATABASE_MAX_CONNS = %d", m[1], budget)
	}
}

// TestVPC: what a function in private subnets needs is offered or stated.
func TestVPC(t *testing.T) {
	d := loadTemplate(t)
	if desc := d.Template.Parameters["SubnetIds"].Description; !strings.Contains(desc, "NAT") || !strings.Contains(desc, "Lakala") {
		t.Errorf("SubnetIds' description does not state the NAT requirement for Lakala: %q", desc)
	}
	ep, ok := d.Template.Resources["SecretsManagerEndpoint"]
	if !ok || ep.Type != "AWS::EC2::VPCEndpoint" || ep.Condition == "" {
		t.Errorf("no conditional AWS::EC2::VPCEndpoint SecretsManagerEndpoint (got %+v)", ep.Type)
	} else {
		var props struct {
			VpcEndpointType   string   `yaml:"VpcEndpointType"`
			ServiceName       cfnValue `yaml:"ServiceName"`
			PrivateDnsEnabled bool     `yaml:"PrivateDnsEnabled"`
		}
		if err := ep.Properties.Decode(&props); err != nil {
			t.Fatal(err)
		}
		if name, _ := props.ServiceName.Text(); props.VpcEndpointType != "Interface" || !props.PrivateDnsEnabled || !strings.HasSuffix(name, ".secretsmanager") {
			t.Errorf("SecretsManagerEndpoint = %+v; want an Interface endpoint for secretsmanager with private DNS", props)
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
		if f.Folder == functionMigrate {
			continue
		}
		deps := d.Template.Resources[f.LogicalID].DependsOn.String()
		if !strings.Contains(deps, `"`+resource+`"`) {
			t.Errorf("%s does not DependsOn %s: new code could run before its migrations", f.LogicalID, resource)
		}
	}
}
