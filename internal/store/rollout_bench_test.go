package store_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/agentsim"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/deploy/deploytest"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// Rollout benchmark estate: assets spread over the sites of a hospital
// group, each with an enrolled agent that sent an inventory of
// benchRolloutPackages packages. The pilot ring takes two assets a site,
// which is rolloutPolicy's max_concurrent for it, so the whole first wave
// goes out at once; nothing is clinical (that ring is skipped) and every
// other asset is in the last ring.
const (
	benchRolloutSites    = 20
	benchRolloutPilots   = 2 // per site
	benchRolloutPackages = 100
	benchRolloutBatch    = 500 // assets stored per transaction
	benchRolloutPilot    = benchRolloutSites * benchRolloutPilots
)

// BenchmarkRollout measures the rollout engine on a real store for a
// normal change on 1,000 and 10,000 assets:
//
//   - start: Rollouts.Start, from a scheduled change to a running rollout
//     (targets expanded, rings assigned, every wave planned, items and
//     their log entries stored, the pilot's jobs queued);
//   - tick-idle: one Tick over the rollout while the pilot's jobs wait for
//     their agents, the cost the engine pays every 30 s in steady state;
//   - tick-next-wave: one Tick after every pilot job reported success and
//     the soak passed: results recorded, the gate passes the pilot and
//     the last ring's wave is planned and its jobs queued;
//   - tick-idle-wave-out: tick-idle with the last wave's jobs out, the
//     steady state of most of a big rollout.
//
// The estate is stored directly (enrollStored); the pilot's agents pull
// their jobs and report through the fleet service, as over the agent
// protocol. Setup and the clean-up between rounds (an Abort) are not
// timed; -benchtime 1x measures each step once.
func BenchmarkRollout(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(string(engine), func(b *testing.B) {
			for _, n := range []int{1000, 10_000} {
				b.Run(fmt.Sprintf("assets=%d", n), func(b *testing.B) {
					rb := newRolloutBench(b, storetest.Open(b, engine, store.Options{}), n)
					b.Run("start", rb.benchStart)
					b.Run("tick-idle", rb.benchTickIdle)
					b.Run("tick-next-wave", rb.benchTickNextWave)
					b.Run("tick-idle-wave-out", rb.benchTickIdleWaveOut)
				})
			}
		})
	}
}

// rolloutBench is one estate and the rollout under way on it.
type rolloutBench struct {
	w      *rolloutWorld
	assets int
	agents map[string]fleet.Agent // by ID, to pull and report as them
	ro     deploy.Rollout         // the active rollout, if any
	phase  benchPhase
}

// benchPhase is where the rollout under way stands.
type benchPhase int

const (
	phaseNone     benchPhase = iota
	phasePilot               // as Start left it: the pilot's jobs queued, none reported
	phaseLastWave            // the pilot passed and the last wave's jobs are queued
	phaseUsed                // anything else
)

func newRolloutBench(b *testing.B, db *store.DB, n int) *rolloutBench {
	b.Helper()
	ctx := context.Background()
	began := time.Now()
	rb := &rolloutBench{w: newRolloutWorld(b, db), assets: n, agents: make(map[string]fleet.Agent, n)}
	var sites []string
	for i := range benchRolloutSites {
		s, err := rb.w.inv.CreateSite(ctx, admin, inventory.Site{Name: fmt.Sprintf("Clinic %02d", i), TimeZone: "Europe/Berlin"})
		if err != nil {
			b.Fatal(err)
		}
		sites = append(sites, s.ID)
	}
	pkgs := benchInventory(b)
	for from := 0; from < n; from += benchRolloutBatch {
		if err := db.Fleet().Transact(ctx, func(tx fleet.Tx) error {
			for i := from; i < min(from+benchRolloutBatch, n); i++ {
				group := rb.w.rest
				if i < benchRolloutPilot {
					group = rb.w.pilot
				}
				ag, err := enrollStored(ctx, tx, rb.w.clk.now(), i, sites[i%len(sites)], group, pkgs)
				if err != nil {
					return err
				}
				rb.agents[ag.ID] = ag
			}
			return nil
		}); err != nil {
			b.Fatalf("store agents: %v", err)
		}
	}
	if err := db.Optimize(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("stored %d assets with agents and %d packages each in %v", n, len(pkgs), time.Since(began).Round(time.Millisecond))
	return rb
}

// enrollStored writes the rows fleet.Service.Enroll and a first check-in
// with an inventory leave for agent i (asset in its site, group and
// window; agent with facts and inventory; software), without the token
// and the audit entries. Enrolling through the service is quadratic in
// the assets (each enrollment scans them for candidates) and took over
// three minutes for 10,000 agents on SQLite.
func enrollStored(ctx context.Context, tx fleet.Tx, now time.Time, i int, site, group string, pkgs []agentapi.Package) (fleet.Agent, error) {
	host := fmt.Sprintf("ws-%05d.clinic.local", i)
	f := debianFacts(host)
	f.Serial = fmt.Sprintf("BENCH%05d", i)
	a := inventory.Asset{Name: fmt.Sprintf("ws-%05d", i), Type: fleet.AssetType(f), Hostname: host, Source: inventory.SourceAgent,
		SiteID: site, MaintenanceWindow: "clinic-hours", Groups: []string{group}, OSName: f.OSName, OSVersion: f.OSVersion,
		Serial: f.Serial, LastSeenAt: &now}
	a.Normalize()
	if err := a.Validate(); err != nil {
		return fleet.Agent{}, err
	}
	a.ID, a.CreatedAt, a.UpdatedAt, a.Revision = inventory.NewID(), now, now, 1
	if err := tx.InsertAsset(ctx, &a); err != nil {
		return fleet.Agent{}, err
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fleet.Agent{}, err
	}
	ag := fleet.Agent{ID: inventory.NewID(), AssetID: a.ID, PublicKey: pub, Hostname: host, OSID: f.OSID, AgentVersion: f.AgentVersion,
		ProtocolVersion: agentapi.ProtocolVersion, TokenID: "bench", EnrolledAt: now, LastCheckIn: &now,
		InventoryHash: agentapi.InventoryHash(pkgs), InventoryAt: &now, AssetRevision: a.Revision}
	if err := tx.InsertAgent(ctx, &ag); err != nil {
		return fleet.Agent{}, err
	}
	if err := tx.SetAgentFacts(ctx, ag.ID, f, nil, now); err != nil {
		return fleet.Agent{}, err
	}
	sw := make([]inventory.Software, len(pkgs))
	for k, p := range pkgs {
		sw[k] = inventory.Software{Name: p.Name, Version: p.Version, Arch: p.Arch, Ecosystem: p.Ecosystem, PURL: p.PURL,
			SourceName: p.SourceName, SourceVersion: p.SourceVersion}
	}
	return ag, tx.ReplaceAssetSoftware(ctx, a.ID, sw)
}

// benchInventory is the first benchRolloutPackages packages of the
// simulator's Debian 12 host, openssl among them.
func benchInventory(b *testing.B) []agentapi.Package {
	f, err := os.Open("../agentsim/testdata/debian12-dpkg-status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	all, err := agentsim.ParseDpkgStatus(f, "Debian:12", "debian-12")
	if err != nil {
		b.Fatal(err)
	}
	var out []agentapi.Package
	for i, p := range all {
		if i < benchRolloutPackages-1 || p.Name == "openssl" {
			out = append(out, p)
		}
	}
	return out
}

// newChange retires the rollout under way and schedules a new change.
func (rb *rolloutBench) newChange(b *testing.B) change.Change {
	b.Helper()
	rb.retire(b)
	return rb.w.scheduledChange(b)
}

// started checks what Start returned and makes it the rollout under way.
func (rb *rolloutBench) started(b *testing.B, ro deploy.Rollout, err error) {
	b.Helper()
	if err != nil {
		b.Fatalf("Start: %v", err)
	}
	rb.ro, rb.phase = ro, phasePilot
	rb.checkPilot(b)
}

// retire aborts the rollout under way, so each Tick sees one rollout.
func (rb *rolloutBench) retire(b *testing.B) {
	b.Helper()
	if rb.ro.ID == "" {
		return
	}
	if _, err := rb.w.rollouts.Abort(context.Background(), tech, rb.ro.ID, "benchmark: next round"); err != nil {
		b.Fatalf("Abort: %v", err)
	}
	rb.ro, rb.phase = deploy.Rollout{}, phaseNone
}

// ensure brings a rollout to phase p, starting a new one if need be.
func (rb *rolloutBench) ensure(b *testing.B, p benchPhase) {
	b.Helper()
	if rb.phase == p {
		return
	}
	c := rb.newChange(b)
	ro, err := rb.w.rollouts.Start(context.Background(), tech, c.ID, "benchmark")
	rb.started(b, ro, err)
	if p == phaseLastWave {
		rb.pilotSucceeds(b)
		rb.tick(b)
		rb.reload(b)
		rb.checkLastWave(b)
	}
}

func (rb *rolloutBench) tick(b *testing.B) {
	b.Helper()
	if err := rb.w.rollouts.Tick(context.Background()); err != nil {
		b.Fatalf("Tick: %v", err)
	}
}

// reload reads the rollout under way again and returns its revision.
func (rb *rolloutBench) reload(b *testing.B) int {
	b.Helper()
	ro, err := rb.w.rollouts.Get(context.Background(), rb.ro.ID)
	if err != nil {
		b.Fatal(err)
	}
	rb.ro = ro
	return ro.Revision
}

// checkPilot fails unless the rollout is as Start leaves it: the pilot
// running with a queued job per asset, the clinical ring skipped, the rest
// pending, and the fleet holding the pilot's jobs only.
func (rb *rolloutBench) checkPilot(b *testing.B) {
	b.Helper()
	ro := rb.ro
	if ro.State != deploy.RolloutRunning || len(ro.Waves) != 3 || ro.Waves[0].State != deploy.WaveRunning ||
		ro.Waves[1].State != deploy.WaveSkipped || ro.Waves[2].State != deploy.WavePending {
		b.Fatalf("rollout %s (%s); want running with the pilot running, clinical skipped, rest pending: %s", ro.State, ro.Reason, deploytest.Describe(ro))
	}
	if got := queuedItems(ro.Waves[0]); got != benchRolloutPilot {
		b.Fatalf("%d pilot items queued; want %d", got, benchRolloutPilot)
	}
	if got := len(ro.Waves[2].Items); got != rb.assets-benchRolloutPilot {
		b.Fatalf("%d items in the last wave; want %d", got, rb.assets-benchRolloutPilot)
	}
	if got := rb.jobs(b, ro.ChangeID); got != benchRolloutPilot {
		b.Fatalf("the fleet holds %d jobs of the change; want %d", got, benchRolloutPilot)
	}
}

// checkLastWave fails unless the pilot passed and every asset of the last
// wave has a queued job.
func (rb *rolloutBench) checkLastWave(b *testing.B) {
	b.Helper()
	ro := rb.ro
	if ro.State != deploy.RolloutRunning || ro.Waves[0].State != deploy.WavePassed || ro.Waves[2].State != deploy.WaveRunning {
		b.Fatalf("rollout %s (%s); want the pilot passed and the last wave running: %s", ro.State, ro.Reason, deploytest.Describe(ro))
	}
	if got := queuedItems(ro.Waves[2]); got != rb.assets-benchRolloutPilot {
		b.Fatalf("%d jobs of the last wave queued; want %d", got, rb.assets-benchRolloutPilot)
	}
	if got := rb.jobs(b, ro.ChangeID); got != rb.assets {
		b.Fatalf("the fleet holds %d jobs of the change; want %d", got, rb.assets)
	}
}

func queuedItems(w deploy.Wave) int {
	n := 0
	for _, it := range w.Items {
		if it.State == deploy.ItemQueued && it.JobID != "" {
			n++
		}
	}
	return n
}

func (rb *rolloutBench) jobs(b *testing.B, changeID string) int {
	b.Helper()
	p, err := rb.w.fleet.Jobs(context.Background(), fleet.JobFilter{ChangeID: changeID, Limit: 1})
	if err != nil {
		b.Fatal(err)
	}
	return p.Total
}

func (rb *rolloutBench) benchStart(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		c := rb.newChange(b)
		b.StartTimer()
		ro, err := rb.w.rollouts.Start(context.Background(), tech, c.ID, "benchmark")
		b.StopTimer()
		rb.started(b, ro, err)
		b.StartTimer()
	}
	b.ReportMetric(float64(benchRolloutPilot), "jobs/op")
	b.ReportMetric(float64(rb.assets), "items/op")
}

func (rb *rolloutBench) benchTickIdle(b *testing.B) {
	rb.benchIdle(b, phasePilot, rb.checkPilot, benchRolloutPilot)
}

func (rb *rolloutBench) benchTickIdleWaveOut(b *testing.B) {
	rb.benchIdle(b, phaseLastWave, rb.checkLastWave, rb.assets-benchRolloutPilot)
}

// benchIdle times Tick over the rollout in phase p while nothing happens:
// it must write nothing, and check must still hold after it.
func (rb *rolloutBench) benchIdle(b *testing.B, p benchPhase, check func(*testing.B), out int) {
	rb.ensure(b, p)
	before := rb.reload(b)
	for b.Loop() {
		rb.tick(b)
	}
	if after := rb.reload(b); after != before {
		b.Fatalf("an idle tick wrote the rollout: revision %d, then %d", before, after)
	}
	check(b)
	b.ReportMetric(0, "jobs/op")
	b.ReportMetric(float64(out), "jobs-out")
}

func (rb *rolloutBench) benchTickNextWave(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		rb.ensure(b, phasePilot)
		rb.pilotSucceeds(b)
		b.StartTimer()
		rb.tick(b)
		b.StopTimer()
		rb.reload(b)
		rb.checkLastWave(b)
		rb.phase = phaseLastWave
		b.StartTimer()
	}
	b.ReportMetric(float64(rb.assets-benchRolloutPilot), "jobs/op")
	b.ReportMetric(float64(benchRolloutPilot), "results/op")
}

// pilotSucceeds has every pilot agent pull its job once it is due and
// report success, then moves the clock past the pilot's soak.
func (rb *rolloutBench) pilotSucceeds(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	rb.phase = phaseUsed
	w := rb.ro.Waves[0]
	var due time.Time
	for _, it := range w.Items {
		if it.PlannedStart.After(due) {
			due = *it.PlannedStart
		}
	}
	if d := due.Sub(rb.w.clk.now()); d > 0 {
		rb.w.clk.advance(d)
	}
	rb.w.clk.advance(10 * time.Minute)
	for _, it := range w.Items {
		ag := rb.agents[it.AgentID]
		jobs, err := rb.w.fleet.PullJobs(ctx, ag, "10.0.20.5")
		if err != nil {
			b.Fatal(err)
		}
		if len(jobs) != 1 || jobs[0].ID != it.JobID {
			b.Fatalf("agent of %s pulled %d jobs; want its pilot job %s", it.AssetName, len(jobs), it.JobID)
		}
		now := rb.w.clk.now()
		if _, err := rb.w.fleet.ReportResult(ctx, ag, "10.0.20.5", agentapi.JobResult{JobID: it.JobID, Attempt: 1,
			Status: agentapi.StatusSucceeded, Installed: map[string]string{"openssl": "3.0.16-1~deb12u1"},
			Steps: []agentapi.Step{{Name: "install", Command: []string{"apt-get", "install", "openssl"}, OK: true,
				Started: now.Add(-time.Minute), Ended: now}}}); err != nil {
			b.Fatalf("ReportResult: %v", err)
		}
	}
	rb.w.clk.advance(time.Hour + time.Minute) // rolloutPolicy's pilot soaks 1h
}
