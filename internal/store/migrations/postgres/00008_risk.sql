-- +goose Up
-- Every applied version of the policy file (internal/policy); the highest
-- is in force. The source is kept whole so any past decision can be
-- re-read under the policy it was made with.
CREATE TABLE policy_versions (
    version    INTEGER PRIMARY KEY,
    source     TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    applied_by TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL,
    comment    TEXT NOT NULL DEFAULT ''
);

-- The priority and SLA clock of each finding (internal/risk). The
-- assessment column holds the whole explanation as JSON; score, tier and
-- due dates are copied out of it for the worklist's indexes. A clock that
-- has not started (no fix yet) has NULL clock_start, due_at and
-- due_soon_at. No foreign key to assets or findings: like findings, the
-- remediation history outlives a decommissioned asset.
CREATE TABLE finding_risk (
    finding_id       TEXT PRIMARY KEY,
    asset_id         TEXT NOT NULL,
    vuln_id          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('open', 'excepted', 'fixed', 'not_affected')),
    score            DOUBLE PRECISION NOT NULL,
    tier             TEXT NOT NULL,
    tier_rank        INTEGER NOT NULL,
    mode             TEXT NOT NULL,
    assessment       TEXT NOT NULL,
    policy_version   INTEGER NOT NULL,
    first_seen       TIMESTAMPTZ NOT NULL,
    fix_available_at TIMESTAMPTZ,
    clock_start      TIMESTAMPTZ,
    clock_basis      TEXT NOT NULL DEFAULT '',
    due_at           TIMESTAMPTZ,
    due_soon_at      TIMESTAMPTZ,
    due_reason       TEXT NOT NULL DEFAULT '',
    exception_id     TEXT NOT NULL DEFAULT '',
    kev              BOOLEAN NOT NULL DEFAULT FALSE,
    epss             DOUBLE PRECISION NOT NULL DEFAULT 0,
    resolved_at      TIMESTAMPTZ,
    -- time to remediate in seconds (microsecond precision), for MTTR
    ttr_seconds      DOUBLE PRECISION,
    met_sla          BOOLEAN,
    computed_at      TIMESTAMPTZ NOT NULL
);
-- The worklist: first pages by score or due date within a status (and
-- tier), read in index order; counts and the SLA filters (a range on
-- due_at) answered from indexes. Ascending indexes keep NULLs last, as the
-- worklist wants: a clock not started is not due.
CREATE INDEX finding_risk_score ON finding_risk (status, score DESC, due_at, finding_id);
CREATE INDEX finding_risk_due ON finding_risk (status, due_at, score DESC, finding_id);
CREATE INDEX finding_risk_tier ON finding_risk (status, tier, score DESC, due_at, finding_id);
-- One asset's (or one site's assets') records, sorted without reading rows.
CREATE INDEX finding_risk_asset ON finding_risk (asset_id, status, score DESC, due_at);
CREATE INDEX finding_risk_vuln ON finding_risk (vuln_id);

-- Every re-prioritisation of a finding, and why.
CREATE TABLE finding_risk_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finding_id     TEXT NOT NULL,
    at             TIMESTAMPTZ NOT NULL,
    tier           TEXT NOT NULL,
    score          DOUBLE PRECISION NOT NULL,
    due_at         TIMESTAMPTZ,
    status         TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    policy_version INTEGER NOT NULL
);
CREATE INDEX finding_risk_events_finding ON finding_risk_events (finding_id, at, id);

-- Risk acceptances: the revision is the optimistic lock.
CREATE TABLE risk_exceptions (
    id               TEXT PRIMARY KEY,
    scope            TEXT NOT NULL CHECK (scope IN ('finding', 'asset', 'group')),
    target           TEXT NOT NULL,
    vuln_id          TEXT NOT NULL DEFAULT '',
    decision         TEXT NOT NULL,
    reason           TEXT NOT NULL,
    controls         TEXT NOT NULL DEFAULT '[]',
    owner            TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('requested', 'approved', 'rejected', 'revoked', 'expired')),
    requested_by     TEXT NOT NULL,
    requested_at     TIMESTAMPTZ NOT NULL,
    decided_by       TEXT NOT NULL DEFAULT '',
    decided_at       TIMESTAMPTZ,
    decision_note    TEXT NOT NULL DEFAULT '',
    expires_at       TIMESTAMPTZ,
    next_review_at   TIMESTAMPTZ,
    last_reviewed_at TIMESTAMPTZ,
    ended_at         TIMESTAMPTZ,
    ended_by         TEXT NOT NULL DEFAULT '',
    end_note         TEXT NOT NULL DEFAULT '',
    revision         INTEGER NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX risk_exceptions_review ON risk_exceptions (state, next_review_at);
CREATE INDEX risk_exceptions_expiry ON risk_exceptions (state, expires_at);
CREATE INDEX risk_exceptions_target ON risk_exceptions (scope, target);
CREATE INDEX risk_exceptions_requested ON risk_exceptions (requested_at, id);

CREATE TABLE risk_exception_reviews (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exception_id TEXT NOT NULL REFERENCES risk_exceptions(id),
    at           TIMESTAMPTZ NOT NULL,
    reviewer     TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX risk_exception_reviews_exception ON risk_exception_reviews (exception_id, at, id);

-- +goose Down
DROP TABLE risk_exception_reviews;
DROP TABLE risk_exceptions;
DROP TABLE finding_risk_events;
DROP TABLE finding_risk;
DROP TABLE policy_versions;
