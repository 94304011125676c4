package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/loomipay/loomipay/shared/lakala"
)

func TestYuan(t *testing.T) {
	tests := []struct {
		fen  int64
		want string
	}{
		{0, "0.00"}, {5, "0.05"}, {10, "0.10"}, {100, "1.00"}, {1234, "12.34"}, {100000000, "1000000.00"},
	}
	for _, tt := range tests {
		if got := yuan(tt.fen); got != tt.want {
			t.Errorf("yuan(%d) = %q, want %q", tt.fen, got, tt.want)
		}
	}
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestCounterPage(t *testing.T) {
	h := newHarness(t, Config{})
	data := h.createData("order1", 1234)
	data.OrderInfo = `Mug <script>alert(1)</script>`
	created := must[lakala.CreateOrderResult](t, h, lakala.PathCreateOrder, data, lakala.CodeCashierOK)

	status, page := get(t, created.CounterURL)
	if status != http.StatusOK {
		t.Fatalf("GET counter: HTTP %d", status)
	}
	// The form posts back to the page's own URL, wherever the sandbox is mounted.
	for _, want := range []string{"¥12.34", "Mug &lt;script&gt;", "unpaid", `value="pay"`, `value="fail"`, `<form method="post">`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("subject is not escaped")
	}

	// The browser's form post answers with the page, now paid.
	resp, err := http.PostForm(created.CounterURL, url.Values{"action": {"pay"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "paid") {
		t.Fatalf("form post: HTTP %d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), `value="pay"`) {
		t.Errorf("a paid order's page still offers Pay:\n%s", body)
	}
	h.rc.next(t)

	if status, _ := get(t, h.srv.URL+"/counter/nope"); status != http.StatusNotFound {
		t.Fatalf("unknown counter page: HTTP %d, want 404", status)
	}
}

func TestCounterActionJSON(t *testing.T) {
	h := newHarness(t, Config{})
	created := h.create(t, "order1", 100)
	tests := []struct {
		name, url, action string
		wantStatus        int
	}{
		{"unknown action", created.CounterURL, "refund", http.StatusBadRequest},
		{"unknown order", h.srv.URL + "/counter/nope", "pay", http.StatusNotFound},
		{"pay", created.CounterURL, "pay", http.StatusOK},
		{"pay twice", created.CounterURL, "pay", http.StatusConflict},
		{"fail after pay", created.CounterURL, "fail", http.StatusConflict},
	}
	for _, tt := range tests {
		status, body := h.press(t, tt.url, tt.action)
		if status != tt.wantStatus {
			t.Fatalf("%s: HTTP %d %s, want %d", tt.name, status, body, tt.wantStatus)
		}
		if status == http.StatusOK {
			var v OrderView
			if err := json.Unmarshal(body, &v); err != nil || v.Status != lakala.OrderStatusPaid {
				t.Fatalf("%s: answer %s (%v)", tt.name, body, err)
			}
		}
	}
}
