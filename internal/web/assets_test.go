package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/inventory"
)

func TestAssetListFilters(t *testing.T) {
	e := newEnv(t)
	w := e.get("/assets?type=analyzer&phi=true&owner=Lab+director&site=s-lab&q=analyzer", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)

	// The filter form shows what was asked for.
	for name, want := range map[string]string{"type": "analyzer", "phi": "true", "site": "s-lab", "criticality": "", "support": ""} {
		got, _ := doc.Find(`#filters select[name="` + name + `"] option[selected]`).Attr("value")
		if got != want {
			t.Errorf("filter %s selected = %q; want %q", name, got, want)
		}
	}
	if got, _ := doc.Find(`#filters input[name="owner"]`).Attr("value"); got != "Lab director" {
		t.Errorf("owner filter = %q; want %q", got, "Lab director")
	}
	if got, _ := doc.Find(`#filters input[name="q"]`).Attr("value"); got != "analyzer" {
		t.Errorf("search = %q; want %q", got, "analyzer")
	}
	// Every filter control has a label.
	doc.Find("#filters input, #filters select").Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("id")
		if id == "" || doc.Find(`label[for="`+id+`"]`).Length() != 1 {
			t.Errorf("filter control %q has no label", id)
		}
	})

	// The service got the parsed filter.
	phi := true
	wantF := inventory.Filter{SiteID: "s-lab", Type: inventory.TypeAnalyzer, PHI: &phi, Owner: "Lab director", Q: "analyzer", Limit: 50}
	if diff := cmp.Diff(wantF, e.inv.filters[len(e.inv.filters)-1]); diff != "" {
		t.Errorf("filter (-want +got):\n%s", diff)
	}

	rows := doc.Find("#asset-table tbody tr")
	if rows.Length() != 2 {
		t.Fatalf("rows = %d; want 2", rows.Length())
	}
	if got := text(doc.Find("#asset-count")); got != "Showing 1–2 of 2 assets" {
		t.Errorf("count = %q; want %q", got, "Showing 1–2 of 2 assets")
	}
	first := rows.First()
	if href, _ := first.Find("td.name a").Attr("href"); href != "/assets/a-chem" {
		t.Errorf("first row links to %q; want /assets/a-chem", href)
	}
	cells := first.Find("td").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	wantCells := []string{"Chemistry analyzer", "Analyzer", "Riverside Laboratory", "Critical", "PHI", "Clinical VLAN", "Supported", "Lab director Lab IT"}
	if diff := cmp.Diff(wantCells, cells); diff != "" {
		t.Errorf("first row (-want +got):\n%s", diff)
	}
	if first.Find(".badge.critical").Length() != 1 || first.Find(".badge.phi").Length() != 1 {
		t.Error("critical PHI asset lacks its badges")
	}
	if doc.Find(`a[href="/assets"]`).FilterFunction(func(_ int, s *goquery.Selection) bool { return text(s) == "Clear filters" }).Length() != 1 {
		t.Error("no Clear filters link while filtering")
	}
}

func TestAssetListBadges(t *testing.T) {
	e := newEnv(t)
	doc := parse(t, e.get("/assets", auth.RoleAdmin))
	for id, badge := range map[string]string{"a-vpn": ".badge.internet", "a-xp": ".badge.eos", "a-heme": ".badge.high"} {
		if doc.Find(`tr[data-asset-id="`+id+`"] `+badge).Length() != 1 {
			t.Errorf("row %s lacks %s", id, badge)
		}
	}
	if got := doc.Find("#asset-table tbody tr").Length(); got != 4 {
		t.Errorf("rows = %d; want 4", got)
	}
}

func TestAssetListPaging(t *testing.T) {
	e := newEnv(t)
	doc := parse(t, e.get("/assets?limit=2&exposure=", auth.RoleViewer))
	if got := doc.Find("#asset-table tbody tr").Length(); got != 2 {
		t.Fatalf("rows = %d; want 2", got)
	}
	if got := text(doc.Find("#asset-count")); got != "Showing 1–2 of 4 assets" {
		t.Errorf("count = %q", got)
	}
	next, ok := doc.Find(`.pager a[rel="next"]`).Attr("href")
	if !ok || next != "?limit=2&offset=2" {
		t.Fatalf("next link = %q; want ?limit=2&offset=2", next)
	}
	if doc.Find(`.pager a[rel="prev"]`).Length() != 0 {
		t.Error("first page has a previous link")
	}
	doc = parse(t, e.get("/assets"+next, auth.RoleViewer))
	if got := text(doc.Find("#asset-count")); got != "Showing 3–4 of 4 assets" {
		t.Errorf("page 2 count = %q", got)
	}
	if prev, _ := doc.Find(`.pager a[rel="prev"]`).Attr("href"); prev != "?limit=2" {
		t.Errorf("prev link = %q; want ?limit=2", prev)
	}
}

func TestAssetListBadFilter(t *testing.T) {
	e := newEnv(t)
	w := e.get("/assets?type=toaster", auth.RoleViewer)
	wantStatus(t, w, http.StatusBadRequest)
	doc := parse(t, w)
	if got := text(doc.Find(".alert")); !strings.Contains(got, `"toaster" is not one of`) {
		t.Errorf("alert = %q; want the invalid type named", got)
	}
	if doc.Find("#filters").Length() != 1 {
		t.Error("filter form missing on a bad filter")
	}
}

func TestAssetDetail(t *testing.T) {
	e := newEnv(t)
	w := e.get("/assets/a-chem", auth.RoleAdmin)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	if got := text(doc.Find("h1")); got != "Chemistry analyzer" {
		t.Errorf("h1 = %q", got)
	}
	var headings []string
	doc.Find("section.card h2").Each(func(_ int, s *goquery.Selection) { headings = append(headings, text(s)) })
	wantH := []string{"Identity", "Location and network", "Ownership", "Risk", "Lifecycle", "Tags and groups", "Installed software"}
	if diff := cmp.Diff(wantH, headings); diff != "" {
		t.Errorf("sections (-want +got):\n%s", diff)
	}
	dd := func(term string) string {
		return text(doc.Find("dt").FilterFunction(func(_ int, s *goquery.Selection) bool { return text(s) == term }).Next())
	}
	for term, want := range map[string]string{
		"Serial number": "CH-311-0042", "Site": "Riverside Laboratory", "Handles PHI": "Yes",
		"Business criticality": "Critical", "Patient-safety impact": "High", "Regulated medical device": "Yes",
		"Vendor patch restriction": "Vendor-mediated only", "Support status": "Supported",
		"Last patched": "2026-03-02", "Pending updates": "2", "Groups": "Tier-1 lab systems", "Tags": "lab",
		"Technical owner": "Lab IT",
	} {
		if got := dd(term); got != want {
			t.Errorf("%s = %q; want %q", term, got, want)
		}
	}
	if got := doc.Find("#software tbody tr").Length(); got != 1 {
		t.Errorf("software rows = %d; want 1", got)
	}
	if href, _ := doc.Find("#edit-link").Attr("href"); href != "/assets/a-chem/edit" {
		t.Errorf("edit link = %q", href)
	}
	history := doc.Find(`a`).FilterFunction(func(_ int, s *goquery.Selection) bool { return text(s) == "History" })
	if href, _ := history.Attr("href"); href != "/audit?object_id=a-chem&object_type=asset" {
		t.Errorf("history link = %q", href)
	}
}

func TestViewerCannotEdit(t *testing.T) {
	e := newEnv(t)
	doc := parse(t, e.get("/assets/a-chem", auth.RoleViewer))
	if doc.Find("#edit-link").Length() != 0 {
		t.Error("viewer sees an Edit link")
	}
	if doc.Find(`a[href="/assets/new"]`).Length() != 0 {
		t.Error("viewer sees a New asset link")
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/assets/a-chem/edit"}, {"POST", "/assets/a-chem/edit"}, {"GET", "/assets/new"}, {"POST", "/assets/new"},
		{"GET", "/import"}, {"POST", "/import"}, {"GET", "/audit"},
	} {
		w := e.do(tc.method, tc.path, auth.RoleViewer, strings.NewReader("name=x&revision=3"), "application/x-www-form-urlencoded")
		wantStatus(t, w, http.StatusForbidden)
		if got := text(parse(t, w).Find("h1")); got != "Not allowed" {
			t.Errorf("%s %s: h1 = %q; want Not allowed", tc.method, tc.path, got)
		}
	}
	if e.inv.writes != 0 {
		t.Errorf("writes = %d; want 0", e.inv.writes)
	}
}

func TestNavByRole(t *testing.T) {
	e := newEnv(t)
	for role, want := range map[auth.Role][]string{
		auth.RoleAdmin:    {"Assets", "Import", "Audit log"},
		auth.RoleOperator: {"Assets", "Import"},
		auth.RoleApprover: {"Assets", "Audit log"},
		auth.RoleAuditor:  {"Assets", "Audit log"},
		auth.RoleViewer:   {"Assets"},
	} {
		doc := parse(t, e.get("/assets", role))
		got := doc.Find("nav[aria-label=Main] a").Map(func(_ int, s *goquery.Selection) string { return text(s) })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s nav (-want +got):\n%s", role, diff)
		}
		if cur := text(doc.Find(`nav a[aria-current="page"]`)); cur != "Assets" {
			t.Errorf("%s: current nav item = %q; want Assets", role, cur)
		}
		if got := text(doc.Find(".user .who")); !strings.Contains(got, "Pat "+string(role)) {
			t.Errorf("%s: signed-in user shown as %q", role, got)
		}
		if doc.Find(`.user form[action="/logout"][method="post"] button`).Length() != 1 {
			t.Errorf("%s: no sign-out button", role)
		}
	}
}

func editForm(t *testing.T, e *env, id string) url.Values {
	t.Helper()
	w := e.get("/assets/"+id+"/edit", auth.RoleOperator)
	wantStatus(t, w, http.StatusOK)
	return formValues(parse(t, w).Find("form.asset-form"))
}

func TestEditFormShowsEveryField(t *testing.T) {
	e := newEnv(t)
	doc := parse(t, e.get("/assets/a-chem/edit", auth.RoleOperator))
	form := doc.Find("form.asset-form")
	if got, _ := form.Find(`input[type=hidden][name=revision]`).Attr("value"); got != "3" {
		t.Errorf("revision = %q; want 3", got)
	}
	for _, name := range []string{"name", "type", "hostname", "make", "model", "serial", "asset_tag", "os_name",
		"os_version", "firmware_version", "cpe", "site_id", "location", "network_zone", "exposure", "ip_addresses",
		"mac_address", "business_owner", "technical_owner", "handles_phi", "data_classification", "criticality",
		"patient_safety_impact", "regulated_device", "vendor_patch_restriction", "vendor_patch_notes",
		"maintenance_window", "patch_source", "support_status", "end_of_support", "last_patched_at",
		"pending_updates", "purchase_ref", "purchased_at", "tags", "groups", "notes"} {
		ctl := form.Find(`[name="` + name + `"]`)
		if ctl.Length() == 0 {
			t.Errorf("no control for %s", name)
			continue
		}
		id, _ := ctl.First().Attr("id")
		if name != "groups" && doc.Find(`label[for="`+id+`"]`).Length() != 1 {
			t.Errorf("%s has no label", name)
		}
	}
	if got, _ := form.Find(`select[name=type] option[selected]`).Attr("value"); got != "analyzer" {
		t.Errorf("type selected = %q", got)
	}
	if got := form.Find(`select[name=type] option`).Length(); got != len(inventory.Types) {
		t.Errorf("type options = %d; want %d", got, len(inventory.Types))
	}
	if _, ok := form.Find(`input[name=handles_phi]`).Attr("checked"); !ok {
		t.Error("handles_phi not checked")
	}
	if _, ok := form.Find(`input[name=groups][value=g-lab]`).Attr("checked"); !ok {
		t.Error("group g-lab not checked")
	}
}

func TestEditAssetValidationError(t *testing.T) {
	e := newEnv(t)
	v := editForm(t, e, "a-chem")
	v.Set("name", "Chemistry analyzer 2")
	v.Set("mac_address", "not-a-mac")
	v.Set("pending_updates", "2")
	w := e.post("/assets/a-chem/edit", auth.RoleOperator, v)
	wantStatus(t, w, http.StatusBadRequest)
	doc := parse(t, w)
	field := doc.Find(`[data-field="mac_address"]`)
	if got := text(field.Find(".error")); !strings.Contains(got, "is not a MAC address") {
		t.Errorf("mac_address error = %q; want the inventory's message", got)
	}
	input := field.Find("input")
	if got, _ := input.Attr("value"); got != "not-a-mac" {
		t.Errorf("mac_address value = %q; want the user's input back", got)
	}
	if got, _ := input.Attr("aria-invalid"); got != "true" {
		t.Error("mac_address not marked aria-invalid")
	}
	if got, _ := input.Attr("aria-describedby"); !strings.Contains(got, "f-mac_address-error") {
		t.Errorf("aria-describedby = %q; want the error's id", got)
	}
	if got, _ := doc.Find(`input[name=name]`).Attr("value"); got != "Chemistry analyzer 2" {
		t.Errorf("name = %q; want the user's edit kept", got)
	}
	if doc.Find(`[data-field="name"] .error`).Length() != 0 {
		t.Error("valid field shows an error")
	}
	if got := text(doc.Find("#form-errors")); !strings.Contains(got, "correct the field") {
		t.Errorf("summary = %q", got)
	}
	if e.inv.writes != 0 {
		t.Errorf("writes = %d; want 0", e.inv.writes)
	}
}

func TestEditAssetBadDate(t *testing.T) {
	e := newEnv(t)
	v := editForm(t, e, "a-chem")
	v.Set("end_of_support", "next spring")
	v.Set("pending_updates", "many")
	w := e.post("/assets/a-chem/edit", auth.RoleOperator, v)
	wantStatus(t, w, http.StatusBadRequest)
	doc := parse(t, w)
	for field, want := range map[string]string{"end_of_support": "must be a date", "pending_updates": "must be a whole number"} {
		if got := text(doc.Find(`[data-field="` + field + `"] .error`)); !strings.Contains(got, want) {
			t.Errorf("%s error = %q; want %q", field, got, want)
		}
	}
}

func TestEditAssetSaves(t *testing.T) {
	e := newEnv(t)
	before := e.inv.assets["a-chem"]
	v := editForm(t, e, "a-chem")
	v.Set("criticality", "high")
	v.Set("tags", "lab, chemistry")
	v.Del("regulated_device")
	v.Set("vendor_patch_restriction", "none")
	w := e.post("/assets/a-chem/edit", auth.RoleOperator, v)
	wantStatus(t, w, http.StatusSeeOther)
	if got := w.Header().Get("Location"); got != "/assets/a-chem?saved=1" {
		t.Errorf("Location = %q", got)
	}
	got := e.inv.assets["a-chem"]
	if got.Criticality != inventory.LevelHigh || got.RegulatedDevice || !slices.Equal(got.Tags, []string{"chemistry", "lab"}) {
		t.Errorf("saved criticality=%s regulated=%v tags=%v", got.Criticality, got.RegulatedDevice, got.Tags)
	}
	// What the form does not show survives: software, and the time of day
	// of an unchanged date.
	if diff := cmp.Diff(before.Software, got.Software); diff != "" {
		t.Errorf("software changed (-before +after):\n%s", diff)
	}
	if !got.LastPatchedAt.Equal(*before.LastPatchedAt) {
		t.Errorf("last patched = %v; want %v kept", got.LastPatchedAt, before.LastPatchedAt)
	}
	if a := e.inv.actors[0]; a.Name != "operator" || a.Addr != "192.0.2.1" {
		t.Errorf("actor = %+v; want operator from 192.0.2.1", a)
	}
	doc := parse(t, e.get("/assets/a-chem?saved=1", auth.RoleOperator))
	if got := text(doc.Find(".notice")); got != "Saved." {
		t.Errorf("notice = %q", got)
	}
}

func TestEditAssetConflict(t *testing.T) {
	e := newEnv(t)
	v := editForm(t, e, "a-chem")
	v.Set("revision", "2") // someone saved in between
	v.Set("notes", "my change")
	w := e.post("/assets/a-chem/edit", auth.RoleOperator, v)
	wantStatus(t, w, http.StatusConflict)
	doc := parse(t, w)
	if got := text(doc.Find("#form-message")); !strings.Contains(got, "changed by someone else") {
		t.Errorf("message = %q", got)
	}
	if got := text(doc.Find(`textarea[name=notes]`)); got != "my change" {
		t.Errorf("notes = %q; want the user's text kept", got)
	}
	v.Del("revision")
	wantStatus(t, e.post("/assets/a-chem/edit", auth.RoleOperator, v), http.StatusBadRequest)
	if e.inv.writes != 0 {
		t.Errorf("writes = %d; want 0", e.inv.writes)
	}
}

func TestCreateAsset(t *testing.T) {
	e := newEnv(t)
	w := e.get("/assets/new", auth.RoleAdmin)
	wantStatus(t, w, http.StatusOK)
	form := parse(t, w).Find("form.asset-form")
	if form.Find(`input[name=revision]`).Length() != 0 {
		t.Error("new-asset form has a revision")
	}
	v := formValues(form)

	bad := url.Values{}
	for k, vs := range v {
		bad[k] = vs
	}
	bad.Set("name", "")
	bad.Set("support_status", "end_of_support")
	w = e.post("/assets/new", auth.RoleAdmin, bad)
	wantStatus(t, w, http.StatusBadRequest)
	doc := parse(t, w)
	if got := text(doc.Find(`[data-field="name"] .error`)); got != "is required" {
		t.Errorf("name error = %q", got)
	}
	if got := text(doc.Find(`[data-field="end_of_support"] .error`)); !strings.Contains(got, "is required when support_status") {
		t.Errorf("end_of_support error = %q", got)
	}
	if got, _ := doc.Find(`select[name=support_status] option[selected]`).Attr("value"); got != "end_of_support" {
		t.Errorf("support_status = %q; want the user's choice kept", got)
	}

	v.Set("name", "Front desk PC")
	v.Set("type", "endpoint")
	v.Set("serial", "FD-1")
	v.Set("site_id", "s-clinic")
	v.Add("groups", "g-pilot")
	w = e.post("/assets/new", auth.RoleAdmin, v)
	wantStatus(t, w, http.StatusSeeOther)
	id := strings.TrimSuffix(strings.TrimPrefix(w.Header().Get("Location"), "/assets/"), "?saved=1")
	a, ok := e.inv.assets[id]
	if !ok {
		t.Fatalf("no asset %q created; Location %q", id, w.Header().Get("Location"))
	}
	if a.Name != "Front desk PC" || a.Source != inventory.SourceManual || a.SiteID != "s-clinic" || !slices.Equal(a.Groups, []string{"g-pilot"}) {
		t.Errorf("created %+v", a)
	}
}

func TestAssetNotFound(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/assets/nope", "/assets/nope/edit", "/no/such/page"} {
		w := e.get(path, auth.RoleAdmin)
		wantStatus(t, w, http.StatusNotFound)
		if got := text(parse(t, w).Find("h1")); got != "Not found" {
			t.Errorf("%s: h1 = %q", path, got)
		}
	}
}

func TestInternalErrorNotShown(t *testing.T) {
	e := newEnv(t)
	e.inv.fail = errors.New(`pq: relation "assets" does not exist at 10.0.0.5`)
	w := e.get("/assets/a-chem", auth.RoleAdmin)
	wantStatus(t, w, http.StatusInternalServerError)
	if strings.Contains(w.Body.String(), "10.0.0.5") || strings.Contains(w.Body.String(), "relation") {
		t.Error("internal error detail shown to the user")
	}
	if !strings.Contains(text(parse(t, w).Find(".alert")), "internal error") {
		t.Error("no generic error message")
	}
	if !strings.Contains(e.logs.String(), "10.0.0.5") {
		t.Error("internal error not logged")
	}
}

func TestAssetListKeepsFiltersWithoutControls(t *testing.T) {
	e := newEnv(t)
	doc := parse(t, e.get("/assets?tag=lab&group=g-lab", auth.RoleViewer))
	for name, want := range map[string]string{"tag": "lab", "group": "g-lab"} {
		if got, _ := doc.Find(`#filters input[type=hidden][name="` + name + `"]`).Attr("value"); got != want {
			t.Errorf("hidden %s = %q; want %q", name, got, want)
		}
	}
	if got := text(doc.Find("#extra-filters")); got != "Also filtered by tag “lab”, group “Tier-1 lab systems”." {
		t.Errorf("extra filters = %q", got)
	}
	if f := e.inv.filters[len(e.inv.filters)-1]; f.Tag != "lab" || f.GroupID != "g-lab" {
		t.Errorf("filter tag=%q group=%q", f.Tag, f.GroupID)
	}
}
