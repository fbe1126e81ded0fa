-- The pollers' view of each platform account: who polls it, when it last succeeded, when it is
-- polled next and the last error (a message that never holds a token). Written by the worker that
-- holds the account's lease; read by the API. Leases themselves live in Redis (they expire).

CREATE TABLE poll_state (
    account_id            text PRIMARY KEY REFERENCES platform_accounts (id) ON DELETE CASCADE,
    worker_id             text,
    last_poll_at          timestamptz,
    last_success_at       timestamptz,
    next_poll_at          timestamptz,
    last_error            text,
    last_error_at         timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    observations          bigint NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
