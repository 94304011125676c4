package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/loomipay/loomipay/api"
	"github.com/loomipay/loomipay/shared/pay"
)

// listView is a page of a list route, in the Stripe style. next_cursor (the last item's) goes
// into starting_after for the next, older page; prev_cursor (the first item's) into
// ending_before for the previous, newer page. has_more says whether more items lie beyond the
// page in the direction of travel (older for a first or starting_after page, newer for an
// ending_before page).
type listView[T any] struct {
	Object     string  `json:"object"`
	Data       []T     `json:"data"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
	PrevCursor *string `json:"prev_cursor"`
}

func newListView[T, V any](items []T, more bool, view func(*T) V, cursor func(*T) pay.Cursor) listView[V] {
	out := listView[V]{Object: "list", Data: make([]V, len(items)), HasMore: more}
	for i := range items {
		out.Data[i] = view(&items[i])
	}
	if len(items) > 0 {
		first, last := cursor(&items[0]).Encode(), cursor(&items[len(items)-1]).Encode()
		out.PrevCursor, out.NextCursor = &first, &last
	}
	return out
}

func orderCursor(o *pay.Order) pay.Cursor   { return pay.Cursor{CreatedAt: o.CreatedAt, ID: o.ID} }
func refundCursor(r *pay.Refund) pay.Cursor { return pay.Cursor{CreatedAt: r.CreatedAt, ID: r.ID} }

func (a *API) listOrders(r *http.Request, app string, _ []byte) (int, any, error) {
	orders, more, err := a.svc.ListOrders(r.Context(), app, r.URL.Query())
	return http.StatusOK, newListView(orders, more, newOrderView, orderCursor), err
}

func (a *API) listRefunds(r *http.Request, app string, _ []byte) (int, any, error) {
	refunds, more, err := a.svc.ListRefunds(r.Context(), app, r.URL.Query())
	return http.StatusOK, newListView(refunds, more, newRefundView, refundCursor), err
}

func (a *API) getRefundByMerchantID(r *http.Request, app string, _ []byte) (int, any, error) {
	refund, err := a.svc.GetRefundByMerchantID(r.Context(), app, r.URL.Query().Get("app_id"), r.PathValue("merchant_refund_id"))
	return http.StatusOK, newRefundView(&refund), err
}

// openAPI serves api/openapi.yaml as JSON, without authentication.
func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(api.JSON)
}

// healthz is liveness: the process serves HTTP. It touches no dependency, so a database outage
// does not get healthy processes restarted.
func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is readiness: PostgreSQL and Redis answer and the schema is current.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.svc.Ready(ctx); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
