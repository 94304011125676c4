package config

import (
	"net/http"
	"strings"

	"github.com/loomipay/loomipay/shared/httpapi"
)

// APIHandler serves the routes of the named Lambda functions (every route when none is named:
// loomipay serve and dev), wired alike at every entry point. Where the close route is served,
// the API gets the payments side (closing acts at Lakala) when the configuration has a Lakala
// client; without one the close route still checks the key's app and the order, then answers
// 503. What was wired is logged, so a missing piece shows at start, not at the first close.
func (d *Deps) APIHandler(functions ...string) http.Handler {
	api := d.API()
	routes := httpapi.RoutesOf(functions...)
	closing := "not served here"
	for _, r := range routes {
		if r.Method+" "+r.Path != httpapi.CloseRoute {
			continue
		}
		payments, err := d.Payments()
		if err != nil {
			closing = "unavailable (503): " + err.Error()
			d.Log.Warn("close route unavailable: no Lakala client", "err", err)
			break
		}
		api.WithPayments(payments)
		closing = "available (Lakala at " + d.Config.LakalaBaseURL + ")"
	}
	served := make([]string, len(routes))
	for i, r := range routes {
		served[i] = r.Method + " " + r.Path
	}
	which := "all"
	if len(functions) > 0 {
		which = strings.Join(functions, ",")
	}
	d.Log.Info("API wired", "functions", which, "routes", served, "close", closing)
	return api.Handler(functions...)
}
