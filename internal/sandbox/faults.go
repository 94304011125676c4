package sandbox

import (
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

// Faults make the sandbox misbehave the ways the real Lakala can, so that tests reach
// every branch of the service. The zero value is a well-behaved Lakala. Faults are read
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

	// Seed makes ErrorRate's dice deterministic; 0 picks a random seed.
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
	}{faultsAlias(f), f.Latency.String(), f.NotifyDelay.String()})
}

// UnmarshalJSON accepts durations as strings ("2s") or as numbers of nanoseconds.
func (f *Faults) UnmarshalJSON(data []byte) error {
	var wire struct {
		*faultsAlias
		Latency     json.RawMessage `json:"latency"`
		NotifyDelay json.RawMessage `json:"notify_delay"`
	}
	wire.faultsAlias = (*faultsAlias)(f)
	if err := json.Unmarshal(data, &wire); err != nil {
		return err
	}
	var err error
	if f.Latency, err = parseJSONDuration(wire.Latency); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	if f.NotifyDelay, err = parseJSONDuration(wire.NotifyDelay); err != nil {
		return fmt.Errorf("notify_delay: %w", err)
	}
	return nil
}

func parseJSONDuration(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
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
