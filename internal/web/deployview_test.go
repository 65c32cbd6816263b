package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
)

// fakeRollouts serves one canned rollout and log; the operations are the
// real engine's business and tested on it (TestDeploymentSection).
type fakeRollouts struct {
	ro  deploy.Rollout
	log []deploy.LogEntry
	nc  []deploy.Convergence
}

func (f *fakeRollouts) ByChange(_ context.Context, id string) (deploy.Rollout, error) {
	if f.ro.ChangeID != id {
		return deploy.Rollout{}, errs.E(errs.NotFound, "no rollout")
	}
	return f.ro, nil
}

func (f *fakeRollouts) DeploymentLog(_ context.Context, changeID, assetID string) ([]deploy.LogEntry, error) {
	var out []deploy.LogEntry
	for _, e := range f.log {
		if e.ChangeID == changeID && e.AssetID == assetID {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeRollouts) NotConverged(context.Context, string) ([]deploy.Convergence, error) {
	return f.nc, nil
}

func (f *fakeRollouts) Pause(context.Context, change.User, string, string) (deploy.Rollout, error) {
	return f.ro, nil
}

func (f *fakeRollouts) Resume(context.Context, change.User, string, string) (deploy.Rollout, error) {
	return f.ro, nil
}

func (f *fakeRollouts) Abort(context.Context, change.User, string, string) (deploy.Rollout, error) {
	return f.ro, nil
}

func (f *fakeRollouts) RollBack(context.Context, change.User, string, string) (deploy.Rollout, error) {
	return f.ro, nil
}

func (f *fakeRollouts) RecordManual(context.Context, change.User, string, string, string, string) (deploy.Rollout, error) {
	return f.ro, nil
}

func (f *fakeRollouts) ChangeMove(context.Context, change.User, string, change.Action, change.Step) (change.Change, *deploy.Rollout, error) {
	return change.Change{}, &f.ro, nil
}

type fakeJobs map[string]fleet.JobDetail

func (f fakeJobs) Job(_ context.Context, id string) (fleet.JobDetail, error) {
	d, ok := f[id]
	if !ok {
		return d, errs.E(errs.NotFound, "no job")
	}
	return d, nil
}

func tp(t time.Time) *time.Time { return &t }

// TestDeploymentRendering: a halted rollout as the engine leaves it —
// a passed pilot wave, a halted wave with the gate's reason, agent items
// with jobs and a manual task — and the asset's log with each job step's
// command, exit code and bounded output.
func TestDeploymentRendering(t *testing.T) {
	fr := &fakeRollouts{}
	jobs := fakeJobs{}
	e := newChangeEnvWith(t, func(_ *store.DB, cfg *Config) { cfg.Rollouts, cfg.Jobs, cfg.Audit = fr, jobs, &fakeAudit{} })
	vals, _ := e.newForm(auth.RoleOperator, "finding=f-ssl-pc")
	id := e.create(auth.RoleOperator, vals)
	pc := e.ids["Front desk PC"]
	chem := e.ids["Chemistry analyzer"]
	pcAsset, _ := e.inv.Asset(context.Background(), pc)
	start := time.Date(2026, 3, 15, 8, 0, 0, 0, time.UTC) // 03:00 CDT at the clinic
	pkgs := []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3.0.13-1"}}
	fr.ro = deploy.Rollout{ID: "ro-1", ChangeID: id, State: deploy.RolloutHalted, Reason: "ring high-criticality: 1 of 2 failed (50%) is above the halt threshold of 2%",
		CreatedBy: "operator", CreatedAt: start.Add(-48 * time.Hour), Waves: []deploy.Wave{
			{Index: 0, Ring: "pilot", State: deploy.WavePassed, Verdict: deploy.Advance, Reason: "3 of 3 succeeded; soaked 48h",
				DecidedAt: tp(start.Add(-time.Hour)), WaitUntil: tp(start.Add(-time.Hour)),
				Items: []deploy.Item{{ID: "it-p", AssetID: "gone", AssetName: "IT laptop", Kind: deploy.ItemAgent, JobID: "job-p", State: deploy.ItemSucceeded, Outcome: "succeeded", Packages: pkgs}}},
			{Index: 1, Ring: "high-criticality", State: deploy.WaveHalted, Verdict: deploy.Halt, Reason: "1 of 2 failed (50%) is above the halt threshold of 2%",
				DecidedAt: tp(start.Add(2 * time.Hour)), Items: []deploy.Item{
					{ID: "it-pc", AssetID: pc, AssetName: "Front desk PC", SiteID: pcAsset.SiteID, Kind: deploy.ItemAgent, PlannedStart: tp(start), JobID: "job-pc",
						Attempts: 1, State: deploy.ItemFailed, Outcome: "failed: post-check service lis-client not running", Packages: pkgs},
					{ID: "it-chem", AssetID: chem, AssetName: "Chemistry analyzer", Kind: deploy.ItemManual, Task: "Vendor re-validates the analyzer",
						Owner: "Roche field engineer", State: deploy.ItemOpen},
					{ID: "it-k", AssetID: "k", AssetName: "Kiosk", Kind: deploy.ItemAgent, State: deploy.ItemPending},
				}},
			{Index: 2, Ring: "low-risk", State: deploy.WaveSkipped},
		}}
	fr.nc = []deploy.Convergence{{Item: fr.ro.Waves[1].Items[0], Reason: "not deployed: failed"}}
	fr.log = []deploy.LogEntry{
		{ChangeID: id, AssetID: pc, At: start.Add(-48 * time.Hour), Actor: "operator", Event: deploy.EventPlanned, Packages: pkgs, Detail: "ring high-criticality"},
		{ChangeID: id, AssetID: pc, At: start, Actor: "rollout engine", Event: deploy.EventJobQueued, JobID: "job-pc", Packages: pkgs},
		{ChangeID: id, AssetID: pc, At: start.Add(20 * time.Minute), Actor: "agent a-7", Event: deploy.EventFailed, JobID: "job-pc", Deviation: "failed",
			Detail: "post-check service lis-client not running", Steps: []deploy.LogStep{{Name: "install", ExitCode: 0, OK: true}, {Name: "post-check", ExitCode: 3, OK: false}}},
	}
	// The change's audit history takes in its rollout's entries.
	if href := e.page(id, auth.RoleAuditor).Find(`a.button:contains("Audit history")`).AttrOr("href", ""); href != "/audit?object_id="+id+"&object_id=ro-1" {
		t.Errorf("audit history link = %q; want the change and its rollout", href)
	}
	jobs["job-pc"] = fleet.JobDetail{Job: fleet.Job{ID: "job-pc", State: fleet.JobFailed, Reason: "post-check failed"}, Results: []fleet.Result{{
		Attempt: 1, ReceivedAt: start.Add(20 * time.Minute), Installed: map[string]string{"openssl": "3.0.13-1"},
		Steps: []agentapi.Step{
			{Name: "install", Command: []string{"apt-get", "install", "-y", "openssl=3.0.13-1"}, ExitCode: 0, OK: true, Output: "Setting up openssl (3.0.13-1) ..."},
			{Name: "post-check", Command: []string{"systemctl", "is-active", "lis-client"}, ExitCode: 3, Output: strings.Repeat("inactive\n", 2000)},
		}}}}

	doc := e.page(id, auth.RoleOperator)
	dep := doc.Find("#deployment")
	if got := text(dep.Find("#rollout-reason")); got != fr.ro.Reason {
		t.Errorf("rollout reason = %q", got)
	}
	if diff := cmp.Diff([]string{"rollout-resume", "rollout-roll_back", "rollout-abort"}, ids(dep.Find("#rollout-ops form"))); diff != "" {
		t.Errorf("operations on a halted rollout (-want +got):\n%s", diff)
	}
	halted := dep.Find(`.wave[data-ring="high-criticality"]`)
	if got := halted.Find(".gate").AttrOr("data-verdict", ""); got != "halt" {
		t.Errorf("gate verdict = %q", got)
	}
	if got := text(halted.Find(".gate")); !strings.HasPrefix(got, "Halt: 1 of 2 failed (50%) is above the halt threshold of 2%") {
		t.Errorf("gate = %q", got)
	}
	if got := text(halted.Find(".counts")); got != "0 succeeded, 1 failed, 1 running, 1 pending" {
		t.Errorf("counts = %q", got)
	}
	if got := text(dep.Find(`.wave[data-ring="pilot"] .soak`)); got == "" {
		t.Error("no soak time on the pilot wave")
	}
	pcRow := halted.Find(`tr[data-item-id="it-pc"]`)
	// Planned start in the clinic's zone (America/Chicago).
	if got := text(pcRow.Find(".planned")); got != "Sun 15 Mar 2026, 03:00 CDT" {
		t.Errorf("planned start = %q", got)
	}
	if got := text(pcRow.Find(".job")); got != "job-pc" {
		t.Errorf("job = %q", got)
	}
	if got := text(pcRow.Find(".outcome")); got != "failed: post-check service lis-client not running" {
		t.Errorf("outcome = %q", got)
	}
	chemRow := halted.Find(`tr[data-item-id="it-chem"]`)
	if got := text(chemRow.Find(".kind")); !strings.Contains(got, "Roche field engineer") || !strings.Contains(got, "Vendor re-validates") {
		t.Errorf("manual item = %q", got)
	}
	if chemRow.Find("form#manual-it-chem").Length() != 1 || pcRow.Find("form").Length() != 0 {
		t.Error("outcome form not (only) on the open manual task")
	}
	if got := text(dep.Find(`#not-converged tr[data-asset-id="` + pc + `"]`)); !strings.Contains(got, "not deployed: failed") {
		t.Errorf("not converged = %q", got)
	}

	// The log page.
	w := e.get(pcRow.Find("td a").AttrOr("href", ""), auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	ld := parse(t, w)
	if got := text(ld.Find("h1")); got != "Deployment log: Front desk PC" {
		t.Errorf("log title = %q", got)
	}
	failed := ld.Find(`#log-table tr[data-event="failed"]`)
	if failed.AttrOr("data-deviation", "") != "failed" || text(failed.Find(".actor")) != "agent a-7" {
		t.Errorf("failed entry: %q by %q", failed.AttrOr("data-deviation", ""), text(failed.Find(".actor")))
	}
	if got := failed.Find(`.step[data-ok="false"]`).AttrOr("data-step", ""); got != "post-check" {
		t.Errorf("failed validation step = %q", got)
	}
	if got := text(ld.Find(`#log-table tr[data-event="planned"] .packages`)); got != "openssl 3.0.13-1" {
		t.Errorf("planned packages = %q", got)
	}
	job := ld.Find(`#jobs .job[data-job-id="job-pc"]`)
	steps := job.Find("tr[data-step]")
	if got := text(steps.Eq(0).Find(".command")); got != "apt-get install -y openssl=3.0.13-1" {
		t.Errorf("install command = %q", got)
	}
	if got := text(steps.Eq(1).Find(".exit")); got != "3" {
		t.Errorf("post-check exit = %q", got)
	}
	if out := steps.Eq(1).Find("pre.output").Text(); len(out) != maxStepOutput || !strings.Contains(text(steps.Eq(1)), "output shortened") {
		t.Errorf("post-check output %d bytes; want it cut to %d and said so", len(out), maxStepOutput)
	}
	if got := text(job.Find(".installed")); got != "Installed after the job: openssl 3.0.13-1" {
		t.Errorf("installed = %q", got)
	}
	// Readers may read the log; nobody outside may.
	wantStatus(t, e.get(logURL(id, pc), ""), http.StatusSeeOther)
	for _, target := range []string{"/changes/" + id + "/rollout", "/changes/" + id + "/rollout/manual"} {
		wantStatus(t, e.post(target, auth.RoleViewer, url.Values{}), http.StatusForbidden)
	}
}

// fakeProposals returns canned proposals made at or after since.
type fakeProposals struct {
	ps    []change.Proposal
	since time.Time
}

func (f *fakeProposals) EmergencyProposals(_ context.Context, since time.Time) ([]change.Proposal, error) {
	f.since = since
	var out []change.Proposal
	for _, p := range f.ps {
		if !p.EnteredAt.Before(since) {
			out = append(out, p)
		}
	}
	return out, nil
}

func TestProposalsPageAndDraft(t *testing.T) {
	fp := &fakeProposals{}
	e := newChangeEnvWith(t, func(_ *store.DB, cfg *Config) { cfg.Proposals = fp })
	chem, pc := e.ids["Chemistry analyzer"], e.ids["Front desk PC"]
	fp.ps = []change.Proposal{{VulnID: "CVE-2024-0727", Tier: "critical", Score: 9.4, EnteredAt: riskNow.Add(-72 * time.Hour),
		Assets: []change.ProposalAsset{
			{AssetID: chem, AssetName: "Chemistry analyzer", FindingID: "f-ssl-chem", Package: "openssl", Version: "3.0.11-1", FixedVersion: "3.0.13-1"},
			{AssetID: pc, AssetName: "Front desk PC", FindingID: "f-ssl-pc", Package: "openssl", Version: "3.0.11-1", FixedVersion: "3.0.13-1"}},
		Patches: []change.Patch{{Package: "openssl", Ecosystem: "Debian:12", TargetVersion: "3.0.13-1"}}},
		{VulnID: "CVE-2019-0001", Tier: "critical", Score: 9.9, EnteredAt: riskNow.AddDate(0, -3, 0)}}

	doc := parse(t, e.get("/proposals", auth.RoleAdmin))
	if got := doc.Find("section.proposal").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("data-vuln", "") }); !cmp.Equal(got, []string{"CVE-2024-0727"}) {
		t.Errorf("proposals in the last 30 days = %v", got)
	}
	if !fp.since.Equal(riskNow.AddDate(0, 0, -30)) {
		t.Errorf("since = %v", fp.since)
	}
	p := doc.Find(`section.proposal[data-vuln="CVE-2024-0727"]`)
	if got := p.Find("tr[data-asset-id]").Map(func(_ int, s *goquery.Selection) string { return text(s.Find(".fixed")) }); !cmp.Equal(got, []string{"3.0.13-1", "3.0.13-1"}) {
		t.Errorf("fixed versions = %v", got)
	}
	if got := text(p.Find(".score")); got != "9.4" {
		t.Errorf("score = %q", got)
	}
	if got := text(doc.Find("#proposal-count")); got != "1" {
		t.Errorf("count = %q", got)
	}
	if n := parse(t, e.get("/proposals?days=120", auth.RoleViewer)).Find("section.proposal").Length(); n != 2 {
		t.Errorf("proposals in 120 days = %d", n)
	}
	wantStatus(t, e.get("/proposals?days=0", auth.RoleViewer), http.StatusBadRequest)
	nav := parse(t, e.get("/changes", auth.RoleViewer)).Find("nav a").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	if !strings.Contains(strings.Join(nav, "|"), "Proposals") {
		t.Errorf("nav %v lacks Proposals", nav)
	}
	// A viewer reads but may not draft.
	if parse(t, e.get("/proposals", auth.RoleViewer)).Find(`a[id^="draft-"]`).Length() != 0 {
		t.Error("viewer offered a draft")
	}
	// The draft opens the new-change form as Proposal.Draft says.
	href := p.Find("#draft-CVE-2024-0727").AttrOr("href", "")
	w := e.get(href, auth.RoleAdmin)
	wantStatus(t, w, http.StatusOK)
	fd := parse(t, w)
	vals := formValues(fd.Find("#change-form"))
	draft := fp.ps[0].Draft()
	for _, c := range []struct {
		name string
		want []string
	}{
		{"type", []string{"emergency"}},
		{"title", []string{draft.Title}},
		{"description", []string{draft.Description}},
		{"finding", []string{"f-ssl-chem", "f-ssl-pc"}},
		{"advisory", []string{"CVE-2024-0727"}},
		{"asset", []string{chem, pc}},
		{"pkg", []string{"openssl", ""}},
		{"eco", []string{"Debian:12", ""}},
		{"version", []string{"3.0.13-1", ""}},
		{"window", []string{"emergency"}},
	} {
		if diff := cmp.Diff(c.want, vals[c.name]); diff != "" {
			t.Errorf("prefilled %s (-want +got):\n%s", c.name, diff)
		}
	}
	// Saved with a justification and a recovery plan, it is an emergency
	// change on those findings.
	vals.Set("justification", "CISA KEV: exploited in the wild")
	vals.Set("rb_steps", "Restore the snapshot")
	vals.Set("rb_owner", "Clinic IT on call")
	id := e.create(auth.RoleAdmin, vals)
	c, err := e.changes.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != change.Emergency || !cmp.Equal(c.Findings, draft.Findings) || !cmp.Equal(c.Targets.Assets, draft.Targets.Assets) {
		t.Errorf("created %s with findings %v, assets %v", c.Type, c.Findings, c.Targets.Assets)
	}
	// A proposal that is gone (a change covers it now) is a clear 404.
	w = e.get("/changes/new?type=emergency&proposal=CVE-1999-9999", auth.RoleAdmin)
	wantStatus(t, w, http.StatusNotFound)
}
