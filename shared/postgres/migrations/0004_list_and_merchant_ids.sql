-- Per-order expiry, list and search with keyset (cursor) pagination, refunds by
-- merchant ids.

-- Seconds a cashier order may be paid; NULL means the processor's ORDER_TTL.
ALTER TABLE payment_orders ADD COLUMN expires_in integer
    CHECK (expires_in IS NULL OR expires_in BETWEEN 60 AND 604800);

-- A refund carries its payment order's merchant_order_id (immutable, so copied rather than
-- joined on every read and on every refund_results message).
ALTER TABLE refund_orders ADD COLUMN merchant_order_id text;
UPDATE refund_orders r SET merchant_order_id = p.merchant_order_id
    FROM payment_orders p WHERE p.id = r.payment_order_id AND r.merchant_order_id IS NULL;

-- List pages are newest first, keyed by (created_at, id). Each index below serves one filter
-- shape as a single index range scan that stops after limit+1 rows, however many rows the app
-- has: the app's orders; the app's orders in one status. Other filters (order_type, created_*)
-- are applied on the same range.
CREATE INDEX payment_orders_app_created_idx ON payment_orders (app_id, created_at DESC, id DESC);
CREATE INDEX payment_orders_app_status_created_idx ON payment_orders (app_id, status, created_at DESC, id DESC);
CREATE INDEX refund_orders_app_created_idx ON refund_orders (app_id, created_at DESC, id DESC);
CREATE INDEX refund_orders_payment_created_idx ON refund_orders (payment_order_id, created_at DESC, id DESC);
-- refund_orders_payment_idx (payment_order_id) is covered by the index above.
DROP INDEX refund_orders_payment_idx;
