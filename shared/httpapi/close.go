package httpapi

import (
	"net/http"

	"github.com/loomipay/loomipay/shared/pay"
)

// closeOrder answers 200 with the failed order, 202 with the live order when Lakala did not
// answer in time (the processor finishes the close), or 409 order_already_paid.
func (a *API) closeOrder(r *http.Request, app string, _ []byte) (int, any, error) {
	if a.payments == nil {
		// The caller's checks come first, as everywhere: another app's key is a 403 and an
		// unknown order a 404, whether or not this process can reach Lakala.
		if _, err := a.svc.GetOrder(r.Context(), app, r.URL.Query().Get("app_id"), r.PathValue("merchant_order_id")); err != nil {
			return 0, nil, err
		}
		return 0, nil, pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable, "closing orders is not available: this process has no Lakala client (LAKALA_PRIVATE_KEY and LAKALA_PLATFORM_CERT)")
	}
	o, err := a.payments.CloseMerchantOrder(r.Context(), app, r.URL.Query().Get("app_id"), r.PathValue("merchant_order_id"))
	if err != nil {
		return 0, nil, err
	}
	status := http.StatusOK
	if !o.Status.Final() {
		status = http.StatusAccepted
	}
	return status, newOrderView(&o), nil
}
