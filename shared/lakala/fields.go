package lakala

import (
	"fmt"
	"unicode/utf8"
)

// The longest values Lakala's documentation and SDK models give the fields we send
// (docs/DECISIONS.md, "Fields we send"). Lakala does not say whether String(n) counts
// characters, UTF-16 units or bytes; a value of at most n bytes of UTF-8 fits every reading, so
// that is what the client sends and checks.
const (
	MaxOutOrderNo    = 32   // special_create out_order_no String(32)
	MaxMerchantNo    = 32   // cashier and labs merchant_no String(32)
	MaxVposID        = 32   // special_create vpos_id String(32)
	MaxOrderInfo     = 64   // special_create order_info String(64), fitted
	MaxNotifyURL     = 128  // special_create notify_url String(128)
	MaxCallbackURL   = 128  // special_create callback_url String(128)
	MaxCounterParam  = 1024 // special_create counter_param String(1024)
	MaxAmountDigits  = 12   // total_amount long(12), refund_amount String(12)
	MaxOutTradeNo    = 32   // refund out_trade_no String(32)
	MaxTermNo        = 32   // labs term_no String(32)
	MaxRefundReason  = 32   // refund_reason String(32), fitted
	MaxRequestIP     = 64   // location_info.request_ip String(64)
	MaxOriginTradeNo = 32   // origin_trade_no, origin_out_trade_no String(32)
	MaxOriginLogNo   = 14   // origin_log_no String(14)
	MaxRfdMerchantNo = 15   // 统一退货 merchant_no String(15)
	MaxRfdTermNo     = 8    // 统一退货 term_no String(8)
)

// MaxAmount is the largest amount in fen a 12-digit amount field holds.
const MaxAmount = 999_999_999_999

// Fit returns the longest prefix of s that is at most n bytes of UTF-8 and does not split a
// character: what the client sends of a text field whose full form is kept here (the order's
// subject as order_info, a refund's reason as refund_reason).
func Fit(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := 0
	for i, r := range s {
		if i+utf8.RuneLen(r) > n {
			break
		}
		cut = i + utf8.RuneLen(r)
	}
	return s[:cut]
}

// fieldError refuses a request before it is sent: nothing reaches Lakala.
func fieldError(field string, max int, value string) error {
	return fmt.Errorf("%w: %s is %d bytes; Lakala takes at most %d", ErrInvalidRequest, field, len(value), max)
}

// checkFields returns the first field of pairs (name, value, limit) longer than its limit, or
// required and empty.
func checkFields(fields ...field) error {
	for _, f := range fields {
		switch {
		case f.required && f.value == "":
			return fmt.Errorf("%w: %s is required", ErrInvalidRequest, f.name)
		case len(f.value) > f.max:
			return fieldError(f.name, f.max, f.value)
		}
	}
	return nil
}

type field struct {
	name     string
	value    string
	max      int
	required bool
}

func required(name, value string, max int) field { return field{name, value, max, true} }
func optional(name, value string, max int) field { return field{name, value, max, false} }
