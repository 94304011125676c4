-- Payment attempts, review cases, per-subject result sequence numbers, the evidence logs (gateway
-- calls and notifications), task lease tokens and reconciliation bookkeeping.

-- Each cashier order created at Lakala for a payment order is an attempt with its own
-- out_order_no. Attempt 1's number is the order id without dashes (what every order used before
-- attempts existed); later ones are derived from the id and the attempt number (pay.AttemptOutOrderNo).
CREATE TABLE payment_attempts (
    payment_order_id uuid NOT NULL REFERENCES payment_orders (id),
    attempt_no       int NOT NULL CHECK (attempt_no >= 1),
    out_order_no     text NOT NULL UNIQUE CHECK (length(out_order_no) BETWEEN 1 AND 32),
    -- creating: recorded before the create call; its outcome is unknown until a state below.
    -- open: Lakala created it and gave us its counter_url. paid: Lakala reports it paid.
    -- closed: Lakala reports it final and unpaid (closed, expired, failed, cancelled) after our close.
    -- absent: Lakala never created it (a definite rejection, or not found after the visibility lag).
    state            text NOT NULL CHECK (state IN ('creating', 'open', 'paid', 'closed', 'absent')),
    -- order_efficient_time sent to Lakala; fixed for the attempt's whole life.
    expires_at       timestamptz NOT NULL,
    pay_order_no     text,
    counter_url      text,
    submissions      int NOT NULL DEFAULT 0, -- create calls sent for this out_order_no
    submitted_at     timestamptz,            -- when the last of them was sent
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_order_id, attempt_no)
);

-- Every order that reached Lakala before attempts existed has attempt 1 under its old number.
INSERT INTO payment_attempts (payment_order_id, attempt_no, out_order_no, state, expires_at, pay_order_no,
        counter_url, submissions, created_at, updated_at)
SELECT id, 1, replace(id::text, '-', ''),
       CASE status WHEN 'succeeded' THEN 'paid' WHEN 'failed' THEN 'closed' ELSE 'open' END,
       coalesce(expires_at, updated_at), gateway_order_no, payment_url, 1, updated_at, updated_at
FROM payment_orders WHERE status <> 'pending';

-- Money that moved against a final state, or an outcome nobody could establish: a person settles it.
CREATE TABLE review_cases (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    app_id           text NOT NULL,
    payment_order_id uuid NOT NULL REFERENCES payment_orders (id),
    refund_order_id  uuid REFERENCES refund_orders (id),
    -- what makes two cases of one kind on one subject different (e.g. the trade_no of a payment)
    dedupe_key       text NOT NULL DEFAULT '',
    summary          text NOT NULL,
    evidence         jsonb NOT NULL DEFAULT '{}',
    opened_at        timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    resolution       text,
    resolved_by      text,
    resolution_note  text
);
CREATE UNIQUE INDEX review_cases_open_key ON review_cases
    (kind, payment_order_id, coalesce(refund_order_id, '00000000-0000-0000-0000-000000000000'), dedupe_key)
    WHERE resolved_at IS NULL;
CREATE INDEX review_cases_open_idx ON review_cases (opened_at) WHERE resolved_at IS NULL;
CREATE INDEX review_cases_order_idx ON review_cases (payment_order_id);

-- The open review case's reason, shown on the object as extra_data.review_reason (null: none).
ALTER TABLE payment_orders
    ADD COLUMN review_reason text,
    -- the number of the last result message written for this order (its seq)
    ADD COLUMN result_seq int NOT NULL DEFAULT 0,
    -- set when the order must fail once its cashier orders are confirmed closed (wind-down)
    ADD COLUMN closing_reason text,
    -- reconciliation: consecutive failed checks and the last error
    ADD COLUMN check_failures int NOT NULL DEFAULT 0,
    ADD COLUMN last_check_error text;
ALTER TABLE refund_orders
    ADD COLUMN review_reason text,
    ADD COLUMN result_seq int NOT NULL DEFAULT 0,
    -- refund calls sent under out_trade_no; only the answer to the first can fail the refund
    ADD COLUMN submissions int NOT NULL DEFAULT 0;

-- Final orders are watched for a while for payments that land on their closed cashier orders.
CREATE INDEX payment_orders_final_idx ON payment_orders (updated_at) WHERE status IN ('succeeded', 'failed');

-- Result messages carry the subject (order or refund) and its per-subject sequence number; no
-- message of a subject is published while an older one of the same subject is unpublished.
ALTER TABLE outbox
    ADD COLUMN subject_id uuid,
    ADD COLUMN app_id text,
    ADD COLUMN seq int;
UPDATE outbox SET subject_id = coalesce(fields ->> 'refund_order_id', fields ->> 'payment_order_id')::uuid,
                  app_id = fields ->> 'app_id';
UPDATE outbox o SET seq = n.seq, fields = o.fields || jsonb_build_object('seq', n.seq::text)
FROM (SELECT id, row_number() OVER (PARTITION BY subject_id ORDER BY id) AS seq FROM outbox) n
WHERE n.id = o.id;
UPDATE payment_orders p SET result_seq = m.seq
FROM (SELECT subject_id, max(seq) AS seq FROM outbox GROUP BY subject_id) m WHERE m.subject_id = p.id;
UPDATE refund_orders r SET result_seq = m.seq
FROM (SELECT subject_id, max(seq) AS seq FROM outbox GROUP BY subject_id) m WHERE m.subject_id = r.id;
CREATE INDEX outbox_subject_unpublished_idx ON outbox (subject_id, seq) WHERE published_at IS NULL;

-- A claim's token: finishing or retrying a task checks that the caller still holds the lease.
ALTER TABLE tasks ADD COLUMN lease_token uuid;

-- Evidence: every call made to Lakala (no request bodies, no payer data), kept for a bounded time.
CREATE TABLE gateway_calls (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation   text NOT NULL, -- create, query, close, refund, tradequery
    out_no      text NOT NULL, -- out_order_no or out_trade_no
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'rejected', 'unknown', 'invalid')),
    code        text,
    message     text,
    http_status int,
    trace_id    text,
    duration_ms int NOT NULL,
    called_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateway_calls_out_no_idx ON gateway_calls (out_no, id);
CREATE INDEX gateway_calls_time_idx ON gateway_calls (called_at);

-- Evidence: every notification received, verified or not, and what became of it.
CREATE TABLE notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at      timestamptz NOT NULL DEFAULT now(),
    verified         boolean NOT NULL,
    -- applied, no_change, unknown_order, review, refused_signature, refused_replay, not_understood
    result           text NOT NULL,
    out_order_no     text,
    payment_order_id uuid,
    trade_no         text,
    trade_type       text,
    trade_status     text,
    order_status     text,
    amount           bigint,
    body_sha256      text NOT NULL
);
CREATE INDEX notifications_order_idx ON notifications (payment_order_id, id);
CREATE INDEX notifications_time_idx ON notifications (received_at);
