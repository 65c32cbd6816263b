package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestFleetJobBetweenCheckIns: a job that starts and ends between two
// check-ins is never reported running; its start comes from the agent's
// first step, kept between delivery and the result so a wrong agent clock
// cannot place it where the server saw nothing, and it is audited.
func TestFleetJobBetweenCheckIns(t *testing.T) {
	for _, tc := range []struct {
		name string
		// firstStep is the first step's start relative to the delivery;
		// the result arrives two minutes after the delivery.
		firstStep, want time.Duration
	}{
		{name: "agent clock right", firstStep: 30 * time.Second, want: 30 * time.Second},
		{name: "agent clock behind", firstStep: -time.Hour, want: 0},
		{name: "agent clock ahead", firstStep: 3 * time.Hour, want: 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				svc, _, clk := newFleet(t, db)
				ag := enroll(t, svc, "lis01", debianFacts("lis01"))
				job, err := svc.CreateJob(ctx, admin, fleet.JobSpec{AgentID: ag.ID, Kind: agentapi.JobInstall,
					Packages: []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3.0.16-1~deb12u1"}}})
				if err != nil {
					t.Fatal(err)
				}
				delivered := clk.Now()
				if _, err := svc.PullJobs(ctx, ag, ""); err != nil {
					t.Fatal(err)
				}
				clk.Add(2 * time.Minute)
				at := delivered.Add(tc.firstStep)
				res := agentapi.JobResult{JobID: job.ID, Attempt: 1, Status: agentapi.StatusSucceeded, Installed: map[string]string{"openssl": "3.0.16-1~deb12u1"},
					Steps: []agentapi.Step{{Name: "install", OK: true, Started: at, Ended: at.Add(time.Second)}}}
				if _, err := svc.ReportResult(ctx, ag, "", res); err != nil {
					t.Fatal(err)
				}
				d, err := svc.Job(ctx, job.ID)
				if err != nil {
					t.Fatal(err)
				}
				if d.StartedAt == nil || !d.StartedAt.Equal(delivered.Add(tc.want)) {
					t.Errorf("started at %v; want %v", d.StartedAt, delivered.Add(tc.want))
				}
				if got, want := auditActions(t, db, job.ID), []string{"job.create", "job.deliver", "job.start", "job.result"}; !cmp.Equal(got, want) {
					t.Errorf("job audit = %v; want %v", got, want)
				}
			})
		})
	}
}

// TestFleetCreateJobs: a batch of jobs is queued whole, each audited, or
// not at all, the refused one named by its place in the batch.
func TestFleetCreateJobs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc, _, _ := newFleet(t, db)
		a := enroll(t, svc, "lis01", debianFacts("lis01"))
		b := enroll(t, svc, "lis02", debianFacts("lis02"))
		spec := func(agent string) fleet.JobSpec {
			return fleet.JobSpec{AgentID: agent, ChangeID: "CHG-B", Kind: agentapi.JobInstall,
				Packages: []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3.0.16-1~deb12u1"}}}
		}
		_, err := svc.CreateJobs(ctx, admin, []fleet.JobSpec{spec(a.ID), spec("no-such-agent"), spec(b.ID)})
		var je *fleet.JobError
		if !errors.As(err, &je) || je.Index != 1 || !errors.Is(err, errs.ErrInvalid) {
			t.Fatalf("CreateJobs with an unknown agent second = %v; want a JobError at index 1, Invalid", err)
		}
		if st, _ := svc.JobStatuses(ctx, "CHG-B"); len(st) != 0 {
			t.Fatalf("a refused batch left %d jobs", len(st))
		}
		jobs, err := svc.CreateJobs(ctx, admin, []fleet.JobSpec{spec(a.ID), spec(b.ID)})
		if err != nil || len(jobs) != 2 || jobs[0].AssetID != a.AssetID || jobs[1].AssetID != b.AssetID {
			t.Fatalf("CreateJobs = %+v, %v; want two jobs on the agents' assets", jobs, err)
		}
		for _, j := range jobs {
			if got := auditActions(t, db, j.ID); !cmp.Equal(got, []string{"job.create"}) {
				t.Errorf("job %s audit = %v; want job.create", j.ID, got)
			}
		}
	})
}
