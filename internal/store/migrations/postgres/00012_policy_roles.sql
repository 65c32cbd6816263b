-- +goose Up
-- A user holds policy roles (it-manager, laboratory-director...) by name,
-- assigned by an admin: approving or signing off "as" a policy role needs
-- the account to hold it, not merely the Patchward role it grants. A JSON
-- array of role names; an account starts with none.
ALTER TABLE users ADD COLUMN policy_roles TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE users DROP COLUMN policy_roles;
