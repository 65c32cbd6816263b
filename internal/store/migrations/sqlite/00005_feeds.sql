-- +goose Up
-- Vulnerability feeds, stored as whole versions. A sync writes a complete new
-- feed_versions row with all its records, then points feeds.current_version_id
-- at it in the same transaction. Readers always join through
-- current_version_id, so a half-written version is never visible and a
-- process killed mid-sync leaves the previous version current.
CREATE TABLE feeds (
    name                TEXT PRIMARY KEY,
    kind                TEXT NOT NULL,
    source              TEXT NOT NULL DEFAULT '',
    current_version_id  INTEGER REFERENCES feed_versions(id),
    previous_version_id INTEGER REFERENCES feed_versions(id),
    last_attempt_at     TIMESTAMP,
    last_success_at     TIMESTAMP,
    last_error          TEXT NOT NULL DEFAULT ''
);

CREATE TABLE feed_versions (
    id              INTEGER PRIMARY KEY,
    feed            TEXT NOT NULL REFERENCES feeds(name),
    version         INTEGER NOT NULL,
    base_version_id INTEGER,
    fetched_at      TIMESTAMP NOT NULL,
    source          TEXT NOT NULL,
    etag            TEXT NOT NULL DEFAULT '',
    last_modified   TEXT NOT NULL DEFAULT '',
    sha256          TEXT NOT NULL DEFAULT '',
    cursor          TEXT NOT NULL DEFAULT '',
    advisories      INTEGER NOT NULL DEFAULT 0,
    kev             INTEGER NOT NULL DEFAULT 0,
    epss            INTEGER NOT NULL DEFAULT 0,
    meta            TEXT NOT NULL DEFAULT '{}',
    UNIQUE (feed, version)
);

-- The per-version record tables carry no foreign key to feed_versions: a
-- check per row costs about a third of a 300,000-row EPSS swap, and rows are
-- only ever written with a version inside its transaction and deleted with
-- it by the prune, child tables first.
-- One row per advisory per version; data is the normalised advisory JSON.
CREATE TABLE feed_advisories (
    version_id INTEGER NOT NULL,
    key        TEXT NOT NULL,
    id         TEXT NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (version_id, key)
);

-- Upper-cased IDs and aliases, for lookup by either.
CREATE TABLE feed_advisory_idents (
    ident      TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    key        TEXT NOT NULL,
    PRIMARY KEY (ident, version_id, key)
) WITHOUT ROWID;
CREATE INDEX feed_advisory_idents_version ON feed_advisory_idents (version_id);

-- Affected (ecosystem, package) pairs, for search by package.
CREATE TABLE feed_advisory_packages (
    package    TEXT NOT NULL,
    ecosystem  TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    key        TEXT NOT NULL,
    PRIMARY KEY (package, ecosystem, version_id, key)
) WITHOUT ROWID;
CREATE INDEX feed_advisory_packages_version ON feed_advisory_packages (version_id);

CREATE TABLE feed_kev (
    version_id       INTEGER NOT NULL,
    cve              TEXT NOT NULL,
    date_added       TEXT NOT NULL,
    known_ransomware BOOLEAN NOT NULL,
    data             TEXT NOT NULL,
    PRIMARY KEY (version_id, cve)
);

CREATE TABLE feed_epss (
    version_id INTEGER NOT NULL,
    cve        TEXT NOT NULL,
    score      REAL NOT NULL,
    percentile REAL NOT NULL,
    PRIMARY KEY (version_id, cve)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE feed_epss;
DROP TABLE feed_kev;
DROP TABLE feed_advisory_packages;
DROP TABLE feed_advisory_idents;
DROP TABLE feed_advisories;
DROP TABLE feed_versions;
DROP TABLE feeds;
