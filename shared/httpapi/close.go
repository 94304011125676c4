package httpapi

import (
	"net/http"

	"github.com/loomipay/loomipay/shared/pay"
)

// closeOrder will call service.CloseOrder (the lead's issue 9 work on main); until that lands
// the route answers 503 so that the route exists in all three places.
func (a *API) closeOrder(r *http.Request, app string, _ []byte) (int, any, error) {
	return 0, nil, pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable, "closing orders is not available yet")
}
