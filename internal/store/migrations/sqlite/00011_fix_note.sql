-- +goose Up
-- A device maker's CSAF advisory often says a fix exists ("update to
-- 21.12 or later", a vendor_fix remediation) without naming a fixed
-- product version: the finding records it so that the fix counts as
-- available for risk and SLA clocks, and people see what to do.
ALTER TABLE findings ADD COLUMN fix_note TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE findings DROP COLUMN fix_note;
