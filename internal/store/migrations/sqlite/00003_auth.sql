-- +goose Up
-- Failed sign-ins, counted per (normalised) username for lockout. They live
-- in the database, not in one process's memory, so the limit holds across
-- restarts and PostgreSQL replicas; names that match no account are counted
-- too, so the lockout message does not reveal which accounts exist. Rows
-- older than the lockout window are pruned as new failures arrive.
CREATE TABLE login_failures (
    username TEXT NOT NULL,
    at_us    INTEGER NOT NULL
);
CREATE INDEX login_failures_username ON login_failures (username, at_us);
CREATE INDEX login_failures_at ON login_failures (at_us);

-- Expired sessions are swept by absolute expiry and idle time.
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);

-- +goose Down
DROP INDEX sessions_last_seen;
DROP INDEX sessions_expires;
DROP TABLE login_failures;
