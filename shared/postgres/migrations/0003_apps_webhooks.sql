-- Apps as things an operator creates and disables, and signed HTTP webhooks to main
-- apps, fanned out from the result outbox.

-- A disabled app's API keys stop working and its Redis user is switched off.
ALTER TABLE apps ADD COLUMN disabled_at timestamptz;

-- Webhook fan-out is marked on the outbox row itself (not a cursor over ids): outbox ids are
-- taken at insert time but committed in any order, so a cursor could skip a row committed late.
-- Rows already there when this migration runs are not fanned out (no endpoint existed for them).
ALTER TABLE outbox ADD COLUMN webhooks_at timestamptz;
UPDATE outbox SET webhooks_at = created_at;
CREATE INDEX outbox_webhooks_pending_idx ON outbox (id) WHERE webhooks_at IS NULL;
-- fan-out never passes an earlier event of the same order (outbox.subject_id is from 0002)
CREATE INDEX outbox_webhooks_subject_idx ON outbox (subject_id, id) WHERE webhooks_at IS NULL;

CREATE TABLE webhook_endpoints (
    id                   text PRIMARY KEY,
    app_id               text NOT NULL REFERENCES apps (app_id),
    url                  text NOT NULL,
    events               text[] NOT NULL,
    -- Signing secrets are needed in clear to sign, so they cannot be hashed; they are stored
    -- encrypted (AES-256-GCM under WEBHOOK_SECRET_KEY), see DECISIONS.
    secret_enc           bytea NOT NULL,
    -- the secret before the last rotation, still signed with until previous_until
    previous_secret_enc  bytea,
    previous_until       timestamptz,
    -- first failure since the last success; an endpoint failing for the retry horizon is disabled
    failing_since        timestamptz,
    disabled_at          timestamptz,
    disabled_reason      text,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_app_idx ON webhook_endpoints (app_id) WHERE disabled_at IS NULL;

-- One delivery per (endpoint, event). The payload is copied, so pruning the outbox never loses
-- a delivery still being retried.
CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id     text NOT NULL REFERENCES webhook_endpoints (id),
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    -- the payment order or refund the event is about, and its per-subject sequence number:
    -- deliveries of one subject to one endpoint go out in seq order
    subject_id      text NOT NULL,
    seq             bigint NOT NULL,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    CONSTRAINT webhook_deliveries_event_key UNIQUE (endpoint_id, event_id)
);
-- due work of one endpoint, in order (the claim reads it front to back and stops at its limit)
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at, id) WHERE state = 'pending';
-- "is an earlier event of this order still pending at this endpoint?"
CREATE INDEX webhook_deliveries_subject_idx ON webhook_deliveries (endpoint_id, subject_id, seq, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

-- Every attempt, kept for the operator (webhooks deliveries).
CREATE TABLE webhook_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL,
    status_code  int,
    latency_ms   int NOT NULL,
    error        text
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id);
