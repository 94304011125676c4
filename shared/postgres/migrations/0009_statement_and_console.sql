-- The daily statement and the console's overview: Lakala's serial numbers of every payment and
-- refund that moved money, when the money moved, and a per-minute record of the task lag.

-- Lakala's statement (对账单) is keyed by log_no (拉卡拉对账单流水号) and trade_no, and its day
-- by the trade time (Beijing). trade_no is gateway_transaction_id (payments) and
-- gateway_refund_id (refunds); these add the other two. gateway_trade_time is Lakala's trade time
-- when Lakala gave one, else the time the service recorded the success, so every succeeded
-- payment and refund belongs to one day of the statement.
ALTER TABLE payment_orders
    ADD COLUMN gateway_log_no text,
    ADD COLUMN gateway_trade_time timestamptz;
ALTER TABLE refund_orders
    ADD COLUMN gateway_log_no text,
    ADD COLUMN gateway_trade_time timestamptz;

-- Payments that succeeded before this migration: the notification or query summary the order
-- kept (extra_data.lakala_callback: logNo, tradeTime — RFC 3339 — and timestamp, when we
-- received it) gives both where it has them; the last resort is the order's updated_at.
UPDATE payment_orders SET
    gateway_log_no = nullif(gateway_callback ->> 'logNo', ''),
    gateway_trade_time = coalesce(
        CASE WHEN gateway_callback ->> 'tradeTime' ~ '^\d{4}-\d{2}-\d{2}T' THEN (gateway_callback ->> 'tradeTime')::timestamptz END,
        CASE WHEN gateway_callback ->> 'timestamp' ~ '^\d{4}-\d{2}-\d{2}T' THEN (gateway_callback ->> 'timestamp')::timestamptz END,
        updated_at)
WHERE status = 'succeeded';
-- Refunds kept no answer of Lakala's but its trade_no: a succeeded refund's updated_at is when it
-- succeeded (a final refund never changes again).
UPDATE refund_orders SET gateway_trade_time = updated_at WHERE status = 'succeeded';

-- A statement day is a range of these. Partial indexes: the columns are NULL when a row is
-- created, so the create paths write no entry; only a success does.
CREATE INDEX payment_orders_trade_time_idx ON payment_orders (gateway_trade_time) WHERE gateway_trade_time IS NOT NULL;
CREATE INDEX refund_orders_trade_time_idx ON refund_orders (gateway_trade_time) WHERE gateway_trade_time IS NOT NULL;

-- Refunds still at Lakala (the overview lists those processing too long); few at any time.
CREATE INDEX refund_orders_live_idx ON refund_orders (created_at) WHERE status IN ('pending', 'processing');

-- The task lag (age of the oldest due task), the largest seen in each minute, written by the
-- processor's maintenance pass; the overview charts it. Pruned with the evidence logs.
CREATE TABLE task_lag_minutes (
    minute      timestamptz PRIMARY KEY,
    lag_seconds double precision NOT NULL
);
