package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Values of Faults.RefundUnknown.
const (
	RefundUnknownOff     = ""
	RefundUnknownSuccess = "success"
	RefundUnknownFail    = "fail"
)

// Values of Faults.DuplicateCreate ("" is DuplicateCreateReturn).
const (
	DuplicateCreateReturn = "return"
	DuplicateCreateRefuse = "refuse"
)

// Values of Faults.DuplicateRefund ("" is DuplicateRefundFirstAnswer).
const (
	DuplicateRefundFirstAnswer = "first_answer"
	DuplicateRefundRefuse      = "refuse"
	DuplicateRefundExceeds     = "exceeds"
)

// Values of Faults.LostAnswerMode ("" is LostAnswerDrop).
const (
	LostAnswerDrop    = "drop"
	LostAnswer502     = "502"
	LostAnswerTimeout = "timeout"
)

// Pessimistic is the reading of every unconfirmed Lakala behaviour that is worst for
// the service (docs LAKALA.md, "Behaviours nobody here can confirm"); the test suite runs
// against it by default. Query lag and lost answers stay off: tests draw those per run.
func Pessimistic() Faults {
	return Faults{
		DuplicateCreate:      DuplicateCreateRefuse,
		DuplicateRefund:      DuplicateRefundRefuse,
		FailedTradePayable:   true,
		ResignNotifyRetries:  false,
		PayAfterClose:        false,
		AutoRefundAfterClose: true,
	}
}

// Faults make the sandbox misbehave the ways the real Lakala can, so that tests reach
// every branch of the service. The zero value is a well-behaved Lakala that takes the
// optimistic reading of every unconfirmed behaviour; Pessimistic gives the other one. Faults are read
// when a request arrives (or when an order is paid, for the notification knobs), so
// changing them affects only what happens afterwards.
type Faults struct {
	// Latency is added to every API call.
	Latency time.Duration `json:"latency"`
	// ErrorRate (0..1) is the share of API calls answered with HTTP 500 before anything
	// is applied.
	ErrorRate float64 `json:"error_rate"`

	// DuplicateNotify sends each notification twice.
	DuplicateNotify bool `json:"duplicate_notify"`
	// ForgeNotify sends notifications whose signature does not match the body.
	ForgeNotify bool `json:"forge_notify"`
	// DropNotify never sends notifications.
	DropNotify bool `json:"drop_notify"`
	// NotifyDelay holds each notification back before its first attempt (a late notification).
	NotifyDelay time.Duration `json:"notify_delay"`
	// LegacyNotifyForm sends the older camelCase notification body (payOrderNo,
	// merchantOrderNo, payStatus…) that Lakala's published sample uses.
	LegacyNotifyForm bool `json:"legacy_notify_form"`
	// PayAfterClose lets a payer pay an order that is closed or expired, as can happen
	// at the real Lakala when the close races the payment.
	PayAfterClose bool `json:"pay_after_close"`

	// RefundFail answers refunds with a definite failure code and applies nothing.
	RefundFail bool `json:"refund_fail"`
	// RefundUnknown ("success" or "fail") answers refunds with the processing code
	// BBS11105; the refund's real outcome is the named one, which tradequery reveals
	// after RefundUnknownQueries answers of DEAL.
	RefundUnknown string `json:"refund_unknown"`
	// RefundUnknownQueries is how many tradequery calls answer DEAL before the final state.
	RefundUnknownQueries int `json:"refund_unknown_queries"`
	// RefundTimeoutAfterApply applies the refund, then holds the request until the
	// caller gives up (or Config.RefundHold passes) and drops the connection unanswered.
	RefundTimeoutAfterApply bool `json:"refund_timeout_after_apply"`

	// DuplicateCreate is what special_create does with an out_order_no it already knows:
	// "" or "return" answers with the existing cashier order (a different amount is
	// refused with CodeOrderExists); "refuse" refuses every repeat with CodeOrderRepeated.
	DuplicateCreate string `json:"duplicate_create"`
	// DuplicateRefund is what a refund with a known out_trade_no hears; it never moves
	// money twice. "" or "first_answer": the first request's answer; "refuse":
	// CodeRefundRepeated; "exceeds": CodeRefundExceeds when the amount is more than what
	// is left to refund now (the first one consumed it), else CodeRefundRepeated.
	DuplicateRefund string `json:"duplicate_refund"`
	// FailedTradePayable makes a failed payment one failed attempt: the PAY trade is F
	// but the order stays payable with order_status 1 (paying), its notification says
	// so, and the payer may pay again. Off, a failed payment fails the order (status 3).
	FailedTradePayable bool `json:"failed_trade_payable"`
	// QueryLag hides from the cashier order query and tradequery whatever was applied
	// less than QueryLag ago: a newer order is not found (close does not find it either),
	// a newer payment, failure, close or refund is not in the order's state or trades,
	// and a newer refund's trade_state is UNKNOWN.
	QueryLag time.Duration `json:"query_lag"`
	// LostAnswerRate (0..1) is the share of create, close and refund calls that are
	// carried out as usual and whose answer, whatever it was, is then lost the
	// LostAnswerMode way.
	LostAnswerRate float64 `json:"lost_answer_rate"`
	// LostAnswerMode is how an answer is lost: "" or "drop" closes the connection
	// unanswered; "502" answers an unsigned HTTP 502; "timeout" holds the request until
	// the caller gives up (or Config.RefundHold passes), then drops it.
	LostAnswerMode string `json:"lost_answer_mode"`
	// NetworkCodeRate (0..1) is the share of create, close and refund calls that are carried out
	// and then answered, signed, with the gateway's own network-failure code (000100/000101 for
	// the cashier, BBS00100/BBS00101 for labs, RFD11112/RFD11105 for 统一退货): the gateway could
	// not hear back from the back end that applied them.
	NetworkCodeRate float64 `json:"network_code_rate"`
	// ForeignNotifyRate (0..1) is the share of new cashier orders for which another merchant
	// (ForeignMerchantNo) creates a cashier order with the same out_order_no, amount and
	// notify_url and pays it: its paid notification, signed with the same platform key, reaches
	// our notify_url. It never touches our cashier order.
	ForeignNotifyRate float64 `json:"foreign_notify_rate"`
	// RefundQueryRefusals is how many queries of each out_trade_no (tradequery or 统一退货's
	// query) are refused, whether or not the refund exists, before they are answered: BBS11000
	// (labs), RFD20001 (统一退货).
	RefundQueryRefusals int `json:"refund_query_refusals"`
	// ResignNotifyRetries signs every notification attempt afresh (new timestamp and
	// nonce). Off, every retry and duplicate copy carries the first attempt's signature
	// and timestamp, for as long as the retries last.
	ResignNotifyRetries bool `json:"resign_notify_retries"`
	// AutoRefundAfterClose refunds in full, at once, a payment that PayAfterClose lets
	// land on a closed or expired order created with close_order_auto_refund "1": a
	// REFUND trade and order_status 6. The payment notification is sent as for any
	// payment; nobody is told of the refund.
	AutoRefundAfterClose bool `json:"auto_refund_after_close"`

	// Seed makes the dice of ErrorRate and LostAnswerRate deterministic; 0 picks a
	// random seed.
	Seed int64 `json:"seed"`
}

func (f Faults) validate() error {
	var errs []error
	if f.Latency < 0 {
		errs = append(errs, errors.New("latency must not be negative"))
	}
	if f.NotifyDelay < 0 {
		errs = append(errs, errors.New("notify_delay must not be negative"))
	}
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		errs = append(errs, fmt.Errorf("error_rate %v is outside 0..1", f.ErrorRate))
	}
	switch f.RefundUnknown {
	case RefundUnknownOff, RefundUnknownSuccess, RefundUnknownFail:
	default:
		errs = append(errs, fmt.Errorf("refund_unknown %q is not one of \"\", %q, %q", f.RefundUnknown, RefundUnknownSuccess, RefundUnknownFail))
	}
	if f.RefundFail && f.RefundUnknown != RefundUnknownOff {
		errs = append(errs, errors.New("refund_fail and refund_unknown contradict each other: set one"))
	}
	if f.RefundUnknownQueries < 0 {
		errs = append(errs, errors.New("refund_unknown_queries must not be negative"))
	}
	switch f.DuplicateCreate {
	case "", DuplicateCreateReturn, DuplicateCreateRefuse:
	default:
		errs = append(errs, fmt.Errorf("duplicate_create %q is not one of \"\", %q, %q", f.DuplicateCreate, DuplicateCreateReturn, DuplicateCreateRefuse))
	}
	switch f.DuplicateRefund {
	case "", DuplicateRefundFirstAnswer, DuplicateRefundRefuse, DuplicateRefundExceeds:
	default:
		errs = append(errs, fmt.Errorf("duplicate_refund %q is not one of \"\", %q, %q, %q", f.DuplicateRefund,
			DuplicateRefundFirstAnswer, DuplicateRefundRefuse, DuplicateRefundExceeds))
	}
	if f.QueryLag < 0 {
		errs = append(errs, errors.New("query_lag must not be negative"))
	}
	if f.NetworkCodeRate < 0 || f.NetworkCodeRate > 1 {
		errs = append(errs, fmt.Errorf("network_code_rate %v is outside 0..1", f.NetworkCodeRate))
	}
	if f.ForeignNotifyRate < 0 || f.ForeignNotifyRate > 1 {
		errs = append(errs, fmt.Errorf("foreign_notify_rate %v is outside 0..1", f.ForeignNotifyRate))
	}
	if f.RefundQueryRefusals < 0 {
		errs = append(errs, errors.New("refund_query_refusals must not be negative"))
	}
	if f.LostAnswerRate < 0 || f.LostAnswerRate > 1 {
		errs = append(errs, fmt.Errorf("lost_answer_rate %v is outside 0..1", f.LostAnswerRate))
	}
	switch f.LostAnswerMode {
	case "", LostAnswerDrop, LostAnswer502, LostAnswerTimeout:
	default:
		errs = append(errs, fmt.Errorf("lost_answer_mode %q is not one of \"\", %q, %q, %q", f.LostAnswerMode,
			LostAnswerDrop, LostAnswer502, LostAnswerTimeout))
	}
	return errors.Join(errs...)
}

// faultsAlias has Faults' fields without its methods, so the JSON methods below can
// reuse the default encoding for everything but the durations.
type faultsAlias Faults

// MarshalJSON writes durations as Go duration strings ("250ms"), which people editing
// the admin endpoint can read.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		faultsAlias
		Latency     string `json:"latency"`
		NotifyDelay string `json:"notify_delay"`
		QueryLag    string `json:"query_lag"`
	}{faultsAlias(f), f.Latency.String(), f.NotifyDelay.String(), f.QueryLag.String()})
}

// UnmarshalJSON accepts durations as strings ("2s") or as numbers of nanoseconds, and
// refuses a key that is no knob (a misspelt knob would otherwise be silently off). A key
// that is absent leaves its field as it was, so decoding onto the current faults merges.
func (f *Faults) UnmarshalJSON(data []byte) error {
	var wire struct {
		*faultsAlias
		Latency     json.RawMessage `json:"latency"`
		NotifyDelay json.RawMessage `json:"notify_delay"`
		QueryLag    json.RawMessage `json:"query_lag"`
	}
	wire.faultsAlias = (*faultsAlias)(f)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wire); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		raw  json.RawMessage
		dst  *time.Duration
	}{
		{"latency", wire.Latency, &f.Latency},
		{"notify_delay", wire.NotifyDelay, &f.NotifyDelay},
		{"query_lag", wire.QueryLag, &f.QueryLag},
	} {
		if len(d.raw) == 0 {
			continue
		}
		v, err := parseJSONDuration(d.raw)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		*d.dst = v
	}
	return nil
}

func parseJSONDuration(raw json.RawMessage) (time.Duration, error) {
	if string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is neither a duration string nor nanoseconds", raw)
	}
	return time.Duration(n), nil
}
