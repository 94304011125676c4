package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/loomipay/loomipay/shared/pay"
)

// Refunds and closes by operators are the API's own operations (service.CreateRefund,
// Payments.CloseMerchantOrder), called for the order's app: the same checks, the same
// transitions, the same result messages to the main app. The operations layer adds the role
// check, the idempotency token and the audit row with the operator's name.

// NewToken makes an idempotency token for an operator action (a form's, or a command's).
func NewToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,40}$`)

var yuanPattern = regexp.MustCompile(`^\s*¥?\s*(\d{1,10})(?:\.(\d{1,2}))?\s*$`)

// ParseYuan reads an amount a person typed in yuan ("12", "12.3", "¥12.34") as fen.
func ParseYuan(s string) (int64, error) {
	m := yuanPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, pay.Invalid("amount", "the amount must be in yuan, like 12.34, not %q", s)
	}
	whole, _ := strconv.ParseInt(m[1], 10, 64)
	frac := (m[2] + "00")[:2]
	cents, _ := strconv.ParseInt(frac, 10, 64)
	return whole*100 + cents, nil
}

func checkToken(token string) error {
	if !tokenPattern.MatchString(token) {
		return pay.Invalid("token", "the form token is missing or malformed (8-40 characters of A-Z, a-z, 0-9, '_', '-'): reload the page")
	}
	return nil
}

// OperatorRefundPrefix starts the merchant_refund_id of a refund an operator made: "ops-" and
// the request's token. The main app sees it on the refund's result messages.
const OperatorRefundPrefix = "ops-"

// RefundRequest is an operator's refund of (part of) a paid order.
type RefundRequest struct {
	Order  string // the order: any id FindOrder resolves
	Amount int64  // fen; ignored with All
	All    bool   // refund everything still refundable
	// Reason is required: it is the refund's reason, sent to Lakala, and the audit row's note.
	Reason string
	// Token makes the request idempotent: the refund's merchant_refund_id is "ops-"+Token, so the
	// same token (a form submitted twice, a command run again) makes one refund.
	Token string
}

// RefundDone is what an operator's refund did.
type RefundDone struct {
	Refund RefundRow `json:"refund"`
	// Created is false when the token's refund existed already (a repeated request).
	Created bool `json:"created"`
}

// RefundOrder takes a refund of a paid order, as the API does for the main app, and audits it
// (order.refund, subject the order id). The processor sends it to Lakala; the main app receives
// its refund_results messages. Needs the operator role.
func (o *Ops) RefundOrder(ctx context.Context, a Actor, req RefundRequest) (RefundDone, error) {
	if err := o.authorize(ctx, a, RoleOperator, "order.refund", req.Order); err != nil {
		return RefundDone{}, err
	}
	if err := checkToken(req.Token); err != nil {
		return RefundDone{}, err
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" {
		return RefundDone{}, pay.Invalid("reason", "a reason is required: it goes to Lakala with the refund and into the audit log")
	}
	if n := utf8.RuneCountInString(req.Reason); n > pay.MaxReasonLen {
		return RefundDone{}, pay.Invalid("reason", "the reason must be at most %d characters (got %d)", pay.MaxReasonLen, n)
	}
	ord, err := o.FindOrder(ctx, a, req.Order)
	if err != nil {
		return RefundDone{}, err
	}
	merchantRefundID := OperatorRefundPrefix + req.Token
	// A repeated token answers with the refund it made, whatever is refundable now.
	if r, err := o.store.RefundByMerchantID(ctx, ord.AppID, merchantRefundID); err == nil {
		if r.PaymentOrderID != ord.ID {
			return RefundDone{}, pay.Errorf(pay.KindConflict, pay.CodeRefundConflict, "this form token was used for another order's refund")
		}
		return RefundDone{Refund: refundRowOf(r)}, nil
	} else if !errors.Is(err, pay.ErrNotFound) {
		return RefundDone{}, err
	}
	refundable, err := o.refundable(ctx, ord)
	if err != nil {
		return RefundDone{}, err
	}
	amount := req.Amount
	if req.All {
		if amount = refundable; amount == 0 {
			return RefundDone{}, pay.Errorf(pay.KindConflict, pay.CodePaymentNotRefundable, "nothing of order %s is left to refund", ord.MerchantOrderID)
		}
	}
	if amount <= 0 {
		return RefundDone{}, pay.Invalid("amount", "the amount must be more than ¥0.00")
	}
	body, err := json.Marshal(map[string]any{"app_id": ord.AppID, "payment_order_id": ord.ID, "amount": amount,
		"reason": req.Reason, "merchant_refund_id": merchantRefundID})
	if err != nil {
		return RefundDone{}, err
	}
	r, created, err := o.svc.CreateRefund(ctx, ord.AppID, body)
	if err != nil {
		return RefundDone{}, err
	}
	if created {
		// The refund is the service's own transaction; the audit row follows it.
		before := map[string]any{"status": ord.Status, "amount": ord.Amount, "refunded_amount": ord.RefundedAmount, "refundable": refundable}
		after := map[string]any{"refund_order_id": r.ID, "merchant_refund_id": r.MerchantRefundID, "amount": r.Amount, "status": r.Status}
		if err := o.audit(ctx, a, "order.refund", ord.ID, "ok", before, after, req.Reason); err != nil {
			o.log.ErrorContext(ctx, "refund made, its audit row not", "refund_id", r.ID, "operator", a.Name, "err", err)
		}
	}
	return RefundDone{Refund: refundRowOf(r), Created: created}, nil
}

// refundable is what may still be refunded of an order (pay.Refundable: paid amount minus its
// pending, processing and succeeded refunds).
func (o *Ops) refundable(ctx context.Context, ord OrderRow) (int64, error) {
	var outstanding int64
	if err := o.store.Pool().QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM refund_orders
		WHERE payment_order_id = $1 AND status IN ('pending', 'processing', 'succeeded')`, ord.ID).Scan(&outstanding); err != nil {
		return 0, fmt.Errorf("refundable: %w", err)
	}
	return pay.Refundable(&pay.Order{Status: ord.Status, Amount: ord.Amount}, outstanding), nil
}

// CloseDone is what an operator's close did.
type CloseDone struct {
	Order OrderRow `json:"order"`
	// Repeated: the token's close was done already; nothing was done again.
	Repeated bool `json:"repeated"`
}

// CloseOrder closes a live order at Lakala and fails it (closed_by_merchant), as the API's close
// does for the main app (Payments.CloseMerchantOrder): a paid order is refused (refund it), a
// failed one is answered as it is, and an order Lakala did not settle in time stays live while
// the processor finishes the close. Audited (order.close); a repeated token does nothing again.
// Needs the operator role and a Lakala client (WithPayments).
func (o *Ops) CloseOrder(ctx context.Context, a Actor, ref, note, token string) (CloseDone, error) {
	if err := o.authorize(ctx, a, RoleOperator, "order.close", ref); err != nil {
		return CloseDone{}, err
	}
	if err := checkToken(token); err != nil {
		return CloseDone{}, err
	}
	if err := requireNote(note); err != nil {
		return CloseDone{}, err
	}
	ord, err := o.FindOrder(ctx, a, ref)
	if err != nil {
		return CloseDone{}, err
	}
	var done bool
	if err := o.store.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_log
		WHERE subject = $1 AND action = 'order.close' AND outcome = 'ok' AND after ->> 'token' = $2)`, ord.ID, token).Scan(&done); err != nil {
		return CloseDone{}, fmt.Errorf("close: %w", err)
	}
	if done {
		return CloseDone{Order: ord, Repeated: true}, nil
	}
	if o.payments == nil {
		return CloseDone{}, pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable,
			"closing an order calls Lakala, and no Lakala key is configured here (LAKALA_PRIVATE_KEY)")
	}
	closed, err := o.payments.CloseMerchantOrder(ctx, ord.AppID, ord.AppID, ord.MerchantOrderID)
	if err != nil {
		if pe := pay.AsError(err); pe.Kind == pay.KindConflict {
			_ = o.audit(ctx, a, "order.close", ord.ID, "refused", map[string]any{"status": ord.Status}, nil, note+" ("+pe.Detail+")")
		}
		return CloseDone{}, err
	}
	after := orderRowOf(closed)
	if err := o.audit(ctx, a, "order.close", ord.ID, "ok", map[string]any{"status": ord.Status},
		map[string]any{"status": after.Status, "failure_reason": after.FailureReason, "closing_reason": after.ClosingReason, "token": token}, note); err != nil {
		o.log.ErrorContext(ctx, "order closed, its audit row not", "order_id", ord.ID, "operator", a.Name, "err", err)
	}
	return CloseDone{Order: after}, nil
}
