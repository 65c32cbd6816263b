package risk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
)

// PolicySource gives the policy in force and its version (0 for the
// built-in default).
type PolicySource interface {
	Current(ctx context.Context) (*policy.Compiled, policy.Version, error)
}

// IntelSource looks up what the feeds say about a vulnerability. ok is false
// until advisory data has been loaded: scoring before then would record
// every finding as unexploited and then "re-prioritise" all of them.
type IntelSource interface {
	Intel(id string, aliases []string) (in match.Intel, ok bool)
}

// TargetChecker confirms an exception's target exists (errs.NotFound if not).
type TargetChecker interface {
	CheckTarget(ctx context.Context, scope, id string) error
}

// Engine is the audit actor for priority changes the engine makes itself.
var Engine = audit.Actor{Kind: audit.ActorSystem, Name: "patchward risk engine"}

// Service scores findings, keeps their SLA clocks and manages exceptions.
type Service struct {
	store    Store
	policies PolicySource
	intel    IntelSource
	targets  TargetChecker
	now      func() time.Time
	log      *slog.Logger
	// mu runs one recompute at a time in this process; across replicas a
	// concurrent recompute computes the same records from the same data.
	mu sync.Mutex
	// changed hears of exception decisions that need a re-score.
	changed func(assetID string)
	// recomputed hear of each recompute that wrote records.
	recomputed []func(ctx context.Context, assetID string, sum Summary)
}

// Options configure a Service.
type Options struct {
	Targets TargetChecker
	Now     func() time.Time
	Log     *slog.Logger
}

// NewService returns a Service.
func NewService(store Store, policies PolicySource, intel IntelSource, o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Service{store: store, policies: policies, intel: intel, targets: o.Targets, now: o.Now, log: o.Log}
}

// OnChange registers fn to hear of assets whose findings need re-scoring
// after an exception decision ("" means every asset). fn must not block.
func (s *Service) OnChange(fn func(assetID string)) { s.changed = fn }

// Summary counts what a recompute did.
type Summary struct {
	Assessed int `json:"assessed"`
	// Changed counts records written; Events priority history entries.
	Changed int `json:"changed"`
	Events  int `json:"events"`
	// Reprioritized counts findings whose tier became more urgent.
	Reprioritized     int  `json:"reprioritized"`
	ExceptionsExpired int  `json:"exceptions_expired"`
	Skipped           bool `json:"skipped,omitempty"`
}

// batchSize bounds one write transaction, so a full recompute never holds
// the SQLite writer for long.
const batchSize = 1000

// OnRecompute registers fn to run after each recompute that wrote records,
// whoever asked for it (the watcher, the API, the CLI): what depends on
// findings' tiers, such as the rating of the changes that fix them,
// follows. assetID is the recompute's asset, "" for the estate. Register
// before the service is used.
func (s *Service) OnRecompute(fn func(ctx context.Context, assetID string, sum Summary)) {
	s.recomputed = append(s.recomputed, fn)
}

// Recompute re-scores the findings of one asset ("" for the whole estate)
// under the policy in force, moves SLA clocks, records why, and expires
// exceptions that have run out.
func (s *Service) Recompute(ctx context.Context, assetID string) (Summary, error) {
	sum, err := s.recompute(ctx, assetID)
	if err == nil && sum.Changed > 0 {
		for _, fn := range s.recomputed {
			fn(ctx, assetID, sum)
		}
	}
	return sum, err
}

func (s *Service) recompute(ctx context.Context, assetID string) (Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum Summary
	if _, ok := s.intel.Intel("", nil); !ok {
		sum.Skipped = true
		return sum, nil
	}
	pol, ver, err := s.policies.Current(ctx)
	if err != nil {
		return sum, fmt.Errorf("recompute risk: %w", err)
	}
	now := s.now().UTC()
	if sum.ExceptionsExpired, err = s.expireDue(ctx, pol, now); err != nil {
		return sum, err
	}
	active, err := s.store.Exceptions(ctx, ExceptionFilter{State: ExceptionApproved})
	if err != nil {
		return sum, fmt.Errorf("recompute risk: %w", err)
	}
	ended := map[string]*Exception{}
	rn, err := newRun(pol, ver.Version, now)
	if err != nil {
		return sum, fmt.Errorf("recompute risk: %w", err)
	}
	b := &batch{svc: s, assetID: assetID, version: ver.Version}
	err = s.store.EachSubject(ctx, assetID, func(sub Subject) error {
		rec, ev, err := s.assess(ctx, rn, sub, active, ended)
		if err != nil {
			return err
		}
		sum.Assessed++
		if sub.Record != nil && sameRecord(*sub.Record, rec) {
			return nil
		}
		b.records = append(b.records, rec)
		if ev != nil {
			b.events = append(b.events, *ev)
			if sub.Record != nil && rec.Assessment.Rank < sub.Record.Assessment.Rank {
				sum.Reprioritized++
			}
		}
		if len(b.records) >= batchSize {
			return b.flush(ctx, &sum)
		}
		return nil
	})
	if err != nil {
		return sum, fmt.Errorf("recompute risk: %w", err)
	}
	if err := b.flush(ctx, &sum); err != nil {
		return sum, fmt.Errorf("recompute risk: %w", err)
	}
	return sum, nil
}

// run is what one recompute shares across findings.
type run struct {
	pol      *policy.Compiled
	version  int
	assessor *Assessor
	// orgLoc is the policy's zone, for assets whose site names none.
	orgLoc *time.Location
	locs   map[string]*time.Location
	now    time.Time
}

func newRun(pol *policy.Compiled, version int, now time.Time) (*run, error) {
	a, err := NewAssessor(pol)
	if err != nil {
		return nil, err
	}
	r := &run{pol: pol, version: version, assessor: a, orgLoc: time.UTC, locs: map[string]*time.Location{}, now: now}
	if tz := pol.Policy().Organization.TimeZone; tz != "" {
		if l, err := time.LoadLocation(tz); err == nil {
			r.orgLoc = l
		}
	}
	return r, nil
}

func (r *run) location(tz string) *time.Location {
	if tz == "" {
		return r.orgLoc
	}
	if l, ok := r.locs[tz]; ok {
		return l
	}
	l, err := time.LoadLocation(tz)
	if err != nil {
		l = r.orgLoc
	}
	r.locs[tz] = l
	return l
}

// assess computes one finding's record.
func (s *Service) assess(ctx context.Context, r *run, sub Subject, active []Exception, ended map[string]*Exception) (Record, *Event, error) {
	now := r.now
	f := sub.Finding
	in := Input{Facts: policy.Facts{Asset: sub.Asset}}
	intel, _ := s.intel.Intel(f.VulnID, f.AdvisoryIDs)
	in.Facts.Vuln = vulnFacts(f, intel)
	if intel.KEV != nil {
		if !intel.KEV.DateAdded.IsZero() {
			in.KEVDateAdded = &intel.KEV.DateAdded
		}
		if !intel.KEV.DueDate.IsZero() {
			in.KEVDueDate = &intel.KEV.DueDate
		}
	}
	in.Facts.Finding = policy.FindingFacts{Ecosystem: f.Ecosystem, Package: f.Package, Version: f.Version,
		FixAvailable: f.FixedVersion != "" || f.FixNote != "", AgeDays: now.Sub(f.FirstSeen).Hours() / 24}
	cover := Covering(active, sub, now)
	if cover != nil {
		for _, c := range cover.Controls {
			in.Facts.Finding.Controls = append(in.Facts.Finding.Controls, c.Kind)
		}
	}
	a, err := r.assessor.Assess(in)
	if err != nil {
		return Record{}, nil, fmt.Errorf("assess finding %s: %w", f.ID, err)
	}
	ci := ClockInput{Prev: sub.Record, Finding: f, Assessment: a, Exception: cover, PolicyVersion: r.version,
		Policy: r.pol, Location: r.location(sub.TimeZone), Now: now}
	if cover == nil && sub.Record != nil && sub.Record.ExceptionID != "" {
		// The exception that covered it has ended: the clock restarts
		// from when it ended.
		e, ok := ended[sub.Record.ExceptionID]
		if !ok {
			if got, err := s.store.GetException(ctx, sub.Record.ExceptionID); err == nil {
				e = &got
			}
			ended[sub.Record.ExceptionID] = e
		}
		ci.Exception = e
	}
	rec, ev := NextRecord(ci)
	return normalize(rec), ev, nil
}

func vulnFacts(f match.Finding, in match.Intel) policy.VulnFacts {
	v := policy.VulnFacts{ID: f.VulnID, Aliases: f.AdvisoryIDs, KEV: f.KEV || in.KEV != nil, EPSS: f.EPSS}
	if in.CVSS != nil {
		v.CVSS, v.CVSSVector = in.CVSS.Score, in.CVSS.Vector
		v.CVSSVersion = cvssVersion(in.CVSS.Type, in.CVSS.Vector)
	}
	if in.KEV != nil {
		v.Ransomware = in.KEV.KnownRansomware
	}
	if in.EPSS != nil {
		v.EPSS, v.EPSSPercentile = max(v.EPSS, in.EPSS.Score), in.EPSS.Percentile
	}
	return v
}

// cvssVersion names the CVSS version from the vector's prefix.
func cvssVersion(typ, vector string) string {
	switch {
	case strings.HasPrefix(vector, "CVSS:4.0"):
		return "4.0"
	case strings.HasPrefix(vector, "CVSS:3.1"):
		return "3.1"
	case strings.HasPrefix(vector, "CVSS:3.0"):
		return "3.0"
	case typ == "CVSS_V2" || vector != "":
		return "2.0"
	}
	return ""
}

// normalize puts every time in UTC at microsecond precision, as storage
// returns them, so an unchanged record compares equal to its stored self.
func normalize(r Record) Record {
	t := func(p *time.Time) {
		if !p.IsZero() {
			*p = p.UTC().Truncate(time.Microsecond)
		}
	}
	tp := func(p **time.Time) {
		if *p != nil {
			v := **p
			t(&v)
			*p = &v
		}
	}
	t(&r.FirstSeen)
	t(&r.ClockStart)
	t(&r.DueAt)
	t(&r.DueSoonAt)
	t(&r.ComputedAt)
	tp(&r.FixAvailableAt)
	tp(&r.ResolvedAt)
	tp(&r.Assessment.AbsoluteDue)
	return r
}

// sameRecord reports whether a recompute changed nothing but the time of
// computing.
func sameRecord(old, new Record) bool {
	old, new = normalize(old), normalize(new)
	old.ComputedAt, new.ComputedAt = time.Time{}, time.Time{}
	a, err1 := json.Marshal(old)
	b, err2 := json.Marshal(new)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// batch collects records and events for one write transaction.
type batch struct {
	svc     *Service
	assetID string
	version int
	records []Record
	events  []Event
}

// eventNote is one re-prioritisation in the audit entry of a batch.
type eventNote struct {
	FindingID string    `json:"finding_id"`
	Tier      string    `json:"tier"`
	Status    string    `json:"status"`
	DueAt     time.Time `json:"due_at,omitzero"`
	Reason    string    `json:"reason"`
}

func (b *batch) flush(ctx context.Context, sum *Summary) error {
	if len(b.records) == 0 {
		return nil
	}
	// First assessments are counted; every later change is listed with
	// its reason, so the audit trail says why each deadline moved.
	var notes []eventNote
	first := 0
	tiers := map[string]int{}
	for _, e := range b.events {
		tiers[e.Tier]++
	}
	known := map[string]bool{}
	for _, r := range b.records {
		known[r.FindingID] = r.ComputedAt.IsZero()
	}
	for _, e := range b.events {
		if strings.HasPrefix(e.Reason, "first assessed") {
			first++
			continue
		}
		notes = append(notes, eventNote{FindingID: e.FindingID, Tier: e.Tier, Status: e.Status, DueAt: e.DueAt, Reason: e.Reason})
	}
	obj := b.assetID
	if obj == "" {
		obj = "estate"
	}
	err := b.svc.store.Transact(ctx, func(tx Tx) error {
		if err := tx.PutRecords(ctx, b.records); err != nil {
			return err
		}
		if err := tx.AddEvents(ctx, b.events); err != nil {
			return err
		}
		if len(b.events) == 0 {
			return nil
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: Engine, Action: "risk.reprioritize", ObjectType: "findings", ObjectID: obj,
			After: map[string]any{"policy_version": b.version, "records": len(b.records), "first_assessed": first,
				"by_tier": tiers, "changes": notes},
			Reason: "risk scores and SLA due dates recomputed"})
	})
	if err != nil {
		return err
	}
	sum.Changed += len(b.records)
	sum.Events += len(b.events)
	b.records, b.events = b.records[:0], b.events[:0]
	return nil
}

// Inputs fingerprints what every record depends on beyond each finding and
// its asset: the policy version in force and the advisory index (when the
// IntelSource can name its version). The watcher skips a periodic pass over
// the estate while it is unchanged.
func (s *Service) Inputs(ctx context.Context) (string, error) {
	_, ver, err := s.policies.Current(ctx)
	if err != nil {
		return "", err
	}
	fp := fmt.Sprintf("policy %d %s", ver.Version, ver.SHA256)
	if v, ok := s.intel.(interface{ IntelVersion() string }); ok {
		fp += " intel " + v.IntelVersion()
	} else {
		// Without a version the intelligence may have changed at any time.
		fp += " intel " + s.now().String()
	}
	return fp, nil
}

// ExpireDue ends approved exceptions whose expiry has passed and reports
// how many ended.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return 0, err
	}
	return s.expireDue(ctx, pol, s.now().UTC())
}

// expireDue ends approved exceptions whose expiry has passed.
func (s *Service) expireDue(ctx context.Context, pol *policy.Compiled, now time.Time) (int, error) {
	due, err := s.store.Exceptions(ctx, ExceptionFilter{State: ExceptionApproved, ExpiringBy: &now})
	if err != nil {
		return 0, fmt.Errorf("expire exceptions: %w", err)
	}
	n := 0
	for _, e := range due {
		err := s.store.Transact(ctx, func(tx Tx) error {
			cur, err := tx.LockException(ctx, e.ID)
			if err != nil {
				return err
			}
			next, ok := Expire(cur, now)
			if !ok {
				return nil
			}
			if err := tx.PutException(ctx, next); err != nil {
				return err
			}
			n++
			return tx.AppendAudit(ctx, audit.Record{Actor: Engine, Action: "exception.expire", ObjectType: "exception",
				ObjectID: e.ID, Before: cur, After: next, Reason: "the exception reached its expiry date; its findings are open again and their clocks restart"})
		})
		if err != nil {
			return n, fmt.Errorf("expire exception %s: %w", e.ID, err)
		}
	}
	return n, nil
}

// Worklist lists records, most urgent first. Status, SLA, sort and tier
// are checked here, so every surface refuses a misspelt one the same way.
func (s *Service) Worklist(ctx context.Context, f WorklistFilter) (WorklistPage, error) {
	if f.Now.IsZero() {
		f.Now = s.now()
	}
	switch f.Status {
	case "", "all", StatusOpen, StatusExcepted, StatusFixed, StatusNotAffected:
	default:
		return WorklistPage{}, errs.E(errs.Invalid, "status must be one of open, excepted, fixed, not_affected, all")
	}
	switch f.SLA {
	case "", SLABreached, SLADueSoon, SLAOnTrack, SLAExcepted, SLAAwaitingFix:
	default:
		return WorklistPage{}, errs.E(errs.Invalid, "sla must be one of breached, due_soon, on_track, excepted, awaiting_fix")
	}
	switch f.Sort {
	case "", "score", "due":
	default:
		return WorklistPage{}, errs.E(errs.Invalid, "sort must be score or due")
	}
	if f.Tier != "" {
		// Tiers are the policy's own names: a misspelt one would quietly
		// list nothing, so name the ones that exist.
		pol, _, err := s.policies.Current(ctx)
		if err != nil {
			return WorklistPage{}, fmt.Errorf("worklist: %w", err)
		}
		if _, _, ok := pol.TierByName(f.Tier); !ok {
			var names []string
			for _, t := range pol.Policy().Risk.Tiers {
				names = append(names, t.Name)
			}
			return WorklistPage{}, errs.E(errs.Invalid, "tier %q is not a tier of the policy in force; its tiers are %s", f.Tier, strings.Join(names, ", "))
		}
	}
	return s.store.Worklist(ctx, f)
}

// Explanation is everything behind one finding's priority: the record, the
// factors, and the history of its tier and due date.
type Explanation struct {
	Record  Record  `json:"record"`
	SLA     string  `json:"sla"`
	History []Event `json:"history"`
}

// Explain returns a finding's priority with its reasons.
func (s *Service) Explain(ctx context.Context, findingID string) (Explanation, error) {
	r, err := s.store.GetRecord(ctx, findingID)
	if err != nil {
		return Explanation{}, err
	}
	h, err := s.store.History(ctx, findingID)
	if err != nil {
		return Explanation{}, err
	}
	return Explanation{Record: r, SLA: SLAState(r, s.now()), History: h}, nil
}
