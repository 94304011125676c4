// Package deploycheck holds only tests: they check that the deployment descriptors agree with
// the code, so a route, variable or setting changed on one side cannot ship without the other.
//
// Checked against the code (httpapi.Routes, config.Variables, the functions/ folders):
//   - template.yaml: the five functions (CodeUri functions/<name> with a main.go), runtime
//     provided.al2023 / bootstrap / arm64 built with go1.x; the HTTP API routes (payload 2.0) on
//     the function that serves them; the processor's one-minute ScheduleV2, reserved concurrency 1,
//     no async retries and a timeout longer than its deadline margin; environment variables (every
//     one the code reads except those only loomipay worker reads, none it does not, secrets only
//     as *_SECRET_ARN with a Secrets Manager read policy on the function that carries them); no
//     literal secrets; the ApiUrl and
//     WebhookUrl outputs;
//   - samconfig.toml: the default and prod environments, SAM's build cache off, deploy parameters
//     that name the template's parameters;
//   - README.md: the Configuration table lists exactly config.Variables, with the same defaults;
//   - events/*.json: the API Gateway v2 samples are valid and hit a declared route; the schedule
//     sample is valid JSON.
package deploycheck
