-- +goose Up
-- The audit log is append-only for the application. This trigger stops
-- accidental edits; deliberate tampering by someone who disables it is what
-- the hash chain, Merkle roots and signed checkpoints catch.
-- +goose StatementBegin
CREATE FUNCTION audit_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_entries is append-only';
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER audit_entries_no_change BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();

-- +goose Down
DROP TRIGGER audit_entries_no_change ON audit_entries;
DROP FUNCTION audit_entries_append_only();
