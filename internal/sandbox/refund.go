package sandbox

import (
	"net/http"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
)

// refundCall is a refund call of either API (labs or 统一退货), as the sandbox acts on it.
type refundCall struct {
	api, reason                                  string
	merchantNo, termNo, outTradeNo               string
	amount                                       int64
	originOutTradeNo, originTradeNo, originLogNo string
}

// refund serves the labs refund, /api/v3/labs/relation/refund.
func (s *Sandbox) refund(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.RefundData](call, familyLabs)
	if bad != nil {
		return *bad
	}
	if bad := tooLong(CodeLabsInvalidParam, limit{"merchant_no", data.MerchantNo, lakala.MaxMerchantNo}, limit{"term_no", data.TermNo, lakala.MaxTermNo},
		limit{"refund_reason", data.RefundReason, lakala.MaxRefundReason}); bad != nil {
		return *bad
	}
	if data.RefundReason == "" {
		return failure(CodeLabsInvalidParam, "refund_reason is required (M String(32))")
	}
	req := refundCall{api: lakala.RefundAPILabs, reason: data.RefundReason, merchantNo: data.MerchantNo, termNo: data.TermNo, outTradeNo: data.OutTradeNo,
		amount: int64(data.RefundAmount), originOutTradeNo: data.OriginOutTradeNo, originTradeNo: data.OriginTradeNo, originLogNo: data.OriginLogNo}
	return s.serveRefund(call, req, data.LocationInfo.RequestIP)
}

// rfdRefund serves 统一退货, /api/v3/rfd/refund_front/refund.
func (s *Sandbox) rfdRefund(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.RfdRefundData](call, familyRfd)
	if bad != nil {
		return *bad
	}
	if bad := tooLong(CodeLabsInvalidParam, limit{"merchant_no", data.MerchantNo, lakala.MaxRfdMerchantNo}, limit{"term_no", data.TermNo, lakala.MaxRfdTermNo},
		limit{"refund_reason", data.RefundReason, lakala.MaxRefundReason}, limit{"notify_url", data.NotifyURL, lakala.MaxNotifyURL}); bad != nil {
		return *bad
	}
	req := refundCall{api: lakala.RefundAPIRfd, reason: data.RefundReason, merchantNo: data.MerchantNo, termNo: data.TermNo, outTradeNo: data.OutTradeNo,
		amount: int64(data.RefundAmount), originOutTradeNo: data.OriginOutTradeNo, originTradeNo: data.OriginTradeNo, originLogNo: data.OriginLogNo}
	return s.serveRefund(call, req, data.LocationInfo.RequestIP)
}

// serveRefund checks what both refund APIs require, then decides and records the refund.
func (s *Sandbox) serveRefund(call apiCall, req refundCall, requestIP string) apiResult {
	origins := 0
	for _, id := range []string{req.originOutTradeNo, req.originTradeNo, req.originLogNo} {
		if id != "" {
			origins++
		}
	}
	if bad := tooLong(CodeLabsInvalidParam, limit{"out_trade_no", req.outTradeNo, lakala.MaxOutTradeNo},
		limit{"location_info.request_ip", requestIP, lakala.MaxRequestIP}, limit{"origin_out_trade_no", req.originOutTradeNo, lakala.MaxOriginTradeNo},
		limit{"origin_trade_no", req.originTradeNo, lakala.MaxOriginTradeNo}, limit{"origin_log_no", req.originLogNo, lakala.MaxOriginLogNo}); bad != nil {
		return *bad
	}
	switch {
	case req.merchantNo == "":
		return failure(CodeLabsInvalidParam, "merchant_no is required")
	case req.termNo == "":
		return failure(CodeLabsInvalidParam, "term_no is required")
	case req.outTradeNo == "":
		return failure(CodeLabsInvalidParam, "out_trade_no is required")
	case req.amount <= 0 || req.amount > lakala.MaxAmount:
		return failure(CodeLabsInvalidParam, "refund_amount must be 1 to 12 digits of fen")
	case requestIP == "":
		return failure(CodeLabsInvalidParam, "location_info.request_ip is required")
	case origins < 2:
		return failure(CodeLabsInvalidParam, "two of origin_out_trade_no, origin_trade_no, origin_log_no are required")
	}
	res, hold := s.applyRefundRequest(req, call.faults, call.now)
	if hold {
		s.hangUp(call.r)
	}
	return res
}

// applyRefundRequest decides and records a refund. hold reports that the money moved
// but the caller must never hear so.
func (s *Sandbox) applyRefundRequest(req refundCall, faults Faults, now time.Time) (res apiResult, hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refunds[req.outTradeNo]; ok {
		// A retried refund never moves money twice, whatever it hears.
		return repeatedRefund(r, req.amount, faults.DuplicateRefund), false
	}
	o := s.originOrder(req)
	switch {
	case o == nil || o.merchantNo != req.merchantNo || o.payTrade == nil || o.payTrade.TradeStatus != lakala.TradeStatusSuccess:
		return failure(CodeOriginNotFound, "no paid trade matches the origin ids"), false
	case !o.supportRefund:
		return failure(CodeRefundFailed, "order was created without support_refund"), false
	case req.amount > o.totalAmount-o.refunded:
		return failure(CodeRefundExceeds, "refund_amount %d exceeds the refundable %d", req.amount, o.totalAmount-o.refunded), false
	}

	r := &refund{outTradeNo: req.outTradeNo, api: req.api, reason: req.reason, order: o, amount: req.amount, tradeTime: now}
	r.logNo = s.nextID("66", 14)
	r.tradeNo = lakala.FormatTime(now)[:8] + r.logNo
	s.refunds[r.outTradeNo] = r
	o.refunds = append(o.refunds, r)

	switch {
	case faults.RefundFail:
		// Lakala keeps the failed refund trade: its query says FAIL. 统一退货 says so at once;
		// the labs refund answers a failure code nobody published (unknown to the client).
		r.state = lakala.TradeStateFail
		r.first = failure(CodeRefundFailed, "退款失败")
		if r.api == lakala.RefundAPIRfd {
			r.first = apiResult{data: r.rfdResult(lakala.TradeStateFail)}
		}
	case faults.RefundUnknown != RefundUnknownOff:
		r.state = lakala.TradeStateFail
		if faults.RefundUnknown == RefundUnknownSuccess {
			s.moveRefundMoney(o, r)
		}
		r.dealQueries = faults.RefundUnknownQueries
		r.first = apiResult{code: lakala.CodeProcessingRefund, msg: "交易处理中", data: r.labsResult(lakala.TradeStateDeal)}
		if r.api == lakala.RefundAPIRfd {
			r.first = apiResult{code: lakala.CodeRfdUnknown, msg: "交易未知", data: r.rfdResult(lakala.TradeStateDeal)}
		}
	default:
		s.moveRefundMoney(o, r)
		r.first = apiResult{data: r.labsResult(lakala.TradeStateSuccess)}
		if r.api == lakala.RefundAPIRfd {
			r.first = apiResult{data: r.rfdResult(lakala.TradeStateSuccess)}
		}
	}
	s.log.Info("sandbox refund", "api", r.api, "out_trade_no", r.outTradeNo, "out_order_no", o.outOrderNo,
		"amount", r.amount, "state", r.state, "applied", r.applied)
	return r.first, faults.RefundTimeoutAfterApply && r.applied > 0
}

// labsResult is the labs refund's resp_data for r in state.
func (r *refund) labsResult(state string) lakala.RefundResult {
	res := lakala.RefundResult{OutTradeNo: r.outTradeNo, RefundAmount: lakala.FenString(r.amount), TradeState: state}
	if state == lakala.TradeStateSuccess {
		res.TradeNo, res.LogNo, res.AccTradeNo = r.tradeNo, r.logNo, r.order.payTrade.AccTradeNo
		res.TotalAmount, res.PayerAmount = lakala.FenString(r.order.totalAmount), lakala.FenString(r.amount)
		res.TradeTime = lakala.FormatTime(r.tradeTime)
	}
	return res
}

// rfdResult is 统一退货's resp_data (the refund's and its query's) for r in state.
func (r *refund) rfdResult(state string) lakala.RfdRefundResult {
	res := lakala.RfdRefundResult{MerchantNo: r.order.merchantNo, OutTradeNo: r.outTradeNo, TradeNo: r.tradeNo, LogNo: r.logNo,
		TradeState: state, RefundAmount: lakala.FenString(r.amount), ChannelRetDesc: "RFD00000#成功"}
	switch state {
	case lakala.TradeStateSuccess:
		res.PayerAmount, res.TradeTime = lakala.FenString(r.amount), lakala.FormatTime(r.tradeTime)
		res.AccTradeNo = r.order.payTrade.AccTradeNo
	case lakala.TradeStateFail:
		res.ChannelRetDesc = CodeRefundFailed + "#退款失败"
	default:
		res.ChannelRetDesc = lakala.CodeRfdUnknown + "#交易未知"
	}
	return res
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
func (s *Sandbox) originOrder(data refundCall) *order {
	var found *order
	for _, candidate := range []*order{
		s.orders[data.originOutTradeNo], s.byTradeNo[data.originTradeNo], s.byLogNo[data.originLogNo],
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
	if (data.originOutTradeNo != "" && data.originOutTradeNo != found.outOrderNo) ||
		(data.originTradeNo != "" && data.originTradeNo != found.payTrade.TradeNo) ||
		(data.originLogNo != "" && data.originLogNo != found.payTrade.LogNo) {
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

// tradeQuery serves the labs trade query. With a refund's out_trade_no it describes the refund
// (trade_main_type REFUND), with a cashier order's number its payment (PREORDER).
func (s *Sandbox) tradeQuery(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.TradeQueryData](call, familyLabs)
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
	unknown := apiResult{data: lakala.TradeQueryResult{
		MerchantNo: data.MerchantNo, OutTradeNo: data.OutTradeNo, TradeNo: data.TradeNo, TradeState: lakala.TradeStateUnknown,
		TradeStateDesc: "未知状态",
	}}
	if s.refuseRefundQuery(data.OutTradeNo, call.faults) {
		return failure(CodeLabsInvalidParam, "参数校验失败")
	}
	if r := s.findRefund(data.OutTradeNo, data.TradeNo); r != nil && r.order.merchantNo == data.MerchantNo {
		if lag > 0 && r.tradeTime.After(call.now.Add(-lag)) {
			return unknown
		}
		state := r.queryState()
		res := lakala.TradeQueryResult{
			MerchantNo: data.MerchantNo, OutTradeNo: r.outTradeNo, TradeMainType: lakala.TradeMainRefund, TradeState: state,
			TotalAmount: lakala.FenString(r.amount),
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
			switch {
			case pay.TradeStatus == lakala.TradeStatusSuccess && o.refunded >= o.totalAmount:
				state = lakala.TradeStateRefund
			case pay.TradeStatus == lakala.TradeStatusSuccess && o.refunded > 0:
				state = lakala.TradeStatePartRefund
			case pay.TradeStatus == lakala.TradeStatusSuccess:
				state = lakala.TradeStateSuccess
			}
			return apiResult{data: lakala.TradeQueryResult{
				MerchantNo: data.MerchantNo, OutTradeNo: o.outOrderNo, TradeNo: pay.TradeNo, TradeMainType: lakala.TradeMainPreorder,
				LogNo: pay.LogNo, AccTradeNo: pay.AccTradeNo, TradeState: state,
				TotalAmount: lakala.FenString(o.totalAmount), PayerAmount: lakala.FenString(o.totalAmount), TradeTime: pay.TradeTime,
			}}
		}
	}
	// A refund that never reached the ledger (say, an injected 500) is unknown here,
	// which tells the caller it may resend the same out_trade_no.
	return unknown
}

// rfdRefundQuery serves 统一退货's query: the refund's own out_trade_no (or its trade_no).
func (s *Sandbox) rfdRefundQuery(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.RfdRefundQueryData](call, familyRfd)
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
	if s.refuseRefundQuery(data.OutTradeNo, call.faults) {
		return failure(CodeRfdQueryRefused, "查询失败")
	}
	r := s.findRefund(data.OutTradeNo, data.TradeNo)
	switch {
	case r == nil || r.order.merchantNo != data.MerchantNo ||
		(call.faults.QueryLag > 0 && r.tradeTime.After(call.now.Add(-call.faults.QueryLag))):
		return failure(CodeRfdNotFound, "交易不存在")
	}
	return apiResult{data: r.rfdResult(r.queryState())}
}

// refuseRefundQuery reports whether this query of out_trade_no is one of the first
// Faults.RefundQueryRefusals, which are refused whether or not the refund exists. The caller holds
// s.mu.
func (s *Sandbox) refuseRefundQuery(outTradeNo string, faults Faults) bool {
	s.refundQueries[outTradeNo]++
	return s.refundQueries[outTradeNo] <= faults.RefundQueryRefusals
}

// queryState is the refund's state as the next query sees it: DEAL while dealQueries last, then
// the real one. The caller holds s.mu.
func (r *refund) queryState() string {
	if r.dealQueries > 0 {
		r.dealQueries--
		return lakala.TradeStateDeal
	}
	return r.state
}

// findRefund looks a refund up by out_trade_no, or else by its trade_no; the caller
// holds s.mu.
func (s *Sandbox) findRefund(outTradeNo, tradeNo string) *refund {
	if outTradeNo != "" {
		return s.refunds[outTradeNo]
	}
	for _, r := range s.refunds {
		if r.tradeNo == tradeNo && r.state == lakala.TradeStateSuccess {
			return r
		}
	}
	return nil
}
