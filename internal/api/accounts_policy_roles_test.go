package api_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestPolicyRolesAPI: an approver who does not hold laboratory-director
// cannot sign as it; an admin gives it to them (checked against the
// policy in force), and then they can.
func TestPolicyRolesAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newChangeEnv(t, db)
		var users []auth.User
		e.do("root", "GET", "/users", nil, http.StatusOK, &users)
		id := func(name string) string {
			i := slices.IndexFunc(users, func(u auth.User) bool { return u.Username == name })
			if i < 0 {
				t.Fatalf("no user %s", name)
			}
			return users[i].ID
		}
		bob, olga := id("bob"), id("olga")

		chem, err := e.a.Inventory.CreateAsset(context.Background(), audit.System, inventory.Asset{Name: "CHEM-01", Type: inventory.TypeAnalyzer})
		if err != nil {
			t.Fatal(err)
		}
		body := e.draftJSON(change.Normal, chem.ID)
		var protocol []map[string]any
		for _, tc := range policy.Default().Policy().Testing.Cases {
			protocol = append(protocol, map[string]any{"case_id": tc.ID})
		}
		body["test_protocol"] = protocol
		var c change.Change
		e.check(e.call("ann", "POST", "/changes", "", body), "POST /changes", http.StatusCreated, &c)
		r, _ := e.act("ann", c, "submit", map[string]any{"why": "ready for CAB"}, http.StatusOK)
		c = r.Change
		_, eb := e.act("bob", c, "approve", map[string]any{"as": "laboratory-director"}, http.StatusForbidden)
		wantMsg(t, "approval as a role not held", eb, "laboratory-director", "do not hold", "an admin assigns policy roles")

		for _, tc := range []struct {
			name   string
			by     string
			user   string
			roles  []string
			status int
			msg    string
		}{
			{"unknown role", "root", bob, []string{"chief-of-staff"}, http.StatusBadRequest, "not a role in the policy in force"},
			{"grant differs from the user's role", "root", olga, []string{"laboratory-director"}, http.StatusBadRequest, "grants the Patchward role approver; the user has operator"},
			{"not an admin", "bob", bob, []string{"laboratory-director"}, http.StatusForbidden, ""},
			{"admin assigns", "root", bob, []string{"system-owner", "laboratory-director"}, http.StatusOK, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var u auth.User
				eb := e.do(tc.by, "PUT", "/users/"+tc.user+"/policy-roles", api.PolicyRolesRequest{PolicyRoles: tc.roles}, tc.status, &u)
				if tc.status != http.StatusOK {
					wantMsg(t, tc.name, eb, tc.msg)
					return
				}
				var got api.PolicyRolesRequest
				e.do("root", "GET", "/users/"+tc.user+"/policy-roles", nil, http.StatusOK, &got)
				if diff := cmp.Diff(tc.roles, got.PolicyRoles); diff != "" {
					t.Errorf("policy roles read back (-want +got):\n%s", diff)
				}
			})
		}

		r, _ = e.act("bob", c, "approve", map[string]any{"as": "laboratory-director"}, http.StatusOK)
		if r.ApprovalStatus == nil || len(r.ApprovalStatus.MissingClass) != 0 {
			t.Errorf("after the laboratory director's approval: %+v; want no class approver missing", r.ApprovalStatus)
		}
	})
}
