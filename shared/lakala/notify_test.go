package lakala

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseNotificationVectorBody(t *testing.T) {
	if _, err := os.Stat(testdataDir); err != nil {
		missingTestData(t, "Lakala test vector not found at %s: %v", testdataDir, err)
	}
	body, err := os.ReadFile(filepath.Join(testdataDir, "notify-sample-body.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseNotification(body)
	if err != nil {
		t.Fatal(err)
	}
	want := Notification{
		OutOrderNo:  "CH2021090613190866292",
		PayOrderNo:  "21090611012001970631000463034",
		MerchantNo:  "822126090640003", // the published legacy sample names its merchant and terminal
		TermNo:      "47781282",
		Result:      PaySucceeded,
		PayStatus:   "S",
		TotalAmount: 1,
		TradeType:   "PAY",
		TradeStatus: "S",
		TradeNo:     "2021090666210003610012",
		LogNo:       "66210003610012",
		AccTradeNo:  "2021090622001432581427657317",
		TradeTime:   time.Date(2021, 9, 6, 5, 19, 43, 0, time.UTC),
		Form:        FormLegacy,
	}
	assertNotification(t, got, want)
}

func assertNotification(t *testing.T, got, want Notification) {
	t.Helper()
	if !got.TradeTime.Equal(want.TradeTime) {
		t.Errorf("TradeTime = %v, want %v", got.TradeTime, want.TradeTime)
	}
	got.TradeTime, want.TradeTime = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseNotification(t *testing.T) {
	paidAt := time.Date(2024, 5, 1, 2, 3, 4, 0, time.UTC) // 20240501100304 in Beijing
	tests := []struct {
		name    string
		body    string
		want    Notification
		wantErr bool
	}{
		{
			name: "cashier paid",
			body: `{"pay_order_no":"P1","out_order_no":"O1","merchant_no":"M","term_no":"T","order_status":"2","total_amount":1000,
				"order_trade_info":{"trade_no":"TN","log_no":"LN","trade_type":"PAY","trade_status":"S","trade_amount":1000,"payer_amount":900,
				"trade_time":"20240501100304","acc_trade_no":"ACC"}}`,
			want: Notification{OutOrderNo: "O1", PayOrderNo: "P1", MerchantNo: "M", TermNo: "T", Result: PaySucceeded, PayStatus: "S", TotalAmount: 1000, TradeAmount: 1000,
				OrderStatus: "2", TradeType: "PAY", TradeStatus: "S",
				TradeNo: "TN", LogNo: "LN", AccTradeNo: "ACC", TradeTime: paidAt, Form: FormCashier},
		},
		{
			name: "cashier trade success while order status lags, string amounts",
			body: `{"out_order_no":"O1","order_status":"1","total_amount":"1000","order_trade_info":{"trade_no":"TN","trade_type":"PAY","trade_status":"S","trade_amount":"1000"}}`,
			want: Notification{OutOrderNo: "O1", Result: PaySucceeded, PayStatus: "S", TotalAmount: 1000, TradeAmount: 1000, TradeNo: "TN",
				OrderStatus: "1", TradeType: "PAY", TradeStatus: "S", Form: FormCashier},
		},
		{
			name: "cashier total missing falls back to trade amount",
			body: `{"out_order_no":"O1","order_status":"2","order_trade_info":{"trade_type":"PAY","trade_status":"S","trade_amount":700,"payer_amount":600}}`,
			want: Notification{OutOrderNo: "O1", Result: PaySucceeded, PayStatus: "S", TotalAmount: 700, TradeAmount: 700,
				OrderStatus: "2", TradeType: "PAY", TradeStatus: "S", Form: FormCashier},
		},
		{
			name: "cashier trade failed on an order that stays payable",
			body: `{"out_order_no":"O1","order_status":"1","total_amount":1000,"order_trade_info":{"trade_type":"PAY","trade_status":"F"}}`,
			want: Notification{OutOrderNo: "O1", Result: PayPending, PayStatus: "F", TotalAmount: 1000,
				OrderStatus: "1", TradeType: "PAY", TradeStatus: "F", Form: FormCashier},
		},
		{
			name: "cashier order failed",
			body: `{"out_order_no":"O1","order_status":"3","total_amount":1000}`,
			want: Notification{OutOrderNo: "O1", Result: PayFinalUnpaid, PayStatus: "F", TotalAmount: 1000, OrderStatus: "3", Form: FormCashier},
		},
		{
			name: "cashier processing",
			body: `{"out_order_no":"O1","order_status":"1","total_amount":1000,"order_trade_info":{"trade_type":"PAY","trade_status":"P"}}`,
			want: Notification{OutOrderNo: "O1", Result: PayPending, PayStatus: "P", TotalAmount: 1000,
				OrderStatus: "1", TradeType: "PAY", TradeStatus: "P", Form: FormCashier},
		},
		{
			name: "cashier failed refund trade is not a failed payment",
			body: `{"out_order_no":"O1","order_status":"6","total_amount":1000,"order_trade_info":{"trade_type":"REFUND","trade_status":"F"}}`,
			want: Notification{OutOrderNo: "O1", Result: PayPending, TotalAmount: 1000, OrderStatus: "6", TradeType: "REFUND", TradeStatus: "F", Form: FormCashier},
		},
		{
			name: "cashier paid order reporting a refund trade keeps the refund's ids out",
			body: `{"out_order_no":"O1","order_status":"2","total_amount":1000,"order_trade_info":{"trade_no":"R9","log_no":"RL9","acc_trade_no":"A9","trade_type":"REFUND","trade_status":"S","trade_time":"20240501100304"}}`,
			want: Notification{OutOrderNo: "O1", Result: PaySucceeded, PayStatus: "S", TotalAmount: 1000, OrderStatus: "2", TradeType: "REFUND", TradeStatus: "S", Form: FormCashier},
		},
		{
			name: "cashier unreadable trade time is left zero",
			body: `{"out_order_no":"O1","order_status":"2","total_amount":5,"order_trade_info":{"trade_time":"yesterday"}}`,
			want: Notification{OutOrderNo: "O1", Result: PaySucceeded, PayStatus: "S", TotalAmount: 5, OrderStatus: "2", Form: FormCashier},
		},
		{
			name: "legacy failed trade is not a final order",
			body: `{"payOrderNo":"P1","merchantOrderNo":"O1","amount":"300","actualPayAmount":200,"payStatus":"F","tradeType":"PAY","lklOrderNo":"L1","logNo":"G1"}`,
			want: Notification{OutOrderNo: "O1", PayOrderNo: "P1", Result: PayPending, PayStatus: "F", TotalAmount: 300, TradeNo: "L1", LogNo: "G1",
				TradeType: "PAY", TradeStatus: "F", Form: FormLegacy},
		},
		{
			name: "legacy success on a refund trade is not a payment",
			body: `{"merchantOrderNo":"O1","amount":300,"payStatus":"S","tradeType":"REFUND"}`,
			want: Notification{OutOrderNo: "O1", Result: PayPending, TotalAmount: 300, TradeType: "REFUND", TradeStatus: "S", Form: FormLegacy},
		},
		{name: "not JSON", body: `payStatus=S`, wantErr: true},
		{name: "JSON array", body: `[1]`, wantErr: true},
		{name: "unrelated object", body: `{"code":"SUCCESS"}`, wantErr: true},
		{name: "empty order number", body: `{"out_order_no":"","order_status":"2"}`, wantErr: true},
		{name: "fractional amount", body: `{"out_order_no":"O1","order_status":"2","total_amount":10.5}`, wantErr: true},
		{name: "legacy amount garbage", body: `{"merchantOrderNo":"O1","amount":"ten","payStatus":"S"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNotification([]byte(tt.body))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertNotification(t, got, tt.want)
		})
	}
	if _, err := ParseNotification([]byte(`{"code":"SUCCESS"}`)); !errors.Is(err, ErrNotNotification) {
		t.Errorf("unrelated object: err = %v, want ErrNotNotification", err)
	}
}
