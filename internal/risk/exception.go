package risk

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// Review outcomes.
const (
	// ReviewContinue confirms the controls are in place and schedules the
	// next review.
	ReviewContinue = "continue"
	// ReviewRevoke ends the exception at the review.
	ReviewRevoke = "revoke"
)

// ReviewGrace is how long after its NextReviewAt a review counts as due
// rather than overdue in the aging report: a week lets the owner arrange
// the check of the controls before the dashboard calls it late.
const ReviewGrace = 7 * 24 * time.Hour

// ExpiringWindow is how far ahead the aging report lists exceptions about
// to expire, so their owners can fix, renew or plan for the end in time.
const ExpiringWindow = 30 * 24 * time.Hour

// NewException validates a requested risk acceptance against the policy's
// exception rules and returns it in state requested, with a new random ID
// ("exc_" and 16 hex digits from crypto/rand, so IDs reveal nothing and
// never collide across replicas), RequestedBy and RequestedAt set, Revision
// 1, and its first review due at the earlier of its expiry and review_every
// from now. Whatever e says about state, decisions, reviews, control
// verification or its end is ignored: only the transitions below set those.
//
// Every problem is reported at once, per field, as an errs.Invalid error:
// the scope (finding, asset or group) and its target; the decision, one the
// policy allows; the reason; each compensating control (a known kind with a
// description) and at least one for the decisions the policy says need
// them; the owner accountable for the risk; and an expiry in the future and
// no later than the policy's max_duration — an exception never lasts
// forever.
func NewException(e Exception, requester string, p *policy.Compiled, now time.Time) (Exception, error) {
	rules := exceptionRules(p)
	var v errs.Validation
	e.Scope = strings.ToLower(strings.TrimSpace(e.Scope))
	e.Target = strings.TrimSpace(e.Target)
	e.VulnID = strings.TrimSpace(e.VulnID)
	e.Decision = strings.ToLower(strings.TrimSpace(e.Decision))
	e.Reason = strings.TrimSpace(e.Reason)
	e.Owner = strings.TrimSpace(e.Owner)
	requester = strings.TrimSpace(requester)

	switch e.Scope {
	case ScopeFinding, ScopeAsset, ScopeGroup:
	case "":
		v.Add("scope", "required: finding, asset or group")
	default:
		v.Add("scope", "%q is not finding, asset or group", e.Scope)
	}
	if e.Target == "" {
		v.Add("target", "required: the %s the exception covers", cmp.Or(e.Scope, "finding, asset or group"))
	}
	decisions := rules.Decisions
	if len(decisions) == 0 {
		decisions = policy.Decisions
	}
	switch {
	case e.Decision == "":
		v.Add("decision", "required: one of %s", strings.Join(decisions, ", "))
	case !slices.Contains(decisions, e.Decision):
		v.Add("decision", "%q is not allowed by the policy: use one of %s", e.Decision, strings.Join(decisions, ", "))
	}
	if e.Reason == "" {
		v.Add("reason", "required: why the finding cannot be remediated in time")
	}
	controls := make([]Control, len(e.Controls))
	for i, c := range e.Controls {
		c.Kind = strings.ToLower(strings.TrimSpace(c.Kind))
		c.Description = strings.TrimSpace(c.Description)
		c.VerifiedAt, c.VerifiedBy = nil, "" // confirmed at reviews, not claimed in a request
		switch {
		case c.Kind == "":
			v.Add(fmt.Sprintf("controls[%d].kind", i), "required: one of %s", strings.Join(policy.ControlKinds, ", "))
		case !slices.Contains(policy.ControlKinds, c.Kind):
			v.Add(fmt.Sprintf("controls[%d].kind", i), "%q is not one of %s", c.Kind, strings.Join(policy.ControlKinds, ", "))
		}
		if c.Description == "" {
			v.Add(fmt.Sprintf("controls[%d].description", i), "required: what the control is and where it is in force")
		}
		controls[i] = c
	}
	e.Controls = controls
	if len(controls) == 0 && slices.Contains(rules.RequireControls, e.Decision) {
		v.Add("controls", "the policy requires at least one compensating control for %s decisions", e.Decision)
	}
	if e.Owner == "" {
		v.Add("owner", "required: who is accountable for the risk and the controls")
	}
	if requester == "" {
		v.Add("requested_by", "required")
	}
	switch {
	case e.ExpiresAt.IsZero():
		v.Add("expires_at", "required: every exception ends")
	case !e.ExpiresAt.After(now):
		v.Add("expires_at", "must be in the future")
	default:
		if limit, ok := ExpiryLimit(p, now); ok && e.ExpiresAt.After(limit) {
			v.Add("expires_at", "must be no later than %s: the policy allows exceptions of at most %s",
				limit.Format(time.RFC3339), rules.MaxDuration)
		}
	}
	if err := v.Err("invalid exception"); err != nil {
		return Exception{}, err
	}

	e.ID = newExceptionID()
	e.State = ExceptionRequested
	e.RequestedBy, e.RequestedAt = requester, now
	e.DecidedBy, e.DecidedAt, e.DecisionNote = "", nil, ""
	e.NextReviewAt = nextReview(e.ExpiresAt, rules, now)
	e.LastReviewedAt, e.EndedAt, e.EndedBy, e.EndNote = nil, nil, "", ""
	e.Revision, e.UpdatedAt = 1, now
	return e, nil
}

// Approve accepts a requested exception. Only the policy's approver roles
// may (errs.Forbidden), never the requester (separation of duties, also
// errs.Forbidden), only a requested exception (errs.Conflict), and not one
// whose expiry has already passed (errs.Conflict: request a new one). The
// first review is rescheduled from the approval, when the acceptance starts.
func Approve(e Exception, approver, approverRole, note string, p *policy.Compiled, now time.Time) (Exception, error) {
	if err := decide(e, "approve", approver, approverRole, p); err != nil {
		return Exception{}, err
	}
	if !now.Before(e.ExpiresAt) {
		return Exception{}, errs.E(errs.Conflict, "exception %s expired at %s before it was approved; request a new one",
			e.ID, e.ExpiresAt.UTC().Format(time.RFC3339))
	}
	e.State = ExceptionApproved
	e.DecidedBy, e.DecidedAt, e.DecisionNote = strings.TrimSpace(approver), &now, strings.TrimSpace(note)
	e.NextReviewAt = nextReview(e.ExpiresAt, exceptionRules(p), now)
	return bump(e, now), nil
}

// Reject turns a requested exception down. The same people may reject as
// may approve, the requester excepted (a requester withdraws their own
// request with Revoke), and a rejection must say why.
func Reject(e Exception, approver, approverRole, note string, p *policy.Compiled, now time.Time) (Exception, error) {
	if err := decide(e, "reject", approver, approverRole, p); err != nil {
		return Exception{}, err
	}
	note = strings.TrimSpace(note)
	if note == "" {
		var v errs.Validation
		v.Add("decision_note", "required: say why the exception is rejected")
		return Exception{}, v.Err("invalid rejection")
	}
	e.State = ExceptionRejected
	e.DecidedBy, e.DecidedAt, e.DecisionNote = strings.TrimSpace(approver), &now, note
	return bump(e, now), nil
}

// decide checks a decision on a requested exception: its state, the
// decider's role and separation of duties.
func decide(e Exception, verb, approver, role string, p *policy.Compiled) error {
	if e.State != ExceptionRequested {
		return errs.E(errs.Conflict, "exception %s is %s: only a requested exception can be %s", e.ID, e.State, past(verb))
	}
	approver = strings.TrimSpace(approver)
	if approver == "" {
		var v errs.Validation
		v.Add("decided_by", "required")
		return v.Err("invalid decision")
	}
	roles := exceptionRules(p).ApproverRoles
	if !slices.Contains(roles, role) {
		if len(roles) == 0 {
			return errs.E(errs.Forbidden, "the policy names no role that may %s exceptions", verb)
		}
		return errs.E(errs.Forbidden, "role %q may not %s exceptions; the policy allows %s", role, verb, strings.Join(roles, ", "))
	}
	if strings.EqualFold(approver, e.RequestedBy) {
		msg := "separation of duties: %s requested exception %s and cannot %s it"
		if verb == "reject" {
			msg += "; withdraw it by revoking it instead"
		}
		return errs.E(errs.Forbidden, msg, approver, e.ID, verb)
	}
	return nil
}

func past(verb string) string {
	if verb == "reject" {
		return "rejected"
	}
	return verb + "d"
}

// Revoke ends a requested or approved exception early — its controls
// failed, the device was replaced, or the requester withdraws it — and
// says who and why. The findings it covered are open again from now.
func Revoke(e Exception, by, note string, now time.Time) (Exception, error) {
	if e.State != ExceptionRequested && e.State != ExceptionApproved {
		return Exception{}, errs.E(errs.Conflict, "exception %s is %s: only a requested or approved exception can be revoked", e.ID, e.State)
	}
	by, note = strings.TrimSpace(by), strings.TrimSpace(note)
	var v errs.Validation
	if by == "" {
		v.Add("ended_by", "required")
	}
	if note == "" {
		v.Add("end_note", "required: say why the exception is revoked")
	}
	if err := v.Err("invalid revocation"); err != nil {
		return Exception{}, err
	}
	return revoke(e, by, note, now), nil
}

func revoke(e Exception, by, note string, now time.Time) Exception {
	e.State = ExceptionRevoked
	e.EndedAt, e.EndedBy, e.EndNote = &now, by, note
	return bump(e, now)
}

// ReviewException records the periodic review of an approved exception that has not
// expired. "continue" confirms its controls (each is marked verified by the
// reviewer now) and schedules the next review at the earlier of its expiry
// and review_every from now; "revoke" ends it, and must say why.
func ReviewException(e Exception, by, outcome, note string, p *policy.Compiled, now time.Time) (Exception, Review, error) {
	if e.State != ExceptionApproved {
		return Exception{}, Review{}, errs.E(errs.Conflict, "exception %s is %s: only an approved exception can be reviewed", e.ID, e.State)
	}
	if !now.Before(e.ExpiresAt) {
		return Exception{}, Review{}, errs.E(errs.Conflict, "exception %s expired at %s: it can no longer be reviewed",
			e.ID, e.ExpiresAt.UTC().Format(time.RFC3339))
	}
	by, outcome, note = strings.TrimSpace(by), strings.ToLower(strings.TrimSpace(outcome)), strings.TrimSpace(note)
	var v errs.Validation
	if by == "" {
		v.Add("by", "required")
	}
	switch outcome {
	case ReviewContinue:
	case ReviewRevoke:
		if note == "" {
			v.Add("note", "required: say why the exception is revoked")
		}
	default:
		v.Add("outcome", "%q is not continue or revoke", outcome)
	}
	if err := v.Err("invalid review"); err != nil {
		return Exception{}, Review{}, err
	}
	e.LastReviewedAt = &now
	if outcome == ReviewRevoke {
		e = revoke(e, by, note, now)
	} else {
		controls := slices.Clone(e.Controls)
		for i := range controls {
			controls[i].VerifiedAt, controls[i].VerifiedBy = &now, by
		}
		e.Controls = controls
		e.NextReviewAt = nextReview(e.ExpiresAt, exceptionRules(p), now)
		e = bump(e, now)
	}
	return e, Review{ExceptionID: e.ID, At: now, By: by, Outcome: outcome, Note: note}, nil
}

// Expire ends an approved exception whose expiry has come, reporting
// whether it did: EndedAt is the expiry itself, not when the sweep ran, so
// a finding's clock restarts when the acceptance actually ran out.
func Expire(e Exception, now time.Time) (Exception, bool) {
	if e.State != ExceptionApproved || now.Before(e.ExpiresAt) {
		return e, false
	}
	end := e.ExpiresAt
	e.State, e.EndedAt = ExceptionExpired, &end
	return bump(e, now), true
}

// Active reports whether the exception stops clocks at now: approved and
// not yet at its expiry, even before Expire has run.
func (e Exception) Active(now time.Time) bool {
	return e.State == ExceptionApproved && now.Before(e.ExpiresAt)
}

// Covers reports whether the exception's scope includes the subject,
// whatever its state: a finding exception its finding, an asset exception
// the asset's findings, a group exception those of the group's assets.
// VulnID, when set, narrows it to one vulnerability, matched against the
// finding's canonical ID and its advisory IDs without regard to case (a
// clinic may have accepted "DSA-5678-1" for a finding filed under its CVE).
func (e Exception) Covers(s Subject) bool {
	switch e.Scope {
	case ScopeFinding:
		if e.Target != s.Finding.ID {
			return false
		}
	case ScopeAsset:
		if e.Target != s.Finding.AssetID && e.Target != s.Asset.ID {
			return false
		}
	case ScopeGroup:
		if !slices.Contains(s.Asset.Groups, e.Target) {
			return false
		}
	default:
		return false
	}
	if e.VulnID == "" {
		return true
	}
	if strings.EqualFold(e.VulnID, s.Finding.VulnID) {
		return true
	}
	return slices.ContainsFunc(s.Finding.AdvisoryIDs, func(id string) bool { return strings.EqualFold(e.VulnID, id) })
}

// Covering picks the exception that stops the subject's clock at now from
// candidates, or nil: among the active ones that cover it, the most
// specific scope (finding, then asset, then group), then the latest expiry,
// then the smallest ID — so the choice never depends on storage order.
func Covering(es []Exception, s Subject, now time.Time) *Exception {
	var best *Exception
	for i := range es {
		e := &es[i]
		if !e.Active(now) || !e.Covers(s) {
			continue
		}
		if best == nil || cmp.Or(
			cmp.Compare(scopeRank(e.Scope), scopeRank(best.Scope)),
			best.ExpiresAt.Compare(e.ExpiresAt),
			strings.Compare(e.ID, best.ID)) < 0 {
			best = e
		}
	}
	if best == nil {
		return nil
	}
	c := *best
	return &c
}

func scopeRank(scope string) int {
	switch scope {
	case ScopeFinding:
		return 0
	case ScopeAsset:
		return 1
	}
	return 2
}

// endedAt is when the exception stopped covering findings, as seen at now:
// its EndedAt, its expiry when that has passed but Expire has not run yet,
// else now; never later than now.
func (e Exception) endedAt(now time.Time) time.Time {
	t := now
	switch {
	case e.EndedAt != nil:
		t = *e.EndedAt
	case e.State == ExceptionApproved && !now.Before(e.ExpiresAt):
		t = e.ExpiresAt
	}
	if t.After(now) {
		return now
	}
	return t
}

// AgingReport is the exception aging figure the seeds ask compliance to
// track: how many exceptions are in each state, how long the approved ones
// have stood, and which need attention (reviews due or overdue, expiries
// coming). An approved exception past its expiry counts as expired even
// before Expire has run, so the report never overstates what is in force.
type AgingReport struct {
	At time.Time `json:"at"`
	// States counts every state, in lifecycle order, zeros included.
	States []StateCount `json:"states"`
	// Ages buckets approved exceptions by days since approval.
	Ages []AgeBucket `json:"ages"`
	// DueForReview are reviews due within ReviewGrace of NextReviewAt;
	// OverdueReviews those later than that. Both oldest first.
	DueForReview   []AgingItem `json:"due_for_review"`
	OverdueReviews []AgingItem `json:"overdue_reviews"`
	// Expiring are approved exceptions ending within ExpiringWindow,
	// soonest first.
	Expiring []AgingItem `json:"expiring"`
}

// StateCount is the number of exceptions in one state.
type StateCount struct {
	State string `json:"state"`
	Count int    `json:"count"`
}

// AgeBucket counts approved exceptions whose age in whole days since
// approval is within [MinDays, MaxDays]; MaxDays 0 means no upper bound.
type AgeBucket struct {
	Label   string `json:"label"`
	MinDays int    `json:"min_days"`
	MaxDays int    `json:"max_days,omitempty"`
	Count   int    `json:"count"`
}

// AgingItem is one exception needing attention, with what a list needs.
type AgingItem struct {
	ID           string    `json:"id"`
	Scope        string    `json:"scope"`
	Target       string    `json:"target"`
	VulnID       string    `json:"vuln_id,omitempty"`
	Owner        string    `json:"owner"`
	AgeDays      int       `json:"age_days"`
	NextReviewAt time.Time `json:"next_review_at"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// Aging reports on es at now. The result depends only on its arguments and
// not on the order of es.
func Aging(es []Exception, now time.Time) AgingReport {
	rep := AgingReport{At: now, States: []StateCount{
		{State: ExceptionRequested}, {State: ExceptionApproved}, {State: ExceptionRejected},
		{State: ExceptionRevoked}, {State: ExceptionExpired},
	}, Ages: []AgeBucket{
		{Label: "0–30 days", MinDays: 0, MaxDays: 30},
		{Label: "31–90 days", MinDays: 31, MaxDays: 90},
		{Label: "91–180 days", MinDays: 91, MaxDays: 180},
		{Label: "over 180 days", MinDays: 181},
	}}
	for _, e := range es {
		state := e.State
		if state == ExceptionApproved && !e.Active(now) {
			state = ExceptionExpired
		}
		for i := range rep.States {
			if rep.States[i].State == state {
				rep.States[i].Count++
			}
		}
		if state != ExceptionApproved {
			continue
		}
		approved := e.RequestedAt
		if e.DecidedAt != nil {
			approved = *e.DecidedAt
		}
		age := max(0, int(now.Sub(approved)/(24*time.Hour)))
		for i := range rep.Ages {
			if b := &rep.Ages[i]; age >= b.MinDays && (b.MaxDays == 0 || age <= b.MaxDays) {
				b.Count++
				break
			}
		}
		item := AgingItem{ID: e.ID, Scope: e.Scope, Target: e.Target, VulnID: e.VulnID, Owner: e.Owner,
			AgeDays: age, NextReviewAt: e.NextReviewAt, ExpiresAt: e.ExpiresAt}
		switch {
		case now.Before(e.NextReviewAt):
		case now.Sub(e.NextReviewAt) < ReviewGrace:
			rep.DueForReview = append(rep.DueForReview, item)
		default:
			rep.OverdueReviews = append(rep.OverdueReviews, item)
		}
		if e.ExpiresAt.Sub(now) <= ExpiringWindow {
			rep.Expiring = append(rep.Expiring, item)
		}
	}
	byReview := func(a, b AgingItem) int {
		return cmp.Or(a.NextReviewAt.Compare(b.NextReviewAt), strings.Compare(a.ID, b.ID))
	}
	slices.SortFunc(rep.DueForReview, byReview)
	slices.SortFunc(rep.OverdueReviews, byReview)
	slices.SortFunc(rep.Expiring, func(a, b AgingItem) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), strings.Compare(a.ID, b.ID))
	})
	return rep
}

// exceptionRules are the policy's exception rules; a nil policy has none
// (no approver, no limits), so nothing can be approved by accident.
func exceptionRules(p *policy.Compiled) policy.Exceptions {
	if p == nil {
		return policy.Exceptions{}
	}
	return p.Policy().Exceptions
}

// ExpiryLimit is the latest an exception requested at now may expire under
// p's max_duration; ok is false when the policy sets none. NewException
// enforces it, and forms call it to say which date is the last allowed.
func ExpiryLimit(p *policy.Compiled, now time.Time) (limit time.Time, ok bool) {
	rules := exceptionRules(p)
	if rules.MaxDuration.IsZero() {
		return time.Time{}, false
	}
	return rules.MaxDuration.AddTo(now, time.UTC), true
}

// nextReview is the earlier of the expiry and review_every from now.
func nextReview(expires time.Time, rules policy.Exceptions, now time.Time) time.Time {
	if rules.ReviewEvery.IsZero() {
		return expires
	}
	if next := rules.ReviewEvery.AddTo(now, time.UTC); next.Before(expires) {
		return next
	}
	return expires
}

// bump records a change for optimistic concurrency.
func bump(e Exception, now time.Time) Exception {
	e.Revision++
	e.UpdatedAt = now
	return e
}

// newExceptionID returns "exc_" and 16 random hex digits. crypto/rand
// never fails on supported platforms (Go 1.24+ crashes the program
// instead of returning an error), so there is no error to pass on.
func newExceptionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "exc_" + hex.EncodeToString(b[:])
}
