package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/risk"
)

const (
	excApproved  = "exc_0000000000000001" // asset a-vpn, requested by operator, approved by approver
	excByAdmin   = "exc_0000000000000002" // finding f-xz, requested by admin
	excByApprver = "exc_0000000000000003" // asset a-heme, requested by approver
)

func TestExceptionsList(t *testing.T) {
	e := newRiskEnv(t)
	w := e.get("/exceptions", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	ids := doc.Find("#exception-table tbody tr").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("data-exception-id", "") })
	if diff := cmp.Diff([]string{excApproved, excByAdmin, excByApprver}, ids); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	row := doc.Find(`tr[data-exception-id="` + excByAdmin + `"]`)
	if got := text(row.Find("td.target")); got != "Finding CVE-2024-3094 on Chemistry analyzer only CVE-2024-3094" {
		t.Errorf("finding target = %q", got)
	}
	if row.Find(`td.target a[href="/findings/f-xz"]`).Length() != 1 {
		t.Error("finding target does not link to the finding")
	}
	row = doc.Find(`tr[data-exception-id="` + excApproved + `"]`)
	want := []string{excApproved, "Approved", "Asset VPN gateway", "Mitigate", "Clinic IT manager",
		"Wed 10 Dec 2025, 09:00 CST by operator", "Thu 19 Mar 2026, 10:00 CDT Due", "Thu 9 Apr 2026, 10:00 CDT"}
	if diff := cmp.Diff(want, rowCells(row)); diff != "" {
		t.Errorf("approved row (-want +got):\n%s", diff)
	}
	// The aging report.
	states := tableRows(doc.Find("#aging-states"))
	if diff := cmp.Diff([][]string{{"Requested", "2"}, {"Approved", "1"}, {"Rejected", "0"}, {"Revoked", "0"}, {"Expired", "0"}}, states); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	ages := tableRows(doc.Find("#aging-ages"))
	if diff := cmp.Diff([][]string{{"0–30 days", "0"}, {"31–90 days", "0"}, {"91–180 days", "1"}, {"over 180 days", "0"}}, ages); diff != "" {
		t.Errorf("ages (-want +got):\n%s", diff)
	}
	for sel, want := range map[string]string{"#overdue-reviews": "0 reviews overdue", "#due-reviews": "1 review due", "#expiring": "1 expiring within 30 days"} {
		if got := text(doc.Find(sel)); got != want {
			t.Errorf("%s = %q; want %q", sel, got, want)
		}
	}
	if doc.Find(`#due-list a[href="/exceptions/`+excApproved+`"]`).Length() != 1 {
		t.Error("due review not listed")
	}
	if doc.Find("#new-exception").Length() != 0 {
		t.Error("viewer is offered to request an exception")
	}
	if cur := text(doc.Find(`nav a[aria-current="page"]`)); cur != "Exceptions" {
		t.Errorf("current nav = %q", cur)
	}

	// Filters and views.
	doc = parse(t, e.get("/exceptions?state=requested", auth.RoleOperator))
	if n := doc.Find("#exception-table tbody tr").Length(); n != 2 {
		t.Errorf("requested rows = %d; want 2", n)
	}
	if doc.Find("#new-exception").Length() != 1 {
		t.Error("operator is not offered to request an exception")
	}
	doc = parse(t, e.get("/exceptions?view=review_due", auth.RoleAuditor))
	if got := text(doc.Find("h1")); got != "Exceptions due for review" {
		t.Errorf("heading = %q", got)
	}
	if len(e.exceptions.reviewsBy) != 1 || !e.exceptions.reviewsBy[0].Equal(riskNow) {
		t.Errorf("ReviewsDue called with %v; want now", e.exceptions.reviewsBy)
	}
	if n := doc.Find("#exception-table tbody tr").Length(); n != 1 {
		t.Errorf("review-due rows = %d; want 1", n)
	}
	doc = parse(t, e.get("/exceptions?view=expiring", auth.RoleAuditor))
	last := e.exceptions.filters[len(e.exceptions.filters)-2] // the aging report reads after
	if last.State != risk.ExceptionApproved || last.ExpiringBy == nil || !last.ExpiringBy.Equal(riskNow.Add(30*24*time.Hour)) {
		t.Errorf("expiring filter = %+v", last)
	}
	if n := doc.Find("#exception-table tbody tr").Length(); n != 1 {
		t.Errorf("expiring rows = %d; want 1", n)
	}
	for _, target := range []string{"/exceptions?state=pending", "/exceptions?view=old"} {
		w := e.get(target, auth.RoleViewer)
		wantStatus(t, w, http.StatusBadRequest)
		if parse(t, w).Find("#exception-filters").Length() != 1 {
			t.Errorf("%s: no form to fix the filter", target)
		}
	}
}

func TestExceptionRequestPrefilledAndCreated(t *testing.T) {
	e := newRiskEnv(t)
	w := e.get("/exceptions/new?scope=finding&target=f-xz&vuln=CVE-2024-3094", auth.RoleOperator)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	form := doc.Find("#exception-form")
	got := formValues(form)
	want := url.Values{"scope": {"finding"}, "target": {"f-xz"}, "vuln_id": {"CVE-2024-3094"}, "decision": {""}, "reason": {""},
		"owner": {"Lab director"}, "expires_at": {""}, "control_kind": {"", "", ""}, "control_description": {"", "", ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("prefilled form (-want +got):\n%s", diff)
	}
	if got := text(doc.Find("#target-name")); got != "This request covers Finding CVE-2024-3094 on Chemistry analyzer." {
		t.Errorf("target name = %q", got)
	}
	decisions := doc.Find("#f-decision option").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("value", "") })
	if diff := cmp.Diff([]string{"", "accept", "mitigate", "transfer", "avoid"}, decisions); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	kinds := doc.Find("#f-control-kind-1 option").Length()
	if kinds != 8 {
		t.Errorf("control kinds offered = %d; want none + 7", kinds)
	}
	form.Find("label").Each(func(_ int, l *goquery.Selection) {
		if f := l.AttrOr("for", ""); f != "" && doc.Find("#"+f).Length() != 1 {
			t.Errorf("label for %q points at nothing", f)
		}
	})

	// Fill it in, leaving the middle control row blank.
	got.Set("decision", "mitigate")
	got.Set("reason", "The analyzer's vendor validates the fixed xz release in Q2.")
	got.Set("expires_at", "2026-06-30")
	got["control_kind"] = []string{"segmentation", "", "monitoring"}
	got["control_description"] = []string{"Analyzer VLAN 30, no internet route", "", "Syslog to the SIEM with an alert rule"}
	w = e.post("/exceptions/new", auth.RoleOperator, got)
	wantStatus(t, w, http.StatusSeeOther)
	loc := w.Header().Get("Location")
	id := strings.TrimSuffix(strings.TrimPrefix(loc, "/exceptions/"), "?done=request")
	ex, ok := e.exceptions.exceptions[id]
	if !ok {
		t.Fatalf("redirect to %q; no such exception stored", loc)
	}
	wantControls := []risk.Control{{Kind: "segmentation", Description: "Analyzer VLAN 30, no internet route"},
		{Kind: "monitoring", Description: "Syslog to the SIEM with an alert rule"}}
	if diff := cmp.Diff(wantControls, ex.Controls); diff != "" {
		t.Errorf("controls (-want +got):\n%s", diff)
	}
	// The date is the start of that day in the organisation's zone.
	if want := time.Date(2026, 6, 30, 5, 0, 0, 0, time.UTC); !ex.ExpiresAt.Equal(want) || ex.RequestedBy != "operator" || ex.State != risk.ExceptionRequested {
		t.Errorf("stored = expires %v by %q in %s; want %v by operator, requested", ex.ExpiresAt, ex.RequestedBy, ex.State, want)
	}
	if r := e.exceptions.requests[0]; r.Role != "operator" || r.Actor.Name != "operator" {
		t.Errorf("requester = %+v", r)
	}
	doc = parse(t, e.get(loc, auth.RoleOperator))
	if got := text(doc.Find("#done")); !strings.HasPrefix(got, "Exception requested.") {
		t.Errorf("confirmation = %q", got)
	}
	if got := tableRows(doc.Find("#controls")); len(got) != 2 || got[0][0] != "Network segmentation" {
		t.Errorf("controls table = %q", got)
	}
}

func TestExceptionRequestValidation(t *testing.T) {
	e := newRiskEnv(t)
	base := url.Values{"scope": {"finding"}, "target": {"f-xz"}, "decision": {"mitigate"}, "reason": {"Vendor restriction"},
		"owner": {"Lab director"}, "expires_at": {"2026-06-30"}, "control_kind": {"segmentation", "", ""},
		"control_description": {"VLAN 30", "", ""}}
	with := func(changes map[string][]string) url.Values {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		for k, vs := range changes {
			v[k] = vs
		}
		return v
	}
	// A date the browser would never send is refused by name.
	w := e.post("/exceptions/new", auth.RoleOperator, with(map[string][]string{"expires_at": {"30/06/2026"}}))
	wantStatus(t, w, http.StatusBadRequest)
	doc := parse(t, w)
	if got := text(doc.Find(`[data-field="expires_at"] .error`)); got != `Expires: "30/06/2026" is not a date; enter one as YYYY-MM-DD, e.g. 2026-04-20` {
		t.Errorf("date error = %q", got)
	}
	if len(e.exceptions.requests) != 0 {
		t.Fatal("an exception with a bad date was stored")
	}

	// The domain's own rules, each next to its field; the second control
	// row's error lands on the second row even though the first is blank.
	w = e.post("/exceptions/new", auth.RoleOperator, with(map[string][]string{
		"reason": {" "}, "owner": {""}, "expires_at": {"2026-01-01"},
		"control_kind": {"", "monitoring", ""}, "control_description": {"", "", ""},
	}))
	wantStatus(t, w, http.StatusBadRequest)
	doc = parse(t, w)
	for sel, want := range map[string]string{
		`[data-field="reason"] .error`:     "required: why the finding cannot be remediated in time",
		`[data-field="owner"] .error`:      "required: who is accountable for the risk and the controls",
		`[data-field="expires_at"] .error`: "Expires: enter a date after today, e.g. 2026-04-20",
		"#f-control-desc-2-error":          "required: what the control is and where it is in force",
	} {
		if got := text(doc.Find(sel)); got != want {
			t.Errorf("%s = %q; want %q", sel, got, want)
		}
	}
	if got := text(doc.Find("#form-errors p").First()); got != "Please correct the 4 problems marked below." {
		t.Errorf("summary = %q", got)
	}
	if doc.Find(`#f-control-kind-2 option[selected][value="monitoring"]`).Length() != 1 {
		t.Error("the control row did not keep its kind")
	}

	// Policy rules: mitigate needs a control; the expiry has a ceiling.
	w = e.post("/exceptions/new", auth.RoleOperator, with(map[string][]string{"control_kind": {"", "", ""}, "control_description": {"", "", ""},
		"expires_at": {"2027-06-01"}}))
	wantStatus(t, w, http.StatusBadRequest)
	doc = parse(t, w)
	if got := text(doc.Find("#form-message")); got != "Compensating controls: the policy requires at least one compensating control for mitigate decisions" {
		t.Errorf("controls message = %q", got)
	}
	if got := text(doc.Find(`[data-field="expires_at"] .error`)); got != "Expires must be within the policy's maximum of 1 year: latest 2027-03-20" {
		t.Errorf("ceiling error = %q", got)
	}
	// A target that does not exist.
	w = e.post("/exceptions/new", auth.RoleOperator, with(map[string][]string{"target": {"f-nope"}}))
	wantStatus(t, w, http.StatusBadRequest)
	if got := text(parse(t, w).Find(`[data-field="target"] .error`)); got != `no finding "f-nope"` {
		t.Errorf("target error = %q", got)
	}
	if len(e.exceptions.exceptions) != 3 {
		t.Errorf("exceptions = %d; an invalid request was stored", len(e.exceptions.exceptions))
	}
}

func TestExceptionRequestForbidden(t *testing.T) {
	e := newRiskEnv(t)
	for _, role := range []auth.Role{auth.RoleViewer, auth.RoleAuditor} {
		wantStatus(t, e.get("/exceptions/new?scope=asset&target=a-chem", role), http.StatusForbidden)
		wantStatus(t, e.post("/exceptions/new", role, url.Values{"scope": {"asset"}, "target": {"a-chem"}}), http.StatusForbidden)
	}
	if len(e.exceptions.requests) != 0 {
		t.Error("a role without exception:request reached the service")
	}
}

// decisionValues reads one decision form off the exception page.
func decisionValues(t *testing.T, doc *goquery.Document, action string) url.Values {
	t.Helper()
	form := doc.Find("#form-" + action)
	if form.Length() != 1 {
		t.Fatalf("no %s form on the page", action)
	}
	return formValues(form)
}

func TestExceptionApprove(t *testing.T) {
	e := newRiskEnv(t)
	page := "/exceptions/" + excByAdmin
	doc := parse(t, e.get(page, auth.RoleApprover))
	if doc.Find("#own-request, #approver-roles").Length() != 0 {
		t.Error("an approver deciding someone else's request sees a warning")
	}
	if doc.Find("#form-reject").Length() != 1 || doc.Find("#form-withdraw, #form-review").Length() != 0 {
		t.Error("a requested exception offers the wrong forms")
	}
	v := decisionValues(t, doc, "approve")
	if diff := cmp.Diff(url.Values{"action": {"approve"}, "revision": {"1"}, "note": {""}}, v); diff != "" {
		t.Errorf("approve form (-want +got):\n%s", diff)
	}
	v.Set("note", "Vendor letter on file")
	w := e.post(page+"/decide", auth.RoleApprover, v)
	wantStatus(t, w, http.StatusSeeOther)
	if loc := w.Header().Get("Location"); loc != page+"?done=approve" {
		t.Errorf("redirect = %q", loc)
	}
	doc = parse(t, e.get(page+"?done=approve", auth.RoleApprover))
	if got := text(doc.Find("#state")); got != "Approved" {
		t.Errorf("state = %q", got)
	}
	if got := text(doc.Find("#decided")); !strings.Contains(got, "by approver: Vendor letter on file") {
		t.Errorf("decided = %q", got)
	}
	if !strings.HasPrefix(text(doc.Find("#done")), "Approved.") {
		t.Errorf("confirmation = %q", text(doc.Find("#done")))
	}
	if doc.Find("#form-review").Length() != 1 || doc.Find("#form-revoke").Length() != 1 {
		t.Error("an approved exception offers no review or revoke form")
	}
}

func TestExceptionDecisionErrorsShowOnPage(t *testing.T) {
	e := newRiskEnv(t)

	// Separation of duties: the approver requested this one.
	page := "/exceptions/" + excByApprver
	doc := parse(t, e.get(page, auth.RoleApprover))
	if doc.Find("#own-request").Length() != 1 {
		t.Error("no separation-of-duties hint on one's own request")
	}
	// The requester is offered no approve or reject form; a forged one
	// is still refused by the service.
	if doc.Find("#form-approve").Length() != 0 || doc.Find("#form-reject").Length() != 0 {
		t.Error("the requester is offered to approve or reject their own exception")
	}
	v := url.Values{"action": {"approve"}, "revision": {"1"}, "note": {"self-approval attempt"}}
	w := e.post(page+"/decide", auth.RoleApprover, v)
	wantStatus(t, w, http.StatusForbidden)
	doc = parse(t, w)
	if got := text(doc.Find("#decision-error")); !strings.Contains(got, "separation of duties: approver requested exception "+excByApprver+" and cannot approve it") {
		t.Errorf("error = %q", got)
	}
	if e.exceptions.exceptions[excByApprver].State != risk.ExceptionRequested {
		t.Error("self-approval went through")
	}

	// A role the policy does not name as approver: admin.
	page = "/exceptions/" + excByAdmin
	doc = parse(t, e.get(page, auth.RoleAdmin))
	if got := text(doc.Find("#approver-roles")); got != "The policy lets approver approve or reject exceptions." {
		t.Errorf("approver hint = %q", got)
	}
	if doc.Find("#form-approve").Length() != 0 {
		t.Error("admin, not an approver role of the policy, is offered the approve form")
	}

	// A rejection must say why.
	doc = parse(t, e.get(page, auth.RoleApprover))
	stale := decisionValues(t, doc, "reject")
	w = e.post(page+"/decide", auth.RoleApprover, stale)
	wantStatus(t, w, http.StatusBadRequest)
	if got := text(parse(t, w).Find("#note-reject-error")); got != "required: say why the exception is rejected" {
		t.Errorf("note error = %q", got)
	}

	// Stale revision: someone approved it after this page was loaded.
	approve := decisionValues(t, doc, "approve")
	wantStatus(t, e.post(page+"/decide", auth.RoleApprover, approve), http.StatusSeeOther)
	stale.Set("note", "Too risky")
	w = e.post(page+"/decide", auth.RoleApprover, stale)
	wantStatus(t, w, http.StatusConflict)
	doc = parse(t, w)
	if got := text(doc.Find("#decision-error")); !strings.Contains(got, "changed since you loaded it (revision 1, now 2)") ||
		!strings.HasSuffix(got, "The page now shows the exception as it is.") {
		t.Errorf("conflict message = %q", got)
	}
	if got := text(doc.Find("#state")); got != "Approved" {
		t.Errorf("page shows state %q; want the current one", got)
	}
	if rev := decisionValues(t, doc, "revoke").Get("revision"); rev != "2" {
		t.Errorf("forms carry revision %q; want 2", rev)
	}
	// A form without its revision is refused, not applied blindly.
	w = e.post(page+"/decide", auth.RoleApprover, url.Values{"action": {"revoke"}, "note": {"x"}})
	wantStatus(t, w, http.StatusBadRequest)
	if e.exceptions.exceptions[excByAdmin].State != risk.ExceptionApproved {
		t.Error("a decision without a revision was applied")
	}
}

func TestExceptionDecideForbidden(t *testing.T) {
	e := newRiskEnv(t)
	page := "/exceptions/" + excByAdmin
	for _, role := range []auth.Role{auth.RoleOperator, auth.RoleAuditor, auth.RoleViewer} {
		doc := parse(t, e.get(page, role))
		if doc.Find("#form-approve, #form-reject").Length() != 0 {
			t.Errorf("%s is offered decision forms", role)
		}
		wantStatus(t, e.post(page+"/decide", role, url.Values{"action": {"approve"}, "revision": {"1"}}), http.StatusForbidden)
	}
	if len(e.exceptions.decisions) != 0 {
		t.Error("a role without exception:decide reached the service")
	}
	wantStatus(t, e.get("/exceptions/exc_nope", auth.RoleViewer), http.StatusNotFound)
	wantStatus(t, e.post("/exceptions/exc_nope/decide", auth.RoleApprover, url.Values{"action": {"approve"}, "revision": {"1"}}), http.StatusNotFound)
}

func TestExceptionReviewAndWithdraw(t *testing.T) {
	e := newRiskEnv(t)
	page := "/exceptions/" + excApproved
	doc := parse(t, e.get(page, auth.RoleApprover))
	v := decisionValues(t, doc, "review")
	if v.Get("outcome") != "continue" {
		t.Errorf("review outcome defaults to %q; want continue", v.Get("outcome"))
	}
	v.Set("note", "VLAN ACLs checked")
	wantStatus(t, e.post(page+"/decide", auth.RoleApprover, v), http.StatusSeeOther)
	doc = parse(t, e.get(page, auth.RoleAuditor))
	if got := tableRows(doc.Find("#reviews")); len(got) != 1 || got[0][1] != "approver" || got[0][2] != "Continue" {
		t.Errorf("reviews = %q", got)
	}
	if got := tableRows(doc.Find("#controls")); len(got) != 1 || !strings.HasSuffix(got[0][2], "by approver") {
		t.Errorf("controls after review = %q; want verified by approver", got)
	}

	// The requester withdraws their own request; nobody else may.
	page = "/exceptions/" + excByAdmin
	doc = parse(t, e.get(page, auth.RoleOperator))
	if doc.Find("#form-withdraw").Length() != 0 {
		t.Error("operator may withdraw admin's request")
	}
	w := e.post(page+"/withdraw", auth.RoleOperator, url.Values{"revision": {"1"}, "note": {"not mine"}})
	wantStatus(t, w, http.StatusForbidden)
	if got := text(parse(t, w).Find("#decision-error")); got != "only admin, who requested exception "+excByAdmin+", can withdraw it" {
		t.Errorf("withdraw error = %q", got)
	}
	doc = parse(t, e.get(page, auth.RoleAdmin))
	v = decisionValues(t, doc, "withdraw")
	v.Set("note", "Patched in the weekend window instead")
	w = e.post(page+"/withdraw", auth.RoleAdmin, v)
	wantStatus(t, w, http.StatusSeeOther)
	if got := e.exceptions.exceptions[excByAdmin]; got.State != risk.ExceptionRevoked || got.EndedBy != "admin" {
		t.Errorf("after withdraw: %s by %q", got.State, got.EndedBy)
	}
	doc = parse(t, e.get(w.Header().Get("Location"), auth.RoleAdmin))
	if got := text(doc.Find("#done")); got != "Request withdrawn." {
		t.Errorf("confirmation = %q", got)
	}
	if doc.Find("#decide").Length() != 0 {
		t.Error("a revoked exception still offers decisions")
	}
}

// TestExceptionRequestExpiryErrors: a bad expiry is refused with a message
// that names the field and what would do, under the policy's maximum
// duration, and the form comes back with everything as typed.
func TestExceptionRequestExpiryErrors(t *testing.T) {
	e := newRiskEnv(t)
	// Now is Friday 20 March 2026, 10:00 in Chicago; 90 days on is 18 June.
	applyPolicy(t, e, "max_duration: 1y", "max_duration: 90d")
	base := url.Values{"scope": {"finding"}, "target": {"f-xz"}, "vuln_id": {"CVE-2024-3094"}, "decision": {"mitigate"},
		"reason": {"Vendor validates the fix in Q2"}, "owner": {"Lab director"},
		"control_kind": {"segmentation", "", ""}, "control_description": {"Analyzer VLAN 30", "", ""}}
	const (
		afterToday = "Expires: enter a date after today, e.g. 2026-04-20"
		tooLate    = "Expires must be within the policy's maximum of 90 days: latest 2026-06-18"
	)
	for _, tc := range []struct {
		name, typed string
		owner       string // "" keeps the base owner; "-" blanks it
		want        map[string]string
	}{
		{name: "empty", typed: "", want: map[string]string{"expires_at": afterToday}},
		{name: "blank", typed: "  ", want: map[string]string{"expires_at": afterToday}},
		{name: "day first", typed: "31/01/2027",
			want: map[string]string{"expires_at": `Expires: "31/01/2027" is not a date; enter one as YYYY-MM-DD, e.g. 2026-04-20`}},
		{name: "no such day", typed: "2026-02-30",
			want: map[string]string{"expires_at": `Expires: "2026-02-30" is not a date; enter one as YYYY-MM-DD, e.g. 2026-04-20`}},
		{name: "yesterday", typed: "2026-03-19", want: map[string]string{"expires_at": afterToday}},
		{name: "today", typed: "2026-03-20", want: map[string]string{"expires_at": afterToday}},
		{name: "a day past the maximum", typed: "2026-06-19", want: map[string]string{"expires_at": tooLate}},
		{name: "next year", typed: "2027-01-31", want: map[string]string{"expires_at": tooLate}},
		{name: "with another problem", typed: "2026-01-01", owner: "-", want: map[string]string{"expires_at": afterToday,
			"owner": "required: who is accountable for the risk and the controls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{}
			for k, v := range base {
				form[k] = v
			}
			form.Set("expires_at", tc.typed)
			if tc.owner == "-" {
				form.Set("owner", "")
			}
			w := e.post("/exceptions/new", auth.RoleOperator, form)
			wantStatus(t, w, http.StatusBadRequest)
			doc := parse(t, w)
			got := map[string]string{}
			doc.Find("#exception-form [data-field]").Each(func(_ int, f *goquery.Selection) {
				if msg := text(f.Find(".error")); msg != "" {
					got[f.AttrOr("data-field", "")] = msg
				}
			})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("field errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(form, formValues(doc.Find("#exception-form"))); diff != "" {
				t.Errorf("form as re-rendered (-typed +shown):\n%s", diff)
			}
			if n := len(e.exceptions.exceptions); n != 3 {
				t.Errorf("exceptions = %d; a refused request was stored", n)
			}
		})
	}

	// The first and the last day allowed are taken; the hint names both ends.
	hint := text(parse(t, e.get("/exceptions/new?scope=finding&target=f-xz", auth.RoleOperator)).Find("#f-expires_at-hint"))
	if want := "The exception ends at 00:00 on this date (America/Chicago): a date after today, no later than 2026-06-18 (the policy allows at most 90 days)."; hint != want {
		t.Errorf("hint = %q; want %q", hint, want)
	}
	for _, day := range []string{"2026-03-21", "2026-06-18"} {
		form := url.Values{}
		for k, v := range base {
			form[k] = v
		}
		form.Set("expires_at", day)
		wantStatus(t, e.post("/exceptions/new", auth.RoleOperator, form), http.StatusSeeOther)
	}
}

// TestExceptionExpiryInSiteZone: a date typed on the form is a day in the
// policy's time zone, so "today" is the site's today.
func TestExceptionExpiryInSiteZone(t *testing.T) {
	e := newRiskEnv(t)
	// Now, 15:00 UTC on 20 March, is already 04:00 on the 21st in Auckland.
	applyPolicy(t, e, "time_zone: America/Chicago", "time_zone: Pacific/Auckland")
	form := url.Values{"scope": {"finding"}, "target": {"f-xz"}, "decision": {"accept"}, "reason": {"Validated device"},
		"owner": {"Lab director"}, "expires_at": {"2026-03-21"}}
	w := e.post("/exceptions/new", auth.RoleOperator, form)
	wantStatus(t, w, http.StatusBadRequest)
	if got := text(parse(t, w).Find(`[data-field="expires_at"] .error`)); got != "Expires: enter a date after today, e.g. 2026-04-21" {
		t.Errorf("error = %q", got)
	}
	form.Set("expires_at", "2026-03-22")
	w = e.post("/exceptions/new", auth.RoleOperator, form)
	wantStatus(t, w, http.StatusSeeOther)
	id := strings.TrimSuffix(strings.TrimPrefix(w.Header().Get("Location"), "/exceptions/"), "?done=request")
	// 00:00 on 22 March in Auckland (NZDT, UTC+13).
	if got, want := e.exceptions.exceptions[id].ExpiresAt, time.Date(2026, 3, 21, 11, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("expires = %v; want %v", got, want)
	}
}
