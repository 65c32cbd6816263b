package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/policy"
)

// RolloutOptions tune a Rollouts engine; zero values take the defaults
// named on each field.
type RolloutOptions struct {
	// Now is the clock (time.Now if nil): windows, gates and soak times are
	// judged by it, so tests move it instead of sleeping.
	Now func() time.Time
	Log *slog.Logger
	// JobDuration is how long one job is planned to take inside its
	// window (default 1h): a job starts only where it can also finish.
	JobDuration time.Duration
	// Owner names this replica in rollout leases (default a random ID).
	Owner string
	// LeaseTTL bounds how long a crashed replica's lease blocks the others
	// (default 5m).
	LeaseTTL time.Duration
	// Notifier tells people at once when a gate halts a rollout or a
	// rollback fails (nil: the audit trail and the log only).
	Notifier Notifier
}

// Notifier sends a short message to the people who must act (e-mail
// through notify.Mailer in production).
type Notifier interface {
	Notify(ctx context.Context, subject, body string) error
}

// Rollouts is the rollout engine: it starts a scheduled change's rollout,
// advances every active rollout on each Tick (job states in, gate
// decisions, next wave, halt, rollback, completion) and carries out the
// operator's pause, resume, abort, roll back and manual-task outcomes.
// Everything it does is audited, and every asset's work is written to the
// deployment log.
type Rollouts struct {
	store    RolloutStore
	changes  Changes
	fleet    Fleet
	policies Policies
	opt      RolloutOptions
	now      func() time.Time
	log      *slog.Logger
	kick     chan struct{}
}

// NewRollouts returns the engine.
func NewRollouts(store RolloutStore, changes Changes, jobs Fleet, policies Policies, opt RolloutOptions) *Rollouts {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.JobDuration <= 0 {
		opt.JobDuration = time.Hour
	}
	if opt.Owner == "" {
		opt.Owner = "replica-" + uuid.NewString()
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = 5 * time.Minute
	}
	return &Rollouts{store: store, changes: changes, fleet: jobs, policies: policies, opt: opt,
		now: func() time.Time { return opt.Now().UTC().Truncate(time.Microsecond) }, log: opt.Log,
		kick: make(chan struct{}, 1)}
}

// Engine is the actor of everything the engine does on its own: gate
// decisions, halts, automatic rollbacks, completion. It carries the
// operator role because the change service checks roles on every move.
var Engine = change.User{Actor: audit.Actor{Kind: audit.ActorSystem, ID: "rollout-engine", Name: "rollout engine"}, Role: "operator"}

// operatorRoles may start and steer rollouts, as they may start and halt
// changes.
var operatorRoles = []string{"admin", "operator"}

func mayOperate(u change.User, what string) error {
	if u.Actor.Kind == "" || u.Actor.ID == "" {
		return errs.E(errs.Unauthorized, "an identified user is required to %s", what)
	}
	if !slices.Contains(operatorRoles, u.Role) {
		return errs.E(errs.Forbidden, "the %s role may not %s (allowed: %s)", u.Role, what, strings.Join(operatorRoles, ", "))
	}
	return nil
}

func userName(u change.User) string {
	if u.Actor.Name != "" {
		return u.Actor.Name
	}
	return u.Actor.ID
}

func needWhy(why, what string) error {
	if strings.TrimSpace(why) == "" {
		return errs.E(errs.Invalid, "say why the rollout is %s", what)
	}
	if len(why) > 2000 {
		return errs.E(errs.Invalid, "the reason must be at most 2000 characters")
	}
	return nil
}

// Get returns a rollout with its waves and items.
func (s *Rollouts) Get(ctx context.Context, id string) (Rollout, error) {
	return s.store.GetRollout(ctx, id)
}

// ByChange returns the rollout of a change.
func (s *Rollouts) ByChange(ctx context.Context, changeID string) (Rollout, error) {
	return s.store.RolloutByChange(ctx, changeID)
}

// List returns rollouts (without waves), newest first.
func (s *Rollouts) List(ctx context.Context, f RolloutFilter) ([]Rollout, error) {
	return s.store.ListRollouts(ctx, f)
}

// DeploymentLog returns a change's deployment log, of one asset when
// assetID is set, oldest first.
func (s *Rollouts) DeploymentLog(ctx context.Context, changeID, assetID string) ([]LogEntry, error) {
	return s.store.DeploymentLog(ctx, changeID, assetID)
}

// Start plans the rollout of a scheduled change and starts its first wave:
// targets are expanded (groups through the inventory), each asset is put
// in its policy ring, every ring's wave is planned in the assets' windows
// (the emergency path for an approved emergency change) and the change
// moves to in progress. Assets without an enrolled agent and the change's
// vendor-mediated tasks become manual items of the same wave.
func (s *Rollouts) Start(ctx context.Context, u change.User, changeID, why string) (Rollout, error) {
	if err := mayOperate(u, "start a rollout"); err != nil {
		return Rollout{}, err
	}
	c, err := s.changes.Get(ctx, changeID)
	if err != nil {
		return Rollout{}, err
	}
	// The change's own state machine says why it cannot start, and what
	// can be done from where it stands.
	if _, err := change.Next(c.State, change.ActStart); err != nil {
		return Rollout{}, err
	}
	if _, err := s.store.RolloutByChange(ctx, c.ID); err == nil {
		return Rollout{}, errs.E(errs.Conflict, "change %s already has a rollout", c.ID)
	} else if !errors.Is(err, errs.ErrNotFound) {
		return Rollout{}, err
	}
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return Rollout{}, err
	}
	ro, err := s.plan(ctx, pol, c, u)
	if err != nil {
		return Rollout{}, fmt.Errorf("plan rollout of change %s: %w", c.ID, err)
	}
	// The change's own guards (test runs, approvals) decide first: a
	// change that may not start leaves no rollout behind.
	if _, err := s.changes.Start(ctx, u, c.ID, change.Step{Why: why}); err != nil {
		return Rollout{}, err
	}
	err = s.store.TransactRollout(ctx, func(tx RolloutTx) error {
		if err := tx.InsertRollout(ctx, ro); err != nil {
			return err
		}
		summary := map[string]any{"change_id": ro.ChangeID, "change_type": ro.ChangeType, "emergency": ro.Emergency, "waves": waveSummary(ro)}
		if err := tx.AppendAudit(ctx, audit.Record{Actor: u.Actor, Action: "rollout.start", ObjectType: "rollout", ObjectID: ro.ID,
			After: summary, Reason: why}); err != nil {
			return err
		}
		for _, w := range ro.Waves {
			for _, it := range w.Items {
				if err := tx.AddLog(ctx, s.entry(ro, it, userName(u), EventPlanned, "", fmt.Sprintf("ring %s, planned %s", w.Ring, span2(it.PlannedStart, it.PlannedEnd)))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		// The change started but its rollout could not be stored: halt it
		// so nobody takes it for a deployment under way.
		if _, herr := s.changes.Halt(ctx, Engine, c.ID, change.Step{Why: "the rollout could not be stored; start it again"}); herr != nil {
			err = errors.Join(err, herr)
		}
		return Rollout{}, fmt.Errorf("store rollout: %w", err)
	}
	if err := s.advance(ctx, ro.ID); err != nil {
		return Rollout{}, err
	}
	return s.store.GetRollout(ctx, ro.ID)
}

func span2(a, b *time.Time) string {
	if a == nil {
		return "when the wave starts"
	}
	if b == nil {
		return a.Format(time.RFC3339) + " onwards"
	}
	return a.Format(time.RFC3339) + " – " + b.Format(time.RFC3339)
}

func waveSummary(ro Rollout) []map[string]any {
	var out []map[string]any
	for _, w := range ro.Waves {
		out = append(out, map[string]any{"ring": w.Ring, "state": w.State, "items": len(w.Items)})
	}
	return out
}

// plan builds the rollout record: waves in policy ring order, items, and
// a provisional plan for every wave (each re-planned when it starts).
func (s *Rollouts) plan(ctx context.Context, pol *policy.Compiled, c change.Change, u change.User) (Rollout, error) {
	now := s.now()
	facts, err := s.store.TargetFacts(ctx, c.Targets)
	if err != nil {
		return Rollout{}, err
	}
	if len(facts) == 0 {
		return Rollout{}, errs.E(errs.Invalid, "change %s targets no assets", c.ID)
	}
	byRing, err := AssignRings(pol, facts)
	if err != nil {
		return Rollout{}, err
	}
	ids := make([]string, len(facts))
	for i, f := range facts {
		ids[i] = f.ID
	}
	infos, err := s.store.AssetInfo(ctx, ids)
	if err != nil {
		return Rollout{}, err
	}
	info := map[string]AssetInfo{}
	for _, a := range infos {
		info[a.ID] = a
	}
	var pkgs []agentapi.JobPackage
	var manual []change.ManualTask
	for _, p := range c.Patches {
		if p.Manual != nil {
			manual = append(manual, *p.Manual)
		} else {
			pkgs = append(pkgs, agentapi.JobPackage{Name: p.Package, TargetVersion: p.TargetVersion})
		}
	}
	// The versions each asset has now: what a rollback returns to, by
	// job or, on an asset without an agent (known from a scan or an
	// SBOM), by hand.
	var installed map[string]map[string]InstalledPackage
	if len(pkgs) > 0 {
		if installed, err = s.store.Installed(ctx, ids, pkgNames(pkgs)); err != nil {
			return Rollout{}, err
		}
	}
	p := pol.Policy()
	ro := Rollout{ID: uuid.Must(uuid.NewV7()).String(), ChangeID: c.ID, ChangeType: string(c.Type),
		Emergency: c.Type == change.Emergency, State: RolloutRunning, PolicySHA: pol.SHA256(),
		JobDuration: s.opt.JobDuration, CreatedBy: userName(u), CreatedAt: now, UpdatedAt: now, Revision: 1}
	cal, err := NewCalendar(pol, nil)
	if err != nil {
		return Rollout{}, err
	}
	from := now
	for i, ring := range p.Rings {
		w := Wave{Index: i, Ring: ring.Name, State: WavePending, Items: []Item{}}
		for _, id := range byRing[ring.Name] {
			a := info[id]
			add := func(it Item) {
				it.ID, it.RolloutID, it.Wave, it.Seq = uuid.Must(uuid.NewV7()).String(), ro.ID, i, len(w.Items)
				it.AssetID, it.AssetName, it.SiteID, it.State = a.ID, a.Name, a.SiteID, ItemPending
				w.Items = append(w.Items, it)
			}
			if len(pkgs) > 0 {
				prev := map[string]string{}
				for n, v := range installed[a.ID] {
					prev[n] = v.Version
				}
				if a.AgentID != "" {
					add(Item{Kind: ItemAgent, AgentID: a.AgentID, Packages: slices.Clone(pkgs), Previous: prev})
				} else {
					owner := firstOf(a.Owner, c.RollbackPlan.Owner, c.RequestedBy)
					add(Item{Kind: ItemManual, Packages: slices.Clone(pkgs), Previous: prev, Owner: owner,
						Task: "No enrolled agent: install " + pkgList(pkgs) + " by hand and record the outcome"})
				}
			}
			for _, m := range manual {
				add(Item{Kind: ItemManual, Task: m.Description, Owner: m.Owner, Due: m.Due})
			}
		}
		if len(w.Items) == 0 {
			w.State = WaveSkipped
		} else {
			end, err := s.planWave(cal, ring, &w, info, ro.ChangeType, from, false)
			if err != nil {
				return Rollout{}, err
			}
			// The next ring cannot open before this one finished and
			// soaked (an emergency does not soak): plan it from there,
			// provisionally.
			from = end
			if !ro.Emergency {
				from = ring.Soak.AddTo(end, cal.Zone())
			}
		}
		ro.Waves = append(ro.Waves, w)
	}
	return ro, nil
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func pkgNames(pkgs []agentapi.JobPackage) []string {
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = p.Name
	}
	return out
}

func pkgList(pkgs []agentapi.JobPackage) string {
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = p.Name + " " + p.TargetVersion
	}
	return strings.Join(out, ", ")
}

// calendarAsset is the calendar's view of an asset.
func calendarAsset(a AssetInfo, zones map[string]*time.Location) Asset {
	ca := Asset{ID: a.ID, Site: a.SiteID, Window: a.Window}
	if a.TimeZone == "" {
		return ca
	}
	// Loading a zone reads the zoneinfo file: once per zone, not per asset.
	l, ok := zones[a.TimeZone]
	if !ok {
		l, _ = time.LoadLocation(a.TimeZone)
		zones[a.TimeZone] = l
	}
	ca.Location = l
	return ca
}

// planWave gives the wave's items (those still pending when onlyPending)
// their planned start, end and slot with Calendar.Plan, throttled per site
// by the ring's max_concurrent, and returns when the last one ends. A
// manual item without a due date is due at its slot's end.
func (s *Rollouts) planWave(cal *Calendar, ring policy.Ring, w *Wave, info map[string]AssetInfo, changeType string, from time.Time, onlyPending bool) (time.Time, error) {
	var (
		assets []Asset
		idx    []int
		seen   = map[string]int{}
		zones  = map[string]*time.Location{}
	)
	for i, it := range w.Items {
		if onlyPending && it.State != ItemPending {
			continue
		}
		// An asset with several items (a job and a vendor task) takes one
		// place in the plan.
		if _, ok := seen[it.AssetID]; ok {
			idx = append(idx, i)
			continue
		}
		seen[it.AssetID] = len(assets)
		assets = append(assets, calendarAsset(info[it.AssetID], zones))
		idx = append(idx, i)
	}
	if len(assets) == 0 {
		return from, nil
	}
	planned, err := cal.Plan(assets, s.opt.JobDuration, from, PlanOptions{ChangeType: changeType, MaxConcurrent: ring.MaxConcurrent})
	if err != nil {
		return time.Time{}, err
	}
	end := from
	for _, i := range idx {
		it := &w.Items[i]
		ps := planned[seen[it.AssetID]]
		start, stop := ps.Start, ps.End
		it.PlannedStart, it.PlannedEnd = &start, &stop
		it.SlotEnd = nil
		if !ps.Slot.End.IsZero() {
			se := ps.Slot.End
			it.SlotEnd = &se
		}
		if it.Kind == ItemManual && it.Due == nil {
			due := stop
			if it.SlotEnd != nil {
				due = *it.SlotEnd
			}
			it.Due = &due
		}
		if stop.After(end) {
			end = stop
		}
		if w.PlannedStart == nil || start.Before(*w.PlannedStart) {
			w.PlannedStart = &start
		}
	}
	w.PlannedEnd = &end
	return end, nil
}

// Kick asks the background loop to tick soon (a job result or a new
// inventory arrived). It never blocks.
func (s *Rollouts) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// InventoryChanged kicks the loop, so a new inventory is checked for
// convergence at once; it makes Rollouts a fleet.InventoryListener.
func (s *Rollouts) InventoryChanged(context.Context, string) { s.Kick() }

// Run ticks every interval and on every Kick until ctx ends. A failed
// tick is logged and retried on the next one.
func (s *Rollouts) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "advancing rollouts failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-s.kick:
		}
	}
}

// Tick advances every active rollout once. A rollout another replica is
// advancing is skipped; one rollout's failure does not stop the others.
func (s *Rollouts) Tick(ctx context.Context) error {
	ros, err := s.store.ListRollouts(ctx, RolloutFilter{States: ActiveRolloutStates, Limit: 1000})
	if err != nil {
		return err
	}
	var all []error
	for _, ro := range ros {
		if err := s.advance(ctx, ro.ID); err != nil {
			all = append(all, fmt.Errorf("rollout %s (change %s): %w", ro.ID, ro.ChangeID, err))
		}
	}
	return errors.Join(all...)
}

// errBusy is returned to an operator whose action meets the engine (or
// another operator) working on the same rollout.
var errBusy = errs.E(errs.Conflict, "the rollout is being updated right now; try again in a moment")

// errLeaseLost ends a step that ran so long its lease expired and another
// replica took the rollout over: nothing more of it is written or sent.
var errLeaseLost = errs.E(errs.Conflict, "another replica took the rollout over while this one was still working on it; its step stopped")

// lease is a rollout lease this replica holds, with when it was last taken
// or renewed.
type lease struct {
	id string
	at time.Time
}

// hold keeps the lease before the step writes or calls out: once a third
// of LeaseTTL has passed since it was taken it is renewed, so a long step
// (slow fleet or change calls, a large wave) never runs on an expired
// lease; if another replica took it meanwhile the step stops with
// errLeaseLost. Renewing early leaves two thirds of the TTL for the one
// write or call that follows.
func (s *Rollouts) hold(ctx context.Context, l *lease) error {
	if l == nil {
		return nil
	}
	now := s.now()
	if now.Sub(l.at) < s.opt.LeaseTTL/3 {
		return nil
	}
	ok, err := s.store.RenewRollout(ctx, l.id, s.opt.Owner, now.Add(s.opt.LeaseTTL))
	if err != nil {
		return err
	}
	if !ok {
		return errLeaseLost
	}
	l.at = now
	return nil
}

// withLease runs fn holding the rollout's lease; busy reports that another
// replica holds it. fn passes the lease to hold before each write.
func (s *Rollouts) withLease(ctx context.Context, id string, fn func(l *lease) error) (busy bool, err error) {
	now := s.now()
	ok, err := s.store.ClaimRollout(ctx, id, s.opt.Owner, now, now.Add(s.opt.LeaseTTL))
	if err != nil {
		return false, err
	}
	if !ok {
		return true, nil
	}
	defer func() {
		// Release even when ctx ended, so another replica need not wait
		// out the lease.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := s.store.ReleaseRollout(rctx, id, s.opt.Owner); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	return false, fn(&lease{id: id, at: now})
}

// advance is one engine step of one rollout under its lease.
func (s *Rollouts) advance(ctx context.Context, id string) error {
	_, err := s.withLease(ctx, id, func(l *lease) error {
		ro, err := s.store.GetRollout(ctx, id)
		if err != nil {
			return err
		}
		if !ro.State.Active() {
			return nil
		}
		pol, _, err := s.policies.Current(ctx)
		if err != nil {
			return err
		}
		r := &run{s: s, ro: ro, pol: pol, now: s.now(), lease: l}
		return r.step(ctx)
	})
	return err
}

// run is the state of one engine step: the rollout as read, the policy in
// force and the step's time.
type run struct {
	s     *Rollouts
	ro    Rollout
	pol   *policy.Compiled
	now   time.Time
	cal   *Calendar
	lease *lease
	// change is the rollout's change, read when a step needs it.
	change *change.Change
}

// hold keeps the step's lease (Rollouts.hold) before a write or a call to
// the fleet or change service.
func (r *run) hold(ctx context.Context) error { return r.s.hold(ctx, r.lease) }

func (r *run) calendar() (*Calendar, error) {
	if r.cal == nil {
		c, err := NewCalendar(r.pol, nil)
		if err != nil {
			return nil, err
		}
		r.cal = c
	}
	return r.cal, nil
}

func (r *run) ring(name string) (policy.Ring, bool) {
	for _, rg := range r.pol.Policy().Rings {
		if rg.Name == name {
			return rg, true
		}
	}
	return policy.Ring{}, false
}

func (r *run) step(ctx context.Context) error {
	if err := r.sync(ctx); err != nil {
		return err
	}
	switch r.ro.State {
	case RolloutRunning:
		// Someone may have halted or cancelled the change itself (the
		// change API, not the rollout's): then no further job may go out.
		c, err := r.s.changes.Get(ctx, r.ro.ChangeID)
		if err != nil {
			return err
		}
		if c.State != change.InProgress {
			return r.stopForChange(ctx, c.State)
		}
		return r.progress(ctx)
	case RolloutRollingBack:
		return r.rollingBack(ctx)
	case RolloutAwaitingCompletion:
		return r.complete(ctx)
	}
	return nil
}

// entry starts a deployment log entry for an item.
func (s *Rollouts) entry(ro Rollout, it Item, actor, event, deviation, detail string) LogEntry {
	return LogEntry{RolloutID: ro.ID, ChangeID: ro.ChangeID, ItemID: it.ID, AssetID: it.AssetID, At: s.now(), Actor: actor,
		Event: event, Packages: it.Packages, Deviation: deviation, Detail: detail}
}

// saveItem writes one item with its log entries (and an audit record,
// when given) in one transaction.
func (r *run) saveItem(ctx context.Context, it Item, rec *audit.Record, logs ...LogEntry) error {
	return r.save(ctx, []Item{it}, rec, logs)
}

// saveItems writes several items with their log entries in one
// transaction.
func (r *run) saveItems(ctx context.Context, items []Item, logs []LogEntry) error {
	return r.save(ctx, items, nil, logs)
}

func (r *run) save(ctx context.Context, items []Item, rec *audit.Record, logs []LogEntry) error {
	if err := r.hold(ctx); err != nil {
		return err
	}
	err := r.s.store.TransactRollout(ctx, func(tx RolloutTx) error {
		for _, it := range items {
			if err := tx.UpdateItem(ctx, it); err != nil {
				return err
			}
		}
		for _, e := range logs {
			if err := tx.AddLog(ctx, e); err != nil {
				return err
			}
		}
		if rec != nil {
			return tx.AppendAudit(ctx, *rec)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, it := range items {
		r.ro.Waves[it.Wave].Items[it.Seq] = it
	}
	return nil
}

// saveState writes the rollout row (and waves) with an audit record,
// checking nobody else wrote the rollout since it was read.
func (r *run) saveState(ctx context.Context, rec audit.Record, waves ...int) error {
	if err := r.hold(ctx); err != nil {
		return err
	}
	before := r.ro.Revision
	err := r.s.store.TransactRollout(ctx, func(tx RolloutTx) error {
		cur, err := tx.LockRollout(ctx, r.ro.ID)
		if err != nil {
			return err
		}
		if cur.Revision != before {
			return errBusy
		}
		ro := r.ro
		ro.Revision, ro.UpdatedAt = before+1, r.now
		if err := tx.UpdateRollout(ctx, ro); err != nil {
			return err
		}
		for _, i := range waves {
			if err := tx.UpdateWave(ctx, ro.ID, ro.Waves[i]); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, rec)
	})
	if err != nil {
		return err
	}
	r.ro.Revision, r.ro.UpdatedAt = before+1, r.now
	return nil
}

// saveWave writes a wave alone (a gate's changed reason), unaudited when
// rec is nil.
func (r *run) saveWave(ctx context.Context, i int, rec *audit.Record) error {
	if err := r.hold(ctx); err != nil {
		return err
	}
	return r.s.store.TransactRollout(ctx, func(tx RolloutTx) error {
		if err := tx.UpdateWave(ctx, r.ro.ID, r.ro.Waves[i]); err != nil {
			return err
		}
		if rec != nil {
			return tx.AppendAudit(ctx, *rec)
		}
		return nil
	})
}

func logSteps(d fleet.JobDetail) []LogStep {
	if len(d.Results) == 0 {
		return nil
	}
	res := d.Results[len(d.Results)-1]
	out := make([]LogStep, len(res.Steps))
	for i, st := range res.Steps {
		out[i] = LogStep{Name: st.Name, ExitCode: st.ExitCode, OK: st.OK, Started: st.Started, Ended: st.Ended}
	}
	return out
}

func agentName(d fleet.JobDetail) string { return "agent " + d.AgentID }

// sync reads the fleet's state of every job out and records what changed
// on the items, with a deployment log entry per change, and checks
// succeeded items for convergence.
func (r *run) sync(ctx context.Context) error {
	// jobs is every job of the change from one listing, read when the first
	// job is out: a job whose state is what the item already knows needs
	// no closer look, so a quiet tick costs a listing, not two reads a job.
	var jobs map[string]fleet.JobStatus
	moved := func(id string, running bool) (bool, error) {
		if jobs == nil {
			var err error
			if jobs, err = r.jobsOf(ctx); err != nil {
				return false, err
			}
		}
		j, ok := jobs[id]
		if !ok {
			return true, nil // not listed: read it
		}
		if running {
			return j.State != fleet.JobRunning, nil
		}
		return j.State != fleet.JobQueued && j.State != fleet.JobDelivered, nil
	}
	for wi := range r.ro.Waves {
		for ii := range r.ro.Waves[wi].Items {
			it := r.ro.Waves[wi].Items[ii]
			if it.JobID != "" && (it.State == ItemQueued || it.State == ItemRunning) {
				if m, err := moved(it.JobID, it.State == ItemRunning); err != nil {
					return err
				} else if m {
					if err := r.syncJob(ctx, it); err != nil {
						return err
					}
					it = r.ro.Waves[wi].Items[ii]
				}
			}
			if it.RollbackJobID != "" && (it.RollbackState == RollbackQueued || it.RollbackState == RollbackRunning) {
				if m, err := moved(it.RollbackJobID, it.RollbackState == RollbackRunning); err != nil {
					return err
				} else if m {
					if err := r.syncRollback(ctx, it); err != nil {
						return err
					}
					it = r.ro.Waves[wi].Items[ii]
				}
			}
			if it.ConvergedAt == nil && it.RollbackState == RollbackNone && (it.State == ItemSucceeded || it.State == ItemDone) {
				c, err := r.s.verify(ctx, it)
				if err != nil {
					return err
				}
				if c.ConvergedAt != nil {
					it.ConvergedAt = c.ConvergedAt
					e := r.s.entry(r.ro, it, "inventory", EventConverged, "", c.Reason)
					if err := r.saveItem(ctx, it, nil, e); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// jobsOf is where every job of the rollout's change stands, by job ID,
// from one read.
func (r *run) jobsOf(ctx context.Context) (map[string]fleet.JobStatus, error) {
	list, err := r.s.fleet.JobStatuses(ctx, r.ro.ChangeID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]fleet.JobStatus, len(list))
	for _, j := range list {
		out[j.ID] = j
	}
	return out, nil
}

func (r *run) syncJob(ctx context.Context, it Item) error {
	d, err := r.s.fleet.Job(ctx, it.JobID)
	if err != nil {
		return err
	}
	var (
		e   LogEntry
		rec *audit.Record
		// started is the job_started entry of a job that ran between two
		// looks, so the log still says when the work began.
		started []LogEntry
	)
	if it.State != ItemRunning && d.StartedAt != nil && d.State.Finished() {
		st := r.s.entry(r.ro, it, agentName(d), EventJobStarted, "", "")
		st.At, st.JobID = *d.StartedAt, d.ID
		started = append(started, st)
	}
	switch d.State {
	case fleet.JobQueued, fleet.JobDelivered:
		return nil
	case fleet.JobRunning:
		if it.State == ItemRunning {
			return nil
		}
		it.State, it.StartedAt = ItemRunning, d.StartedAt
		e = r.s.entry(r.ro, it, agentName(d), EventJobStarted, "", "")
	case fleet.JobSucceeded:
		it.State, it.Outcome = ItemSucceeded, "succeeded"
		e = r.s.entry(r.ro, it, agentName(d), EventSucceeded, "", installedText(d))
	case fleet.JobFailed, fleet.JobRefused:
		it.State, it.Outcome = ItemFailed, string(d.State)+": "+d.Reason
		e = r.s.entry(r.ro, it, agentName(d), EventFailed, string(d.State), d.Reason)
	case fleet.JobRolledBack:
		// The agent backed the change out on its own (a failed
		// post-check): the asset is at its previous versions already.
		it.State, it.Outcome, it.RollbackState = ItemFailed, "rolled back by the agent: "+d.Reason, RollbackDone
		e = r.s.entry(r.ro, it, agentName(d), EventFailed, "rolled back by the agent", d.Reason)
	case fleet.JobCancelled:
		it.State, it.Outcome = ItemCancelled, "cancelled: "+d.Reason
		e = r.s.entry(r.ro, it, "fleet", EventCancelled, "cancelled", d.Reason)
	default:
		return nil
	}
	if it.StartedAt == nil {
		it.StartedAt = d.StartedAt
	}
	if d.State.Finished() || d.State == fleet.JobCancelled {
		it.FinishedAt = d.FinishedAt
		e.Steps = logSteps(d)
	}
	e.JobID = d.ID
	return r.saveItem(ctx, it, rec, append(started, e)...)
}

func installedText(d fleet.JobDetail) string {
	if len(d.Results) == 0 {
		return ""
	}
	inst := d.Results[len(d.Results)-1].Installed
	names := make([]string, 0, len(inst))
	for n := range inst {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		names[i] = n + " " + inst[n]
	}
	if len(names) == 0 {
		return ""
	}
	return "installed: " + strings.Join(names, ", ")
}

func (r *run) syncRollback(ctx context.Context, it Item) error {
	d, err := r.s.fleet.Job(ctx, it.RollbackJobID)
	if err != nil {
		return err
	}
	var e LogEntry
	switch d.State {
	case fleet.JobRunning:
		if it.RollbackState == RollbackRunning {
			return nil
		}
		it.RollbackState = RollbackRunning
		e = r.s.entry(r.ro, it, agentName(d), EventJobStarted, "", "rollback job started")
	case fleet.JobSucceeded:
		it.RollbackState = RollbackDone
		e = r.s.entry(r.ro, it, agentName(d), EventRolledBack, "rolled back", installedText(d))
	case fleet.JobFailed, fleet.JobRefused, fleet.JobRolledBack, fleet.JobCancelled:
		it.RollbackState = RollbackFailed
		e = r.s.entry(r.ro, it, agentName(d), EventRollbackKO, "rollback "+string(d.State), d.Reason)
	default:
		return nil
	}
	e.JobID, e.Steps = d.ID, logSteps(d)
	return r.saveItem(ctx, it, nil, e)
}

// current is the index of the first wave not passed or skipped; -1 if
// every wave is through.
func (ro Rollout) current() int {
	for i, w := range ro.Waves {
		if w.State != WavePassed && w.State != WaveSkipped {
			return i
		}
	}
	return -1
}

// progress starts waves, issues jobs and applies gate decisions until the
// rollout has to wait.
func (r *run) progress(ctx context.Context) error {
	for {
		wi := r.ro.current()
		if wi < 0 {
			return r.complete(ctx)
		}
		w := &r.ro.Waves[wi]
		ring, ok := r.ring(w.Ring)
		if !ok {
			reason := fmt.Sprintf("ring %s is no longer in the policy in force; abort or roll back the rollout", w.Ring)
			if w.Reason != reason {
				w.Verdict, w.Reason = Blocked, reason
				return r.saveWave(ctx, wi, &audit.Record{Actor: Engine.Actor, Action: "rollout.gate", ObjectType: "rollout",
					ObjectID: r.ro.ID, After: map[string]any{"ring": w.Ring, "verdict": Blocked}, Reason: reason})
			}
			return nil
		}
		if w.State == WavePending {
			if err := r.startWave(ctx, wi, ring); err != nil {
				return err
			}
		}
		if err := r.issue(ctx, wi, ring); err != nil {
			return err
		}
		cal, err := r.calendar()
		if err != nil {
			return err
		}
		d := Gate(ring, gateJobs(r.ro.Waves[wi]), r.now, cal.Zone(), r.ro.Emergency)
		switch d.Verdict {
		case Halt:
			return r.halt(ctx, d.Reason, Engine, true)
		case Advance:
			w := &r.ro.Waves[wi]
			now := r.now
			w.State, w.Verdict, w.Reason, w.DecidedAt, w.FinishedAt, w.WaitUntil = WavePassed, d.Verdict, d.Reason, &now, &now, nil
			if err := r.saveState(ctx, audit.Record{Actor: Engine.Actor, Action: "rollout.wave_passed", ObjectType: "rollout",
				ObjectID: r.ro.ID, After: map[string]any{"ring": w.Ring, "wave": wi, "verdict": d.Verdict}, Reason: d.Reason}, wi); err != nil {
				return err
			}
			continue
		default:
			return r.recordWait(ctx, wi, d)
		}
	}
}

// recordWait stores a Wait or Blocked decision; the audit trail gets an
// entry when the verdict changes, not for every changed count.
func (r *run) recordWait(ctx context.Context, wi int, d Decision) error {
	w := &r.ro.Waves[wi]
	state := WaveRunning
	var until *time.Time
	if !d.Until.IsZero() {
		state, until = WaveSoaking, &d.Until
	}
	if w.Verdict == d.Verdict && w.Reason == d.Reason && w.State == state {
		return nil
	}
	var rec *audit.Record
	if w.Verdict != d.Verdict || w.State != state {
		rec = &audit.Record{Actor: Engine.Actor, Action: "rollout.gate", ObjectType: "rollout", ObjectID: r.ro.ID,
			After: map[string]any{"ring": w.Ring, "wave": wi, "verdict": d.Verdict, "wait_until": until}, Reason: d.Reason}
	}
	now := r.now
	w.State, w.Verdict, w.Reason, w.DecidedAt, w.WaitUntil = state, d.Verdict, d.Reason, &now, until
	return r.saveWave(ctx, wi, rec)
}

// gateJobs is the gate's view of a wave. Open manual tasks count as
// running: the wave waits for the person as for an agent.
func gateJobs(w Wave) []Job {
	var out []Job
	for _, it := range w.Items {
		j := Job{AssetID: it.AssetID, Site: it.SiteID, State: JobPending, Manual: it.Kind == ItemManual}
		switch it.State {
		case ItemRunning, ItemOpen:
			j.State = JobRunning
		case ItemSucceeded, ItemDone:
			j.State = JobSucceeded
		case ItemFailed:
			j.State = JobFailed
		case ItemSkipped:
			continue
		}
		if it.StartedAt != nil {
			j.StartedAt = *it.StartedAt
		}
		if it.FinishedAt != nil {
			j.FinishedAt = *it.FinishedAt
		}
		out = append(out, j)
	}
	return out
}

// startWave re-plans a wave from now (the provisional plan may have gone
// by while earlier rings soaked) and marks it running.
func (r *run) startWave(ctx context.Context, wi int, ring policy.Ring) error {
	cal, err := r.calendar()
	if err != nil {
		return err
	}
	w := &r.ro.Waves[wi]
	info, err := r.assetInfo(ctx, w.Items)
	if err != nil {
		return err
	}
	w.PlannedStart, w.PlannedEnd = nil, nil
	if _, err := r.s.planWave(cal, ring, w, info, r.ro.ChangeType, r.now, false); err != nil {
		return r.block(ctx, wi, fmt.Sprintf("ring %s cannot be planned: %v", ring.Name, err))
	}
	now := r.now
	w.State, w.StartedAt, w.Verdict, w.Reason = WaveRunning, &now, "", ""
	for _, it := range w.Items {
		if err := r.saveItem(ctx, it, nil); err != nil {
			return err
		}
	}
	return r.saveState(ctx, audit.Record{Actor: Engine.Actor, Action: "rollout.wave_start", ObjectType: "rollout", ObjectID: r.ro.ID,
		After: map[string]any{"ring": w.Ring, "wave": wi, "items": len(w.Items), "planned_start": w.PlannedStart, "planned_end": w.PlannedEnd}}, wi)
}

// block records a wave that cannot go on without an operator.
func (r *run) block(ctx context.Context, wi int, reason string) error {
	w := &r.ro.Waves[wi]
	if w.Verdict == Blocked && w.Reason == reason {
		return nil
	}
	now := r.now
	w.Verdict, w.Reason, w.DecidedAt = Blocked, reason, &now
	return r.saveWave(ctx, wi, &audit.Record{Actor: Engine.Actor, Action: "rollout.gate", ObjectType: "rollout", ObjectID: r.ro.ID,
		After: map[string]any{"ring": w.Ring, "wave": wi, "verdict": Blocked}, Reason: reason})
}

func (r *run) assetInfo(ctx context.Context, items []Item) (map[string]AssetInfo, error) {
	var ids []string
	seen := map[string]bool{}
	for _, it := range items {
		if !seen[it.AssetID] {
			seen[it.AssetID] = true
			ids = append(ids, it.AssetID)
		}
	}
	infos, err := r.s.store.AssetInfo(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := map[string]AssetInfo{}
	for _, a := range infos {
		out[a.ID] = a
	}
	return out, nil
}

// issue opens the wave's pending manual tasks and queues jobs for its
// pending agent items, at most max_concurrent per site counting those
// already out (Throttle), each inside its planned window slot. An item
// whose slot has passed is planned again from now first.
func (r *run) issue(ctx context.Context, wi int, ring policy.Ring) error {
	w := &r.ro.Waves[wi]
	var out, pending []Job
	for _, it := range w.Items {
		switch {
		case it.Kind == ItemAgent && (it.State == ItemQueued || it.State == ItemRunning):
			out = append(out, Job{AssetID: it.ID, Site: it.SiteID})
		case it.Kind == ItemAgent && it.State == ItemPending:
			pending = append(pending, Job{AssetID: it.ID, Site: it.SiteID})
		}
	}
	ok := map[string]bool{}
	for _, j := range Throttle(ring.MaxConcurrent, out, pending) {
		ok[j.AssetID] = true // item IDs stand in for asset IDs here
	}
	stale := false
	for _, it := range w.Items {
		if it.State == ItemPending && (it.PlannedEnd == nil || !it.PlannedEnd.After(r.now) ||
			(it.SlotEnd != nil && !it.SlotEnd.After(r.now.Add(time.Minute)))) {
			stale = true
		}
	}
	if stale {
		cal, err := r.calendar()
		if err != nil {
			return err
		}
		info, err := r.assetInfo(ctx, w.Items)
		if err != nil {
			return err
		}
		if _, err := r.s.planWave(cal, ring, w, info, r.ro.ChangeType, r.now, true); err != nil {
			return r.block(ctx, wi, fmt.Sprintf("ring %s cannot be planned: %v", ring.Name, err))
		}
	}
	// live is the change's live install jobs by asset, read once for the
	// wave when the first job is to be queued; batch the items whose jobs
	// are queued together.
	var (
		live  map[string][]fleet.JobStatus
		batch []Item
	)
	for i := range w.Items {
		it := w.Items[i]
		switch {
		case it.Kind == ItemManual && it.State == ItemPending:
			it.State = ItemOpen
			if it.StartedAt == nil {
				now := r.now
				it.StartedAt = &now
			}
			due := ""
			if it.Due != nil {
				due = ", due " + it.Due.Format(time.RFC3339)
			}
			e := r.s.entry(r.ro, it, Engine.Actor.Name, EventManualOpen, "", it.Task+" (owner "+it.Owner+due+")")
			if err := r.saveItem(ctx, it, nil, e); err != nil {
				return err
			}
		case it.Kind == ItemAgent && it.State == ItemPending && ok[it.ID]:
			if live == nil {
				jobs, err := r.jobsOf(ctx)
				if err != nil {
					return err
				}
				live = map[string][]fleet.JobStatus{}
				for _, j := range jobs {
					if j.Kind == agentapi.JobInstall && !j.State.Finished() && j.State != fleet.JobCancelled {
						live[j.AssetID] = append(live[j.AssetID], j)
					}
				}
			}
			batch = append(batch, it)
			if len(batch) == jobBatch {
				if err := r.queueJobs(ctx, batch, live); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
	}
	if len(batch) > 0 {
		return r.queueJobs(ctx, batch, live)
	}
	return nil
}

// jobBatch is how many jobs one transaction queues: a wave of thousands
// goes out in a few dozen commits, each short enough not to hold the
// SQLite writer, with the lease checked between them.
const jobBatch = 250

// queueJobs creates (or adopts) the items' install jobs and records them
// on the items. A job of this change for the asset that is still live
// (live: by asset) and starts when the item was planned to is adopted
// rather than duplicated: it is what a replica that stopped between
// creating the job and recording it left behind.
func (r *run) queueJobs(ctx context.Context, items []Item, live map[string][]fleet.JobStatus) error {
	jobs := make([]fleet.Job, len(items))
	var (
		specs []fleet.JobSpec
		need  []int
	)
	for i, it := range items {
		for _, j := range live[it.AssetID] {
			if j.AgentID == it.AgentID && it.PlannedStart != nil && j.NotBefore.Equal(it.PlannedStart.Truncate(time.Microsecond)) {
				d, err := r.s.fleet.Job(ctx, j.ID)
				if err != nil {
					return err
				}
				jobs[i] = d.Job
			}
		}
		if jobs[i].ID != "" {
			continue
		}
		nb := *it.PlannedStart
		deadline := nb.Add(fleet.DefaultJobDeadline)
		if it.SlotEnd != nil {
			deadline = *it.SlotEnd
		}
		specs = append(specs, fleet.JobSpec{AgentID: it.AgentID, ChangeID: r.ro.ChangeID,
			Kind: agentapi.JobInstall, Emergency: r.ro.Emergency, Packages: it.Packages,
			PreChecks: []agentapi.Check{{Kind: "pkg_lock_free"}}, NotBefore: &nb, Deadline: &deadline})
		need = append(need, i)
	}
	if len(specs) > 0 {
		if err := r.hold(ctx); err != nil {
			return err
		}
		created, err := r.s.fleet.CreateJobs(ctx, Engine.Actor, specs)
		if je := (*fleet.JobError)(nil); errors.As(err, &je) && je.Index < len(need) {
			return fmt.Errorf("queue the job for asset %s: %w", items[need[je.Index]].AssetName, je.Err)
		} else if err != nil {
			return fmt.Errorf("queue the jobs for %d assets: %w", len(specs), err)
		}
		for k, i := range need {
			jobs[i] = created[k]
		}
	}
	logs := make([]LogEntry, len(items))
	for i := range items {
		it, job := &items[i], jobs[i]
		it.JobID, it.State, it.Attempts = job.ID, ItemQueued, it.Attempts+1
		it.Outcome, it.StartedAt, it.FinishedAt = "", nil, nil
		logs[i] = r.s.entry(r.ro, *it, Engine.Actor.Name, EventJobQueued, "",
			fmt.Sprintf("attempt %d, not before %s, deadline %s", it.Attempts, job.NotBefore.Format(time.RFC3339), job.Deadline.Format(time.RFC3339)))
		logs[i].JobID = job.ID
	}
	return r.saveItems(ctx, items, logs)
}

// cancelQueued cancels every job still waiting for its agent; a job the
// agent already runs is left to finish (its result is recorded).
func (r *run) cancelQueued(ctx context.Context, actor audit.Actor, reason string) error {
	for wi := range r.ro.Waves {
		for _, it := range r.ro.Waves[wi].Items {
			if it.State != ItemQueued || it.JobID == "" {
				continue
			}
			if err := r.hold(ctx); err != nil {
				return err
			}
			if _, err := r.s.fleet.CancelJob(ctx, actor, it.JobID, reason); err != nil && errs.KindOf(err) != errs.Conflict {
				return err
			} else if err != nil {
				continue // started or finished meanwhile: the next sync records it
			}
			it.State, it.Outcome = ItemCancelled, "cancelled: "+reason
			now := r.now
			it.FinishedAt = &now
			e := r.s.entry(r.ro, it, actor.Name, EventCancelled, "cancelled", reason)
			e.JobID = it.JobID
			if err := r.saveItem(ctx, it, nil, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// halt stops the rollout: queued jobs are cancelled, the current wave and
// the change halt, and when the policy says rollback.auto_on_halt (and a
// gate halted it) the changed assets are rolled back.
func (r *run) halt(ctx context.Context, reason string, u change.User, byGate bool) error {
	if err := r.cancelQueued(ctx, u.Actor, "rollout halted: "+reason); err != nil {
		return err
	}
	var waves []int
	if wi := r.ro.current(); wi >= 0 {
		now := r.now
		w := &r.ro.Waves[wi]
		w.State, w.FinishedAt = WaveHalted, &now
		if byGate {
			w.Verdict, w.Reason, w.DecidedAt = Halt, reason, &now
		}
		waves = append(waves, wi)
	}
	r.ro.State, r.ro.Reason = RolloutHalted, reason
	if err := r.saveState(ctx, audit.Record{Actor: u.Actor, Action: "rollout.halt", ObjectType: "rollout", ObjectID: r.ro.ID,
		After: map[string]any{"state": RolloutHalted, "by_gate": byGate}, Reason: reason}, waves...); err != nil {
		return err
	}
	if err := r.changeTo(ctx, u, change.Halted, reason); err != nil {
		return err
	}
	if byGate {
		body := fmt.Sprintf("The rollout of change %s halted: %s\n\nQueued jobs were cancelled.", r.ro.ChangeID, reason)
		if r.pol.Policy().Rollback.AutoOnHalt {
			body += " Rollback jobs are going out to the assets already changed, and manual rollback tasks for those changed by hand (policy rollback.auto_on_halt)."
		} else {
			body += " Nothing was rolled back: an operator resumes, rolls back or aborts."
		}
		r.s.notify(ctx, "Rollout of change "+r.ro.ChangeID+" halted", body)
	}
	if byGate && r.pol.Policy().Rollback.AutoOnHalt {
		return r.rollback(ctx, Engine, "automatic rollback (policy rollback.auto_on_halt): "+reason)
	}
	return nil
}

// stopForChange stops a running rollout whose change left in_progress
// outside the engine: queued jobs are cancelled and the rollout halts (the
// change was halted: an operator may resume or roll back) or ends (the
// change was cancelled, rolled back or completed by hand).
func (r *run) stopForChange(ctx context.Context, st change.State) error {
	reason := fmt.Sprintf("the change is %s; the rollout issues no further jobs", st)
	if err := r.cancelQueued(ctx, Engine.Actor, reason); err != nil {
		return err
	}
	now := r.now
	var waves []int
	if wi := r.ro.current(); wi >= 0 {
		r.ro.Waves[wi].State, r.ro.Waves[wi].FinishedAt = WaveHalted, &now
		waves = append(waves, wi)
	}
	r.ro.State, r.ro.Reason = RolloutHalted, reason
	if st != change.Halted {
		r.ro.State, r.ro.FinishedAt = RolloutAborted, &now
	}
	return r.saveState(ctx, audit.Record{Actor: Engine.Actor, Action: "rollout.halt", ObjectType: "rollout", ObjectID: r.ro.ID,
		After: map[string]any{"state": r.ro.State, "change_state": st}, Reason: reason}, waves...)
}

// notify sends a message after the state it reports is committed. A relay
// that is down must not stop the engine: the failure is logged, and the
// audit trail holds the event either way.
func (s *Rollouts) notify(ctx context.Context, subject, body string) {
	if s.opt.Notifier == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.opt.Notifier.Notify(ctx, subject, body); err != nil {
		s.log.ErrorContext(ctx, "could not send a rollout notification", "subject", subject, "err", err)
	}
}

// changeTo moves the change toward want (halted, in progress, rolled back,
// cancelled) through the change service, doing nothing when it is there.
func (r *run) changeTo(ctx context.Context, u change.User, want change.State, why string) error {
	c, err := r.s.changes.Get(ctx, r.ro.ChangeID)
	if err != nil {
		return err
	}
	if c.State == want {
		return nil
	}
	if err := r.hold(ctx); err != nil {
		return err
	}
	st := change.Step{Why: why}
	switch want {
	case change.Halted:
		_, err = r.s.changes.Halt(ctx, u, c.ID, st)
	case change.InProgress:
		_, err = r.s.changes.Resume(ctx, u, c.ID, st)
	case change.RolledBack:
		_, err = r.s.changes.RollBack(ctx, u, c.ID, st)
	case change.Cancelled:
		if c.State == change.InProgress {
			if _, err = r.s.changes.Halt(ctx, u, c.ID, st); err != nil {
				return err
			}
		}
		_, err = r.s.changes.Cancel(ctx, u, c.ID, st)
	}
	return err
}

// rollback cancels queued jobs and sends rollback jobs to every asset the
// rollout changed (its install succeeded and nothing rolled it back yet);
// the rollout is rolling back until they all report.
func (r *run) rollback(ctx context.Context, u change.User, reason string) error {
	if err := r.cancelQueued(ctx, u.Actor, "rollout rolling back: "+reason); err != nil {
		return err
	}
	r.ro.State, r.ro.Reason = RolloutRollingBack, reason
	if err := r.saveState(ctx, audit.Record{Actor: u.Actor, Action: "rollout.rollback", ObjectType: "rollout", ObjectID: r.ro.ID,
		After: map[string]any{"state": RolloutRollingBack, "assets": r.changedCount()}, Reason: reason}); err != nil {
		return err
	}
	return r.sendRollbacks(ctx, u, reason)
}

func (r *run) changedCount() int {
	n := 0
	for _, w := range r.ro.Waves {
		for _, it := range w.Items {
			if it.changed() && it.RollbackState == RollbackNone {
				n++
			}
		}
	}
	return n
}

// changed reports whether the item changed its asset: an agent's job
// succeeded, or a person recorded the manual task done. A failed item
// changed nothing and needs no rollback.
func (it Item) changed() bool {
	return (it.Kind == ItemAgent && it.State == ItemSucceeded) || (it.Kind == ItemManual && it.State == ItemDone)
}

// ManualRollbackTask is the task a person is given to roll back a manual
// item that was done by hand: its owner is the rollback plan's (else the
// item's, else the requester), its text the previous versions to return
// to, as far as the inventory knew them, and the rollback plan's steps.
func ManualRollbackTask(c change.Change, it Item) (owner, task string) {
	owner = firstOf(c.RollbackPlan.Owner, it.Owner, c.RequestedBy)
	var b strings.Builder
	b.WriteString("Roll back by hand")
	if len(it.Packages) > 0 {
		back := make([]string, len(it.Packages))
		for i, p := range it.Packages {
			if v := it.Previous[p.Name]; v != "" {
				back[i] = p.Name + " to " + v
			} else {
				back[i] = p.Name + " to its previous version (not known to the inventory)"
			}
		}
		b.WriteString(": return " + strings.Join(back, ", "))
	} else if it.Task != "" {
		b.WriteString(": undo \"" + it.Task + "\"")
	}
	if steps := c.RollbackPlan.Steps; len(steps) > 0 {
		b.WriteString(". Rollback plan: ")
		for i, st := range steps {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%d. %s", i+1, st)
		}
	} else {
		b.WriteString(". The change's rollback plan names no steps")
	}
	b.WriteString(". Record the outcome.")
	return owner, b.String()
}

// sendRollbacks queues a rollback job for each changed asset without one,
// at the asset's next window slot (any time for an approved emergency
// under an immediate emergency window), naming the versions the inventory
// showed before the rollout; a package that was not installed then is
// left for the agent's journal to resolve. A manual item done by hand
// gets a manual rollback task instead (openRollbackTask).
func (r *run) sendRollbacks(ctx context.Context, u change.User, reason string) error {
	cal, err := r.calendar()
	if err != nil {
		return err
	}
	for wi := range r.ro.Waves {
		for _, it := range r.ro.Waves[wi].Items {
			if !it.changed() || it.RollbackState != RollbackNone {
				continue
			}
			if it.Kind == ItemManual {
				if err := r.openRollbackTask(ctx, u, it, reason); err != nil {
					return err
				}
				continue
			}
			info, err := r.s.store.AssetInfo(ctx, []string{it.AssetID})
			if err != nil {
				return err
			}
			slot, err := cal.NextSlot(calendarAsset(info[0], map[string]*time.Location{}), r.ro.ChangeType, r.now, r.s.opt.JobDuration)
			if err != nil {
				return fmt.Errorf("plan the rollback of asset %s: %w", it.AssetName, err)
			}
			nb := slot.Start
			deadline := nb.Add(fleet.DefaultJobDeadline)
			if !slot.End.IsZero() {
				deadline = slot.End
			}
			pkgs := make([]agentapi.JobPackage, len(it.Packages))
			for i, p := range it.Packages {
				pkgs[i] = agentapi.JobPackage{Name: p.Name, TargetVersion: it.Previous[p.Name]}
			}
			if err := r.hold(ctx); err != nil {
				return err
			}
			job, err := r.s.fleet.CreateJob(ctx, u.Actor, fleet.JobSpec{AgentID: it.AgentID, ChangeID: r.ro.ChangeID,
				Kind: agentapi.JobRollback, Emergency: r.ro.Emergency, Packages: pkgs, NotBefore: &nb, Deadline: &deadline})
			if err != nil {
				return fmt.Errorf("queue the rollback job for asset %s: %w", it.AssetName, err)
			}
			it.RollbackJobID, it.RollbackState = job.ID, RollbackQueued
			e := r.s.entry(r.ro, it, userName(u), EventRollback, "rollback", reason)
			e.JobID, e.Packages = job.ID, pkgs
			if err := r.saveItem(ctx, it, nil, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// openRollbackTask gives a manual item done by hand its rollback task
// (ManualRollbackTask): its rollback is queued until a person records
// the outcome (RecordManual), which the rollout waits for.
func (r *run) openRollbackTask(ctx context.Context, u change.User, it Item, reason string) error {
	if r.change == nil {
		c, err := r.s.changes.Get(ctx, r.ro.ChangeID)
		if err != nil {
			return err
		}
		r.change = &c
	}
	owner, task := ManualRollbackTask(*r.change, it)
	it.RollbackState = RollbackQueued
	e := r.s.entry(r.ro, it, userName(u), EventRollback, "rollback", "manual rollback task for "+owner+": "+task+" ("+reason+")")
	return r.saveItem(ctx, it, &audit.Record{Actor: u.Actor, Action: "rollout.manual_rollback_open", ObjectType: "rollout", ObjectID: r.ro.ID,
		After: map[string]any{"item": it.ID, "asset_id": it.AssetID, "owner": owner, "task": task}, Reason: reason}, e)
}

// rollingBack finishes a rollback once every job out has reported: the
// rollout and the change are rolled back, unless a rollback failed, which
// leaves both halted for an operator with the assets named.
func (r *run) rollingBack(ctx context.Context) error {
	if err := r.sendRollbacks(ctx, Engine, r.ro.Reason); err != nil {
		return err
	}
	var failed []string
	for _, w := range r.ro.Waves {
		for _, it := range w.Items {
			// An open manual task waits too: whoever holds it may have
			// applied the change already, and the rollout must not read
			// rolled back until they say whether they did.
			if it.State == ItemQueued || it.State == ItemRunning || it.State == ItemOpen ||
				it.RollbackState == RollbackQueued || it.RollbackState == RollbackRunning {
				return nil // still waiting
			}
			if it.RollbackState == RollbackFailed {
				failed = append(failed, it.AssetName)
			}
		}
	}
	now := r.now
	if len(failed) > 0 {
		r.ro.State = RolloutHalted
		r.ro.Reason = fmt.Sprintf("rollback failed on %d assets (%s); restore them by hand or roll back again", len(failed), strings.Join(failed, ", "))
		if err := r.saveState(ctx, audit.Record{Actor: Engine.Actor, Action: "rollout.rollback_failed", ObjectType: "rollout",
			ObjectID: r.ro.ID, After: map[string]any{"state": r.ro.State, "failed": failed}, Reason: r.ro.Reason}); err != nil {
			return err
		}
		r.s.notify(ctx, "Rollback of change "+r.ro.ChangeID+" failed", "The rollback of change "+r.ro.ChangeID+" failed: "+r.ro.Reason)
		return nil
	}
	var waves []int
	for i := range r.ro.Waves {
		w := &r.ro.Waves[i]
		switch {
		case w.StartedAt != nil:
			w.State = WaveRolledBack
		default:
			w.State = WaveSkipped
		}
		if w.FinishedAt == nil {
			w.FinishedAt = &now
		}
		waves = append(waves, i)
	}
	reason := r.ro.Reason
	r.ro.State, r.ro.FinishedAt = RolloutRolledBack, &now
	if err := r.saveState(ctx, audit.Record{Actor: Engine.Actor, Action: "rollout.rolled_back", ObjectType: "rollout", ObjectID: r.ro.ID,
		After: map[string]any{"state": RolloutRolledBack}, Reason: reason}, waves...); err != nil {
		return err
	}
	return r.changeTo(ctx, Engine, change.RolledBack, reason)
}

// complete completes the change once every wave passed. The change's own
// guards still apply: if one blocks (a missing sign-off, an emergency's
// post-incident review), the rollout waits in awaiting_completion, says
// why, and tries again on every tick.
func (r *run) complete(ctx context.Context) error {
	c, err := r.s.changes.Get(ctx, r.ro.ChangeID)
	if err != nil {
		return err
	}
	if c.State != change.Completed {
		if err := r.hold(ctx); err != nil {
			return err
		}
		_, err = r.s.changes.Complete(ctx, Engine, c.ID, change.Step{Why: "every wave of the rollout passed its gate"})
	}
	now := r.now
	if err != nil {
		if errs.KindOf(err) != errs.Conflict {
			return err
		}
		reason := "every wave passed; the change cannot complete yet: " + errs.Public(err)
		if r.ro.State == RolloutAwaitingCompletion && r.ro.Reason == reason {
			return nil
		}
		r.ro.State, r.ro.Reason = RolloutAwaitingCompletion, reason
		return r.saveState(ctx, audit.Record{Actor: Engine.Actor, Action: "rollout.awaiting_completion", ObjectType: "rollout",
			ObjectID: r.ro.ID, After: map[string]any{"state": r.ro.State}, Reason: reason})
	}
	r.ro.State, r.ro.Reason, r.ro.FinishedAt = RolloutCompleted, "every wave passed its gate", &now
	return r.saveState(ctx, audit.Record{Actor: Engine.Actor, Action: "rollout.complete", ObjectType: "rollout", ObjectID: r.ro.ID,
		After: map[string]any{"state": RolloutCompleted}, Reason: r.ro.Reason})
}
