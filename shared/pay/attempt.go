package pay

import (
	"encoding/base32"
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
)

// Settled reports whether nobody can pay this cashier order any more (or it is already paid):
// an order may fail, or move on to a new attempt, only when all its attempts are settled.
func (s AttemptState) Settled() bool {
	return s == AttemptPaid || s == AttemptClosed || s == AttemptAbsent
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
