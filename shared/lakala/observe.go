package lakala

import (
	"context"
	"errors"
	"time"
)

// CallRecord describes one call to Lakala for Config.OnCall: what was asked about which number
// and how it ended. It never holds a request or response body, a key or payer data.
type CallRecord struct {
	Operation  string // create, query, close, refund, tradequery (labs), refund_query (统一退货)
	OutNo      string // out_order_no or out_trade_no
	Outcome    string // ok, rejected (a listed definite refusal), unknown (may or may not have acted), invalid (never sent)
	Code       string // Lakala's code, when a verified answer had one
	Msg        string // Lakala's msg, when a verified answer had one
	HTTPStatus int
	TraceID    string
	Duration   time.Duration
	At         time.Time
	MerchantID string // Config.MerchantID of the client that made the call
}

// Call outcomes.
const (
	CallOK       = "ok"
	CallRejected = "rejected"
	CallUnknown  = "unknown"
	CallInvalid  = "invalid"
)

var operations = map[string]string{
	PathCreateOrder: "create",
	PathQueryOrder:  "query",
	PathCloseOrder:  "close",
	PathRefund:      "refund",
	PathTradeQuery:  "tradequery",
	// A refund is a refund whichever API took it (the refund records which); the queries differ.
	PathRfdRefund:      "refund",
	PathRfdRefundQuery: "refund_query",
}

// callInfo is what call learns of the answer, for the record.
type callInfo struct {
	httpStatus int
	traceID    string
	code, msg  string
}

// observe reports a finished call to Config.OnCall.
func (c *Client) observe(ctx context.Context, path, outNo string, started time.Time, info callInfo, err error) {
	if c.cfg.OnCall == nil {
		return
	}
	outcome := CallOK
	switch {
	case err == nil:
	case IsRefused(err) && !errors.Is(err, ErrInvalidRequest):
		outcome = CallRejected
	case errors.Is(err, ErrInvalidRequest):
		outcome = CallInvalid
	default:
		outcome = CallUnknown
	}
	// Lakala's msg is short protocol text; a long one is cut so no echoed payload is kept.
	msg := info.msg
	if len(msg) > 200 {
		msg = msg[:200]
	}
	c.cfg.OnCall(ctx, CallRecord{Operation: operations[path], OutNo: outNo, Outcome: outcome, Code: info.code, Msg: msg,
		HTTPStatus: info.httpStatus, TraceID: info.traceID, Duration: time.Since(started), At: started, MerchantID: c.cfg.MerchantID})
}

// observeInvalid reports a request the client refused to send (its *errp wraps ErrInvalidRequest).
func (c *Client) observeInvalid(ctx context.Context, path, outNo string, errp *error) {
	if *errp != nil && errors.Is(*errp, ErrInvalidRequest) {
		c.observe(ctx, path, outNo, time.Now(), callInfo{}, *errp)
	}
}
