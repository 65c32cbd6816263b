package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// riskT0 is the tests' "now": times are whole microseconds, as PostgreSQL
// keeps them.
var riskT0 = time.Date(2026, 11, 23, 9, 0, 0, 123456000, time.UTC)

func ptr[T any](v T) *T { return &v }

// riskEstate is a small estate for the risk tests: two sites in different
// zones, a group, and assets with tags and groups.
type riskEstate struct {
	site1, site2 inventory.Site
	group        inventory.Group
	lis, pump    inventory.Asset
	inv          *inventory.Service
}

func seedRiskEstate(t *testing.T, db *store.DB) riskEstate {
	t.Helper()
	ctx := context.Background()
	inv := inventory.NewService(db.Inventory(), fixedClock())
	var (
		e   = riskEstate{inv: inv}
		err error
	)
	if e.site1, err = inv.CreateSite(ctx, admin, inventory.Site{Name: "Main Clinic", TimeZone: "America/Chicago"}); err != nil {
		t.Fatalf("CreateSite: %v", err)
	}
	if e.site2, err = inv.CreateSite(ctx, admin, inventory.Site{Name: "Berlin Lab", TimeZone: "Europe/Berlin"}); err != nil {
		t.Fatalf("CreateSite: %v", err)
	}
	if e.group, err = inv.CreateGroup(ctx, admin, inventory.Group{Name: "Lab systems"}); err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if e.lis, err = inv.CreateAsset(ctx, admin, inventory.Asset{Name: "LIS-01", Type: inventory.TypeServer,
		Make: "Dell", Model: "R650", OSName: "Debian", SiteID: e.site1.ID, NetworkZone: "lab",
		Exposure: inventory.ExposureInternal, Criticality: inventory.LevelCritical, HandlesPHI: true,
		SafetyImpact: inventory.SafetyHigh, Tags: []string{"tier1", "lis"}, Groups: []string{e.group.ID}}); err != nil {
		t.Fatalf("CreateAsset: %v", err)
	}
	if e.pump, err = inv.CreateAsset(ctx, admin, inventory.Asset{Name: "Pump-7", Type: inventory.TypeIoMT,
		Make: "Acme", Model: "Infuse", SiteID: e.site2.ID, Exposure: inventory.ExposureClinicalVLAN,
		Criticality: inventory.LevelHigh, RegulatedDevice: true, SafetyImpact: inventory.SafetyDirect,
		Restriction: inventory.RestrictionVendorOnly}); err != nil {
		t.Fatalf("CreateAsset: %v", err)
	}
	return e
}

// putFindings stores findings as the matcher would.
func putFindings(t testing.TB, db *store.DB, fs ...match.Finding) {
	t.Helper()
	ctx := context.Background()
	var c match.Changes
	for _, f := range fs {
		c.Changes = append(c.Changes, match.Change{Kind: match.ChangeOpen, After: f})
	}
	if err := db.Findings().Transact(ctx, func(tx match.FindingsTx) error { return tx.ApplyChanges(ctx, c) }); err != nil {
		t.Fatalf("store findings: %v", err)
	}
}

func testFinding(assetID, pkg, vuln string, state match.State) match.Finding {
	f := match.Finding{AssetID: assetID, Ecosystem: "Debian:12", Package: pkg, Version: "1.0-1", VulnID: vuln,
		FixedVersion: "1.0-2", Source: match.SourceOSV, State: state, FirstSeen: riskT0.Add(-30 * 24 * time.Hour),
		LastSeen: riskT0, EPSS: 0.25}
	f.ID = match.FindingID(assetID, f.Key(), vuln)
	if state == match.StateFixed {
		f.FixedAt = ptr(riskT0.Add(-time.Hour))
	}
	return f
}

// fullRecord sets every field, pointers and zero-able times included.
func fullRecord(f match.Finding) risk.Record {
	abs := riskT0.Add(21 * 24 * time.Hour)
	return risk.Record{
		FindingID: f.ID, AssetID: f.AssetID, VulnID: f.VulnID, Status: risk.StatusFixed,
		Assessment: risk.Assessment{Mode: policy.ModeSSVC, Score: 87.5, Tier: "critical", Rank: 0,
			Factors: []risk.Factor{{Name: "cvss", Input: "9.8 (3.1)", Points: 39.2}, {Name: "segmentation", Input: "yes", Points: -10, Note: "compensating control"}},
			SSVC: &risk.SSVCDecision{Table: "cisa-deployer", Exploitation: "active", Automatable: "yes", TechnicalImpact: "total",
				Mission: "high", Outcome: "act", Why: map[string]string{"exploitation": "listed in CISA KEV"}},
			Band: "kev", Classes: []string{"patient-care"}, Target: policy.Duration{Days: 14, Exact: 6 * time.Hour},
			TargetText: "14d6h", TargetWhy: "tier critical", AbsoluteDue: &abs, DueSoon: policy.Duration{Exact: 72 * time.Hour}},
		PolicyVersion: 3, FirstSeen: f.FirstSeen, FixAvailableAt: ptr(f.FirstSeen.Add(time.Hour)),
		ClockStart: f.FirstSeen.Add(time.Hour), ClockBasis: risk.BasisFixAvailable, DueAt: abs, DueReason: "KEV due date",
		DueSoonAt: abs.Add(-72 * time.Hour), ExceptionID: "exc-1", KEV: true, EPSS: 0.97,
		ResolvedAt: ptr(riskT0.Add(-time.Hour)), TimeToRemediate: ptr(29*24*time.Hour + 1234567*time.Microsecond), MetSLA: ptr(true),
		ComputedAt: riskT0,
	}
}

func putRecords(t testing.TB, db *store.DB, rs ...risk.Record) {
	t.Helper()
	ctx := context.Background()
	err := db.Risk().Transact(ctx, func(tx risk.Tx) error {
		if err := tx.PutRecords(ctx, rs); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: audit.Actor{Kind: audit.ActorSystem}, Action: "risk.assess", ObjectType: "finding", ObjectID: "batch"})
	})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
}

func TestRiskRecordsConformance(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seedRiskEstate(t, db)
		f1 := testFinding(e.lis.ID, "openssl", "CVE-2026-0001", match.StateFixed)
		f2 := testFinding(e.lis.ID, "sope", "CVE-2026-0002", match.StateOpen)
		putFindings(t, db, f1, f2)

		full := fullRecord(f1)
		// A clock not started: no fix yet, no due date, no pointers.
		bare := risk.Record{FindingID: f2.ID, AssetID: f2.AssetID, VulnID: f2.VulnID, Status: risk.StatusOpen,
			Assessment:    risk.Assessment{Mode: policy.ModeScore, Score: 12, Tier: "low", Rank: 3, Factors: []risk.Factor{}},
			PolicyVersion: 1, FirstSeen: f2.FirstSeen, ClockBasis: risk.BasisAwaitingFix, ComputedAt: riskT0}
		putRecords(t, db, full, bare)
		for _, want := range []risk.Record{full, bare} {
			got, err := db.Risk().GetRecord(ctx, want.FindingID)
			if err != nil {
				t.Fatalf("GetRecord(%s): %v", want.FindingID, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("GetRecord(%s) (-want +got):\n%s", want.FindingID, diff)
			}
		}
		if _, err := db.Risk().GetRecord(ctx, "nope"); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("GetRecord(unknown) = %v; want NotFound", err)
		}

		// Upsert: the record is replaced, including a time going back to
		// NULL; the last of two records for one finding in a call wins.
		upd := full
		upd.Status, upd.ResolvedAt, upd.TimeToRemediate, upd.MetSLA = risk.StatusOpen, nil, nil, nil
		upd.DueSoonAt, upd.Assessment.Score = time.Time{}, 91
		stale := upd
		stale.Assessment.Score = 1
		putRecords(t, db, stale, upd)
		got, err := db.Risk().GetRecord(ctx, full.FindingID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(upd, got); diff != "" {
			t.Errorf("record after upsert (-want +got):\n%s", diff)
		}

		// History: oldest first, whatever order it was written in.
		evs := []risk.Event{
			{FindingID: f1.ID, At: riskT0, Tier: "critical", Score: 91, DueAt: riskT0.Add(time.Hour), Status: risk.StatusOpen, Reason: "KEV listed", PolicyVersion: 3},
			{FindingID: f1.ID, At: riskT0.Add(-48 * time.Hour), Tier: "low", Score: 12, Status: risk.StatusOpen, Reason: "first assessed", PolicyVersion: 2},
			{FindingID: f2.ID, At: riskT0, Tier: "low", Score: 12, Status: risk.StatusOpen, Reason: "first assessed", PolicyVersion: 3},
		}
		err = db.Risk().Transact(ctx, func(tx risk.Tx) error { return tx.AddEvents(ctx, evs) })
		if err != nil {
			t.Fatalf("AddEvents: %v", err)
		}
		hist, err := db.Risk().History(ctx, f1.ID)
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		if diff := cmp.Diff([]risk.Event{evs[1], evs[0]}, hist); diff != "" {
			t.Errorf("History (-want +got):\n%s", diff)
		}
		if hist, err := db.Risk().History(ctx, "none"); err != nil || len(hist) != 0 {
			t.Errorf("History(unknown) = %v, %v; want empty", hist, err)
		}
	})
}

func TestRiskEachSubject(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seedRiskEstate(t, db)
		doomed, err := e.inv.CreateAsset(ctx, admin, inventory.Asset{Name: "Old PC", Type: inventory.TypeEndpoint,
			Exposure: inventory.ExposureInternal, Criticality: inventory.LevelLow})
		if err != nil {
			t.Fatal(err)
		}
		type tc struct {
			f      match.Finding
			status string // the stored record's status; "" for none
			want   bool
		}
		cases := map[string]tc{
			"open, never assessed":           {f: testFinding(e.lis.ID, "a", "CVE-1", match.StateOpen), want: true},
			"open, record open":              {f: testFinding(e.lis.ID, "b", "CVE-2", match.StateOpen), status: risk.StatusOpen, want: true},
			"open again, record fixed":       {f: testFinding(e.lis.ID, "c", "CVE-3", match.StateOpen), status: risk.StatusFixed, want: true},
			"open, record excepted":          {f: testFinding(e.pump.ID, "d", "CVE-4", match.StateOpen), status: risk.StatusExcepted, want: true},
			"fixed, never assessed":          {f: testFinding(e.lis.ID, "e", "CVE-5", match.StateFixed), want: true},
			"fixed, record still open":       {f: testFinding(e.pump.ID, "f", "CVE-6", match.StateFixed), status: risk.StatusOpen, want: true},
			"fixed, record excepted":         {f: testFinding(e.pump.ID, "g", "CVE-7", match.StateFixed), status: risk.StatusExcepted, want: true},
			"fixed, record final":            {f: testFinding(e.lis.ID, "h", "CVE-8", match.StateFixed), status: risk.StatusFixed},
			"not affected, never assessed":   {f: testFinding(e.pump.ID, "i", "CVE-9", match.StateNotAffected), want: true},
			"not affected, record final":     {f: testFinding(e.pump.ID, "j", "CVE-10", match.StateNotAffected), status: risk.StatusNotAffected},
			"not affected, record open":      {f: testFinding(e.pump.ID, "k", "CVE-11", match.StateNotAffected), status: risk.StatusOpen, want: true},
			"open, asset deleted":            {f: testFinding(doomed.ID, "l", "CVE-12", match.StateOpen)},
			"open, asset deleted, assessed":  {f: testFinding(doomed.ID, "m", "CVE-13", match.StateOpen), status: risk.StatusOpen},
			"fixed, asset deleted, assessed": {f: testFinding(doomed.ID, "n", "CVE-14", match.StateFixed), status: risk.StatusOpen},
		}
		var (
			fs      []match.Finding
			recs    []risk.Record
			byID    = map[string]string{}
			records = map[string]risk.Record{}
		)
		for name, c := range cases {
			fs = append(fs, c.f)
			byID[c.f.ID] = name
			if c.status != "" {
				r := fullRecord(c.f)
				r.Status = c.status
				recs = append(recs, r)
				records[c.f.ID] = r
			}
		}
		putFindings(t, db, fs...)
		putRecords(t, db, recs...)
		if err := e.inv.DeleteAsset(ctx, admin, doomed.ID, "decommissioned"); err != nil {
			t.Fatalf("DeleteAsset: %v", err)
		}

		got := map[string]risk.Subject{}
		if err := db.Risk().EachSubject(ctx, "", func(s risk.Subject) error {
			name := byID[s.Finding.ID]
			if _, dup := got[name]; dup {
				t.Errorf("EachSubject: %s twice", name)
			}
			got[name] = s
			return nil
		}); err != nil {
			t.Fatalf("EachSubject: %v", err)
		}
		var wantNames, gotNames []string
		for name, c := range cases {
			if c.want {
				wantNames = append(wantNames, name)
			}
		}
		for name := range got {
			gotNames = append(gotNames, name)
		}
		slices.Sort(wantNames)
		slices.Sort(gotNames)
		if diff := cmp.Diff(wantNames, gotNames); diff != "" {
			t.Errorf("EachSubject findings (-want +got):\n%s", diff)
		}

		// The subject carries the finding, the asset facts, the site's
		// zone and the stored record as they are.
		lisFacts := policy.AssetFacts{ID: e.lis.ID, Name: "LIS-01", Type: string(inventory.TypeServer), Site: e.site1.ID,
			NetworkZone: "lab", Exposure: string(inventory.ExposureInternal), Criticality: string(inventory.LevelCritical),
			SafetyImpact: string(inventory.SafetyHigh), DataClass: string(inventory.ClassPHI), PHI: true,
			Restriction: string(inventory.RestrictionNone), OSName: "Debian", Make: "Dell", Model: "R650",
			Tags: []string{"lis", "tier1"}, Groups: []string{e.group.ID}}
		c := cases["open, record open"]
		want := risk.Subject{Finding: c.f, Asset: lisFacts, TimeZone: "America/Chicago", Record: ptr(records[c.f.ID])}
		if diff := cmp.Diff(want, got["open, record open"]); diff != "" {
			t.Errorf("subject (-want +got):\n%s", diff)
		}
		if s := got["open, never assessed"]; s.Record != nil {
			t.Errorf("never-assessed subject has record %+v; want nil", s.Record)
		}
		pump := got["open, record excepted"]
		if pump.TimeZone != "Europe/Berlin" || pump.Asset.Tags != nil || pump.Asset.Groups != nil ||
			!pump.Asset.RegulatedDevice || pump.Asset.Restriction != string(inventory.RestrictionVendorOnly) ||
			pump.Asset.SafetyImpact != string(inventory.SafetyDirect) {
			t.Errorf("pump subject = %+v, zone %q; want Berlin, no tags or groups, regulated, vendor-only, direct patient care", pump.Asset, pump.TimeZone)
		}

		// One asset.
		var one []string
		if err := db.Risk().EachSubject(ctx, e.pump.ID, func(s risk.Subject) error {
			if s.Asset.ID != e.pump.ID {
				t.Errorf("EachSubject(pump) gave a finding of asset %s", s.Asset.ID)
			}
			one = append(one, byID[s.Finding.ID])
			return nil
		}); err != nil {
			t.Fatalf("EachSubject(pump): %v", err)
		}
		if len(one) != 5 {
			t.Errorf("EachSubject(pump) = %v; want the 5 pump findings to assess", one)
		}

		// The callback's error stops the stream and is returned as is.
		stop := errors.New("stop")
		n := 0
		if err := db.Risk().EachSubject(ctx, "", func(risk.Subject) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Errorf("EachSubject with a failing callback = %v after %d calls; want stop after 1", err, n)
		}
	})
}

func TestRiskWorklist(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seedRiskEstate(t, db)
		now := riskT0
		day := 24 * time.Hour
		type row struct {
			asset  inventory.Asset
			name   string
			status string
			score  float64
			tier   string
			due    time.Duration // from now; 0: no clock
			soon   time.Duration // due soon window before due
			met    *bool
		}
		rows := []row{
			{e.lis, "breached", risk.StatusOpen, 90, "critical", -day, 3 * day, nil},
			{e.lis, "due-soon", risk.StatusOpen, 70, "high", 2 * day, 3 * day, nil},
			{e.pump, "on-track", risk.StatusOpen, 70, "high", 10 * day, 3 * day, nil},
			{e.pump, "awaiting", risk.StatusOpen, 95, "critical", 0, 0, nil},
			{e.lis, "due-now", risk.StatusOpen, 40, "medium", 0 * day, 3 * day, nil}, // due exactly now: due soon
			{e.pump, "excepted", risk.StatusExcepted, 99, "critical", -5 * day, 3 * day, nil},
			{e.lis, "fixed-met", risk.StatusFixed, 50, "medium", -2 * day, 3 * day, ptr(true)},
			{e.pump, "fixed-missed", risk.StatusFixed, 60, "high", -9 * day, 3 * day, ptr(false)},
			{e.lis, "vex", risk.StatusNotAffected, 10, "low", 4 * day, 3 * day, nil},
		}
		var (
			fs   []match.Finding
			recs []risk.Record
			ids  = map[string]string{}
		)
		for i, r := range rows {
			st := match.StateOpen
			switch r.status {
			case risk.StatusFixed:
				st = match.StateFixed
			case risk.StatusNotAffected:
				st = match.StateNotAffected
			}
			f := testFinding(r.asset.ID, "pkg-"+r.name, fmt.Sprintf("CVE-2026-%04d", i), st)
			fs = append(fs, f)
			ids[f.ID] = r.name
			rec := risk.Record{FindingID: f.ID, AssetID: f.AssetID, VulnID: f.VulnID, Status: r.status,
				Assessment: risk.Assessment{Mode: policy.ModeScore, Score: r.score, Tier: r.tier}, PolicyVersion: 1,
				FirstSeen: f.FirstSeen, ClockBasis: risk.BasisAwaitingFix, MetSLA: r.met, ComputedAt: now}
			if r.name != "awaiting" {
				rec.ClockStart, rec.ClockBasis = f.FirstSeen, risk.BasisFirstSeen
				rec.DueAt = now.Add(r.due)
				rec.DueSoonAt = rec.DueAt.Add(-r.soon)
			}
			recs = append(recs, rec)
		}
		// A record whose finding row is missing is still listed.
		putFindings(t, db, fs...)
		putRecords(t, db, recs...)

		list := func(f risk.WorklistFilter) ([]string, risk.WorklistPage) {
			t.Helper()
			if f.Now.IsZero() {
				f.Now = now
			}
			p, err := db.Risk().Worklist(ctx, f)
			if err != nil {
				t.Fatalf("Worklist(%+v): %v", f, err)
			}
			var out []string
			for _, it := range p.Items {
				out = append(out, ids[it.FindingID])
			}
			return out, p
		}
		for _, tc := range []struct {
			name string
			f    risk.WorklistFilter
			want []string
		}{
			{"default: open by score", risk.WorklistFilter{}, []string{"awaiting", "breached", "due-soon", "on-track", "due-now"}},
			{"by due date, no clock last", risk.WorklistFilter{Sort: "due"}, []string{"breached", "due-now", "due-soon", "on-track", "awaiting"}},
			{"all statuses", risk.WorklistFilter{Status: "all"}, []string{"excepted", "awaiting", "breached", "due-soon", "on-track", "fixed-missed", "fixed-met", "due-now", "vex"}},
			{"all by due", risk.WorklistFilter{Status: "all", Sort: "due"}, []string{"fixed-missed", "excepted", "fixed-met", "breached", "due-now", "due-soon", "vex", "on-track", "awaiting"}},
			{"status", risk.WorklistFilter{Status: risk.StatusFixed}, []string{"fixed-missed", "fixed-met"}},
			{"tier", risk.WorklistFilter{Tier: "high"}, []string{"due-soon", "on-track"}},
			{"asset", risk.WorklistFilter{AssetID: e.pump.ID}, []string{"awaiting", "on-track"}},
			{"site", risk.WorklistFilter{SiteID: e.site1.ID, Status: "all"}, []string{"breached", "due-soon", "fixed-met", "due-now", "vex"}},
			{"vuln", risk.WorklistFilter{VulnID: "CVE-2026-0002"}, []string{"on-track"}},
			{"breached", risk.WorklistFilter{SLA: risk.SLABreached}, []string{"breached"}},
			{"due soon", risk.WorklistFilter{SLA: risk.SLADueSoon}, []string{"due-soon", "due-now"}},
			{"on track", risk.WorklistFilter{SLA: risk.SLAOnTrack}, []string{"on-track"}},
			{"awaiting fix", risk.WorklistFilter{SLA: risk.SLAAwaitingFix}, []string{"awaiting"}},
			{"excepted", risk.WorklistFilter{SLA: risk.SLAExcepted}, []string{"excepted"}},
			{"met", risk.WorklistFilter{SLA: risk.SLAMet}, []string{"fixed-met"}},
			{"missed", risk.WorklistFilter{SLA: risk.SLAMissed}, []string{"fixed-missed"}},
			{"breached, later now", risk.WorklistFilter{SLA: risk.SLABreached, Now: now.Add(5 * day)}, []string{"breached", "due-soon", "due-now"}},
			{"breached and tier", risk.WorklistFilter{SLA: risk.SLABreached, Tier: "high"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, p := list(tc.f)
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Worklist (-want +got):\n%s", diff)
				}
				if p.Total != len(tc.want) {
					t.Errorf("Total = %d; want %d", p.Total, len(tc.want))
				}
			})
		}

		// Each item carries the finding, the asset and its SLA state.
		_, p := list(risk.WorklistFilter{Status: "all"})
		wantSLA := map[string]string{"breached": risk.SLABreached, "due-soon": risk.SLADueSoon, "on-track": risk.SLAOnTrack,
			"awaiting": risk.SLAAwaitingFix, "due-now": risk.SLADueSoon, "excepted": risk.SLAExcepted, "fixed-met": risk.SLAMet,
			"fixed-missed": risk.SLAMissed, "vex": ""}
		for _, it := range p.Items {
			name := ids[it.FindingID]
			if it.SLA != wantSLA[name] {
				t.Errorf("%s: SLA = %q; want %q", name, it.SLA, wantSLA[name])
			}
			// The SQL filter and the risk package agree on every state.
			if it.SLA != "" {
				f, _ := list(risk.WorklistFilter{Status: "all", SLA: it.SLA})
				if !slices.Contains(f, name) {
					t.Errorf("%s: state %s, but the %s filter lists %v", name, it.SLA, it.SLA, f)
				}
			}
		}
		it := p.Items[1] // awaiting, on the pump
		want := risk.WorklistItem{Record: recs[3], AssetName: "Pump-7", SiteID: e.site2.ID, Ecosystem: "Debian:12",
			Package: "pkg-awaiting", Version: "1.0-1", FixedVersion: "1.0-2", SLA: risk.SLAAwaitingFix}
		if diff := cmp.Diff(want, it); diff != "" {
			t.Errorf("worklist item (-want +got):\n%s", diff)
		}

		// Paging: limit, offset, total; defaults and the cap.
		got, p := list(risk.WorklistFilter{Status: "all", Limit: 2, Offset: 3})
		if want := []string{"due-soon", "on-track"}; !slices.Equal(got, want) || p.Total != 9 || p.Limit != 2 || p.Offset != 3 {
			t.Errorf("page 2 = %v, total %d, limit %d, offset %d; want %v, 9, 2, 3", got, p.Total, p.Limit, p.Offset, want)
		}
		if got, p := list(risk.WorklistFilter{Status: "all", Offset: 20}); len(got) != 0 || p.Total != 9 || p.Items == nil {
			t.Errorf("past the end = %v, total %d, items %v; want an empty page of 9", got, p.Total, p.Items)
		}
		if _, p := list(risk.WorklistFilter{}); p.Limit != 50 {
			t.Errorf("default limit = %d; want 50", p.Limit)
		}
		if _, p := list(risk.WorklistFilter{Limit: 5000}); p.Limit != 1000 {
			t.Errorf("limit 5000 = %d; want capped at 1000", p.Limit)
		}
		for _, f := range []risk.WorklistFilter{{Sort: "name"}, {SLA: "late"}} {
			if _, err := db.Risk().Worklist(ctx, f); !errors.Is(err, errs.ErrInvalid) {
				t.Errorf("Worklist(%+v) = %v; want Invalid", f, err)
			}
		}

		// The asset is deleted: its records stay listed, without a name.
		if err := e.inv.DeleteAsset(ctx, admin, e.pump.ID, "decommissioned"); err != nil {
			t.Fatal(err)
		}
		_, p = list(risk.WorklistFilter{AssetID: e.pump.ID})
		if p.Total != 2 || p.Items[0].AssetName != "" || p.Items[0].Package != "pkg-awaiting" {
			t.Errorf("after asset deletion: %+v; want 2 records, no asset name, finding still joined", p)
		}
	})
}

func TestRiskExceptionsConformance(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		rs := db.Risk()
		put := func(e risk.Exception) error {
			return rs.Transact(ctx, func(tx risk.Tx) error { return tx.PutException(ctx, e) })
		}
		ex := risk.Exception{ID: "exc-1", Scope: risk.ScopeAsset, Target: "asset-1", VulnID: "CVE-2026-0001",
			Decision: policy.DecisionMitigate, Reason: "FDA-cleared configuration; vendor patch due Q3",
			Controls: []risk.Control{{Kind: policy.ControlSegmentation, Description: "isolated VLAN 40", VerifiedAt: ptr(riskT0), VerifiedBy: "netops"},
				{Kind: policy.ControlMonitoring, Description: "IDS rule 2031"}},
			Owner: "Lab Director", State: risk.ExceptionRequested, RequestedBy: "alice", RequestedAt: riskT0,
			ExpiresAt: riskT0.Add(90 * 24 * time.Hour), NextReviewAt: riskT0.Add(30 * 24 * time.Hour),
			Revision: 1, UpdatedAt: riskT0}
		if err := put(ex); err != nil {
			t.Fatalf("PutException(new): %v", err)
		}
		got, err := rs.GetException(ctx, ex.ID)
		if err != nil {
			t.Fatalf("GetException: %v", err)
		}
		if diff := cmp.Diff(ex, got); diff != "" {
			t.Errorf("GetException (-want +got):\n%s", diff)
		}
		if _, err := rs.GetException(ctx, "nope"); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("GetException(unknown) = %v; want NotFound", err)
		}
		if err := put(ex); !errors.Is(err, errs.ErrConflict) {
			t.Errorf("PutException(revision 1 again) = %v; want Conflict", err)
		}

		// Approve: revision 2 under the row lock.
		approved := ex
		err = rs.Transact(ctx, func(tx risk.Tx) error {
			cur, err := tx.LockException(ctx, ex.ID)
			if err != nil {
				return err
			}
			approved = cur
			approved.State, approved.DecidedBy, approved.DecidedAt = risk.ExceptionApproved, "bob", ptr(riskT0.Add(time.Hour))
			approved.DecisionNote, approved.Revision, approved.UpdatedAt = "controls verified", cur.Revision+1, riskT0.Add(time.Hour)
			if err := tx.PutException(ctx, approved); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, audit.Record{Actor: admin, Action: "exception.approve", ObjectType: "exception", ObjectID: ex.ID})
		})
		if err != nil {
			t.Fatalf("approve: %v", err)
		}
		if got, _ := rs.GetException(ctx, ex.ID); !cmp.Equal(approved, got) {
			t.Errorf("after approval (-want +got):\n%s", cmp.Diff(approved, got))
		}
		if err := put(approved); !errors.Is(err, errs.ErrConflict) {
			t.Errorf("PutException(stale revision 2) = %v; want Conflict", err)
		}
		if err := put(risk.Exception{ID: "ghost", Scope: risk.ScopeFinding, Target: "f", State: risk.ExceptionApproved,
			RequestedAt: riskT0, UpdatedAt: riskT0, Revision: 2}); !errors.Is(err, errs.ErrConflict) {
			t.Errorf("PutException(unknown, revision 2) = %v; want Conflict", err)
		}
		err = rs.Transact(ctx, func(tx risk.Tx) error { _, err := tx.LockException(ctx, "nope"); return err })
		if !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("LockException(unknown) = %v; want NotFound", err)
		}

		// Two updates from the same revision at once: exactly one wins.
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			results = make([]error, 2)
		)
		for i := range 2 {
			wg.Go(func() {
				e := approved
				e.Revision, e.DecisionNote = approved.Revision+1, fmt.Sprintf("edit %d", i)
				<-start
				results[i] = put(e)
			})
		}
		close(start)
		wg.Wait()
		wins, conflicts := 0, 0
		for _, err := range results {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, errs.ErrConflict):
				conflicts++
			default:
				t.Errorf("concurrent PutException: %v", err)
			}
		}
		if wins != 1 || conflicts != 1 {
			t.Errorf("concurrent updates: %d won, %d conflicted (%v); want 1 and 1", wins, conflicts, results)
		}
		if got, _ := rs.GetException(ctx, ex.ID); got.Revision != 3 {
			t.Errorf("revision after the race = %d; want 3", got.Revision)
		}

		// Filters.
		mk := func(id, scope, target, state string, req, review, expires time.Duration) risk.Exception {
			return risk.Exception{ID: id, Scope: scope, Target: target, Decision: policy.DecisionAccept, Reason: "r",
				Owner: "o", State: state, RequestedBy: "alice", RequestedAt: riskT0.Add(req),
				NextReviewAt: riskT0.Add(review), ExpiresAt: riskT0.Add(expires), Revision: 1, UpdatedAt: riskT0}
		}
		day := 24 * time.Hour
		for _, e := range []risk.Exception{
			mk("exc-2", risk.ScopeGroup, "grp-1", risk.ExceptionApproved, day, 5*day, 60*day),
			mk("exc-3", risk.ScopeFinding, "f-1", risk.ExceptionApproved, 2*day, 40*day, 10*day),
			mk("exc-4", risk.ScopeAsset, "asset-1", risk.ExceptionRejected, 3*day, 1*day, 2*day),
			mk("exc-5", risk.ScopeAsset, "asset-2", risk.ExceptionRequested, 4*day, 1*day, 2*day),
		} {
			if err := put(e); err != nil {
				t.Fatalf("PutException(%s): %v", e.ID, err)
			}
		}
		ids := func(f risk.ExceptionFilter) []string {
			t.Helper()
			es, err := rs.Exceptions(ctx, f)
			if err != nil {
				t.Fatalf("Exceptions(%+v): %v", f, err)
			}
			var out []string
			for _, e := range es {
				out = append(out, e.ID)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			f    risk.ExceptionFilter
			want []string
		}{
			{"all, newest request first", risk.ExceptionFilter{}, []string{"exc-5", "exc-4", "exc-3", "exc-2", "exc-1"}},
			{"state", risk.ExceptionFilter{State: risk.ExceptionApproved}, []string{"exc-3", "exc-2", "exc-1"}},
			{"scope", risk.ExceptionFilter{Scope: risk.ScopeAsset}, []string{"exc-5", "exc-4", "exc-1"}},
			{"target", risk.ExceptionFilter{Scope: risk.ScopeAsset, Target: "asset-1"}, []string{"exc-4", "exc-1"}},
			{"review due", risk.ExceptionFilter{ReviewDueBy: ptr(riskT0.Add(30 * day))}, []string{"exc-2", "exc-1"}},
			{"review due, inclusive", risk.ExceptionFilter{ReviewDueBy: ptr(riskT0.Add(5 * day))}, []string{"exc-2"}},
			{"expiring", risk.ExceptionFilter{ExpiringBy: ptr(riskT0.Add(60 * day))}, []string{"exc-3", "exc-2"}},
			{"nothing expiring", risk.ExceptionFilter{ExpiringBy: ptr(riskT0)}, nil},
		} {
			if diff := cmp.Diff(tc.want, ids(tc.f)); diff != "" {
				t.Errorf("Exceptions %s (-want +got):\n%s", tc.name, diff)
			}
		}

		// Reviews, oldest first.
		revs := []risk.Review{
			{ExceptionID: ex.ID, At: riskT0.Add(60 * day), By: "carol", Outcome: "continue", Note: "VLAN ACL re-checked"},
			{ExceptionID: ex.ID, At: riskT0.Add(30 * day), By: "carol", Outcome: "continue"},
		}
		err = rs.Transact(ctx, func(tx risk.Tx) error {
			for _, r := range revs {
				if err := tx.AddReview(ctx, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("AddReview: %v", err)
		}
		gotRevs, err := rs.Reviews(ctx, ex.ID)
		if err != nil {
			t.Fatalf("Reviews: %v", err)
		}
		if diff := cmp.Diff([]risk.Review{revs[1], revs[0]}, gotRevs); diff != "" {
			t.Errorf("Reviews (-want +got):\n%s", diff)
		}
		err = rs.Transact(ctx, func(tx risk.Tx) error {
			return tx.AddReview(ctx, risk.Review{ExceptionID: "nope", At: riskT0, By: "x", Outcome: "continue"})
		})
		if !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("AddReview(unknown exception) = %v; want NotFound", err)
		}

		// Revoked: who ended it and why stay on the record.
		var revoked risk.Exception
		err = rs.Transact(ctx, func(tx risk.Tx) error {
			cur, err := tx.LockException(ctx, ex.ID)
			if err != nil {
				return err
			}
			revoked = cur
			revoked.State, revoked.EndedAt, revoked.EndedBy = risk.ExceptionRevoked, ptr(riskT0.Add(61*day)), "carol"
			revoked.EndNote, revoked.LastReviewedAt = "vendor patch released", ptr(riskT0.Add(60*day))
			revoked.Revision, revoked.UpdatedAt = cur.Revision+1, riskT0.Add(61*day)
			return tx.PutException(ctx, revoked)
		})
		if err != nil {
			t.Fatalf("revoke: %v", err)
		}
		if got, err := rs.GetException(ctx, ex.ID); err != nil || !cmp.Equal(revoked, got) {
			t.Errorf("after revocation (%v) (-want +got):\n%s", err, cmp.Diff(revoked, got))
		}
	})
}
