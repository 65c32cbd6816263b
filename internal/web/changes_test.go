package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// changeEnv is the UI on the real change service, the real inventory and
// the real policy service (the built-in default policy) on a real SQLite
// database; findings on its assets come from a fake.
type changeEnv struct {
	*env
	changes *change.Service
	inv     *inventory.Service
	// ids are the seeded assets' IDs by name.
	ids   map[string]string
	feeds *fakeFeedTokens
}

func newChangeEnv(t *testing.T) *changeEnv { t.Helper(); return newChangeEnvWith(t, nil) }

// newChangeEnvWith is newChangeEnv with more wiring: with, if not nil,
// may change the UI's config on the same database before the UI is built.
func newChangeEnvWith(t *testing.T, with func(db *store.DB, cfg *Config)) *changeEnv {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, store.Options{})
	inv := inventory.NewService(db.Inventory(), nil)
	actor := audit.Actor{Kind: audit.ActorSystem, Name: "web-test"}
	lab, err := inv.CreateSite(ctx, actor, inventory.Site{Name: "Riverside Laboratory", TimeZone: "America/Denver"})
	if err != nil {
		t.Fatal(err)
	}
	clinic, err := inv.CreateSite(ctx, actor, inventory.Site{Name: "Riverside Clinic", TimeZone: "America/Chicago"})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, a := range []inventory.Asset{
		{Name: "Chemistry analyzer", Type: inventory.TypeAnalyzer, Serial: "CH-1", SiteID: lab.ID, BusinessOwner: "Lab director"},
		{Name: "Front desk PC", Type: inventory.TypeEndpoint, Serial: "FD-1", SiteID: clinic.ID, MaintenanceWindow: "sun-0200-0500"},
		{Name: "Old kiosk", Type: inventory.TypeEndpoint, Serial: "K-1", SiteID: clinic.ID, MaintenanceWindow: "whenever"},
	} {
		out, err := inv.CreateAsset(ctx, actor, a)
		if err != nil {
			t.Fatalf("seed %s: %v", a.Name, err)
		}
		ids[a.Name] = out.ID
	}
	policies := policy.NewService(db.Policies(), nil)
	svc := change.NewService(db.Changes(), policies, db.Risk(), func() time.Time { return riskNow })
	day := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	ff := &fakeFindings{findings: []match.Finding{
		{ID: "f-ssl-chem", AssetID: ids["Chemistry analyzer"], Ecosystem: "Debian:12", Package: "openssl", Version: "3.0.11-1",
			VulnID: "CVE-2024-0727", FixedVersion: "3.0.13-1", Source: match.SourceOSV, State: match.StateOpen, FirstSeen: day, LastSeen: day},
		{ID: "f-ssl-pc", AssetID: ids["Front desk PC"], Ecosystem: "Debian:12", Package: "openssl", Version: "3.0.11-1",
			VulnID: "CVE-2024-0727", FixedVersion: "3.0.13-1", Source: match.SourceOSV, State: match.StateOpen, FirstSeen: day, LastSeen: day},
		{ID: "f-curl-pc", AssetID: ids["Front desk PC"], Ecosystem: "Debian:12", Package: "curl", Version: "7.88.1-10",
			VulnID: "CVE-2023-38545", FixedVersion: "7.88.1-10+deb12u4", Source: match.SourceOSV, State: match.StateOpen, FirstSeen: day, LastSeen: day},
		{ID: "f-pump", AssetID: ids["Chemistry analyzer"], Ecosystem: "CSAF", Package: "roche:cobas", Version: "1.2",
			VulnID: "CVE-2024-9999", FixNote: "Roche service installs 1.3 on request", Source: match.SourceCSAF, State: match.StateOpen, FirstSeen: day, LastSeen: day},
	}}
	e := &env{t: t, accounts: newFakeAccounts(), logs: &bytes.Buffer{}, findings: ff, risk: newFakeRisk()}
	feeds := &fakeFeedTokens{}
	cfg := Config{Accounts: e.accounts, Inventory: inv, Findings: ff, Risk: e.risk, Policy: policies, Changes: svc, FeedTokens: feeds,
		Now: func() time.Time { return riskNow }, Log: slog.New(slog.NewTextHandler(e.logs, nil))}
	if with != nil {
		with(db, &cfg)
	}
	ui, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.h = authn.Middleware(e.accounts, func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, errs.Public(err), errs.HTTPStatus(err))
	})(ui.Handler())
	return &changeEnv{env: e, changes: svc, inv: inv, ids: ids, feeds: feeds}
}

// user is the change-service user a fake session's role signs in as.
func user(r auth.Role) change.User {
	p := principal(r)
	return change.User{Actor: p.Actor(""), Role: string(r), PolicyRoles: p.PolicyRoles}
}

// newForm opens the new-change form for findings and returns it filled
// in where the prefill leaves gaps (recovery steps and their owner).
func (e *changeEnv) newForm(role auth.Role, query string) (url.Values, *goquery.Document) {
	e.t.Helper()
	w := e.get("/changes/new?"+query, role)
	wantStatus(e.t, w, http.StatusOK)
	doc := parse(e.t, w)
	vals := formValues(doc.Find("#change-form"))
	vals.Set("rb_steps", "Restore the pre-change snapshot\nConfirm the service starts")
	vals.Set("rb_owner", "Clinic IT on call")
	return vals, doc
}

// create posts vals and returns the new change's ID.
func (e *changeEnv) create(role auth.Role, vals url.Values) string {
	e.t.Helper()
	w := e.post("/changes/new", role, vals)
	wantStatus(e.t, w, http.StatusSeeOther)
	loc := w.Header().Get("Location")
	id, ok := strings.CutPrefix(strings.TrimSuffix(loc, "?done=create"), "/changes/")
	if !ok {
		e.t.Fatalf("created change redirects to %q", loc)
	}
	return id
}

// page opens a change page.
func (e *changeEnv) page(id string, role auth.Role) *goquery.Document {
	e.t.Helper()
	w := e.get("/changes/"+id, role)
	wantStatus(e.t, w, http.StatusOK)
	return parse(e.t, w)
}

// act posts the form for action from the change page as role.
func (e *changeEnv) act(id string, role auth.Role, action, why string) *goquery.Document {
	e.t.Helper()
	doc := e.page(id, role)
	form := doc.Find("#act-" + action)
	if form.Length() != 1 {
		e.t.Fatalf("no %s form on the change page for %s", action, role)
	}
	vals := formValues(form)
	vals.Set("why", why)
	w := e.post("/changes/"+id+"/act", role, vals)
	wantStatus(e.t, w, http.StatusSeeOther)
	return e.page(id, role)
}

func (e *changeEnv) decide(id string, role auth.Role, decision, as, note string) *http.Response {
	e.t.Helper()
	doc := e.page(id, role)
	vals := formValues(doc.Find("#decide-form"))
	vals.Set("decision", decision)
	vals.Set("as", as)
	vals.Set("note", note)
	return e.post("/changes/"+id+"/decide", role, vals).Result()
}

func TestChangeFormPrefilledFromFindings(t *testing.T) {
	e := newChangeEnv(t)
	vals, doc := e.newForm(auth.RoleOperator, "finding=f-ssl-chem&finding=f-ssl-pc&finding=nope")
	if got := vals.Get("title"); got != "Update openssl to 3.0.13-1 (CVE-2024-0727)" {
		t.Errorf("title = %q", got)
	}
	if diff := cmp.Diff([]string{"f-ssl-chem", "f-ssl-pc"}, vals["finding"]); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{e.ids["Chemistry analyzer"], e.ids["Front desk PC"]}, vals["asset"]); diff != "" {
		t.Errorf("assets (-want +got):\n%s", diff)
	}
	// One patch row per distinct package and fixed version, plus a blank.
	if diff := cmp.Diff([]string{"openssl", ""}, vals["pkg"]); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"3.0.13-1", ""}, vals["version"]); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	// The analyzer brings the laboratory cases and the director's sign-off.
	wantCases := []string{"backup-verified", "order-entry", "result-routing", "instrument-communication", "qc-run",
		"result-verification", "interface-messaging", "boot-time", "edr-compatibility", "connectivity"}
	if diff := cmp.Diff(wantCases, vals["case"]); diff != "" {
		t.Errorf("pre-selected cases (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"laboratory-director"}, vals["signoff"]); diff != "" {
		t.Errorf("sign-offs (-want +got):\n%s", diff)
	}
	if got := vals.Get("rb_triggers"); !strings.Contains(got, "Abnormal QC results after the patch") {
		t.Errorf("rollback triggers not prefilled from the policy: %q", got)
	}
	if got := text(doc.Find(`label[for="f-finding-0"]`)); got != "CVE-2024-0727 on Chemistry analyzer (openssl 3.0.11-1)" {
		t.Errorf("finding label = %q", got)
	}
	doc.Find("#change-form label").Each(func(_ int, l *goquery.Selection) {
		if f := l.AttrOr("for", ""); f != "" && doc.Find("#"+f).Length() != 1 {
			t.Errorf("label for %q points at nothing", f)
		}
	})

	// Saved as a draft, it carries it all.
	vals.Set("window", "monthly-baseline")
	vals.Set("notify", "Lab operations\nHelp desk")
	vals.Set("task", "Vendor re-validates the analyzer")
	vals.Set("task_owner", "Roche field engineer")
	vals.Set("task_due", "2026-04-15")
	id := e.create(auth.RoleOperator, vals)
	c, err := e.changes.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != change.Draft || c.Type != change.Normal || c.RequestedBy != "operator" {
		t.Errorf("created %s %s by %s", c.State, c.Type, c.RequestedBy)
	}
	if diff := cmp.Diff([]string{"CVE-2024-0727"}, c.Advisories); diff != "" {
		t.Errorf("advisories (-want +got):\n%s", diff)
	}
	if len(c.Patches) != 2 || c.Patches[1].Manual == nil || c.Patches[1].Manual.Due == nil ||
		!c.Patches[1].Manual.Due.Equal(time.Date(2026, 4, 15, 5, 0, 0, 0, time.UTC)) {
		t.Errorf("patches = %+v", c.Patches)
	}
	doc = e.page(id, auth.RoleViewer)
	if doc.Find("#planned").Text() != "monthly-baseline" {
		t.Errorf("planned = %q", doc.Find("#planned").Text())
	}
	if got := text(doc.Find("#target-assets")); got != "Chemistry analyzer, Front desk PC" {
		t.Errorf("targets = %q", got)
	}
	if n := doc.Find("#protocol tbody tr").Length(); n != len(wantCases) {
		t.Errorf("protocol rows = %d", n)
	}
	if got := text(doc.Find(`#signoff-table tr[data-role="laboratory-director"] td`).Eq(1)); got != "not yet" {
		t.Errorf("sign-off = %q", got)
	}
	// The viewer reads but is offered nothing to do.
	for _, sel := range []string{"#actions", "#decide-form", "#test-form", "#evidence-form"} {
		if doc.Find(sel).Length() != 0 {
			t.Errorf("viewer is offered %s", sel)
		}
	}
	// The list shows it.
	doc = parse(t, e.get("/changes?state=draft", auth.RoleViewer))
	row := doc.Find(`#change-table tr[data-change-id="` + id + `"]`)
	if got := text(row.Find("td.window")); got != "monthly-baseline" {
		t.Errorf("list window = %q", got)
	}
	if got := text(row.Find("td.requester")); got != "operator" {
		t.Errorf("list requester = %q", got)
	}
	if n := parse(t, e.get("/changes?type=emergency", auth.RoleViewer)).Find("#change-table tbody tr").Length(); n != 0 {
		t.Errorf("emergency filter lists %d", n)
	}
	w := e.get("/changes?state=pending", auth.RoleViewer)
	wantStatus(t, w, http.StatusBadRequest)
	if parse(t, w).Find("#change-filters").Length() != 1 {
		t.Error("bad filter: no form to fix it")
	}
}

func TestChangeFormValidation(t *testing.T) {
	e := newChangeEnv(t)
	vals, _ := e.newForm(auth.RoleOperator, "finding=f-ssl-pc")
	vals.Set("title", "")
	vals.Set("task_due", "next week")
	vals.Set("task", "Re-flash")
	vals.Set("assets_more", "No such box")
	w := e.post("/changes/new", auth.RoleOperator, vals)
	wantStatus(t, w, http.StatusBadRequest)
	doc := parse(t, w)
	errsText := text(doc.Find("#form-errors"))
	for _, want := range []string{"Assets: no asset has the ID or name \"No such box\"", "a manual task's due date must be a date"} {
		if !strings.Contains(errsText, want) {
			t.Errorf("errors %q lack %q", errsText, want)
		}
	}
	// Fixed, the service's own validation speaks.
	vals.Set("assets_more", "Front desk PC")
	vals.Set("task_due", "2026-04-01")
	vals.Set("task_owner", "")
	w = e.post("/changes/new", auth.RoleOperator, vals)
	wantStatus(t, w, http.StatusBadRequest)
	doc = parse(t, w)
	if got := text(doc.Find(`[data-field="title"] .error`)); got != "required" {
		t.Errorf("title error = %q", got)
	}
	if got := text(doc.Find("#form-errors")); !strings.Contains(got, "Patches (row 2): a manual task needs a description and an owner") {
		t.Errorf("errors = %q", got)
	}
	// What was typed comes back.
	back := formValues(doc.Find("#change-form"))
	if back.Get("task") != "Re-flash" || back.Get("assets_more") != "Front desk PC" || back.Get("rb_owner") != "Clinic IT on call" {
		t.Errorf("form not given back: %v", back)
	}
	// An emergency without a justification; the emergency form shows the
	// abbreviated test set.
	vals, doc = e.newForm(auth.RoleAdmin, "type=emergency&finding=f-ssl-chem")
	if got := doc.Find(`#protocol-set input[name="case"]`).Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("value", "") }); !cmp.Equal(got,
		[]string{"backup-verified", "instrument-communication", "qc-run", "order-entry", "result-routing"}) {
		t.Errorf("emergency cases = %v", got)
	}
	if vals.Get("window") != "emergency" {
		t.Errorf("emergency window = %q", vals.Get("window"))
	}
	w = e.post("/changes/new", auth.RoleAdmin, vals)
	wantStatus(t, w, http.StatusBadRequest)
	if got := text(parse(t, w).Find(`[data-field="justification"] .error`)); got != "an emergency change must say why it cannot wait" {
		t.Errorf("justification error = %q", got)
	}
	// An operator may not declare one (policy emergency.authority).
	vals.Set("justification", "KEV-listed, exploited against peers")
	w = e.post("/changes/new", auth.RoleOperator, vals)
	wantStatus(t, w, http.StatusForbidden)
	if got := text(parse(t, w).Find("#form-errors")); !strings.Contains(got, "only a holder of it-manager or security-officer may declare an emergency change") {
		t.Errorf("authority error = %q", got)
	}
}

func TestChangePagesForbidden(t *testing.T) {
	e := newChangeEnv(t)
	vals, _ := e.newForm(auth.RoleOperator, "finding=f-ssl-pc")
	id := e.create(auth.RoleOperator, vals)
	for _, c := range []struct {
		method, target string
		role           auth.Role
	}{
		{"GET", "/changes/new", auth.RoleViewer},
		{"POST", "/changes/new", auth.RoleAuditor},
		{"POST", "/changes/" + id + "/act", auth.RoleViewer},
		{"POST", "/changes/" + id + "/decide", auth.RoleOperator},
		{"POST", "/changes/" + id + "/tests", auth.RoleViewer},
		{"POST", "/changes/" + id + "/evidence", auth.RoleAuditor},
	} {
		w := e.do(c.method, c.target, c.role, strings.NewReader(""), "application/x-www-form-urlencoded")
		if w.Code != http.StatusForbidden {
			t.Errorf("%s %s as %s = %d; want 403", c.method, c.target, c.role, w.Code)
		}
	}
	// An approver may write but not operate: no schedule button, and a
	// forged one is refused.
	w := e.post("/changes/"+id+"/act", auth.RoleApprover, url.Values{"action": {"schedule"}, "revision": {"1"}})
	wantStatus(t, w, http.StatusForbidden)
	if got := text(parse(t, w).Find("#change-error")); !strings.Contains(got, "may not schedule a change") {
		t.Errorf("forged action message = %q", got)
	}
	// Nobody signed in is sent to sign in.
	w = e.get("/changes/"+id, "")
	wantStatus(t, w, http.StatusSeeOther)
	// Nav: changes and calendar for a viewer.
	nav := parse(t, e.get("/changes", auth.RoleViewer)).Find("nav a").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	for _, want := range []string{"Changes", "Calendar"} {
		if !strings.Contains(strings.Join(nav, "|"), want) {
			t.Errorf("nav %v lacks %s", nav, want)
		}
	}
}

// TestChangeLifecycle walks a normal change from draft to halted through
// the pages: submit, a refused self-approval, approvals by two approvers,
// an illegal move, a stale form, a test run with evidence, scheduling,
// starting, and a halt that must say why.
func TestChangeLifecycle(t *testing.T) {
	e := newChangeEnv(t)
	vals, _ := e.newForm(auth.RoleAdmin, "finding=f-ssl-pc&finding=f-curl-pc")
	vals.Set("window", "servers-weekly")
	id := e.create(auth.RoleAdmin, vals)
	doc := e.page(id, auth.RoleAdmin)
	acts := doc.Find("#actions form").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("id", "") })
	if diff := cmp.Diff([]string{"act-submit", "act-cancel"}, acts); diff != "" {
		t.Errorf("draft actions (-want +got):\n%s", diff)
	}
	staleRev := formValues(doc.Find("#act-cancel")).Get("revision")

	doc = e.act(id, auth.RoleAdmin, "submit", "")
	if got := text(doc.Find(".tags .chg")); got != "Submitted" {
		t.Errorf("state = %q", got)
	}
	if got := text(doc.Find("#approval-status")); got != "Still needed: 2 more of it-manager, security-officer, system-owner" {
		t.Errorf("approval status = %q", got)
	}
	// The requester is not offered the decision, and a forged one is
	// refused on screen.
	if doc.Find("#decide-form").Length() != 0 || doc.Find("#own-change").Length() != 1 {
		t.Error("the requester is offered the decision form, or not told why not")
	}
	cur, _ := e.changes.Get(context.Background(), id)
	w := e.post("/changes/"+id+"/decide", auth.RoleAdmin, url.Values{"decision": {"approve"}, "revision": {strconv.Itoa(cur.Revision)}})
	wantStatus(t, w, http.StatusForbidden)
	if got := text(parse(t, w).Find("#change-error")); !strings.Contains(got, "you requested this change; someone else must approve or reject it") {
		t.Errorf("self-approval message = %q", got)
	}
	// A stale form: the cancel form from before the submission.
	w = e.post("/changes/"+id+"/act", auth.RoleAdmin, url.Values{"action": {"cancel"}, "revision": {staleRev}, "why": {"no longer needed"}})
	wantStatus(t, w, http.StatusConflict)
	sdoc := parse(t, w)
	if got := text(sdoc.Find("#change-error")); !strings.Contains(got, "changed since you loaded it") || !strings.Contains(got, "The page now shows the change as it is.") {
		t.Errorf("stale message = %q", got)
	}
	if got := sdoc.Find("#why-cancel").Text(); got != "no longer needed" {
		t.Errorf("typed why not given back: %q", got)
	}
	// An illegal move: starting a submitted change.
	cur, _ = e.changes.Get(context.Background(), id)
	w = e.post("/changes/"+id+"/act", auth.RoleAdmin, url.Values{"action": {"start"}, "revision": {strconv.Itoa(cur.Revision)}})
	wantStatus(t, w, http.StatusConflict)
	if got := text(parse(t, w).Find("#change-error")); !strings.Contains(got, "cannot start a change that is submitted") {
		t.Errorf("illegal move message = %q", got)
	}
	// Rejecting needs a note.
	resp := e.decide(id, auth.RoleApprover, "reject", "security-officer", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("reject without note = %d", resp.StatusCode)
	}
	// The approver signs as security officer: the select offers only the
	// roles they hold.
	doc = e.page(id, auth.RoleApprover)
	opts := doc.Find("#decide-as option").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("value", "") })
	if diff := cmp.Diff([]string{"", "security-officer"}, opts); diff != "" {
		t.Errorf("sign-as options (-want +got):\n%s", diff)
	}
	if resp := e.decide(id, auth.RoleApprover, "approve", "security-officer", "Reviewed the rollback plan"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve = %d", resp.StatusCode)
	}
	doc = e.page(id, auth.RoleApprover)
	if got := text(doc.Find("#approval-status")); got != "Still needed: 1 more of it-manager, security-officer, system-owner" {
		t.Errorf("after one approval: %q", got)
	}
	if got := text(doc.Find(`#approval-table tr[data-by="approver"] td`).Eq(1)); got != "security-officer Approver" {
		t.Errorf("approval row = %q", got)
	}
	// A run that passes one case and never runs the others the policy
	// requires is incomplete, not passed.
	w = e.testRun(id, auth.RoleOperator, map[string][3]string{"edr-compatibility": {"pass", "", ""}}, nil)
	wantStatus(t, w, http.StatusSeeOther)
	if v := e.page(id, auth.RoleViewer).Find("#test-runs .run").First().AttrOr("data-verdict", ""); v != "partial" {
		t.Errorf("a run missing required cases has verdict %q; want partial (Incomplete)", v)
	}
	// A test run while submitted, with an uploaded evidence file.
	evidence := []byte("backup job 4711 restored to the test VM at 14:02; boot 41s (baseline 39s)\n")
	results := map[string][3]string{}
	for _, c := range []string{"backup-verified", "boot-time", "edr-compatibility", "connectivity"} {
		results[c] = [3]string{"pass", "", ""}
	}
	results["backup-verified"] = [3]string{"pass", "snapshot restore checked", "backup.txt"}
	w = e.testRun(id, auth.RoleOperator, results, map[string][]byte{"backup.txt": evidence})
	wantStatus(t, w, http.StatusSeeOther)
	doc = e.page(id, auth.RoleViewer)
	run := doc.Find("#test-runs .run").First()
	if doc.Find("#test-runs .run").Length() != 2 || run.AttrOr("data-verdict", "") != "pass" {
		t.Errorf("runs = %d, verdict %q", run.Length(), run.AttrOr("data-verdict", ""))
	}
	sum := sha256.Sum256(evidence)
	hexSum := hex.EncodeToString(sum[:])
	if got := text(doc.Find(`#evidence-table tr[data-sha256="` + hexSum + `"] td.sha`)); got != hexSum {
		t.Errorf("evidence sha shown = %q; want %s", got, hexSum)
	}
	link := doc.Find(`#test-runs tr[data-case="backup-verified"] a`).AttrOr("href", "")
	dl := e.get(link, auth.RoleAuditor)
	wantStatus(t, dl, http.StatusOK)
	if dl.Body.String() != string(evidence) || !strings.HasPrefix(dl.Header().Get("Content-Disposition"), "attachment") ||
		dl.Header().Get("Content-Type") != "application/octet-stream" {
		t.Errorf("download: %q %v", dl.Body.String(), dl.Header())
	}
	// A failed case without notes is refused, on the page.
	// The page names the case, and gives back what was typed.
	w = e.testRun(id, auth.RoleOperator, map[string][3]string{"boot-time": {"fail", "", ""}, "connectivity": {"pass", "pings fine", ""}}, nil)
	wantStatus(t, w, http.StatusBadRequest)
	fdoc := parse(t, w)
	if got := text(fdoc.Find("#change-error")); !strings.Contains(got, "a fail result needs notes") || strings.Contains(got, "(row ") {
		t.Errorf("failed-case message = %q; want it to name the case, not a row", got)
	}
	if got := fdoc.Find("#result-boot-time option[selected]").AttrOr("value", ""); got != "fail" {
		t.Errorf("boot-time result given back as %q; want fail", got)
	}
	if got := fdoc.Find("#notes-connectivity").Text(); got != "pings fine" {
		t.Errorf("connectivity notes given back as %q; want what was typed", got)
	}

	// The admin cannot approve (requester); the operator cannot either
	// (no permission). The second approval comes from a second approver.
	second := change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: "u-approver-2", Name: "approver2"}, Role: "approver", PolicyRoles: []string{"system-owner"}}
	cur, _ = e.changes.Get(context.Background(), id)
	if _, _, err := e.changes.Approve(context.Background(), second, id, change.Decision{As: "system-owner", Revision: cur.Revision}); err != nil {
		t.Fatal(err)
	}
	doc = e.page(id, auth.RoleOperator)
	if got := text(doc.Find(".tags .chg")); got != "Approved" {
		t.Errorf("state = %q", got)
	}
	if got := text(doc.Find("#approval-status")); got != "Requirement met" {
		t.Errorf("approval status = %q", got)
	}
	if doc.Find(`#timeline-table tr[data-to="approved"]`).Length() != 1 {
		t.Error("timeline lacks the approval")
	}
	e.act(id, auth.RoleOperator, "schedule", "")
	doc = e.act(id, auth.RoleOperator, "start", "pilot ring first")
	if got := text(doc.Find(".tags .chg")); got != "In progress" {
		t.Errorf("state after start = %q", got)
	}
	acts = doc.Find("#actions form").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("id", "") })
	if diff := cmp.Diff([]string{"act-complete", "act-halt", "act-roll_back"}, acts); diff != "" {
		t.Errorf("in-progress actions (-want +got):\n%s", diff)
	}
	// Halting must say why.
	vals = formValues(doc.Find("#act-halt"))
	w = e.post("/changes/"+id+"/act", auth.RoleOperator, vals)
	wantStatus(t, w, http.StatusBadRequest)
	if got := text(parse(t, w).Find("#change-error")); !strings.Contains(got, "Why: required: say why the change is halted") {
		t.Errorf("halt without why = %q", got)
	}
	doc = e.act(id, auth.RoleOperator, "halt", "Abnormal QC on the pilot analyzer")
	if got := text(doc.Find(`#timeline-table tr[data-action="halt"] td`).Last()); got != "Abnormal QC on the pilot analyzer" {
		t.Errorf("timeline why = %q", got)
	}
}

// testRun posts the test-run form: results maps a case to result, notes
// and the name of a file from files to attach.
func (e *changeEnv) testRun(id string, role auth.Role, results map[string][3]string, files map[string][]byte) *httptest.ResponseRecorder {
	e.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for c, r := range results {
		_ = mw.WriteField("result_"+c, r[0])
		_ = mw.WriteField("notes_"+c, r[1])
		if r[2] != "" {
			fw, err := mw.CreateFormFile("file_"+c, r[2])
			if err != nil {
				e.t.Fatal(err)
			}
			_, _ = fw.Write(files[r[2]])
		}
	}
	_ = mw.Close()
	return e.do(http.MethodPost, "/changes/"+id+"/tests", role, &buf, mw.FormDataContentType())
}

func TestChangeEvidenceTooLarge(t *testing.T) {
	e := newChangeEnv(t)
	vals, _ := e.newForm(auth.RoleOperator, "finding=f-ssl-pc")
	id := e.create(auth.RoleOperator, vals)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "huge.log")
	_, _ = fw.Write(bytes.Repeat([]byte("x"), change.MaxEvidence+maxFormBytes+1))
	_ = mw.Close()
	w := e.do(http.MethodPost, "/changes/"+id+"/evidence", auth.RoleOperator, &buf, mw.FormDataContentType())
	wantStatus(t, w, http.StatusRequestEntityTooLarge)
	if got := text(parse(t, w).Find("#change-error")); !strings.Contains(got, "larger than") {
		t.Errorf("too-large message = %q", got)
	}
	if ev, _ := e.changes.EvidenceList(context.Background(), id); len(ev) != 0 {
		t.Errorf("evidence stored: %v", ev)
	}
}

func TestWorklistAndFindingOfferChange(t *testing.T) {
	e := newChangeEnv(t)
	doc := parse(t, e.get("/worklist", auth.RoleOperator))
	form := doc.Find("form#worklist-change")
	if form.AttrOr("action", "") != "/changes/new" || form.AttrOr("method", "") != "get" {
		t.Fatalf("worklist change form: %v", form.Nodes)
	}
	if n := form.Find(`input[type=checkbox][name="finding"]`).Length(); n != 4 {
		t.Errorf("worklist checkboxes = %d; want one per open row", n)
	}
	if form.Find("#create-change").Length() != 1 {
		t.Error("no create-change button")
	}
	if parse(t, e.get("/worklist", auth.RoleViewer)).Find("#worklist-change").Length() != 0 {
		t.Error("viewer offered to create a change")
	}
	doc = parse(t, e.get("/findings/f-ssl-pc", auth.RoleOperator))
	if got := doc.Find("#create-change").AttrOr("href", ""); got != "/changes/new?finding=f-ssl-pc" {
		t.Errorf("finding page create-change link = %q", got)
	}
}

// TestScheduleChoosesWindow: a change drafted with "decide when scheduling"
// is given its maintenance window on the schedule form; without one the
// form asks for it, and the service refuses a schedule with none.
func TestScheduleChoosesWindow(t *testing.T) {
	e := newChangeEnv(t)
	id := e.draft("")
	e.act(id, auth.RoleAdmin, "submit", "")
	e.approveTwice(id)
	ctx := context.Background()
	doc := e.page(id, auth.RoleOperator)
	sel := doc.Find("#act-schedule select[name=window]")
	if sel.Length() != 1 || sel.AttrOr("required", "x") == "x" {
		t.Fatalf("schedule form: window select %d, required %q; want one, required", sel.Length(), sel.AttrOr("required", ""))
	}
	if got := sel.Find(`option[value="servers-weekly"]`).Length(); got != 1 {
		t.Errorf("schedule form offers no servers-weekly window")
	}
	// Without a window the service refuses, on the page.
	vals := formValues(doc.Find("#act-schedule"))
	vals.Set("window", "")
	w := e.post("/changes/"+id+"/act", auth.RoleOperator, vals)
	if w.Code == http.StatusSeeOther {
		t.Fatalf("scheduling without any window was accepted")
	}
	if got := text(parse(t, w).Find("#change-error")); !strings.Contains(strings.ToLower(got), "window") {
		t.Errorf("refusal = %q; want it to name the missing window", got)
	}
	vals.Set("window", "servers-weekly")
	w = e.post("/changes/"+id+"/act", auth.RoleOperator, vals)
	wantStatus(t, w, http.StatusSeeOther)
	c, err := e.changes.Get(ctx, id)
	if err != nil || c.State != change.Scheduled || len(c.PlannedWindows) != 1 || c.PlannedWindows[0].Window != "servers-weekly" {
		t.Errorf("after scheduling: %s, windows %+v, %v; want scheduled in servers-weekly", c.State, c.PlannedWindows, err)
	}
	// The page says when that is: the window's next opening, site time.
	if got := text(e.page(id, auth.RoleViewer).Find("#next-opening")); got != "servers-weekly: Sun 22 Mar 2026, 02:00 CDT" {
		t.Errorf("next opening = %q; want servers-weekly: Sun 22 Mar 2026, 02:00 CDT", got)
	}
}

// TestChangeFormVendorFixIsManualTask: a finding with no version to
// install (a maker's fix, applied by its service) pre-fills a vendor task,
// not a patch row the form would then refuse.
func TestChangeFormVendorFixIsManualTask(t *testing.T) {
	e := newChangeEnv(t)
	vals, doc := e.newForm(auth.RoleAdmin, "finding=f-pump&finding=f-ssl-pc")
	if got := vals["task"]; len(got) == 0 || !strings.Contains(got[0], "Roche service installs 1.3 on request") {
		t.Errorf("tasks = %q; want the vendor's fix as a manual task", got)
	}
	for i, p := range vals["pkg"] {
		if p == "roche:cobas" {
			t.Errorf("patch row %d is the vendor-fixed package with version %q; want it only as a task", i, vals["version"][i])
		}
	}
	if doc.Find("#change-form").Length() != 1 {
		t.Fatal("no change form")
	}
}

// editForm opens a change's edit form as role and returns what it would
// post, with why filled in.
func (e *changeEnv) editForm(id string, role auth.Role) (url.Values, *goquery.Document) {
	e.t.Helper()
	w := e.get("/changes/"+id+"/edit", role)
	wantStatus(e.t, w, http.StatusOK)
	doc := parse(e.t, w)
	vals := formValues(doc.Find("#change-form"))
	vals.Set("why", "Reviewed with the lab")
	return vals, doc
}

// draft is the admin's draft change for the front desk PC's openssl
// finding, planned in window ("" to decide when scheduling).
func (e *changeEnv) draft(window string) string {
	e.t.Helper()
	vals, _ := e.newForm(auth.RoleAdmin, "finding=f-ssl-pc")
	vals.Set("window", window)
	return e.create(auth.RoleAdmin, vals)
}

// approveTwice gives a submitted change the two approvals the default
// policy asks of a normal change, by two approvers other than the page
// users.
func (e *changeEnv) approveTwice(id string) {
	e.t.Helper()
	ctx := context.Background()
	for _, who := range []struct{ id, as string }{{"u-approver-1", "security-officer"}, {"u-approver-2", "system-owner"}} {
		cur, _ := e.changes.Get(ctx, id)
		u := change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: who.id, Name: who.id}, Role: "approver", PolicyRoles: []string{who.as}}
		if _, _, err := e.changes.Approve(ctx, u, id, change.Decision{As: who.as, Revision: cur.Revision}); err != nil {
			e.t.Fatalf("approve as %s: %v", who.as, err)
		}
	}
}

// TestChangeEdit posts the edit form: it saves with a custom test case,
// refuses a stale revision, a half-filled custom case row, a case the
// service refuses and a missing why (each time giving back what was
// typed and changing nothing), and withdraws the approvals of an approved
// change after saying so.
func TestChangeEdit(t *testing.T) {
	const signInCase = "custom-ehr-sign-in-from-the-front-desk"
	for _, tc := range []struct {
		name string
		// before runs before the form is opened; meanwhile after it is
		// opened and before it is posted.
		before, meanwhile func(e *changeEnv, id string)
		fill              func(vals url.Values)
		status            int
		check             func(t *testing.T, e *changeEnv, id string, c change.Change, doc *goquery.Document)
	}{
		{
			name: "saves with a custom test case",
			fill: func(vals url.Values) {
				vals.Set("title", "Update openssl on the front desk PC")
				vals["custom_name"] = []string{"EHR sign-in from the front desk", ""}
				vals["custom_criteria"] = []string{"Sign-in completes within 10 seconds", ""}
			},
			status: http.StatusSeeOther,
			check: func(t *testing.T, e *changeEnv, id string, c change.Change, doc *goquery.Document) {
				if c.Title != "Update openssl on the front desk PC" || c.Revision != 2 {
					t.Errorf("stored title %q at revision %d; want the new title at revision 2", c.Title, c.Revision)
				}
				want := change.TestStep{CaseID: signInCase, Name: "EHR sign-in from the front desk", Criteria: "Sign-in completes within 10 seconds", Custom: true}
				if got := c.TestProtocol[len(c.TestProtocol)-1]; !cmp.Equal(got, want) {
					t.Errorf("last protocol step (-want +got):\n%s", cmp.Diff(want, got))
				}
				if n := len(c.TestProtocol); n != 5 {
					t.Errorf("protocol has %d steps; want the 4 policy cases and the custom one", n)
				}
				w := e.get("/changes/"+id+"?done=edit", auth.RoleOperator)
				wantStatus(t, w, http.StatusOK)
				doc = parse(t, w)
				if got := doc.Find(`#done[data-done="edit"]`).Length(); got != 1 {
					t.Error("no notice that the edit was saved")
				}
				row := doc.Find(`#protocol tr[data-case="` + signInCase + `"] td`)
				if got := text(row.Eq(0)) + " | " + text(row.Eq(1)); got != "EHR sign-in from the front desk custom | Sign-in completes within 10 seconds" {
					t.Errorf("custom case row on the change page = %q", got)
				}
				// The test-run form offers it.
				if doc.Find("#result-"+signInCase).Length() != 1 {
					t.Error("the test-run form does not offer the custom case")
				}
				// Opened again, the case is a custom row that keeps its ID.
				vals, _ := e.editForm(id, auth.RoleOperator)
				if got := vals["custom_id"]; len(got) == 0 || got[0] != signInCase {
					t.Errorf("custom IDs on the edit form = %q; want %s first", got, signInCase)
				}
			},
		},
		{
			name: "refuses a stale revision",
			meanwhile: func(e *changeEnv, id string) {
				c, _ := e.changes.Get(context.Background(), id)
				c.Title = "Saved meanwhile by someone else"
				if _, err := e.changes.Update(context.Background(), user(auth.RoleAdmin), c, "meanwhile"); err != nil {
					e.t.Fatal(err)
				}
			},
			fill:   func(vals url.Values) { vals.Set("title", "My edit") },
			status: http.StatusConflict,
			check: func(t *testing.T, e *changeEnv, id string, c change.Change, doc *goquery.Document) {
				if c.Title != "Saved meanwhile by someone else" || c.Revision != 2 {
					t.Errorf("stored %q at revision %d; want the other edit, untouched", c.Title, c.Revision)
				}
				if got := text(doc.Find("#form-errors")); !strings.Contains(got, "changed since you loaded it (revision 1, now 2); reload and try again") {
					t.Errorf("errors = %q; want the stale revision named", got)
				}
				if got := formValues(doc.Find("#change-form")); got.Get("title") != "My edit" || got.Get("revision") != "1" {
					t.Errorf("form given back with title %q at revision %q; want what was typed at revision 1", got.Get("title"), got.Get("revision"))
				}
			},
		},
		{
			name: "refuses a half-filled custom case row",
			fill: func(vals url.Values) {
				vals.Set("title", "Typed title")
				vals["custom_name"] = []string{"EHR sign-in", "Label printer prints"}
				vals["custom_criteria"] = []string{"Sign-in works", ""}
			},
			status: http.StatusBadRequest,
			check: func(t *testing.T, e *changeEnv, id string, c change.Change, doc *goquery.Document) {
				if c.Revision != 1 {
					t.Errorf("stored revision %d; want the change untouched", c.Revision)
				}
				if got := text(doc.Find("#f-custom-2-error")); got != "Custom test case 2: needs a pass/fail criterion" {
					t.Errorf("row 2 error = %q", got)
				}
				if got := text(doc.Find("#form-errors")); !strings.Contains(got, "Custom test case (row 2): needs a pass/fail criterion") {
					t.Errorf("errors = %q", got)
				}
				back := formValues(doc.Find("#change-form"))
				if diff := cmp.Diff([]string{"EHR sign-in", "Label printer prints", "", ""}, back["custom_name"]); diff != "" {
					t.Errorf("custom names given back (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"Sign-in works", "", "", ""}, back["custom_criteria"]); diff != "" {
					t.Errorf("custom criteria given back (-want +got):\n%s", diff)
				}
				if back.Get("title") != "Typed title" || back.Get("why") != "Reviewed with the lab" {
					t.Errorf("title %q, why %q given back; want what was typed", back.Get("title"), back.Get("why"))
				}
			},
		},
		{
			name: "names the row of a custom case the service refuses",
			fill: func(vals url.Values) {
				vals["custom_id"] = []string{"custom-a", "custom-a"}
				vals["custom_name"] = []string{"First", "Second"}
				vals["custom_criteria"] = []string{"Works", "Works too"}
			},
			status: http.StatusBadRequest,
			check: func(t *testing.T, e *changeEnv, id string, c change.Change, doc *goquery.Document) {
				if got := text(doc.Find("#f-custom-2-error")); !strings.Contains(got, `case "custom-a" is listed twice`) {
					t.Errorf("row 2 error = %q; want the service's refusal on the row typed", got)
				}
				if c.Revision != 1 {
					t.Errorf("stored revision %d; want the change untouched", c.Revision)
				}
			},
		},
		{
			name:   "requires why",
			fill:   func(vals url.Values) { vals.Set("why", " ") },
			status: http.StatusBadRequest,
			check: func(t *testing.T, e *changeEnv, id string, c change.Change, doc *goquery.Document) {
				if got := text(doc.Find(`[data-field="why"] .error`)); got != "required: say what changed and why" {
					t.Errorf("why error = %q", got)
				}
				if c.Revision != 1 {
					t.Errorf("stored revision %d; want the change untouched", c.Revision)
				}
			},
		},
		{
			name: "withdraws the approvals of an approved change",
			before: func(e *changeEnv, id string) {
				e.act(id, auth.RoleAdmin, "submit", "")
				e.approveTwice(id)
			},
			fill:   func(vals url.Values) { vals.Set("rb_owner", "Lab IT") },
			status: http.StatusSeeOther,
			check: func(t *testing.T, e *changeEnv, id string, c change.Change, doc *goquery.Document) {
				if c.State != change.Submitted || c.RollbackPlan.Owner != "Lab IT" {
					t.Errorf("after the edit: %s, owner %q; want submitted again with the new owner", c.State, c.RollbackPlan.Owner)
				}
				as, st, _ := e.changes.Approvals(context.Background(), id)
				for _, a := range as {
					if a.ExpiredAt == nil {
						t.Errorf("approval by %s still valid after the edit", a.By)
					}
				}
				if st.Complete {
					t.Error("approval requirement still met after the edit")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newChangeEnv(t)
			id := e.draft("servers-weekly")
			if tc.before != nil {
				tc.before(e, id)
			}
			vals, _ := e.editForm(id, auth.RoleOperator)
			if tc.meanwhile != nil {
				tc.meanwhile(e, id)
			}
			tc.fill(vals)
			w := e.post("/changes/"+id+"/edit", auth.RoleOperator, vals)
			wantStatus(t, w, tc.status)
			if tc.status == http.StatusSeeOther {
				if loc := w.Header().Get("Location"); loc != "/changes/"+id+"?done=edit" {
					t.Errorf("saved edit redirects to %q", loc)
				}
			}
			c, err := e.changes.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			var doc *goquery.Document
			if tc.status != http.StatusSeeOther {
				doc = parse(t, w)
			}
			tc.check(t, e, id, c, doc)
		})
	}
}

// TestChangeEditOffered: the Edit link shows in the states the service
// lets a change be edited in, to roles that may write changes; the edit
// form says how many approvals saving withdraws.
func TestChangeEditOffered(t *testing.T) {
	e := newChangeEnv(t)
	id := e.draft("servers-weekly")
	edit := "/changes/" + id + "/edit"
	link := func(role auth.Role) string { return e.page(id, role).Find("#edit-change").AttrOr("href", "") }
	for _, step := range []struct {
		state    string
		advance  func()
		roles    map[auth.Role]string // the Edit link's address per role
		editCode int                  // GET of the edit form as the operator
		warning  string
	}{
		{"draft", func() {}, map[auth.Role]string{auth.RoleOperator: edit, auth.RoleApprover: edit, auth.RoleViewer: "", auth.RoleAuditor: ""}, http.StatusOK, ""},
		{"submitted", func() { e.act(id, auth.RoleAdmin, "submit", "") }, map[auth.Role]string{auth.RoleOperator: edit, auth.RoleViewer: ""}, http.StatusOK, ""},
		{"approved", func() { e.approveTwice(id) }, map[auth.Role]string{auth.RoleOperator: edit, auth.RoleAdmin: edit}, http.StatusOK,
			"Editing withdraws 2 approvals: they stay on record, marked expired, and the change needs approving again (it returns from approved to submitted)."},
		{"scheduled", func() { e.act(id, auth.RoleOperator, "schedule", "") }, map[auth.Role]string{auth.RoleOperator: "", auth.RoleAdmin: ""}, http.StatusConflict, ""},
	} {
		step.advance()
		for role, want := range step.roles {
			if got := link(role); got != want {
				t.Errorf("%s change, %s: Edit link = %q; want %q", step.state, role, got, want)
			}
		}
		w := e.get(edit, auth.RoleOperator)
		if w.Code != step.editCode {
			t.Errorf("%s change: GET edit = %d; want %d", step.state, w.Code, step.editCode)
			continue
		}
		if w.Code == http.StatusOK {
			if got := text(parse(t, w).Find("#withdraw-warning")); got != step.warning {
				t.Errorf("%s change: withdraw warning = %q; want %q", step.state, got, step.warning)
			}
		}
	}
	if w := e.get(edit, auth.RoleViewer); w.Code != http.StatusForbidden {
		t.Errorf("viewer GET edit = %d; want 403", w.Code)
	}
	if w := e.post(edit, auth.RoleAuditor, url.Values{}); w.Code != http.StatusForbidden {
		t.Errorf("auditor POST edit = %d; want 403", w.Code)
	}
}

// TestChangeEditKeepsWhatFormCannotShow: opening the edit form and saving
// it unchanged keeps the change's content, including explicit planned
// times, the API's message text, manual task due dates and custom cases.
func TestChangeEditKeepsWhatFormCannotShow(t *testing.T) {
	e := newChangeEnv(t)
	ctx := context.Background()
	start := time.Date(2026, 3, 22, 8, 0, 0, 0, time.UTC)
	end := start.Add(3 * time.Hour)
	due := time.Date(2026, 4, 15, 5, 0, 0, 0, time.UTC) // midnight in the policy's zone
	in := change.Change{Title: "Firmware and openssl", Type: change.Normal, Findings: []string{"f-ssl-pc"},
		Targets:        change.Targets{Assets: []string{e.ids["Front desk PC"]}},
		Patches:        []change.Patch{{Package: "openssl", Ecosystem: "Debian:12", TargetVersion: "3.0.13-1"}, {Manual: &change.ManualTask{Description: "Re-flash", Owner: "Vendor", Due: &due}}},
		PlannedWindows: []change.PlannedWindow{{Start: &start, End: &end, TimeZone: "America/Chicago"}},
		Communication:  change.Communication{Notify: []string{"Help desk"}, UserImpact: "None", Message: "Sent by the API"},
		PreChecks:      []string{"Snapshot taken"},
		TestProtocol:   []change.TestStep{{CaseID: "boot-time"}, {CaseID: "custom-printer", Name: "Printer", Criteria: "Prints a label"}},
		RollbackPlan:   change.RollbackPlan{Triggers: []string{"Boot fails"}, Steps: []string{"Restore"}, Owner: "IT"},
		SignOffs:       []change.SignOff{{Role: "it-manager"}}}
	before, err := e.changes.Create(ctx, user(auth.RoleOperator), in)
	if err != nil {
		t.Fatal(err)
	}
	vals, doc := e.editForm(before.ID, auth.RoleOperator)
	if got := text(doc.Find(`#f-window option[selected]`)); !strings.HasPrefix(got, "As planned: ") {
		t.Errorf("selected window = %q; want the explicit times kept", got)
	}
	w := e.post("/changes/"+before.ID+"/edit", auth.RoleOperator, vals)
	wantStatus(t, w, http.StatusSeeOther)
	after, err := e.changes.Get(ctx, before.ID)
	if err != nil {
		t.Fatal(err)
	}
	ignore := cmpopts.IgnoreFields(change.Change{}, "Revision", "UpdatedAt", "EditedAt", "Risk")
	if diff := cmp.Diff(before, after, ignore, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("saved unchanged, the change differs (-before +after):\n%s", diff)
	}
}

// TestChangeDecisionOffered: separation of duties as the change page
// applies it, by the service's rule: neither the requester nor an
// TestChangeSignAsHeldRoles: the approve form's "Sign as" offers the
// policy roles the user holds that the change needs, and nothing to a
// user who holds none, with the reason.
func TestChangeSignAsHeldRoles(t *testing.T) {
	e := newChangeEnv(t)
	id := e.draft("servers-weekly")
	e.act(id, auth.RoleAdmin, "submit", "")
	for _, tc := range []struct {
		name     string
		held     []string
		wantOpts []string
		wantHint string
	}{
		{"holds a needed role and one it does not need", []string{"laboratory-director", "system-owner"}, []string{"", "system-owner"}, ""},
		{"holds two needed roles", []string{"system-owner", "security-officer"}, []string{"", "security-officer", "system-owner"}, ""},
		{"holds none of them", []string{"laboratory-director"}, []string{},
			"You hold none of the policy roles that approve this change (it-manager, security-officer, system-owner); an admin assigns policy roles."},
		{"holds nothing", nil, []string{}, "an admin assigns policy roles"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := principal(auth.RoleApprover)
			p.PolicyRoles = tc.held
			e.accounts.mu.Lock()
			e.accounts.sessions["tok-approver"] = p
			e.accounts.mu.Unlock()
			t.Cleanup(func() {
				e.accounts.mu.Lock()
				e.accounts.sessions["tok-approver"] = principal(auth.RoleApprover)
				e.accounts.mu.Unlock()
			})
			doc := e.page(id, auth.RoleApprover)
			opts := doc.Find("#decide-as option").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("value", "") })
			if diff := cmp.Diff(tc.wantOpts, opts); diff != "" {
				t.Errorf("sign-as options (-want +got):\n%s", diff)
			}
			if got := text(doc.Find("#decide-hint")); !strings.Contains(got, tc.wantHint) {
				t.Errorf("decide hint = %q; want it to contain %q", got, tc.wantHint)
			}
		})
	}
}

// editor is offered the decision form, and both are told why; another
// approver is offered it; a role without the right to approve sees
// neither.
func TestChangeDecisionOffered(t *testing.T) {
	e := newChangeEnv(t)
	id := e.draft("servers-weekly")
	e.act(id, auth.RoleAdmin, "submit", "")
	const requested = "You requested this change; someone else must approve or reject it (policy approvals.separation_of_duties)."
	const edited = "You edited this change; someone else must approve or reject it (policy approvals.separation_of_duties)."
	for _, tc := range []struct {
		name       string
		editedBy   auth.Role // edits the change first, if set
		role       auth.Role
		wantForm   bool
		wantReason string
	}{
		{"requester", "", auth.RoleAdmin, false, requested},
		{"other approver", "", auth.RoleApprover, true, ""},
		{"operator may not approve", "", auth.RoleOperator, false, ""},
		{"approver who edited it", auth.RoleApprover, auth.RoleApprover, false, edited},
		{"requester after someone else edited", "", auth.RoleAdmin, false, requested},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.editedBy != "" {
				vals, _ := e.editForm(id, tc.editedBy)
				wantStatus(t, e.post("/changes/"+id+"/edit", tc.editedBy, vals), http.StatusSeeOther)
			}
			doc := e.page(id, tc.role)
			if got := doc.Find("#decide-form").Length() == 1; got != tc.wantForm {
				t.Errorf("decision form offered = %v; want %v", got, tc.wantForm)
			}
			if got := text(doc.Find("#own-change")); got != tc.wantReason {
				t.Errorf("separation-of-duties line = %q; want %q", got, tc.wantReason)
			}
		})
	}
}

// TestChangeManualDueInSiteZone: a manual task due "2026-04-15" in a site
// east of UTC is stored as that day's midnight there and shown as the
// same day, not the UTC day before.
func TestChangeManualDueInSiteZone(t *testing.T) {
	var policies *policy.Service
	e := newChangeEnvWith(t, func(db *store.DB, cfg *Config) { policies = cfg.Policy.(*policy.Service) })
	src := strings.Replace(string(policy.DefaultSource()), "time_zone: America/Chicago", "time_zone: Pacific/Auckland", 1)
	if _, err := policies.Apply(context.Background(), audit.Actor{Kind: audit.ActorUser, Name: "admin"}, []byte(src), "test"); err != nil {
		t.Fatal(err)
	}
	vals, _ := e.newForm(auth.RoleAdmin, "finding=f-ssl-chem")
	vals.Set("task", "Vendor re-validates the analyzer")
	vals.Set("task_owner", "Roche field engineer")
	vals.Set("task_due", "2026-04-15")
	id := e.create(auth.RoleAdmin, vals)
	doc := e.page(id, auth.RoleViewer)
	if got := text(doc.Find(`#patches tr[data-kind="manual"] td`).Eq(2)); got != "2026-04-15" {
		t.Errorf("manual task due shows %q; want 2026-04-15", got)
	}
	if v, _ := e.editForm(id, auth.RoleAdmin); v.Get("task_due") != "2026-04-15" {
		t.Errorf("edit form task_due = %q; want 2026-04-15", v.Get("task_due"))
	}
}

// TestGoNoGoOnChangePage: an emergency's go/no-go says where it stands —
// counting down, expired (and then nobody is offered a decision the
// service would refuse), or met once approved.
func TestGoNoGoOnChangePage(t *testing.T) {
	var late time.Time
	e := newChangeEnvWith(t, func(_ *store.DB, cfg *Config) {
		cfg.Now = func() time.Time {
			if late.IsZero() {
				return riskNow
			}
			return late
		}
	})
	vals, _ := e.newForm(auth.RoleAdmin, "type=emergency&finding=f-ssl-pc")
	vals.Set("justification", "KEV-listed, exploited against clinics")
	id := e.create(auth.RoleAdmin, vals)
	c, err := e.changes.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.changes.Submit(context.Background(), user(auth.RoleAdmin), id, change.Step{Why: "go/no-go", Revision: c.Revision}); err != nil {
		t.Fatal(err)
	}
	doc := e.page(id, auth.RoleApprover)
	if got := text(doc.Find("#go-no-go-note")); got != "in 4 hours" || doc.Find("#decide-form").Length() != 1 {
		t.Errorf("before the deadline: note %q, decide forms %d; want in 4 hours and the form", got, doc.Find("#decide-form").Length())
	}

	late = riskNow.Add(5 * time.Hour)
	doc = e.page(id, auth.RoleApprover)
	if got := text(doc.Find("#go-no-go-note")); got != "expired 1 hour ago, unapproved" {
		t.Errorf("after the deadline: note %q", got)
	}
	if doc.Find("#decide-form").Length() != 0 || !strings.Contains(text(doc.Find("#own-change")), "can no longer be approved or rejected") {
		t.Errorf("after the deadline the approver is offered a decision, or not told why: %q", text(doc.Find("#own-change")))
	}

	late = time.Time{}
	c, _ = e.changes.Get(context.Background(), id)
	if _, _, err := e.changes.Approve(context.Background(), user(auth.RoleApprover), id, change.Decision{Revision: c.Revision}); err != nil {
		t.Fatal(err)
	}
	late = riskNow.Add(5 * time.Hour)
	if got := text(e.page(id, auth.RoleViewer).Find("#go-no-go-note")); got != "met: approved in time" {
		t.Errorf("after a timely approval: note %q", got)
	}
}
