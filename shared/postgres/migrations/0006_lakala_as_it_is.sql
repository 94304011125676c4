-- Payments told apart by cashier order, not by trade number (a report may carry none): the attempt
-- whose payment the order succeeded with. A paid report about any other attempt of a succeeded
-- order is a duplicate payment.
ALTER TABLE payment_orders ADD COLUMN paid_attempt_no int;
UPDATE payment_orders o SET paid_attempt_no = (
    SELECT min(a.attempt_no) FROM payment_attempts a WHERE a.payment_order_id = o.id AND a.state = 'paid')
WHERE o.status = 'succeeded';

-- An attempt whose creation was never confirmed either way and that is past its expiry: its
-- counter_url never reached us, so no payer has it (pay.AttemptLapsed).
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_state_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_state_check
    CHECK (state IN ('creating', 'open', 'paid', 'closed', 'absent', 'lapsed'));

-- A notification that does not bind to what we created (another merchant's, or one whose
-- pay_order_no is not our cashier order's) changes nothing by itself: it asks the reconciler for
-- our own query of the order, which its next pass makes.
ALTER TABLE payment_orders ADD COLUMN check_requested_at timestamptz;
CREATE INDEX payment_orders_check_requested_idx ON payment_orders (check_requested_at)
    WHERE check_requested_at IS NOT NULL;

-- What a notification named, so that one that did not bind can be told apart (another merchant,
-- another cashier order) on the order's timeline.
ALTER TABLE notifications
    ADD COLUMN merchant_no text,
    ADD COLUMN term_no text,
    ADD COLUMN pay_order_no text,
    ADD COLUMN binding text;

-- The refund API a refund was sent through (labs or rfd, 统一退货): it is queried through the
-- same one for its whole life, whatever LAKALA_REFUND_API says later. Every refund sent before
-- this migration went through labs. submitted_at is when its last call was sent, from which
-- Lakala's visibility lag is counted before a refund it does not show is sent again.
ALTER TABLE refund_orders ADD COLUMN refund_api text CHECK (refund_api IN ('labs', 'rfd')),
    ADD COLUMN submitted_at timestamptz;
UPDATE refund_orders SET refund_api = 'labs', submitted_at = updated_at WHERE submissions > 0;
