package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
)

// startingChanges is the change service as main wires it for the UI:
// starting a change starts its rollout.
type startingChanges struct {
	*change.Service
	ro *deploy.Rollouts
}

func (s startingChanges) Start(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error) {
	if _, err := s.ro.Start(ctx, u, id, st.Why); err != nil {
		return change.Change{}, err
	}
	return s.Service.Get(ctx, id)
}

// rolloutEnv is changeEnv with the real rollout engine and fleet on the
// same database. No asset has an enrolled agent, so every item of a
// rollout is a manual task.
type rolloutEnv struct {
	*changeEnv
	rollouts *deploy.Rollouts
}

func newRolloutEnv(t *testing.T) *rolloutEnv {
	t.Helper()
	var ro *deploy.Rollouts
	e := newChangeEnvWith(t, func(db *store.DB, cfg *Config) {
		now := func() time.Time { return riskNow }
		fl := fleet.NewService(db.Fleet(), fleet.Options{Now: now})
		svc := cfg.Changes.(*change.Service)
		ro = deploy.NewRollouts(db.Rollouts(), svc, fl, cfg.Policy.(deploy.Policies), deploy.RolloutOptions{Now: now})
		cfg.Changes = startingChanges{svc, ro}
		cfg.Rollouts, cfg.Jobs = ro, fl
	})
	return &rolloutEnv{changeEnv: e, rollouts: ro}
}

// scheduled drives a change on the front desk PC and the analyzer to
// scheduled: created from findings, approved by two, tested.
func (e *rolloutEnv) scheduled() string {
	e.t.Helper()
	ctx := context.Background()
	vals, _ := e.newForm(auth.RoleAdmin, "finding=f-ssl-pc&finding=f-ssl-chem")
	vals.Set("window", "servers-weekly")
	id := e.create(auth.RoleAdmin, vals)
	c, err := e.changes.Submit(ctx, user(auth.RoleAdmin), id, change.Step{Revision: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range []struct{ who, as string }{{"u-appr-1", "security-officer"}, {"u-appr-2", "system-owner"}, {"u-appr-3", "laboratory-director"}} {
		u := change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: a.who, Name: a.who}, Role: "approver", PolicyRoles: []string{a.as}}
		if c, _, err = e.changes.Approve(ctx, u, id, change.Decision{As: a.as, Revision: c.Revision}); err != nil {
			e.t.Fatalf("approve as %s: %v", a.as, err)
		}
	}
	run := change.TestRun{}
	for _, s := range c.TestProtocol {
		run.Results = append(run.Results, change.CaseResult{CaseID: s.CaseID, Result: change.ResultPass})
	}
	if _, err := e.changes.RecordTestRun(ctx, user(auth.RoleOperator), id, run); err != nil {
		e.t.Fatal(err)
	}
	if c, err = e.changes.Schedule(ctx, user(auth.RoleOperator), id, nil, change.Step{Revision: c.Revision}); err != nil || c.State != change.Scheduled {
		e.t.Fatalf("schedule: %s, %v", c.State, err)
	}
	return id
}

func ids(s *goquery.Selection) []string {
	return s.Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("id", "") })
}

// TestDeploymentSection starts a change from its page and steers the
// rollout: the Deployment section replaces the change's own halt and
// roll back, offers only the operations that apply to whoever may
// operate, refuses a pause without a why, records a manual task's
// outcome, lists what has not converged and links each asset's log.
func TestDeploymentSection(t *testing.T) {
	e := newRolloutEnv(t)
	id := e.scheduled()
	doc := e.page(id, auth.RoleOperator)
	if doc.Find("#deployment").Length() != 0 {
		t.Error("a scheduled change shows a Deployment section")
	}
	doc = e.act(id, auth.RoleOperator, "start", "pilot first")
	ro, err := e.rollouts.ByChange(context.Background(), id)
	if err != nil {
		t.Fatalf("no rollout after starting from the page: %v", err)
	}
	dep := doc.Find("#deployment")
	if dep.AttrOr("data-rollout-id", "") != ro.ID || dep.AttrOr("data-state", "") != "running" {
		t.Fatalf("deployment section: rollout %q state %q; want %s running", dep.AttrOr("data-rollout-id", ""), dep.AttrOr("data-state", ""), ro.ID)
	}
	if n := dep.Find(".wave").Length(); n != len(ro.Waves) {
		t.Errorf("waves shown = %d; want %d", n, len(ro.Waves))
	}
	// Of the change's own moves only halt is left (it halts the rollout
	// with it); the rollout's operations stand in for the others.
	if diff := cmp.Diff([]string{"act-halt"}, ids(doc.Find("#actions form"))); diff != "" {
		t.Errorf("change-level actions while the rollout runs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"rollout-pause", "rollout-roll_back", "rollout-abort"}, ids(doc.Find("#rollout-ops form"))); diff != "" {
		t.Errorf("operations on a running rollout (-want +got):\n%s", diff)
	}
	if doc.Find("#rollout-steers").Length() != 1 {
		t.Error("no word on why the change's halt and resume are not offered")
	}
	// Every item is a manual task here (no agents); each is open, with a
	// form for the operator and a log link.
	var open *goquery.Selection
	dep.Find(`tr[data-item-id]`).Each(func(_ int, tr *goquery.Selection) {
		if tr.AttrOr("data-kind", "") != "manual" {
			t.Errorf("item %s kind %q; want manual", tr.AttrOr("data-item-id", ""), tr.AttrOr("data-kind", ""))
		}
		if tr.AttrOr("data-state", "") == "open" && open == nil {
			open = tr
		}
		if href := tr.Find("td a").AttrOr("href", ""); href != logURL(id, tr.AttrOr("data-asset-id", "")) {
			t.Errorf("log link = %q", href)
		}
	})
	if open == nil {
		t.Fatalf("no open manual item:\n%s", text(dep))
	}
	itemID, assetID := open.AttrOr("data-item-id", ""), open.AttrOr("data-asset-id", "")
	if open.Find("form#manual-"+itemID).Length() != 1 {
		t.Fatal("no outcome form on an open manual item")
	}
	// Roles without change:operate see the rollout but get no forms.
	for _, role := range []auth.Role{auth.RoleApprover, auth.RoleViewer, auth.RoleAuditor} {
		d := e.page(id, role)
		if d.Find("#deployment").Length() != 1 {
			t.Errorf("%s does not see the deployment", role)
		}
		if n := d.Find("#rollout-ops form, form.manual").Length(); n != 0 {
			t.Errorf("%s is offered %d rollout forms", role, n)
		}
	}
	// Forged: an approver posting a pause; a change-level complete while
	// waves still run (the rollout completes the change itself).
	w := e.post("/changes/"+id+"/rollout", auth.RoleApprover, url.Values{"op": {"pause"}, "rollout": {ro.ID}, "why": {"x"}})
	wantStatus(t, w, http.StatusForbidden)
	c, _ := e.changes.Get(context.Background(), id)
	w = e.post("/changes/"+id+"/act", auth.RoleOperator, url.Values{"action": {"complete"}, "revision": {itoa(c.Revision)}})
	wantStatus(t, w, http.StatusConflict)
	if got := text(parse(t, w).Find("#change-error")); !strings.Contains(got, "is being deployed by rollout") {
		t.Errorf("change-level complete message = %q", got)
	}
	// A change-level halt acts through the rollout, and needs a why.
	w = e.post("/changes/"+id+"/act", auth.RoleOperator, url.Values{"action": {"halt"}, "revision": {itoa(c.Revision)}, "why": {" "}})
	wantStatus(t, w, http.StatusBadRequest)
	// A pause needs a why; the refusal keeps the form.
	w = e.post("/changes/"+id+"/rollout", auth.RoleOperator, url.Values{"op": {"pause"}, "rollout": {ro.ID}, "why": {"  "}})
	wantStatus(t, w, http.StatusBadRequest)
	if got := text(parse(t, w).Find("#change-error")); !strings.Contains(got, "say why the rollout is paused") {
		t.Errorf("pause without why = %q", got)
	}
	vals := formValues(e.page(id, auth.RoleOperator).Find("#rollout-pause"))
	vals.Set("why", "Lab asks to wait for the QC run")
	w = e.post("/changes/"+id+"/rollout", auth.RoleOperator, vals)
	wantStatus(t, w, http.StatusSeeOther)
	doc = e.page(id, auth.RoleOperator)
	if got := doc.Find("#deployment").AttrOr("data-state", ""); got != "paused" {
		t.Errorf("after pause: %q", got)
	}
	if got := text(doc.Find("#rollout-reason")); got != "Lab asks to wait for the QC run" {
		t.Errorf("reason = %q", got)
	}
	if diff := cmp.Diff([]string{"rollout-resume", "rollout-roll_back", "rollout-abort"}, ids(doc.Find("#rollout-ops form"))); diff != "" {
		t.Errorf("operations on a paused rollout (-want +got):\n%s", diff)
	}
	// A second pause from a stale page is refused by the engine.
	w = e.post("/changes/"+id+"/rollout", auth.RoleOperator, vals)
	wantStatus(t, w, http.StatusConflict)
	if got := text(parse(t, w).Find("#change-error")); !strings.Contains(got, "cannot pause a rollout that is paused") {
		t.Errorf("second pause = %q", got)
	}
	vals = formValues(doc.Find("#rollout-resume"))
	vals.Set("why", "QC run passed")
	wantStatus(t, e.post("/changes/"+id+"/rollout", auth.RoleOperator, vals), http.StatusSeeOther)

	// The manual outcome: a note is required, then it is recorded.
	doc = e.page(id, auth.RoleOperator)
	form := doc.Find("form#manual-" + itemID)
	vals = formValues(form)
	vals.Set("outcome", "done")
	w = e.post("/changes/"+id+"/rollout/manual", auth.RoleOperator, vals)
	wantStatus(t, w, http.StatusBadRequest)
	if got := text(parse(t, w).Find("#change-error")); !strings.Contains(got, "a note of up to 2000 characters is required") {
		t.Errorf("outcome without note = %q", got)
	}
	vals.Set("note", "Vendor engineer installed openssl 3.0.13-1 on site; analyzer self-test OK")
	w = e.post("/changes/"+id+"/rollout/manual", auth.RoleOperator, vals)
	wantStatus(t, w, http.StatusSeeOther)
	doc = e.page(id, auth.RoleViewer)
	row := doc.Find(`#deployment tr[data-item-id="` + itemID + `"]`)
	if got := row.AttrOr("data-state", ""); got != "done" {
		t.Errorf("item state after outcome = %q", got)
	}
	if got := text(row.Find(".outcome")); !strings.Contains(got, "Vendor engineer installed") || !strings.Contains(got, "by operator") {
		t.Errorf("outcome shown = %q", got)
	}
	// Done, but no inventory shows the fixed version (the asset lists no
	// software at all): not converged, with why.
	nc := doc.Find(`#not-converged tr[data-asset-id="` + assetID + `"]`)
	if got := text(nc.Find("td").Last()); !strings.Contains(got, "openssl") && got != "no inventory newer than the deployment yet" {
		t.Errorf("not-converged reason = %q", got)
	}

	// The asset's log: planned, opened and recorded, by whom.
	w = e.get(logURL(id, assetID), auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	ld := parse(t, w)
	events := ld.Find("#log-table tbody tr").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("data-event", "") })
	if diff := cmp.Diff([]string{"planned", "manual_task_open", "manual_task_done"}, events); diff != "" {
		t.Errorf("log events (-want +got):\n%s", diff)
	}
	if got := text(ld.Find(`#log-table tr[data-event="manual_task_done"] .actor`)); got != "operator" {
		t.Errorf("recorded by = %q", got)
	}
	if got := text(ld.Find(`#log-table tr[data-event="planned"] .packages`)); !strings.Contains(got, "openssl 3.0.13-1") {
		t.Errorf("planned packages = %q", got)
	}
	wantStatus(t, e.get("/changes/"+id+"/log?asset=nope", auth.RoleViewer), http.StatusNotFound)
	wantStatus(t, e.get("/changes/"+id+"/log", auth.RoleViewer), http.StatusBadRequest)

	// The change's own halt halts the rollout with it; the page then
	// offers the rollout's resume, roll back and abort, and no change-level
	// move.
	vals = formValues(e.page(id, auth.RoleOperator).Find("#act-halt"))
	vals.Set("why", "QC drift on the chemistry analyzer")
	wantStatus(t, e.post("/changes/"+id+"/act", auth.RoleOperator, vals), http.StatusSeeOther)
	doc = e.page(id, auth.RoleOperator)
	wantStates(t, "after the change's halt", doc, "halted", "Halted")
	if got := ids(doc.Find("#actions form")); len(got) != 0 {
		t.Errorf("change-level actions under a halted rollout: %v", got)
	}
	if diff := cmp.Diff([]string{"rollout-resume", "rollout-roll_back", "rollout-abort"}, ids(doc.Find("#rollout-ops form"))); diff != "" {
		t.Errorf("operations on a halted rollout (-want +got):\n%s", diff)
	}

	// Abort ends it: the change is cancelled and no operation is left.
	vals = formValues(e.page(id, auth.RoleOperator).Find("#rollout-abort"))
	vals.Set("why", "Vendor withdrew the update")
	wantStatus(t, e.post("/changes/"+id+"/rollout", auth.RoleOperator, vals), http.StatusSeeOther)
	doc = e.page(id, auth.RoleOperator)
	wantStates(t, "after abort", doc, "aborted", "Cancelled")
	if n := doc.Find("#rollout-ops form, form.manual, #rollout-steers").Length(); n != 0 {
		t.Errorf("an aborted rollout still offers %d forms", n)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestOfferedUnderRollout(t *testing.T) {
	for _, tc := range []struct {
		act  change.Action
		st   deploy.RolloutState
		want bool
	}{
		{change.ActHalt, deploy.RolloutRunning, true},
		{change.ActComplete, deploy.RolloutRunning, false},
		{change.ActComplete, deploy.RolloutAwaitingCompletion, true},
		{change.ActResume, deploy.RolloutPaused, true},
		{change.ActResume, deploy.RolloutHalted, false},
		{change.ActRollBack, deploy.RolloutRunning, false},
		{change.ActCancel, deploy.RolloutHalted, false},
	} {
		if got := offeredUnderRollout(tc.act, tc.st); got != tc.want {
			t.Errorf("offeredUnderRollout(%s, %s) = %v; want %v", tc.act, tc.st, got, tc.want)
		}
	}
}

// TestDeploymentManualRollback: waves are numbered from 1, as on the
// calendar; rolling back a change applied by hand offers each done manual
// item's rollback task, with its owner and text, in the same outcome
// form, and the rollout stays rolling back until it is recorded.
func TestDeploymentManualRollback(t *testing.T) {
	e := newRolloutEnv(t)
	id := e.scheduled()
	doc := e.act(id, auth.RoleOperator, "start", "pilot first")
	if got := text(doc.Find("#deployment .wave").First().Find("h3")); !strings.HasPrefix(got, "Wave 1: ring ") {
		t.Errorf("first wave heading = %q; want Wave 1: ring …", got)
	}
	ctx := context.Background()
	ro, err := e.rollouts.ByChange(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Every open task is recorded done by hand: the change was applied.
	var done []string
	for _, w := range ro.Waves {
		for _, it := range w.Items {
			if it.State == deploy.ItemOpen {
				if _, err := e.rollouts.RecordManual(ctx, user(auth.RoleOperator), ro.ID, it.ID, deploy.ManualDone, "installed by hand"); err != nil {
					t.Fatal(err)
				}
				done = append(done, it.ID)
			}
		}
	}
	if len(done) == 0 {
		t.Fatal("no open manual task to record")
	}
	vals := formValues(e.page(id, auth.RoleOperator).Find("#rollout-roll_back"))
	vals.Set("why", "LIS errors after the update")
	wantStatus(t, e.post("/changes/"+id+"/rollout", auth.RoleOperator, vals), http.StatusSeeOther)
	doc = e.page(id, auth.RoleOperator)
	if got := doc.Find("#deployment").AttrOr("data-state", ""); got != "rolling_back" {
		t.Fatalf("after roll back: rollout %q; want rolling_back while the manual rollback is open", got)
	}
	for _, itemID := range done {
		row := doc.Find(`#deployment tr[data-item-id="` + itemID + `"]`)
		if got := text(row.Find(".rollback-task")); !strings.Contains(got, "Rollback task for") || !strings.Contains(got, "Roll back by hand") {
			t.Errorf("item %s rollback task = %q", itemID, got)
		}
		form := row.Find("form.manual.rollback#manual-" + itemID)
		if form.Length() != 1 || !strings.Contains(text(form.Find("button")), "Rolled back") {
			t.Fatalf("item %s offers no rollback outcome form:\n%s", itemID, text(row))
		}
		if n := e.page(id, auth.RoleViewer).Find(`tr[data-item-id="` + itemID + `"] form`).Length(); n != 0 {
			t.Errorf("a viewer is offered %d forms on the rollback task", n)
		}
		vals := formValues(form)
		vals.Set("outcome", "done")
		vals.Set("note", "previous package reinstalled from the vendor USB stick")
		wantStatus(t, e.post("/changes/"+id+"/rollout/manual", auth.RoleOperator, vals), http.StatusSeeOther)
	}
	wantStates(t, "after every rollback task", e.page(id, auth.RoleViewer), "rolled_back", "Rolled back")
}

// wantStates checks the rollout's state and the change's state label on
// a change page.
func wantStates(t *testing.T, when string, doc *goquery.Document, rollout, chg string) {
	t.Helper()
	if got := doc.Find("#deployment").AttrOr("data-state", ""); got != rollout {
		t.Errorf("%s: rollout %q; want %q", when, got, rollout)
	}
	if got := text(doc.Find(".tags .chg")); got != chg {
		t.Errorf("%s: change %q; want %q", when, got, chg)
	}
}
