package change

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// User is who acts on a change: the audit actor, the Patchward role the
// permissions are checked against, and the policy roles the user holds,
// which the policy's approval, sign-off and emergency rules are checked
// against. It is passed explicitly to every mutation, never taken from a
// context.
type User struct {
	Actor audit.Actor
	Role  string
	// PolicyRoles are the policy roles an admin assigned the user.
	PolicyRoles []string
}

// holds reports whether u may act as the policy role: u holds it and it
// still grants u's Patchward role (the policy or the account may have
// changed since it was assigned).
func (u User) holds(pol *policy.Compiled, role string) bool {
	g, ok := policyRoles(pol)[role]
	return ok && g == u.Role && slices.Contains(u.PolicyRoles, role)
}

// notHeld is the refusal for acting as a policy role u does not hold.
func notHeld(what, role string) error {
	return errs.E(errs.Forbidden, "%s as %s needs holding the %s policy role; you do not hold it (an admin assigns policy roles)", what, role, role)
}

func (u User) name() string {
	if u.Actor.Name != "" {
		return u.Actor.Name
	}
	return u.Actor.ID
}

// Patchward roles allowed to do each kind of work. Approving is not here:
// it follows the policy's roles and their grants.
var (
	// writers create, edit, submit, cancel and record tests and evidence.
	writers = []string{"admin", "operator", "approver"}
	// operators carry a change out: schedule, start, halt, resume, roll
	// back, complete.
	operators = []string{"admin", "operator"}
)

func (u User) may(roles []string, what string) error {
	if u.Actor.Kind == "" || u.Actor.ID == "" {
		return errs.E(errs.Unauthorized, "an identified user is required to %s", what)
	}
	if !slices.Contains(roles, u.Role) {
		return errs.E(errs.Forbidden, "the %s role may not %s (allowed: %s)", u.Role, what, strings.Join(roles, ", "))
	}
	return nil
}

// MaxEvidence is the largest evidence attachment accepted (20 MiB): a QC
// printout, a screenshot or an exported log, not a disk image.
const MaxEvidence = 20 << 20

// Service is the change-control use cases for the API, the UI and the CLI.
type Service struct {
	store    Store
	policies Policies
	risk     RiskRecords
	now      func() time.Time
	newID    func() string
	// onMove hear of every state a change moves into, after the commit.
	onMove []func(ctx context.Context, c Change, from State)
}

// NewService returns a Service. risk may be nil (no ratings); now is the
// clock (time.Now if nil) that go/no-go deadlines are judged by.
func NewService(store Store, policies Policies, risk RiskRecords, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, policies: policies, risk: risk, now: now,
		newID: func() string { return uuid.Must(uuid.NewV7()).String() }}
}

// OnMove registers fn to hear of every move of a change to another state
// (whoever made it: a person, the policy, the rollout engine), after it is
// committed: notices to the people who must act next hang here. fn runs
// on the mover's goroutine and should not block. Register before use.
func (s *Service) OnMove(fn func(ctx context.Context, c Change, from State)) {
	s.onMove = append(s.onMove, fn)
}

func (s *Service) moved(ctx context.Context, c Change, from State) {
	for _, fn := range s.onMove {
		fn(ctx, c, from)
	}
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Step is the common input of a transition: why, and the revision the user
// acted on (0 skips the check, for scripts that act on the latest).
type Step struct {
	Why      string
	Revision int
}

func checkRevision(c Change, rev int) error {
	if rev != 0 && rev != c.Revision {
		return errs.E(errs.Conflict, "change %s changed since you loaded it (revision %d, now %d); reload and try again", c.ID, rev, c.Revision)
	}
	return nil
}

// Get returns one change.
func (s *Service) Get(ctx context.Context, id string) (Change, error) { return s.store.Get(ctx, id) }

// List returns changes matching f, newest first.
func (s *Service) List(ctx context.Context, f Filter) ([]Change, error) {
	if f.State != "" && !slices.Contains(States, f.State) {
		return nil, errs.E(errs.Invalid, "unknown state %q", f.State)
	}
	if f.Type != "" && !slices.Contains(Types, f.Type) {
		return nil, errs.E(errs.Invalid, "unknown change type %q", f.Type)
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	if f.Offset < 0 {
		return nil, errs.E(errs.Invalid, "offset must not be negative")
	}
	return s.store.List(ctx, f)
}

// History returns the change's state transitions, oldest first.
func (s *Service) History(ctx context.Context, id string) ([]Transition, error) {
	if _, err := s.store.Get(ctx, id); err != nil {
		return nil, err
	}
	return s.store.Transitions(ctx, id)
}

// TestRuns returns the change's test runs, oldest first.
func (s *Service) TestRuns(ctx context.Context, id string) ([]TestRun, error) {
	return s.store.TestRuns(ctx, id)
}

// EvidenceList returns the evidence attached to a change.
func (s *Service) EvidenceList(ctx context.Context, id string) ([]Evidence, error) {
	return s.store.EvidenceList(ctx, id)
}

// Approvals returns every approval on a change (expired ones included) and
// how far the valid ones meet the policy in force.
func (s *Service) Approvals(ctx context.Context, id string) ([]Approval, ApprovalStatus, error) {
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return nil, ApprovalStatus{}, err
	}
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, ApprovalStatus{}, err
	}
	as, err := s.store.Approvals(ctx, id)
	if err != nil {
		return nil, ApprovalStatus{}, err
	}
	classes, err := s.classes(ctx, s.store, pol, c.Targets)
	if err != nil {
		return nil, ApprovalStatus{}, err
	}
	return as, Evaluate(Requirements(pol, c.Type, classes), as), nil
}

// classes returns the asset classes of every asset the targets reach.
func (s *Service) classes(ctx context.Context, r Reader, pol *policy.Compiled, t Targets) ([]policy.AssetClass, error) {
	if t.Empty() {
		return nil, nil
	}
	facts, err := r.TargetFacts(ctx, t)
	if err != nil {
		return nil, err
	}
	var out []policy.AssetClass
	for _, f := range facts {
		cs, err := pol.ClassesOf(f)
		if err != nil {
			return nil, fmt.Errorf("asset %s: %w", f.ID, err)
		}
		for _, c := range cs {
			if !slices.ContainsFunc(out, func(o policy.AssetClass) bool { return o.Name == c.Name }) {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// rate computes the change's risk rating: the most urgent of its findings'
// risk records (lowest tier rank, then highest score). Findings not yet
// assessed are skipped.
func (s *Service) rate(ctx context.Context, findings []string) (RiskRating, error) {
	r := RiskRating{Rank: -1, ComputedAt: s.clock()}
	if s.risk == nil {
		return r, nil
	}
	for _, id := range findings {
		rec, err := s.risk.GetRecord(ctx, id)
		if errors.Is(err, errs.ErrNotFound) {
			continue
		}
		if err != nil {
			return RiskRating{}, fmt.Errorf("risk of finding %s: %w", id, err)
		}
		r.Findings++
		a := rec.Assessment
		if r.Rank < 0 || a.Rank < r.Rank || (a.Rank == r.Rank && a.Score > r.Score) {
			r.Tier, r.Rank, r.Score, r.FindingID, r.PolicyVersion = a.Tier, a.Rank, a.Score, id, rec.PolicyVersion
		}
	}
	return r, nil
}

// canDeclareEmergency checks the policy's emergency authority: the user
// must hold one of the roles it names.
func canDeclareEmergency(pol *policy.Compiled, u User) error {
	p := pol.Policy()
	for _, r := range p.Emergency.Authority {
		if u.holds(pol, r) {
			return nil
		}
	}
	return errs.E(errs.Forbidden, "only a holder of %s may declare an emergency change (policy emergency.authority); an admin assigns policy roles",
		strings.Join(p.Emergency.Authority, " or "))
}

// Create records a new draft change.
func (s *Service) Create(ctx context.Context, u User, c Change) (Change, error) {
	if err := u.may(writers, "create a change"); err != nil {
		return Change{}, err
	}
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return Change{}, err
	}
	now := s.clock()
	c.normalize()
	if c.Type == Emergency {
		if err := canDeclareEmergency(pol, u); err != nil {
			return Change{}, err
		}
		c.Emergency = declare(pol, c.Emergency, now)
	}
	if err := c.validate(pol); err != nil {
		return Change{}, err
	}
	if _, err := s.store.TargetFacts(ctx, c.Targets); err != nil {
		return Change{}, err
	}
	if c.Risk, err = s.rate(ctx, c.Findings); err != nil {
		return Change{}, err
	}
	c.ID, c.State, c.Revision = s.newID(), Draft, 1
	c.RequestedBy, c.RequestedByID = u.name(), u.Actor.ID
	c.CreatedAt, c.UpdatedAt, c.EditedAt = now, now, now
	c.SignOffs = resetSignOffs(c.SignOffs)
	err = s.store.Transact(ctx, func(tx Tx) error {
		if err := tx.Insert(ctx, c); err != nil {
			return err
		}
		if err := tx.AddTransition(ctx, Transition{ChangeID: c.ID, From: "", To: Draft, Action: "create", By: u.name(), Why: c.Title, At: now, Revision: 1}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: u.Actor, Action: "change.create", ObjectType: "change", ObjectID: c.ID, After: c})
	})
	if err != nil {
		return Change{}, fmt.Errorf("create change: %w", err)
	}
	return c, nil
}

// declare fills the emergency record: the go/no-go time box runs from the
// declaration, and a requester may only shorten it.
func declare(pol *policy.Compiled, e *EmergencyInfo, now time.Time) *EmergencyInfo {
	out := EmergencyInfo{DeclaredAt: now}
	if e != nil {
		out.Justification = strings.TrimSpace(e.Justification)
	}
	limit := pol.Policy().Emergency.GoNoGo.AddTo(now, time.UTC)
	out.GoNoGoBy = limit
	if e != nil && !e.GoNoGoBy.IsZero() && e.GoNoGoBy.After(now) && e.GoNoGoBy.Before(limit) {
		out.GoNoGoBy = e.GoNoGoBy.UTC()
	}
	return &out
}

// resetSignOffs keeps the roles asked for and drops any signature a
// requester tried to supply: sign-offs are given through SignOff.
func resetSignOffs(in []SignOff) []SignOff {
	var out []SignOff
	for _, so := range in {
		role := strings.TrimSpace(so.Role)
		if role != "" && !slices.ContainsFunc(out, func(o SignOff) bool { return o.Role == role }) {
			out = append(out, SignOff{Role: role})
		}
	}
	return out
}

// EditWithdrawsApprovals reports whether editing c withdraws its
// approvals: the policy says so (approvals.expire_on_edit) and c has left
// draft. Update acts on it; the UI asks it to warn before an edit.
func EditWithdrawsApprovals(pol *policy.Compiled, c Change) bool {
	return c.State != Draft && pol.Policy().Approvals.ExpireOnEdit
}

// Update replaces a change's content (not its state, requester or risk
// rating) when c.Revision matches the stored one. Editing a submitted or
// approved change withdraws its approvals when the policy says so
// (approvals.expire_on_edit): they stay on record, marked expired, and an
// approved change returns to submitted.
func (s *Service) Update(ctx context.Context, u User, c Change, why string) (Change, error) {
	if err := u.may(writers, "edit a change"); err != nil {
		return Change{}, err
	}
	if c.Revision == 0 {
		return Change{}, errs.E(errs.Invalid, "an edit must say which revision it was made on")
	}
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return Change{}, err
	}
	c.normalize()
	rating, err := s.rate(ctx, c.Findings)
	if err != nil {
		return Change{}, err
	}
	if _, err := s.store.TargetFacts(ctx, c.Targets); err != nil {
		return Change{}, err
	}
	now := s.clock()
	var (
		out  Change
		from State
	)
	err = s.store.Transact(ctx, func(tx Tx) error {
		cur, err := tx.Lock(ctx, c.ID)
		if err != nil {
			return err
		}
		from = cur.State
		if err := checkRevision(cur, c.Revision); err != nil {
			return err
		}
		if !cur.State.Editable() {
			return errs.E(errs.Conflict, "a change that is %s can no longer be edited (only draft, submitted or approved changes can)", cur.State)
		}
		next := cur
		next.Title, next.Description, next.Type = c.Title, c.Description, c.Type
		next.Findings, next.Advisories, next.Targets, next.Patches = c.Findings, c.Advisories, c.Targets, c.Patches
		next.PlannedWindows, next.Communication, next.PreChecks = c.PlannedWindows, c.Communication, c.PreChecks
		next.TestProtocol, next.RollbackPlan = c.TestProtocol, c.RollbackPlan
		next.SignOffs = resetSignOffs(c.SignOffs)
		next.Risk = rating
		switch {
		case next.Type == Emergency && cur.Type != Emergency:
			if err := canDeclareEmergency(pol, u); err != nil {
				return err
			}
			next.Emergency = declare(pol, c.Emergency, now)
		case next.Type == Emergency:
			// The time box runs from the declaration; an edit may change
			// the justification, never extend the deadline.
			e := *cur.Emergency
			if c.Emergency != nil {
				e.Justification = strings.TrimSpace(c.Emergency.Justification)
			}
			next.Emergency = &e
		default:
			next.Emergency = nil
		}
		if cur.Type != Emergency && next.Type == Emergency && cur.State != Draft {
			return errs.E(errs.Conflict, "a %s change cannot become an emergency; cancel it and declare an emergency change", cur.State)
		}
		if err := next.validate(pol); err != nil {
			return err
		}
		next.Revision, next.UpdatedAt, next.EditedAt = cur.Revision+1, now, now
		if u.Actor.ID != cur.RequestedByID && !slices.Contains(cur.EditedBy, u.Actor.ID) {
			next.EditedBy = append(slices.Clone(cur.EditedBy), u.Actor.ID)
		}
		expired, reason := 0, why
		if EditWithdrawsApprovals(pol, cur) {
			if expired, err = tx.ExpireApprovals(ctx, cur.ID, now, fmt.Sprintf("change edited (revision %d): %s", next.Revision, why)); err != nil {
				return err
			}
			if expired > 0 {
				noun := "approvals"
				if expired == 1 {
					noun = "approval"
				}
				reason = fmt.Sprintf("%s (%d %s withdrawn)", why, expired, noun)
			}
			if cur.State == Approved {
				if next.State, err = Next(cur.State, ActReopen); err != nil {
					return err
				}
			}
		}
		if err := tx.Update(ctx, next); err != nil {
			return err
		}
		if next.State != cur.State {
			if err := tx.AddTransition(ctx, Transition{ChangeID: cur.ID, From: cur.State, To: next.State, Action: ActReopen,
				By: u.name(), Why: "edited after approval; approvals withdrawn: " + why, At: now, Revision: next.Revision}); err != nil {
				return err
			}
		}
		out = next
		return tx.AppendAudit(ctx, audit.Record{Actor: u.Actor, Action: "change.update", ObjectType: "change", ObjectID: cur.ID,
			Before: cur, After: next, Reason: reason})
	})
	if err != nil {
		return Change{}, fmt.Errorf("update change %s: %w", c.ID, err)
	}
	if out.State != from {
		s.moved(ctx, out, from)
	}
	return out, nil
}

// transition runs one state move in a transaction: lock, revision check,
// the table's verdict, the guard, the write, the history and the audit.
// mutate may change the record beyond its state and returns audit detail.
func (s *Service) transition(ctx context.Context, u User, id string, act Action, st Step,
	guard func(tx Tx, cur Change) error, mutate func(next *Change)) (Change, error) {
	now := s.clock()
	var (
		out  Change
		from State
	)
	err := s.store.Transact(ctx, func(tx Tx) error {
		cur, err := tx.Lock(ctx, id)
		if err != nil {
			return err
		}
		from = cur.State
		if err := checkRevision(cur, st.Revision); err != nil {
			return err
		}
		to, err := Next(cur.State, act)
		if err != nil {
			return err
		}
		if guard != nil {
			if err := guard(tx, cur); err != nil {
				return err
			}
		}
		next := cur
		next.State, next.Revision, next.UpdatedAt = to, cur.Revision+1, now
		if mutate != nil {
			mutate(&next)
		}
		if err := tx.Update(ctx, next); err != nil {
			return err
		}
		if err := tx.AddTransition(ctx, Transition{ChangeID: id, From: cur.State, To: to, Action: act, By: u.name(),
			Why: st.Why, At: now, Revision: next.Revision}); err != nil {
			return err
		}
		out = next
		return tx.AppendAudit(ctx, audit.Record{Actor: u.Actor, Action: "change." + string(act), ObjectType: "change", ObjectID: id,
			Before: map[string]any{"state": cur.State, "revision": cur.Revision},
			After:  map[string]any{"state": to, "revision": next.Revision}, Reason: st.Why})
	})
	if err != nil {
		return Change{}, fmt.Errorf("%s change %s: %w", verb(act), id, err)
	}
	s.moved(ctx, out, from)
	return out, nil
}

func needWhy(st Step, what string) error {
	if strings.TrimSpace(st.Why) == "" {
		var v errs.Validation
		v.Add("why", "required: say why the change is %s", what)
		return v.Err("invalid request")
	}
	return nil
}

// Submit sends a draft for approval after checking that it is complete:
// targets, patches, a rollback plan when the policy requires one, and a
// test protocol covering the policy's required cases for its type. A
// change the policy pre-approves (standard changes, when no asset class
// adds approvers) is approved at once, recorded as approved by policy.
func (s *Service) Submit(ctx context.Context, u User, id string, st Step) (Change, error) {
	if err := u.may(writers, "submit a change"); err != nil {
		return Change{}, err
	}
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return Change{}, err
	}
	var autoApprove bool
	c, err := s.transition(ctx, u, id, ActSubmit, st, func(tx Tx, cur Change) error {
		if cur.Type == Emergency {
			if err := canDeclareEmergency(pol, u); err != nil {
				return err
			}
			if cur.Emergency != nil && s.clock().After(cur.Emergency.GoNoGoBy) {
				return errs.E(errs.Conflict, "the emergency change's go/no-go deadline passed at %s before it was submitted; cancel it and declare a new one",
					cur.Emergency.GoNoGoBy.Format(time.RFC3339))
			}
		}
		classes, err := s.classes(ctx, tx, pol, cur.Targets)
		if err != nil {
			return err
		}
		if err := submitGuards(pol, cur, classNames(classes)); err != nil {
			return err
		}
		req := Requirements(pol, cur.Type, classes)
		autoApprove = req.PreApproved && Evaluate(req, nil).Complete
		return nil
	}, nil)
	if err != nil || !autoApprove {
		return c, err
	}
	return s.transition(ctx, User{Actor: audit.System, Role: "system"}, id, ActApprove,
		Step{Why: "pre-approved " + string(c.Type) + " change (policy approvals.types." + string(c.Type) + ")", Revision: c.Revision}, nil, nil)
}

// submitGuards lists everything a change lacks to be submitted.
func submitGuards(pol *policy.Compiled, c Change, classes []string) error {
	var v errs.Validation
	p := pol.Policy()
	if c.Targets.Empty() {
		v.Add("targets", "required: the assets or groups the change applies to")
	}
	if len(c.Patches) == 0 {
		v.Add("patches", "required: at least one package update or manual task")
	}
	if p.Rollback.RequirePlan && (len(c.RollbackPlan.Triggers) == 0 || len(c.RollbackPlan.Steps) == 0 || c.RollbackPlan.Owner == "") {
		v.Add("rollback_plan", "required by policy (rollback.require_plan): triggers, recovery steps and an owner")
	}
	if slices.Contains(p.Testing.RequiredFor, string(c.Type)) {
		if len(c.TestProtocol) == 0 {
			v.Add("test_protocol", "required for %s changes (policy testing.required_for)", c.Type)
		} else if missing := missingCases(c.TestProtocol, RequiredCases(pol, c.Type, classes)); len(missing) > 0 {
			v.Add("test_protocol", "must include the policy's test cases for these assets: %s", strings.Join(missing, ", "))
		}
	}
	if c.Type == Emergency && c.Emergency == nil {
		v.Add("emergency", "required for an emergency change")
	}
	return v.Err(fmt.Sprintf("change %s cannot be submitted", c.ID))
}

func missingCases(protocol []TestStep, required []string) []string {
	var out []string
	for _, id := range required {
		if !slices.ContainsFunc(protocol, func(s TestStep) bool { return s.CaseID == id }) {
			out = append(out, id)
		}
	}
	return out
}

// Decision is an approver's input: the policy role they sign as (empty
// picks the one role their Patchward role carries that the change still
// needs), a note (required to reject), and the revision they reviewed,
// which must be the current one.
type Decision struct {
	As       string
	Note     string
	Revision int
}

// Approve records an approval on a submitted change and approves the change
// once the policy's requirement is met. It is refused when the user
// requested the change (separation of duties), signs as a role their
// Patchward role does not carry or that this change does not need, has
// already approved this revision, or when an emergency change's go/no-go
// deadline has passed.
func (s *Service) Approve(ctx context.Context, u User, id string, d Decision) (Change, ApprovalStatus, error) {
	return s.decide(ctx, u, id, Approve, d)
}

// Reject turns a submitted change down; one rejection by a required
// approver is enough, and it must say why.
func (s *Service) Reject(ctx context.Context, u User, id string, d Decision) (Change, error) {
	if strings.TrimSpace(d.Note) == "" {
		var v errs.Validation
		v.Add("note", "required: say why the change is rejected")
		return Change{}, v.Err("invalid rejection")
	}
	c, _, err := s.decide(ctx, u, id, Reject, d)
	return c, err
}

func (s *Service) decide(ctx context.Context, u User, id, decision string, d Decision) (Change, ApprovalStatus, error) {
	if u.Actor.ID == "" {
		return Change{}, ApprovalStatus{}, errs.E(errs.Unauthorized, "an identified user is required to %s a change", decision)
	}
	if d.Revision == 0 {
		return Change{}, ApprovalStatus{}, errs.E(errs.Invalid, "a decision must name the revision it was made on")
	}
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return Change{}, ApprovalStatus{}, err
	}
	now := s.clock()
	var (
		out    Change
		from   State
		status ApprovalStatus
	)
	err = s.store.Transact(ctx, func(tx Tx) error {
		cur, err := tx.Lock(ctx, id)
		if err != nil {
			return err
		}
		from = cur.State
		if err := checkRevision(cur, d.Revision); err != nil {
			return err
		}
		act := ActApprove
		if decision == Reject {
			act = ActReject
		}
		to, err := Next(cur.State, act)
		if err != nil {
			return err
		}
		if GoNoGoExpired(cur, now) {
			return errs.E(errs.Conflict, "the emergency change's go/no-go deadline passed at %s: it expired unapproved; cancel it and declare a new one",
				cur.Emergency.GoNoGoBy.Format(time.RFC3339))
		}
		if err := MayDecide(pol, cur, u); err != nil {
			return err
		}
		classes, err := s.classes(ctx, tx, pol, cur.Targets)
		if err != nil {
			return err
		}
		req := Requirements(pol, cur.Type, classes)
		existing, err := tx.Approvals(ctx, id)
		if err != nil {
			return err
		}
		before := Evaluate(req, existing)
		role, err := signAs(pol, req, before, u, d.As)
		if err != nil {
			return err
		}
		for _, a := range existing {
			if a.ExpiredAt == nil && a.ByID == u.Actor.ID {
				return errs.E(errs.Conflict, "you already decided on this change (%s as %s at revision %d)", a.Decision, a.Role, a.ChangeRevision)
			}
		}
		a := Approval{ChangeID: id, By: u.name(), ByID: u.Actor.ID, Role: role, Grant: u.Role, Decision: decision,
			Note: strings.TrimSpace(d.Note), At: now, ChangeRevision: cur.Revision}
		if err := tx.AddApproval(ctx, a); err != nil {
			return err
		}
		status = Evaluate(req, append(existing, a))
		out = cur
		if decision == Approve && !status.Complete {
			return tx.AppendAudit(ctx, audit.Record{Actor: u.Actor, Action: "change.approval", ObjectType: "change", ObjectID: id,
				After: map[string]any{"approval": a, "status": status}, Reason: a.Note})
		}
		next := cur
		next.State, next.Revision, next.UpdatedAt = to, cur.Revision+1, now
		if err := tx.Update(ctx, next); err != nil {
			return err
		}
		why := a.Note
		if decision == Approve {
			why = fmt.Sprintf("approval requirement met (%d of %d)", status.QuorumMet, req.Quorum)
			if len(req.ClassApprovers) > 0 {
				why = fmt.Sprintf("approval requirement met (%d of %d, class approvers signed: %s)", status.QuorumMet, req.Quorum, classRoles(req))
			}
		}
		if err := tx.AddTransition(ctx, Transition{ChangeID: id, From: cur.State, To: to, Action: act, By: u.name(),
			Why: why, At: now, Revision: next.Revision}); err != nil {
			return err
		}
		out = next
		return tx.AppendAudit(ctx, audit.Record{Actor: u.Actor, Action: "change." + decision, ObjectType: "change", ObjectID: id,
			Before: map[string]any{"state": cur.State, "revision": cur.Revision},
			After:  map[string]any{"state": to, "revision": next.Revision, "approval": a, "status": status}, Reason: a.Note})
	})
	if err != nil {
		return Change{}, ApprovalStatus{}, fmt.Errorf("%s change %s: %w", decision, id, err)
	}
	if out.State != from {
		s.moved(ctx, out, from)
	}
	return out, status, nil
}

// signAs picks and checks the policy role an approver signs as: one the
// user holds and this change needs. Unnamed, it is the first of
// SigningRoles.
func signAs(pol *policy.Compiled, req Requirement, st ApprovalStatus, u User, as string) (string, error) {
	as = strings.TrimSpace(as)
	if as != "" {
		_, ok := policyRoles(pol)[as]
		switch {
		case !ok:
			return "", errs.E(errs.Invalid, "%q is not a role in the policy", as)
		case !req.Relevant(as):
			return "", errs.E(errs.Forbidden, "%s does not approve %s changes to these assets (approvers: %s)", as, req.Type, strings.Join(req.Approvers(), ", "))
		case !u.holds(pol, as):
			return "", notHeld("signing", as)
		}
		return as, nil
	}
	if roles := SigningRoles(pol, st, u); len(roles) > 0 {
		return roles[0], nil
	}
	return "", errs.E(errs.Forbidden, "you hold none of the policy roles that approve this change (%s); an admin assigns policy roles", strings.Join(req.Approvers(), ", "))
}

// SigningRoles returns the policy roles u may approve or reject the change
// whose approvals stand at st as: those u holds that its requirement names,
// best first. While the quorum is unmet the type's roles come first, then
// the class approvers nobody has signed as yet, then the rest. Approve and
// Reject sign as the first when none is named; the UI offers them all.
func SigningRoles(pol *policy.Compiled, st ApprovalStatus, u User) []string {
	req := st.Requirement
	var order []string
	if st.QuorumMet < req.Quorum {
		order = append(order, req.Roles...)
	}
	for _, ca := range st.MissingClass {
		order = append(order, ca.Role)
	}
	order = append(order, req.Roles...)
	for _, ca := range req.ClassApprovers {
		order = append(order, ca.Role)
	}
	var out []string
	for _, r := range order {
		if !slices.Contains(out, r) && u.holds(pol, r) {
			out = append(out, r)
		}
	}
	return out
}

// Rework returns a rejected change to draft. The rejected round's
// decisions are expired so the next submission starts afresh.
func (s *Service) Rework(ctx context.Context, u User, id string, st Step) (Change, error) {
	if err := u.may(writers, "rework a change"); err != nil {
		return Change{}, err
	}
	return s.transition(ctx, u, id, ActRework, st, func(tx Tx, cur Change) error {
		_, err := tx.ExpireApprovals(ctx, id, s.clock(), "change returned to draft for rework")
		return err
	}, nil)
}

// Schedule books an approved change into its planned windows. windows, when
// given, replace the plan: when is the operator's call and does not undo
// the approval of what and where.
func (s *Service) Schedule(ctx context.Context, u User, id string, windows []PlannedWindow, st Step) (Change, error) {
	if err := u.may(operators, "schedule a change"); err != nil {
		return Change{}, err
	}
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return Change{}, err
	}
	return s.transition(ctx, u, id, ActSchedule, st, func(tx Tx, cur Change) error {
		plan := cur.PlannedWindows
		if windows != nil {
			plan = windows
		}
		if len(plan) == 0 {
			var v errs.Validation
			v.Add("planned_windows", "required: a policy maintenance window or a start and end")
			return v.Err("change cannot be scheduled")
		}
		check := cur
		check.PlannedWindows = plan
		return check.validate(pol)
	}, func(next *Change) {
		if windows != nil {
			next.PlannedWindows = windows
		}
	})
}

// Start begins deployment. Types the policy requires testing for need a
// passing test run recorded since the last edit: the latest run covers
// every required case with a pass and fails none.
func (s *Service) Start(ctx context.Context, u User, id string, st Step) (Change, error) {
	if err := u.may(operators, "start a change"); err != nil {
		return Change{}, err
	}
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return Change{}, err
	}
	return s.transition(ctx, u, id, ActStart, st, func(tx Tx, cur Change) error {
		if !slices.Contains(pol.Policy().Testing.RequiredFor, string(cur.Type)) {
			return nil
		}
		classes, err := s.classes(ctx, tx, pol, cur.Targets)
		if err != nil {
			return err
		}
		runs, err := tx.TestRuns(ctx, id)
		if err != nil {
			return err
		}
		return passing(cur, runs, RequiredCases(pol, cur.Type, classNames(classes)))
	}, nil)
}

// passing checks that the latest test run, made since the last edit,
// passes every required case and fails none.
func passing(c Change, runs []TestRun, required []string) error {
	if len(runs) == 0 {
		return errs.E(errs.Conflict, "%s changes need a passing test run before deployment (policy testing.required_for); none is recorded", c.Type)
	}
	last := runs[len(runs)-1]
	if last.At.Before(c.EditedAt) {
		return errs.E(errs.Conflict, "the latest test run (%s) predates the last edit (%s); run the tests again",
			last.At.Format(time.RFC3339), c.EditedAt.Format(time.RFC3339))
	}
	res := map[string]string{}
	for _, r := range last.Results {
		res[r.CaseID] = r.Result
		if r.Result == ResultFail {
			return errs.E(errs.Conflict, "the latest test run failed case %s; fix and test again, or roll back", r.CaseID)
		}
	}
	var missing []string
	for _, id := range required {
		if res[id] != ResultPass {
			missing = append(missing, id)
		}
	}
	for _, s := range c.TestProtocol {
		if _, ok := res[s.CaseID]; !ok && !slices.Contains(missing, s.CaseID) {
			missing = append(missing, s.CaseID)
		}
	}
	if len(missing) > 0 {
		return errs.E(errs.Conflict, "the latest test run has no pass for: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Complete closes a deployed change. Every requested sign-off must be given
// and an emergency change needs its post-incident review on record.
func (s *Service) Complete(ctx context.Context, u User, id string, st Step) (Change, error) {
	if err := u.may(operators, "complete a change"); err != nil {
		return Change{}, err
	}
	return s.transition(ctx, u, id, ActComplete, st, func(tx Tx, cur Change) error {
		var missing []string
		for _, so := range cur.SignOffs {
			if so.At == nil {
				missing = append(missing, so.Role)
			}
		}
		if len(missing) > 0 {
			return errs.E(errs.Conflict, "sign-offs still missing: %s", strings.Join(missing, ", "))
		}
		if cur.Type == Emergency && (cur.Emergency == nil || cur.Emergency.PostIncidentReview == nil) {
			return errs.E(errs.Conflict, "an emergency change needs its post-incident review recorded before it completes")
		}
		return nil
	}, nil)
}

// Halt stops a deployment in progress; it must say why.
func (s *Service) Halt(ctx context.Context, u User, id string, st Step) (Change, error) {
	if err := u.may(operators, "halt a change"); err != nil {
		return Change{}, err
	}
	if err := needWhy(st, "halted"); err != nil {
		return Change{}, err
	}
	return s.transition(ctx, u, id, ActHalt, st, nil, nil)
}

// Resume continues a halted deployment.
func (s *Service) Resume(ctx context.Context, u User, id string, st Step) (Change, error) {
	if err := u.may(operators, "resume a change"); err != nil {
		return Change{}, err
	}
	return s.transition(ctx, u, id, ActResume, st, nil, nil)
}

// RollBack records that the change was backed out; it must say which
// trigger fired.
func (s *Service) RollBack(ctx context.Context, u User, id string, st Step) (Change, error) {
	if err := u.may(operators, "roll back a change"); err != nil {
		return Change{}, err
	}
	if err := needWhy(st, "rolled back (which trigger fired)"); err != nil {
		return Change{}, err
	}
	return s.transition(ctx, u, id, ActRollBack, st, nil, nil)
}

// Cancel abandons a change that has not started (or is halted); it must
// say why.
func (s *Service) Cancel(ctx context.Context, u User, id string, st Step) (Change, error) {
	if err := u.may(writers, "cancel a change"); err != nil {
		return Change{}, err
	}
	if err := needWhy(st, "cancelled"); err != nil {
		return Change{}, err
	}
	return s.transition(ctx, u, id, ActCancel, st, nil, nil)
}

// GoNoGoExpired reports whether c is an emergency change whose go/no-go
// time box ran out at now: it can no longer be approved or rejected.
func GoNoGoExpired(c Change, now time.Time) bool {
	return c.Type == Emergency && c.Emergency != nil && now.After(c.Emergency.GoNoGoBy)
}

// classRoles names the class approver roles of req, with their classes.
func classRoles(req Requirement) string {
	parts := make([]string, len(req.ClassApprovers))
	for i, ca := range req.ClassApprovers {
		parts[i] = ca.Role + " for " + ca.Class
	}
	return strings.Join(parts, ", ")
}
