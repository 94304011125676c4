-- Loomi Pay schema. Money is bigint fen; statuses are constrained to the contract's words.

CREATE TABLE apps (
    app_id     text PRIMARY KEY CHECK (app_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- An API key is "lp_<id>_<secret>"; only the SHA-256 of the whole key is stored.
CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    app_id     text NOT NULL REFERENCES apps (app_id),
    key_hash   bytea NOT NULL,
    label      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_app_idx ON api_keys (app_id);

CREATE TABLE payment_orders (
    id                     uuid PRIMARY KEY,
    app_id                 text NOT NULL,
    merchant_order_id      text NOT NULL,
    status                 text NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed')),
    order_type             text NOT NULL CHECK (order_type IN ('payment', 'recharge')),
    amount                 bigint NOT NULL CHECK (amount > 0 AND amount <= 1000000000000),
    currency               text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    payment_gateway        text NOT NULL DEFAULT 'lakala',
    gateway_transaction_id text,
    gateway_order_no       text,
    subject                text NOT NULL,
    extra_data             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(extra_data) = 'object'),
    payment_url            text,
    gateway_callback       jsonb,
    refunded_amount        bigint NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
    failure_reason         text,
    expires_at             timestamptz,
    -- last time the reconciler asked Lakala about this order without learning a result
    checked_at             timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_orders_merchant_key UNIQUE (app_id, merchant_order_id)
);
-- The reconciler scans only live orders.
CREATE INDEX payment_orders_live_idx ON payment_orders (updated_at) WHERE status IN ('pending', 'processing');

CREATE TABLE refund_orders (
    id                 uuid PRIMARY KEY,
    app_id             text NOT NULL,
    payment_order_id   uuid NOT NULL REFERENCES payment_orders (id),
    merchant_refund_id text,
    status             text NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed')),
    amount             bigint NOT NULL CHECK (amount > 0 AND amount <= 1000000000000),
    currency           text NOT NULL,
    reason             text,
    gateway_refund_id  text,
    out_trade_no       text NOT NULL UNIQUE,
    extra_data         jsonb NOT NULL DEFAULT '{}',
    failure_reason     text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refund_orders_merchant_key UNIQUE (app_id, merchant_refund_id)
);
CREATE INDEX refund_orders_payment_idx ON refund_orders (payment_order_id);

-- Work for the processor. Postgres holds the task's state; the Redis stream only wakes workers,
-- so a task whose stream entry was lost (Redis down at create time) is republished by a sweep.
CREATE TABLE tasks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('payment', 'refund')),
    subject_id      uuid NOT NULL,
    state           text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done', 'dead', 'review')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_until    timestamptz,
    published_at    timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_subject_key UNIQUE (kind, subject_id)
);
CREATE INDEX tasks_queued_idx ON tasks (next_attempt_at) WHERE state = 'queued';

-- Result messages, written in the same transaction as the status change they describe, and
-- relayed to the Redis result streams. Published rows are pruned after a retention period.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    stream       text NOT NULL CHECK (stream IN ('payment_results', 'refund_results')),
    fields       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
