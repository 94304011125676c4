package pay

import (
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// AttemptState is where a cashier order (one attempt of a payment order) stands at Lakala, as
// far as we know.
type AttemptState string

const (
	// AttemptCreating is recorded before the create call; until another state is recorded its
	// outcome is unknown, so it may exist at Lakala.
	AttemptCreating AttemptState = "creating"
	AttemptOpen     AttemptState = "open"   // created, and we hold its counter_url: payable
	AttemptPaid     AttemptState = "paid"   // Lakala reports it paid
	AttemptClosed   AttemptState = "closed" // Lakala reports it final and unpaid after our close
	AttemptAbsent   AttemptState = "absent" // Lakala never created it
	// AttemptLapsed: whether Lakala created it was never confirmed either way, and it is past its
	// expiry. Its counter_url never reached us, so no payer has it, and Lakala takes no payment
	// after order_efficient_time.
	AttemptLapsed AttemptState = "lapsed"
)

// The life of an attempt, defined once here; every caller and every query uses these methods (the
// SQL mirror of Watched is postgres.watchedAttemptSQL, held equal to it by a test).
//
//	creating ──create answered──▶ open ──paid──▶ paid        (paid is final: it is recorded
//	    │    ╲                      │                            together with its consequence)
//	    │     ╲──expired, unknown──▶ lapsed    closed ◀── final and unpaid (after our close)
//	    └──refused / never sent──▶ absent
//
// Settled reports whether nobody can pay this cashier order any more (or it is already paid):
// an order may fail, or move on to a new attempt, only when all its attempts are settled.
func (s AttemptState) Settled() bool {
	return s == AttemptPaid || s == AttemptClosed || s == AttemptAbsent || s == AttemptLapsed
}

// MayBePaid reports whether a payer may be able to pay this cashier order now, as far as we know:
// one being created (its create may have landed) or open. Its task closes it before the order
// fails.
func (s AttemptState) MayBePaid() bool { return !s.Settled() }

// Known reports whether Lakala created this cashier order and told us so: the reconciler asks
// about these (one being created is its task's to settle).
func (s AttemptState) Known() bool { return s == AttemptOpen }

// Watched reports whether the reconciler keeps asking Lakala about this attempt after its order
// became final (for LatePaymentWatch): a closed cashier order may still be paid (Lakala then
// refunds it by itself and tells nobody), and a paid one that is not the payment the order
// succeeded with is money to return (its review case must exist). The payment an order succeeded
// with can change nothing more, so it is not asked about again.
func (a Attempt) Watched(o *Order) bool {
	switch a.State {
	case AttemptClosed:
		return true
	case AttemptPaid:
		return o.Status == StatusFailed || o.PaidAttemptNo != a.No
	}
	return false
}

// CheckFail decides whether a live order may fail now, given all its attempts (read under the
// order's lock): only when every cashier order is settled, and never while one is paid — except
// by a payment of the wrong amount, whose review case was opened with the decision to fail.
func CheckFail(o *Order, attempts []Attempt, reason string) error {
	for _, a := range attempts {
		switch {
		case !a.State.Settled():
			return fmt.Errorf("cashier order %s is %s: it may still be paid", a.OutOrderNo, a.State)
		case a.State == AttemptPaid && reason != ReasonAmountMismatch:
			return fmt.Errorf("cashier order %s is paid: the order cannot fail (%s)", a.OutOrderNo, reason)
		}
	}
	return nil
}

// Attempt is one cashier order created (or being created) at Lakala for a payment order.
type Attempt struct {
	PaymentOrderID string
	No             int
	OutOrderNo     string
	State          AttemptState
	ExpiresAt      time.Time // order_efficient_time; fixed for the attempt
	PayOrderNo     string
	CounterURL     string
	Submissions    int       // create calls sent
	SubmittedAt    time.Time // when the last create call was sent
	LastError      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// attemptEncoding spells an order id in 26 characters, leaving room for an attempt number
// within Lakala's 32-character out_order_no.
var attemptEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// AttemptOutOrderNo is the out_order_no of an order's n-th attempt. The first is the order id
// without dashes, the number every order had before attempts existed, so orders created then
// still map back; later ones are the id in base 32 followed by "n" and the attempt number.
// Either way notifications and queries are mapped back through the attempts table, never by
// parsing the number.
func AttemptOutOrderNo(orderID string, n int) string {
	if n <= 1 {
		return OutOrderNo(orderID)
	}
	id, err := uuid.Parse(orderID)
	if err != nil {
		return strings.ReplaceAll(orderID, "-", "")[:20] + "n" + strconv.Itoa(n)
	}
	return attemptEncoding.EncodeToString(id[:]) + "n" + strconv.Itoa(n)
}
