package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// Session is a browser sign-in. Only the SHA-256 of the cookie value is
// stored, so a copy of the database does not let anyone sign in.
type Session struct {
	Hash       []byte    `json:"-"`
	UserID     string    `json:"user_id"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	Addr       string    `json:"addr,omitempty"`
}

// Token is an API token for scripts. Like sessions, only the SHA-256 of the
// secret is stored; the plaintext is shown once, when it is created.
type Token struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	Hash       []byte     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Active reports whether t can still authenticate at now.
func (t Token) Active(now time.Time) bool {
	return t.RevokedAt == nil && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt))
}

// Reader is the read side of account storage.
type Reader interface {
	GetUser(ctx context.Context, id string) (User, error)
	// GetUserByUsername looks up a normalised username.
	GetUserByUsername(ctx context.Context, username string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	// PasswordHash returns the user's PHC hash string. It is separate from
	// GetUser so the hash never travels inside a User value.
	PasswordHash(ctx context.Context, userID string) (string, error)
	// CountAdmins counts enabled users with the admin role.
	CountAdmins(ctx context.Context) (int, error)
	// CountLoginFailures counts failed sign-ins for username at or after since.
	CountLoginFailures(ctx context.Context, username string, since time.Time) (int, error)
	GetSession(ctx context.Context, hash []byte) (Session, error)
	GetToken(ctx context.Context, id string) (Token, error)
	GetTokenByHash(ctx context.Context, hash []byte) (Token, error)
	// ListTokens returns a user's tokens, revoked ones included, newest first.
	ListTokens(ctx context.Context, userID string) ([]Token, error)
}

// Tx is the account service's view of one storage transaction. It embeds
// audit.Appender so every change is logged in the same transaction.
type Tx interface {
	Reader
	audit.Appender
	// InsertUser stores u with its password hash; a taken username is a
	// Conflict.
	InsertUser(ctx context.Context, u *User, passwordHash string) error
	// UpdateUser stores u's display name, role, disabled flag and updated_at.
	UpdateUser(ctx context.Context, u *User) error
	SetPasswordHash(ctx context.Context, userID, passwordHash string, at time.Time) error
	SetLastLogin(ctx context.Context, userID string, at time.Time) error
	AddLoginFailure(ctx context.Context, username string, at time.Time) error
	ClearLoginFailures(ctx context.Context, username string) error
	// PruneLoginFailures forgets failures older than before.
	PruneLoginFailures(ctx context.Context, before time.Time) error
	InsertSession(ctx context.Context, s *Session) error
	// TouchSession sets last_seen_at to at if it is older than at.
	TouchSession(ctx context.Context, hash []byte, at time.Time) error
	// DeleteSession removes one session; NotFound if there was none.
	DeleteSession(ctx context.Context, hash []byte) error
	DeleteUserSessions(ctx context.Context, userID string) (int, error)
	// DeleteStaleSessions removes sessions past their absolute expiry or
	// idle since before idleBefore.
	DeleteStaleSessions(ctx context.Context, now, idleBefore time.Time) (int, error)
	InsertToken(ctx context.Context, t *Token) error
	// TouchToken sets last_used_at to at.
	TouchToken(ctx context.Context, id string, at time.Time) error
	// RevokeToken sets revoked_at to at.
	RevokeToken(ctx context.Context, id string, at time.Time) error
}

// Store is account storage: reads plus transactions.
type Store interface {
	Reader
	Transact(ctx context.Context, fn func(Tx) error) error
}

// Defaults for Options.
const (
	DefaultSessionIdle     = 30 * time.Minute
	DefaultSessionLifetime = 12 * time.Hour
	DefaultMaxFailures     = 10
	DefaultFailureWindow   = 15 * time.Minute
	// touchInterval bounds how often a session's last-seen or a token's
	// last-used time is written: once a minute is precise enough for idle
	// timeouts and reviews, and keeps reads from becoming writes.
	touchInterval = time.Minute
)

// Options configures a Service. Zero fields take the defaults above.
type Options struct {
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Random supplies salts, session and token secrets and generated
	// passwords; crypto/rand if nil. Tests inject a deterministic reader.
	Random io.Reader
	// Params are the argon2id costs for new hashes; DefaultParams if zero.
	Params Params
	// MaxConcurrentHashes caps argon2id computations in flight, each of
	// which holds Params.Memory; 2 if zero.
	MaxConcurrentHashes int
	// SessionIdle ends a session not used for this long.
	SessionIdle time.Duration
	// SessionLifetime ends a session this long after sign-in regardless.
	SessionLifetime time.Duration
	// MaxFailures failed sign-ins for one username within FailureWindow
	// lock further attempts until the oldest of them ages out.
	MaxFailures   int
	FailureWindow time.Duration
	// PolicyGrants returns the policy in force's roles and what they
	// grant, to check the policy roles given to a user against. Without
	// it only the names' form is checked (tests, tools without a policy).
	PolicyGrants func(ctx context.Context) (PolicyGrants, error)
}

// Service implements accounts, sign-in, sessions and API tokens.
type Service struct {
	store Store
	now   func() time.Time
	rand  io.Reader
	opt   Options
	// slots bounds concurrent argon2id runs.
	slots chan struct{}

	dummyOnce sync.Once
	dummy     string
	dummyErr  error
}

// NewService returns a Service on store.
func NewService(store Store, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Random == nil {
		opt.Random = rand.Reader
	}
	if opt.Params == (Params{}) {
		opt.Params = DefaultParams()
	}
	if opt.MaxConcurrentHashes <= 0 {
		opt.MaxConcurrentHashes = 2
	}
	if opt.SessionIdle <= 0 {
		opt.SessionIdle = DefaultSessionIdle
	}
	if opt.SessionLifetime <= 0 {
		opt.SessionLifetime = DefaultSessionLifetime
	}
	if opt.MaxFailures <= 0 {
		opt.MaxFailures = DefaultMaxFailures
	}
	if opt.FailureWindow <= 0 {
		opt.FailureWindow = DefaultFailureWindow
	}
	return &Service{store: store, now: opt.Now, rand: opt.Random, opt: opt,
		slots: make(chan struct{}, opt.MaxConcurrentHashes)}
}

// SessionTimeouts reports the idle timeout and absolute lifetime, for the
// HTTP layer's cookie attributes and "you will be signed out" notices.
func (s *Service) SessionTimeouts() (idle, lifetime time.Duration) {
	return s.opt.SessionIdle, s.opt.SessionLifetime
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// hash computes a new password hash, waiting for a free slot.
func (s *Service) hash(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	return HashPassword(password, s.opt.Params, s.rand)
}

// verify checks password against encoded, waiting for a free slot.
func (s *Service) verify(ctx context.Context, encoded, password string) (ok, rehash bool, err error) {
	if err := s.acquire(ctx); err != nil {
		return false, false, err
	}
	defer s.release()
	return VerifyPassword(encoded, password, s.opt.Params)
}

func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait to hash password: %w", ctx.Err())
	}
}

func (s *Service) release() { <-s.slots }

// dummyHash is compared against when a username does not exist, so that an
// unknown name costs the same time as a wrong password and response timing
// does not reveal which accounts exist.
func (s *Service) dummyHash() (string, error) {
	s.dummyOnce.Do(func() {
		pw, err := generatePassword(s.rand)
		if err != nil {
			s.dummyErr = err
			return
		}
		s.dummy, s.dummyErr = HashPassword(pw, s.opt.Params, s.rand)
	})
	return s.dummy, s.dummyErr
}

// caller is the party behind an audit actor, as far as authorisation goes.
type caller struct {
	// trusted is set for the system actor: in-process callers such as the
	// command line and the demo seeder, which already own the database. The
	// HTTP layer only ever builds user and token actors (Principal.Actor), so
	// no request can claim to be the system.
	trusted bool
	user    User
}

func (c caller) admin() bool {
	return c.trusted || (c.user.Role.Can(PermUserAdmin) && !c.user.Disabled)
}

func (c caller) is(userID string) bool { return !c.trusted && c.user.ID == userID }

// callerOf resolves actor to the account it acts for. Authorisation is
// decided here from stored state, not from whatever role the HTTP layer
// cached, so a demoted or disabled admin loses power at once.
func callerOf(ctx context.Context, r Reader, actor audit.Actor) (caller, error) {
	switch actor.Kind {
	case audit.ActorSystem:
		return caller{trusted: true}, nil
	case audit.ActorUser, audit.ActorToken:
		id := actor.ID
		if actor.Kind == audit.ActorToken {
			id, _, _ = strings.Cut(id, "/")
		}
		u, err := r.GetUser(ctx, id)
		if errors.Is(err, errs.ErrNotFound) {
			return caller{}, errs.E(errs.Unauthorized, "your account no longer exists")
		} else if err != nil {
			return caller{}, err
		}
		if u.Disabled {
			return caller{}, errs.E(errs.Unauthorized, "your account is disabled")
		}
		return caller{user: u}, nil
	default:
		return caller{}, errs.E(errs.Forbidden, "%s actors cannot manage accounts", actor.Kind)
	}
}

var errNotAdmin = errs.E(errs.Forbidden, "only an admin can manage other users' accounts")

// passwordRedacted stands in for a password in audit entries: the entry
// records that the password changed, never the password or its hash.
var passwordRedacted = map[string]string{"password": "[redacted]"}

// ListUsers returns every account, ordered by username.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) {
	users, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// GetUser returns one account by id.
func (s *Service) GetUser(ctx context.Context, id string) (User, error) {
	return s.store.GetUser(ctx, id)
}

// UserByName returns one account by username (any case).
func (s *Service) UserByName(ctx context.Context, username string) (User, error) {
	return s.store.GetUserByUsername(ctx, NormalizeUsername(username))
}

// CreateUser validates n and stores a new account. Only admins (and the
// system) may create accounts.
func (s *Service) CreateUser(ctx context.Context, actor audit.Actor, n NewUser) (User, error) {
	n.Normalize()
	if err := n.Validate(); err != nil {
		return User{}, err
	}
	if c, err := callerOf(ctx, s.store, actor); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	} else if !c.admin() {
		return User{}, errNotAdmin
	}
	if err := s.checkGrants(ctx, n.Role, n.PolicyRoles); err != nil {
		return User{}, fmt.Errorf("create user %q: %w", n.Username, err)
	}
	// Hash before the transaction: it takes ~50 ms and must not hold the
	// single SQLite writer.
	h, err := s.hash(ctx, n.Password)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	var u User
	err = s.store.Transact(ctx, func(tx Tx) error {
		if c, err := callerOf(ctx, tx, actor); err != nil {
			return err
		} else if !c.admin() {
			return errNotAdmin
		}
		u, err = s.insertUser(ctx, tx, actor, n, h)
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", n.Username, err)
	}
	return u, nil
}

func (s *Service) insertUser(ctx context.Context, tx Tx, actor audit.Actor, n NewUser, hash string) (User, error) {
	now := s.clock()
	u := User{ID: newID(), Username: n.Username, DisplayName: n.DisplayName, Role: n.Role, CreatedAt: now, UpdatedAt: now,
		PolicyRoles: n.PolicyRoles}
	if u.PolicyRoles == nil {
		u.PolicyRoles = []string{}
	}
	if err := tx.InsertUser(ctx, &u, hash); err != nil {
		if errs.KindOf(err) == errs.Conflict {
			return User{}, errs.Wrap(errs.Conflict, err, "username %q is already taken", n.Username)
		}
		return User{}, err
	}
	return u, tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "user.create", ObjectType: "user", ObjectID: u.ID, After: u})
}

// EnsureAdmin creates an admin called username with a random password if no
// enabled admin exists, and returns that password (to be shown once). The
// demo seeder and first start-up call it; with an admin present it does
// nothing and reports created false.
func (s *Service) EnsureAdmin(ctx context.Context, actor audit.Actor, username string) (password string, created bool, err error) {
	n := NewUser{Username: username, Role: RoleAdmin, DisplayName: "Administrator"}
	if n.Password, err = generatePassword(s.rand); err != nil {
		return "", false, err
	}
	n.Normalize()
	if err := n.Validate(); err != nil {
		return "", false, err
	}
	if c, err := callerOf(ctx, s.store, actor); err != nil {
		return "", false, fmt.Errorf("ensure admin: %w", err)
	} else if !c.admin() {
		return "", false, errNotAdmin
	}
	if k, err := s.store.CountAdmins(ctx); err != nil {
		return "", false, fmt.Errorf("ensure admin: %w", err)
	} else if k > 0 {
		return "", false, nil
	}
	h, err := s.hash(ctx, n.Password)
	if err != nil {
		return "", false, fmt.Errorf("ensure admin: %w", err)
	}
	err = s.store.Transact(ctx, func(tx Tx) error {
		// Check again under the write lock: another process may have won.
		if k, err := tx.CountAdmins(ctx); err != nil || k > 0 {
			return err
		}
		created = true
		_, err := s.insertUser(ctx, tx, actor, n, h)
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("ensure admin %q: %w", n.Username, err)
	}
	if !created {
		return "", false, nil
	}
	return n.Password, true, nil
}

// UpdateUser changes a user's display name, role or disabled flag. Admins
// may change anything; other users only their own display name. Disabling a
// user or changing their role ends their sessions, and no change may leave
// the installation without an enabled admin.
func (s *Service) UpdateUser(ctx context.Context, actor audit.Actor, id string, upd UserUpdate) (User, error) {
	upd.Normalize()
	if err := upd.Validate(); err != nil {
		return User{}, err
	}
	var u User
	err := s.store.Transact(ctx, func(tx Tx) error {
		c, err := callerOf(ctx, tx, actor)
		if err != nil {
			return err
		}
		if !c.admin() && (!c.is(id) || upd.Role != nil || upd.Disabled != nil) {
			return errs.E(errs.Forbidden, "only an admin can change roles, disable accounts or edit other users")
		}
		old, err := tx.GetUser(ctx, id)
		if err != nil {
			return err
		}
		u = old
		if upd.DisplayName != nil {
			u.DisplayName = *upd.DisplayName
		}
		if upd.Role != nil {
			u.Role = *upd.Role
		}
		if upd.Disabled != nil {
			u.Disabled = *upd.Disabled
		}
		if u.same(old) {
			return nil // nothing changes, so nothing to log
		}
		wasAdmin := old.Role == RoleAdmin && !old.Disabled
		if wasAdmin && (u.Role != RoleAdmin || u.Disabled) {
			if k, err := tx.CountAdmins(ctx); err != nil {
				return err
			} else if k <= 1 {
				return errs.E(errs.Conflict, "%s is the last enabled admin; make another admin first", old.Username)
			}
		}
		u.UpdatedAt = s.clock()
		if err := tx.UpdateUser(ctx, &u); err != nil {
			return err
		}
		action := "user.update"
		switch {
		case u.Disabled && !old.Disabled:
			action = "user.disable"
		case !u.Disabled && old.Disabled:
			action = "user.enable"
		}
		if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: action, ObjectType: "user", ObjectID: id, Before: old, After: u}); err != nil {
			return err
		}
		if u.Role != old.Role || u.Disabled != old.Disabled {
			return endSessions(ctx, tx, actor, u, "role or status changed")
		}
		return nil
	})
	if err != nil {
		return User{}, fmt.Errorf("update user: %w", err)
	}
	return u, nil
}

// SetPolicyRoles replaces the policy roles a user holds; only admins may.
// Each must be a role of the policy in force that grants the user's
// Patchward role (when the service knows the policy). The change is
// audited with the roles before and after; the user's sessions stay, as
// the roles are read afresh with the account on every request.
func (s *Service) SetPolicyRoles(ctx context.Context, actor audit.Actor, userID string, roles []string) (User, error) {
	roles = NormalizePolicyRoles(roles)
	var v errs.Validation
	policyRolesProblems(&v, roles)
	if err := v.Err("invalid policy roles"); err != nil {
		return User{}, err
	}
	var u User
	err := s.store.Transact(ctx, func(tx Tx) error {
		if c, err := callerOf(ctx, tx, actor); err != nil {
			return err
		} else if !c.admin() {
			return errs.E(errs.Forbidden, "only an admin can assign policy roles")
		}
		old, err := tx.GetUser(ctx, userID)
		if err != nil {
			return err
		}
		if err := s.checkGrants(ctx, old.Role, roles); err != nil {
			return err
		}
		u = old
		if u.PolicyRoles = roles; u.same(old) {
			return nil
		}
		u.UpdatedAt = s.clock()
		if err := tx.UpdateUser(ctx, &u); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "user.policy_roles", ObjectType: "user", ObjectID: userID,
			Before: map[string]any{"policy_roles": old.PolicyRoles}, After: map[string]any{"policy_roles": u.PolicyRoles}})
	})
	if err != nil {
		return User{}, fmt.Errorf("set policy roles: %w", err)
	}
	return u, nil
}

// checkGrants checks held policy roles against the policy in force, when
// the service was given one.
func (s *Service) checkGrants(ctx context.Context, role Role, held []string) error {
	if s.opt.PolicyGrants == nil || len(held) == 0 {
		return nil
	}
	g, err := s.opt.PolicyGrants(ctx)
	if err != nil {
		return err
	}
	var v errs.Validation
	g.check(&v, role, held)
	return v.Err("invalid policy roles")
}

// endSessions signs user out everywhere, logging it when there was anything
// to end.
func endSessions(ctx context.Context, tx Tx, actor audit.Actor, u User, why string) error {
	n, err := tx.DeleteUserSessions(ctx, u.ID)
	if err != nil || n == 0 {
		return err
	}
	return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "session.end_all", ObjectType: "user", ObjectID: u.ID,
		After: map[string]int{"sessions_ended": n}, Reason: why})
}

// SetPassword changes a user's password and ends all their sessions. Users
// changing their own password must give the current one (a stolen session
// alone cannot take over the account); admins resetting someone else's, and
// the system, need not. A wrong current password counts towards lockout.
func (s *Service) SetPassword(ctx context.Context, actor audit.Actor, userID, current, password string) error {
	c, err := callerOf(ctx, s.store, actor)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	self := c.is(userID)
	if !self && !c.admin() {
		return errNotAdmin
	}
	u, err := s.store.GetUser(ctx, userID)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if err := ValidatePassword(u.Username, password); err != nil {
		return err
	}
	if self {
		if err := s.checkCurrentPassword(ctx, actor, u, current); err != nil {
			return err
		}
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	action := "user.password_reset"
	if self {
		action = "user.password_change"
	}
	err = s.store.Transact(ctx, func(tx Tx) error {
		now := s.clock()
		if err := tx.SetPasswordHash(ctx, userID, h, now); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: action, ObjectType: "user", ObjectID: userID, After: passwordRedacted}); err != nil {
			return err
		}
		return endSessions(ctx, tx, actor, u, "password changed")
	})
	if err != nil {
		return fmt.Errorf("set password for %q: %w", u.Username, err)
	}
	return nil
}

// checkCurrentPassword verifies a self-service password change, under the
// same lockout as sign-in.
func (s *Service) checkCurrentPassword(ctx context.Context, actor audit.Actor, u User, current string) error {
	if err := s.checkLockout(ctx, u.Username); err != nil {
		return err
	}
	stored, err := s.store.PasswordHash(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	ok, _, err := s.verify(ctx, stored, current)
	if err != nil {
		return fmt.Errorf("set password: user %s: %w", u.ID, err)
	}
	if ok {
		return nil
	}
	if err := s.recordFailure(ctx, actor, u.Username, &u, "wrong current password on password change"); err != nil {
		return err
	}
	var v errs.Validation
	v.Add("current_password", "is incorrect")
	return v.Err("password not changed")
}
