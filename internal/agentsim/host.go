package agentsim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
)

// host is one simulated agent. Only its own goroutine touches it after
// enrollment.
type host struct {
	s       *sim
	rng     *rand.Rand
	key     ed25519.PrivateKey
	id      string
	assetID string
	facts   agentapi.Facts
	booted  time.Time
	inv     *variant
	pending []agentapi.PendingUpdate
	hash    string
	// acked is the inventory hash the server last accepted; the inventory
	// is sent whenever hash differs from it.
	acked    string
	interval time.Duration
	// done holds jobs already run, so a job delivered twice runs once;
	// unsent holds results the server has not acknowledged yet.
	done   map[string]bool
	unsent []agentapi.JobResult
	// last remembers each endpoint's last request, so an identical one is
	// not signed within the same second: it would be indistinguishable from
	// a replay, and the server refuses those.
	last map[string]signedAt
}

type signedAt struct {
	sec int64
	sum [32]byte
}

var hardware = []struct{ make, model string }{
	{"QEMU", "Standard PC (Q35 + ICH9, 2009)"},
	{"Dell Inc.", "PowerEdge R650"},
	{"HPE", "ProLiant DL360 Gen10"},
	{"VMware, Inc.", "VMware Virtual Platform"},
	{"Dell Inc.", "OptiPlex 7090"},
	{"LENOVO", "ThinkCentre M75q Gen 2"},
}

func newHost(s *sim, i int, base []agentapi.Package, index map[string]int) *host {
	rng := rand.New(rand.NewPCG(s.opt.Seed, uint64(i)))
	hw := hardware[rng.IntN(len(hardware))]
	name := fmt.Sprintf("%s-%05d", s.opt.HostPrefix, i)
	h := &host{s: s, rng: rng, done: map[string]bool{}, last: map[string]signedAt{}, booted: s.now().Add(-time.Duration(rng.IntN(30*24)) * time.Hour),
		facts: agentapi.Facts{Hostname: name, OSName: "Debian GNU/Linux", OSVersion: "12 (bookworm)", OSID: "debian",
			Kernel: fmt.Sprintf("6.1.0-%d-amd64", 25+rng.IntN(6)), Arch: "amd64",
			IPAddresses: []string{fmt.Sprintf("10.%d.%d.%d", 64+i/62500, i/250%250, i%250+1)},
			MACAddress:  fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff),
			Make:        hw.make, Model: hw.model, Serial: fmt.Sprintf("SIM%08X", rng.Uint32()),
			TimeZone: "America/Chicago", AgentVersion: "sim-1"}}
	h.inv, h.pending = hostInventory(base, index, "debian-12", rng)
	h.facts.RebootRequired = rng.IntN(10) == 0
	h.hash = agentapi.InventoryHash(h.inv.packages())
	return h
}

// request signs and sends one protocol request.
func (h *host) request(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, h.s.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.id == "" {
		req.Header.Set(agentapi.HeaderProtocol, strconv.Itoa(agentapi.ProtocolVersion))
	} else {
		now, err := h.distinct(ctx, method+" "+path, body)
		if err != nil {
			return err
		}
		agentapi.Sign(req, h.id, h.key, body, now)
	}
	return h.s.send(req, out)
}

// distinct returns the time to sign a request with, waiting for the next
// second if the same request was signed in this one.
func (h *host) distinct(ctx context.Context, endpoint string, body []byte) (time.Time, error) {
	sum := sha256.Sum256(body)
	now := h.s.now()
	if prev, ok := h.last[endpoint]; ok && prev.sec == now.Unix() && prev.sum == sum {
		wait := time.Unix(now.Unix()+1, 0).Sub(now)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return now, ctx.Err()
		case <-t.C:
		}
		now = h.s.now()
	}
	h.last[endpoint] = signedAt{sec: now.Unix(), sum: sum}
	return now, nil
}

func (h *host) enroll(ctx context.Context, i int) error {
	tok, err := h.s.token(ctx, i)
	if err != nil {
		return err
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	var resp agentapi.EnrollResponse
	if err := h.request(ctx, "POST", agentapi.PathEnroll, agentapi.EnrollRequest{Token: tok, PublicKey: pub, Hostname: h.facts.Hostname, Facts: h.facts}, &resp); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	h.id, h.assetID, h.key, h.interval = resp.AgentID, resp.AssetID, key, resp.CheckInInterval.Duration
	return nil
}

// run checks in Rounds times (or until ctx ends), the first time after a
// random part of one interval so the fleet does not arrive at once.
func (h *host) run(ctx context.Context) {
	ramp := h.s.opt.Ramp
	if ramp <= 0 {
		ramp = h.waitFor(h.interval)
	}
	wait := time.Duration(h.rng.Int64N(int64(ramp) + 1))
	var backoff time.Duration
	for round := 0; h.s.opt.Rounds == 0 || round < h.s.opt.Rounds; round++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		next, err := h.round(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.s.c.errors.Add(1)
			h.s.log.WarnContext(ctx, "simulated agent round failed", "host", h.facts.Hostname, "err", err)
			// Back off like a well-behaved agent: an overloaded server
			// should not be hit again at once by everyone it failed.
			backoff = min(max(2*backoff, time.Second), time.Minute)
			wait = max(h.waitFor(h.interval), h.s.jittered(backoff, h.rng))
			continue
		}
		backoff = 0
		wait = h.waitFor(next)
	}
}

// waitFor is the wait before the next check-in: the server's interval, or
// the configured one with jitter.
func (h *host) waitFor(server time.Duration) time.Duration {
	if h.s.opt.CheckInInterval > 0 {
		return h.s.jittered(h.s.opt.CheckInInterval, h.rng)
	}
	return max(server, time.Millisecond)
}

// round is one check-in, with the inventory when it changed (or the server
// asks), then any jobs, and returns the server's next interval.
func (h *host) round(ctx context.Context) (time.Duration, error) {
	resp, err := h.checkIn(ctx, h.hash != h.acked, nil)
	if err != nil {
		return 0, err
	}
	if resp.InventoryWanted {
		if resp, err = h.checkIn(ctx, true, nil); err != nil {
			return 0, err
		}
	}
	if resp.JobsAvailable || len(h.unsent) > 0 {
		if err := h.jobs(ctx); err != nil {
			return 0, err
		}
	}
	return resp.NextCheckIn.Duration, nil
}

func (h *host) checkIn(ctx context.Context, withInventory bool, running []string) (agentapi.CheckInResponse, error) {
	h.facts.UptimeSeconds = int64(h.s.now().Sub(h.booted).Seconds())
	req := agentapi.CheckInRequest{Facts: h.facts, InventoryHash: h.hash, Pending: h.pending, Running: running}
	if withInventory {
		req.Inventory = h.inv.packages()
	}
	var resp agentapi.CheckInResponse
	if err := h.request(ctx, "POST", agentapi.PathCheckIn, req, &resp); err != nil {
		return resp, fmt.Errorf("check-in: %w", err)
	}
	h.s.c.checkIns.Add(1)
	if withInventory {
		h.s.c.inventories.Add(1)
		if !resp.InventoryWanted {
			h.acked = h.hash
		}
	}
	return resp, nil
}

// jobs pulls the host's jobs, says which it is running, runs the new ones
// and reports every result not yet acknowledged.
func (h *host) jobs(ctx context.Context) error {
	var resp agentapi.JobsResponse
	if err := h.request(ctx, "GET", agentapi.PathJobs, nil, &resp); err != nil {
		return fmt.Errorf("pull jobs: %w", err)
	}
	var fresh []agentapi.Job
	for _, j := range resp.Jobs {
		if !h.done[j.ID] {
			fresh = append(fresh, j)
		}
	}
	if len(fresh) > 0 {
		ids := make([]string, len(fresh))
		for i, j := range fresh {
			ids[i] = j.ID
		}
		if _, err := h.checkIn(ctx, false, ids); err != nil {
			return err
		}
	}
	for _, j := range fresh {
		h.unsent = append(h.unsent, h.execute(j))
		h.done[j.ID] = true
	}
	var keep []agentapi.JobResult
	for _, res := range h.unsent {
		var ack agentapi.ResultResponse
		err := h.request(ctx, "POST", strings.Replace(agentapi.PathJobResult, "{id}", res.JobID, 1), res, &ack)
		var ae *apiError
		switch {
		case err == nil, errors.As(err, &ae) && (ae.Status == http.StatusConflict || ae.Status == http.StatusNotFound):
			// Recorded, recorded before, or no longer ours: nothing to retry.
		default:
			h.s.c.errors.Add(1)
			keep = append(keep, res)
		}
	}
	h.unsent = keep
	return nil
}

// execute simulates running a job and returns its result. Step times are
// laid out from now as a real run's would be; nothing sleeps.
func (h *host) execute(j agentapi.Job) agentapi.JobResult {
	h.s.c.jobsRun.Add(1)
	t := h.s.now().UTC()
	var steps []agentapi.Step
	step := func(name string, cmd []string, code int, out string) bool {
		d := time.Duration(50+h.rng.IntN(2000)) * time.Millisecond
		steps = append(steps, agentapi.Step{Name: name, Command: cmd, ExitCode: code, Output: out, Started: t, Ended: t.Add(d), OK: code == 0})
		t = t.Add(d)
		return code == 0
	}
	res := agentapi.JobResult{JobID: j.ID, Attempt: 1}
	if !j.Deadline.IsZero() && h.s.now().After(j.Deadline) {
		res.Status, res.Reason = agentapi.StatusRefused, "deadline passed before the job could start"
		h.s.c.refused.Add(1)
		return res
	}
	if j.Kind == agentapi.JobInventory {
		step("collect inventory", []string{"dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n"}, 0, fmt.Sprintf("%d packages", len(h.inv.packages())))
		h.acked = "" // send it on the next check-in
		res.Status = agentapi.StatusSucceeded
		res.Steps = steps
		h.s.c.succeeded.Add(1)
		return res
	}
	fail := h.rng.Float64() < h.s.opt.FailureRate
	failInstall := fail && h.rng.IntN(2) == 0
	for _, c := range j.PreChecks {
		step("pre-check "+c.Kind, checkCommand(c), 0, checkOutput(c))
	}
	previous := map[string]string{}
	var args []string
	for _, p := range j.Packages {
		previous[p.Name] = h.inv.installed(p.Name)
		args = append(args, p.Name+"="+p.TargetVersion)
	}
	cmd := append([]string{"apt-get", "install", "-y", "--no-install-recommends", "--allow-downgrades"}, args...)
	if failInstall {
		p := j.Packages[0]
		step("install", cmd, 100, fmt.Sprintf("Reading package lists...\nE: Version '%s' for '%s' was not found", p.TargetVersion, p.Name))
		res.Status, res.Reason, res.Steps = agentapi.StatusFailed, "install failed: apt-get exited 100", steps
		h.s.c.failed.Add(1)
		return res
	}
	var out strings.Builder
	out.WriteString("Reading package lists...\nBuilding dependency tree...\n")
	for _, p := range j.Packages {
		fmt.Fprintf(&out, "Preparing to unpack .../%s_%s_amd64.deb ...\nUnpacking %s (%s) over (%s) ...\nSetting up %s (%s) ...\n",
			p.Name, p.TargetVersion, p.Name, p.TargetVersion, previous[p.Name], p.Name, p.TargetVersion)
	}
	step("install", cmd, 0, out.String())
	for _, p := range j.Packages {
		h.setVersion(p.Name, p.TargetVersion)
	}
	res.Installed = map[string]string{}
	for _, p := range j.Packages {
		step("verify "+p.Name, []string{"dpkg-query", "-W", "-f", "${Version}", p.Name}, 0, p.TargetVersion)
		res.Installed[p.Name] = p.TargetVersion
	}
	postFailed := false
	for i, c := range j.PostChecks {
		code := 0
		if fail && i == len(j.PostChecks)-1 {
			code, postFailed = 3, true
		}
		step("post-check "+c.Kind, checkCommand(c), code, checkOutput(c))
	}
	if fail && !postFailed {
		// No post-check to fail: the health check configured on the host does.
		step("post-check health", []string{"/etc/patchward/health.d/default"}, 1, "health check failed: service did not answer")
		postFailed = true
	}
	if postFailed {
		var back []string
		for _, p := range j.Packages {
			back = append(back, p.Name+"="+previous[p.Name])
			h.setVersion(p.Name, previous[p.Name])
			res.Installed[p.Name] = previous[p.Name]
		}
		step("rollback", append([]string{"apt-get", "install", "-y", "--allow-downgrades"}, back...), 0, "Setting up previous versions ...")
		res.Status, res.Reason = agentapi.StatusRolledBack, "post-check failed; rolled back to the previous versions"
		h.s.c.rolledBack.Add(1)
	} else {
		res.Status = agentapi.StatusSucceeded
		h.s.c.succeeded.Add(1)
	}
	res.Steps = steps
	return res
}

func checkCommand(c agentapi.Check) []string {
	switch c.Kind {
	case "disk_space":
		return []string{"df", "--output=avail", "-BM", "/var"}
	case "pkg_lock_free":
		return []string{"fuser", "/var/lib/dpkg/lock-frontend"}
	case "service_active":
		return []string{"systemctl", "is-active", c.Arg}
	}
	return []string{"/etc/patchward/hooks.d/" + c.Arg}
}

func checkOutput(c agentapi.Check) string {
	switch c.Kind {
	case "disk_space":
		return "Avail\n18342M"
	case "service_active":
		return "active"
	}
	return ""
}

// setVersion installs (or changes) a package in the simulated inventory
// and drops it from the pending updates once current.
func (h *host) setVersion(name, version string) {
	if version == "" {
		return
	}
	delete(h.inv.removed, name)
	if i, ok := h.inv.index[name]; ok && h.inv.base[i].Version == version {
		delete(h.inv.version, name)
	} else {
		h.inv.version[name] = version
	}
	h.pending = slices.DeleteFunc(h.pending, func(u agentapi.PendingUpdate) bool { return u.Name == name && u.AvailableVersion == version })
	h.hash = agentapi.InventoryHash(h.inv.packages())
}
