package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
)

//go:embed templates
var templateFS embed.FS

// route is one row of the UI's route table: the pattern, the permission it
// needs (empty for the sign-in pages) and the handler.
type route struct {
	pattern string
	perm    auth.Permission
	handle  func(w http.ResponseWriter, r *http.Request, p auth.Principal) error
}

// public marks routes that work before sign-in.
const public auth.Permission = ""

func (ui *UI) routes() []route {
	rs := []route{
		{"GET /{$}", public, ui.home},
		{"GET /login", public, ui.loginPage},
		{"POST /login", public, ui.login},
		{"POST /logout", public, ui.logout},
		{"GET /assets", auth.PermAssetRead, ui.listAssets},
		{"GET /assets/new", auth.PermAssetWrite, ui.newAsset},
		{"POST /assets/new", auth.PermAssetWrite, ui.createAsset},
		{"GET /assets/{id}", auth.PermAssetRead, ui.showAsset},
		{"GET /assets/{id}/edit", auth.PermAssetWrite, ui.editAsset},
		{"POST /assets/{id}/edit", auth.PermAssetWrite, ui.updateAsset},
	}
	if ui.cfg.Findings != nil {
		rs = append(rs,
			route{"GET /findings", auth.PermAssetRead, ui.listFindings},
			route{"GET /findings/{id}", auth.PermAssetRead, ui.showFinding})
	}
	if ui.cfg.Advisories != nil {
		// Feed status is read-only operational data the findings depend
		// on, so whoever may read findings may see whether they are current.
		rs = append(rs,
			route{"GET /advisories", auth.PermAssetRead, ui.listAdvisories},
			route{"GET /advisories/{id}", auth.PermAssetRead, ui.showAdvisory},
			route{"GET /feeds", auth.PermAssetRead, ui.feedsPage})
	}
	if ui.cfg.Risk != nil {
		rs = append(rs, route{"GET /worklist", auth.PermRiskRead, ui.worklist})
	}
	if ui.cfg.Policy != nil {
		rs = append(rs,
			route{"GET /policy", auth.PermPolicyRead, ui.policyPage},
			route{"GET /policy/document.md", auth.PermPolicyRead, ui.policyDocument},
			route{"GET /policy/document.html", auth.PermPolicyRead, ui.policyDocument},
			route{"GET /policy/edit", auth.PermPolicyWrite, ui.policyEditor},
			route{"POST /policy/edit", auth.PermPolicyWrite, ui.policySubmit})
	}
	if ui.cfg.Exceptions != nil {
		rs = append(rs,
			route{"GET /exceptions", auth.PermRiskRead, ui.listExceptions},
			route{"GET /exceptions/new", auth.PermExceptionRequest, ui.newException},
			route{"POST /exceptions/new", auth.PermExceptionRequest, ui.createException},
			route{"GET /exceptions/{id}", auth.PermRiskRead, ui.showException},
			route{"POST /exceptions/{id}/decide", auth.PermExceptionDecide, ui.decideException},
			// A requester withdraws their own request: it needs only the
			// right to request, and the handler checks it is theirs.
			route{"POST /exceptions/{id}/withdraw", auth.PermExceptionRequest, ui.withdrawException})
	}
	if ui.cfg.Changes != nil {
		rs = append(rs,
			route{"GET /changes", auth.PermChangeRead, ui.listChanges},
			route{"GET /changes/new", auth.PermChangeWrite, ui.newChange},
			route{"POST /changes/new", auth.PermChangeWrite, ui.createChange},
			route{"GET /changes/{id}", auth.PermChangeRead, ui.showChange},
			route{"GET /changes/{id}/edit", auth.PermChangeWrite, ui.editChange},
			route{"POST /changes/{id}/edit", auth.PermChangeWrite, ui.updateChange},
			// Each move's own permission (write or operate) is checked in
			// the handler, against the action the form names.
			route{"POST /changes/{id}/act", auth.PermChangeWrite, ui.actChange},
			route{"POST /changes/{id}/decide", auth.PermChangeApprove, ui.decideChange},
			route{"POST /changes/{id}/tests", auth.PermChangeWrite, ui.recordTestRun},
			route{"POST /changes/{id}/evidence", auth.PermChangeWrite, ui.uploadEvidence},
			route{"GET /changes/{id}/evidence/{sha256}", auth.PermChangeRead, ui.downloadEvidence},
			// The service checks the signer holds the policy role's grant.
			route{"POST /changes/{id}/signoff", auth.PermChangeWrite, ui.signOffChange},
			route{"POST /changes/{id}/review", auth.PermChangeWrite, ui.reviewChange})
		if ui.cfg.Rollouts != nil {
			rs = append(rs,
				route{"GET /changes/{id}/log", auth.PermChangeRead, ui.deploymentLog},
				route{"POST /changes/{id}/rollout", auth.PermChangeOperate, ui.operateRollout},
				route{"POST /changes/{id}/rollout/manual", auth.PermChangeOperate, ui.recordManual})
		}
		if ui.cfg.Proposals != nil {
			rs = append(rs, route{"GET /proposals", auth.PermChangeRead, ui.listProposals})
		}
	}
	if ui.cfg.Policy != nil {
		rs = append(rs, route{"GET /calendar", auth.PermCalendarRead, ui.calendarPage})
		if ui.cfg.FeedTokens != nil {
			// A feed token reads the calendar only: whoever may read it
			// may make one for themselves.
			rs = append(rs, route{"POST /calendar/feed", auth.PermCalendarRead, ui.calendarPage})
		}
	}
	if ui.cfg.Importer != nil {
		rs = append(rs,
			route{"GET /import", auth.PermAssetImport, ui.importPage},
			route{"POST /import", auth.PermAssetImport, ui.importCSV})
	}
	if ui.cfg.Audit != nil {
		rs = append(rs, route{"GET /audit", auth.PermAuditRead, ui.auditPage})
	}
	return rs
}

// wrap checks the route's permission before the handler runs, so no handler
// can forget it, and turns a returned error into an error page.
func (ui *UI) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := authn.PrincipalFrom(r.Context())
		if rt.perm != public {
			var err error
			if p, err = authn.Require(r, rt.perm); err != nil {
				ui.fail(w, r, err)
				return
			}
		}
		if err := rt.handle(w, r, p); err != nil {
			ui.fail(w, r, err)
		}
	})
}

func (ui *UI) home(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	http.Redirect(w, r, ui.landing(p), http.StatusSeeOther)
	return nil
}

// landing is where a principal starts: the worklist answers the first
// question of the day ("what do we patch this week?") when the risk engine
// is wired and the role may read it, the asset list otherwise.
func (ui *UI) landing(p auth.Principal) string {
	if ui.cfg.Risk != nil && p.Can(auth.PermRiskRead) {
		return "/worklist"
	}
	return "/assets"
}

func notFound() error { return errs.E(errs.NotFound, "there is no such page") }

// fail shows err to the user as an error page with the status its kind maps
// to. Only errs.Public text reaches the page; internal detail goes to the
// log. A caller who is not signed in is sent to the sign-in page instead,
// with a way back.
func (ui *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = errs.E(errs.TooLarge, "the request is larger than %d bytes", mbe.Limit)
	}
	status := errs.HTTPStatus(err)
	if status == http.StatusUnauthorized {
		// A POST has no URL to come back to; its form page has the same path.
		next := r.URL.Path
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next = r.URL.RequestURI()
		}
		http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
		return
	}
	if status >= 500 {
		ui.log.ErrorContext(r.Context(), "web request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	title := http.StatusText(status)
	switch status {
	case http.StatusForbidden:
		title = "Not allowed"
	case http.StatusNotFound:
		title = "Not found"
	}
	ui.render(w, r, status, "error", title, errorView{Status: status, Message: errs.Public(err)})
}

type errorView struct {
	Status  int
	Message string
}

// page is what every template receives: the frame (title, signed-in user,
// navigation) and the page's own data.
type page struct {
	Title string
	User  *auth.Principal
	Nav   []navItem
	Data  any
}

type navItem struct {
	Label, Href string
	Current     bool
}

// nav lists only what the principal may open, so a viewer never sees a
// link that leads to a 403.
func (ui *UI) nav(r *http.Request, p auth.Principal) []navItem {
	var items []navItem
	add := func(label, href string, perm auth.Permission, on bool) {
		if on && p.Can(perm) {
			cur := r.URL.Path == href || strings.HasPrefix(r.URL.Path, href+"/")
			items = append(items, navItem{Label: label, Href: href, Current: cur})
		}
	}
	add("Worklist", "/worklist", auth.PermRiskRead, ui.cfg.Risk != nil)
	add("Assets", "/assets", auth.PermAssetRead, true)
	add("Findings", "/findings", auth.PermAssetRead, ui.cfg.Findings != nil)
	add("Advisories", "/advisories", auth.PermAssetRead, ui.cfg.Advisories != nil)
	add("Feeds", "/feeds", auth.PermAssetRead, ui.cfg.Advisories != nil)
	add("Exceptions", "/exceptions", auth.PermRiskRead, ui.cfg.Exceptions != nil)
	add("Changes", "/changes", auth.PermChangeRead, ui.cfg.Changes != nil)
	add("Proposals", "/proposals", auth.PermChangeRead, ui.cfg.Changes != nil && ui.cfg.Proposals != nil)
	add("Calendar", "/calendar", auth.PermCalendarRead, ui.cfg.Policy != nil)
	add("Policy", "/policy", auth.PermPolicyRead, ui.cfg.Policy != nil)
	add("Import", "/import", auth.PermAssetImport, ui.cfg.Importer != nil)
	add("Audit log", "/audit", auth.PermAuditRead, ui.cfg.Audit != nil)
	return items
}

// render executes page template name into a buffer and writes it only if
// that succeeded. Pages are never cached: they show clinical inventory.
func (ui *UI) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	pg := page{Title: title, Data: data}
	if p, ok := authn.PrincipalFrom(r.Context()); ok {
		pg.User = &p
		pg.Nav = ui.nav(r, p)
	}
	var buf bytes.Buffer
	t, ok := ui.pages[name]
	if !ok {
		ui.log.ErrorContext(r.Context(), "web: no such template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", pg); err != nil {
		ui.log.ErrorContext(r.Context(), "web: render failed", "template", name, "err", err)
		http.Error(w, "internal error; the details have been logged", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// parsePages parses every page in templates/ together with the shared
// layout and partials, once.
func parsePages(st *staticFiles) (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs(st)).ParseFS(templateFS, "templates/layout.html", "templates/partials/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		if path.Base(n) == "layout.html" {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templateFS, n); err != nil {
			return nil, fmt.Errorf("parse %s: %w", n, err)
		}
		pages[strings.TrimSuffix(path.Base(n), ".html")] = t
	}
	return pages, nil
}

func funcs(st *staticFiles) template.FuncMap {
	return template.FuncMap{
		"static":       st.url,
		"label":        label,
		"date":         civilDate,
		"join":         strings.Join,
		"percent":      percent,
		"advisoryURL":  func(id string) string { return "/advisories/" + url.PathEscape(id) },
		"findingURL":   func(id string) string { return "/findings/" + url.PathEscape(id) },
		"assetURL":     func(id string) string { return "/assets/" + url.PathEscape(id) },
		"exceptionURL": func(id string) string { return "/exceptions/" + url.PathEscape(id) },
		"slaLabel":     slaLabel,
		"score":        fmtScore,
		"decisionForm": decisionForm,
		"changeURL":    changeURL,
		"logURL":       logURL,
	}
}

// civilDate shows a calendar date that names no moment (an end of support,
// a purchase, an advisory's publication): kept at midnight UTC, it reads
// the same everywhere. An instant never goes through here but through
// whenAt, in the site's zone. nil and the zero time give "", so an unknown
// date shows as blank rather than year 1.
func civilDate(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(dateLayout)
}

// when is a point in time as a page shows it: in the local time of the
// site it concerns (the policy's time zone unless the site names its own;
// SLA days are counted there), machine-readable, in UTC for auditors, and
// how far from now, so "due Tue 14 Apr, 09:00 CDT — in 3 days" needs no
// sums. Every instant a page shows is made by whenAt and drawn by the
// "when" partial.
type when struct {
	ISO  string // RFC 3339 in UTC, for <time datetime>
	Text string // "Tue 14 Apr 2026, 09:00 CDT"
	UTC  string // "2026-04-14 14:00:00 UTC", the tooltip
	Span string // "3 days", "5 hours": the distance from now
	Past bool
}

// whenAt formats t in loc; a zero t is the zero when, shown as blank.
func whenAt(t time.Time, loc *time.Location, now time.Time) when {
	if t.IsZero() {
		return when{}
	}
	return when{ISO: t.UTC().Format(time.RFC3339), Text: t.In(loc).Format("Mon 2 Jan 2006, 15:04 MST"),
		UTC: t.UTC().Format("2006-01-02 15:04:05 UTC"), Span: span(t.Sub(now)), Past: !t.After(now)}
}

// clock shows instants in one time zone as of one moment: a page's.
type clock struct {
	loc *time.Location
	now time.Time
}

func (c clock) at(t time.Time) when { return whenAt(t, c.loc, c.now) }

// atp is at for an optional instant; nil shows as blank.
func (c clock) atp(t *time.Time) when {
	if t == nil {
		return when{}
	}
	return c.at(*t)
}

// siteClock is the clock of a page about no one site (the audit log, the
// exceptions): the policy in force's time zone, read on every request so a
// newly applied policy shows on the next page without a restart.
func (ui *UI) siteClock(ctx context.Context) (clock, error) {
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return clock{}, err
	}
	return clock{loc: zones.org, now: ui.cfg.Now()}, nil
}

// assetClock is the clock of a page about one asset: its site's time zone
// when the site names one, else the policy's.
func (ui *UI) assetClock(ctx context.Context, siteID string) (clock, error) {
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return clock{}, err
	}
	if siteID != "" {
		sites, err := ui.cfg.Inventory.Sites(ctx)
		if err != nil {
			return clock{}, err
		}
		zones.sites(sites)
	}
	return zones.clock(siteID, ui.cfg.Now()), nil
}

// span says how long d is, in the unit a person would use.
func span(d time.Duration) string {
	d = d.Abs()
	switch {
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	default:
		return plural(int(d/(24*time.Hour)), "day")
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// percent shows a probability (an EPSS score) as a percentage with the
// precision its size deserves: "37%", "4.2%", "0.05%", "<0.01%". Zero is "–": EPSS
// scores every published CVE, so zero means "no score", not "no chance".
func percent(p float64) string {
	switch v := p * 100; {
	case p <= 0:
		return "–"
	case v >= 10:
		return fmt.Sprintf("%.0f%%", v)
	case v >= 1:
		return fmt.Sprintf("%.1f%%", v)
	case v < 0.01:
		return "<0.01%"
	default:
		return fmt.Sprintf("%.2f%%", v)
	}
}

// labels are the display names of enum values. One table serves every
// enum: values that appear in two enums ("internal", "low") mean the same
// word in both.
var labels = map[string]string{
	"endpoint": "Endpoint", "server": "Server", "vm": "Virtual machine", "network_device": "Network device",
	"clinical_system": "Clinical system", "analyzer": "Analyzer", "instrument_controller": "Instrument controller",
	"imaging": "Imaging", "iomt": "IoMT device", "mobile": "Mobile", "unknown": "Unknown",
	"internet_facing": "Internet-facing", "vpn": "VPN", "internal": "Internal", "clinical_vlan": "Clinical VLAN",
	"isolated": "Isolated", "low": "Low", "medium": "Medium", "high": "High", "critical": "Critical",
	"none": "None", "direct_patient_care": "Direct patient care",
	"public": "Public", "confidential": "Confidential", "phi": "PHI",
	"owner_may_install_os_patches": "Owner may install OS patches", "vendor_mediated_only": "Vendor-mediated only",
	"vendor_approval_required": "Vendor approval required", "no_patching": "No patching",
	"supported": "Supported", "limited": "Limited", "end_of_support": "End of support",
	"manual": "Manual", "purchase": "Purchase record", "discovery": "Discovery", "agent": "Agent", "demo": "Demo",
	"admin": "Administrator", "approver": "Approver", "operator": "Operator", "auditor": "Auditor", "viewer": "Viewer",
	"create": "Create", "update": "Update", "unchanged": "Unchanged", "error": "Error",
	"open": "Open", "fixed": "Fixed", "not_affected": "Not affected",
	"known_affected": "Known affected", "known_not_affected": "Known not affected",
	"under_investigation": "Under investigation", "recommended": "Recommended",
	"vendor_fix": "Vendor fix", "mitigation": "Mitigation", "workaround": "Workaround",
	"none_available": "None available", "no_fix_planned": "No fix planned",
	"osv": "OSV", "nvd": "NVD", "nvd-cpe": "NVD (CPE)", "csaf": "CSAF", "kev": "CISA KEV", "epss": "FIRST EPSS",
	"CVSS_V2": "CVSS v2", "CVSS_V3": "CVSS v3", "CVSS_V4": "CVSS v4",
	// Risk: clock bases, SSVC values, exceptions.
	"first_seen": "From first seen", "fix_available": "From when a fix was available", "reopened": "Reopened",
	"exception_ended": "Exception ended", "reprioritized": "Re-prioritised", "policy_changed": "Policy changed",
	"awaiting_fix": "Awaiting fix", "vex_withdrawn": "Vendor statement withdrawn", "excepted": "Excepted",
	"poc": "Proof of concept", "active": "Active", "yes": "Yes", "no": "No", "partial": "Partial", "total": "Total",
	"track": "Track", "track*": "Track*", "attend": "Attend", "act": "Act",
	"requested": "Requested", "approved": "Approved", "rejected": "Rejected", "revoked": "Revoked", "expired": "Expired",
	"accept": "Accept", "mitigate": "Mitigate", "transfer": "Transfer", "avoid": "Avoid",
	"segmentation": "Network segmentation", "allowlisting": "Application allowlisting", "monitoring": "Monitoring",
	"feature_disabled": "Feature disabled", "access_restriction": "Access restriction", "vendor_managed": "Vendor-managed",
	// Change control.
	"draft": "Draft", "submitted": "Submitted", "scheduled": "Scheduled", "in_progress": "In progress",
	"completed": "Completed", "halted": "Halted", "rolled_back": "Rolled back", "cancelled": "Cancelled",
	"standard": "Standard", "normal": "Normal", "emergency": "Emergency", "pass": "Pass", "fail": "Fail", "skipped": "Skipped",
	"window": "Maintenance window", "freeze": "Freeze", "asset-window": "Asset window",
	// Rollouts, waves, items and gate verdicts.
	"running": "Running", "paused": "Paused", "rolling_back": "Rolling back", "awaiting_completion": "Awaiting completion",
	"aborted": "Aborted", "pending": "Pending", "soaking": "Soaking", "passed": "Passed", "queued": "Queued",
	"succeeded": "Succeeded", "failed": "Failed", "done": "Done",
	"advance": "Advance", "wait": "Wait", "halt": "Halt", "blocked": "Blocked",
	"other": "Other", "finding": "Finding", "asset": "Asset", "group": "Group", "continue": "Continue", "revoke": "Revoke",
}

// label returns the display name of an enum value.
func label(v any) string {
	s := fmt.Sprint(v)
	if l, ok := labels[s]; ok {
		return l
	}
	return strings.ReplaceAll(s, "_", " ")
}
