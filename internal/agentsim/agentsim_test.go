package agentsim_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/agentapi/agentserver"
	"github.com/patchward/patchward/internal/agentsim"
	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

var admin = audit.Actor{Kind: audit.ActorUser, ID: "u1", Name: "admin"}

func TestParseDpkgStatus(t *testing.T) {
	f, err := os.Open("testdata/debian12-dpkg-status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkgs, err := agentsim.ParseDpkgStatus(f, "Debian:12", "debian-12")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 703 {
		t.Errorf("ParseDpkgStatus found %d packages; want 703", len(pkgs))
	}
	i := slices.IndexFunc(pkgs, func(p agentapi.Package) bool { return p.Name == "bash" })
	if i < 0 {
		t.Fatal("no bash")
	}
	want := agentapi.Package{Name: "bash", Version: "5.2.15-2+b8", Arch: "amd64", Ecosystem: "Debian:12", SourceName: "bash", SourceVersion: "5.2.15-2",
		PURL: "pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64&distro=debian-12"}
	if pkgs[i] != want {
		t.Errorf("bash = %+v;\nwant %+v", pkgs[i], want)
	}
	req := agentapi.CheckInRequest{InventoryHash: agentapi.InventoryHash(pkgs), Inventory: pkgs}
	if err := req.Validate(); err != nil {
		t.Errorf("the real package list does not validate as an inventory: %v", err)
	}
}

// TestSimulatedFleet runs 50 simulated agents against the real protocol
// handler on a real database for a few rounds, with install jobs queued
// right after enrollment and a 30% failure rate, and checks what the
// server stored: one agent-sourced asset per host with its software, every
// job finished with the status and steps the simulator reported, and the
// inventories after the jobs in line with the results.
func TestSimulatedFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 50 agents")
	}
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, store.Options{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := fleet.NewService(db.Fleet(), fleet.Options{Log: log})
	inv := inventory.NewService(db.Inventory(), nil)
	srv := httptest.NewServer(agentserver.Handler(svc, log))
	defer srv.Close()

	var jobs []fleet.Job
	st, err := agentsim.Run(ctx, agentsim.Options{
		Server: srv.URL, Hosts: 50, Rounds: 3, CheckInInterval: 50 * time.Millisecond, FailureRate: 0.3, Seed: 7,
		PackagesFrom: "testdata/debian12-dpkg-status", Log: log,
		NewToken: func(ctx context.Context) (string, error) {
			s, _, err := svc.CreateEnrollmentToken(ctx, admin, fleet.TokenSpec{Name: "simulator"})
			return s, err
		},
		Enrolled: func(ctx context.Context, hosts []agentsim.Host) error {
			for _, h := range hosts[:20] {
				j, err := svc.CreateJob(ctx, admin, fleet.JobSpec{AgentID: h.AgentID, Kind: agentapi.JobInstall,
					Packages:   []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3.0.16-1~deb12u1"}, {Name: "libssl3", TargetVersion: "3.0.16-1~deb12u1"}},
					PreChecks:  []agentapi.Check{{Kind: "disk_space", Arg: "200"}, {Kind: "pkg_lock_free"}},
					PostChecks: []agentapi.Check{{Kind: "service_active", Arg: "ssh"}}})
				if err != nil {
					return err
				}
				jobs = append(jobs, j)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Enrolled != 50 || st.Errors != 0 || st.JobsRun != 20 || st.JobsSucceeded+st.JobsFailed+st.JobsRolledBack != 20 {
		t.Errorf("stats = %+v; want 50 enrolled, no errors, 20 jobs run and finished", st)
	}
	if st.JobsSucceeded == 0 || st.JobsFailed+st.JobsRolledBack == 0 {
		t.Errorf("stats = %+v; want both successes and failures at a 30%% failure rate", st)
	}
	if st.CheckIns < 150 {
		t.Errorf("%d check-ins; want at least 50 hosts x 3 rounds", st.CheckIns)
	}

	page, err := svc.Agents(ctx, fleet.AgentFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 50 {
		t.Fatalf("%d agents; want 50", page.Total)
	}
	for _, h := range st.Hosts {
		a, err := inv.Asset(ctx, h.AssetID)
		if err != nil {
			t.Fatalf("asset of %s: %v", h.Hostname, err)
		}
		if a.Source != inventory.SourceAgent || a.Hostname != h.Hostname || len(a.Software) < 690 || a.LastSeenAt == nil || a.OSName != "Debian GNU/Linux" {
			t.Errorf("asset of %s = source %s, host %s, %d packages, last seen %v, os %q", h.Hostname, a.Source, a.Hostname, len(a.Software), a.LastSeenAt, a.OSName)
		}
		ag, err := svc.Agent(ctx, h.AgentID)
		if err != nil {
			t.Fatal(err)
		}
		// The stored software is exactly the list the stored hash names.
		sw := make([]agentapi.Package, len(a.Software))
		for i, s := range a.Software {
			sw[i] = agentapi.Package{Name: s.Name, Version: s.Version, Arch: s.Arch, Ecosystem: s.Ecosystem, PURL: s.PURL,
				SourceName: s.SourceName, SourceVersion: s.SourceVersion}
		}
		if got := agentapi.InventoryHash(sw); got != ag.InventoryHash {
			t.Errorf("agent %s: stored software hashes to %s; the agent's stored hash is %s", h.Hostname, got, ag.InventoryHash)
		}
		if ag.LastCheckIn == nil || ag.Facts == nil || ag.Facts.Kernel == "" {
			t.Errorf("agent %s = %+v", h.Hostname, ag)
		}
	}
	succeeded := 0
	for _, j := range jobs {
		d, err := svc.Job(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Pre-checks and the install at least; more when it got further.
		if !d.State.Finished() || len(d.Results) != 1 || len(d.Results[0].Steps) < 3 || d.StartedAt == nil {
			t.Errorf("job %s = %s, %d results, started %v", j.ID, d.State, len(d.Results), d.StartedAt)
			continue
		}
		a, err := inv.Asset(ctx, j.AssetID)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, s := range a.Software {
			if s.Name == "openssl" {
				got = s.Version
			}
		}
		switch d.State {
		case fleet.JobSucceeded:
			succeeded++
			if got != "3.0.16-1~deb12u1" {
				t.Errorf("job %s succeeded but the asset has openssl %q", j.ID, got)
			}
			if a.LastPatchedAt == nil {
				t.Errorf("job %s succeeded but the asset has no last_patched_at", j.ID)
			}
		case fleet.JobRolledBack, fleet.JobFailed:
			if got == "3.0.16-1~deb12u1" || got == "" {
				t.Errorf("job %s %s but the asset has openssl %q", j.ID, d.State, got)
			}
		}
	}
	if int64(succeeded) != st.JobsSucceeded {
		t.Errorf("%d jobs succeeded on the server; the simulator counted %d", succeeded, st.JobsSucceeded)
	}
}

// TestSimulatorMintsTokensThroughTheAdminAPI runs the simulator the way
// `patchward-agent simulate --admin-token` does: enrollment tokens come
// from the real admin API, authenticated with an admin's API token, and
// the agents talk to the protocol handler on the same server.
func TestSimulatorMintsTokensThroughTheAdminAPI(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, store.Options{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	accounts := auth.NewService(db.Auth(), auth.Options{Params: auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	u, err := accounts.CreateUser(ctx, audit.System, auth.NewUser{Username: "admin", Role: auth.RoleAdmin, Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	bearer, _, err := accounts.CreateToken(ctx, audit.System, u.ID, "simulator", 0)
	if err != nil {
		t.Fatal(err)
	}
	svc := fleet.NewService(db.Fleet(), fleet.Options{Log: log})
	a := &api.API{Inventory: inventory.NewService(db.Inventory(), nil), Accounts: accounts, Fleet: svc, Log: log}
	mux := http.NewServeMux()
	mux.Handle("/agent/", agentserver.Handler(svc, log))
	mux.Handle("/", authn.Middleware(accounts, func(w http.ResponseWriter, r *http.Request, err error) { api.WriteError(w, r, log, err) })(api.Handler(a.Routes(), log)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	st, err := agentsim.Run(ctx, agentsim.Options{Server: srv.URL, Hosts: 3, Rounds: 1, CheckInInterval: 10 * time.Millisecond,
		AdminToken: bearer, PackagesFrom: "testdata/debian12-dpkg-status", Log: log})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Enrolled != 3 || st.Errors != 0 || st.InventoriesSent != 3 {
		t.Errorf("stats = %+v; want 3 enrolled with their inventories, no errors", st)
	}
	toks, err := svc.EnrollmentTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.State != fleet.TokenUsed || tk.CreatedBy != "admin" {
			t.Errorf("token %s = %s by %q; want used, created by admin", tk.ID, tk.State, tk.CreatedBy)
		}
	}
}
