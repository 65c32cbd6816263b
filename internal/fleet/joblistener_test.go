package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

// resultStore is a hand-written fake of the storage ReportResult touches:
// one job, its results, and a flag that says whether a transaction is open,
// so the test can tell the listener ran after the commit.
type resultStore struct {
	Tx      // nil: any other call panics, which flags an unexpected use
	job     Job
	results map[int]Result
	inTx    bool
	failTx  bool
}

func (f *resultStore) Transact(ctx context.Context, fn func(Tx) error) error {
	f.inTx = true
	defer func() { f.inTx = false }()
	saved, savedRes := f.job, map[int]Result{}
	for k, v := range f.results {
		savedRes[k] = v
	}
	err := fn(f)
	if err == nil && f.failTx {
		err = errs.E(errs.Conflict, "commit failed")
	}
	if err != nil {
		f.job, f.results = saved, savedRes
	}
	return err
}

func (f *resultStore) Touch(context.Context, string, string, time.Time) error { return nil }

func (f *resultStore) LockJob(_ context.Context, id string) (Job, error) {
	if id != f.job.ID {
		return Job{}, errs.E(errs.NotFound, "no job %s", id)
	}
	return f.job, nil
}

func (f *resultStore) GetResult(_ context.Context, _ string, attempt int) (Result, error) {
	if r, ok := f.results[attempt]; ok {
		return r, nil
	}
	return Result{}, errs.E(errs.NotFound, "no result")
}

func (f *resultStore) InsertResult(_ context.Context, r *Result) error {
	f.results[r.Attempt] = *r
	return nil
}

func (f *resultStore) UpdateJob(_ context.Context, j *Job) error { f.job = *j; return nil }

func (f *resultStore) AppendAudit(context.Context, audit.Record) error { return nil }

func (f *resultStore) GetAssetRecord(context.Context, string) (inventory.Asset, error) {
	return inventory.Asset{}, errs.E(errs.NotFound, "asset gone")
}

// jobEars records what a JobListener heard and whether the store was still
// inside its transaction then.
type jobEars struct {
	store *resultStore
	heard []Job
	inTx  bool
}

func (l *jobEars) JobFinished(_ context.Context, j Job) {
	l.heard = append(l.heard, j)
	l.inTx = l.inTx || l.store.inTx
}

// TestJobListener checks the result hook: it hears each committed result
// once, after the commit, with the job as stored; a repeated attempt, a
// refused result and a failed commit are not reported.
func TestJobListener(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	ag := Agent{ID: "agent-1", AssetID: "asset-1"}
	newWorld := func() (*Service, *resultStore, *jobEars) {
		st := &resultStore{job: Job{ID: "job-1", AgentID: ag.ID, AssetID: ag.AssetID, Kind: agentapi.JobInventory, State: JobRunning},
			results: map[int]Result{}}
		ears := &jobEars{store: st}
		return NewService(st, Options{Now: func() time.Time { return now }, JobListener: ears}), st, ears
	}
	res := agentapi.JobResult{JobID: "job-1", Attempt: 1, Status: agentapi.StatusFailed, Reason: "disk full",
		Steps: []agentapi.Step{{Name: "install", ExitCode: 1}}}
	ctx := context.Background()

	t.Run("committed result", func(t *testing.T) {
		s, _, ears := newWorld()
		if dup, err := s.ReportResult(ctx, ag, "", res); err != nil || dup {
			t.Fatalf("ReportResult = %v, %v; want no duplicate, no error", dup, err)
		}
		if ears.inTx {
			t.Errorf("JobFinished ran inside the transaction; want after the commit")
		}
		want := []string{"job-1 failed disk full"}
		var got []string
		for _, j := range ears.heard {
			got = append(got, j.ID+" "+string(j.State)+" "+j.Reason)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("heard (-want +got):\n%s", diff)
		}
		// The same attempt again changes nothing and is not reported.
		if dup, err := s.ReportResult(ctx, ag, "", res); err != nil || !dup {
			t.Fatalf("repeated ReportResult = %v, %v; want duplicate", dup, err)
		}
		if len(ears.heard) != 1 {
			t.Errorf("after a repeated attempt heard %d results; want 1", len(ears.heard))
		}
		// Another attempt for the finished job is refused, and not reported.
		again := res
		again.Attempt = 2
		if _, err := s.ReportResult(ctx, ag, "", again); errs.KindOf(err) != errs.Conflict {
			t.Fatalf("second attempt on a finished job = %v; want Conflict", err)
		}
		if len(ears.heard) != 1 {
			t.Errorf("after a refused attempt heard %d results; want 1", len(ears.heard))
		}
	})
	t.Run("failed commit", func(t *testing.T) {
		s, st, ears := newWorld()
		st.failTx = true
		if _, err := s.ReportResult(ctx, ag, "", res); err == nil {
			t.Fatal("ReportResult with a failing commit succeeded")
		}
		if len(ears.heard) != 0 {
			t.Errorf("heard %d results of a transaction that did not commit; want 0", len(ears.heard))
		}
	})
	t.Run("another agent's job", func(t *testing.T) {
		s, _, ears := newWorld()
		other := Agent{ID: "agent-2", AssetID: "asset-2"}
		if _, err := s.ReportResult(ctx, other, "", res); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("ReportResult by another agent = %v; want NotFound", err)
		}
		if len(ears.heard) != 0 {
			t.Errorf("heard %d results; want 0", len(ears.heard))
		}
	})
}
