-- +goose Up
-- Debian, Ubuntu and Alpine advisories name source packages: matching needs
-- each binary package's source name and version (dpkg's Source: field).
ALTER TABLE asset_software ADD COLUMN source_name TEXT NOT NULL DEFAULT '';
ALTER TABLE asset_software ADD COLUMN source_version TEXT NOT NULL DEFAULT '';
ALTER TABLE asset_software ADD COLUMN arch TEXT NOT NULL DEFAULT '';

-- One row per (asset, package key, vulnerability), never deleted: first_seen
-- and fixed_at feed SLA and MTTR reporting. No foreign key to assets, so a
-- decommissioned asset's remediation history outlives it.
CREATE TABLE findings (
    id                TEXT PRIMARY KEY,
    asset_id          TEXT NOT NULL,
    family            TEXT NOT NULL,
    ecosystem         TEXT NOT NULL,
    package           TEXT NOT NULL,
    version           TEXT NOT NULL,
    binaries          TEXT NOT NULL DEFAULT '[]',
    vuln_id           TEXT NOT NULL,
    advisory_ids      TEXT NOT NULL DEFAULT '[]',
    fixed_version     TEXT NOT NULL DEFAULT '',
    source            TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('open', 'fixed', 'not_affected')),
    first_seen        TIMESTAMPTZ NOT NULL,
    last_seen         TIMESTAMPTZ NOT NULL,
    fixed_at          TIMESTAMPTZ,
    reopened_at       TIMESTAMPTZ,
    reopen_count      INTEGER NOT NULL DEFAULT 0,
    vex_status        TEXT NOT NULL DEFAULT '',
    vex_justification TEXT NOT NULL DEFAULT '',
    vex_impact        TEXT NOT NULL DEFAULT '',
    vex_document      TEXT NOT NULL DEFAULT '',
    kev               BOOLEAN NOT NULL DEFAULT FALSE,
    epss              DOUBLE PRECISION NOT NULL DEFAULT 0,
    UNIQUE (asset_id, family, package, vuln_id)
);
-- Per-asset listing and host re-evaluation (the unique index above serves
-- loading one asset's findings too).
CREATE INDEX findings_asset_state ON findings (asset_id, state, first_seen);
-- Estate listing, newest first, by state and for known-exploited first.
CREATE INDEX findings_state_seen ON findings (state, first_seen, id);
CREATE INDEX findings_kev_state ON findings (kev, state, first_seen);
-- Feed changes re-examine findings by package key; search by vulnerability.
CREATE INDEX findings_key ON findings (family, package);
CREATE INDEX findings_vuln ON findings (vuln_id);

-- +goose Down
DROP TABLE findings;
ALTER TABLE asset_software DROP COLUMN arch;
ALTER TABLE asset_software DROP COLUMN source_version;
ALTER TABLE asset_software DROP COLUMN source_name;
