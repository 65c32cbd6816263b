-- +goose Up
-- Change records (internal/change). The doc column holds the whole record
-- as JSON; state, type, risk and the go/no-go deadline are copied out of it
-- for listings. The revision is the optimistic lock: every write is
-- UPDATE … WHERE revision = the one read.
CREATE TABLE changes (
    id              TEXT PRIMARY KEY,
    title           TEXT NOT NULL,
    type            TEXT NOT NULL CHECK (type IN ('standard', 'normal', 'emergency')),
    state           TEXT NOT NULL CHECK (state IN ('draft', 'submitted', 'approved', 'rejected', 'scheduled',
                        'in_progress', 'completed', 'halted', 'rolled_back', 'cancelled')),
    requested_by    TEXT NOT NULL,
    requested_by_id TEXT NOT NULL,
    risk_tier       TEXT NOT NULL DEFAULT '',
    risk_rank       INTEGER NOT NULL DEFAULT -1,
    risk_score      REAL NOT NULL DEFAULT 0,
    go_no_go_by     TIMESTAMP,
    doc             TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE INDEX changes_state ON changes (state, created_at);
CREATE INDEX changes_type ON changes (type, created_at);
CREATE INDEX changes_created ON changes (created_at, id);

-- What each change targets, so "changes touching this asset" is a join,
-- not a scan of every document. No foreign key to assets or groups: the
-- change record outlives a decommissioned asset.
CREATE TABLE change_targets (
    change_id TEXT NOT NULL REFERENCES changes(id),
    kind      TEXT NOT NULL CHECK (kind IN ('asset', 'group')),
    target_id TEXT NOT NULL,
    PRIMARY KEY (change_id, kind, target_id)
);
CREATE INDEX change_targets_target ON change_targets (kind, target_id);

-- Approvals and rejections, kept when an edit expires them. One decision
-- per person per revision: the unique index backs the service's check
-- against two concurrent clicks.
CREATE TABLE change_approvals (
    id              INTEGER PRIMARY KEY,
    change_id       TEXT NOT NULL REFERENCES changes(id),
    approver        TEXT NOT NULL,
    approver_id     TEXT NOT NULL,
    role            TEXT NOT NULL,
    grant_role      TEXT NOT NULL,
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
    note            TEXT NOT NULL DEFAULT '',
    at              TIMESTAMP NOT NULL,
    change_revision INTEGER NOT NULL,
    expired_at      TIMESTAMP,
    expired_why     TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX change_approvals_once ON change_approvals (change_id, change_revision, approver_id);
CREATE INDEX change_approvals_change ON change_approvals (change_id, id);

-- Every state transition, with who and why.
CREATE TABLE change_transitions (
    id         INTEGER PRIMARY KEY,
    change_id  TEXT NOT NULL REFERENCES changes(id),
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    action     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    why        TEXT NOT NULL DEFAULT '',
    at         TIMESTAMP NOT NULL,
    revision   INTEGER NOT NULL
);
CREATE INDEX change_transitions_change ON change_transitions (change_id, id);

CREATE TABLE change_test_runs (
    id        TEXT PRIMARY KEY,
    change_id TEXT NOT NULL REFERENCES changes(id),
    run_by    TEXT NOT NULL,
    at        TIMESTAMP NOT NULL,
    results   TEXT NOT NULL
);
CREATE INDEX change_test_runs_change ON change_test_runs (change_id, at, id);

-- Evidence bytes, content-addressed: stored once per SHA-256 (hex), and
-- checked against it on every read.
CREATE TABLE evidence_blobs (
    sha256  TEXT PRIMARY KEY,
    size    INTEGER NOT NULL,
    content BLOB NOT NULL
);

-- Which change each piece of evidence is attached to, as whom uploaded it.
CREATE TABLE change_evidence (
    change_id   TEXT NOT NULL REFERENCES changes(id),
    sha256      TEXT NOT NULL REFERENCES evidence_blobs(sha256),
    name        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    uploaded_by TEXT NOT NULL,
    at          TIMESTAMP NOT NULL,
    PRIMARY KEY (change_id, sha256)
);
CREATE INDEX change_evidence_blob ON change_evidence (sha256);

-- +goose Down
DROP TABLE change_evidence;
DROP TABLE evidence_blobs;
DROP TABLE change_test_runs;
DROP TABLE change_transitions;
DROP TABLE change_approvals;
DROP TABLE change_targets;
DROP TABLE changes;
