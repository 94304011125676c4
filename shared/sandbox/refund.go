package sandbox

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/lakala"
)

// refundCall is a refund call of either API (labs or 统一退货): what both send, and which.
type refundCall struct {
	api string
	lakala.RefundData
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
	return s.serveRefund(call, refundCall{api: lakala.RefundAPILabs, RefundData: data})
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
	return s.serveRefund(call, refundCall{api: lakala.RefundAPIRfd, RefundData: data.RefundData})
}

// serveRefund checks what both refund APIs require, then decides and records the refund.
func (s *Sandbox) serveRefund(call apiCall, req refundCall) apiResult {
	origins := 0
	for _, id := range []string{req.OriginOutTradeNo, req.OriginTradeNo, req.OriginLogNo} {
		if id != "" {
			origins++
		}
	}
	if bad := tooLong(CodeLabsInvalidParam, limit{"out_trade_no", req.OutTradeNo, lakala.MaxOutTradeNo},
		limit{"location_info.request_ip", req.LocationInfo.RequestIP, lakala.MaxRequestIP}, limit{"origin_out_trade_no", req.OriginOutTradeNo, lakala.MaxOriginTradeNo},
		limit{"origin_trade_no", req.OriginTradeNo, lakala.MaxOriginTradeNo}, limit{"origin_log_no", req.OriginLogNo, lakala.MaxOriginLogNo}); bad != nil {
		return *bad
	}
	switch {
	case req.MerchantNo == "":
		return failure(CodeLabsInvalidParam, "merchant_no is required")
	case req.TermNo == "":
		return failure(CodeLabsInvalidParam, "term_no is required")
	case req.OutTradeNo == "":
		return failure(CodeLabsInvalidParam, "out_trade_no is required")
	case int64(req.RefundAmount) <= 0 || int64(req.RefundAmount) > lakala.MaxAmount:
		return failure(CodeLabsInvalidParam, "refund_amount must be 1 to 12 digits of fen")
	case req.LocationInfo.RequestIP == "":
		return failure(CodeLabsInvalidParam, "location_info.request_ip is required")
	case origins < 2:
		return failure(CodeLabsInvalidParam, "two of origin_out_trade_no, origin_trade_no, origin_log_no are required")
	}
	if _, bad := s.merchantFor(call.ctx, call, familyLabs, req.MerchantNo); bad != nil {
		return *bad
	}
	res, hold, err := s.applyRefundRequest(call.ctx, req, call.faults, call.now)
	if err != nil {
		return s.internal("refund", err)
	}
	if hold {
		s.hangUp(call.r)
	}
	return res
}

// applyRefundRequest decides and records a refund. hold reports that the money moved
// but the caller must never hear so.
func (s *Sandbox) applyRefundRequest(ctx context.Context, req refundCall, faults Faults, now time.Time) (res apiResult, hold bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// One request of a number at a time: a retry waits for the first's answer.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "refund/"+req.MerchantNo+"/"+req.OutTradeNo); err != nil {
			return err
		}
		if r, err := readJSON[refund](ctx, tx, s.sql(`SELECT state FROM lkl.refunds WHERE merchant_no = $1 AND out_trade_no = $2`),
			req.MerchantNo, req.OutTradeNo); err == nil {
			// A retried refund never moves money twice, whatever it hears.
			o, err := s.lockOrder(ctx, tx, r.MerchantNo, r.OutOrderNo)
			if err != nil {
				return err
			}
			res = repeatedRefund(r, o, int64(req.RefundAmount), faults.DuplicateRefund)
			return nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		o, err := s.originOrder(ctx, tx, req)
		if err != nil {
			return err
		}
		switch {
		case o == nil || o.PayTrade == nil || o.PayTrade.TradeStatus != lakala.TradeStatusSuccess:
			res = failure(CodeOriginNotFound, "no paid trade matches the origin ids")
			return nil
		case !o.SupportRefund:
			res = failure(CodeRefundFailed, "order was created without support_refund")
			return nil
		case int64(req.RefundAmount) > o.TotalAmount-o.Refunded:
			res = failure(CodeRefundExceeds, "refund_amount %d exceeds the refundable %d", int64(req.RefundAmount), o.TotalAmount-o.Refunded)
			return nil
		}

		r := &refund{OutTradeNo: req.OutTradeNo, API: req.api, Reason: req.RefundReason, MerchantNo: o.MerchantNo, OutOrderNo: o.OutOrderNo,
			OrderAmount: o.TotalAmount, AccTradeNo: o.PayTrade.AccTradeNo, Amount: int64(req.RefundAmount), TradeTime: now}
		if r.LogNo, err = s.nextID(ctx, tx, "66", 14); err != nil {
			return err
		}
		r.TradeNo = lakala.FormatTime(now)[:8] + r.LogNo
		o.Refunds = append(o.Refunds, r.OutTradeNo)

		switch {
		case faults.RefundFail:
			// Lakala keeps the failed refund trade: its query says FAIL. 统一退货 says so at once;
			// the labs refund answers a failure code nobody published (unknown to the client).
			r.State = lakala.TradeStateFail
			r.First = storedResult{Code: CodeRefundFailed, Msg: "退款失败"}
			if r.API == lakala.RefundAPIRfd {
				r.First = storedResult{Data: r.rfdResult(lakala.TradeStateFail)}
			}
		case faults.RefundUnknown != RefundUnknownOff:
			r.State = lakala.TradeStateFail
			if faults.RefundUnknown == RefundUnknownSuccess {
				moveRefundMoney(o, r)
			}
			r.DealQueries = faults.RefundUnknownQueries
			r.First = storedResult{Code: lakala.CodeProcessingRefund, Msg: "交易处理中", Data: r.labsResult(lakala.TradeStateDeal)}
			if r.API == lakala.RefundAPIRfd {
				r.First = storedResult{Code: lakala.CodeRfdUnknown, Msg: "交易未知", Data: r.rfdResult(lakala.TradeStateDeal)}
			}
		default:
			moveRefundMoney(o, r)
			r.First = storedResult{Data: r.labsResult(lakala.TradeStateSuccess)}
			if r.API == lakala.RefundAPIRfd {
				r.First = storedResult{Data: r.rfdResult(lakala.TradeStateSuccess)}
			}
		}
		if err := s.saveRefund(ctx, tx, r); err != nil {
			return err
		}
		if err := s.saveOrder(ctx, tx, o); err != nil {
			return err
		}
		s.log.Info("sandbox refund", "api", r.API, "merchant_no", r.MerchantNo, "out_trade_no", r.OutTradeNo, "out_order_no", o.OutOrderNo,
			"amount", r.Amount, "state", r.State, "applied", r.Applied)
		res, hold = r.First.result(), faults.RefundTimeoutAfterApply && r.Applied > 0
		return nil
	})
	return res, hold, err
}

// labsResult is the labs refund's resp_data for r in state.
func (r *refund) labsResult(state string) lakala.RefundResult {
	res := lakala.RefundResult{OutTradeNo: r.OutTradeNo, RefundAmount: lakala.FenString(r.Amount), TradeState: state}
	if state == lakala.TradeStateSuccess {
		res.TradeNo, res.LogNo, res.AccTradeNo = r.TradeNo, r.LogNo, r.AccTradeNo
		res.TotalAmount, res.PayerAmount = lakala.FenString(r.OrderAmount), lakala.FenString(r.Amount)
		res.TradeTime = lakala.FormatTime(r.TradeTime)
	}
	return res
}

// rfdResult is 统一退货's resp_data (the refund's and its query's) for r in state.
func (r *refund) rfdResult(state string) lakala.RfdRefundResult {
	res := lakala.RfdRefundResult{MerchantNo: r.MerchantNo, OutTradeNo: r.OutTradeNo, TradeNo: r.TradeNo, LogNo: r.LogNo,
		TradeState: state, RefundAmount: lakala.FenString(r.Amount), ChannelRetDesc: "RFD00000#成功"}
	switch state {
	case lakala.TradeStateSuccess:
		res.PayerAmount, res.TradeTime = lakala.FenString(r.Amount), lakala.FormatTime(r.TradeTime)
		res.AccTradeNo = r.AccTradeNo
	case lakala.TradeStateFail:
		res.ChannelRetDesc = CodeRefundFailed + "#退款失败"
	default:
		res.ChannelRetDesc = lakala.CodeRfdUnknown + "#交易未知"
	}
	return res
}

// repeatedRefund is the answer to a refund whose out_trade_no is already known (o is the order
// it refunded, as it is now).
func repeatedRefund(r *refund, o *order, amount int64, mode string) apiResult {
	switch mode {
	case DuplicateRefundRefuse:
		return failure(CodeRefundRepeated, "交易流水号重复")
	case DuplicateRefundExceeds:
		if o != nil {
			if left := o.TotalAmount - o.Refunded; amount > left {
				return failure(CodeRefundExceeds, "refund_amount %d exceeds the refundable %d", amount, left)
			}
		}
		return failure(CodeRefundRepeated, "交易流水号重复")
	default:
		return r.First.result()
	}
}

// originOrder finds and locks the paid order of the refund's merchant that every given origin id
// points at, or nil.
func (s *Sandbox) originOrder(ctx context.Context, tx pgx.Tx, req refundCall) (*order, error) {
	outOrderNo := ""
	for _, lookup := range []struct{ column, value string }{{"trade_no", req.OriginTradeNo}, {"log_no", req.OriginLogNo}} {
		if lookup.value == "" {
			continue
		}
		var merchantNo, no string
		err := tx.QueryRow(ctx, s.sql(`SELECT merchant_no, out_order_no FROM lkl.trades WHERE `+lookup.column+` = $1`), lookup.value).Scan(&merchantNo, &no)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil, nil
		case err != nil:
			return nil, err
		case merchantNo != req.MerchantNo || (outOrderNo != "" && outOrderNo != no):
			return nil, nil
		}
		outOrderNo = no
	}
	if req.OriginOutTradeNo != "" {
		if outOrderNo != "" && outOrderNo != req.OriginOutTradeNo {
			return nil, nil
		}
		outOrderNo = req.OriginOutTradeNo
	}
	o, err := s.lockOrder(ctx, tx, req.MerchantNo, outOrderNo)
	if err != nil || o == nil || o.PayTrade == nil {
		return nil, err
	}
	if (req.OriginTradeNo != "" && req.OriginTradeNo != o.PayTrade.TradeNo) ||
		(req.OriginLogNo != "" && req.OriginLogNo != o.PayTrade.LogNo) {
		return nil, nil
	}
	return o, nil
}

// moveRefundMoney applies r to o.
func moveRefundMoney(o *order, r *refund) {
	r.State = lakala.TradeStateSuccess
	r.Applied++
	o.Refunded += r.Amount
	o.Status = lakala.OrderStatusRefunded
	o.Trades = append(o.Trades, lakala.OrderTradeInfo{
		TradeNo:     r.TradeNo,
		LogNo:       r.LogNo,
		TradeType:   lakala.TradeTypeRefund,
		TradeStatus: lakala.TradeStatusSuccess,
		TradeAmount: lakala.Fen(r.Amount),
		PayerAmount: lakala.Fen(r.Amount),
		TradeTime:   lakala.FormatTime(r.TradeTime),
		PayMode:     o.PayMode,
	})
	o.record(r.TradeTime)
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

// checkTradeQuery refuses a trade or refund query without what both query APIs require.
func checkTradeQuery(merchantNo, termNo, outTradeNo, tradeNo string) *apiResult {
	var res apiResult
	switch {
	case merchantNo == "":
		res = failure(CodeLabsInvalidParam, "merchant_no is required")
	case termNo == "":
		res = failure(CodeLabsInvalidParam, "term_no is required")
	case outTradeNo == "" && tradeNo == "":
		res = failure(CodeLabsInvalidParam, "out_trade_no or trade_no is required")
	default:
		return nil
	}
	return &res
}

// tradeQuery serves the labs trade query. With a refund's out_trade_no it describes the refund
// (trade_main_type REFUND), with a cashier order's number its payment (PREORDER).
func (s *Sandbox) tradeQuery(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.TradeQueryData](call, familyLabs)
	if bad != nil {
		return *bad
	}
	if bad := checkTradeQuery(data.MerchantNo, data.TermNo, data.OutTradeNo, data.TradeNo); bad != nil {
		return *bad
	}
	if _, bad := s.merchantFor(call.ctx, call, familyLabs, data.MerchantNo); bad != nil {
		return *bad
	}
	lag := call.faults.QueryLag
	unknown := apiResult{data: lakala.TradeQueryResult{
		MerchantNo: data.MerchantNo, OutTradeNo: data.OutTradeNo, TradeNo: data.TradeNo, TradeState: lakala.TradeStateUnknown,
		TradeStateDesc: "未知状态",
	}}
	var res apiResult
	err := s.inTx(call.ctx, func(tx pgx.Tx) error {
		r, refused, err := s.queriedRefund(call.ctx, tx, data.MerchantNo, data.OutTradeNo, data.TradeNo, call.faults)
		if err != nil {
			return err
		}
		if refused {
			res = failure(CodeLabsInvalidParam, "参数校验失败")
			return nil
		}
		if r != nil {
			if lag > 0 && r.TradeTime.After(call.now.Add(-lag)) {
				res = unknown
				return nil
			}
			state := r.queryState()
			out := lakala.TradeQueryResult{
				MerchantNo: data.MerchantNo, OutTradeNo: r.OutTradeNo, TradeMainType: lakala.TradeMainRefund, TradeState: state,
				TotalAmount: lakala.FenString(r.Amount),
			}
			if state == lakala.TradeStateSuccess {
				out.TradeNo, out.LogNo = r.TradeNo, r.LogNo
				out.PayerAmount = lakala.FenString(r.Amount)
				out.TradeTime = lakala.FormatTime(r.TradeTime)
				out.AccTradeNo = r.AccTradeNo
			}
			res = apiResult{data: out}
			return s.saveRefund(call.ctx, tx, r)
		}
		o, err := readJSON[order](call.ctx, tx, s.sql(`SELECT state FROM lkl.orders WHERE merchant_no = $1 AND out_order_no = $2`), data.MerchantNo, data.OutTradeNo)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		res = unknown
		if o != nil {
			o.expireIfDue(call.now)
			st, seen := o.visible(call.now, lag)
			if pay := lastPayTrade(st.Trades); seen && pay != nil {
				state := lakala.TradeStateFail
				switch {
				case pay.TradeStatus == lakala.TradeStatusSuccess && o.Refunded >= o.TotalAmount:
					state = lakala.TradeStateRefund
				case pay.TradeStatus == lakala.TradeStatusSuccess && o.Refunded > 0:
					state = lakala.TradeStatePartRefund
				case pay.TradeStatus == lakala.TradeStatusSuccess:
					state = lakala.TradeStateSuccess
				}
				res = apiResult{data: lakala.TradeQueryResult{
					MerchantNo: data.MerchantNo, OutTradeNo: o.OutOrderNo, TradeNo: pay.TradeNo, TradeMainType: lakala.TradeMainPreorder,
					LogNo: pay.LogNo, AccTradeNo: pay.AccTradeNo, TradeState: state,
					TotalAmount: lakala.FenString(o.TotalAmount), PayerAmount: lakala.FenString(o.TotalAmount), TradeTime: pay.TradeTime,
				}}
			}
		}
		// A refund that never reached the ledger (say, an injected 500) is unknown here,
		// which tells the caller it may resend the same out_trade_no.
		return nil
	})
	if err != nil {
		return s.internal("trade query", err)
	}
	return res
}

// rfdRefundQuery serves 统一退货's query: the refund's own out_trade_no (or its trade_no).
func (s *Sandbox) rfdRefundQuery(call apiCall) apiResult {
	data, bad := decodeReqData[lakala.RfdRefundQueryData](call, familyRfd)
	if bad != nil {
		return *bad
	}
	if bad := checkTradeQuery(data.MerchantNo, data.TermNo, data.OutTradeNo, data.TradeNo); bad != nil {
		return *bad
	}
	if _, bad := s.merchantFor(call.ctx, call, familyRfd, data.MerchantNo); bad != nil {
		return *bad
	}
	var res apiResult
	err := s.inTx(call.ctx, func(tx pgx.Tx) error {
		r, refused, err := s.queriedRefund(call.ctx, tx, data.MerchantNo, data.OutTradeNo, data.TradeNo, call.faults)
		if err != nil {
			return err
		}
		if refused {
			res = failure(CodeRfdQueryRefused, "查询失败")
			return nil
		}
		if r == nil || (call.faults.QueryLag > 0 && r.TradeTime.After(call.now.Add(-call.faults.QueryLag))) {
			res = failure(CodeRfdNotFound, "交易不存在")
			return nil
		}
		res = apiResult{data: r.rfdResult(r.queryState())}
		return s.saveRefund(call.ctx, tx, r)
	})
	if err != nil {
		return s.internal("refund query", err)
	}
	return res
}

// queriedRefund counts a query of out_trade_no and reads the refund it asks for (nil when there
// is none), unless the query is one of the first Faults.RefundQueryRefusals of that
// out_trade_no, which are refused whether or not the refund exists.
func (s *Sandbox) queriedRefund(ctx context.Context, tx pgx.Tx, merchantNo, outTradeNo, tradeNo string, faults Faults) (r *refund, refused bool, err error) {
	var n int
	if err := tx.QueryRow(ctx, s.sql(`INSERT INTO lkl.refund_queries (merchant_no, out_trade_no, queries) VALUES ($1, $2, 1)
		ON CONFLICT (merchant_no, out_trade_no) DO UPDATE SET queries = lkl.refund_queries.queries + 1 RETURNING queries`),
		merchantNo, outTradeNo).Scan(&n); err != nil {
		return nil, false, err
	}
	if n <= faults.RefundQueryRefusals {
		return nil, true, nil
	}
	r, err = s.findRefund(ctx, tx, merchantNo, outTradeNo, tradeNo)
	return r, false, err
}

// queryState is the refund's state as the next query sees it: DEAL while DealQueries last, then
// the real one.
func (r *refund) queryState() string {
	if r.DealQueries > 0 {
		r.DealQueries--
		return lakala.TradeStateDeal
	}
	return r.State
}

// findRefund reads and locks a merchant's refund by out_trade_no, or else by its trade_no (a
// succeeded one); nil when there is none.
func (s *Sandbox) findRefund(ctx context.Context, tx pgx.Tx, merchantNo, outTradeNo, tradeNo string) (*refund, error) {
	var r *refund
	var err error
	if outTradeNo != "" {
		r, err = readJSON[refund](ctx, tx, s.sql(`SELECT state FROM lkl.refunds WHERE merchant_no = $1 AND out_trade_no = $2 FOR UPDATE`), merchantNo, outTradeNo)
	} else {
		r, err = readJSON[refund](ctx, tx, s.sql(`SELECT state FROM lkl.refunds WHERE merchant_no = $1 AND trade_no = $2 AND state->>'state' = 'SUCCESS' FOR UPDATE`),
			merchantNo, tradeNo)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return r, err
}
