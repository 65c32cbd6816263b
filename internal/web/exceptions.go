package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
)

// exceptionStates lists the exception states in lifecycle order.
var exceptionStates = []string{risk.ExceptionRequested, risk.ExceptionApproved, risk.ExceptionRejected,
	risk.ExceptionRevoked, risk.ExceptionExpired}

// The list's views beyond a plain state filter: what compliance asks for.
const (
	viewReviewDue = "review_due"
	viewExpiring  = "expiring"
)

// controlRows is how many compensating-control rows a new exception form
// offers; most exceptions name one to three controls.
const controlRows = 3

// targetRef is an exception's target as people know it.
type targetRef struct {
	Scope, ID string
	// Name is "CVE-2024-3094 on Chemistry analyzer", an asset's or a
	// group's name; the ID when it cannot be found.
	Name string
	URL  string
}

// targets names exception targets, once per target per request.
type targets struct {
	ui     *UI
	assets assetNames
	groups map[string]string
	cache  map[string]targetRef
}

func (ui *UI) targets() *targets {
	return &targets{ui: ui, assets: assetNames{inv: ui.cfg.Inventory}, cache: map[string]targetRef{}}
}

// ref resolves a target. A target that no longer exists still shows, by
// ID: exceptions are records and outlive what they covered.
func (t *targets) ref(ctx context.Context, scope, id string) (targetRef, error) {
	key := scope + "\x00" + id
	if r, ok := t.cache[key]; ok {
		return r, nil
	}
	r := targetRef{Scope: scope, ID: id, Name: id}
	switch scope {
	case risk.ScopeFinding:
		r.URL = "/findings/" + url.PathEscape(id)
		if t.ui.cfg.Findings == nil {
			r.URL = ""
			break
		}
		f, err := t.ui.cfg.Findings.Finding(ctx, id)
		switch {
		case errs.KindOf(err) == errs.NotFound:
			r.URL = ""
		case err != nil:
			return r, err
		default:
			name, err := t.assets.name(ctx, f.AssetID)
			if err != nil {
				return r, err
			}
			r.Name = f.VulnID + " on " + name
		}
	case risk.ScopeAsset:
		name, err := t.assets.name(ctx, id)
		if err != nil {
			return r, err
		}
		r.Name, r.URL = name, "/assets/"+url.PathEscape(id)
	case risk.ScopeGroup:
		if t.groups == nil {
			gs, err := t.ui.cfg.Inventory.Groups(ctx)
			if err != nil {
				return r, err
			}
			t.groups = map[string]string{}
			for _, g := range gs {
				t.groups[g.ID] = g.Name
			}
		}
		r.Name = orDefault(t.groups[id], id)
	}
	t.cache[key] = r
	return r, nil
}

// exceptionRow is one exception in a list.
type exceptionRow struct {
	risk.Exception
	Target      targetRef
	Requested   when
	Expires     when
	NextReview  when
	ReviewState string // "overdue", "due" or ""
}

type exceptionsView struct {
	State    string
	View     string
	States   []option
	Views    []option
	Rows     []exceptionRow
	Filtered bool
	Error    string
	Aging    risk.AgingReport
	// AgingRows are the aging report's attention lists with target names.
	DueRows, OverdueRows, ExpiringRows []agingRow
	CanRequest                         bool
	Heading                            string
}

type agingRow struct {
	risk.AgingItem
	Target     targetRef
	NextReview when
	Expires    when
}

func (ui *UI) listExceptions(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	q := r.URL.Query()
	v := exceptionsView{State: q.Get("state"), View: q.Get("view"), CanRequest: p.Can(auth.PermExceptionRequest)}
	v.Filtered = v.State != "" || v.View != ""
	for _, s := range exceptionStates {
		v.States = append(v.States, option{Value: s, Label: label(s), Selected: s == v.State})
	}
	v.States = anyOption("Any state", v.States)
	v.Views = []option{{Value: "", Label: "All exceptions"},
		{Value: viewReviewDue, Label: "Review due now", Selected: v.View == viewReviewDue},
		{Value: viewExpiring, Label: "Expiring within 30 days", Selected: v.View == viewExpiring}}
	c, err := ui.siteClock(ctx)
	if err != nil {
		return err
	}
	now := c.now
	var list []risk.Exception
	switch v.View {
	case "":
		v.Heading = "Exceptions"
		if v.State != "" && !slices.Contains(exceptionStates, v.State) {
			err = errs.E(errs.Invalid, "state must be one of %s", strings.Join(exceptionStates, ", "))
			break
		}
		list, err = ui.cfg.Exceptions.Exceptions(ctx, risk.ExceptionFilter{State: v.State})
	case viewReviewDue:
		v.Heading, v.State = "Exceptions due for review", ""
		list, err = ui.cfg.Exceptions.ReviewsDue(ctx, now)
	case viewExpiring:
		v.Heading, v.State = "Exceptions expiring within 30 days", ""
		by := now.Add(risk.ExpiringWindow)
		list, err = ui.cfg.Exceptions.Exceptions(ctx, risk.ExceptionFilter{State: risk.ExceptionApproved, ExpiringBy: &by})
	default:
		err = errs.E(errs.Invalid, "view must be %s or %s", viewReviewDue, viewExpiring)
	}
	if errs.KindOf(err) == errs.Invalid {
		v.Error = errs.Public(err)
		ui.render(w, r, http.StatusBadRequest, "exceptions", "Exceptions", v)
		return nil
	} else if err != nil {
		return err
	}
	tg := ui.targets()
	for _, e := range list {
		row := exceptionRow{Exception: e, Requested: c.at(e.RequestedAt), Expires: c.at(e.ExpiresAt), NextReview: c.at(e.NextReviewAt)}
		if e.State == risk.ExceptionApproved && !now.Before(e.NextReviewAt) {
			row.ReviewState = "due"
			if now.Sub(e.NextReviewAt) >= risk.ReviewGrace {
				row.ReviewState = "overdue"
			}
		}
		if row.Target, err = tg.ref(ctx, e.Scope, e.Target); err != nil {
			return err
		}
		v.Rows = append(v.Rows, row)
	}
	if v.Aging, err = ui.cfg.Exceptions.ExceptionAging(ctx); err != nil {
		return err
	}
	for _, l := range []struct {
		in  []risk.AgingItem
		out *[]agingRow
	}{{v.Aging.DueForReview, &v.DueRows}, {v.Aging.OverdueReviews, &v.OverdueRows}, {v.Aging.Expiring, &v.ExpiringRows}} {
		for _, it := range l.in {
			ref, err := tg.ref(ctx, it.Scope, it.Target)
			if err != nil {
				return err
			}
			*l.out = append(*l.out, agingRow{AgingItem: it, Target: ref,
				NextReview: c.at(it.NextReviewAt), Expires: c.at(it.ExpiresAt)})
		}
	}
	ui.render(w, r, http.StatusOK, "exceptions", v.Heading, v)
	return nil
}

// exceptionFormView is the request form.
type exceptionFormView struct {
	Fields   []formField
	Controls []controlRow
	// Target names the prefilled target, so the requester sees what the
	// IDs in the form mean.
	Target      *targetRef
	Message     string
	ErrorCount  int
	TimeZone    string
	MaxDuration string
	Requires    string
}

// controlRow is one compensating control row of the form.
type controlRow struct {
	N           int // 1-based, for labels
	Kinds       []option
	Description string
	KindError   string
	DescError   string
}

// exceptionForm lays out the request form with vals (the text as typed,
// so a rejected form comes back exactly as submitted) and the per-field
// errors, under the exception rules of the policy in force: its decisions,
// the controls it requires and the longest expiry it allows.
func (ui *UI) exceptionForm(ctx context.Context, vals url.Values, fieldErrs map[string]string) (exceptionFormView, error) {
	ex, err := ui.expiryRule(ctx)
	if err != nil {
		return exceptionFormView{}, err
	}
	rules := ex.pol.Policy().Exceptions
	decisions := rules.Decisions
	if len(decisions) == 0 {
		decisions = policy.Decisions
	}
	v := exceptionFormView{TimeZone: ex.c.loc.String(), MaxDuration: ex.max}
	if len(rules.RequireControls) > 0 {
		v.Requires = strings.Join(rules.RequireControls, ", ")
	}
	used := map[string]bool{}
	field := func(name, lbl, kind, hint string) formField {
		used[name] = true
		return formField{Name: name, Label: lbl, Kind: kind, Value: vals.Get(name), Hint: hint, Error: fieldErrs[name], Required: true}
	}
	scope := field("scope", "Covers", "select", "")
	scope.Options = []option{
		{Value: risk.ScopeFinding, Label: "One finding", Selected: vals.Get("scope") == risk.ScopeFinding},
		{Value: risk.ScopeAsset, Label: "Every finding on an asset", Selected: vals.Get("scope") == risk.ScopeAsset},
		{Value: risk.ScopeGroup, Label: "Every finding on a group of assets", Selected: vals.Get("scope") == risk.ScopeGroup},
	}
	target := field("target", "Finding, asset or group ID", "text", "Filled in when you start from a finding or an asset page.")
	vuln := field("vuln_id", "Only this vulnerability", "text", "Optional for an asset or group: limit the exception to one CVE or advisory ID.")
	vuln.Required = false
	decision := field("decision", "Decision", "select", "Accept the risk, mitigate it with controls, transfer it (e.g. to the vendor) or avoid it (e.g. take the function out of use).")
	decision.Options = []option{{Value: "", Label: "Choose…"}}
	for _, d := range decisions {
		decision.Options = append(decision.Options, option{Value: d, Label: label(d), Selected: d == vals.Get("decision")})
	}
	reason := field("reason", "Reason", "textarea", "Why the finding cannot be remediated in time: a vendor restriction, a validated device, …")
	owner := field("owner", "Risk owner", "text", "Who is accountable for the risk and the controls.")
	hint := "The exception ends at 00:00 on this date (" + v.TimeZone + "): a date after today"
	if ex.latest != "" {
		hint += ", no later than " + ex.latest + " (the policy allows at most " + ex.max + ")"
	}
	expires := field("expires_at", "Expires", "date", hint+".")
	v.Fields = []formField{scope, target, vuln, decision, reason, owner, expires}

	kinds, descs := vals["control_kind"], vals["control_description"]
	n := max(controlRows, len(kinds), len(descs))
	for i := range n {
		kind, desc := at(kinds, i), at(descs, i)
		row := controlRow{N: i + 1, Description: desc, Kinds: []option{{Value: "", Label: "No control"}}}
		for _, k := range policy.ControlKinds {
			row.Kinds = append(row.Kinds, option{Value: k, Label: label(k), Selected: k == kind})
		}
		row.KindError, row.DescError = fieldErrs[fmt.Sprintf("control_kind.%d", i)], fieldErrs[fmt.Sprintf("control_description.%d", i)]
		used[fmt.Sprintf("control_kind.%d", i)], used[fmt.Sprintf("control_description.%d", i)] = true, true
		v.Controls = append(v.Controls, row)
	}
	used["controls"] = true
	var other []string
	for k, msg := range fieldErrs {
		if !used[k] {
			other = append(other, label(k)+": "+msg)
		}
	}
	slices.Sort(other)
	if c := fieldErrs["controls"]; c != "" {
		other = append([]string{"Compensating controls: " + c}, other...)
	}
	v.Message = strings.Join(other, " ")
	v.ErrorCount = len(fieldErrs)
	if s, id := vals.Get("scope"), strings.TrimSpace(vals.Get("target")); s != "" && id != "" {
		ref, err := ui.targets().ref(ctx, s, id)
		if err != nil {
			return v, err
		}
		if ref.Name != id || ref.URL != "" {
			v.Target = &ref
		}
	}
	return v, nil
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// policyNow is the policy in force's settings, or the built-in default's
// when the UI has no policy service.
func (ui *UI) policyNow(ctx context.Context) (policy.Policy, int, error) {
	c, n, err := ui.currentPolicy(ctx)
	if err != nil {
		return policy.Policy{}, 0, err
	}
	return c.Policy(), n, nil
}

// currentPolicy is the policy in force and its version, or the built-in
// default when the UI has no policy service.
func (ui *UI) currentPolicy(ctx context.Context) (*policy.Compiled, int, error) {
	if ui.cfg.Policy == nil {
		return policy.Default(), 0, nil
	}
	c, v, err := ui.cfg.Policy.Current(ctx)
	if err != nil {
		return nil, 0, err
	}
	return c, v.Version, nil
}

// expiryRule is what the request form's expiry date must be: a date in
// the site's time zone (the exception ends at 00:00 that day), after
// today, and no later than the policy's max_duration allows, by the risk
// package's own limit (risk.ExpiryLimit) so the form and the service
// cannot disagree.
type expiryRule struct {
	pol *policy.Compiled
	c   clock
	// limit is the latest instant allowed, zero when the policy sets no
	// maximum; latest is the last date before it and max the maximum as
	// people say it ("1 year").
	limit       time.Time
	latest, max string
	// example is a date that would do: a month from today, or the latest.
	example string
}

func (ui *UI) expiryRule(ctx context.Context) (expiryRule, error) {
	pol, _, err := ui.currentPolicy(ctx)
	if err != nil {
		return expiryRule{}, err
	}
	c, err := ui.siteClock(ctx)
	if err != nil {
		return expiryRule{}, err
	}
	r := expiryRule{pol: pol, c: c}
	y, m, d := c.now.In(c.loc).Date()
	example := time.Date(y, m+1, d, 0, 0, 0, 0, c.loc)
	if limit, ok := risk.ExpiryLimit(pol, c.now); ok {
		y, m, d := limit.In(c.loc).Date()
		latest := time.Date(y, m, d, 0, 0, 0, 0, c.loc) // 00:00 that day is within the limit; the next is not
		if latest.Before(example) {
			example = latest
		}
		r.limit, r.latest, r.max = limit, latest.Format(dateLayout), pol.Policy().Exceptions.MaxDuration.Human()
	}
	r.example = example.Format(dateLayout)
	return r, nil
}

// parse reads the date as typed. A problem comes back as a message that
// names the field and says what would do, and a zero time.
func (r expiryRule) parse(s string) (time.Time, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, "Expires: enter a date after today, e.g. " + r.example
	}
	t, err := time.ParseInLocation(dateLayout, s, r.c.loc)
	if err != nil {
		return time.Time{}, fmt.Sprintf("Expires: %q is not a date; enter one as YYYY-MM-DD, e.g. %s", s, r.example)
	}
	if !t.After(r.c.now) {
		return time.Time{}, "Expires: enter a date after today, e.g. " + r.example
	}
	if !r.limit.IsZero() && t.After(r.limit) {
		return time.Time{}, fmt.Sprintf("Expires must be within the policy's maximum of %s: latest %s", r.max, r.latest)
	}
	return t, ""
}

func (ui *UI) newException(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ctx := r.Context()
	q := r.URL.Query()
	vals := url.Values{}
	for _, k := range []string{"scope", "target", "vuln"} {
		if s := strings.TrimSpace(q.Get(k)); s != "" {
			vals.Set(k, s)
		}
	}
	if vals.Get("vuln") != "" {
		vals.Set("vuln_id", vals.Get("vuln"))
		vals.Del("vuln")
	}
	if vals.Get("scope") == "" {
		vals.Set("scope", risk.ScopeFinding)
	}
	// The asset's business owner is usually who owns the risk: offer them.
	if id := vals.Get("target"); id != "" {
		assetID := ""
		switch vals.Get("scope") {
		case risk.ScopeAsset:
			assetID = id
		case risk.ScopeFinding:
			if ui.cfg.Findings != nil {
				if f, err := ui.cfg.Findings.Finding(ctx, id); err == nil {
					assetID = f.AssetID
				}
			}
		}
		if assetID != "" {
			if a, err := ui.cfg.Inventory.Asset(ctx, assetID); err == nil {
				vals.Set("owner", a.BusinessOwner)
			}
		}
	}
	v, err := ui.exceptionForm(ctx, vals, nil)
	if err != nil {
		return err
	}
	ui.render(w, r, http.StatusOK, "exception_form", "Request an exception", v)
	return nil
}

// controlField matches the risk package's field names for controls.
var controlField = regexp.MustCompile(`^controls\[(\d+)\]\.(kind|description)$`)

func (ui *UI) createException(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	vals := r.PostForm
	e := risk.Exception{Scope: vals.Get("scope"), Target: vals.Get("target"), VulnID: vals.Get("vuln_id"),
		Decision: vals.Get("decision"), Reason: vals.Get("reason"), Owner: vals.Get("owner")}
	bad := map[string]string{}
	// rowOf maps the i-th control sent to the service back to its form row:
	// blank rows are not sent.
	var rowOf []int
	kinds, descs := vals["control_kind"], vals["control_description"]
	for i := range max(len(kinds), len(descs)) {
		kind, desc := strings.TrimSpace(at(kinds, i)), strings.TrimSpace(at(descs, i))
		if kind == "" && desc == "" {
			continue
		}
		e.Controls = append(e.Controls, risk.Control{Kind: kind, Description: desc})
		rowOf = append(rowOf, i)
	}
	ex, err := ui.expiryRule(ctx)
	if err != nil {
		return err
	}
	// A date the form refuses goes to the service as none, which the
	// domain always refuses too: nothing is stored, and every other
	// problem comes back with it.
	var expiryErr string
	e.ExpiresAt, expiryErr = ex.parse(vals.Get("expires_at"))
	out, err := ui.cfg.Exceptions.RequestException(ctx, risk.Requester{Actor: p.Actor(authn.ClientAddr(r)), Role: string(p.Role)}, e)
	if err == nil && expiryErr == "" {
		http.Redirect(w, r, "/exceptions/"+url.PathEscape(out.ID)+"?done=request", http.StatusSeeOther)
		return nil
	}
	switch errs.KindOf(err) {
	case errs.Invalid:
		for k, msg := range errs.FieldsOf(err) {
			if m := controlField.FindStringSubmatch(k); m != nil {
				if i, _ := strconv.Atoi(m[1]); i < len(rowOf) {
					k = fmt.Sprintf("control_%s.%d", m[2], rowOf[i])
				}
			}
			bad[k] = msg
		}
		if len(bad) == 0 {
			bad["form"] = errs.Public(err)
		}
	case errs.NotFound:
		// The target check: the ID names nothing of that scope.
		bad["target"] = errs.Public(err)
	case errs.Forbidden, errs.Conflict:
		bad["form"] = errs.Public(err)
	default:
		if err != nil {
			return err
		}
	}
	if expiryErr != "" {
		bad["expires_at"] = expiryErr
	}
	v, err := ui.exceptionForm(ctx, vals, bad)
	if err != nil {
		return err
	}
	status := http.StatusBadRequest
	if _, ok := bad["form"]; ok && len(bad) == 1 {
		v.Message, v.ErrorCount = bad["form"], 0
	}
	ui.render(w, r, status, "exception_form", "Request an exception", v)
	return nil
}

// exceptionView is the exception page.
type exceptionView struct {
	E          risk.Exception
	Target     targetRef
	Controls   []controlView
	Reviews    []reviewView
	Requested  when
	Decided    when
	Expires    when
	NextReview when
	LastReview when
	Ended      when
	// Done names what the user just did, for the confirmation.
	Done string
	// Message is why the last action failed; Status its HTTP status.
	Message string
	// CanDecide and CanWithdraw say which decision forms the page offers;
	// CanApprove narrows CanDecide for a request to those who may approve
	// it (an approver role of the policy, and not its requester).
	CanDecide   bool
	CanApprove  bool
	CanWithdraw bool
	// OwnRequest: the user requested it, so separation of duties keeps
	// them from deciding it.
	OwnRequest bool
	// Approvers are the roles the policy lets approve, when the user's
	// role is not among them.
	Approvers string
	// Failed is the form that failed, with what the user typed.
	Failed     string
	FailedNote string
	NoteError  string
	Audit      string
}

type controlView struct {
	risk.Control
	Verified when
}

type reviewView struct {
	risk.Review
	At when
}

func (ui *UI) showException(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	v, err := ui.exceptionPage(r, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	v.Done = r.URL.Query().Get("done")
	ui.render(w, r, http.StatusOK, "exception", "Exception "+v.E.ID, v)
	return nil
}

func (ui *UI) exceptionPage(r *http.Request, p auth.Principal, id string) (exceptionView, error) {
	ctx := r.Context()
	e, reviews, err := ui.cfg.Exceptions.Exception(ctx, id)
	if err != nil {
		return exceptionView{}, err
	}
	pol, _, err := ui.policyNow(ctx)
	if err != nil {
		return exceptionView{}, err
	}
	c, err := ui.siteClock(ctx)
	if err != nil {
		return exceptionView{}, err
	}
	at, atp := c.at, c.atp
	v := exceptionView{E: e, Requested: at(e.RequestedAt), Decided: atp(e.DecidedAt), Expires: at(e.ExpiresAt),
		NextReview: at(e.NextReviewAt), LastReview: atp(e.LastReviewedAt), Ended: atp(e.EndedAt),
		CanDecide:  p.Can(auth.PermExceptionDecide) && (e.State == risk.ExceptionRequested || e.State == risk.ExceptionApproved),
		OwnRequest: strings.EqualFold(p.Username, e.RequestedBy)}
	v.CanWithdraw = v.OwnRequest && e.State == risk.ExceptionRequested && p.Can(auth.PermExceptionRequest)
	v.CanApprove = v.CanDecide && !v.OwnRequest && slices.Contains(pol.Exceptions.ApproverRoles, string(p.Role))
	if v.CanDecide && !slices.Contains(pol.Exceptions.ApproverRoles, string(p.Role)) {
		v.Approvers = strings.Join(pol.Exceptions.ApproverRoles, ", ")
		if v.Approvers == "" {
			v.Approvers = "no role"
		}
	}
	if p.Can(auth.PermAuditRead) && ui.cfg.Audit != nil {
		v.Audit = "/audit?" + url.Values{"object_type": {"exception"}, "object_id": {e.ID}}.Encode()
	}
	if v.Target, err = ui.targets().ref(ctx, e.Scope, e.Target); err != nil {
		return exceptionView{}, err
	}
	for _, c := range e.Controls {
		v.Controls = append(v.Controls, controlView{Control: c, Verified: atp(c.VerifiedAt)})
	}
	for _, rv := range slices.Backward(reviews) {
		v.Reviews = append(v.Reviews, reviewView{Review: rv, At: at(rv.At)})
	}
	return v, nil
}

// decideException applies an approver's decision: approve, reject, review
// or revoke. The form carries the revision the decider saw, so a decision
// on a page that went stale meanwhile is refused with a conflict instead
// of applied to something else.
func (ui *UI) decideException(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return ui.decide(w, r, p, false)
}

// withdrawException lets a requester withdraw their own request (a revoke
// of a requested exception), which separation of duties keeps them from
// rejecting.
func (ui *UI) withdrawException(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return ui.decide(w, r, p, true)
}

func (ui *UI) decide(w http.ResponseWriter, r *http.Request, p auth.Principal, withdraw bool) error {
	ctx := r.Context()
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	action := r.PostForm.Get("action")
	if withdraw {
		action = "withdraw"
	}
	d := risk.Decision{Action: action, Outcome: r.PostForm.Get("outcome"), Note: r.PostForm.Get("note")}
	rev, err := strconv.Atoi(r.PostForm.Get("revision"))
	if err != nil || rev < 1 {
		err = errs.E(errs.Invalid, "the form is missing the exception's revision; reload the page and decide again")
	}
	d.Revision = rev
	if err == nil && withdraw {
		d.Action = "revoke"
		e, _, gerr := ui.cfg.Exceptions.Exception(ctx, id)
		switch {
		case gerr != nil:
			err = gerr
		case !strings.EqualFold(e.RequestedBy, p.Username):
			err = errs.E(errs.Forbidden, "only %s, who requested exception %s, can withdraw it", e.RequestedBy, id)
		case e.State != risk.ExceptionRequested:
			err = errs.E(errs.Conflict, "exception %s is %s: only a request can be withdrawn", id, e.State)
		}
	}
	if err == nil {
		_, err = ui.cfg.Exceptions.DecideException(ctx, risk.Requester{Actor: p.Actor(authn.ClientAddr(r)), Role: string(p.Role)}, id, d)
		if err == nil {
			http.Redirect(w, r, "/exceptions/"+url.PathEscape(id)+"?done="+url.QueryEscape(action), http.StatusSeeOther)
			return nil
		}
	}
	kind := errs.KindOf(err)
	if kind != errs.Invalid && kind != errs.Forbidden && kind != errs.Conflict {
		return err // not found, or a server fault: the error page
	}
	// Show the exception as it is now, with why the action failed and the
	// note the user typed back in its form.
	v, verr := ui.exceptionPage(r, p, id)
	if verr != nil {
		return verr
	}
	v.Message, v.Failed, v.FailedNote = errs.Public(err), action, d.Note
	for _, k := range []string{"decision_note", "end_note", "note", "outcome"} {
		if msg := errs.FieldsOf(err)[k]; msg != "" {
			v.NoteError = msg
			break
		}
	}
	if kind == errs.Conflict {
		v.Message += " The page now shows the exception as it is."
	}
	ui.render(w, r, errs.HTTPStatus(err), "exception", "Exception "+v.E.ID, v)
	return nil
}

// decisionFormView is one decision form on the exception page.
type decisionFormView struct {
	ID, Action, Button, NoteLabel string
	Required                      bool
	Revision                      int
	// Note and Error come back when this form's submission failed.
	Note, Error string
}

// decisionForm lays out one decision form from the page, carrying back
// what the user typed when it was this form that failed.
func decisionForm(v exceptionView, action, button, noteLabel string, required bool) decisionFormView {
	f := decisionFormView{ID: v.E.ID, Action: action, Button: button, NoteLabel: noteLabel, Required: required, Revision: v.E.Revision}
	if v.Failed == action {
		f.Note, f.Error = v.FailedNote, v.NoteError
	}
	return f
}
