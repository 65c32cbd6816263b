package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/patchward/patchward/internal/auth"
)

// Auth returns the account service's view of the database.
//
// Times compared in SQL (session sweeps) are always stored in UTC, so on
// SQLite, where they are text, string order is time order.
func (db *DB) Auth() auth.Store {
	return authStore{db: db, authReader: authReader{q: db.r}}
}

type authStore struct {
	db *DB
	authReader
}

type authReader struct{ q querier }

func (s authStore) Transact(ctx context.Context, fn func(auth.Tx) error) error {
	return s.db.Transact(ctx, func(t *Tx) error { return fn(authTx{Tx: t, authReader: authReader{q: t.tx}}) })
}

type authTx struct {
	*Tx
	authReader
}

const userCols = `id, username, display_name, role, disabled, created_at, updated_at, last_login_at, policy_roles`

func scanUser(r rowScanner) (auth.User, error) {
	var (
		u     auth.User
		role  string
		login sql.NullTime
		held  string
	)
	if err := r.Scan(&u.ID, &u.Username, &u.DisplayName, &role, &u.Disabled, &u.CreatedAt, &u.UpdatedAt, &login, &held); err != nil {
		return u, err
	}
	if err := json.Unmarshal([]byte(held), &u.PolicyRoles); err != nil {
		return u, fmt.Errorf("decode policy roles of user %s: %w", u.ID, err)
	}
	u.Role = auth.Role(role)
	u.CreatedAt, u.UpdatedAt, u.LastLoginAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC(), timePtr(login)
	return u, nil
}

func (r authReader) GetUser(ctx context.Context, id string) (auth.User, error) {
	u, err := scanUser(r.q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	return u, notFoundOrNil(err, "user", id)
}

func (r authReader) GetUserByUsername(ctx context.Context, username string) (auth.User, error) {
	u, err := scanUser(r.q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE username = $1`, username))
	return u, notFoundOrNil(err, "user", username)
}

func (r authReader) ListUsers(ctx context.Context) ([]auth.User, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", translate(err))
	}
	defer rows.Close()
	out := []auth.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("scan user: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", translate(err))
	}
	return out, nil
}

func (r authReader) PasswordHash(ctx context.Context, userID string) (string, error) {
	var h string
	err := r.q.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE id = $1`, userID).Scan(&h)
	return h, notFoundOrNil(err, "user", userID)
}

func (r authReader) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE role = $1 AND NOT disabled`, string(auth.RoleAdmin)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count admins: %w", translate(err))
	}
	return n, nil
}

// CountAdmins inside a transaction locks the enabled admins' rows on
// PostgreSQL, so two admins demoting each other at once on different
// replicas cannot both pass the last-admin check: the second waits, then
// sees the first's change. SQLite's single writer already serialises them.
func (t authTx) CountAdmins(ctx context.Context) (int, error) {
	if t.db.engine != Postgres {
		return t.authReader.CountAdmins(ctx)
	}
	rows, err := t.tx.QueryContext(ctx, `SELECT id FROM users WHERE role = $1 AND NOT disabled ORDER BY id FOR UPDATE`, string(auth.RoleAdmin))
	if err != nil {
		return 0, fmt.Errorf("count admins: %w", translate(err))
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("count admins: %w", translate(err))
	}
	return n, nil
}

func (r authReader) CountLoginFailures(ctx context.Context, username string, since time.Time) (int, error) {
	var n int
	err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM login_failures WHERE username = $1 AND at_us >= $2`,
		username, since.UnixMicro()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count sign-in failures: %w", translate(err))
	}
	return n, nil
}

const sessionCols = `token_hash, user_id, created_at, expires_at, last_seen_at, addr`

func (r authReader) GetSession(ctx context.Context, hash []byte) (auth.Session, error) {
	var s auth.Session
	err := r.q.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE token_hash = $1`, hash).
		Scan(&s.Hash, &s.UserID, &s.CreatedAt, &s.ExpiresAt, &s.LastSeenAt, &s.Addr)
	if err != nil {
		// The id in a not-found message is a hash prefix: never the secret.
		return s, notFound(err, "session", hex.EncodeToString(hash[:min(len(hash), 4)]))
	}
	s.CreatedAt, s.ExpiresAt, s.LastSeenAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC(), s.LastSeenAt.UTC()
	return s, nil
}

const tokenCols = `id, user_id, name, token_hash, created_at, expires_at, last_used_at, revoked_at`

func scanToken(r rowScanner) (auth.Token, error) {
	var (
		t                      auth.Token
		expires, used, revoked sql.NullTime
	)
	if err := r.Scan(&t.ID, &t.UserID, &t.Name, &t.Hash, &t.CreatedAt, &expires, &used, &revoked); err != nil {
		return t, err
	}
	t.CreatedAt = t.CreatedAt.UTC()
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = timePtr(expires), timePtr(used), timePtr(revoked)
	return t, nil
}

func (r authReader) GetToken(ctx context.Context, id string) (auth.Token, error) {
	t, err := scanToken(r.q.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE id = $1`, id))
	return t, notFoundOrNil(err, "API token", id)
}

func (r authReader) GetTokenByHash(ctx context.Context, hash []byte) (auth.Token, error) {
	t, err := scanToken(r.q.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE token_hash = $1`, hash))
	if err != nil {
		return t, notFound(err, "API token", hex.EncodeToString(hash[:min(len(hash), 4)]))
	}
	return t, nil
}

func (r authReader) ListTokens(ctx context.Context, userID string) ([]auth.Token, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", translate(err))
	}
	defer rows.Close()
	out := []auth.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("scan API token: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API tokens: %w", translate(err))
	}
	return out, nil
}

func (t authTx) InsertUser(ctx context.Context, u *auth.User, passwordHash string) error {
	held, err := policyRolesJSON(u.PolicyRoles)
	if err != nil {
		return err
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO users (`+userCols+`, password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		u.ID, u.Username, u.DisplayName, string(u.Role), u.Disabled, u.CreatedAt.UTC(), u.UpdatedAt.UTC(), nullTime(u.LastLoginAt), held, passwordHash)
	if err != nil {
		return fmt.Errorf("insert user %q: %w", u.Username, translate(err))
	}
	return nil
}

// execOne runs a statement that must change exactly one row, reporting
// NotFound when it changed none.
func (t authTx) execOne(ctx context.Context, what, id, q string, args ...any) error {
	res, err := t.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("update %s: %w", what, translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update %s: %w", what, err)
	} else if n == 0 {
		return notFound(sql.ErrNoRows, what, id)
	}
	return nil
}

func (t authTx) UpdateUser(ctx context.Context, u *auth.User) error {
	held, err := policyRolesJSON(u.PolicyRoles)
	if err != nil {
		return err
	}
	return t.execOne(ctx, "user", u.ID, `UPDATE users SET display_name = $2, role = $3, disabled = $4, updated_at = $5, policy_roles = $6 WHERE id = $1`,
		u.ID, u.DisplayName, string(u.Role), u.Disabled, u.UpdatedAt.UTC(), held)
}

// policyRolesJSON encodes held policy roles as the users.policy_roles
// column keeps them: a JSON array, never null.
func policyRolesJSON(roles []string) (string, error) {
	if roles == nil {
		roles = []string{}
	}
	b, err := json.Marshal(roles)
	if err != nil {
		return "", fmt.Errorf("encode policy roles: %w", err)
	}
	return string(b), nil
}

func (t authTx) SetPasswordHash(ctx context.Context, userID, passwordHash string, at time.Time) error {
	return t.execOne(ctx, "user", userID, `UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1`,
		userID, passwordHash, at.UTC())
}

func (t authTx) SetLastLogin(ctx context.Context, userID string, at time.Time) error {
	return t.execOne(ctx, "user", userID, `UPDATE users SET last_login_at = $2 WHERE id = $1`, userID, at.UTC())
}

func (t authTx) AddLoginFailure(ctx context.Context, username string, at time.Time) error {
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO login_failures (username, at_us) VALUES ($1, $2)`, username, at.UnixMicro()); err != nil {
		return fmt.Errorf("record sign-in failure: %w", translate(err))
	}
	return nil
}

func (t authTx) ClearLoginFailures(ctx context.Context, username string) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM login_failures WHERE username = $1`, username); err != nil {
		return fmt.Errorf("clear sign-in failures: %w", translate(err))
	}
	return nil
}

func (t authTx) PruneLoginFailures(ctx context.Context, before time.Time) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM login_failures WHERE at_us < $1`, before.UnixMicro()); err != nil {
		return fmt.Errorf("prune sign-in failures: %w", translate(err))
	}
	return nil
}

func (t authTx) InsertSession(ctx context.Context, s *auth.Session) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		s.Hash, s.UserID, s.CreatedAt.UTC(), s.ExpiresAt.UTC(), s.LastSeenAt.UTC(), s.Addr)
	if err != nil {
		return fmt.Errorf("insert session: %w", translate(err))
	}
	return nil
}

func (t authTx) TouchSession(ctx context.Context, hash []byte, at time.Time) error {
	// The condition makes concurrent touches harmless: the later time wins.
	_, err := t.tx.ExecContext(ctx, `UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2`, hash, at.UTC())
	if err != nil {
		return fmt.Errorf("touch session: %w", translate(err))
	}
	return nil
}

func (t authTx) DeleteSession(ctx context.Context, hash []byte) error {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = $1`, hash)
	if err != nil {
		return fmt.Errorf("delete session: %w", translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete session: %w", err)
	} else if n == 0 {
		return notFound(sql.ErrNoRows, "session", hex.EncodeToString(hash[:min(len(hash), 4)]))
	}
	return nil
}

func (t authTx) DeleteUserSessions(ctx context.Context, userID string) (int, error) {
	return t.deleteSessions(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
}

func (t authTx) DeleteStaleSessions(ctx context.Context, now, idleBefore time.Time) (int, error) {
	return t.deleteSessions(ctx, `DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2`, now.UTC(), idleBefore.UTC())
}

func (t authTx) deleteSessions(ctx context.Context, q string, args ...any) (int, error) {
	res, err := t.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("delete sessions: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete sessions: %w", err)
	}
	return int(n), nil
}

func (t authTx) InsertToken(ctx context.Context, tok *auth.Token) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO api_tokens (`+tokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		tok.ID, tok.UserID, tok.Name, tok.Hash, tok.CreatedAt.UTC(), nullTime(tok.ExpiresAt), nullTime(tok.LastUsedAt), nullTime(tok.RevokedAt))
	if err != nil {
		return fmt.Errorf("insert API token %q: %w", tok.Name, translate(err))
	}
	return nil
}

func (t authTx) TouchToken(ctx context.Context, id string, at time.Time) error {
	return t.execOne(ctx, "API token", id, `UPDATE api_tokens SET last_used_at = $2 WHERE id = $1`, id, at.UTC())
}

func (t authTx) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return t.execOne(ctx, "API token", id, `UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, at.UTC())
}
