-- Operations: operators and their console sessions, the audit log of every operator action, a
-- cheap heartbeat of background work, and a terminal state for dead tasks a person discarded.

-- A person (or script) allowed to operate Loomi Pay. The token ("lpo_<id>_<secret>") is shown
-- once; only the SHA-256 of the whole token is stored, like API keys.
CREATE TABLE operators (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    token_hash  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    disabled_at timestamptz
);

-- A console login. The cookie carries the session secret; only its SHA-256 is stored. The CSRF
-- token is per session and goes in every form.
CREATE TABLE operator_sessions (
    token_hash  bytea PRIMARY KEY,
    operator_id text NOT NULL REFERENCES operators (id),
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX operator_sessions_expiry_idx ON operator_sessions (expires_at);

-- Every operator action, whoever made it and through whatever door (CLI or console), refused
-- ones included: who, when, what, on what, the state before and after, the note.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    role        text NOT NULL,
    via         text NOT NULL, -- cli, console
    action      text NOT NULL, -- e.g. review.resolve, dlq.redrive, key.revoke
    subject     text NOT NULL DEFAULT '',
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    before      jsonb,
    after       jsonb,
    note        text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_subject_idx ON audit_log (subject, id);

-- The last time a piece of background work ran, and what it did (one row per name, updated in
-- place): the processor's maintenance, the metrics window.
CREATE TABLE heartbeats (
    name   text PRIMARY KEY,
    at     timestamptz NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);

-- A dead task a person looked at and decided not to retry.
ALTER TABLE tasks DROP CONSTRAINT tasks_state_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_state_check CHECK (state IN ('queued', 'done', 'dead', 'review', 'discarded'));
CREATE INDEX tasks_dead_idx ON tasks (updated_at) WHERE state = 'dead';
