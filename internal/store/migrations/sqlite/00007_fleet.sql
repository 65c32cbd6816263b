-- +goose Up
-- The endpoint agents (internal/fleet). Enrollment tokens are one-time and
-- stored only as SHA-256. An agent row is read on every signed request, so
-- it holds only what authentication and the heartbeat need; the last full
-- facts and pending updates live in agent_facts, read by admins only.
CREATE TABLE enrollment_tokens (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    token_hash         BLOB NOT NULL UNIQUE,
    site_id            TEXT REFERENCES sites(id) ON DELETE SET NULL,
    groups_json        TEXT NOT NULL DEFAULT '[]',
    maintenance_window TEXT NOT NULL DEFAULT '',
    created_by         TEXT NOT NULL DEFAULT '',
    created_at         TIMESTAMP NOT NULL,
    expires_at         TIMESTAMP NOT NULL,
    used_at            TIMESTAMP,
    agent_id           TEXT NOT NULL DEFAULT '',
    revoked_at         TIMESTAMP
);
CREATE INDEX enrollment_tokens_created ON enrollment_tokens (created_at);

-- asset_id becomes NULL when an admin deletes the asset: the agent is then
-- refused until it enrolls again, and its job history stays.
CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    asset_id         TEXT REFERENCES assets(id) ON DELETE SET NULL,
    public_key       BLOB NOT NULL UNIQUE,
    hostname         TEXT NOT NULL,
    os_id            TEXT NOT NULL DEFAULT '',
    agent_version    TEXT NOT NULL DEFAULT '',
    protocol_version INTEGER NOT NULL,
    token_id         TEXT NOT NULL,
    enrolled_at      TIMESTAMP NOT NULL,
    last_checkin     TIMESTAMP,
    inventory_hash   TEXT NOT NULL DEFAULT '',
    inventory_at     TIMESTAMP,
    facts_hash       TEXT NOT NULL DEFAULT '',
    -- the asset's revision after this agent last wrote it: a different
    -- revision means someone else changed the asset (an admin, an import),
    -- and the agent is asked for its inventory again
    asset_revision   INTEGER NOT NULL DEFAULT 0,
    revoked_at       TIMESTAMP,
    revoke_reason    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX agents_asset ON agents (asset_id);
CREATE INDEX agents_enrolled ON agents (enrolled_at, id);

CREATE TABLE agent_facts (
    agent_id     TEXT PRIMARY KEY REFERENCES agents(id),
    facts_json   TEXT NOT NULL,
    pending_json TEXT NOT NULL DEFAULT '[]',
    reported_at  TIMESTAMP NOT NULL
);

CREATE TABLE agent_jobs (
    id           TEXT PRIMARY KEY,
    agent_id     TEXT NOT NULL REFERENCES agents(id),
    asset_id     TEXT NOT NULL DEFAULT '',
    change_id    TEXT NOT NULL DEFAULT '',
    kind         TEXT NOT NULL,
    emergency    BOOLEAN NOT NULL,
    allow_reboot BOOLEAN NOT NULL,
    spec_json    TEXT NOT NULL,
    not_before   TIMESTAMP NOT NULL,
    deadline     TIMESTAMP NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'running', 'succeeded', 'failed', 'rolled_back', 'refused', 'cancelled')),
    created_by   TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    started_at   TIMESTAMP,
    finished_at  TIMESTAMP,
    attempt      INTEGER NOT NULL DEFAULT 0,
    reason       TEXT NOT NULL DEFAULT ''
);
-- Every check-in asks whether the agent has due jobs: a partial index over
-- the few open jobs answers that without touching finished ones.
CREATE INDEX agent_jobs_due ON agent_jobs (agent_id, not_before) WHERE state IN ('queued', 'delivered');
CREATE INDEX agent_jobs_agent ON agent_jobs (agent_id, created_at);
CREATE INDEX agent_jobs_created ON agent_jobs (created_at, id);
CREATE INDEX agent_jobs_change ON agent_jobs (change_id);
CREATE INDEX agent_jobs_asset ON agent_jobs (asset_id);
CREATE INDEX agent_jobs_state ON agent_jobs (state);

-- One row per (job, attempt): the primary key is what makes a re-sent
-- result a no-op.
CREATE TABLE agent_job_results (
    job_id         TEXT NOT NULL REFERENCES agent_jobs(id),
    attempt        INTEGER NOT NULL,
    agent_id       TEXT NOT NULL,
    status         TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    steps_json     TEXT NOT NULL,
    installed_json TEXT NOT NULL DEFAULT '{}',
    received_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

-- +goose Down
DROP TABLE agent_job_results;
DROP TABLE agent_jobs;
DROP TABLE agent_facts;
DROP TABLE agents;
DROP TABLE enrollment_tokens;
