// Package deploycheck holds only tests: they check that the deployment descriptors agree with
// the code, so a route, variable or setting changed on one side cannot ship without the other,
// and that a deploy reviewer finds no test default, no unbounded resource and no unstated
// network requirement.
//
// Checked against the code (httpapi.Routes, config.Variables, config.StageChecks, the
// functions/ folders):
//   - template.yaml: the seven functions (CodeUri functions/<name> with a main.go), runtime
//     provided.al2023 / bootstrap / arm64 built with go1.x; the HTTP API routes (payload 2.0) on
//     the function that serves them; the processor's one-minute ScheduleV2 without scheduler
//     retries, its reserved concurrency equal to PROCESSOR_MAX_RUNS, no async retries and a
//     timeout longer than its deadline margin; environment variables (every one the code reads
//     except those only loomipay worker reads, none it does not, secrets only as *_SECRET_ARN with a Secrets Manager read policy on the
//     function that carries them and no other); no literal secrets; the ApiUrl and WebhookUrl
//     outputs; the SchemaMigrations custom resource (a ServiceToken that never changes, the version as a
//     property, a ServiceTimeout covering the function's runs);
//   - limits: API Gateway throttling, every function's reserved concurrency, memory and timeout
//     (HTTP ones under API Gateway's 30 s), log groups with retention, bounded async invocations,
//     capped result streams, room for the platform certificate in Lambda's 4 KB of variables,
//     the connection budget and account concurrency docs/DEPLOYING.md states;
//   - test defaults: no parameter default, template value or prod override holds Lakala's test
//     settings, loopback or http://; docs/CONFIGURATION.md names every stage check;
//   - network and IAM: the VPC endpoints (Secrets Manager, Lambda) with a security group the
//     functions can reach, the NAT and every other need stated in SubnetIds and docs/DEPLOYING.md, no
//     hard-coded amazonaws.com; invoke only of the processor by itself, no "*" resources, KMS
//     only on the key and through Secrets Manager;
//   - samconfig.toml: the default and prod environments, SAM's build cache off, deploy parameters
//     that name the template's parameters;
//   - docs/CONFIGURATION.md: its table lists exactly config.Variables, with the same defaults;
//   - events/*.json: the API Gateway v2 samples are valid and hit a declared route; the schedule
//     sample is valid JSON;
//   - what CloudFormation is handed: the template expanded by aws-sam-translator (the SAM
//     transform's own code, run by testdata/sam_translate.py) for each samconfig.toml environment
//     in the aws and aws-cn partitions: every Ref, GetAtt, Sub, condition and DependsOn resolves,
//     every environment fits Lambda's 4 KB at real lengths, every route reaches its function with
//     a permission, and cfn-lint finds nothing with the environment's parameter values (make lint
//     runs cfn-lint on template.yaml itself);
//   - the binaries: the functions link the SDK's Secrets Manager client and configuration, and
//     `sam build`'s go build (in each CodeUri, GOOS=linux GOARCH=arm64) finds the module and
//     builds a static arm64 bootstrap; from the CodeUri folder alone (--use-container) it cannot.
//
// The translator and cfn-lint are Python (pip install cfn-lint): without them those checks skip,
// unless CI=true.
package deploycheck
