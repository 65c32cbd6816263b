-- +goose Up
CREATE TABLE sites (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    address    TEXT NOT NULL DEFAULT '',
    time_zone  TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE asset_groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE assets (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    type               TEXT NOT NULL,
    hostname           TEXT NOT NULL DEFAULT '',
    make               TEXT NOT NULL DEFAULT '',
    model              TEXT NOT NULL DEFAULT '',
    serial             TEXT NOT NULL DEFAULT '',
    asset_tag          TEXT NOT NULL DEFAULT '',
    os_name            TEXT NOT NULL DEFAULT '',
    os_version         TEXT NOT NULL DEFAULT '',
    firmware_version   TEXT NOT NULL DEFAULT '',
    cpe                TEXT NOT NULL DEFAULT '',
    ip_addresses       TEXT NOT NULL DEFAULT '[]',
    mac_address        TEXT NOT NULL DEFAULT '',
    site_id            TEXT REFERENCES sites(id),
    location           TEXT NOT NULL DEFAULT '',
    network_zone       TEXT NOT NULL DEFAULT '',
    exposure           TEXT NOT NULL,
    business_owner     TEXT NOT NULL DEFAULT '',
    technical_owner    TEXT NOT NULL DEFAULT '',
    data_class         TEXT NOT NULL,
    handles_phi        BOOLEAN NOT NULL,
    criticality        TEXT NOT NULL,
    safety_impact      TEXT NOT NULL,
    regulated_device   BOOLEAN NOT NULL,
    restriction        TEXT NOT NULL,
    restriction_notes  TEXT NOT NULL DEFAULT '',
    maintenance_window TEXT NOT NULL DEFAULT '',
    patch_source       TEXT NOT NULL DEFAULT '',
    support_status     TEXT NOT NULL,
    end_of_support     TIMESTAMP,
    last_patched_at    TIMESTAMP,
    pending_updates    INTEGER NOT NULL DEFAULT 0,
    purchase_ref       TEXT NOT NULL DEFAULT '',
    purchased_at       TIMESTAMP,
    last_seen_at       TIMESTAMP,
    source             TEXT NOT NULL,
    notes              TEXT NOT NULL DEFAULT '',
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    revision           INTEGER NOT NULL
);
CREATE INDEX assets_name ON assets (name);
CREATE INDEX assets_site ON assets (site_id);
CREATE INDEX assets_type ON assets (type);
CREATE INDEX assets_criticality ON assets (criticality);
CREATE INDEX assets_serial ON assets (serial);
CREATE INDEX assets_hostname ON assets (hostname);
CREATE INDEX assets_mac ON assets (mac_address);

CREATE TABLE asset_tags (
    asset_id TEXT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (asset_id, tag)
);
CREATE INDEX asset_tags_tag ON asset_tags (tag);

CREATE TABLE asset_group_members (
    asset_id TEXT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES asset_groups(id) ON DELETE CASCADE,
    PRIMARY KEY (asset_id, group_id)
);
CREATE INDEX asset_group_members_group ON asset_group_members (group_id);

CREATE TABLE asset_software (
    asset_id  TEXT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    ord       INTEGER NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    ecosystem TEXT NOT NULL DEFAULT '',
    purl      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (asset_id, ord)
);
CREATE INDEX asset_software_pkg ON asset_software (ecosystem, name, version);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP
);

CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    addr         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP,
    last_used_at TIMESTAMP,
    revoked_at   TIMESTAMP
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE audit_entries (
    seq         INTEGER PRIMARY KEY,
    at_us       INTEGER NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT NOT NULL DEFAULT '',
    actor_name  TEXT NOT NULL DEFAULT '',
    actor_addr  TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL DEFAULT '',
    before_json TEXT,
    after_json  TEXT,
    reason      TEXT NOT NULL DEFAULT '',
    prev_hash   BLOB NOT NULL,
    leaf_hash   BLOB NOT NULL,
    root_hash   BLOB NOT NULL
);
CREATE INDEX audit_entries_at ON audit_entries (at_us);
CREATE INDEX audit_entries_object ON audit_entries (object_type, object_id);

CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    size      INTEGER NOT NULL,
    hashes    BLOB NOT NULL,
    last_leaf BLOB NOT NULL
);
INSERT INTO audit_head (id, size, hashes, last_leaf) VALUES (1, 0, x'', x'');

CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY,
    root_hash  BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE audit_checkpoints;
DROP TABLE audit_head;
DROP TABLE audit_entries;
DROP TABLE api_tokens;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE asset_software;
DROP TABLE asset_group_members;
DROP TABLE asset_tags;
DROP TABLE assets;
DROP TABLE asset_groups;
DROP TABLE sites;
