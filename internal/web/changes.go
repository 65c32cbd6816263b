package web

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
)

// ChangeService is change control as the UI uses it; *change.Service
// implements it. The service enforces the state machine, the policy's
// approval rules, separation of duties, the revision check and the guards
// (tests, sign-offs, reviews), so the pages only offer what applies and show
// what the service says when it refuses.
type ChangeService interface {
	Get(ctx context.Context, id string) (change.Change, error)
	List(ctx context.Context, f change.Filter) ([]change.Change, error)
	History(ctx context.Context, id string) ([]change.Transition, error)
	TestRuns(ctx context.Context, id string) ([]change.TestRun, error)
	EvidenceList(ctx context.Context, id string) ([]change.Evidence, error)
	// Approvals returns every approval (expired ones too) and how far the
	// valid ones meet the policy in force.
	Approvals(ctx context.Context, id string) ([]change.Approval, change.ApprovalStatus, error)
	Create(ctx context.Context, u change.User, c change.Change) (change.Change, error)
	Update(ctx context.Context, u change.User, c change.Change, why string) (change.Change, error)
	Submit(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	Approve(ctx context.Context, u change.User, id string, d change.Decision) (change.Change, change.ApprovalStatus, error)
	Reject(ctx context.Context, u change.User, id string, d change.Decision) (change.Change, error)
	Rework(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	Schedule(ctx context.Context, u change.User, id string, windows []change.PlannedWindow, st change.Step) (change.Change, error)
	Start(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	Complete(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	Halt(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	Resume(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	RollBack(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	Cancel(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	RecordTestRun(ctx context.Context, u change.User, id string, run change.TestRun) (change.TestRun, error)
	AddEvidence(ctx context.Context, u change.User, id, name, mediaType string, r io.Reader) (change.Evidence, error)
	GetEvidence(ctx context.Context, id, sum string) (change.Evidence, io.Reader, error)
	SignOff(ctx context.Context, u change.User, id, role, note string, revision int) (change.Change, error)
	RecordReview(ctx context.Context, u change.User, id string, r change.Review, revision int) (change.Change, error)
}

var _ ChangeService = (*change.Service)(nil)

// changeUser is the principal as the change service knows them.
func changeUser(r *http.Request, p auth.Principal) change.User {
	return change.User{Actor: p.Actor(authn.ClientAddr(r)), Role: string(p.Role), PolicyRoles: p.PolicyRoles}
}

func changeURL(id string) string { return "/changes/" + url.PathEscape(id) }

// ---- the list ----

type changesView struct {
	Selects  []formField
	Rows     []changeRow
	Filtered bool
	Error    string
	CanNew   bool
}

type changeRow struct {
	C        change.Change
	Windows  string
	Created  when
	Findings int
}

func (ui *UI) listChanges(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	q := r.URL.Query()
	f := change.Filter{State: change.State(q.Get("state")), Type: change.Type(q.Get("type")), Asset: strings.TrimSpace(q.Get("asset")), Limit: 200}
	v := changesView{Filtered: f.State != "" || f.Type != "" || f.Asset != "", CanNew: p.Can(auth.PermChangeWrite)}
	v.Selects = []formField{
		{Name: "state", Label: "State", Kind: "select", Options: anyOption("Any state", enumOptions(change.States, string(f.State)))},
		{Name: "type", Label: "Type", Kind: "select", Options: anyOption("Any type", enumOptions(change.Types, string(f.Type)))},
	}
	list, err := ui.cfg.Changes.List(ctx, f)
	if errs.KindOf(err) == errs.Invalid {
		v.Error = errs.Public(err)
		ui.render(w, r, http.StatusBadRequest, "changes", "Changes", v)
		return nil
	} else if err != nil {
		return err
	}
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return err
	}
	now := ui.cfg.Now()
	for _, c := range list {
		v.Rows = append(v.Rows, changeRow{C: c, Windows: windowsText(c.PlannedWindows, zones.org), Created: whenAt(c.CreatedAt, zones.org, now),
			Findings: len(c.Findings)})
	}
	ui.render(w, r, http.StatusOK, "changes", "Changes", v)
	return nil
}

// windowsText says when a change is planned: policy window names, or
// explicit spans in their own zone.
func windowsText(ws []change.PlannedWindow, loc *time.Location) string {
	var parts []string
	for _, w := range ws {
		switch {
		case w.Window != "":
			parts = append(parts, w.Window)
		case w.Start != nil && w.End != nil:
			l := loc
			if z, err := time.LoadLocation(w.TimeZone); err == nil && w.TimeZone != "" {
				l = z
			}
			parts = append(parts, w.Start.In(l).Format("Mon 2 Jan 2006 15:04")+" – "+w.End.In(l).Format("15:04 MST"))
		}
	}
	return strings.Join(parts, ", ")
}

// nextOpenings names when each policy window among ws next opens after
// now, in the window's zone; windows the policy no longer has are left out.
func nextOpenings(pol *policy.Compiled, ws []change.PlannedWindow, loc *time.Location, now time.Time) []string {
	cal, err := deploy.NewCalendar(pol, loc)
	if err != nil {
		return nil
	}
	var out []string
	for _, w := range ws {
		if w.Window == "" {
			continue
		}
		if slot, zone, ok := cal.NextOccurrence(w.Window, now); ok {
			out = append(out, w.Window+": "+whenAt(slot.Start, locOr(zone, loc), now).Text)
		}
	}
	return out
}

// ---- the change form: new and edit ----

// blankPatchRows, blankTaskRows and blankCaseRows are how many blank rows
// the form adds for another package update, manual task or custom test
// case, so that it works without scripts; blank rows are ignored.
const (
	blankPatchRows = 1
	blankTaskRows  = 1
	blankCaseRows  = 2
)

// keepWindows is the window choice that keeps planned windows the form
// cannot show (explicit start and end times, or several windows), so an
// edit made here does not drop what the API planned.
const keepWindows = "=planned"

type changeFormView struct {
	// Action is where the form posts; Edit is set for an edit, which
	// carries the Revision it was loaded at and asks why.
	Action   string
	Edit     bool
	Revision int
	CancelTo string
	// Withdraws is how many approvals saving the edit withdraws, and
	// Reopens whether an approved change goes back for approval.
	Withdraws int
	Reopens   bool
	Fields    map[string]formField
	// Findings are the findings the change remediates, checked;
	// Advisories their vulnerability IDs, carried along.
	Findings   []findingChoice
	Advisories []string
	Assets     []option
	Groups     []option
	Patches    []patchRow
	Tasks      []taskRow
	Cases      []caseChoice
	Custom     []customCaseRow
	SignOffs   []option
	// Errors lists every problem, with the field it concerns.
	Errors []string
	// Emergency is the form for an emergency change (abbreviated tests).
	Emergency    bool
	EmergencyURL string
	NormalURL    string
	TimeZone     string
	GoNoGo       string
}

type findingChoice struct {
	ID, Label string
	Checked   bool
}

type patchRow struct {
	N                         int
	Package, Ecosystem, Value string
}

type taskRow struct {
	N                       int
	Description, Owner, Due string
}

type caseChoice struct {
	ID, Name, Criteria string
	Checked, Required  bool
}

// customCaseRow is one custom test case row; ID is empty until the case
// is saved, and kept from then on, because test runs refer to it.
type customCaseRow struct {
	N                         int
	ID, Name, Criteria, Error string
}

// newChange shows the form, prefilled from the findings named in the URL
// (the worklist's selection or a finding page's "Create change").
func (ui *UI) newChange(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ctx := r.Context()
	q := r.URL.Query()
	vals := url.Values{}
	typ := change.Normal
	if t := change.Type(q.Get("type")); slices.Contains(change.Types, t) {
		typ = t
	}
	vals.Set("type", string(typ))
	pol, _, err := ui.policyNow(ctx)
	if err != nil {
		return err
	}
	var (
		assets   []string
		vulns    []string
		packages []string
	)
	seenPatch := map[string]bool{}
	fromFindings := cleanValues(q["finding"])
	if q.Get("proposal") != "" && ui.cfg.Proposals != nil {
		// An emergency proposal's "Draft emergency change": the form is
		// Proposal.Draft, so it says what the proposals page said.
		draft, err := ui.proposalDraft(ctx, q)
		if err != nil {
			return err
		}
		for k, vs := range draft {
			vals[k] = vs
		}
		typ, assets, fromFindings = change.Type(draft.Get("type")), draft["asset"], nil
	}
	for _, id := range fromFindings {
		if ui.cfg.Findings == nil {
			break
		}
		f, err := ui.cfg.Findings.Finding(ctx, id)
		if errs.KindOf(err) == errs.NotFound {
			continue
		} else if err != nil {
			return err
		}
		vals.Add("finding", f.ID)
		if !slices.Contains(assets, f.AssetID) {
			assets = append(assets, f.AssetID)
		}
		if !slices.Contains(vulns, f.VulnID) {
			vulns = append(vulns, f.VulnID)
		}
		key := f.Package + "\x00" + f.Ecosystem + "\x00" + f.FixedVersion
		if f.FixedVersion == "" {
			// No version to install through an agent: the vendor applies it
			// (or is asked to), so it is a manual task in the same wave.
			if !seenPatch[key] {
				seenPatch[key] = true
				task := "Apply the vendor's fix for " + f.Package + " " + f.Version
				if f.FixNote != "" {
					task += ": " + f.FixNote
				} else {
					task += " (no fix published yet: ask the vendor)"
				}
				vals.Add("task", task)
				vals.Add("task_owner", "")
				vals.Add("task_due", "")
				packages = append(packages, f.Package)
			}
			continue
		}
		if !seenPatch[key] {
			seenPatch[key] = true
			vals.Add("pkg", f.Package)
			vals.Add("eco", f.Ecosystem)
			vals.Add("version", f.FixedVersion)
			packages = append(packages, f.Package)
		}
	}
	if fromFindings != nil {
		vals["asset"] = assets
		vals["advisory"] = vulns
	}
	switch {
	case vals.Get("title") != "":
	case len(packages) == 1 && vals.Get("version") != "":
		vals.Set("title", fmt.Sprintf("Update %s to %s (%s)", packages[0], vals.Get("version"), strings.Join(vulns, ", ")))
	case len(vulns) > 0:
		vals.Set("title", "Remediate "+strings.Join(vulns, ", "))
	}
	if len(pol.Windows) > 0 && typ != change.Emergency {
		vals.Set("window", "")
	}
	if typ == change.Emergency {
		vals.Set("window", pol.Emergency.Window)
	}
	vals.Set("prechecks", "Backup or snapshot taken and restore verified")
	vals.Set("rb_triggers", strings.Join(pol.Rollback.Triggers, "\n"))
	// The policy's cases that apply to these assets, pre-selected.
	classes, err := ui.classesOf(ctx, assets)
	if err != nil {
		return err
	}
	compiled, err := ui.compiledPolicy(ctx)
	if err != nil {
		return err
	}
	vals["case"] = change.RequiredCases(compiled, typ, classes)
	if len(vals["case"]) == 0 && typ == change.Standard {
		vals["case"] = nil
	}
	for _, c := range classes {
		for _, ac := range pol.AssetClasses {
			if ac.Name == c {
				for _, r := range ac.Approvers {
					if !slices.Contains(vals["signoff"], r) {
						vals.Add("signoff", r)
					}
				}
			}
		}
	}
	v, err := ui.changeForm(ctx, vals, nil)
	if err != nil {
		return err
	}
	ui.render(w, r, http.StatusOK, "change_form", "New change", v)
	return nil
}

// sentence starts s with a capital letter and ends it with a full stop.
func sentence(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:] + "."
}

func cleanValues(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// compiledPolicy is the policy in force, or the built-in default.
func (ui *UI) compiledPolicy(ctx context.Context) (*policy.Compiled, error) {
	if ui.cfg.Policy == nil {
		return policy.Default(), nil
	}
	c, _, err := ui.cfg.Policy.Current(ctx)
	return c, err
}

// classesOf names the policy's asset classes of the assets, to pre-select
// the test cases and sign-offs that apply. It is a convenience for the
// form: the change service decides what a change needs when it is
// submitted.
func (ui *UI) classesOf(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pol, err := ui.compiledPolicy(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		a, err := ui.cfg.Inventory.Asset(ctx, id)
		if errs.KindOf(err) == errs.NotFound {
			continue
		} else if err != nil {
			return nil, err
		}
		cs, err := pol.ClassesOf(assetFacts(a))
		if err != nil {
			continue // a broken class expression is the policy page's news, not this form's
		}
		for _, c := range cs {
			if !slices.Contains(out, c.Name) {
				out = append(out, c.Name)
			}
		}
	}
	return out, nil
}

// assetFacts is what the policy's class expressions see of an asset.
func assetFacts(a inventory.Asset) policy.AssetFacts {
	return policy.AssetFacts{ID: a.ID, Name: a.Name, Type: string(a.Type), Site: a.SiteID, NetworkZone: a.NetworkZone,
		Exposure: string(a.Exposure), Criticality: string(a.Criticality), SafetyImpact: string(a.SafetyImpact),
		DataClass: string(a.DataClass), PHI: a.HandlesPHI, RegulatedDevice: a.RegulatedDevice, Restriction: string(a.Restriction),
		OSName: a.OSName, Make: a.Make, Model: a.Model, Tags: a.Tags, Groups: a.Groups}
}

// changeForm lays out the form from vals (as typed, or prefilled) and the
// problems found with it.
func (ui *UI) changeForm(ctx context.Context, vals url.Values, problems map[string]string) (changeFormView, error) {
	compiled, err := ui.compiledPolicy(ctx)
	if err != nil {
		return changeFormView{}, err
	}
	pol := compiled.Policy()
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return changeFormView{}, err
	}
	typ := change.Type(vals.Get("type"))
	v := changeFormView{Action: "/changes/new", CancelTo: "/changes", Fields: map[string]formField{}, Emergency: typ == change.Emergency,
		TimeZone: zones.org.String(), GoNoGo: pol.Emergency.GoNoGo.Human()}
	field := func(name, key, lbl, kind, hint string, required bool) formField {
		f := formField{Name: name, Label: lbl, Kind: kind, Value: vals.Get(name), Hint: hint, Error: problems[key], Required: required}
		v.Fields[name] = f
		return f
	}
	field("title", "title", "Title", "text", "What the change does, e.g. “Update OpenSSL on the lab analyzers”.", true)
	field("description", "description", "Description", "textarea", "", false)
	tf := field("type", "type", "Type", "select", "Standard changes are pre-approved routine updates; normal changes go to the approvers; emergency changes take the fast lane for actively exploited vulnerabilities.", true)
	for _, t := range change.Types {
		tf.Options = append(tf.Options, option{Value: string(t), Label: label(t), Selected: t == typ})
	}
	v.Fields["type"] = tf
	field("justification", "emergency.justification", "Emergency justification", "textarea",
		"Emergency changes only: why it cannot wait for the next window (e.g. listed in CISA KEV, exploited against peers).", v.Emergency)
	wf := field("window", "planned_windows[0]", "Planned window", "select", "A maintenance window from the policy; times are each site's local time.", false)
	wf.Options = []option{{Value: "", Label: "Decide when scheduling"}}
	for _, w := range pol.Windows {
		lbl := w.Name
		if w.Emergency {
			lbl += " (emergency)"
		}
		wf.Options = append(wf.Options, option{Value: w.Name, Label: lbl, Selected: w.Name == vals.Get("window")})
	}
	if v.Emergency && pol.Emergency.Window == policy.WindowImmediate {
		wf.Options = append(wf.Options, option{Value: policy.WindowImmediate, Label: "Immediately", Selected: vals.Get("window") == policy.WindowImmediate})
	}
	v.Fields["window"] = wf
	field("assets_more", "targets.assets", "More assets", "textarea", "Asset IDs or exact names, one per line.", false)
	field("notify", "communication.notify", "Who is notified", "textarea", "One per line: lab operations, clinicians, help desk…", false)
	field("impact", "communication.user_impact", "Expected user impact", "textarea", "E.g. the LIS is unavailable for 20 minutes; analyzers queue results.", false)
	field("prechecks", "pre_checks", "Pre-checks", "textarea", "One per line: what is verified before deployment.", false)
	field("rb_triggers", "rollback_plan.triggers", "Rollback triggers", "textarea", "One per line, defined in advance: any of them rolls the change back.", pol.Rollback.RequirePlan)
	field("rb_steps", "rollback_plan.steps", "Recovery steps", "textarea", "One per line: restore point, snapshot, vendor downgrade…", pol.Rollback.RequirePlan)
	field("rb_owner", "rollback_plan.owner", "Rollback owner", "text", "", pol.Rollback.RequirePlan)

	v.Advisories = cleanValues(vals["advisory"])
	names := assetNames{inv: ui.cfg.Inventory}
	for _, id := range vals["finding"] {
		fc := findingChoice{ID: id, Label: id, Checked: true}
		if ui.cfg.Findings != nil {
			if f, err := ui.cfg.Findings.Finding(ctx, id); err == nil {
				an, err := names.name(ctx, f.AssetID)
				if err != nil {
					return v, err
				}
				fc.Label = f.VulnID + " on " + an + " (" + f.Package + " " + f.Version + ")"
			}
		}
		v.Findings = append(v.Findings, fc)
	}
	for _, id := range vals["asset"] {
		n, err := names.name(ctx, id)
		if err != nil {
			return v, err
		}
		v.Assets = append(v.Assets, option{Value: id, Label: n, Selected: true})
	}
	groups, err := ui.cfg.Inventory.Groups(ctx)
	if err != nil {
		return v, err
	}
	for _, g := range groups {
		v.Groups = append(v.Groups, option{Value: g.ID, Label: g.Name, Selected: slices.Contains(vals["group"], g.ID)})
	}
	pk, ec, ver := vals["pkg"], vals["eco"], vals["version"]
	n := max(len(pk), len(ec), len(ver))
	for i := range n + blankPatchRows {
		v.Patches = append(v.Patches, patchRow{N: i + 1, Package: at(pk, i), Ecosystem: at(ec, i), Value: at(ver, i)})
	}
	td, to, tdue := vals["task"], vals["task_owner"], vals["task_due"]
	n = max(len(td), len(to), len(tdue))
	for i := range n + blankTaskRows {
		v.Tasks = append(v.Tasks, taskRow{N: i + 1, Description: at(td, i), Owner: at(to, i), Due: at(tdue, i)})
	}
	cases := pol.Testing.Cases
	if v.Emergency {
		cases = nil
		for _, id := range pol.Emergency.Tests {
			if i := slices.IndexFunc(pol.Testing.Cases, func(c policy.TestCase) bool { return c.ID == id }); i >= 0 {
				cases = append(cases, pol.Testing.Cases[i])
			}
		}
	}
	for _, id := range vals["case"] {
		// A policy case the change has that this form would not list
		// (a full case on an emergency change) stays on offer, checked.
		if tc, ok := compiled.TestCase(id); ok && !slices.ContainsFunc(cases, func(c policy.TestCase) bool { return c.ID == id }) {
			cases = append(cases, tc)
		}
	}
	for _, c := range cases {
		v.Cases = append(v.Cases, caseChoice{ID: c.ID, Name: c.Name, Criteria: c.Criteria, Checked: slices.Contains(vals["case"], c.ID)})
	}
	cid, cname, ccrit := vals["custom_id"], vals["custom_name"], vals["custom_criteria"]
	n = max(len(cid), len(cname), len(ccrit))
	for i := range n + blankCaseRows {
		v.Custom = append(v.Custom, customCaseRow{N: i + 1, ID: at(cid, i), Name: at(cname, i), Criteria: at(ccrit, i),
			Error: problems[customKey(i)]})
	}
	for _, r := range pol.Roles {
		v.SignOffs = append(v.SignOffs, option{Value: r.Name, Label: r.Name, Selected: slices.Contains(vals["signoff"], r.Name)})
	}
	keep := url.Values{"finding": vals["finding"]}
	keep.Set("type", string(change.Emergency))
	v.EmergencyURL = "/changes/new?" + keep.Encode()
	keep.Set("type", string(change.Normal))
	v.NormalURL = "/changes/new?" + keep.Encode()
	keys := make([]string, 0, len(problems))
	for k := range problems {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v.Errors = append(v.Errors, fieldLabel(k)+": "+problems[k])
	}
	return v, nil
}

// fieldLabel names a change field as the form calls it.
func fieldLabel(k string) string {
	base, rest, _ := strings.Cut(k, "[")
	names := map[string]string{"title": "Title", "type": "Type", "description": "Description", "emergency.justification": "Emergency justification",
		"emergency": "Emergency", "planned_windows": "Planned window", "targets": "Targets", "targets.assets": "Assets",
		"targets.groups": "Groups", "patches": "Patches", "test_protocol": "Test protocol", "pre_checks": "Pre-checks",
		"rollback_plan": "Rollback plan", "rollback_plan.triggers": "Rollback triggers", "rollback_plan.steps": "Recovery steps",
		"rollback_plan.owner": "Rollback owner", "sign_offs": "Sign-offs", "communication.notify": "Who is notified",
		"communication.user_impact": "Expected user impact", "form": "Change", "why": "Why", "note": "Note", "results": "Results",
		"summary": "Summary", "findings": "Findings", "advisories": "Advisories", "custom_cases": "Custom test case"}
	l, ok := names[base]
	if !ok {
		l = label(base)
	}
	if rest != "" {
		if i, err := strconv.Atoi(strings.TrimSuffix(rest, "]")); err == nil {
			return fmt.Sprintf("%s (row %d)", l, i+1)
		}
		return l + " [" + rest
	}
	return l
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// changeInput is a change as read from the form, with the problems the
// form itself can see (a date that is not a date, an unknown asset name,
// a custom test case row half filled in).
type changeInput struct {
	C   change.Change
	Bad map[string]string
	// policySteps is how many of the protocol's steps come from the
	// policy's checkboxes; customRows is the form row of each custom step
	// after them, so the service's word on a step names the row typed.
	policySteps int
	customRows  []int
}

// customKey is the problem key of custom test case row i.
func customKey(i int) string { return fmt.Sprintf("custom_cases[%d]", i) }

// refused adds the service's refusal to the form's problems and returns
// the status the form is shown again with; anything the user cannot fix
// on the form is returned as an error.
func (in changeInput) refused(err error) (int, error) {
	switch errs.KindOf(err) {
	case errs.Invalid:
		for k, msg := range errs.FieldsOf(err) {
			in.Bad[in.formKey(k)] = msg
		}
		if len(in.Bad) == 0 {
			in.Bad["form"] = errs.Public(err)
		}
		return http.StatusBadRequest, nil
	case errs.Forbidden, errs.Conflict:
		in.Bad["form"] = errs.Public(err)
		return errs.HTTPStatus(err), nil
	case errs.NotFound:
		// Something the form named (an asset, a group) does not exist.
		in.Bad["form"] = errs.Public(err)
		return http.StatusBadRequest, nil
	}
	return 0, err
}

// formKey turns the service's name for a custom test protocol step into
// the row of the form it was typed in.
func (in changeInput) formKey(k string) string {
	base, rest, ok := strings.Cut(k, "[")
	if !ok || base != "test_protocol" {
		return k
	}
	j, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
	if err != nil || j < in.policySteps || j-in.policySteps >= len(in.customRows) {
		return k
	}
	return customKey(in.customRows[j-in.policySteps])
}

// changeFromForm builds a change from the form.
func (ui *UI) changeFromForm(ctx context.Context, vals url.Values) (changeInput, error) {
	bad := map[string]string{}
	c := change.Change{Title: vals.Get("title"), Description: vals.Get("description"), Type: change.Type(vals.Get("type")),
		Findings: cleanValues(vals["finding"]), Advisories: cleanValues(vals["advisory"]),
		Targets:       change.Targets{Assets: cleanValues(vals["asset"]), Groups: cleanValues(vals["group"])},
		Communication: change.Communication{Notify: lines(vals.Get("notify")), UserImpact: strings.TrimSpace(vals.Get("impact"))},
		PreChecks:     lines(vals.Get("prechecks")),
		RollbackPlan: change.RollbackPlan{Triggers: lines(vals.Get("rb_triggers")), Steps: lines(vals.Get("rb_steps")),
			Owner: strings.TrimSpace(vals.Get("rb_owner"))}}
	if c.Type == change.Emergency {
		c.Emergency = &change.EmergencyInfo{Justification: vals.Get("justification")}
	}
	for _, s := range lines(vals.Get("assets_more")) {
		id, err := ui.resolveAsset(ctx, s)
		if err != nil {
			if errs.KindOf(err) != errs.NotFound {
				return changeInput{}, err
			}
			bad["targets.assets"] = fmt.Sprintf("no asset has the ID or name %q", s)
			continue
		}
		if !slices.Contains(c.Targets.Assets, id) {
			c.Targets.Assets = append(c.Targets.Assets, id)
		}
	}
	pk, ec, ver := vals["pkg"], vals["eco"], vals["version"]
	for i := range max(len(pk), len(ec), len(ver)) {
		p := change.Patch{Package: strings.TrimSpace(at(pk, i)), Ecosystem: strings.TrimSpace(at(ec, i)), TargetVersion: strings.TrimSpace(at(ver, i))}
		if p.Package == "" && p.TargetVersion == "" {
			continue
		}
		c.Patches = append(c.Patches, p)
	}
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return changeInput{}, err
	}
	td, to, tdue := vals["task"], vals["task_owner"], vals["task_due"]
	for i := range max(len(td), len(to), len(tdue)) {
		m := change.ManualTask{Description: strings.TrimSpace(at(td, i)), Owner: strings.TrimSpace(at(to, i))}
		due := strings.TrimSpace(at(tdue, i))
		if m.Description == "" && m.Owner == "" && due == "" {
			continue
		}
		if due != "" {
			t, err := time.ParseInLocation(dateLayout, due, zones.org)
			if err != nil {
				bad[fmt.Sprintf("patches[%d]", len(c.Patches))] = "a manual task's due date must be a date (YYYY-MM-DD)"
			} else {
				m.Due = &t
			}
		}
		c.Patches = append(c.Patches, change.Patch{Manual: &m})
	}
	if w := strings.TrimSpace(vals.Get("window")); w != "" {
		c.PlannedWindows = []change.PlannedWindow{{Window: w}}
	}
	for _, id := range cleanValues(vals["case"]) {
		c.TestProtocol = append(c.TestProtocol, change.TestStep{CaseID: id})
	}
	in := changeInput{C: c, Bad: bad, policySteps: len(c.TestProtocol)}
	pol, err := ui.compiledPolicy(ctx)
	if err != nil {
		return changeInput{}, err
	}
	cid, cname, ccrit := vals["custom_id"], vals["custom_name"], vals["custom_criteria"]
	taken := func(id string) bool {
		_, isPolicy := pol.TestCase(id)
		return isPolicy || slices.Contains(cid, id) || slices.ContainsFunc(in.C.TestProtocol, func(s change.TestStep) bool { return s.CaseID == id })
	}
	for i := range max(len(cid), len(cname), len(ccrit)) {
		s := change.TestStep{CaseID: strings.TrimSpace(at(cid, i)), Name: strings.TrimSpace(at(cname, i)),
			Criteria: strings.TrimSpace(at(ccrit, i)), Custom: true}
		switch {
		case s.Name == "" && s.Criteria == "":
			continue
		case s.Name == "":
			bad[customKey(i)] = "needs a name"
		case s.Criteria == "":
			bad[customKey(i)] = "needs a pass/fail criterion"
		}
		if s.CaseID == "" {
			s.CaseID = customCaseID(s.Name, taken)
		}
		in.C.TestProtocol = append(in.C.TestProtocol, s)
		in.customRows = append(in.customRows, i)
	}
	for _, r := range cleanValues(vals["signoff"]) {
		in.C.SignOffs = append(in.C.SignOffs, change.SignOff{Role: r})
	}
	return in, nil
}

// customCaseID makes a new custom test case's ID from its name: test runs
// name their results by it, so it stays once saved. The "custom-" prefix
// keeps it clear of the policy's cases, and taken of any other.
func customCaseID(name string, taken func(string) bool) string {
	var b strings.Builder
	b.WriteString("custom-")
	for _, r := range strings.ToLower(name) {
		if b.Len() >= 48 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	base := strings.TrimSuffix(b.String(), "-")
	id := base
	for n := 2; taken(id); n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	return id
}

// resolveAsset finds an asset by ID, else by its exact name.
func (ui *UI) resolveAsset(ctx context.Context, s string) (string, error) {
	a, err := ui.cfg.Inventory.Asset(ctx, s)
	if err == nil {
		return a.ID, nil
	}
	if errs.KindOf(err) != errs.NotFound {
		return "", err
	}
	page, err := ui.cfg.Inventory.Assets(ctx, inventory.Filter{Q: s, Limit: 20})
	if err != nil {
		return "", err
	}
	for _, a := range page.Assets {
		if strings.EqualFold(a.Name, s) {
			return a.ID, nil
		}
	}
	return "", errs.E(errs.NotFound, "no asset %q", s)
}

func (ui *UI) createChange(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	vals := r.PostForm
	in, err := ui.changeFromForm(ctx, vals)
	if err != nil {
		return err
	}
	status := http.StatusBadRequest
	if len(in.Bad) == 0 {
		out, err := ui.cfg.Changes.Create(ctx, changeUser(r, p), in.C)
		if err == nil {
			http.Redirect(w, r, changeURL(out.ID)+"?done=create", http.StatusSeeOther)
			return nil
		}
		if status, err = in.refused(err); err != nil {
			return err
		}
	}
	v, err := ui.changeForm(ctx, vals, in.Bad)
	if err != nil {
		return err
	}
	ui.render(w, r, status, "change_form", "New change", v)
	return nil
}

// changeValues is the form's text for a stored change: what
// changeFromForm reads back into it.
func changeValues(c change.Change, pol *policy.Compiled, loc *time.Location) url.Values {
	vals := url.Values{"title": {c.Title}, "description": {c.Description}, "type": {string(c.Type)},
		"finding": c.Findings, "advisory": c.Advisories, "asset": c.Targets.Assets, "group": c.Targets.Groups,
		"notify": {strings.Join(c.Communication.Notify, "\n")}, "impact": {c.Communication.UserImpact},
		"prechecks": {strings.Join(c.PreChecks, "\n")}, "rb_triggers": {strings.Join(c.RollbackPlan.Triggers, "\n")},
		"rb_steps": {strings.Join(c.RollbackPlan.Steps, "\n")}, "rb_owner": {c.RollbackPlan.Owner},
		"revision": {strconv.Itoa(c.Revision)}}
	if c.Emergency != nil {
		vals.Set("justification", c.Emergency.Justification)
	}
	for _, pt := range c.Patches {
		if m := pt.Manual; m != nil {
			due := ""
			if m.Due != nil {
				due = m.Due.In(loc).Format(dateLayout)
			}
			vals.Add("task", m.Description)
			vals.Add("task_owner", m.Owner)
			vals.Add("task_due", due)
			continue
		}
		vals.Add("pkg", pt.Package)
		vals.Add("eco", pt.Ecosystem)
		vals.Add("version", pt.TargetVersion)
	}
	switch ws := c.PlannedWindows; {
	case len(ws) == 1 && ws[0].Window != "":
		vals.Set("window", ws[0].Window)
	case len(ws) > 0:
		vals.Set("window", keepWindows)
	}
	for _, st := range c.TestProtocol {
		if _, ok := pol.TestCase(st.CaseID); ok {
			vals.Add("case", st.CaseID)
			continue
		}
		vals.Add("custom_id", st.CaseID)
		vals.Add("custom_name", st.Name)
		vals.Add("custom_criteria", st.Criteria)
	}
	for _, so := range c.SignOffs {
		vals.Add("signoff", so.Role)
	}
	return vals
}

// editChange shows the change form filled in from the stored change.
func (ui *UI) editChange(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ctx := r.Context()
	c, err := ui.cfg.Changes.Get(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !c.State.Editable() {
		return errs.E(errs.Conflict, "this change is %s: only draft, submitted or approved changes can be edited", strings.ToLower(label(c.State)))
	}
	pol, err := ui.compiledPolicy(ctx)
	if err != nil {
		return err
	}
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return err
	}
	v, err := ui.editForm(ctx, c, changeValues(c, pol, zones.org), nil)
	if err != nil {
		return err
	}
	ui.render(w, r, http.StatusOK, "change_form", "Edit "+c.Title, v)
	return nil
}

// editForm is the change form for editing cur: it posts to the edit
// route with the revision in vals, asks why, says how many approvals
// saving withdraws, and offers to keep planned windows it cannot show.
func (ui *UI) editForm(ctx context.Context, cur change.Change, vals url.Values, problems map[string]string) (changeFormView, error) {
	v, err := ui.changeForm(ctx, vals, problems)
	if err != nil {
		return v, err
	}
	v.Edit, v.Action, v.CancelTo = true, changeURL(cur.ID)+"/edit", changeURL(cur.ID)
	v.Revision, _ = strconv.Atoi(vals.Get("revision"))
	v.Fields["why"] = formField{Name: "why", Label: "What changed and why", Kind: "textarea", Value: vals.Get("why"), Required: true,
		Hint: "Kept in the change's audit history.", Error: problems["why"]}
	if ws := cur.PlannedWindows; len(ws) > 1 || (len(ws) == 1 && ws[0].Window == "") {
		_, zones, err := ui.policyFacts(ctx)
		if err != nil {
			return v, err
		}
		wf := v.Fields["window"]
		wf.Options = append([]option{{Value: keepWindows, Label: "As planned: " + windowsText(ws, zones.org),
			Selected: vals.Get("window") == keepWindows}}, wf.Options...)
		v.Fields["window"] = wf
	}
	pol, err := ui.compiledPolicy(ctx)
	if err != nil {
		return v, err
	}
	if change.EditWithdrawsApprovals(pol, cur) {
		approvals, _, err := ui.cfg.Changes.Approvals(ctx, cur.ID)
		if err != nil {
			return v, err
		}
		for _, a := range approvals {
			if a.ExpiredAt == nil {
				v.Withdraws++
			}
		}
		v.Reopens = v.Withdraws > 0 && cur.State == change.Approved
	}
	return v, nil
}

// updateChange saves an edit made on the form at the revision it was
// loaded at; a change saved meanwhile is not overwritten: the service
// refuses the stale revision and the form comes back as typed.
func (ui *UI) updateChange(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	cur, err := ui.cfg.Changes.Get(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	vals := r.PostForm
	in, err := ui.changeFromForm(ctx, vals)
	if err != nil {
		return err
	}
	in.C.ID = cur.ID
	// What the form does not show is kept: a message text written through
	// the API, and planned windows it cannot express.
	in.C.Communication.Message = cur.Communication.Message
	if vals.Get("window") == keepWindows {
		in.C.PlannedWindows = cur.PlannedWindows
	}
	why := strings.TrimSpace(vals.Get("why"))
	if why == "" {
		in.Bad["why"] = "required: say what changed and why"
	}
	if in.C.Revision, err = formRevision(vals); err != nil {
		in.Bad["form"] = errs.Public(err)
	}
	status := http.StatusBadRequest
	if len(in.Bad) == 0 {
		_, err := ui.cfg.Changes.Update(ctx, changeUser(r, p), in.C, why)
		if err == nil {
			http.Redirect(w, r, changeURL(cur.ID)+"?done=edit", http.StatusSeeOther)
			return nil
		}
		if status, err = in.refused(err); err != nil {
			return err
		}
	}
	v, err := ui.editForm(ctx, cur, vals, in.Bad)
	if err != nil {
		return err
	}
	ui.render(w, r, status, "change_form", "Edit "+cur.Title, v)
	return nil
}

// ---- the change page ----

// goNoGoNote words where an emergency's go/no-go stands for its page.
func goNoGoNote(c change.Change, by when, now time.Time) string {
	switch {
	case c.State == change.Rejected:
		return "no-go: rejected"
	case c.State == change.Cancelled:
		return "cancelled"
	case c.State != change.Draft && c.State != change.Submitted:
		return "met: approved in time"
	case change.GoNoGoExpired(c, now):
		return "expired " + by.Span + " ago, unapproved"
	}
	return "in " + by.Span
}

type changeView struct {
	C change.Change
	// ManualDue is each patch's manual-task due date as a day in the site
	// zone (where the form read it), "" for package patches.
	ManualDue []string
	Findings  []findingChoice
	Assets    []targetRef
	Groups    []targetRef
	Windows   string
	Created   when
	Updated   when
	GoNoGo    when
	Declared  when
	// NextOpenings says when each named planned window next opens, for a
	// change waiting for it ("servers-weekly: Sun 29 Nov 2026, 02:00 CST").
	NextOpenings []string
	// GoNoGoNote says where the time box stands: "in 3 hours", "expired
	// 20 minutes ago, unapproved", "met: approved in time", "no-go".
	GoNoGoNote string
	Timeline   []transitionRow
	// Approval status and the decision form.
	Approvals   []approvalRow
	Status      change.ApprovalStatus
	StillNeeded []string
	CanDecide   bool
	AsOptions   []option
	DecideHint  string
	// Separated says why separation of duties keeps this user from
	// deciding: they requested or edited the change.
	Separated string
	// EditURL is the edit form's address, for a user who may edit the
	// change in a state that can still be edited.
	EditURL string
	// Actions are the legal moves the user may make, as forms.
	Actions []actionForm
	Runs    []runRow
	// CanTest offers the test-run and evidence forms.
	CanTest   bool
	Evidence  []evidenceRow
	Protocol  []protocolRow
	SignOffs  []signOffRow
	CanReview bool
	Review    *change.Review
	ReviewAt  when
	// Done names what the user just did; Message why the last action
	// failed, with Problems per field.
	Done     string
	Message  string
	Problems []string
	Failed   string
	// FailedWhy/FailedNote give back what the user typed.
	FailedWhy string
	Audit     string
	MaxUpload string
	// Deploy is the change's rollout; nil before it starts.
	Deploy *deploymentView
}

type transitionRow struct {
	change.Transition
	At when
}

type approvalRow struct {
	change.Approval
	At      when
	Expired when
}

type actionForm struct {
	ID       string
	Action   change.Action
	Button   string
	To       change.State
	NeedsWhy bool
	Danger   bool
	Revision int
	Why      string
	// Windows are the policy windows the schedule form offers; a change
	// drafted with "decide when scheduling" is given its window here.
	Windows []option
	// NeedsWindow is set when the change has no planned window yet.
	NeedsWindow bool
}

type runRow struct {
	change.TestRun
	At      when
	Verdict string
	Stale   bool
}

type evidenceRow struct {
	change.Evidence
	At  when
	URL string
}

type protocolRow struct {
	change.TestStep
	Required bool
	// Result and Notes give back what was typed when a test-run form is
	// refused, so nobody enters a run twice.
	Result, Notes string
}

type signOffRow struct {
	change.SignOff
	At      when
	CanSign bool
}

// actionInfo is how each state move is offered: its button, the
// permission it needs and whether the service requires a why.
var actionInfo = map[change.Action]struct {
	button   string
	perm     auth.Permission
	needsWhy bool
	danger   bool
}{
	change.ActSubmit:   {"Submit for approval", auth.PermChangeWrite, false, false},
	change.ActRework:   {"Return to draft for rework", auth.PermChangeWrite, false, false},
	change.ActSchedule: {"Schedule", auth.PermChangeOperate, false, false},
	change.ActStart:    {"Start deployment", auth.PermChangeOperate, false, false},
	change.ActComplete: {"Complete", auth.PermChangeOperate, false, false},
	change.ActHalt:     {"Halt", auth.PermChangeOperate, true, true},
	change.ActResume:   {"Resume", auth.PermChangeOperate, false, false},
	change.ActRollBack: {"Roll back", auth.PermChangeOperate, true, true},
	change.ActCancel:   {"Cancel change", auth.PermChangeWrite, true, true},
}

func (ui *UI) showChange(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	v, err := ui.changePage(r, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	v.Done = r.URL.Query().Get("done")
	ui.render(w, r, http.StatusOK, "change", v.C.Title, v)
	return nil
}

func (ui *UI) changePage(r *http.Request, p auth.Principal, id string) (changeView, error) {
	ctx := r.Context()
	svc := ui.cfg.Changes
	c, err := svc.Get(ctx, id)
	if err != nil {
		return changeView{}, err
	}
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return changeView{}, err
	}
	pol, err := ui.compiledPolicy(ctx)
	if err != nil {
		return changeView{}, err
	}
	now := ui.cfg.Now()
	at := func(t time.Time) when { return whenAt(t, zones.org, now) }
	v := changeView{C: c, Windows: windowsText(c.PlannedWindows, zones.org), Created: at(c.CreatedAt), Updated: at(c.UpdatedAt),
		MaxUpload: fmt.Sprintf("%d MiB", change.MaxEvidence>>20)}
	if c.State == change.Approved || c.State == change.Scheduled {
		v.NextOpenings = nextOpenings(pol, c.PlannedWindows, zones.org, now)
	}
	for _, pt := range c.Patches {
		due := ""
		if pt.Manual != nil && pt.Manual.Due != nil {
			due = pt.Manual.Due.In(zones.org).Format(dateLayout)
		}
		v.ManualDue = append(v.ManualDue, due)
	}
	if c.State.Editable() && p.Can(auth.PermChangeWrite) {
		v.EditURL = changeURL(c.ID) + "/edit"
	}
	if c.Emergency != nil {
		v.GoNoGo, v.Declared = at(c.Emergency.GoNoGoBy), at(c.Emergency.DeclaredAt)
		v.GoNoGoNote = goNoGoNote(c, v.GoNoGo, now)
		if rv := c.Emergency.PostIncidentReview; rv != nil {
			v.Review, v.ReviewAt = rv, at(rv.At)
		}
	}
	if p.Can(auth.PermAuditRead) && ui.cfg.Audit != nil {
		v.Audit = "/audit?" + url.Values{"object_type": {"change"}, "object_id": {c.ID}}.Encode()
	}
	names := assetNames{inv: ui.cfg.Inventory}
	for _, fid := range c.Findings {
		fc := findingChoice{ID: fid, Label: fid}
		if ui.cfg.Findings != nil {
			if f, err := ui.cfg.Findings.Finding(ctx, fid); err == nil {
				an, err := names.name(ctx, f.AssetID)
				if err != nil {
					return v, err
				}
				fc.Label = f.VulnID + " on " + an
			}
		}
		v.Findings = append(v.Findings, fc)
	}
	tg := ui.targets()
	for _, a := range c.Targets.Assets {
		ref, err := tg.ref(ctx, "asset", a)
		if err != nil {
			return v, err
		}
		v.Assets = append(v.Assets, ref)
	}
	for _, g := range c.Targets.Groups {
		ref, err := tg.ref(ctx, "group", g)
		if err != nil {
			return v, err
		}
		v.Groups = append(v.Groups, ref)
	}
	hist, err := svc.History(ctx, id)
	if err != nil {
		return v, err
	}
	for _, t := range slices.Backward(hist) {
		v.Timeline = append(v.Timeline, transitionRow{Transition: t, At: at(t.At)})
	}
	approvals, status, err := svc.Approvals(ctx, id)
	if err != nil {
		return v, err
	}
	v.Status = status
	for _, a := range approvals {
		row := approvalRow{Approval: a, At: at(a.At)}
		if a.ExpiredAt != nil {
			row.Expired = at(*a.ExpiredAt)
		}
		v.Approvals = append(v.Approvals, row)
	}
	req := status.Requirement
	if n := req.Quorum - status.QuorumMet; n > 0 {
		v.StillNeeded = append(v.StillNeeded, fmt.Sprintf("%d more of %s", n, strings.Join(req.Roles, ", ")))
	}
	for _, ca := range status.MissingClass {
		v.StillNeeded = append(v.StillNeeded, fmt.Sprintf("%s (for %s)", ca.Role, ca.Class))
	}
	decidable := c.State == change.Submitted && p.Can(auth.PermChangeApprove)
	if decidable && change.GoNoGoExpired(c, now) {
		v.Separated, decidable = fmt.Sprintf("The go/no-go deadline passed (%s): this emergency change can no longer be approved or rejected. Cancel it and declare a new one if the fix is still needed.", v.GoNoGo.Text), false
	}
	if decidable {
		// Separation of duties is the service's rule: the form is not
		// offered to whoever it would refuse, and they are told why.
		if err := change.MayDecide(pol, c, changeUser(r, p)); err != nil {
			v.Separated, decidable = sentence(errs.Public(err)), false
		}
	}
	if decidable {
		for _, role := range change.SigningRoles(pol, status, changeUser(r, p)) {
			v.AsOptions = append(v.AsOptions, option{Value: role, Label: role})
		}
		v.CanDecide = len(v.AsOptions) > 0
		if !v.CanDecide {
			v.DecideHint = fmt.Sprintf("You hold none of the policy roles that approve this change (%s); an admin assigns policy roles.",
				strings.Join(req.Approvers(), ", "))
		}
	}
	if v.Deploy, err = ui.deployment(ctx, p, c.ID, zones); err != nil {
		return v, err
	}
	if v.Audit != "" && v.Deploy != nil {
		// The rollout's entries (start, manual outcomes, halts, rollback)
		// are the change's history too.
		v.Audit = "/audit?" + url.Values{"object_id": {c.ID, v.Deploy.R.ID}}.Encode()
	}
	for _, m := range change.MovesFrom(c.State) {
		info, ok := actionInfo[m.Action]
		if !ok || !p.Can(info.perm) {
			continue
		}
		needsWhy := info.needsWhy
		if v.Deploy != nil && v.Deploy.Active && slices.Contains(deploy.ChangeMoves, m.Action) {
			if !offeredUnderRollout(m.Action, v.Deploy.R.State) {
				continue
			}
			// Through the rollout, every move but complete needs a reason.
			needsWhy = m.Action != change.ActComplete
		}
		af := actionForm{ID: c.ID, Action: m.Action, Button: info.button, To: m.To, NeedsWhy: needsWhy,
			Danger: info.danger, Revision: c.Revision}
		if m.Action == change.ActSchedule {
			af.NeedsWindow = len(c.PlannedWindows) == 0
			keep := "Keep the planned window"
			if af.NeedsWindow {
				keep = "Choose a window"
			}
			af.Windows = []option{{Value: "", Label: keep}}
			pp := pol.Policy()
			for _, w := range pp.Windows {
				if !w.Emergency || c.Type == change.Emergency {
					af.Windows = append(af.Windows, option{Value: w.Name, Label: w.Name})
				}
			}
			if c.Type == change.Emergency && pp.Emergency.Window == policy.WindowImmediate {
				af.Windows = append(af.Windows, option{Value: policy.WindowImmediate, Label: "Immediately"})
			}
		}
		v.Actions = append(v.Actions, af)
	}
	classes := status.Requirement.Classes
	required := change.RequiredCases(pol, c.Type, classes)
	for _, s := range c.TestProtocol {
		v.Protocol = append(v.Protocol, protocolRow{TestStep: s, Required: slices.Contains(required, s.CaseID)})
	}
	runs, err := svc.TestRuns(ctx, id)
	if err != nil {
		return v, err
	}
	for _, run := range slices.Backward(runs) {
		row := runRow{TestRun: run, At: at(run.At), Verdict: "pass", Stale: run.At.Before(c.EditedAt)}
		for _, res := range run.Results {
			if res.Result == change.ResultFail {
				row.Verdict = "fail"
				break
			}
			if res.Result != change.ResultPass {
				row.Verdict = "partial"
			}
		}
		if row.Verdict == "pass" {
			// A run that never ran a case the policy requires is not a
			// passed run, however its recorded cases went.
			passed := map[string]bool{}
			for _, res := range run.Results {
				passed[res.CaseID] = res.Result == change.ResultPass
			}
			for _, id := range required {
				if !passed[id] {
					row.Verdict = "partial"
					break
				}
			}
		}
		v.Runs = append(v.Runs, row)
	}
	ev, err := svc.EvidenceList(ctx, id)
	if err != nil {
		return v, err
	}
	for _, e := range ev {
		v.Evidence = append(v.Evidence, evidenceRow{Evidence: e, At: at(e.At), URL: changeURL(c.ID) + "/evidence/" + e.SHA256})
	}
	v.CanTest = p.Can(auth.PermChangeWrite) && slices.Contains([]change.State{change.Draft, change.Submitted, change.Approved,
		change.Scheduled, change.InProgress, change.Halted}, c.State) && len(c.TestProtocol) > 0
	signable := slices.Contains([]change.State{change.Scheduled, change.InProgress, change.Halted}, c.State)
	for _, so := range c.SignOffs {
		row := signOffRow{SignOff: so, CanSign: signable && so.At == nil && p.Can(auth.PermChangeWrite)}
		if so.At != nil {
			row.At = at(*so.At)
		}
		v.SignOffs = append(v.SignOffs, row)
	}
	v.CanReview = c.Type == change.Emergency && v.Review == nil && p.Can(auth.PermChangeWrite) &&
		slices.Contains([]change.State{change.InProgress, change.Halted, change.Completed, change.RolledBack, change.Cancelled}, c.State)
	return v, nil
}

// failChange shows the change as it is now with why the action failed:
// a refused approval, an illegal or guarded move, a stale revision.
// Errors of other kinds (not found, faults) go to the error page.
func (ui *UI) failChange(w http.ResponseWriter, r *http.Request, p auth.Principal, id, failed, typed string, err error) error {
	kind := errs.KindOf(err)
	if kind != errs.Invalid && kind != errs.Forbidden && kind != errs.Conflict && kind != errs.TooLarge {
		return err
	}
	v, verr := ui.changePage(r, p, id)
	if verr != nil {
		return verr
	}
	v.Message, v.Failed, v.FailedWhy = errs.Public(err), failed, typed
	// A test run's results are numbered by the service in the order they
	// were posted; the page names the case instead.
	var posted []string
	if failed == "test" && r.PostForm != nil {
		for _, row := range v.Protocol {
			if r.PostForm.Get("result_"+row.CaseID) != "" {
				posted = append(posted, row.Name)
			}
		}
	}
	for k, msg := range errs.FieldsOf(err) {
		l := fieldLabel(k)
		if base, rest, ok := strings.Cut(k, "["); ok && base == "results" {
			if i, err := strconv.Atoi(strings.TrimSuffix(rest, "]")); err == nil && i >= 0 && i < len(posted) {
				l = posted[i]
			}
		}
		v.Problems = append(v.Problems, l+": "+msg)
	}
	slices.Sort(v.Problems)
	if len(v.Problems) > 0 {
		v.Message = "The change was not changed:"
	}
	if kind == errs.Conflict {
		v.Message += " The page now shows the change as it is."
	}
	for i := range v.Actions {
		if string(v.Actions[i].Action) == failed {
			v.Actions[i].Why = typed
		}
	}
	if failed == "test" && r.PostForm != nil {
		for i := range v.Protocol {
			v.Protocol[i].Result = r.PostForm.Get("result_" + v.Protocol[i].CaseID)
			v.Protocol[i].Notes = r.PostForm.Get("notes_" + v.Protocol[i].CaseID)
		}
	}
	ui.render(w, r, errs.HTTPStatus(err), "change", v.C.Title, v)
	return nil
}

// formRevision reads the revision a form was rendered at.
func formRevision(vals url.Values) (int, error) {
	rev, err := strconv.Atoi(vals.Get("revision"))
	if err != nil || rev < 1 {
		return 0, errs.E(errs.Invalid, "the form is missing the change's revision; reload the page and try again")
	}
	return rev, nil
}

// actChange makes one state move. The route needs the right to write
// changes; moves that carry a change out need the right to operate too.
func (ui *UI) actChange(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	act := change.Action(r.PostForm.Get("action"))
	why := strings.TrimSpace(r.PostForm.Get("why"))
	rev, err := formRevision(r.PostForm)
	info, ok := actionInfo[act]
	switch {
	case err != nil:
	case !ok:
		err = errs.E(errs.Invalid, "%q is not an action a change page offers", act)
	case !p.Can(info.perm):
		err = errs.E(errs.Forbidden, "your role (%s) may not %s a change", label(p.Role), strings.ReplaceAll(string(act), "_", " "))
	}
	if err == nil {
		u, st, svc := changeUser(r, p), change.Step{Why: why, Revision: rev}, ui.cfg.Changes
		switch {
		case ui.cfg.Rollouts != nil && slices.Contains(deploy.ChangeMoves, act):
			// Halt, resume, roll back, cancel and complete act through the
			// change's rollout while it is active, as in the API and the
			// CLI, so the change and its deployment never disagree.
			_, _, err = ui.cfg.Rollouts.ChangeMove(ctx, u, id, act, st)
		case act == change.ActSubmit:
			_, err = svc.Submit(ctx, u, id, st)
		case act == change.ActRework:
			_, err = svc.Rework(ctx, u, id, st)
		case act == change.ActSchedule:
			var windows []change.PlannedWindow
			if w := strings.TrimSpace(r.PostFormValue("window")); w != "" {
				windows = []change.PlannedWindow{{Window: w}}
			}
			_, err = svc.Schedule(ctx, u, id, windows, st)
		case act == change.ActStart:
			_, err = svc.Start(ctx, u, id, st)
		case act == change.ActComplete:
			_, err = svc.Complete(ctx, u, id, st)
		case act == change.ActHalt:
			_, err = svc.Halt(ctx, u, id, st)
		case act == change.ActResume:
			_, err = svc.Resume(ctx, u, id, st)
		case act == change.ActRollBack:
			_, err = svc.RollBack(ctx, u, id, st)
		case act == change.ActCancel:
			_, err = svc.Cancel(ctx, u, id, st)
		}
		if err == nil {
			http.Redirect(w, r, changeURL(id)+"?done="+url.QueryEscape(string(act)), http.StatusSeeOther)
			return nil
		}
	}
	return ui.failChange(w, r, p, id, string(act), why, err)
}

// decideChange records an approver's approval or rejection, signed as the
// policy role they chose.
func (ui *UI) decideChange(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	decision := r.PostForm.Get("decision")
	d := change.Decision{As: r.PostForm.Get("as"), Note: r.PostForm.Get("note")}
	var err error
	d.Revision, err = formRevision(r.PostForm)
	if err == nil {
		u := changeUser(r, p)
		switch decision {
		case change.Approve:
			_, _, err = ui.cfg.Changes.Approve(ctx, u, id, d)
		case change.Reject:
			_, err = ui.cfg.Changes.Reject(ctx, u, id, d)
		default:
			err = errs.E(errs.Invalid, "decision must be approve or reject")
		}
		if err == nil {
			http.Redirect(w, r, changeURL(id)+"?done="+decision, http.StatusSeeOther)
			return nil
		}
	}
	return ui.failChange(w, r, p, id, "decide", d.Note, err)
}

// maxRunBytes bounds a test-run form: its evidence files together may be
// as large as one attachment may be, plus the form's text.
const maxRunBytes = change.MaxEvidence + maxFormBytes

// recordTestRun records one run of the protocol from a multipart form: per
// case a result, notes, evidence already attached and a file to attach.
func (ui *UI) recordTestRun(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	id := r.PathValue("id")
	c, err := ui.cfg.Changes.Get(ctx, id)
	if err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRunBytes)
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		return ui.failChange(w, r, p, id, "test", "", uploadError(err))
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	u := changeUser(r, p)
	run := change.TestRun{}
	for _, s := range c.TestProtocol {
		res := r.PostForm.Get("result_" + s.CaseID)
		if res == "" {
			continue
		}
		cr := change.CaseResult{CaseID: s.CaseID, Result: res, Notes: r.PostForm.Get("notes_" + s.CaseID)}
		for _, sum := range cleanValues(r.PostForm["evidence_"+s.CaseID]) {
			cr.Evidence = append(cr.Evidence, change.EvidenceRef{SHA256: sum})
		}
		for _, fh := range r.MultipartForm.File["file_"+s.CaseID] {
			if fh.Size == 0 && fh.Filename == "" {
				continue
			}
			e, err := ui.attach(ctx, u, id, fh)
			if err != nil {
				return ui.failChange(w, r, p, id, "test", "", err)
			}
			cr.Evidence = append(cr.Evidence, change.EvidenceRef{SHA256: e.SHA256, Name: e.Name})
		}
		run.Results = append(run.Results, cr)
	}
	if _, err := ui.cfg.Changes.RecordTestRun(ctx, u, id, run); err != nil {
		return ui.failChange(w, r, p, id, "test", "", err)
	}
	http.Redirect(w, r, changeURL(id)+"?done=test#test-runs", http.StatusSeeOther)
	return nil
}

// uploadError turns a multipart parse failure into what the user did
// wrong: too large, or not a form upload.
func uploadError(err error) error {
	if mbe, ok := err.(*http.MaxBytesError); ok {
		return errs.E(errs.TooLarge, "the upload is larger than %d MiB", mbe.Limit>>20)
	}
	return errs.Wrap(errs.Invalid, err, "the upload could not be read; attach files with the form")
}

func (ui *UI) attach(ctx context.Context, u change.User, id string, fh *multipart.FileHeader) (change.Evidence, error) {
	f, err := fh.Open()
	if err != nil {
		return change.Evidence{}, fmt.Errorf("open uploaded evidence: %w", err)
	}
	defer f.Close()
	return ui.cfg.Changes.AddEvidence(ctx, u, id, fh.Filename, fh.Header.Get("Content-Type"), f)
}

// uploadEvidence attaches one file to the change.
func (ui *UI) uploadEvidence(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := ui.cfg.Changes.Get(ctx, id); err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRunBytes)
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		return ui.failChange(w, r, p, id, "evidence", "", uploadError(err))
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	fhs := r.MultipartForm.File["file"]
	if len(fhs) == 0 {
		return ui.failChange(w, r, p, id, "evidence", "", errs.E(errs.Invalid, "choose a file to attach"))
	}
	for _, fh := range fhs {
		if _, err := ui.attach(ctx, changeUser(r, p), id, fh); err != nil {
			return ui.failChange(w, r, p, id, "evidence", "", err)
		}
	}
	http.Redirect(w, r, changeURL(id)+"?done=evidence#evidence", http.StatusSeeOther)
	return nil
}

// downloadEvidence hands out an attachment after the service checked it
// against its hash. It is always a download, never rendered inline: an
// uploaded HTML file must not run as a page of this site.
func (ui *UI) downloadEvidence(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	e, rd, err := ui.cfg.Changes.GetEvidence(r.Context(), r.PathValue("id"), r.PathValue("sha256"))
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(e.Name))
	h.Set("Content-Length", strconv.FormatInt(e.Size, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Digest", "sha-256="+e.SHA256)
	_, err = io.Copy(w, rd)
	if err != nil {
		ui.log.WarnContext(r.Context(), "web: evidence download interrupted", "change", e.ChangeID, "sha256", e.SHA256, "err", err)
	}
	return nil
}

// signOffChange gives one of the change's requested sign-offs.
func (ui *UI) signOffChange(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	note := r.PostForm.Get("note")
	rev, err := formRevision(r.PostForm)
	if err == nil {
		_, err = ui.cfg.Changes.SignOff(r.Context(), changeUser(r, p), id, r.PostForm.Get("role"), note, rev)
		if err == nil {
			http.Redirect(w, r, changeURL(id)+"?done=signoff", http.StatusSeeOther)
			return nil
		}
	}
	return ui.failChange(w, r, p, id, "signoff", note, err)
}

// reviewChange records an emergency change's post-incident review.
func (ui *UI) reviewChange(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	summary := r.PostForm.Get("summary")
	rev, err := formRevision(r.PostForm)
	if err == nil {
		_, err = ui.cfg.Changes.RecordReview(r.Context(), changeUser(r, p), id,
			change.Review{Summary: summary, Lessons: lines(r.PostForm.Get("lessons"))}, rev)
		if err == nil {
			http.Redirect(w, r, changeURL(id)+"?done=review", http.StatusSeeOther)
			return nil
		}
	}
	return ui.failChange(w, r, p, id, "review", summary, err)
}
