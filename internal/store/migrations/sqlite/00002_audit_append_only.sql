-- +goose Up
-- The audit log is append-only for the application. These triggers stop
-- accidental edits; deliberate tampering by someone who drops them is what
-- the hash chain, Merkle roots and signed checkpoints catch.
-- +goose StatementBegin
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER audit_entries_no_delete;
DROP TRIGGER audit_entries_no_update;
