package httpapi

import (
	"net/http"

	"github.com/loomipay/loomipay/shared/pay"
)

// closeOrder answers 200 with the failed order, 202 with the live order when Lakala did not
// answer in time (the processor finishes the close), or 409 order_already_paid.
func (a *API) closeOrder(r *http.Request, app string, _ []byte) (int, any, error) {
	if a.payments == nil {
		return 0, nil, pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable, "closing orders is not available: this function has no Lakala client")
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
