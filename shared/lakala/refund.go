package lakala

// RefundOutcome is what an answer says of one refund, whichever API it came from.
type RefundOutcome int

const (
	// RefundPending: Lakala has the refund and has not finished it (DEAL, INIT, CREATE,
	// PROCESSING, TIMEOUT): ask again later.
	RefundPending RefundOutcome = iota
	RefundSucceeded
	RefundFailed
	// RefundNotSeen: Lakala's query says it knows no such trade (labs UNKNOWN): the refund may
	// be resent under the same out_trade_no, which no reading of Lakala applies twice.
	RefundNotSeen
	// RefundNotARefund: the answer describes another kind of trade (the payment), so it says
	// nothing of the refund.
	RefundNotARefund
)

func (o RefundOutcome) String() string {
	switch o {
	case RefundSucceeded:
		return "succeeded"
	case RefundFailed:
		return "failed"
	case RefundNotSeen:
		return "not_seen"
	case RefundNotARefund:
		return "not_a_refund"
	}
	return "pending"
}

// RefundAnswer is a refund's state in an answer of Lakala's (the refund call's or a query's).
type RefundAnswer struct {
	Outcome RefundOutcome
	// State is the trade_state as Lakala sent it, and Desc what it said of it.
	State, Desc string
	// TradeNo is Lakala's refund serial (gateway_refund_id); LogNo its statement serial.
	TradeNo, LogNo, TradeTime string
}

// refundAnswer reads a labs trade query about a refund's out_trade_no. Only an answer that
// describes a refund (trade_main_type REFUND) can settle it: PART_REFUND and REFUND are states of
// a payment, and a SUCCESS of a PREORDER is the payment's success, not the refund's.
func (q TradeQueryResult) refundAnswer() RefundAnswer {
	a := RefundAnswer{State: q.TradeState, Desc: q.TradeStateDesc, TradeNo: q.TradeNo, LogNo: q.LogNo, TradeTime: q.TradeTime}
	if q.TradeMainType != "" && q.TradeMainType != TradeMainRefund {
		a.Outcome = RefundNotARefund
		return a
	}
	switch q.TradeState {
	case TradeStateSuccess:
		a.Outcome = RefundSucceeded
	case TradeStateFail, TradeStateClose:
		a.Outcome = RefundFailed
	case TradeStateUnknown:
		a.Outcome = RefundNotSeen
	case TradeStatePartRefund, TradeStateRefund:
		a.Outcome = RefundNotARefund
	default: // DEAL, INIT, CREATE, or a state nobody listed
		a.Outcome = RefundPending
	}
	return a
}

// answer reads a 统一退货 answer (the refund's or its query's): EXCEPTION is "异常（失败）".
func (r RfdRefundResult) answer() RefundAnswer {
	a := RefundAnswer{State: r.TradeState, Desc: r.ChannelRetDesc, TradeNo: r.TradeNo, LogNo: r.LogNo, TradeTime: r.TradeTime}
	switch r.TradeState {
	case TradeStateSuccess:
		a.Outcome = RefundSucceeded
	case TradeStateFail, TradeStateException:
		a.Outcome = RefundFailed
	default: // INIT, DEAL, PROCESSING, TIMEOUT, or a state nobody listed
		a.Outcome = RefundPending
	}
	return a
}
