package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// changeClock is a settable clock safe for the concurrency tests.
type changeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *changeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *changeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func changeUser(id, role string, policyRoles ...string) change.User {
	return change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: id, Name: id}, Role: role, PolicyRoles: policyRoles}
}

// The people of the default policy, each holding one policy role with
// the Patchward role it grants.
var (
	tech     = changeUser("tech", "operator", "it-technician") // requests changes
	itMgr    = changeUser("itmgr", "admin", "it-manager")
	secOff   = changeUser("secoff", "approver", "security-officer")
	sysOwner = changeUser("sysowner", "approver", "system-owner")
	labDir   = changeUser("labdir", "approver", "laboratory-director")
	viewer   = changeUser("viewer", "viewer")
)

// changeFixture is one database with the default policy, a general server,
// a LIS server and an analyzer in the "lab" group.
type changeFixture struct {
	db       *store.DB
	clk      *changeClock
	svc      *change.Service
	pol      *policy.Compiled
	server   string
	lis      string
	analyzer string
	labGroup string
}

func newChangeFixture(t *testing.T, db *store.DB) *changeFixture {
	t.Helper()
	ctx := context.Background()
	clk := &changeClock{t: time.Date(2026, 3, 5, 15, 0, 0, 0, time.UTC)}
	inv := inventory.NewService(db.Inventory(), clk.now)
	g, err := inv.CreateGroup(ctx, admin, inventory.Group{Name: "lab"})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	mk := func(a inventory.Asset) string {
		t.Helper()
		a, err := inv.CreateAsset(ctx, admin, a)
		if err != nil {
			t.Fatalf("CreateAsset %s: %v", a.Name, err)
		}
		return a.ID
	}
	f := &changeFixture{db: db, clk: clk, labGroup: g.ID,
		server:   mk(inventory.Asset{Name: "FILE-01", Type: inventory.TypeServer}),
		lis:      mk(inventory.Asset{Name: "LIS-01", Type: inventory.TypeServer, Tags: []string{"lis"}}),
		analyzer: mk(inventory.Asset{Name: "CHEM-01", Type: inventory.TypeAnalyzer, Groups: []string{g.ID}}),
	}
	policies := policy.NewService(db.Policies(), clk.now)
	f.pol, _, err = policies.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = change.NewService(db.Changes(), policies, db.Risk(), clk.now)
	return f
}

// allCases is a protocol with every case of the default policy, which
// covers every type's required cases on every asset.
func allCases(p *policy.Compiled) []change.TestStep {
	var out []change.TestStep
	for _, tc := range p.Policy().Testing.Cases {
		out = append(out, change.TestStep{CaseID: tc.ID})
	}
	return out
}

// draft returns a complete change of type typ on targets.
func (f *changeFixture) draft(typ change.Type, targets change.Targets) change.Change {
	c := change.Change{Title: "Apply openssl 3.0.15", Type: typ, Targets: targets,
		Patches:        []change.Patch{{Package: "openssl", Ecosystem: "Debian:12", TargetVersion: "3.0.15-1~deb12u1"}},
		TestProtocol:   allCases(f.pol),
		RollbackPlan:   change.RollbackPlan{Triggers: []string{"A test case fails", "Abnormal QC"}, Steps: []string{"Restore the VM snapshot"}, Owner: "it-technician"},
		PreChecks:      []string{"VM snapshot taken and verified"},
		Communication:  change.Communication{Notify: []string{"lab operations"}, UserImpact: "LIS down 10 minutes"},
		PlannedWindows: []change.PlannedWindow{{Window: "servers-weekly"}},
	}
	if typ == change.Emergency {
		c.Emergency = &change.EmergencyInfo{Justification: "KEV-listed, exploited in the wild"}
	}
	return c
}

func (f *changeFixture) create(t *testing.T, typ change.Type, targets change.Targets) change.Change {
	t.Helper()
	by := tech
	if typ == change.Emergency {
		by = secOff
	}
	c, err := f.svc.Create(context.Background(), by, f.draft(typ, targets))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

// passRun records a test run passing every case of c's protocol.
func (f *changeFixture) passRun(t *testing.T, c change.Change) {
	t.Helper()
	run := change.TestRun{}
	for _, s := range c.TestProtocol {
		run.Results = append(run.Results, change.CaseResult{CaseID: s.CaseID, Result: change.ResultPass})
	}
	if _, err := f.svc.RecordTestRun(context.Background(), tech, c.ID, run); err != nil {
		t.Fatalf("RecordTestRun: %v", err)
	}
}

func must(t *testing.T, what string) func(change.Change, error) change.Change {
	return func(c change.Change, err error) change.Change {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return c
	}
}

func wantChangeErr(t *testing.T, what string, err error, kind errs.Kind, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded; want a %s error", what, kind)
	}
	if errs.KindOf(err) != kind {
		t.Fatalf("%s = %v (%s); want a %s error", what, err, errs.KindOf(err), kind)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s error %q does not mention %q", what, err, s)
		}
	}
}

// into drives a fresh normal change on the general server into state s
// through the service, the way people would.
func (f *changeFixture) into(t *testing.T, s change.State) change.Change {
	t.Helper()
	return f.intoWith(t, s, nil)
}

// intoWith is into with the draft adjusted by edit first.
func (f *changeFixture) intoWith(t *testing.T, s change.State, edit func(*change.Change)) change.Change {
	t.Helper()
	ctx := context.Background()
	d := f.draft(change.Normal, change.Targets{Assets: []string{f.server}})
	if edit != nil {
		edit(&d)
	}
	c, err := f.svc.Create(ctx, tech, d)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	step := func(why string) change.Step { return change.Step{Why: why, Revision: c.Revision} }
	switch s {
	case change.Draft:
		return c
	case change.Cancelled:
		return must(t, "Cancel")(f.svc.Cancel(ctx, tech, c.ID, step("not needed")))
	}
	c = must(t, "Submit")(f.svc.Submit(ctx, tech, c.ID, step("ready")))
	switch s {
	case change.Submitted:
		return c
	case change.Rejected:
		return must(t, "Reject")(f.svc.Reject(ctx, secOff, c.ID, change.Decision{Note: "not this month", Revision: c.Revision}))
	}
	c, _, err = f.svc.Approve(ctx, itMgr, c.ID, change.Decision{Revision: c.Revision})
	if err != nil {
		t.Fatalf("Approve 1: %v", err)
	}
	c, _, err = f.svc.Approve(ctx, secOff, c.ID, change.Decision{Revision: c.Revision})
	if err != nil || c.State != change.Approved {
		t.Fatalf("Approve 2 = %s, %v; want approved", c.State, err)
	}
	if s == change.Approved {
		return c
	}
	f.passRun(t, c)
	c = must(t, "Schedule")(f.svc.Schedule(ctx, tech, c.ID, nil, change.Step{Why: "Sunday window", Revision: c.Revision}))
	if s == change.Scheduled {
		return c
	}
	c = must(t, "Start")(f.svc.Start(ctx, tech, c.ID, change.Step{Why: "window open", Revision: c.Revision}))
	switch s {
	case change.InProgress:
		return c
	case change.Completed:
		return must(t, "Complete")(f.svc.Complete(ctx, tech, c.ID, change.Step{Why: "verified", Revision: c.Revision}))
	case change.Halted:
		return must(t, "Halt")(f.svc.Halt(ctx, tech, c.ID, change.Step{Why: "pilot failures", Revision: c.Revision}))
	case change.RolledBack:
		return must(t, "RollBack")(f.svc.RollBack(ctx, tech, c.ID, change.Step{Why: "abnormal QC", Revision: c.Revision}))
	}
	t.Fatalf("into(%s): unknown state", s)
	return c
}

// act performs one action on c through the service. Approval is attempted
// by a single approver; for a submitted normal change the test adds the
// second approval itself.
func (f *changeFixture) act(c change.Change, a change.Action) (change.Change, error) {
	ctx := context.Background()
	st := change.Step{Why: "because", Revision: c.Revision}
	switch a {
	case change.ActSubmit:
		return f.svc.Submit(ctx, tech, c.ID, st)
	case change.ActApprove:
		c, _, err := f.svc.Approve(ctx, itMgr, c.ID, change.Decision{Revision: c.Revision})
		return c, err
	case change.ActReject:
		return f.svc.Reject(ctx, secOff, c.ID, change.Decision{Note: "no", Revision: c.Revision})
	case change.ActReopen:
		edit := c
		edit.Description = "edited"
		return f.svc.Update(ctx, tech, edit, "reopen")
	case change.ActRework:
		return f.svc.Rework(ctx, tech, c.ID, st)
	case change.ActSchedule:
		return f.svc.Schedule(ctx, tech, c.ID, nil, st)
	case change.ActStart:
		return f.svc.Start(ctx, tech, c.ID, st)
	case change.ActComplete:
		return f.svc.Complete(ctx, tech, c.ID, st)
	case change.ActHalt:
		return f.svc.Halt(ctx, tech, c.ID, st)
	case change.ActResume:
		return f.svc.Resume(ctx, tech, c.ID, st)
	case change.ActRollBack:
		return f.svc.RollBack(ctx, tech, c.ID, st)
	case change.ActCancel:
		return f.svc.Cancel(ctx, tech, c.ID, st)
	}
	return c, fmt.Errorf("unknown action %s", a)
}

// TestChangeStateMachine drives the whole table through the real store on
// both engines: every legal move works and is recorded in the history and
// the audit trail; every illegal one is refused with a conflict naming the
// state, and changes nothing.
func TestChangeStateMachine(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newChangeFixture(t, db)
		ctx := context.Background()
		actions := []change.Action{change.ActSubmit, change.ActApprove, change.ActReject, change.ActRework,
			change.ActSchedule, change.ActStart, change.ActComplete, change.ActHalt, change.ActResume,
			change.ActRollBack, change.ActCancel}
		for _, from := range change.States {
			legal := map[change.Action]change.State{}
			for _, m := range change.MovesFrom(from) {
				legal[m.Action] = m.To
			}
			t.Run(string(from), func(t *testing.T) {
				// Illegal moves: one change in this state takes them all.
				c := f.into(t, from)
				for _, a := range actions {
					if _, ok := legal[a]; ok {
						continue
					}
					_, err := f.act(c, a)
					wantChangeErr(t, fmt.Sprintf("%s on a %s change", a, from), err, errs.Conflict, string(from))
				}
				after, err := f.svc.Get(ctx, c.ID)
				if err != nil || after.State != from || after.Revision != c.Revision {
					t.Fatalf("after refused moves: %s rev %d, %v; want %s rev %d unchanged", after.State, after.Revision, err, from, c.Revision)
				}
				// Legal moves: a fresh change each.
				for _, m := range change.MovesFrom(from) {
					c := f.into(t, from)
					got, err := f.act(c, m.Action)
					if err != nil {
						t.Fatalf("%s → %s by %s: %v", from, m.To, m.Action, err)
					}
					if m.Action == change.ActApprove && got.State == change.Submitted {
						// Quorum 2: a second approver completes it.
						got, _, err = f.svc.Approve(ctx, secOff, c.ID, change.Decision{Revision: got.Revision})
						if err != nil {
							t.Fatalf("second approval: %v", err)
						}
					}
					if got.State != m.To {
						t.Fatalf("%s by %s: state %s; want %s", from, m.Action, got.State, m.To)
					}
					hist, err := f.svc.History(ctx, c.ID)
					if err != nil || len(hist) == 0 {
						t.Fatalf("History = %v, %v", hist, err)
					}
					last := hist[len(hist)-1]
					if last.From != from || last.To != m.To || last.Action != m.Action || last.Revision != got.Revision {
						t.Errorf("last transition %+v; want %s -%s-> %s at revision %d", last, from, m.Action, m.To, got.Revision)
					}
					// The audit trail has the move, by whom.
					wantAction := "change." + string(m.Action)
					if m.Action == change.ActReopen {
						wantAction = "change.update"
					}
					p, err := db.Audit().List(ctx, audit.Query{ObjectType: "change", ObjectID: c.ID, Limit: 1})
					if err != nil || len(p.Entries) != 1 || p.Entries[0].Action != wantAction || p.Entries[0].Actor.ID == "" {
						t.Errorf("latest audit entry for %s: %+v, %v; want %s with its actor", m.Action, p.Entries, err, wantAction)
					}
				}
			})
		}
		// Content edits are refused once a change is past approval.
		for _, s := range []change.State{change.Rejected, change.Scheduled, change.Completed, change.Cancelled} {
			c := f.into(t, s)
			c.Description = "late edit"
			_, err := f.svc.Update(ctx, tech, c, "late")
			wantChangeErr(t, "edit of a "+string(s)+" change", err, errs.Conflict, string(s), "can no longer be edited")
		}
		verifyAudit(t, db)
	})
}

func verifyAudit(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	signer := auditSigner(t)
	if _, _, err := audit.NewCheckpointer(db.Audit(), signer, nil, nil).Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if res, err := audit.NewService(db.Audit(), signer.Verifier(), nil).Verify(ctx); err != nil {
		t.Fatalf("audit Verify = %+v, %v", res, err)
	}
}

// TestChangeGuards: what a change lacks to move on is refused with the
// policy rule that requires it.
func TestChangeGuards(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newChangeFixture(t, db)
		ctx := context.Background()

		// Permissions and the emergency authority.
		if _, err := f.svc.Create(ctx, viewer, f.draft(change.Normal, change.Targets{})); errs.KindOf(err) != errs.Forbidden {
			t.Errorf("viewer Create = %v; want forbidden", err)
		}
		_, err := f.svc.Create(ctx, tech, f.draft(change.Emergency, change.Targets{Assets: []string{f.server}}))
		wantChangeErr(t, "operator declaring an emergency", err, errs.Forbidden, "emergency.authority")
		_, err = f.svc.Create(ctx, tech, f.draft(change.Normal, change.Targets{Assets: []string{"no-such-asset"}}))
		wantChangeErr(t, "unknown target", err, errs.Invalid, "no-such-asset")

		// Submit needs targets, patches, a rollback plan and a protocol
		// with the policy's cases for the targets.
		bare := change.Change{Title: "Bare", Type: change.Normal}
		c := must(t, "Create bare")(f.svc.Create(ctx, tech, bare))
		_, err = f.svc.Submit(ctx, tech, c.ID, change.Step{})
		wantChangeErr(t, "Submit bare", err, errs.Invalid, "targets", "patches", "rollback.require_plan", "testing.required_for")
		partial := f.draft(change.Normal, change.Targets{Groups: []string{f.labGroup}})
		partial.TestProtocol = []change.TestStep{{CaseID: "backup-verified"}, {CaseID: "smoke", Name: "Smoke test", Criteria: "The login page loads"}}
		c = must(t, "Create partial")(f.svc.Create(ctx, tech, partial))
		if c.TestProtocol[0].Name != "Backup or snapshot verified" || !c.TestProtocol[1].Custom {
			t.Errorf("protocol = %+v; want the policy case filled in and the custom one marked", c.TestProtocol)
		}
		_, err = f.svc.Submit(ctx, tech, c.ID, change.Step{})
		wantChangeErr(t, "Submit without the analyzer's cases", err, errs.Invalid, "qc-run", "instrument-communication")

		// An emergency change only needs the abbreviated set.
		em := f.draft(change.Emergency, change.Targets{Groups: []string{f.labGroup}})
		em.TestProtocol = nil
		for _, id := range f.pol.Policy().Emergency.Tests {
			em.TestProtocol = append(em.TestProtocol, change.TestStep{CaseID: id})
		}
		c = must(t, "Create emergency")(f.svc.Create(ctx, secOff, em))
		c = must(t, "Submit emergency")(f.svc.Submit(ctx, secOff, c.ID, change.Step{}))
		if c.Emergency == nil || !c.Emergency.GoNoGoBy.Equal(f.clk.now().Add(4*time.Hour)) {
			t.Errorf("emergency record %+v; want go/no-go 4h after declaration", c.Emergency)
		}

		// Schedule checks the windows; Start needs a passing run.
		c = f.into(t, change.Approved)
		_, err = f.svc.Schedule(ctx, tech, c.ID, []change.PlannedWindow{{Window: "no-such-window"}}, change.Step{})
		wantChangeErr(t, "Schedule in an unknown window", err, errs.Invalid, "no-such-window")
		c = must(t, "Schedule")(f.svc.Schedule(ctx, tech, c.ID, nil, change.Step{Revision: c.Revision}))
		_, err = f.svc.Start(ctx, tech, c.ID, change.Step{})
		wantChangeErr(t, "Start without a test run", err, errs.Conflict, "none is recorded")
		run := change.TestRun{Results: []change.CaseResult{{CaseID: "backup-verified", Result: change.ResultFail}}}
		_, err = f.svc.RecordTestRun(ctx, tech, c.ID, run)
		wantChangeErr(t, "failed case without notes", err, errs.Invalid, "needs notes")
		run.Results[0].Notes = "the snapshot did not restore"
		if _, err := f.svc.RecordTestRun(ctx, tech, c.ID, run); err != nil {
			t.Fatalf("RecordTestRun: %v", err)
		}
		_, err = f.svc.Start(ctx, tech, c.ID, change.Step{})
		wantChangeErr(t, "Start after a failed run", err, errs.Conflict, "failed case backup-verified")
		run = change.TestRun{Results: []change.CaseResult{{CaseID: "backup-verified", Result: change.ResultPass,
			Evidence: []change.EvidenceRef{{SHA256: strings.Repeat("ab", 32)}}}}}
		_, err = f.svc.RecordTestRun(ctx, tech, c.ID, run)
		wantChangeErr(t, "run citing evidence not attached", err, errs.Invalid, "not attached")
		run.Results[0].Evidence = nil
		if _, err := f.svc.RecordTestRun(ctx, tech, c.ID, run); err != nil {
			t.Fatalf("RecordTestRun: %v", err)
		}
		_, err = f.svc.Start(ctx, tech, c.ID, change.Step{})
		wantChangeErr(t, "Start after a partial run", err, errs.Conflict, "no pass for", "connectivity")
		_, err = f.svc.RecordTestRun(ctx, tech, c.ID, change.TestRun{Results: []change.CaseResult{{CaseID: "not-in-protocol", Result: change.ResultPass}}})
		wantChangeErr(t, "run of a case outside the protocol", err, errs.Invalid, "not in the change's test protocol")
		f.passRun(t, c)
		c = must(t, "Start")(f.svc.Start(ctx, tech, c.ID, change.Step{}))
		_, err = f.svc.Halt(ctx, tech, c.ID, change.Step{})
		wantChangeErr(t, "Halt without why", err, errs.Invalid, "why")

		// A run made before the last edit does not count.
		c = f.into(t, change.Approved)
		f.passRun(t, c)
		f.clk.advance(time.Minute)
		edit := c
		edit.Communication.Message = "Analyzers offline 02:00-02:30"
		c = must(t, "Update")(f.svc.Update(ctx, tech, edit, "message"))
		c, _, _ = f.svc.Approve(ctx, itMgr, c.ID, change.Decision{Revision: c.Revision})
		c, _, _ = f.svc.Approve(ctx, secOff, c.ID, change.Decision{Revision: c.Revision})
		c = must(t, "Schedule")(f.svc.Schedule(ctx, tech, c.ID, nil, change.Step{}))
		_, err = f.svc.Start(ctx, tech, c.ID, change.Step{})
		wantChangeErr(t, "Start with a run older than the edit", err, errs.Conflict, "predates the last edit")
		f.passRun(t, c)
		c = must(t, "Start")(f.svc.Start(ctx, tech, c.ID, change.Step{}))

		// An emergency not submitted within its go/no-go time box expired.
		late := f.create(t, change.Emergency, change.Targets{Assets: []string{f.server}})
		f.clk.advance(5 * time.Hour)
		_, err = f.svc.Submit(ctx, secOff, late.ID, change.Step{})
		wantChangeErr(t, "Submit after go/no-go", err, errs.Conflict, "go/no-go")
		_, err = f.svc.Halt(ctx, tech, c.ID, change.Step{})
		wantChangeErr(t, "Halt without why", err, errs.Invalid, "why")

		// Complete needs the requested sign-offs, by the right people.
		c = f.intoWith(t, change.InProgress, func(c *change.Change) {
			c.SignOffs = []change.SignOff{{Role: "laboratory-director"}}
		})
		_, err = f.svc.Complete(ctx, tech, c.ID, change.Step{})
		wantChangeErr(t, "Complete without sign-off", err, errs.Conflict, "laboratory-director")
		_, err = f.svc.SignOff(ctx, tech, c.ID, "laboratory-director", "QC ok", 0)
		wantChangeErr(t, "operator signing off as laboratory director", err, errs.Forbidden, "do not hold")
		c = must(t, "SignOff")(f.svc.SignOff(ctx, labDir, c.ID, "laboratory-director", "QC within limits", c.Revision))
		c = must(t, "Complete")(f.svc.Complete(ctx, tech, c.ID, change.Step{Revision: c.Revision}))

		// An emergency change completes only with its post-incident review.
		c = f.create(t, change.Emergency, change.Targets{Assets: []string{f.server}})
		c = must(t, "Submit")(f.svc.Submit(ctx, secOff, c.ID, change.Step{}))
		c, _, err = f.svc.Approve(ctx, itMgr, c.ID, change.Decision{Revision: c.Revision})
		if err != nil || c.State != change.Approved {
			t.Fatalf("emergency Approve = %s, %v; want approved by one approver", c.State, err)
		}
		f.passRun(t, c)
		c = must(t, "Schedule")(f.svc.Schedule(ctx, itMgr, c.ID, []change.PlannedWindow{{Window: "immediate"}}, change.Step{}))
		c = must(t, "Start")(f.svc.Start(ctx, itMgr, c.ID, change.Step{}))
		_, err = f.svc.Complete(ctx, itMgr, c.ID, change.Step{})
		wantChangeErr(t, "emergency Complete without review", err, errs.Conflict, "post-incident review")
		c = must(t, "RecordReview")(f.svc.RecordReview(ctx, itMgr, c.ID, change.Review{Summary: "Patched within 3 hours; no impact"}, c.Revision))
		c = must(t, "Complete")(f.svc.Complete(ctx, itMgr, c.ID, change.Step{Revision: c.Revision}))
		if c.Emergency.PostIncidentReview == nil || c.Emergency.PostIncidentReview.By != "itmgr" {
			t.Errorf("review = %+v", c.Emergency.PostIncidentReview)
		}
		verifyAudit(t, db)
	})
}

// TestChangeApprovals: the policy's approval rules, through the real
// store: quorum, the asset classes' approvers (the laboratory director for
// LIS and analyzers), separation of duties, role grants, expiry on edit,
// the emergency lane's single approver and its go/no-go deadline, and the
// pre-approved standard change.
func TestChangeApprovals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newChangeFixture(t, db)
		ctx := context.Background()
		approve := func(u change.User, c change.Change, as string) (change.Change, change.ApprovalStatus, error) {
			return f.svc.Approve(ctx, u, c.ID, change.Decision{As: as, Revision: c.Revision})
		}

		// Quorum of two; separation of duties; grants; once per person.
		c := f.intoWith(t, change.Submitted, nil)
		_, _, err := f.svc.Approve(ctx, tech, c.ID, change.Decision{Revision: c.Revision})
		wantChangeErr(t, "requester approving", err, errs.Forbidden, "separation_of_duties")
		_, _, err = approve(sysOwner, c, "it-manager")
		wantChangeErr(t, "approver signing as it-manager", err, errs.Forbidden, "do not hold")
		_, _, err = approve(labDir, c, "laboratory-director")
		wantChangeErr(t, "laboratory director on a general server", err, errs.Forbidden, "does not approve")
		_, _, err = approve(secOff, c, "")
		if err != nil {
			t.Fatalf("Approve: %v", err)
		}
		got, st, err := f.svc.Approvals(ctx, c.ID)
		if err != nil || len(got) != 1 || st.QuorumMet != 1 || st.Complete || got[0].Role != "security-officer" {
			t.Fatalf("after one approval: %+v %+v, %v; want security-officer, 1 of 2", got, st, err)
		}
		_, _, err = approve(secOff, c, "")
		wantChangeErr(t, "second approval by the same person", err, errs.Conflict, "already decided")
		_, _, err = approve(sysOwner, change.Change{ID: c.ID, Revision: c.Revision - 1}, "")
		wantChangeErr(t, "approval of a stale revision", err, errs.Conflict, "reload")
		c, st, err = approve(sysOwner, c, "")
		if err != nil || c.State != change.Approved || !st.Complete || st.QuorumMet != 2 {
			t.Fatalf("second approval = %s %+v, %v; want approved", c.State, st, err)
		}

		// Editing an approved change withdraws its approvals, keeps them on
		// record, and returns it to submitted.
		edit := c
		edit.PreChecks = append(edit.PreChecks, "Configuration exported")
		c = must(t, "Update")(f.svc.Update(ctx, tech, edit, "add a pre-check"))
		if c.State != change.Submitted {
			t.Fatalf("edited approved change is %s; want submitted", c.State)
		}
		got, st, _ = f.svc.Approvals(ctx, c.ID)
		if len(got) != 2 || got[0].ExpiredAt == nil || got[1].ExpiredAt == nil || st.QuorumMet != 0 || !strings.Contains(got[0].ExpiredWhy, "add a pre-check") {
			t.Fatalf("approvals after edit: %+v %+v; want both kept, expired", got, st)
		}
		hist, _ := f.svc.History(ctx, c.ID)
		if last := hist[len(hist)-1]; last.Action != change.ActReopen || last.From != change.Approved || last.To != change.Submitted {
			t.Errorf("last transition %+v; want approved -reopen-> submitted", last)
		}
		// The same people approve again, on the new revision.
		c, _, _ = approve(secOff, c, "")
		c, _, err = approve(sysOwner, c, "")
		if err != nil || c.State != change.Approved {
			t.Fatalf("re-approval = %s, %v; want approved", c.State, err)
		}

		// Whoever edits a change may not approve it either.
		sod := f.intoWith(t, change.Submitted, nil)
		sod.Description = "security officer's wording"
		sod = must(t, "Update by the security officer")(f.svc.Update(ctx, secOff, sod, "wording"))
		_, _, err = approve(secOff, sod, "")
		wantChangeErr(t, "editor approving", err, errs.Forbidden, "you edited this change")

		// LIS and analyzer targets need the laboratory director as well;
		// an unnamed role picks the missing class approver first.
		lab := f.create(t, change.Normal, change.Targets{Assets: []string{f.lis}, Groups: []string{f.labGroup}})
		lab = must(t, "Submit")(f.svc.Submit(ctx, tech, lab.ID, change.Step{}))
		lab, _, _ = approve(itMgr, lab, "")
		lab, st, err = approve(secOff, lab, "security-officer")
		if err != nil || lab.State != change.Submitted || st.Complete || len(st.MissingClass) != 1 ||
			st.MissingClass[0] != (change.ClassApprover{Class: "lis-and-analyzers", Role: "laboratory-director"}) {
			t.Fatalf("LIS change after quorum = %s %+v, %v; want submitted, laboratory director missing", lab.State, st, err)
		}
		lab, st, err = approve(labDir, lab, "")
		if err != nil || lab.State != change.Approved || !st.Complete {
			t.Fatalf("laboratory director approval = %s %+v, %v; want approved", lab.State, st, err)
		}
		got, _, _ = f.svc.Approvals(ctx, lab.ID)
		if got[2].Role != "laboratory-director" || got[2].Grant != "approver" {
			t.Errorf("director's approval %+v; want signed as laboratory-director with the approver grant", got[2])
		}

		// A rejection needs a reason; rework starts a new round.
		rej := f.intoWith(t, change.Submitted, nil)
		_, err = f.svc.Reject(ctx, secOff, rej.ID, change.Decision{Revision: rej.Revision})
		wantChangeErr(t, "reject without a note", err, errs.Invalid, "note")
		rej = must(t, "Reject")(f.svc.Reject(ctx, secOff, rej.ID, change.Decision{Note: "collides with the CAP inspection", Revision: rej.Revision}))
		rej = must(t, "Rework")(f.svc.Rework(ctx, tech, rej.ID, change.Step{Why: "move a week"}))
		rej = must(t, "Submit")(f.svc.Submit(ctx, tech, rej.ID, change.Step{}))
		if _, st, _ := f.svc.Approvals(ctx, rej.ID); len(st.Approvers) != 0 {
			t.Errorf("resubmitted change carries approvers %v from the rejected round", st.Approvers)
		}

		// Emergency: one approver of the emergency roles suffices…
		em := f.create(t, change.Emergency, change.Targets{Assets: []string{f.server}})
		em = must(t, "Submit")(f.svc.Submit(ctx, secOff, em.ID, change.Step{}))
		_, _, err = approve(secOff, em, "")
		wantChangeErr(t, "declarer approving their emergency", err, errs.Forbidden, "separation_of_duties")
		_, _, err = approve(sysOwner, em, "system-owner")
		wantChangeErr(t, "system owner on an emergency", err, errs.Forbidden, "does not approve emergency")
		em, _, err = approve(itMgr, em, "")
		if err != nil || em.State != change.Approved {
			t.Fatalf("emergency approval = %s, %v; want approved by one", em.State, err)
		}
		// …but the lab's emergency still needs the laboratory director.
		emLab := f.create(t, change.Emergency, change.Targets{Assets: []string{f.lis}})
		emLab = must(t, "Submit")(f.svc.Submit(ctx, secOff, emLab.ID, change.Step{}))
		emLab, _, _ = approve(itMgr, emLab, "")
		if emLab.State != change.Submitted {
			t.Fatalf("LIS emergency after one approval is %s; want submitted until the director signs", emLab.State)
		}
		// The go/no-go deadline (4h) passes: approval is refused.
		f.clk.advance(4*time.Hour + time.Minute)
		_, _, err = approve(labDir, emLab, "")
		wantChangeErr(t, "approval after go/no-go", err, errs.Conflict, "go/no-go", "expired")
		f.clk.advance(-4*time.Hour - time.Minute)

		// Standard changes are pre-approved, recorded as approved by policy;
		// on a lab asset they still wait for the laboratory director.
		std := f.create(t, change.Standard, change.Targets{Assets: []string{f.server}})
		std = must(t, "Submit")(f.svc.Submit(ctx, tech, std.ID, change.Step{}))
		if std.State != change.Approved {
			t.Fatalf("standard change after submit is %s; want approved (pre-approved)", std.State)
		}
		hist, _ = f.svc.History(ctx, std.ID)
		if last := hist[len(hist)-1]; last.By != "patchward" || !strings.Contains(last.Why, "pre-approved") {
			t.Errorf("pre-approval transition %+v; want by the policy", last)
		}
		stdLab := f.create(t, change.Standard, change.Targets{Assets: []string{f.lis}})
		stdLab = must(t, "Submit")(f.svc.Submit(ctx, tech, stdLab.ID, change.Step{}))
		if stdLab.State != change.Submitted {
			t.Fatalf("standard LIS change after submit is %s; want submitted", stdLab.State)
		}
		stdLab, _, err = approve(labDir, stdLab, "")
		if err != nil || stdLab.State != change.Approved {
			t.Fatalf("director on a standard LIS change = %s, %v; want approved", stdLab.State, err)
		}

		// Listing by asset finds changes through their groups.
		list, err := f.svc.List(ctx, change.Filter{Asset: f.analyzer})
		if err != nil || len(list) != 1 || list[0].ID != lab.ID {
			t.Errorf("List(analyzer) = %d changes, %v; want the lab change", len(list), err)
		}
		list, err = f.svc.List(ctx, change.Filter{Type: change.Emergency, State: change.Approved})
		if err != nil || len(list) != 1 || list[0].ID != em.ID {
			t.Errorf("List(approved emergencies) = %d, %v; want 1", len(list), err)
		}
		verifyAudit(t, db)
	})
}

// TestChangeRiskRating: the rating is the most urgent of the linked
// findings' risk records, with the policy version it was computed under.
func TestChangeRiskRating(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newChangeFixture(t, db)
		ctx := context.Background()
		now := f.clk.now()
		rec := func(id, tier string, rank int, score float64) risk.Record {
			return risk.Record{FindingID: id, AssetID: f.server, VulnID: "CVE-" + id, Status: risk.StatusOpen,
				Assessment: risk.Assessment{Mode: "score", Tier: tier, Rank: rank, Score: score}, PolicyVersion: 3,
				FirstSeen: now, ClockStart: now, DueAt: now.Add(time.Hour), ComputedAt: now}
		}
		err := db.Risk().Transact(ctx, func(tx risk.Tx) error {
			return tx.PutRecords(ctx, []risk.Record{rec("f1", "high", 1, 65), rec("f2", "critical", 0, 72), rec("f3", "critical", 0, 90)})
		})
		if err != nil {
			t.Fatal(err)
		}
		d := f.draft(change.Normal, change.Targets{Assets: []string{f.server}})
		d.Findings = []string{"f1", "f2", "f3", "never-assessed"}
		d.Risk = change.RiskRating{Tier: "low"} // ignored: the service computes it
		c := must(t, "Create")(f.svc.Create(ctx, tech, d))
		want := change.RiskRating{Tier: "critical", Rank: 0, Score: 90, FindingID: "f3", Findings: 3, PolicyVersion: 3, ComputedAt: now}
		if c.Risk != want {
			t.Errorf("Risk = %+v; want %+v", c.Risk, want)
		}
		back, err := f.svc.Get(ctx, c.ID)
		if err != nil || back.Risk != want {
			t.Errorf("stored Risk = %+v, %v; want %+v", back.Risk, err, want)
		}
	})
}

// TestChangeEvidence: evidence is stored once per SHA-256, bounded in size,
// and its hash is checked on every read: one changed byte in storage is
// reported, never served.
func TestChangeEvidence(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newChangeFixture(t, db)
		ctx := context.Background()
		a := f.into(t, change.Submitted)
		b := f.into(t, change.Draft)
		qc := []byte("Level 1 glucose 98 mg/dL (85-105) PASS\nLevel 2 glucose 301 mg/dL (280-320) PASS\n")
		sum := sha256.Sum256(qc)
		e, err := f.svc.AddEvidence(ctx, tech, a.ID, "qc-2026-03-05.txt", "text/plain", bytes.NewReader(qc))
		if err != nil || e.SHA256 != hex.EncodeToString(sum[:]) || e.Size != int64(len(qc)) || e.UploadedBy != "tech" {
			t.Fatalf("AddEvidence = %+v, %v", e, err)
		}
		again, err := f.svc.AddEvidence(ctx, tech, a.ID, "copy.txt", "text/plain", bytes.NewReader(qc))
		if err != nil || again != e {
			t.Errorf("attaching the same bytes again = %+v, %v; want the existing record", again, err)
		}
		if _, err := f.svc.AddEvidence(ctx, tech, b.ID, "qc.txt", "text/plain", bytes.NewReader(qc)); err != nil {
			t.Fatalf("AddEvidence to a second change: %v", err)
		}
		got, r, err := f.svc.GetEvidence(ctx, a.ID, e.SHA256)
		if err != nil || got != e {
			t.Fatalf("GetEvidence = %+v, %v", got, err)
		}
		if body, _ := io.ReadAll(r); !bytes.Equal(body, qc) {
			t.Errorf("GetEvidence bytes = %q; want %q", body, qc)
		}

		// A test run may cite it.
		run := change.TestRun{Results: []change.CaseResult{{CaseID: "qc-run", Result: change.ResultPass,
			Evidence: []change.EvidenceRef{{SHA256: e.SHA256, Name: e.Name}}}}}
		if _, err := f.svc.RecordTestRun(ctx, tech, a.ID, run); err != nil {
			t.Fatalf("RecordTestRun citing evidence: %v", err)
		}
		runs, err := f.svc.TestRuns(ctx, a.ID)
		if err != nil || len(runs) != 1 || runs[0].Results[0].Evidence[0].SHA256 != e.SHA256 {
			t.Errorf("TestRuns = %+v, %v", runs, err)
		}

		// Too large, empty, unnamed.
		_, err = f.svc.AddEvidence(ctx, tech, a.ID, "big.bin", "", io.LimitReader(zeros{}, change.MaxEvidence+1))
		wantChangeErr(t, "oversized evidence", err, errs.TooLarge, "20 MiB")
		_, err = f.svc.AddEvidence(ctx, tech, a.ID, "empty.txt", "text/plain", strings.NewReader(""))
		wantChangeErr(t, "empty evidence", err, errs.Invalid, "empty")
		_, err = f.svc.AddEvidence(ctx, tech, a.ID, "../etc/passwd", "text/plain", strings.NewReader("x"))
		wantChangeErr(t, "path in the name", err, errs.Invalid, "name")
		_, _, err = f.svc.GetEvidence(ctx, a.ID, strings.Repeat("0", 64))
		wantChangeErr(t, "unknown evidence", err, errs.NotFound)

		// One changed byte in storage is detected, for every change citing
		// it: both changes share the one stored copy.
		tampered := bytes.Clone(qc)
		tampered[30] = '9'
		if err := db.ExecRaw(ctx, `UPDATE evidence_blobs SET content = $1 WHERE sha256 = $2`, tampered, e.SHA256); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{a.ID, b.ID} {
			_, _, err = f.svc.GetEvidence(ctx, id, e.SHA256)
			if !errors.Is(err, change.ErrTampered) {
				t.Errorf("GetEvidence of tampered bytes = %v; want ErrTampered", err)
			}
		}
		verifyAudit(t, db)
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestChangeConcurrency races approvers and editors on both engines. Every
// outcome must be one the state machine allows, with approvals and state
// consistent and the audit trail intact.
func TestChangeConcurrency(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newChangeFixture(t, db)
		ctx := context.Background()
		const rounds = 8

		// Two approvers at once on a change that needs exactly two: both
		// count and it is approved exactly once. A third racing them may
		// only lose with a conflict.
		for i := range rounds {
			c := f.into(t, change.Submitted)
			var wg sync.WaitGroup
			errc := make([]error, 3)
			for j, u := range []change.User{itMgr, secOff, sysOwner} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _, errc[j] = f.svc.Approve(ctx, u, c.ID, change.Decision{Revision: c.Revision})
				}()
			}
			wg.Wait()
			ok := 0
			for _, err := range errc {
				switch {
				case err == nil:
					ok++
				case errs.KindOf(err) != errs.Conflict:
					t.Fatalf("round %d: racing approval failed with %v; want success or conflict", i, err)
				}
			}
			got, _ := f.svc.Get(ctx, c.ID)
			as, st, _ := f.svc.Approvals(ctx, c.ID)
			hist, _ := f.svc.History(ctx, c.ID)
			approvedTimes := 0
			for _, h := range hist {
				if h.To == change.Approved {
					approvedTimes++
				}
			}
			if got.State != change.Approved || ok != 2 || len(as) != 2 || !st.Complete || approvedTimes != 1 {
				t.Fatalf("round %d: %s with %d successes, %d approvals, %d approved transitions; want approved once by two",
					i, got.State, ok, len(as), approvedTimes)
			}
		}

		// One person double-clicking: one approval, one conflict.
		c := f.into(t, change.Submitted)
		var wg sync.WaitGroup
		errc := make([]error, 2)
		for j := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errc[j] = f.svc.Approve(ctx, secOff, c.ID, change.Decision{Revision: c.Revision})
			}()
		}
		wg.Wait()
		if as, _, _ := f.svc.Approvals(ctx, c.ID); (errc[0] == nil) == (errc[1] == nil) || len(as) != 1 {
			t.Fatalf("double click: errors %v, %d approvals; want one of each", errc, len(as))
		}

		// An edit racing the approval that would complete the quorum: either
		// the approval wins (approved; the edit is refused as stale) or the
		// edit wins (submitted with every approval expired; the approval is
		// refused as stale). Never both, never neither.
		outcomes := map[string]int{}
		for i := range rounds {
			c := f.into(t, change.Submitted)
			c, _, err := f.svc.Approve(ctx, itMgr, c.ID, change.Decision{Revision: c.Revision})
			if err != nil {
				t.Fatal(err)
			}
			var appErr, editErr error
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, _, appErr = f.svc.Approve(ctx, secOff, c.ID, change.Decision{Revision: c.Revision})
			}()
			go func() {
				defer wg.Done()
				edit := c
				edit.Patches = append(edit.Patches, change.Patch{Package: "libssl3", Ecosystem: "Debian:12", TargetVersion: "3.0.15-1~deb12u1"})
				_, editErr = f.svc.Update(ctx, tech, edit, "add libssl3")
			}()
			wg.Wait()
			got, _ := f.svc.Get(ctx, c.ID)
			as, st, _ := f.svc.Approvals(ctx, c.ID)
			switch {
			case appErr == nil && errs.KindOf(editErr) == errs.Conflict:
				if got.State != change.Approved || !st.Complete || len(got.Patches) != 1 {
					t.Fatalf("round %d: approval won but change is %s with %d patches, status %+v", i, got.State, len(got.Patches), st)
				}
				outcomes["approval first"]++
			case editErr == nil && errs.KindOf(appErr) == errs.Conflict:
				if got.State != change.Submitted || st.QuorumMet != 0 || len(as) != 1 || as[0].ExpiredAt == nil || len(got.Patches) != 2 {
					t.Fatalf("round %d: edit won but change is %s, approvals %+v", i, got.State, as)
				}
				outcomes["edit first"]++
			default:
				t.Fatalf("round %d: approval %v, edit %v; want exactly one to win", i, appErr, editErr)
			}
		}
		t.Logf("edit/approval race outcomes: %v", outcomes)
		verifyAudit(t, db)
	})
}
