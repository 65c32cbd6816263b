package change

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

func classByName(t *testing.T, p *policy.Compiled, names ...string) []policy.AssetClass {
	t.Helper()
	var out []policy.AssetClass
	for _, n := range names {
		i := slices.IndexFunc(p.Policy().AssetClasses, func(c policy.AssetClass) bool { return c.Name == n })
		if i < 0 {
			t.Fatalf("default policy has no class %q", n)
		}
		out = append(out, p.Policy().AssetClasses[i])
	}
	return out
}

func TestRequirementsAndEvaluate(t *testing.T) {
	p := policy.Default()
	lab := classByName(t, p, "lis-and-analyzers", "patient-care-devices")
	ehr := classByName(t, p, "ehr-servers")
	now := time.Date(2026, 3, 5, 15, 0, 0, 0, time.UTC)
	ok := func(id, role string) Approval { return Approval{ByID: id, Role: role, Decision: Approve, At: now} }
	expired := ok("x", "it-manager")
	expired.ExpiredAt = &now
	for _, tc := range []struct {
		name      string
		typ       Type
		classes   []policy.AssetClass
		approvals []Approval
		quorum    int
		missing   []string
		complete  bool
	}{
		{"normal needs two", Normal, nil, []Approval{ok("a", "it-manager")}, 1, nil, false},
		{"normal with two", Normal, nil, []Approval{ok("a", "it-manager"), ok("b", "system-owner")}, 2, nil, true},
		{"one person counts once", Normal, nil, []Approval{ok("a", "it-manager"), ok("a", "security-officer")}, 1, nil, false},
		{"expired and rejecting do not count", Normal, nil,
			[]Approval{expired, {ByID: "r", Role: "security-officer", Decision: Reject}, ok("b", "system-owner")}, 1, nil, false},
		{"lab classes need their approvers", Normal, lab, []Approval{ok("a", "it-manager"), ok("b", "security-officer")}, 2,
			[]string{"laboratory-director", "clinical-engineer"}, false},
		{"class approver does not count to quorum", Normal, lab[:1],
			[]Approval{ok("a", "it-manager"), ok("d", "laboratory-director")}, 1, nil, false},
		{"lab complete", Normal, lab, []Approval{ok("a", "it-manager"), ok("b", "security-officer"),
			ok("d", "laboratory-director"), ok("e", "clinical-engineer")}, 2, nil, true},
		{"ehr's system owner counts to quorum and class", Normal, ehr,
			[]Approval{ok("a", "it-manager"), ok("s", "system-owner")}, 2, nil, true},
		{"ehr without the system owner", Normal, ehr,
			[]Approval{ok("a", "it-manager"), ok("b", "security-officer")}, 2, []string{"system-owner"}, false},
		{"emergency needs one", Emergency, nil, []Approval{ok("a", "security-officer")}, 1, nil, true},
		{"standard pre-approved", Standard, nil, nil, 0, nil, true},
		{"standard on the lab", Standard, lab[:1], nil, 0, []string{"laboratory-director"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Evaluate(Requirements(p, tc.typ, tc.classes), tc.approvals)
			var missing []string
			for _, m := range st.MissingClass {
				missing = append(missing, m.Role)
			}
			if st.QuorumMet != tc.quorum || st.Complete != tc.complete || !cmp.Equal(missing, tc.missing) {
				t.Errorf("Evaluate = quorum %d, missing %v, complete %v; want %d, %v, %v",
					st.QuorumMet, missing, st.Complete, tc.quorum, tc.missing, tc.complete)
			}
		})
	}
}

func TestRequiredCases(t *testing.T) {
	p := policy.Default()
	for _, tc := range []struct {
		typ     Type
		classes []string
		want    []string
	}{
		{Standard, nil, nil},
		{Normal, nil, []string{"backup-verified", "boot-time", "edr-compatibility", "connectivity"}},
		{Normal, []string{"ehr-servers"}, []string{"backup-verified", "order-entry", "result-routing", "interface-messaging",
			"boot-time", "edr-compatibility", "connectivity"}},
		{Emergency, nil, []string{"backup-verified"}},
		{Emergency, []string{"lis-and-analyzers"}, []string{"backup-verified", "instrument-communication", "qc-run", "order-entry", "result-routing"}},
	} {
		if got := RequiredCases(p, tc.typ, tc.classes); !cmp.Equal(got, tc.want) {
			t.Errorf("RequiredCases(%s, %v) = %v; want %v", tc.typ, tc.classes, got, tc.want)
		}
	}
}

func TestMayDecide(t *testing.T) {
	sod := policy.Default()
	lax, err := policy.Load(bytes.Replace(policy.DefaultSource(), []byte("separation_of_duties: true"), []byte("separation_of_duties: false"), 1))
	if err != nil {
		t.Fatal(err)
	}
	c := Change{RequestedByID: "u-req", EditedBy: []string{"u-ed"}}
	as := func(id string) User { return User{Actor: audit.Actor{Kind: audit.ActorUser, ID: id}, Role: "approver"} }
	for _, tc := range []struct {
		name string
		pol  *policy.Compiled
		user string
		want string // "" when allowed
	}{
		{"requester", sod, "u-req", "you requested this change"},
		{"editor", sod, "u-ed", "you edited this change"},
		{"someone else", sod, "u-other", ""},
		{"requester without separation of duties", lax, "u-req", ""},
		{"editor without separation of duties", lax, "u-ed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := MayDecide(tc.pol, c, as(tc.user))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("MayDecide = %v; want nil", err)
			case tc.want != "" && (errs.KindOf(err) != errs.Forbidden || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("MayDecide = %v; want Forbidden saying %q", err, tc.want)
			}
		})
	}
}
