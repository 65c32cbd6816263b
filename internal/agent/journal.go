package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// Version is the agent's version, set at build time with
// -ldflags "-X github.com/patchward/patchward/internal/agent.Version=...".
var Version = "dev"

// Journal states of a job. The journal is what makes jobs idempotent: a job
// is recorded (fsync'd) before anything is changed, so a second delivery is
// recognised and a restart mid-job finds out what really happened.
const (
	// JobReceived: recorded, nothing run yet.
	JobReceived = "received"
	// JobRunning: pre-checks or changes may have started.
	JobRunning = "running"
	// JobFinished: Result holds the outcome.
	JobFinished = "finished"
)

// Entry is one job's durable record.
type Entry struct {
	Job      agentapi.Job `json:"job"`
	State    string       `json:"state"`
	Attempt  int          `json:"attempt"`
	Received time.Time    `json:"received"`
	Updated  time.Time    `json:"updated"`
	// Previous holds the versions installed before the change ("" = not
	// installed), recorded before the package manager runs.
	Previous map[string]string `json:"previous,omitempty"`
	// Targets are the resolved versions the job sets, recorded with
	// Previous (a rollback job may leave them to the agent to find).
	Targets []agentapi.JobPackage `json:"targets,omitempty"`
	// Steps so far, so a crash report still shows what ran.
	Steps  []agentapi.Step     `json:"steps,omitempty"`
	Result *agentapi.JobResult `json:"result,omitempty"`
	// Reported is set once the server accepted Result.
	Reported bool `json:"reported"`
	// Rejected holds the server's refusal of Result (a 4xx other than a
	// conflict); such a result is not re-sent unless the job is offered again.
	Rejected string `json:"rejected,omitempty"`
	// RebootPending asks the runner to reboot after reporting; RebootDone is
	// set before the reboot command so the agent never reboots in a loop.
	RebootPending bool `json:"reboot_pending,omitempty"`
	RebootDone    bool `json:"reboot_done,omitempty"`
}

// Journal stores one fsync'd JSON file per job under the state directory.
type Journal struct{ dir string }

// OpenJournal uses dir (created 0700 if needed).
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open job journal: %w", err)
	}
	return &Journal{dir: dir}, nil
}

// fileName derives a safe file name from a job ID the server chose: the ID
// is untrusted and must not steer the path.
func (j *Journal) fileName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(j.dir, "job-"+hex.EncodeToString(sum[:16])+".json")
}

// Get returns the job's entry or an errs.NotFound error.
func (j *Journal) Get(id string) (Entry, error) {
	var e Entry
	b, err := os.ReadFile(j.fileName(id))
	if errors.Is(err, os.ErrNotExist) {
		return e, errs.E(errs.NotFound, "job %q is not in the journal", id)
	}
	if err != nil {
		return e, fmt.Errorf("read journal entry: %w", err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("journal entry for job %q is corrupt: %w", id, err)
	}
	if e.Job.ID != id {
		return e, fmt.Errorf("journal entry for job %q names job %q", id, e.Job.ID)
	}
	return e, nil
}

// Put writes the entry durably before returning.
func (j *Journal) Put(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode journal entry: %w", err)
	}
	if err := writeFileSync(j.fileName(e.Job.ID), b, 0o600, false); err != nil {
		return fmt.Errorf("write journal entry for job %q: %w", e.Job.ID, err)
	}
	return nil
}

// List returns every entry, oldest first. Corrupt files are skipped and
// reported together so one bad file does not stop the agent.
func (j *Journal) List() ([]Entry, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, "job-*.json"))
	if err != nil {
		return nil, err
	}
	var out []Entry
	var bad []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			bad = append(bad, filepath.Base(n))
			continue
		}
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil {
			bad = append(bad, filepath.Base(n))
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Received.Before(out[b].Received) })
	if len(bad) > 0 {
		return out, fmt.Errorf("unreadable journal entries: %s", strings.Join(bad, ", "))
	}
	return out, nil
}

// Prune deletes reported entries last updated before cutoff, so the
// journal does not grow without bound.
func (j *Journal) Prune(cutoff time.Time) error {
	entries, err := j.List()
	for _, e := range entries {
		if e.State == JobFinished && e.Reported && !e.RebootPending && e.Updated.Before(cutoff) {
			if rerr := os.Remove(j.fileName(e.Job.ID)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				return rerr
			}
		}
	}
	return err
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there; NTFS journals metadata
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
