package store_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// clock is a settable test clock safe for concurrent reads.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newFleet(t *testing.T, db *store.DB) (*fleet.Service, *inventory.Service, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	svc := fleet.NewService(db.Fleet(), fleet.Options{Now: clk.Now, Rand: func() float64 { return 0.5 },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return svc, inventory.NewService(db.Inventory(), clk.Now), clk
}

func debianFacts(host string) agentapi.Facts {
	return agentapi.Facts{Hostname: host, OSName: "Debian GNU/Linux", OSVersion: "12 (bookworm)", OSID: "debian",
		Kernel: "6.1.0-28-amd64", Arch: "amd64", IPAddresses: []string{"10.0.20.5"}, MACAddress: "52:54:00:12:34:56",
		Make: "Dell Inc.", Model: "PowerEdge R650", Serial: "7XK2JH3", TimeZone: "America/Chicago", AgentVersion: "0.1.0"}
}

func enroll(t *testing.T, svc *fleet.Service, host string, f agentapi.Facts) fleet.Agent {
	t.Helper()
	ctx := context.Background()
	secret, _, err := svc.CreateEnrollmentToken(ctx, admin, fleet.TokenSpec{Name: "for " + host})
	if err != nil {
		t.Fatalf("CreateEnrollmentToken: %v", err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	ag, err := svc.Enroll(ctx, agentapi.EnrollRequest{Token: secret, PublicKey: pub, Hostname: host, Facts: f}, 1, "10.0.20.5")
	if err != nil {
		t.Fatalf("Enroll(%s): %v", host, err)
	}
	return ag
}

func auditActions(t *testing.T, db *store.DB, objectID string) []string {
	t.Helper()
	p, err := db.Audit().List(context.Background(), audit.Query{ObjectID: objectID, Limit: 1000})
	if err != nil {
		t.Fatalf("list audit: %v", err)
	}
	var out []string
	for i := len(p.Entries) - 1; i >= 0; i-- {
		out = append(out, p.Entries[i].Action)
	}
	return out
}

func TestFleetEnrollmentTokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, inv, clk := newFleet(t, db)
		site, err := inv.CreateSite(ctx, admin, inventory.Site{Name: "Lab", TimeZone: "America/Chicago"})
		if err != nil {
			t.Fatal(err)
		}
		grp, err := inv.CreateGroup(ctx, admin, inventory.Group{Name: "Ring 1"})
		if err != nil {
			t.Fatal(err)
		}
		secret, tok, err := svc.CreateEnrollmentToken(ctx, admin, fleet.TokenSpec{Name: "lab servers", SiteID: site.ID,
			Groups: []string{grp.ID}, MaintenanceWindow: "Sun 02:00-04:00", TTL: time.Hour})
		if err != nil {
			t.Fatalf("CreateEnrollmentToken: %v", err)
		}
		if len(secret) != len(fleet.TokenPrefix)+43 || secret[:4] != fleet.TokenPrefix {
			t.Errorf("secret = %q; want pwe_ + 43 base64url characters", secret)
		}
		if tok.State != fleet.TokenActive || !tok.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
			t.Errorf("token = %+v; want active, expiring in 1h", tok)
		}
		for _, spec := range []fleet.TokenSpec{{Name: ""}, {Name: "x", TTL: -time.Hour}, {Name: "x", SiteID: "nope"}, {Name: "x", Groups: []string{"nope"}}} {
			if _, _, err := svc.CreateEnrollmentToken(ctx, admin, spec); !errors.Is(err, errs.ErrInvalid) {
				t.Errorf("CreateEnrollmentToken(%+v) = %v; want Invalid", spec, err)
			}
		}

		// The token's presets land on the asset it creates.
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		ag, err := svc.Enroll(ctx, agentapi.EnrollRequest{Token: secret, PublicKey: pub, Hostname: "lis01.lab.local", Facts: debianFacts("lis01.lab.local")}, 1, "10.0.0.9")
		if err != nil {
			t.Fatalf("Enroll: %v", err)
		}
		a, err := inv.Asset(ctx, ag.AssetID)
		if err != nil {
			t.Fatal(err)
		}
		want := inventory.Asset{Name: "lis01", Hostname: "lis01.lab.local", Type: inventory.TypeServer, Source: inventory.SourceAgent,
			SiteID: site.ID, Groups: []string{grp.ID}, MaintenanceWindow: "Sun 02:00-04:00", OSName: "Debian GNU/Linux",
			OSVersion: "12 (bookworm)", Make: "Dell Inc.", Model: "PowerEdge R650", Serial: "7XK2JH3", MACAddress: "52:54:00:12:34:56",
			IPAddresses: []string{"10.0.20.5"}}
		got := inventory.Asset{Name: a.Name, Hostname: a.Hostname, Type: a.Type, Source: a.Source, SiteID: a.SiteID, Groups: a.Groups,
			MaintenanceWindow: a.MaintenanceWindow, OSName: a.OSName, OSVersion: a.OSVersion, Make: a.Make, Model: a.Model,
			Serial: a.Serial, MACAddress: a.MACAddress, IPAddresses: a.IPAddresses}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("enrolled asset (-want +got):\n%s", diff)
		}
		if a.LastSeenAt == nil {
			t.Error("enrolled asset has no last_seen_at")
		}

		// One-time: the same secret again is refused, as are unknown,
		// expired and revoked tokens, all with the same answer.
		pub2, _, _ := ed25519.GenerateKey(rand.Reader)
		req := agentapi.EnrollRequest{Token: secret, PublicKey: pub2, Hostname: "other", Facts: debianFacts("other")}
		if _, err := svc.Enroll(ctx, req, 1, ""); !errors.Is(err, errs.ErrUnauthorized) {
			t.Errorf("Enroll with a used token = %v; want Unauthorized", err)
		}
		req.Token = "pwe_unknown"
		if _, err := svc.Enroll(ctx, req, 1, ""); !errors.Is(err, errs.ErrUnauthorized) {
			t.Errorf("Enroll with an unknown token = %v; want Unauthorized", err)
		}
		expiring, _, _ := svc.CreateEnrollmentToken(ctx, admin, fleet.TokenSpec{Name: "short", TTL: time.Minute})
		revoked, rt, _ := svc.CreateEnrollmentToken(ctx, admin, fleet.TokenSpec{Name: "revoked"})
		if err := svc.RevokeEnrollmentToken(ctx, admin, rt.ID); err != nil {
			t.Fatalf("RevokeEnrollmentToken: %v", err)
		}
		if err := svc.RevokeEnrollmentToken(ctx, admin, rt.ID); !errors.Is(err, errs.ErrConflict) {
			t.Errorf("revoking twice = %v; want Conflict", err)
		}
		clk.Add(2 * time.Minute)
		for name, s := range map[string]string{"expired": expiring, "revoked": revoked} {
			req.Token = s
			if _, err := svc.Enroll(ctx, req, 1, ""); !errors.Is(err, errs.ErrUnauthorized) {
				t.Errorf("Enroll with %s token = %v; want Unauthorized", name, err)
			}
		}
		toks, err := svc.EnrollmentTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]fleet.TokenState{}
		for _, tk := range toks {
			states[tk.Name] = tk.State
		}
		if diff := cmp.Diff(map[string]fleet.TokenState{"lab servers": fleet.TokenUsed, "short": fleet.TokenExpired, "revoked": fleet.TokenRevoked}, states); diff != "" {
			t.Errorf("token states (-want +got):\n%s", diff)
		}
		if got := auditActions(t, db, ag.ID); !cmp.Equal(got, []string{"agent.enroll"}) {
			t.Errorf("agent audit = %v; want [agent.enroll]", got)
		}
	})
}

func TestFleetEnrollLinksExistingAsset(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, inv, _ := newFleet(t, db)
		// A purchase record with the serial, and a discovery record with a
		// short host name: the serial wins.
		bought, err := inv.CreateAsset(ctx, admin, inventory.Asset{Name: "LIS server", Type: inventory.TypeServer, Serial: "7xk2jh3",
			Make: "Dell", Source: inventory.SourcePurchase, Criticality: inventory.LevelCritical})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inv.CreateAsset(ctx, admin, inventory.Asset{Name: "lis01", Hostname: "LIS01", Source: inventory.SourceDiscovery}); err != nil {
			t.Fatal(err)
		}
		ag := enroll(t, svc, "lis01.lab.local", debianFacts("lis01.lab.local"))
		if ag.AssetID != bought.ID {
			t.Fatalf("agent linked to %s; want the purchased asset %s (same serial)", ag.AssetID, bought.ID)
		}
		a, err := inv.Asset(ctx, bought.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Curated fields stay; observed ones are filled.
		if a.Make != "Dell" || a.Criticality != inventory.LevelCritical || a.Source != inventory.SourcePurchase || a.OSName != "Debian GNU/Linux" || a.Revision != 2 {
			t.Errorf("linked asset = make %q crit %q source %q os %q rev %d; want Dell, critical, purchase, Debian, 2", a.Make, a.Criticality, a.Source, a.OSName, a.Revision)
		}
		// The same machine enrolling again (reinstalled) does not take over
		// an asset an active agent reports for: it gets a new asset.
		again := enroll(t, svc, "lis01.lab.local", debianFacts("lis01.lab.local"))
		if again.AssetID == bought.ID {
			t.Error("a second agent took over an asset owned by an active agent")
		}
		// After revoking the first agent, the reinstalled host links again,
		// by host name now that firmware reports a placeholder serial.
		if err := svc.RevokeAgent(ctx, admin, ag.ID, "reinstalled"); err != nil {
			t.Fatal(err)
		}
		f := debianFacts("lis01.lab.local")
		f.Serial = "To be filled by O.E.M."
		if third := enroll(t, svc, "lis01.lab.local", f); third.AssetID != bought.ID {
			t.Errorf("re-enrolled host linked to %s; want %s", third.AssetID, bought.ID)
		}
		// Placeholder serials never link unrelated machines.
		junk, err := inv.CreateAsset(ctx, admin, inventory.Asset{Name: "old pc", Serial: "Default string"})
		if err != nil {
			t.Fatal(err)
		}
		f = debianFacts("ws-99")
		f.Serial = "Default string"
		if fourth := enroll(t, svc, "ws-99", f); fourth.AssetID == junk.ID {
			t.Error("a placeholder serial linked an unrelated asset")
		}
	})
}

func TestFleetCheckIn(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, inv, clk := newFleet(t, db)
		var heard []string
		svc = fleet.NewService(db.Fleet(), fleet.Options{Now: clk.Now, Rand: func() float64 { return 0.5 },
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Listener: listenerFunc(func(id string) { heard = append(heard, id) })})
		ag := enroll(t, svc, "ws-07", agentapi.Facts{Hostname: "ws-07", OSName: "Microsoft Windows 11 Pro", OSVersion: "23H2", OSID: "windows", Arch: "amd64"})
		pkgs := []agentapi.Package{
			{Name: "openssl", Version: "3.0.15-1~deb12u1", Arch: "amd64", Ecosystem: "Debian:12", SourceName: "openssl"},
			{Name: "curl", Version: "7.88.1-10+deb12u8", Arch: "amd64", Ecosystem: "Debian:12", PURL: "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u8?arch=amd64"},
		}
		hash := agentapi.InventoryHash(pkgs)
		facts := agentapi.Facts{Hostname: "ws-07", OSName: "Microsoft Windows 11 Pro", OSVersion: "23H2", OSID: "windows", Arch: "amd64", UptimeSeconds: 10}

		// Unknown hash: the server asks for the inventory.
		resp, err := svc.CheckIn(ctx, ag, 1, "", agentapi.CheckInRequest{Facts: facts, InventoryHash: hash})
		if err != nil {
			t.Fatalf("CheckIn: %v", err)
		}
		if !resp.InventoryWanted || resp.JobsAvailable || resp.NextCheckIn.Duration != 5*time.Minute {
			t.Errorf("first check-in = %+v; want inventory wanted, no jobs, next in 5m", resp)
		}
		// An inventory that does not hash to the claimed hash is refused.
		bad := agentapi.CheckInRequest{Facts: facts, InventoryHash: hash, Inventory: pkgs[:1]}
		if _, err := svc.CheckIn(ctx, ag, 1, "", bad); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("CheckIn with a mismatched hash = %v; want Invalid", err)
		}
		resp, err = svc.CheckIn(ctx, ag, 1, "", agentapi.CheckInRequest{Facts: facts, InventoryHash: hash, Inventory: pkgs,
			Pending: []agentapi.PendingUpdate{{Name: "curl", CurrentVersion: "7.88.1-10+deb12u8", AvailableVersion: "7.88.1-10+deb12u9", Security: true}}})
		if err != nil {
			t.Fatalf("CheckIn with inventory: %v", err)
		}
		if resp.InventoryWanted {
			t.Error("inventory still wanted after it was sent")
		}
		a, err := inv.Asset(ctx, ag.AssetID)
		if err != nil {
			t.Fatal(err)
		}
		wantSW := []inventory.Software{
			{Name: "curl", Version: "7.88.1-10+deb12u8", Arch: "amd64", Ecosystem: "Debian:12", PURL: "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u8?arch=amd64"},
			{Name: "openssl", Version: "3.0.15-1~deb12u1", Arch: "amd64", Ecosystem: "Debian:12", SourceName: "openssl"},
		}
		if diff := cmp.Diff(wantSW, a.Software); diff != "" {
			t.Errorf("software (-want +got):\n%s", diff)
		}
		if a.PendingUpdates != 1 || a.Type != inventory.TypeEndpoint {
			t.Errorf("asset pending = %d, type %s; want 1, endpoint", a.PendingUpdates, a.Type)
		}
		if !cmp.Equal(heard, []string{ag.AssetID}) {
			t.Errorf("listener heard %v; want [%s]", heard, ag.AssetID)
		}
		if got, want := auditActions(t, db, ag.AssetID), []string{"asset.create", "asset.facts", "asset.inventory"}; !cmp.Equal(got, want) {
			t.Errorf("asset audit = %v; want %v", got, want)
		}
		stored, _ := svc.Agent(ctx, ag.ID)
		if stored.InventoryHash != hash || len(stored.Pending) != 1 || stored.LastCheckIn == nil {
			t.Errorf("agent = hash %q, %d pending, last check-in %v", stored.InventoryHash, len(stored.Pending), stored.LastCheckIn)
		}

		// A pure heartbeat inside the granularity writes nothing at all.
		rev, seen := a.Revision, *stored.LastCheckIn
		clk.Add(10 * time.Second)
		hb := agentapi.CheckInRequest{Facts: facts, InventoryHash: hash,
			Pending: []agentapi.PendingUpdate{{Name: "curl", CurrentVersion: "7.88.1-10+deb12u8", AvailableVersion: "7.88.1-10+deb12u9", Security: true}}}
		hb.Facts.UptimeSeconds = 20
		if resp, err = svc.CheckIn(ctx, stored.Agent, 1, "", hb); err != nil || resp.InventoryWanted {
			t.Fatalf("heartbeat = %+v, %v", resp, err)
		}
		after, _ := svc.Agent(ctx, ag.ID)
		if !after.LastCheckIn.Equal(seen) {
			t.Errorf("heartbeat inside the granularity moved last_checkin %v -> %v", seen, after.LastCheckIn)
		}
		// After the granularity, it records the time, still without an
		// audit entry or a new revision.
		clk.Add(time.Minute)
		if _, err = svc.CheckIn(ctx, after.Agent, 1, "", hb); err != nil {
			t.Fatal(err)
		}
		after, _ = svc.Agent(ctx, ag.ID)
		a2, _ := inv.Asset(ctx, ag.AssetID)
		if !after.LastCheckIn.Equal(clk.Now().Truncate(time.Second)) || !a2.LastSeenAt.Equal(*after.LastCheckIn) || a2.Revision != rev {
			t.Errorf("heartbeat: last_checkin %v, last_seen %v, revision %d; want %v, same, %d", after.LastCheckIn, a2.LastSeenAt, a2.Revision, clk.Now(), rev)
		}
		if got := auditActions(t, db, ag.AssetID); len(got) != 3 {
			t.Errorf("heartbeats wrote audit entries: %v", got)
		}

		// An admin saves the asset through the API without its software.
		// The stored hash no longer names the stored list, so the agent is
		// asked for its inventory, which is stored even though its hash is
		// the one already known; then all is quiet again.
		edit := a2
		edit.Software, edit.Location = nil, "Ward 3"
		if _, err := inv.UpdateAsset(ctx, admin, ag.AssetID, edit); err != nil {
			t.Fatal(err)
		}
		cur, _ := svc.Authenticate(ctx, ag.ID)
		if resp, err = svc.CheckIn(ctx, cur, 1, "", hb); err != nil || !resp.InventoryWanted {
			t.Fatalf("check-in after an admin edit = %+v, %v; want the inventory asked for", resp, err)
		}
		withInv := hb
		withInv.Inventory = pkgs
		if resp, err = svc.CheckIn(ctx, cur, 1, "", withInv); err != nil || resp.InventoryWanted {
			t.Fatalf("check-in with the inventory = %+v, %v; want it acknowledged", resp, err)
		}
		a3, _ := inv.Asset(ctx, ag.AssetID)
		if len(a3.Software) != 2 || a3.Location != "Ward 3" {
			t.Errorf("after re-sync: %d packages, location %q; want 2, the admin's Ward 3", len(a3.Software), a3.Location)
		}
		cur, _ = svc.Authenticate(ctx, ag.ID)
		if resp, err = svc.CheckIn(ctx, cur, 1, "", hb); err != nil || resp.InventoryWanted || cur.AssetChanged {
			t.Errorf("heartbeat after re-sync = %+v, %v (changed %v); want quiet", resp, err, cur.AssetChanged)
		}

		// A revoked agent is refused.
		if err := svc.RevokeAgent(ctx, admin, ag.ID, "stolen laptop"); err != nil {
			t.Fatal(err)
		}
		revoked, _ := svc.Agent(ctx, ag.ID)
		if _, err := svc.CheckIn(ctx, revoked.Agent, 1, "", hb); !errors.Is(err, errs.ErrForbidden) {
			t.Errorf("CheckIn of a revoked agent = %v; want Forbidden", err)
		}
	})
}

type listenerFunc func(string)

func (f listenerFunc) InventoryChanged(_ context.Context, id string) { f(id) }

func TestFleetJobs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, inv, clk := newFleet(t, db)
		ag := enroll(t, svc, "lis01", debianFacts("lis01"))
		other := enroll(t, svc, "lis02", debianFacts("lis02"))
		spec := fleet.JobSpec{AgentID: ag.ID, Kind: agentapi.JobInstall, ChangeID: "CHG-1",
			Packages:   []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3.0.16-1~deb12u1"}},
			PreChecks:  []agentapi.Check{{Kind: "disk_space", Arg: "500"}, {Kind: "pkg_lock_free"}},
			PostChecks: []agentapi.Check{{Kind: "service_active", Arg: "nginx"}}}
		later := clk.Now().Add(time.Hour)
		laterSpec := spec
		laterSpec.NotBefore = &later
		job, err := svc.CreateJob(ctx, admin, spec)
		if err != nil {
			t.Fatalf("CreateJob: %v", err)
		}
		later2, err := svc.CreateJob(ctx, admin, laterSpec)
		if err != nil {
			t.Fatalf("CreateJob (later): %v", err)
		}
		// The change's jobs in one read, oldest first, with what the
		// rollout engine compares.
		st, err := svc.JobStatuses(ctx, "CHG-1")
		want := []fleet.JobStatus{
			{ID: job.ID, AgentID: ag.ID, AssetID: ag.AssetID, Kind: agentapi.JobInstall, State: fleet.JobQueued, NotBefore: job.NotBefore},
			{ID: later2.ID, AgentID: ag.ID, AssetID: ag.AssetID, Kind: agentapi.JobInstall, State: fleet.JobQueued, NotBefore: later2.NotBefore},
		}
		if diff := cmp.Diff(want, st); err != nil || diff != "" {
			t.Errorf("JobStatuses = %v (-want +got):\n%s", err, diff)
		}
		if st, err := svc.JobStatuses(ctx, "CHG-none"); err != nil || len(st) != 0 {
			t.Errorf("JobStatuses of a change without jobs = %+v, %v", st, err)
		}
		if _, err := svc.JobStatuses(ctx, ""); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("JobStatuses without a change = %v; want Invalid", err)
		}
		for name, bad := range map[string]fleet.JobSpec{
			"no agent":      {AgentID: "nope", Kind: agentapi.JobInstall, Packages: spec.Packages},
			"option inject": {AgentID: ag.ID, Kind: agentapi.JobInstall, Packages: []agentapi.JobPackage{{Name: "-oDebug=1", TargetVersion: "1"}}},
			"shell check":   {AgentID: ag.ID, Kind: agentapi.JobInstall, Packages: spec.Packages, PreChecks: []agentapi.Check{{Kind: "command", Arg: "rm -rf /"}}},
			"no version":    {AgentID: ag.ID, Kind: agentapi.JobInstall, Packages: []agentapi.JobPackage{{Name: "openssl"}}},
			"bad kind":      {AgentID: ag.ID, Kind: "reboot"},
		} {
			if _, err := svc.CreateJob(ctx, admin, bad); !errors.Is(err, errs.ErrInvalid) {
				t.Errorf("CreateJob(%s) = %v; want Invalid", name, err)
			}
		}

		resp, err := svc.CheckIn(ctx, ag, 1, "", agentapi.CheckInRequest{Facts: debianFacts("lis01"), InventoryHash: agentapi.InventoryHash(nil), Inventory: []agentapi.Package{}})
		if err != nil || !resp.JobsAvailable {
			t.Fatalf("CheckIn = %+v, %v; want jobs available", resp, err)
		}
		// Pulled twice: the due job both times (not the later one), the
		// first pull recorded as the delivery.
		for range 2 {
			jobs, err := svc.PullJobs(ctx, ag, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(jobs) != 1 || jobs[0].ID != job.ID || jobs[0].Packages[0].Name != "openssl" || len(jobs[0].PreChecks) != 2 {
				t.Fatalf("PullJobs = %+v; want the one due job", jobs)
			}
		}
		if jobs, _ := svc.PullJobs(ctx, other, ""); len(jobs) != 0 {
			t.Errorf("another agent pulled %d jobs", len(jobs))
		}
		// Running, then the result.
		if _, err := svc.CheckIn(ctx, ag, 1, "", agentapi.CheckInRequest{Facts: debianFacts("lis01"), InventoryHash: agentapi.InventoryHash(nil), Running: []string{job.ID}}); err != nil {
			t.Fatal(err)
		}
		d, _ := svc.Job(ctx, job.ID)
		if d.State != fleet.JobRunning || d.DeliveredAt == nil || d.StartedAt == nil {
			t.Errorf("job after running check-in = %s delivered %v started %v", d.State, d.DeliveredAt, d.StartedAt)
		}
		now := clk.Now()
		res := agentapi.JobResult{JobID: job.ID, Attempt: 1, Status: agentapi.StatusSucceeded, Installed: map[string]string{"openssl": "3.0.16-1~deb12u1"},
			Steps: []agentapi.Step{{Name: "pre-check disk_space", OK: true, Started: now, Ended: now},
				{Name: "install", Command: []string{"apt-get", "install", "-y", "openssl=3.0.16-1~deb12u1"}, Output: "Setting up openssl\x00", OK: true, Started: now, Ended: now}}}
		// Another agent's result for this job is NotFound.
		if _, err := svc.ReportResult(ctx, other, "", res); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("ReportResult by another agent = %v; want NotFound", err)
		}
		if dup, err := svc.ReportResult(ctx, ag, "", res); err != nil || dup {
			t.Fatalf("ReportResult = %v, %v; want recorded", dup, err)
		}
		if dup, err := svc.ReportResult(ctx, ag, "", res); err != nil || !dup {
			t.Errorf("ReportResult again = %v, %v; want duplicate no-op", dup, err)
		}
		res2 := res
		res2.Attempt = 2
		if _, err := svc.ReportResult(ctx, ag, "", res2); !errors.Is(err, errs.ErrConflict) {
			t.Errorf("ReportResult with a new attempt after finishing = %v; want Conflict", err)
		}
		d, err = svc.Job(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.State != fleet.JobSucceeded || d.Attempt != 1 || len(d.Results) != 1 || len(d.Results[0].Steps) != 2 ||
			d.Results[0].Steps[1].Output != "Setting up openssl\uFFFD" || d.Results[0].Installed["openssl"] != "3.0.16-1~deb12u1" {
			t.Errorf("job detail = %+v", d)
		}
		if got, want := auditActions(t, db, job.ID), []string{"job.create", "job.deliver", "job.start", "job.result"}; !cmp.Equal(got, want) {
			t.Errorf("job audit = %v; want %v", got, want)
		}
		asset, _ := inv.Asset(ctx, ag.AssetID)
		if asset.LastPatchedAt == nil {
			t.Error("a succeeded install did not set the asset's last_patched_at")
		}
		if cur, _ := svc.Authenticate(ctx, ag.ID); cur.AssetChanged {
			t.Error("the agent's own last_patched_at write made its asset look changed by someone else")
		}

		// Cancelling: a queued job can be cancelled, a finished one not;
		// revoking an agent cancels its open jobs.
		if _, err := svc.CancelJob(ctx, admin, job.ID, "oops"); !errors.Is(err, errs.ErrConflict) {
			t.Errorf("CancelJob of a finished job = %v; want Conflict", err)
		}
		page, err := svc.Jobs(ctx, fleet.JobFilter{AgentID: ag.ID, State: fleet.JobQueued})
		if err != nil || page.Total != 1 {
			t.Fatalf("queued jobs = %+v, %v", page, err)
		}
		if err := svc.RevokeAgent(ctx, admin, ag.ID, "decommissioned"); err != nil {
			t.Fatal(err)
		}
		cancelled, _ := svc.Job(ctx, page.Jobs[0].ID)
		if cancelled.State != fleet.JobCancelled || cancelled.Reason != "agent revoked" {
			t.Errorf("job of a revoked agent = %s (%s); want cancelled", cancelled.State, cancelled.Reason)
		}
		// A job whose agent never reports stays delivered, visibly.
		j3, err := svc.CreateJob(ctx, admin, fleet.JobSpec{AgentID: other.ID, Kind: agentapi.JobInventory})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PullJobs(ctx, other, ""); err != nil {
			t.Fatal(err)
		}
		if p, _ := svc.Jobs(ctx, fleet.JobFilter{State: fleet.JobDelivered}); p.Total != 1 || p.Jobs[0].ID != j3.ID {
			t.Errorf("delivered jobs = %+v; want %s", p, j3.ID)
		}
		// A cancelled job that the agent ran anyway records the truth.
		if _, err := svc.CancelJob(ctx, admin, j3.ID, "not needed"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.ReportResult(ctx, other, "", agentapi.JobResult{JobID: j3.ID, Attempt: 1, Status: agentapi.StatusFailed, Reason: "apt lock held"}); err != nil {
			t.Fatalf("result for a cancelled job: %v", err)
		}
		if d, _ := svc.Job(ctx, j3.ID); d.State != fleet.JobFailed {
			t.Errorf("cancelled job after a result = %s; want failed", d.State)
		}
	})
}

func TestFleetAssetDeleted(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, inv, _ := newFleet(t, db)
		ag := enroll(t, svc, "kiosk-3", agentapi.Facts{Hostname: "kiosk-3", OSID: "windows", OSName: "Windows 10"})
		if err := inv.DeleteAsset(ctx, admin, ag.AssetID, "scrapped"); err != nil {
			t.Fatalf("DeleteAsset of an agent's asset: %v", err)
		}
		a, err := svc.Authenticate(ctx, ag.ID)
		if err != nil {
			t.Fatal(err)
		}
		if a.AssetID != "" || !errors.Is(fleet.Usable(a), errs.ErrForbidden) {
			t.Errorf("agent of a deleted asset = %+v, usable %v; want no asset, Forbidden", a, fleet.Usable(a))
		}
	})
}

func TestFleetListing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, _, _ := newFleet(t, db)
		var ids []string
		for i := range 3 {
			ids = append(ids, enroll(t, svc, fmt.Sprintf("host-%d", i), debianFacts(fmt.Sprintf("host-%d", i))).ID)
		}
		if err := svc.RevokeAgent(ctx, admin, ids[0], ""); err != nil {
			t.Fatal(err)
		}
		no := false
		p, err := svc.Agents(ctx, fleet.AgentFilter{Revoked: &no, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 2 || len(p.Agents) != 1 {
			t.Errorf("active agents page = total %d, %d rows; want 2, 1", p.Total, len(p.Agents))
		}
		if _, err := svc.Agent(ctx, "nope"); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("Agent(nope) = %v; want NotFound", err)
		}
	})
}
