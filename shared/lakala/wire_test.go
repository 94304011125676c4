package lakala

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestFenDecoding(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: `1`, want: 1},
		{in: `12345`, want: 12345},
		{in: `"12345"`, want: 12345},
		{in: `"0"`, want: 0},
		{in: `null`, want: 0},
		{in: `""`, wantErr: true},
		{in: `"12.5"`, wantErr: true},
		{in: `12.5`, wantErr: true},
		{in: `1e3`, wantErr: true},
		{in: `-1`, wantErr: true},
		{in: `"-1"`, wantErr: true},
		{in: `"1 "`, wantErr: true},
		{in: `"abc"`, wantErr: true},
		{in: `true`, wantErr: true},
		{in: `"99999999999999999999"`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got struct {
				N Fen       `json:"n"`
				S FenString `json:"s"`
			}
			errN := json.Unmarshal([]byte(`{"n":`+tt.in+`}`), &got)
			errS := json.Unmarshal([]byte(`{"s":`+tt.in+`}`), &got)
			if tt.wantErr {
				if errN == nil || errS == nil {
					t.Fatalf("want errors, got Fen %v (%v), FenString %v (%v)", got.N, errN, got.S, errS)
				}
				return
			}
			if errN != nil || errS != nil {
				t.Fatalf("errors: %v, %v", errN, errS)
			}
			if int64(got.N) != tt.want || int64(got.S) != tt.want {
				t.Errorf("got Fen %d, FenString %d, want %d", got.N, got.S, tt.want)
			}
		})
	}
}

func TestFenEncoding(t *testing.T) {
	b, err := json.Marshal(struct {
		N Fen       `json:"n"`
		S FenString `json:"s"`
	}{N: 1999, S: 1999})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"n":1999,"s":"1999"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func TestBeijingTime(t *testing.T) {
	utc := time.Date(2024, 12, 31, 17, 30, 5, 0, time.UTC)
	if got, want := FormatTime(utc), "20250101013005"; got != want {
		t.Errorf("FormatTime = %s, want %s", got, want)
	}
	parsed, err := ParseTime("20250101013005")
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.Equal(utc) {
		t.Errorf("ParseTime = %v, want %v", parsed, utc)
	}
	for _, bad := range []string{"", "2025-01-01", "20251301000000", "2025010101300"} {
		if _, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) succeeded", bad)
		}
	}
}

func TestRequestEnvelope(t *testing.T) {
	now := time.Date(2024, 1, 1, 4, 0, 0, 0, time.UTC)
	b, err := json.Marshal(NewRequest(RefundData{MerchantNo: "M", TermNo: "T", OutTradeNo: "R1", RefundAmount: 500, LocationInfo: LocationInfo{RequestIP: "10.0.0.1"}}, now))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"req_time":"20240101120000","version":"3.0","req_data":{"merchant_no":"M","term_no":"T","out_trade_no":"R1","refund_amount":"500","location_info":{"request_ip":"10.0.0.1"}}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}

	var resp Response[CreateOrderResult]
	in := `{"code":"000000","msg":"成功","resp_time":"20240101120000","resp_data":{"counter_url":"https://pay/x","pay_order_no":"P1","out_order_no":"O1","total_amount":"100"}}`
	if err := json.Unmarshal([]byte(in), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Code != CodeCashierOK || resp.RespData.CounterURL != "https://pay/x" || resp.RespData.TotalAmount != 100 {
		t.Errorf("decoded %+v", resp)
	}
}

func TestCashierNotificationRoundTrip(t *testing.T) {
	in := CashierNotification{
		PayOrderNo: "P1", OutOrderNo: "O1", MerchantNo: "M", OrderStatus: OrderStatusPaid, TotalAmount: 100,
		OrderTradeInfo: OrderTradeInfo{TradeNo: "T1", TradeType: TradeTypePay, TradeStatus: TradeStatusSuccess, TradeAmount: 100, PayerAmount: 90},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{`"out_order_no":"O1"`, `"total_amount":100`, `"order_trade_info":{`, `"payer_amount":90`} {
		if !strings.Contains(string(b), frag) {
			t.Errorf("%s lacks %s", b, frag)
		}
	}
	n, err := ParseNotification(b)
	if err != nil {
		t.Fatal(err)
	}
	if n.Result != PaySucceeded || n.TotalAmount != 100 || n.TradeNo != "T1" {
		t.Errorf("parsed %+v", n)
	}
}
