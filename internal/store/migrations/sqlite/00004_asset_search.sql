-- +goose Up
-- Precomputed keys for fast listing at fleet scale: sort_key orders the
-- asset list through an index instead of sorting every row, and
-- search_text lets the free-text filter scan one column instead of six.
ALTER TABLE assets ADD COLUMN sort_key TEXT NOT NULL DEFAULT '';
ALTER TABLE assets ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE assets SET sort_key = lower(name),
    search_text = lower(name || char(31) || hostname || char(31) || serial || char(31) || asset_tag || char(31) || make || char(31) || model);
CREATE INDEX assets_sort ON assets (sort_key, id);
CREATE INDEX assets_business_owner ON assets (lower(business_owner));
CREATE INDEX assets_technical_owner ON assets (lower(technical_owner));
CREATE INDEX assets_exposure ON assets (exposure);

-- +goose Down
DROP INDEX assets_exposure;
DROP INDEX assets_technical_owner;
DROP INDEX assets_business_owner;
DROP INDEX assets_sort;
ALTER TABLE assets DROP COLUMN search_text;
ALTER TABLE assets DROP COLUMN sort_key;
