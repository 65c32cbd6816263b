package deploy

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/patchward/patchward/internal/agent"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/policy"
)

// genPolicyWindow draws a maintenance window for the policy file.
func genPolicyWindow(t *rapid.T, name string, emergency bool) map[string]any {
	sched := rapid.SampledFrom([]string{
		"FREQ=DAILY", "FREQ=WEEKLY;BYDAY=SU", "FREQ=WEEKLY;BYDAY=SA,SU", "FREQ=WEEKLY;BYDAY=MO,WE,FR",
		"FREQ=MONTHLY;BYDAY=2TU", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TH",
	}).Draw(t, name+"schedule")
	w := map[string]any{
		"name":     name,
		"schedule": sched,
		"start":    fmt.Sprintf("%02d:%02d", rapid.SampledFrom([]int{0, 1, 2, 3, 21, 22, 23, rapid.IntRange(0, 23).Draw(t, name+"h")}).Draw(t, name+"hh"), rapid.SampledFrom([]int{0, 30}).Draw(t, name+"m")),
		"duration": rapid.SampledFrom([]string{"1h", "2h", "3h30m", "6h", "1d", "26h"}).Draw(t, name+"duration"),
		"time_zone": rapid.SampledFrom([]string{"site", "site", "Europe/Berlin", "Australia/Lord_Howe"}).
			Draw(t, name+"zone"),
		"emergency": emergency,
	}
	if sched == "FREQ=MONTHLY;BYDAY=2TU" {
		w["offset_days"] = rapid.IntRange(-3, 3).Draw(t, name+"offset")
	}
	return w
}

// genFreezes draws up to three freezes around 2026-2027.
func genFreezes(t *rapid.T) []map[string]any {
	n := rapid.IntRange(0, 3).Draw(t, "freezes")
	out := []map[string]any{}
	for i := range n {
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rapid.IntRange(0, 700).Draw(t, "freezeFrom"))
		to := from.AddDate(0, 0, rapid.IntRange(0, 20).Draw(t, "freezeDays"))
		out = append(out, map[string]any{"name": fmt.Sprintf("f%d", i), "from": from.Format(time.DateOnly),
			"to": to.Format(time.DateOnly), "reason": "test"})
	}
	return out
}

// TestPlanProperty is the must-hold: for random windows, zones,
// freezes, waves and start times, no planned job starts (or runs) outside
// a window the asset may use unless the change is an approved emergency
// under "immediate", none runs on a frozen day unless it is an emergency,
// and no site runs more jobs at once than the cap. The checks use
// independent oracles: the agent's own window check for weekly specs,
// policy.Window.Slots for policy windows, and plain date comparison for
// freezes.
func TestPlanProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		windows := []map[string]any{
			genPolicyWindow(t, "base", false),
			genPolicyWindow(t, "other", false),
			genPolicyWindow(t, "emergency", true),
		}
		emWindow := rapid.SampledFrom([]string{"emergency", "other", policy.WindowImmediate}).Draw(t, "emergencyWindow")
		freezes := genFreezes(t)
		pol := testPolicy(t, windows, freezes, emWindow)
		calZone := zone(t, rapid.SampledFrom(testZones).Draw(t, "calendarZone"))
		cal, err := NewCalendar(pol, calZone)
		if err != nil {
			t.Fatal(err)
		}
		change := rapid.SampledFrom([]string{policy.ChangeStandard, policy.ChangeNormal, policy.ChangeEmergency}).Draw(t, "change")
		var wave []Asset
		for i := range rapid.IntRange(1, 8).Draw(t, "size") {
			a := Asset{ID: fmt.Sprintf("a%d", i), Site: rapid.SampledFrom([]string{"north", "south"}).Draw(t, "site")}
			switch rapid.IntRange(0, 3).Draw(t, "windowKind") {
			case 0:
				a.Window = genSpec(t)
			case 1:
				a.Window = rapid.SampledFrom([]string{"base", "other", "emergency"}).Draw(t, "named")
			case 2:
				a.Window = "" // baseline
			case 3:
				a.Window = genSpec(t)
				a.Location = zone(t, rapid.SampledFrom(testZones).Draw(t, "assetZone"))
			}
			wave = append(wave, a)
		}
		dur := time.Duration(rapid.SampledFrom([]int{1, 15, 45, 60, 90, 180}).Draw(t, "minutes")) * time.Minute
		maxc := rapid.IntRange(0, 3).Draw(t, "maxConcurrent")
		from := genTime(t, "from")

		plan, err := cal.Plan(wave, dur, from, PlanOptions{ChangeType: change, MaxConcurrent: maxc})
		if errors.Is(err, ErrNoSlot) {
			return // a job longer than every occurrence (possible with 1h windows)
		}
		if err != nil {
			t.Fatalf("Plan: %v", err)
		}
		if len(plan) != len(wave) {
			t.Fatalf("Plan gave %d starts for %d assets", len(plan), len(wave))
		}
		p := pol.Policy()
		emergency := change == policy.ChangeEmergency
		for i, ps := range plan {
			a := wave[i]
			loc := cal.loc(a)
			if ps.AssetID != a.ID {
				t.Fatalf("plan[%d] is %s; want %s", i, ps.AssetID, a.ID)
			}
			if ps.Start.Before(from) {
				t.Fatalf("%s starts %s, before %s", a.ID, ps.Start, from)
			}
			if emergency && emWindow == policy.WindowImmediate {
				continue
			}
			// Every minute of the job lies in a window the asset may use.
			var inside []func(time.Time) bool
			own := a.Window
			if own == "" {
				own = "base"
			}
			inside = append(inside, windowOracle(t, pol, own, loc))
			if emergency {
				for _, w := range p.Windows {
					if w.Emergency || w.Name == emWindow {
						inside = append(inside, windowOracle(t, pol, w.Name, loc))
					}
				}
			}
			for at := ps.Start; at.Before(ps.End); at = at.Add(time.Minute) {
				ok := false
				for _, in := range inside {
					ok = ok || in(at)
				}
				if !ok {
					t.Fatalf("%s (%q in %s): job %s–%s runs outside its windows at %s", a.ID, a.Window, loc,
						fmtT(ps.Start, loc), fmtT(ps.End, loc), fmtT(at, loc))
				}
				if !emergency {
					day := at.In(loc).Format(time.DateOnly)
					for _, f := range p.Freezes {
						if day >= f.From && day <= f.To {
							t.Fatalf("%s: job %s–%s runs on %s, frozen by %s (%s..%s)", a.ID,
								fmtT(ps.Start, loc), fmtT(ps.End, loc), day, f.Name, f.From, f.To)
						}
					}
				}
			}
		}
		// Each asset gets its earliest start given the jobs placed before
		// it: NextSlot and a plain walk over those jobs say the same.
		for i, ps := range plan {
			if want := earliestStart(t, cal, wave, plan[:i], i, change, dur, from, maxc); !want.Equal(ps.Start) {
				t.Fatalf("%s starts %s; the earliest free start is %s", ps.AssetID, ps.Start, want)
			}
		}
		if maxc > 0 {
			for _, x := range plan {
				n := 0
				for j, y := range plan {
					if wave[j].Site == wave[indexOf(plan, x.AssetID)].Site && !y.Start.After(x.Start) && y.End.After(x.Start) {
						n++
					}
				}
				if n > maxc {
					t.Fatalf("%d jobs at once at %s on %s's site; cap %d", n, x.Start, x.AssetID, maxc)
				}
			}
		}
	})
}

// earliestStart is the reference planner for one asset: the first window
// slot at or after from where the site has room, found by walking every
// earlier job.
func earliestStart(t *rapid.T, cal *Calendar, wave []Asset, before []PlannedStart, i int, change string, dur time.Duration, from time.Time, maxc int) time.Time {
	a := wave[i]
	at := from
	for {
		s, err := cal.NextSlot(a, change, at, dur)
		if err != nil {
			t.Fatalf("NextSlot %s: %v", a.ID, err)
		}
		var free time.Time
		n := 0
		for j, p := range before {
			if wave[j].Site == a.Site && p.Start.Before(s.Start.Add(dur)) && p.End.After(s.Start) {
				n++
				if free.IsZero() || p.End.Before(free) {
					free = p.End
				}
			}
		}
		if maxc == 0 || n < maxc {
			return s.Start
		}
		at = free
	}
}

func indexOf(plan []PlannedStart, id string) int {
	for i, p := range plan {
		if p.AssetID == id {
			return i
		}
	}
	return -1
}

// windowOracle says whether an instant is inside the window an asset
// names, computed without the calendar: the agent's check for a weekly
// spec, policy.Window.Slots for a policy window.
func windowOracle(t *rapid.T, pol *policy.Compiled, name string, loc *time.Location) func(time.Time) bool {
	if w, ok := pol.Window(name); ok {
		return func(at time.Time) bool {
			slots, err := w.Slots(loc, at.Add(-8*24*time.Hour), at.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range slots {
				if !at.Before(s.Start) && at.Before(s.End) {
					return true
				}
			}
			return false
		}
	}
	ref, err := fleet.ParseWindowRef(name, loc.String())
	if err != nil {
		t.Fatalf("window %q: %v", name, err)
	}
	sched, err := agent.ParseWindow(*ref)
	if err != nil {
		t.Fatal(err)
	}
	return sched.Contains
}
