package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

// Stages STAGE accepts. Only dev tolerates Lakala's public test settings; sandbox is a stage whose
// Lakala is its own sandbox (LAKALA_SANDBOX=true), which any stage but prod may also ask for.
var Stages = []string{"dev", "test", "staging", "sandbox", "prod"}

// publicTestIdentity is the merchant identity Lakala publishes for its test environment: anyone
// can sign as it, so it must never carry real payments.
var publicTestIdentity = map[string]string{
	"LAKALA_APP_ID":      "OP00000003",
	"LAKALA_MERCHANT_NO": "82229007392000A",
	"LAKALA_SERIAL_NO":   "00dfba8194c41b84cf",
	"LAKALA_TERM_NO":     "D9296400",
}

// lakalaTestHosts serve Lakala's test environment. test and staging may use it (with an identity
// of their own); prod must reach the real one.
var lakalaTestHosts = []string{"test.wsmsd.cn"}

// StageChecks names every variable whose value Validate refuses outside STAGE=dev (docs/CONFIGURATION.md's
// "Stage checks" lists them, and the tests refuse a value of each).
var StageChecks = []string{
	"LAKALA_BASE_URL", "LAKALA_APP_ID", "LAKALA_MERCHANT_NO", "LAKALA_SERIAL_NO", "LAKALA_TERM_NO",
	"LAKALA_VPOS_ID", "LAKALA_NOTIFY_URL", "REFUND_REQUEST_IP", "WEBHOOK_ALLOW_LOOPBACK", "REDIS_URL", "DATABASE_URL",
	"DATABASE_STATEMENT_TIMEOUT", "DATABASE_LOCK_TIMEOUT", "DATABASE_IDLE_TX_TIMEOUT",
}

// Validate refuses a configuration that must not run. Outside STAGE=dev: an http:// Lakala URL
// (or, in prod, Lakala's test environment), Lakala's public test identity, a notify URL Lakala
// could not reach over TLS, webhooks allowed to loopback, a Redis without TLS or password and a
// PostgreSQL without TLS (loopback addresses excepted: an operator's tunnel), session timeouts
// switched off, and (when forProcessor) a refund request IP that is not public. In every stage:
// an unknown STAGE, a Lakala call without a timeout, and on a Redis Cluster an app's two result
// streams that would not share a slot. The one error names every problem, so a
// deploy is fixed in one round. The lease rule is the processor's (processor.Config.Validate);
// shared/worker joins both into one message. Values that may hold credentials (the Redis and
// PostgreSQL URLs) are never quoted.
func (c Config) Validate(forProcessor bool) error {
	var problems []string
	known := false
	for _, s := range Stages {
		known = known || c.Stage == s
	}
	if !known {
		problems = append(problems, fmt.Sprintf("STAGE %q is not one of %s", c.Stage, strings.Join(Stages, ", ")))
	}
	if c.LakalaTimeout <= 0 {
		problems = append(problems, fmt.Sprintf("LAKALA_TIMEOUT %s: a Lakala call needs a timeout, or it waits until the function's deadline", c.LakalaTimeout))
	}
	problems = append(problems, c.lakalaFieldProblems(forProcessor)...)
	switch {
	case c.LakalaSandbox && c.Stage == "prod":
		problems = append(problems, "LAKALA_SANDBOX is true: a production stage must reach Lakala, never a sandbox (deploy the sandbox under another stage)")
	case c.Stage == "sandbox" && !c.LakalaSandbox:
		problems = append(problems, "STAGE=sandbox runs against its own Lakala sandbox: set LAKALA_SANDBOX=true (template.yaml does)")
	}
	if c.Stage != "dev" {
		problems = append(problems, c.stageProblems(forProcessor)...)
	}
	if c.RedisCluster && !streams.AppStreamsShareSlot(streams.Config{Prefix: c.StreamPrefix, AppPaymentStream: c.AppPaymentStream, AppRefundStream: c.AppRefundStream}) {
		problems = append(problems, fmt.Sprintf("with REDIS_CLUSTER=true, APP_PAYMENT_RESULT_STREAM %q and APP_REFUND_RESULT_STREAM %q (after STREAM_PREFIX %q) must share a hash tag such as {$APP}: an app reads both in one XREADGROUP, which a cluster refuses (CROSSSLOT) for keys of different slots",
			c.AppPaymentStream, c.AppRefundStream, c.StreamPrefix))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("configuration refused (STAGE=%s): %s", c.Stage, strings.Join(problems, "; "))
}

// lakalaFieldProblems refuses, in every stage, a configured value Lakala would refuse for its
// length or form (docs/DECISIONS.md, "Fields we send"): better at start than on every order. The
// refund API's limits are the processor's (it sends the refunds).
func (c Config) lakalaFieldProblems(forProcessor bool) []string {
	var problems []string
	merchantMax, termMax := lakala.MaxMerchantNo, lakala.MaxTermNo
	switch c.LakalaRefundAPI {
	case lakala.RefundAPIRfd:
		if forProcessor {
			merchantMax, termMax = lakala.MaxRfdMerchantNo, lakala.MaxRfdTermNo
		}
	case lakala.RefundAPILabs:
	default:
		problems = append(problems, fmt.Sprintf("LAKALA_REFUND_API %q is not %s or %s", c.LakalaRefundAPI, lakala.RefundAPIRfd, lakala.RefundAPILabs))
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"LAKALA_MERCHANT_NO", c.LakalaMerchantNo, merchantMax}, {"LAKALA_TERM_NO", c.LakalaTermNo, termMax},
		{"LAKALA_VPOS_ID", c.LakalaVposID, lakala.MaxVposID}, {"LAKALA_NOTIFY_URL", c.LakalaNotifyURL, lakala.MaxNotifyURL},
		{"REFUND_REQUEST_IP", c.RefundRequestIP, lakala.MaxRequestIP},
	} {
		if len(f.value) > f.max {
			problems = append(problems, fmt.Sprintf("%s %q is %d bytes; Lakala takes at most %d (with LAKALA_REFUND_API=%s)", f.name, f.value, len(f.value), f.max, c.LakalaRefundAPI))
		}
	}
	return problems
}

// stageProblems are the checks outside dev.
func (c Config) stageProblems(forProcessor bool) []string {
	var problems []string
	// The stage's own sandbox: no real Lakala, so Lakala's public test identity is harmless, and
	// its functions may reach it (and it the webhook) over plain HTTP on this host (the emulator's
	// tests); it is never allowed in prod (Validate).
	sandboxLoopback := func(raw string) bool {
		u, err := url.Parse(raw)
		return c.LakalaSandbox && err == nil && u.Scheme == "http" && isLocalHost(u.Hostname())
	}
	u, err := url.Parse(c.LakalaBaseURL)
	switch {
	case sandboxLoopback(c.LakalaBaseURL):
	case err != nil || u.Scheme != "https" || u.Host == "":
		problems = append(problems, fmt.Sprintf("LAKALA_BASE_URL %q is not an https:// URL (signed requests and notifications must not travel in clear text)", c.LakalaBaseURL))
	case c.Stage == "prod":
		for _, h := range lakalaTestHosts {
			if strings.EqualFold(u.Hostname(), h) {
				problems = append(problems, fmt.Sprintf("LAKALA_BASE_URL %q is Lakala's test environment (production is https://s2.lakala.com)", c.LakalaBaseURL))
			}
		}
	}
	values := map[string]string{
		"LAKALA_APP_ID": c.LakalaAppID, "LAKALA_MERCHANT_NO": c.LakalaMerchantNo,
		"LAKALA_SERIAL_NO": c.LakalaSerialNo, "LAKALA_TERM_NO": c.LakalaTermNo,
	}
	for _, name := range []string{"LAKALA_APP_ID", "LAKALA_MERCHANT_NO", "LAKALA_SERIAL_NO", "LAKALA_TERM_NO"} {
		if values[name] == publicTestIdentity[name] && !c.LakalaSandbox {
			problems = append(problems, fmt.Sprintf("%s is Lakala's public test value %s (set your merchant's own)", name, values[name]))
		}
	}
	if forProcessor && c.LakalaVposID == "" {
		problems = append(problems, "LAKALA_VPOS_ID is not set: Lakala requires vpos_id on every cashier order outside combined orders (\"C 非合单场景必输\"), the termId it returned when the merchant was onboarded")
	}
	// Empty is left to the functions that need it (the processor refuses to start without it).
	if c.LakalaNotifyURL != "" && !sandboxLoopback(c.LakalaNotifyURL) {
		if u, err := url.Parse(c.LakalaNotifyURL); err != nil || u.Scheme != "https" || u.Host == "" || isLocalHost(u.Hostname()) {
			problems = append(problems, fmt.Sprintf("LAKALA_NOTIFY_URL %q is not a public https:// URL (Lakala posts the notifications there)", c.LakalaNotifyURL))
		}
	}
	if forProcessor {
		if ip := net.ParseIP(c.RefundRequestIP); ip == nil || !ip.IsGlobalUnicast() || ip.IsPrivate() {
			problems = append(problems, fmt.Sprintf("REFUND_REQUEST_IP %q is not a public IP address (Lakala records it as the refund's origin)", c.RefundRequestIP))
		}
	}
	if c.WebhookAllowLoopback {
		problems = append(problems, "WEBHOOK_ALLOW_LOOPBACK is true (local development only: it lets a webhook URL reach this host)")
	}
	if p := redisProblem(c.RedisURL); p != "" {
		problems = append(problems, p)
	}
	if p := databaseProblem(c.DatabaseURL); p != "" {
		problems = append(problems, p)
	}
	// Behind RDS Proxy the timeouts are the role's (set once in the database), not the session's.
	if !c.DatabaseRDSProxy {
		for _, t := range []struct {
			name string
			d    time.Duration
		}{{"DATABASE_STATEMENT_TIMEOUT", c.StatementTimeout}, {"DATABASE_LOCK_TIMEOUT", c.LockTimeout}, {"DATABASE_IDLE_TX_TIMEOUT", c.IdleInTxTimeout}} {
			if t.d <= 0 {
				problems = append(problems, fmt.Sprintf("%s is %s: a session could then hold its locks and connection slot without end", t.name, t.d))
			}
		}
	}
	return problems
}

// redisProblem refuses a Redis reached without TLS or without a password, unless on this host.
func redisProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || isLocalHost(u.Hostname()) || u.Scheme == "unix" {
		return "" // a URL that does not parse is the client's error to report
	}
	var missing []string
	if u.Scheme != "rediss" {
		missing = append(missing, "TLS (rediss://)")
	}
	if _, ok := u.User.Password(); !ok {
		missing = append(missing, "a password (an ElastiCache user or AUTH token)")
	}
	if len(missing) == 0 {
		return ""
	}
	return "REDIS_URL (not shown) has no " + strings.Join(missing, " and ") + ": API keys' lookups and every result would cross the network in clear text, open to anyone who reaches the port"
}

// databaseProblem refuses a PostgreSQL connection that never tries TLS (sslmode=disable or
// allow), unless on this host. prefer, pgx's default, and stricter modes pass.
func databaseProblem(raw string) string {
	if raw == "" {
		return ""
	}
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil || isLocalHost(cfg.Host) || strings.HasPrefix(cfg.Host, "/") {
		return ""
	}
	if cfg.TLSConfig == nil {
		return "DATABASE_URL (not shown) has sslmode=disable or allow: the first connection attempt is in clear text (leave sslmode out, or use require or verify-full)"
	}
	return ""
}

// isLocalHost reports whether host is this machine: localhost or a loopback address.
func isLocalHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// rateOverrides parses "app=rate:burst,app2=rate" (burst defaults to twice the rate).
func (r *reader) rateOverrides(name string) map[string]service.RateLimit {
	s := strings.TrimSpace(r.str(name))
	if s == "" {
		return nil
	}
	out := map[string]service.RateLimit{}
	for _, item := range strings.Split(s, ",") {
		app, spec, ok := strings.Cut(strings.TrimSpace(item), "=")
		rate, burst, hasBurst := strings.Cut(spec, ":")
		lim := service.RateLimit{}
		var err1, err2 error
		lim.Rate, err1 = strconv.Atoi(rate)
		lim.Burst = 2 * lim.Rate
		if hasBurst {
			lim.Burst, err2 = strconv.Atoi(burst)
		}
		if !ok || app == "" || err1 != nil || err2 != nil || lim.Rate < 0 || lim.Burst < 0 {
			r.errs = append(r.errs, fmt.Errorf("%s: %q is not app=rate or app=rate:burst", name, item))
			continue
		}
		out[app] = lim
	}
	return out
}
