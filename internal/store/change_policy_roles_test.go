package store_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestChangePolicyRolesHeld: approving, signing off and declaring an
// emergency take holding the policy role, not merely the Patchward role it
// grants; an unnamed approval signs as a held role, a quorum role first.
func TestChangePolicyRolesHeld(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newChangeFixture(t, db)
		ctx := context.Background()
		inv := inventory.NewService(db.Inventory(), f.clk.now)
		ehr, err := inv.CreateAsset(ctx, admin, inventory.Asset{Name: "EHR-01", Type: inventory.TypeServer, Tags: []string{"ehr"}})
		if err != nil {
			t.Fatal(err)
		}
		secLab := changeUser("seclab", "approver", "security-officer", "laboratory-director")
		bare := changeUser("bare", "approver")

		type sign struct {
			by change.User
			as string
		}
		tests := []struct {
			name    string
			typ     change.Type
			targets change.Targets
			signs   []sign // all but the last succeed
			kind    errs.Kind
			message string
			roles   []string // the roles signed as, in order
			state   change.State
		}{
			{name: "approver without laboratory-director", typ: change.Normal, targets: change.Targets{Assets: []string{f.lis}},
				signs: []sign{{secOff, "laboratory-director"}}, kind: errs.Forbidden, message: "do not hold"},
			{name: "approver holding nothing", typ: change.Normal, targets: change.Targets{Assets: []string{f.server}},
				signs: []sign{{bare, ""}}, kind: errs.Forbidden, message: "an admin assigns policy roles"},
			{name: "held role the change does not need", typ: change.Normal, targets: change.Targets{Assets: []string{f.server}},
				signs: []sign{{labDir, ""}}, kind: errs.Forbidden, message: "it-manager, security-officer, system-owner"},
			{name: "default picks a held quorum role first", typ: change.Normal, targets: change.Targets{Assets: []string{f.lis}},
				signs: []sign{{secLab, ""}}, roles: []string{"security-officer"}, state: change.Submitted},
			{name: "default picks the missing class approver once the quorum is met", typ: change.Normal, targets: change.Targets{Assets: []string{f.lis}},
				signs: []sign{{itMgr, ""}, {sysOwner, ""}, {secLab, ""}}, roles: []string{"it-manager", "system-owner", "laboratory-director"}, state: change.Approved},
			{name: "emergency on the EHR completes with its holders", typ: change.Emergency, targets: change.Targets{Assets: []string{ehr.ID}},
				signs: []sign{{changeUser("secoff2", "approver", "security-officer"), ""}, {sysOwner, ""}}, roles: []string{"security-officer", "system-owner"}, state: change.Approved},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := f.create(t, tt.typ, tt.targets)
				by := tech
				if tt.typ == change.Emergency {
					by = secOff
				}
				c = must(t, "Submit")(f.svc.Submit(ctx, by, c.ID, change.Step{}))
				for i, s := range tt.signs {
					next, _, err := f.svc.Approve(ctx, s.by, c.ID, change.Decision{As: s.as, Revision: c.Revision})
					if i == len(tt.signs)-1 && tt.kind != 0 {
						wantChangeErr(t, "Approve", err, tt.kind, tt.message)
						return
					}
					if err != nil {
						t.Fatalf("Approve by %s as %q: %v", s.by.Actor.ID, s.as, err)
					}
					c = next
				}
				got, _, err := f.svc.Approvals(ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				var roles []string
				for _, a := range got {
					roles = append(roles, a.Role)
				}
				if diff := cmp.Diff(tt.roles, roles); diff != "" || c.State != tt.state {
					t.Errorf("signed as (-want +got):\n%s\nstate = %s; want %s", diff, c.State, tt.state)
				}
			})
		}

		t.Run("sign-off as a role not held", func(t *testing.T) {
			c := f.intoWith(t, change.InProgress, func(c *change.Change) {
				c.SignOffs = []change.SignOff{{Role: "laboratory-director"}}
			})
			_, err := f.svc.SignOff(ctx, secOff, c.ID, "laboratory-director", "QC ok", c.Revision)
			wantChangeErr(t, "SignOff", err, errs.Forbidden, "do not hold")
			if _, err := f.svc.SignOff(ctx, labDir, c.ID, "laboratory-director", "QC ok", c.Revision); err != nil {
				t.Errorf("SignOff by the laboratory director: %v", err)
			}
		})

		t.Run("emergency authority is held", func(t *testing.T) {
			_, err := f.svc.Create(ctx, bare, f.draft(change.Emergency, change.Targets{Assets: []string{f.server}}))
			wantChangeErr(t, "Create emergency", err, errs.Forbidden, "emergency.authority")
		})

		t.Run("SigningRoles", func(t *testing.T) {
			c := f.intoWith(t, change.Submitted, func(c *change.Change) { c.Targets = change.Targets{Assets: []string{f.lis}} })
			_, st, err := f.svc.Approvals(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			all := changeUser("all", "approver", "laboratory-director", "system-owner", "security-officer", "clinical-engineer")
			if diff := cmp.Diff([]string{"security-officer", "system-owner", "laboratory-director"}, change.SigningRoles(f.pol, st, all)); diff != "" {
				t.Errorf("SigningRoles (-want +got):\n%s", diff)
			}
			if got := change.SigningRoles(f.pol, st, bare); len(got) != 0 {
				t.Errorf("SigningRoles of a user holding nothing = %v; want none", got)
			}
		})

		t.Run("update audit entry keeps the change's shape", func(t *testing.T) {
			c := f.intoWith(t, change.Submitted, nil)
			c, _, err := f.svc.Approve(ctx, secOff, c.ID, change.Decision{Revision: c.Revision})
			if err != nil {
				t.Fatal(err)
			}
			c.PreChecks = append(c.PreChecks, "Backup verified")
			c = must(t, "Update")(f.svc.Update(ctx, tech, c, "add a backup check"))
			entries, err := audit.NewService(db.Audit(), nil, nil).List(ctx, audit.Query{ObjectType: "change", ObjectID: c.ID, Action: "change.update"})
			if err != nil || len(entries.Entries) != 1 {
				t.Fatalf("change.update entries = %+v, %v; want one", entries, err)
			}
			e := entries.Entries[0]
			var before, after map[string]any
			if err := json.Unmarshal(e.Before, &before); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(e.After, &after); err != nil {
				t.Fatal(err)
			}
			keys := func(m map[string]any) []string {
				var out []string
				for k := range m {
					out = append(out, k)
				}
				slices.Sort(out)
				return out
			}
			if diff := cmp.Diff(keys(before), keys(after)); diff != "" {
				t.Errorf("change.update Before and After keys differ (-before +after):\n%s", diff)
			}
			if after["id"] != c.ID || !strings.Contains(e.Reason, "add a backup check (1 approval withdrawn)") {
				t.Errorf("change.update after id %v, reason %q; want the change and the withdrawn count", after["id"], e.Reason)
			}
		})
	})
}
