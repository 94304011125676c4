package lakala

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestOnCallReportsEveryCall(t *testing.T) {
	tests := []struct {
		name    string
		reply   func(http.ResponseWriter, *http.Request, string) (int, string)
		call    func(*Client) error
		want    CallRecord
		noTrace bool
	}{
		{name: "ok", reply: fixedReply(200, `{"code":"000000","msg":"成功","resp_data":{"order_status":"2"}}`),
			call: func(c *Client) error { _, err := c.QueryCashierOrder(context.Background(), "O1"); return err },
			want: CallRecord{Operation: "query", OutNo: "O1", Outcome: CallOK, Code: "000000", Msg: "成功", HTTPStatus: 200, TraceID: "trace-123"}},
		{name: "rejected", reply: fixedReply(200, `{"code":"BBS11000","msg":"参数校验失败"}`),
			call: func(c *Client) error {
				_, err := c.Refund(context.Background(), RefundRequest{API: RefundAPILabs, OutTradeNo: "R1", Amount: 5, Reason: "r", RequestIP: "1.2.3.4", OriginOutTradeNo: "O1", OriginTradeNo: "T1"})
				return err
			},
			want: CallRecord{Operation: "refund", OutNo: "R1", Outcome: CallRejected, Code: "BBS11000", Msg: "参数校验失败", HTTPStatus: 200, TraceID: "trace-123"}},
		{name: "a code nobody listed is unknown", reply: fixedReply(200, `{"code":"000100","msg":"网络请求失败"}`),
			call: func(c *Client) error {
				_, err := c.Refund(context.Background(), RefundRequest{API: RefundAPIRfd, OutTradeNo: "R1", Amount: 5, Reason: "r", RequestIP: "1.2.3.4", OriginOutTradeNo: "O1", OriginTradeNo: "T1"})
				return err
			},
			want: CallRecord{Operation: "refund", OutNo: "R1", Outcome: CallUnknown, Code: "000100", Msg: "网络请求失败", HTTPStatus: 200, TraceID: "trace-123"}},
		{name: "unknown", reply: fixedReply(502, ``),
			call: func(c *Client) error { _, err := c.CloseCashierOrder(context.Background(), "O2"); return err },
			want: CallRecord{Operation: "close", OutNo: "O2", Outcome: CallUnknown, HTTPStatus: 502, TraceID: "trace-123"}},
		{name: "invalid", reply: fixedReply(200, `{}`),
			call: func(c *Client) error { _, err := c.QueryRefund(context.Background(), RefundAPILabs, ""); return err },
			want: CallRecord{Operation: "tradequery", Outcome: CallInvalid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newClientFixture(t, tt.reply)
			var mu sync.Mutex
			var got []CallRecord
			fx.client.cfg.OnCall = func(_ context.Context, r CallRecord) {
				mu.Lock()
				got = append(got, r)
				mu.Unlock()
			}
			_ = tt.call(fx.client)
			if len(got) != 1 {
				t.Fatalf("%d records; want 1", len(got))
			}
			r := got[0]
			if r.Duration < 0 || r.At.IsZero() || time.Since(r.At) > time.Minute {
				t.Errorf("duration %v at %v", r.Duration, r.At)
			}
			r.Duration, r.At = 0, time.Time{}
			if r != tt.want {
				t.Errorf("record %+v; want %+v", r, tt.want)
			}
		})
	}
}
