package sandbox

import (
	"net/http"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
)

func (s *Sandbox) refund(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.RefundData](call, lakala.CodeLabsOK)
	if bad != nil {
		return *bad
	}
	origins := 0
	for _, id := range []string{data.OriginOutTradeNo, data.OriginTradeNo, data.OriginLogNo} {
		if id != "" {
			origins++
		}
	}
	switch {
	case data.MerchantNo == "":
		return failure(CodeLabsInvalidParam, "merchant_no is required")
	case data.TermNo == "":
		return failure(CodeLabsInvalidParam, "term_no is required")
	case data.OutTradeNo == "" || len(data.OutTradeNo) > 32:
		return failure(CodeLabsInvalidParam, "out_trade_no must be 1 to 32 characters")
	case data.RefundAmount <= 0:
		return failure(CodeLabsInvalidParam, "refund_amount must be a positive string of fen")
	case data.LocationInfo.RequestIP == "":
		return failure(CodeLabsInvalidParam, "location_info.request_ip is required")
	case origins < 2:
		return failure(CodeLabsInvalidParam, "two of origin_out_trade_no, origin_trade_no, origin_log_no are required")
	}

	res, hold := s.applyRefundRequest(data, call.faults, call.now)
	if hold {
		s.hangUp(call.r)
	}
	return res
}

// applyRefundRequest decides and records a refund. hold reports that the money moved
// but the caller must never hear so.
func (s *Sandbox) applyRefundRequest(data lakala.RefundData, faults Faults, now time.Time) (res apiResult, hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refunds[data.OutTradeNo]; ok {
		// A retried refund never moves money twice, whatever it hears.
		return repeatedRefund(r, int64(data.RefundAmount), faults.DuplicateRefund), false
	}
	o := s.originOrder(data)
	switch {
	case o == nil || o.merchantNo != data.MerchantNo || o.payTrade == nil || o.payTrade.TradeStatus != lakala.TradeStatusSuccess:
		return failure(CodeOriginNotFound, "no paid trade matches the origin ids"), false
	case !o.supportRefund:
		return failure(CodeRefundFailed, "order was created without support_refund"), false
	case int64(data.RefundAmount) > o.totalAmount-o.refunded:
		return failure(CodeRefundExceeds, "refund_amount %d exceeds the refundable %d", data.RefundAmount, o.totalAmount-o.refunded), false
	}

	r := &refund{outTradeNo: data.OutTradeNo, order: o, amount: int64(data.RefundAmount), tradeTime: now}
	r.logNo = s.nextID("66", 14)
	r.tradeNo = lakala.FormatTime(now)[:8] + r.logNo
	s.refunds[r.outTradeNo] = r
	o.refunds = append(o.refunds, r)

	switch {
	case faults.RefundFail:
		r.state = lakala.TradeStateFail
		r.first = failure(CodeRefundFailed, "退款失败")
	case faults.RefundUnknown != RefundUnknownOff:
		r.state = lakala.TradeStateFail
		if faults.RefundUnknown == RefundUnknownSuccess {
			s.moveRefundMoney(o, r)
		}
		r.dealQueries = faults.RefundUnknownQueries
		r.first = apiResult{code: lakala.CodeProcessingRefund, msg: "交易处理中", data: lakala.RefundResult{
			OutTradeNo: r.outTradeNo, RefundAmount: lakala.FenString(r.amount), TradeState: lakala.TradeStateDeal,
		}}
	default:
		s.moveRefundMoney(o, r)
		r.first = apiResult{data: lakala.RefundResult{
			OutTradeNo:   r.outTradeNo,
			TradeNo:      r.tradeNo,
			LogNo:        r.logNo,
			AccTradeNo:   o.payTrade.AccTradeNo,
			RefundAmount: lakala.FenString(r.amount),
			TotalAmount:  lakala.FenString(o.totalAmount),
			PayerAmount:  lakala.FenString(r.amount),
			TradeTime:    lakala.FormatTime(now),
			TradeState:   lakala.TradeStateSuccess,
		}}
	}
	s.log.Info("sandbox refund", "out_trade_no", r.outTradeNo, "out_order_no", o.outOrderNo,
		"amount", r.amount, "state", r.state, "applied", r.applied)
	return r.first, faults.RefundTimeoutAfterApply && r.applied > 0
}

// repeatedRefund is the answer to a refund whose out_trade_no is already known.
func repeatedRefund(r *refund, amount int64, mode string) apiResult {
	switch mode {
	case DuplicateRefundRefuse:
		return failure(CodeRefundRepeated, "交易流水号重复")
	case DuplicateRefundExceeds:
		if left := r.order.totalAmount - r.order.refunded; amount > left {
			return failure(CodeRefundExceeds, "refund_amount %d exceeds the refundable %d", amount, left)
		}
		return failure(CodeRefundRepeated, "交易流水号重复")
	default:
		return r.first
	}
}

// originOrder finds the paid order every given origin id points at, or nil.
func (s *Sandbox) originOrder(data lakala.RefundData) *order {
	var found *order
	for _, candidate := range []*order{
		s.orders[data.OriginOutTradeNo], s.byTradeNo[data.OriginTradeNo], s.byLogNo[data.OriginLogNo],
	} {
		if candidate == nil {
			continue
		}
		if found != nil && found != candidate {
			return nil
		}
		found = candidate
	}
	if found == nil || found.payTrade == nil {
		return nil
	}
	if (data.OriginOutTradeNo != "" && data.OriginOutTradeNo != found.outOrderNo) ||
		(data.OriginTradeNo != "" && data.OriginTradeNo != found.payTrade.TradeNo) ||
		(data.OriginLogNo != "" && data.OriginLogNo != found.payTrade.LogNo) {
		return nil
	}
	return found
}

// moveRefundMoney applies r to o; the caller holds s.mu.
func (s *Sandbox) moveRefundMoney(o *order, r *refund) {
	r.state = lakala.TradeStateSuccess
	r.applied++
	o.refunded += r.amount
	o.status = lakala.OrderStatusRefunded
	o.trades = append(o.trades, lakala.OrderTradeInfo{
		TradeNo:     r.tradeNo,
		LogNo:       r.logNo,
		TradeType:   lakala.TradeTypeRefund,
		TradeStatus: lakala.TradeStatusSuccess,
		TradeAmount: lakala.Fen(r.amount),
		PayerAmount: lakala.Fen(r.amount),
		TradeTime:   lakala.FormatTime(r.tradeTime),
		PayMode:     o.payMode,
	})
	o.record(r.tradeTime)
}

// hangUp keeps the request open until the caller gives up, the hold cap passes or the
// sandbox closes, then drops the connection without an answer.
func (s *Sandbox) hangUp(r *http.Request) {
	hold := time.NewTimer(s.refundHold)
	defer hold.Stop()
	select {
	case <-r.Context().Done():
	case <-hold.C:
	case <-s.stop.Done():
	}
	// net/http aborts the connection (HTTP/1) or stream (HTTP/2) without logging.
	panic(http.ErrAbortHandler)
}

func (s *Sandbox) tradeQuery(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.TradeQueryData](call, lakala.CodeLabsOK)
	if bad != nil {
		return *bad
	}
	switch {
	case data.MerchantNo == "":
		return failure(CodeLabsInvalidParam, "merchant_no is required")
	case data.TermNo == "":
		return failure(CodeLabsInvalidParam, "term_no is required")
	case data.OutTradeNo == "" && data.TradeNo == "":
		return failure(CodeLabsInvalidParam, "out_trade_no or trade_no is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lag := call.faults.QueryLag
	if r := s.findRefund(data); r != nil && r.order.merchantNo == data.MerchantNo {
		if lag > 0 && r.tradeTime.After(call.now.Add(-lag)) {
			return apiResult{data: lakala.TradeQueryResult{
				MerchantNo: data.MerchantNo, OutTradeNo: data.OutTradeNo, TradeNo: data.TradeNo, TradeState: lakala.TradeStateUnknown,
			}}
		}
		state := r.state
		if r.dealQueries > 0 {
			r.dealQueries--
			state = lakala.TradeStateDeal
		}
		res := lakala.TradeQueryResult{
			MerchantNo: data.MerchantNo, OutTradeNo: r.outTradeNo, TradeState: state,
			TradeType: lakala.TradeTypeRefund, TotalAmount: lakala.FenString(r.amount),
		}
		if state == lakala.TradeStateSuccess {
			res.TradeNo, res.LogNo = r.tradeNo, r.logNo
			res.PayerAmount = lakala.FenString(r.amount)
			res.TradeTime = lakala.FormatTime(r.tradeTime)
			res.AccTradeNo = r.order.payTrade.AccTradeNo
		}
		return apiResult{data: res}
	}
	if o := s.orders[data.OutTradeNo]; o != nil && o.merchantNo == data.MerchantNo {
		st, seen := o.visible(call.now, lag)
		if pay := lastPayTrade(st.trades); seen && pay != nil {
			state := lakala.TradeStateFail
			if pay.TradeStatus == lakala.TradeStatusSuccess {
				state = lakala.TradeStateSuccess
			}
			return apiResult{data: lakala.TradeQueryResult{
				MerchantNo: data.MerchantNo, OutTradeNo: o.outOrderNo, TradeNo: pay.TradeNo,
				LogNo: pay.LogNo, AccTradeNo: pay.AccTradeNo, TradeState: state,
				TradeType: lakala.TradeTypePay, TotalAmount: lakala.FenString(o.totalAmount),
				PayerAmount: lakala.FenString(o.totalAmount), TradeTime: pay.TradeTime,
			}}
		}
	}
	// A refund that never reached the ledger (say, an injected 500) is unknown here,
	// which tells the caller it may resend the same out_trade_no.
	return apiResult{data: lakala.TradeQueryResult{
		MerchantNo: data.MerchantNo, OutTradeNo: data.OutTradeNo, TradeNo: data.TradeNo, TradeState: lakala.TradeStateUnknown,
	}}
}

// findRefund looks a refund up by out_trade_no, or else by its trade_no; the caller
// holds s.mu.
func (s *Sandbox) findRefund(data lakala.TradeQueryData) *refund {
	if data.OutTradeNo != "" {
		return s.refunds[data.OutTradeNo]
	}
	for _, r := range s.refunds {
		if r.tradeNo == data.TradeNo && r.state == lakala.TradeStateSuccess {
			return r
		}
	}
	return nil
}
