package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/loomipay/loomipay/shared/service"
	"github.com/loomipay/loomipay/shared/streams"
)

// Stages STAGE accepts. Only dev tolerates Lakala's public test settings.
var Stages = []string{"dev", "test", "staging", "prod"}

// publicTestIdentity is the merchant identity Lakala publishes for its test environment: anyone
// can sign as it, so it must never carry real payments.
var publicTestIdentity = map[string]string{
	"LAKALA_APP_ID":      "OP00000003",
	"LAKALA_MERCHANT_NO": "82229007392000A",
	"LAKALA_SERIAL_NO":   "00dfba8194c41b84cf",
	"LAKALA_TERM_NO":     "D9296400",
}

// Validate refuses a configuration that must not run. Outside STAGE=dev: an http:// Lakala URL,
// Lakala's public test identity, and (when forProcessor) a loopback or invalid refund request IP.
// In every stage: an unknown STAGE, and on a Redis Cluster an app's two result streams that would
// not share a slot. The one error names every problem, so a deploy is fixed in one round. The
// lease rule is the processor's (processor.Config.Validate); shared/worker joins both into one
// message.
func (c Config) Validate(forProcessor bool) error {
	var problems []string
	known := false
	for _, s := range Stages {
		known = known || c.Stage == s
	}
	if !known {
		problems = append(problems, fmt.Sprintf("STAGE %q is not one of %s", c.Stage, strings.Join(Stages, ", ")))
	}
	if c.Stage != "dev" {
		if u, err := url.Parse(c.LakalaBaseURL); err != nil || u.Scheme != "https" || u.Host == "" {
			problems = append(problems, fmt.Sprintf("LAKALA_BASE_URL %q is not an https:// URL (signed requests and notifications must not travel in clear text)", c.LakalaBaseURL))
		}
		values := map[string]string{
			"LAKALA_APP_ID": c.LakalaAppID, "LAKALA_MERCHANT_NO": c.LakalaMerchantNo,
			"LAKALA_SERIAL_NO": c.LakalaSerialNo, "LAKALA_TERM_NO": c.LakalaTermNo,
		}
		for _, name := range []string{"LAKALA_APP_ID", "LAKALA_MERCHANT_NO", "LAKALA_SERIAL_NO", "LAKALA_TERM_NO"} {
			if values[name] == publicTestIdentity[name] {
				problems = append(problems, fmt.Sprintf("%s is Lakala's public test value %s (set your merchant's own)", name, values[name]))
			}
		}
		if forProcessor {
			if ip := net.ParseIP(c.RefundRequestIP); ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
				problems = append(problems, fmt.Sprintf("REFUND_REQUEST_IP %q is not a public IP address (Lakala records it as the refund's origin)", c.RefundRequestIP))
			}
		}
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
