-- +goose Up
-- Rollouts (internal/deploy): the deployment of one change in waves, one
-- per policy ring, each wave holding one item per asset (an agent job or
-- a manual task). The lease columns let one replica at a time advance a
-- rollout while it calls the fleet and change services.
CREATE TABLE rollouts (
    id          TEXT PRIMARY KEY,
    change_id   TEXT NOT NULL UNIQUE REFERENCES changes(id),
    change_type TEXT NOT NULL,
    emergency   BOOLEAN NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'paused', 'halted', 'rolling_back', 'rolled_back',
                    'awaiting_completion', 'completed', 'aborted')),
    reason      TEXT NOT NULL DEFAULT '',
    policy_sha  TEXT NOT NULL,
    job_seconds INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    revision    INTEGER NOT NULL,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until TIMESTAMPTZ
);
CREATE INDEX rollouts_state ON rollouts (state, created_at);

CREATE TABLE rollout_waves (
    rollout_id    TEXT NOT NULL REFERENCES rollouts(id),
    idx           INTEGER NOT NULL,
    ring          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'running', 'soaking', 'passed', 'halted', 'rolled_back', 'skipped')),
    verdict       TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL DEFAULT '',
    decided_at    TIMESTAMPTZ,
    wait_until    TIMESTAMPTZ,
    planned_start TIMESTAMPTZ,
    planned_end   TIMESTAMPTZ,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    PRIMARY KEY (rollout_id, idx)
);

-- One row per asset and piece of work in a wave. No foreign key to assets
-- or jobs: the deployment record outlives a decommissioned asset.
CREATE TABLE rollout_items (
    id              TEXT PRIMARY KEY,
    rollout_id      TEXT NOT NULL REFERENCES rollouts(id),
    wave            INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    asset_id        TEXT NOT NULL,
    asset_name      TEXT NOT NULL,
    site_id         TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL CHECK (kind IN ('agent', 'manual')),
    agent_id        TEXT NOT NULL DEFAULT '',
    packages        TEXT NOT NULL,
    previous        TEXT NOT NULL,
    task            TEXT NOT NULL DEFAULT '',
    owner           TEXT NOT NULL DEFAULT '',
    due             TIMESTAMPTZ,
    planned_start   TIMESTAMPTZ,
    planned_end     TIMESTAMPTZ,
    slot_end        TIMESTAMPTZ,
    job_id          TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'queued', 'running', 'succeeded', 'failed', 'cancelled',
                        'open', 'done', 'skipped')),
    outcome         TEXT NOT NULL DEFAULT '',
    note            TEXT NOT NULL DEFAULT '',
    recorded_by     TEXT NOT NULL DEFAULT '',
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    rollback_job_id TEXT NOT NULL DEFAULT '',
    rollback_state  TEXT NOT NULL DEFAULT '' CHECK (rollback_state IN ('', 'queued', 'running', 'rolled_back', 'failed')),
    converged_at    TIMESTAMPTZ,
    FOREIGN KEY (rollout_id, wave) REFERENCES rollout_waves (rollout_id, idx)
);
CREATE UNIQUE INDEX rollout_items_order ON rollout_items (rollout_id, wave, seq);
-- A fleet job belongs to at most one item: the engine never records one
-- job twice.
CREATE UNIQUE INDEX rollout_items_job ON rollout_items (job_id) WHERE job_id <> '';
CREATE INDEX rollout_items_asset ON rollout_items (asset_id);

-- The per-asset deployment log: append-only.
CREATE TABLE rollout_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    change_id  TEXT NOT NULL,
    item_id    TEXT NOT NULL DEFAULT '',
    asset_id   TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    event      TEXT NOT NULL,
    job_id     TEXT NOT NULL DEFAULT '',
    packages   TEXT NOT NULL DEFAULT '[]',
    steps      TEXT NOT NULL DEFAULT '[]',
    deviation  TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX rollout_log_change ON rollout_log (change_id, asset_id, id);

-- +goose Down
DROP TABLE rollout_log;
DROP TABLE rollout_items;
DROP TABLE rollout_waves;
DROP TABLE rollouts;
