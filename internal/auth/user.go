package auth

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/patchward/patchward/internal/errs"
)

// User is a local account. The password hash is deliberately not a field:
// it is read and written only through dedicated storage calls, so no JSON
// response, audit entry or log line can carry it by accident.
type User struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"display_name,omitempty"`
	Role        Role       `json:"role"`
	Disabled    bool       `json:"disabled"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	LastLoginAt *time.Time `json:"last_login_at,omitempty"`
	// PolicyRoles are the policy roles (it-manager, laboratory-director...)
	// an admin has assigned the user: approving or signing off as one takes
	// holding it. Never nil once read from storage.
	PolicyRoles []string `json:"policy_roles"`
}

// Principal returns the user as an authenticated caller.
func (u User) Principal() Principal {
	return Principal{UserID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Role: u.Role,
		PolicyRoles: slices.Clone(u.PolicyRoles)}
}

// same reports whether u and o store the same account.
func (u User) same(o User) bool {
	return u.ID == o.ID && u.Username == o.Username && u.DisplayName == o.DisplayName && u.Role == o.Role &&
		u.Disabled == o.Disabled && u.CreatedAt.Equal(o.CreatedAt) && u.UpdatedAt.Equal(o.UpdatedAt) &&
		(u.LastLoginAt == nil) == (o.LastLoginAt == nil) && (u.LastLoginAt == nil || u.LastLoginAt.Equal(*o.LastLoginAt)) &&
		slices.Equal(u.PolicyRoles, o.PolicyRoles)
}

// NewUser is the input to CreateUser.
type NewUser struct {
	Username    string
	DisplayName string
	Role        Role
	// Password is the initial password; callers that have none generate one
	// with BootstrapPassword and show it once.
	Password string
	// PolicyRoles are the policy roles the user holds from the start.
	PolicyRoles []string
}

// UserUpdate changes some of a user's fields; nil fields stay as they are.
type UserUpdate struct {
	DisplayName *string
	Role        *Role
	Disabled    *bool
}

// Limits on account fields.
const (
	MinUsernameLen    = 3
	MaxUsernameLen    = 64
	MinPasswordLen    = 12
	MaxPasswordLen    = 256
	MaxDisplayNameLen = 128
)

// NormalizeUsername trims and lower-cases a username, so "Alice" and
// "alice " sign in to the same account and cannot be registered twice.
func NormalizeUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// usernameProblem explains what is wrong with a normalised username, or "".
// Usernames are restricted to a small ASCII set because they appear in audit
// entries, URLs and change records that people compare by eye; look-alike
// Unicode characters would let two accounts read as one.
func usernameProblem(u string) string {
	if n := len(u); n < MinUsernameLen || n > MaxUsernameLen {
		return fmt.Sprintf("must be %d to %d characters", MinUsernameLen, MaxUsernameLen)
	}
	for i, r := range u {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '.' || r == '_' || r == '-' || r == '@') && i > 0:
		default:
			return "may contain only letters a-z, digits and . _ - @, and must start with a letter or digit"
		}
	}
	return ""
}

// passwordProblem explains what is wrong with password for username, or "".
// The policy follows NIST SP 800-63B: length matters, composition rules do
// not, and any printable character (spaces included) is allowed so that
// passphrases work.
func passwordProblem(username, password string) string {
	if !utf8.ValidString(password) {
		return "must be valid UTF-8 text"
	}
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPasswordLen:
		return fmt.Sprintf("must be at least %d characters", MinPasswordLen)
	case n > MaxPasswordLen:
		return fmt.Sprintf("must be at most %d characters", MaxPasswordLen)
	case username != "" && strings.EqualFold(strings.TrimSpace(password), username):
		return "must not be the same as the username"
	}
	for _, r := range password {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}

// displayNameProblem explains what is wrong with a display name, or "".
func displayNameProblem(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8 text"
	}
	if utf8.RuneCountInString(s) > MaxDisplayNameLen {
		return fmt.Sprintf("must be at most %d characters", MaxDisplayNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}

func roleProblem(r Role) string {
	if r.Valid() {
		return ""
	}
	return fmt.Sprintf("must be one of %s", roleList())
}

func roleList() string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// ValidatePassword checks password against the policy for username, for
// forms that want to report a weak password before submitting anything.
func ValidatePassword(username, password string) error {
	var v errs.Validation
	if p := passwordProblem(NormalizeUsername(username), password); p != "" {
		v.Add("password", "%s", p)
	}
	return v.Err("invalid password")
}

// Normalize trims text fields and lower-cases the username.
func (n *NewUser) Normalize() {
	n.Username = NormalizeUsername(n.Username)
	n.DisplayName = strings.TrimSpace(n.DisplayName)
	n.Role = Role(strings.ToLower(strings.TrimSpace(string(n.Role))))
	n.PolicyRoles = NormalizePolicyRoles(n.PolicyRoles)
}

// Validate reports every problem with n at once, so a form can mark all the
// fields that need fixing.
func (n NewUser) Validate() error {
	var v errs.Validation
	if p := usernameProblem(n.Username); p != "" {
		v.Add("username", "%s", p)
	}
	if p := displayNameProblem(n.DisplayName); p != "" {
		v.Add("display_name", "%s", p)
	}
	if p := roleProblem(n.Role); p != "" {
		v.Add("role", "%s", p)
	}
	if p := passwordProblem(n.Username, n.Password); p != "" {
		v.Add("password", "%s", p)
	}
	policyRolesProblems(&v, n.PolicyRoles)
	return v.Err("invalid user")
}

// Normalize trims the display name and lower-cases the role.
func (u *UserUpdate) Normalize() {
	if u.DisplayName != nil {
		d := strings.TrimSpace(*u.DisplayName)
		u.DisplayName = &d
	}
	if u.Role != nil {
		r := Role(strings.ToLower(strings.TrimSpace(string(*u.Role))))
		u.Role = &r
	}
}

// Validate reports every problem with the fields u sets.
func (u UserUpdate) Validate() error {
	var v errs.Validation
	if u.DisplayName == nil && u.Role == nil && u.Disabled == nil {
		v.Add("update", "names no field to change")
	}
	if u.DisplayName != nil {
		if p := displayNameProblem(*u.DisplayName); p != "" {
			v.Add("display_name", "%s", p)
		}
	}
	if u.Role != nil {
		if p := roleProblem(*u.Role); p != "" {
			v.Add("role", "%s", p)
		}
	}
	return v.Err("invalid user update")
}

// MaxPolicyRoleLen bounds a policy role name, as the policy file does not.
const MaxPolicyRoleLen = 64

// NormalizePolicyRoles trims each name; it keeps empty names and
// duplicates, for Validate to report.
func NormalizePolicyRoles(roles []string) []string {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		out = append(out, strings.TrimSpace(r))
	}
	return out
}

// policyRolesProblems adds what is wrong with a list of held policy
// roles that can be told without the policy: empty, over-long or
// repeated names.
func policyRolesProblems(v *errs.Validation, roles []string) {
	seen := map[string]bool{}
	for i, r := range roles {
		f := fmt.Sprintf("policy_roles[%d]", i)
		switch {
		case r == "":
			v.Add(f, "is empty")
		case len(r) > MaxPolicyRoleLen || !utf8.ValidString(r) || strings.ContainsFunc(r, unicode.IsControl):
			v.Add(f, "is not a policy role name")
		case seen[r]:
			v.Add(f, "names %s twice", r)
		}
		seen[r] = true
	}
}

// PolicyGrants maps each policy role of the policy in force to the
// Patchward role it grants; the account service checks held policy roles
// against it.
type PolicyGrants map[string]Role

// check adds each held role the policy does not define or whose grant
// differs from role: an operator cannot hold laboratory-director, which
// grants approver.
func (g PolicyGrants) check(v *errs.Validation, role Role, held []string) {
	for i, r := range held {
		f := fmt.Sprintf("policy_roles[%d]", i)
		switch grant, ok := g[r]; {
		case !ok:
			v.Add(f, "%q is not a role in the policy in force (roles: %s)", r, g.names())
		case grant != role:
			v.Add(f, "%s grants the Patchward role %s; the user has %s", r, grant, role)
		}
	}
}

func (g PolicyGrants) names() string {
	names := make([]string, 0, len(g))
	for n := range g {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
