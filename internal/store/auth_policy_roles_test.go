package store_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/store"
)

// TestAuthPolicyRoles: an admin assigns policy roles; each must be a role
// of the policy that grants the user's Patchward role; the assignment is
// stored, audited with before and after, and reaches the principal.
func TestAuthPolicyRoles(t *testing.T) {
	eachAuth(t, func(t *testing.T, db *store.DB, raw *sql.DB) {
		ctx := context.Background()
		clk := &testClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
		svc := auth.NewService(db.Auth(), auth.Options{Now: clk.now, Params: cheapParams, PolicyGrants: func(context.Context) (auth.PolicyGrants, error) { return policy.Default().Grants(), nil }})
		sys := audit.System
		appr, err := svc.CreateUser(ctx, sys, auth.NewUser{Username: "sec", Role: auth.RoleApprover, Password: "a long enough password",
			PolicyRoles: []string{" security-officer "}})
		if err != nil {
			t.Fatalf("CreateUser with a policy role: %v", err)
		}
		if diff := cmp.Diff([]string{"security-officer"}, appr.PolicyRoles); diff != "" {
			t.Errorf("created policy roles (-want +got):\n%s", diff)
		}
		op, err := svc.CreateUser(ctx, sys, auth.NewUser{Username: "tech", Role: auth.RoleOperator, Password: "a long enough password"})
		if err != nil {
			t.Fatal(err)
		}
		if op.PolicyRoles == nil || len(op.PolicyRoles) != 0 {
			t.Errorf("new user's policy roles = %#v; want empty, not nil", op.PolicyRoles)
		}
		_, err = svc.CreateUser(ctx, sys, auth.NewUser{Username: "tech2", Role: auth.RoleOperator, Password: "a long enough password",
			PolicyRoles: []string{"laboratory-director"}})
		if errs.KindOf(err) != errs.Invalid {
			t.Errorf("CreateUser operator as laboratory-director = %v; want Invalid", err)
		}
		viewer, err := svc.CreateUser(ctx, sys, auth.NewUser{Username: "view", Role: auth.RoleViewer, Password: "a long enough password"})
		if err != nil {
			t.Fatal(err)
		}
		viewerActor := viewer.Principal().Actor("")

		tests := []struct {
			name    string
			actor   audit.Actor
			user    auth.User
			roles   []string
			kind    errs.Kind
			message string
			want    []string
		}{
			{name: "unknown role", actor: sys, user: appr, roles: []string{"chief-of-staff"}, kind: errs.Invalid, message: "not a role in the policy"},
			{name: "grant differs", actor: sys, user: op, roles: []string{"laboratory-director"}, kind: errs.Invalid, message: "grants the Patchward role approver; the user has operator"},
			{name: "empty name", actor: sys, user: appr, roles: []string{""}, kind: errs.Invalid, message: "is empty"},
			{name: "duplicate", actor: sys, user: appr, roles: []string{"system-owner", "system-owner"}, kind: errs.Invalid, message: "twice"},
			{name: "not an admin", actor: viewerActor, user: appr, roles: []string{"system-owner"}, kind: errs.Forbidden, message: "only an admin"},
			{name: "two roles", actor: sys, user: appr, roles: []string{"security-officer", "laboratory-director"}, want: []string{"security-officer", "laboratory-director"}},
			{name: "operator role", actor: sys, user: op, roles: []string{"it-technician"}, want: []string{"it-technician"}},
			{name: "none", actor: sys, user: op, roles: nil, want: []string{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := auditCounts(t, raw)["user.policy_roles"]
				got, err := svc.SetPolicyRoles(ctx, tt.actor, tt.user.ID, tt.roles)
				if tt.kind != 0 {
					if errs.KindOf(err) != tt.kind || !strings.Contains(errMessage(err), tt.message) {
						t.Fatalf("SetPolicyRoles(%v) = %v; want %v containing %q", tt.roles, err, tt.kind, tt.message)
					}
					if n := auditCounts(t, raw)["user.policy_roles"]; n != before {
						t.Errorf("refused SetPolicyRoles logged %d entries", n-before)
					}
					return
				}
				if err != nil {
					t.Fatalf("SetPolicyRoles(%v): %v", tt.roles, err)
				}
				if diff := cmp.Diff(tt.want, got.PolicyRoles); diff != "" {
					t.Errorf("returned policy roles (-want +got):\n%s", diff)
				}
				stored, err := svc.GetUser(ctx, tt.user.ID)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, stored.PolicyRoles); diff != "" {
					t.Errorf("stored policy roles (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.want, stored.Principal().PolicyRoles); diff != "" && len(tt.want) > 0 {
					t.Errorf("principal's policy roles (-want +got):\n%s", diff)
				}
				if n := auditCounts(t, raw)["user.policy_roles"]; n != before+1 {
					t.Errorf("SetPolicyRoles logged %d entries; want 1", n-before)
				}
				var after sql.NullString
				if err := raw.QueryRow(`SELECT after_json FROM audit_entries WHERE action = 'user.policy_roles' ORDER BY seq DESC LIMIT 1`).Scan(&after); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(after.String, `"policy_roles"`) {
					t.Errorf("audit after = %s; want the policy roles", after.String)
				}
			})
		}
	})
}
