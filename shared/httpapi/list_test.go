package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/pay"
)

type orderPage struct {
	Object     string          `json:"object"`
	Data       []orderResponse `json:"data"`
	HasMore    bool            `json:"has_more"`
	NextCursor *string         `json:"next_cursor"`
	PrevCursor *string         `json:"prev_cursor"`
}

type refundPage struct {
	Data       []refundResponse `json:"data"`
	HasMore    bool             `json:"has_more"`
	NextCursor *string          `json:"next_cursor"`
}

func listOrders(t *testing.T, s *testenv.Stack, query url.Values) orderPage {
	t.Helper()
	code, body := s.Do(t, "GET", ordersPath+"?"+query.Encode(), s.APIKey, "")
	if code != http.StatusOK {
		t.Fatalf("list %s = %d %s", query.Encode(), code, body)
	}
	var p orderPage
	if err := json.Unmarshal(body, &p); err != nil || p.Object != "list" {
		t.Fatalf("list body %s: %v", body, err)
	}
	return p
}

func ids(p orderPage) []string {
	var out []string
	for _, o := range p.Data {
		out = append(out, o.MerchantOrderID)
	}
	return out
}

func q(kv ...string) url.Values {
	v := url.Values{"app_id": {"test_app"}}
	for i := 0; i < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestListOrders(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	// l0 … l6, newest last; l0–l4 processing, l5 and l6 pending; l1 and l4 recharges.
	var all []string
	for i := range 7 {
		id := "l" + string(rune('0'+i))
		typ := "payment"
		if i == 1 || i == 4 {
			typ = "recharge"
		}
		code, body := s.Do(t, "POST", ordersPath, s.APIKey, orderBody(t, id, map[string]any{"order_type": typ}))
		if code != http.StatusAccepted {
			t.Fatalf("create %s = %d %s", id, code, body)
		}
		all = append(all, id)
		if i == 4 {
			s.RunOnce(t)
		}
	}
	// Another app's order never shows.
	other := s.NewKey(t, "other_app")
	if code, body := s.Do(t, "POST", ordersPath, other, orderBody(t, "theirs", map[string]any{"app_id": "other_app"})); code != http.StatusAccepted {
		t.Fatalf("create other app's order = %d %s", code, body)
	}
	newestFirst := slices.Clone(all)
	slices.Reverse(newestFirst)

	t.Run("default page: everything, newest first", func(t *testing.T) {
		p := listOrders(t, s, q())
		if !slices.Equal(ids(p), newestFirst) || p.HasMore {
			t.Fatalf("ids %v has_more %v; want %v false", ids(p), p.HasMore, newestFirst)
		}
	})

	t.Run("forward and back with cursors", func(t *testing.T) {
		var seen []string
		var pages []orderPage
		cursor := ""
		for {
			v := q("limit", "3")
			if cursor != "" {
				v.Set("starting_after", cursor)
			}
			p := listOrders(t, s, v)
			pages = append(pages, p)
			seen = append(seen, ids(p)...)
			if !p.HasMore {
				break
			}
			cursor = *p.NextCursor
		}
		if !slices.Equal(seen, newestFirst) || len(pages) != 3 {
			t.Fatalf("paged ids %v in %d pages; want %v in 3", seen, len(pages), newestFirst)
		}
		back := listOrders(t, s, q("limit", "3", "ending_before", *pages[1].PrevCursor))
		if !slices.Equal(ids(back), ids(pages[0])) || back.HasMore {
			t.Fatalf("ending_before page 2 = %v has_more %v; want page 1 %v, has_more false", ids(back), back.HasMore, ids(pages[0]))
		}
		mid := listOrders(t, s, q("limit", "2", "ending_before", *pages[2].PrevCursor))
		if !slices.Equal(ids(mid), newestFirst[4:6]) || !mid.HasMore {
			t.Fatalf("ending_before the last page, limit 2 = %v has_more %v; want %v true", ids(mid), mid.HasMore, newestFirst[4:6])
		}
	})

	t.Run("filters", func(t *testing.T) {
		first := s.Order(t, "l0")
		created, err := s.Store.Order(context.Background(), first.ID)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			query url.Values
			want  []string
		}{
			{q("status", "pending"), []string{"l6", "l5"}},
			{q("status", "processing"), []string{"l4", "l3", "l2", "l1", "l0"}},
			{q("status", "succeeded"), nil},
			{q("order_type", "recharge"), []string{"l4", "l1"}},
			{q("order_type", "recharge", "status", "processing", "limit", "1"), []string{"l4"}},
			{q("created_lt", pay.FormatTime(created.CreatedAt)), nil},
			{q("created_gte", created.CreatedAt.Format(time.RFC3339Nano), "created_lt", time.Now().Add(time.Hour).Format(time.RFC3339)), newestFirst},
			{q("created_gte", time.Now().Add(time.Hour).Format(time.RFC3339)), nil},
		}
		for _, tc := range tests {
			if got := ids(listOrders(t, s, tc.query)); !slices.Equal(got, tc.want) {
				t.Errorf("%s: ids %v; want %v", tc.query.Encode(), got, tc.want)
			}
		}
	})

	t.Run("refused queries change nothing", func(t *testing.T) {
		bad := pay.Cursor{CreatedAt: time.Now(), ID: "nope"}.Encode()
		tests := []struct {
			query        string
			status       int
			code, detail string
		}{
			{"app_id=a%20b", 400, "validation_error", "app_id"},
			{"app_id=test_app&limit=0", 400, "validation_error", "limit"},
			{"app_id=test_app&limit=101", 400, "validation_error", "limit"},
			{"app_id=test_app&limit=ten", 400, "validation_error", "limit"},
			{"app_id=test_app&starting_after=garbage", 400, "validation_error", "starting_after"},
			{"app_id=test_app&ending_before=" + bad, 400, "validation_error", "ending_before"},
			{"app_id=test_app&starting_after=" + pay.Cursor{ID: "550e8400-e29b-41d4-a716-446655440000"}.Encode() + "&ending_before=" + pay.Cursor{ID: "550e8400-e29b-41d4-a716-446655440000"}.Encode(), 400, "validation_error", "not both"},
			{"app_id=test_app&status=paid", 400, "validation_error", "status"},
			{"app_id=test_app&order_type=gift", 400, "validation_error", "order_type"},
			{"app_id=test_app&created_gte=yesterday", 400, "validation_error", "created_gte"},
			{"app_id=test_app&stauts=pending", 400, "validation_error", "stauts"},
			{"app_id=test_app&status=pending&status=failed", 400, "validation_error", "more than once"},
			{"app_id=other_app", 403, "forbidden", "other_app"},
		}
		for _, tc := range tests {
			code, body := s.Do(t, "GET", ordersPath+"?"+tc.query, s.APIKey, "")
			checkError(t, code, body, tc.status, tc.code, tc.detail)
		}
		if code, body := s.Do(t, "GET", ordersPath+"?app_id=test_app", "", ""); code != http.StatusUnauthorized {
			t.Errorf("list without a key = %d %s; want 401", code, body)
		}
	})

	t.Run("without app_id: the key's app", func(t *testing.T) {
		_, named := s.Do(t, "GET", ordersPath+"?app_id=test_app&limit=100", s.APIKey, "")
		code, implied := s.Do(t, "GET", ordersPath+"?limit=100", s.APIKey, "")
		if code != http.StatusOK || string(implied) != string(named) {
			t.Errorf("list without app_id = %d %.300s; want the list with app_id=test_app %.300s", code, implied, named)
		}
		code, body := s.Do(t, "GET", ordersPath, s.NewKey(t, "quiet_app"), "")
		if code != http.StatusOK || !strings.Contains(string(body), `"data":[]`) {
			t.Errorf("another app's list without app_id = %d %s; want 200 and no orders", code, body)
		}
	})
}

func TestRefundsByMerchantIDs(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	paidID := succeededPayment(t, s, "rm-1", 10000)
	succeededPayment(t, s, "rm-2", 10000)

	byMerchant := mustJSON(t, map[string]any{"app_id": "test_app", "merchant_order_id": "rm-1", "merchant_refund_id": "R-1", "amount": 1000, "reason": "first"})
	code, body := s.Do(t, "POST", refundsPath, s.APIKey, byMerchant)
	if code != http.StatusAccepted {
		t.Fatalf("refund by merchant_order_id = %d %s; want 202", code, body)
	}
	var first struct {
		refundResponse
		MerchantOrderID  string `json:"merchant_order_id"`
		MerchantRefundID string `json:"merchant_refund_id"`
	}
	if err := json.Unmarshal(body, &first); err != nil || first.PaymentOrderID != paidID || first.MerchantOrderID != "rm-1" || first.MerchantRefundID != "R-1" {
		t.Fatalf("refund %s (err %v): want payment %s, merchant_order_id rm-1, merchant_refund_id R-1", body, err, paidID)
	}
	t.Run("identical retry by merchant_order_id is the same refund", func(t *testing.T) {
		code, body := s.Do(t, "POST", refundsPath, s.APIKey, byMerchant)
		if code != http.StatusOK || decodeRefund(t, body).ID != first.ID {
			t.Fatalf("retry = %d %s; want 200 with %s", code, body, first.ID)
		}
		// The same refund named by payment_order_id is the same request.
		code, body = s.Do(t, "POST", refundsPath, s.APIKey, mustJSON(t, map[string]any{"app_id": "test_app", "payment_order_id": paidID, "merchant_refund_id": "R-1", "amount": 1000, "reason": "first"}))
		if code != http.StatusOK || decodeRefund(t, body).ID != first.ID {
			t.Fatalf("retry by payment_order_id = %d %s; want 200 with %s", code, body, first.ID)
		}
	})
	second := s.CreateRefund(t, paidID, 2000)

	t.Run("refused", func(t *testing.T) {
		n := count(t, s, "SELECT count(*) FROM refund_orders")
		tests := []struct {
			body         map[string]any
			status       int
			code, detail string
		}{
			{map[string]any{"app_id": "test_app", "merchant_order_id": "rm-1", "payment_order_id": paidID, "amount": 1}, 400, "validation_error", "not both"},
			{map[string]any{"app_id": "test_app", "amount": 1}, 400, "validation_error", "merchant_order_id"},
			{map[string]any{"app_id": "test_app", "merchant_order_id": "no such", "amount": 1}, 400, "validation_error", "merchant_order_id"},
			{map[string]any{"app_id": "test_app", "merchant_order_id": "rm-404", "amount": 1}, 404, "not_found", "rm-404"},
			{map[string]any{"app_id": "test_app", "merchant_order_id": "rm-1", "amount": 9000}, 400, "refund_exceeds_refundable", "7000"},
		}
		for _, tc := range tests {
			code, body := s.Do(t, "POST", refundsPath, s.APIKey, mustJSON(t, tc.body))
			checkError(t, code, body, tc.status, tc.code, tc.detail)
		}
		if got := count(t, s, "SELECT count(*) FROM refund_orders"); got != n {
			t.Errorf("refunds = %d after refused requests; want %d", got, n)
		}
	})

	t.Run("get by merchant_refund_id", func(t *testing.T) {
		code, body := s.Do(t, "GET", refundsPath+"/by-merchant-id/R-1?app_id=test_app", s.APIKey, "")
		if code != http.StatusOK || decodeRefund(t, body).ID != first.ID {
			t.Fatalf("GET by merchant_refund_id = %d %s; want 200 with %s", code, body, first.ID)
		}
		for _, tc := range []struct {
			path         string
			key          string
			status       int
			code, detail string
		}{
			{"/by-merchant-id/R-2?app_id=test_app", s.APIKey, 404, "not_found", "R-2"},
			{"/by-merchant-id/bad%20id?app_id=test_app", s.APIKey, 404, "not_found", "not found"},
			{"/by-merchant-id/R-1?app_id=a%20b", s.APIKey, 400, "validation_error", "app_id"},
			{"/by-merchant-id/R-1", s.NewKey(t, "third_app"), 404, "not_found", "R-1"},
			{"/by-merchant-id/R-1?app_id=other_app", s.APIKey, 403, "forbidden", "other_app"},
			{"/by-merchant-id/R-1?app_id=other_app", s.NewKey(t, "other_app"), 404, "not_found", "R-1"},
		} {
			code, body := s.Do(t, "GET", refundsPath+tc.path, tc.key, "")
			checkError(t, code, body, tc.status, tc.code, tc.detail)
		}
	})

	t.Run("list and search", func(t *testing.T) {
		list := func(query string) []string {
			t.Helper()
			code, body := s.Do(t, "GET", refundsPath+"?app_id=test_app"+query, s.APIKey, "")
			if code != http.StatusOK {
				t.Fatalf("list refunds %s = %d %s", query, code, body)
			}
			var p refundPage
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range p.Data {
				out = append(out, r.ID)
			}
			return out
		}
		both := []string{second.ID, first.ID}
		for query, want := range map[string][]string{
			"":                            both,
			"&merchant_order_id=rm-1":     both,
			"&merchant_order_id=rm-2":     nil,
			"&merchant_order_id=rm-404":   nil,
			"&payment_order_id=" + paidID: both,
			"&payment_order_id=" + paidID + "&merchant_order_id=rm-2": nil,
			"&status=pending":   both,
			"&status=succeeded": nil,
			"&limit=1":          {second.ID},
		} {
			if got := list(query); !slices.Equal(got, want) {
				t.Errorf("list refunds %q = %v; want %v", query, got, want)
			}
		}
		code, body := s.Do(t, "GET", refundsPath+"?app_id=test_app&payment_order_id=nope", s.APIKey, "")
		checkError(t, code, body, 400, "validation_error", "payment_order_id")
	})

	t.Run("refund results carry merchant_order_id", func(t *testing.T) {
		s.RunOnce(t)
		testenv.Eventually(t, 10*time.Second, "refund results", func() bool {
			return len(s.Results(t, pay.StreamRefundResults)) >= 2
		})
		for _, m := range s.Results(t, pay.StreamRefundResults) {
			if m["merchant_order_id"] != "rm-1" {
				t.Errorf("refund message %v: merchant_order_id %q; want rm-1", m, m["merchant_order_id"])
			}
		}
	})
}
