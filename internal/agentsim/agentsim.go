// Package agentsim runs many simulated endpoint agents in one process
// against a real Patchward server, speaking the real agent protocol: each
// host has its own Ed25519 key, enrolls with its own one-time token, checks
// in with jitter, sends its inventory when it changed, pulls jobs and
// reports step-by-step results with a configurable failure rate. The
// inventories are drawn from a real dpkg status file with a few versions
// varied per host. It is for demos, for the deployment tests, and for load
// tests of the server's check-in path (`patchward-agent simulate`).
//
// A simulated host does not install anything: job steps carry the commands
// a Debian agent would run and plausible output, and a successful install
// moves the host's inventory to the target versions, so the next check-in
// reports the change as a real host would.
package agentsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
)

// Options configures a simulation.
type Options struct {
	// Server is the server's base URL, e.g. http://127.0.0.1:8080.
	Server string
	// Hosts is how many agents to simulate.
	Hosts int
	// HostPrefix starts every simulated host name (default "sim").
	HostPrefix string
	// Enrollment tokens come from, in order of preference: EnrollmentTokens
	// (one per host, since tokens are one-time), NewToken, or the admin API
	// with AdminToken (a bearer API token of a user allowed to create
	// enrollment tokens).
	EnrollmentTokens []string
	NewToken         func(ctx context.Context) (string, error)
	AdminToken       string
	// CheckInInterval, if set, replaces the interval the server asks for
	// (useful for demos and load tests; real agents obey the server).
	CheckInInterval time.Duration
	// Jitter spreads each wait by ± this fraction (default 0.1).
	Jitter float64
	// Ramp spreads the hosts' first check-ins evenly at random over this
	// long (default one check-in interval), so a large fleet's first
	// inventories do not all arrive at once.
	Ramp time.Duration
	// FailureRate is the fraction of jobs that fail (half of those by a
	// failed install, half by a failed post-check that is rolled back).
	FailureRate float64
	// PackagesFrom is a dpkg status file the inventories are drawn from
	// (default /var/lib/dpkg/status).
	PackagesFrom string
	// Rounds is how many check-ins each host makes; 0 runs until ctx ends.
	Rounds int
	// Seed makes the hosts' inventories and failures reproducible.
	Seed uint64
	// Client is the HTTP client (default: 30s timeout, keep-alive pool
	// sized for the hosts).
	Client *http.Client
	Log    *slog.Logger
	// Now is the clock requests are signed with (default time.Now).
	Now func() time.Time
	// Enrolled, if set, is called once every host has enrolled and before
	// the first check-in: tests and demos queue jobs for the new agents
	// there.
	Enrolled func(ctx context.Context, hosts []Host) error
}

// Host is one simulated agent as enrolled.
type Host struct {
	Hostname string
	AgentID  string
	AssetID  string
}

// Stats counts what the simulation did.
type Stats struct {
	Enrolled        int64  `json:"enrolled"`
	CheckIns        int64  `json:"checkins"`
	InventoriesSent int64  `json:"inventories_sent"`
	JobsRun         int64  `json:"jobs_run"`
	JobsSucceeded   int64  `json:"jobs_succeeded"`
	JobsFailed      int64  `json:"jobs_failed"`
	JobsRolledBack  int64  `json:"jobs_rolled_back"`
	JobsRefused     int64  `json:"jobs_refused"`
	Errors          int64  `json:"errors"`
	Hosts           []Host `json:"-"`
}

type counters struct {
	enrolled, checkIns, inventories, jobsRun, succeeded, failed, rolledBack, refused, errors atomic.Int64
}

func (c *counters) stats(hosts []Host) Stats {
	return Stats{Enrolled: c.enrolled.Load(), CheckIns: c.checkIns.Load(), InventoriesSent: c.inventories.Load(),
		JobsRun: c.jobsRun.Load(), JobsSucceeded: c.succeeded.Load(), JobsFailed: c.failed.Load(),
		JobsRolledBack: c.rolledBack.Load(), JobsRefused: c.refused.Load(), Errors: c.errors.Load(), Hosts: hosts}
}

// sim is one running simulation.
type sim struct {
	opt    Options
	base   string
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	c      counters
}

// Run enrolls Options.Hosts simulated agents and runs them until each has
// made Options.Rounds check-ins, or until ctx ends when Rounds is zero. A
// host's errors are counted and logged, not fatal: a load test wants to
// see them. Run fails only when it cannot start: bad options, unreadable
// packages, or no host could enroll.
func Run(ctx context.Context, opt Options) (Stats, error) {
	s, base, err := newSim(opt)
	if err != nil {
		return Stats{}, err
	}
	hosts, err := s.enrollAll(ctx, base)
	if err != nil {
		return s.c.stats(nil), err
	}
	infos := make([]Host, len(hosts))
	for i, h := range hosts {
		infos[i] = Host{Hostname: h.facts.Hostname, AgentID: h.id, AssetID: h.assetID}
	}
	if opt.Enrolled != nil {
		if err := opt.Enrolled(ctx, infos); err != nil {
			return s.c.stats(infos), fmt.Errorf("agentsim: after enrollment: %w", err)
		}
	}
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() { h.run(ctx) })
	}
	wg.Wait()
	st := s.c.stats(infos)
	if opt.Rounds > 0 && ctx.Err() != nil {
		return st, ctx.Err()
	}
	return st, nil
}

func newSim(opt Options) (*sim, []agentapi.Package, error) {
	if opt.Server == "" || opt.Hosts <= 0 {
		return nil, nil, errors.New("agentsim: a server URL and at least one host are required")
	}
	if opt.FailureRate < 0 || opt.FailureRate > 1 {
		return nil, nil, errors.New("agentsim: the failure rate is a fraction between 0 and 1")
	}
	if opt.Jitter <= 0 || opt.Jitter >= 1 {
		opt.Jitter = 0.1
	}
	if opt.HostPrefix == "" {
		opt.HostPrefix = "sim"
	}
	if opt.PackagesFrom == "" {
		opt.PackagesFrom = "/var/lib/dpkg/status"
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: min(opt.Hosts, 512), MaxIdleConnsPerHost: min(opt.Hosts, 512), IdleConnTimeout: 90 * time.Second}}
	}
	f, err := os.Open(opt.PackagesFrom)
	if err != nil {
		return nil, nil, fmt.Errorf("agentsim: packages: %w", err)
	}
	defer f.Close()
	base, err := ParseDpkgStatus(f, "Debian:12", "debian-12")
	if err != nil {
		return nil, nil, fmt.Errorf("agentsim: %s: %w", opt.PackagesFrom, err)
	}
	return &sim{opt: opt, base: strings.TrimSuffix(opt.Server, "/"), client: opt.Client, log: opt.Log, now: opt.Now}, base, nil
}

// token returns the enrollment token for host i.
func (s *sim) token(ctx context.Context, i int) (string, error) {
	switch {
	case len(s.opt.EnrollmentTokens) > 0:
		if i >= len(s.opt.EnrollmentTokens) {
			return "", fmt.Errorf("only %d enrollment tokens for %d hosts (tokens are one-time)", len(s.opt.EnrollmentTokens), s.opt.Hosts)
		}
		return s.opt.EnrollmentTokens[i], nil
	case s.opt.NewToken != nil:
		return s.opt.NewToken(ctx)
	case s.opt.AdminToken != "":
		return s.adminToken(ctx)
	}
	return "", errors.New("no enrollment token: give tokens, a token source or an admin API token")
}

// adminToken creates a one-hour enrollment token through the admin API.
func (s *sim) adminToken(ctx context.Context) (string, error) {
	body, _ := json.Marshal(map[string]any{"name": "agent simulator", "expires_in": "1h"})
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/api/v1/enrollment-tokens", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.opt.AdminToken)
	var out struct {
		Secret string `json:"secret"`
	}
	if err := s.send(req, &out); err != nil {
		return "", fmt.Errorf("create enrollment token: %w", err)
	}
	return out.Secret, nil
}

// enrollAll creates and enrolls the hosts, eight at a time: enrollment is
// a write transaction on the server, and a simulator should not be a
// thundering herd before it has even started.
func (s *sim) enrollAll(ctx context.Context, base []agentapi.Package) ([]*host, error) {
	hosts := make([]*host, s.opt.Hosts)
	errc := make(chan error, s.opt.Hosts)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	index := indexPackages(base)
	for i := range hosts {
		hosts[i] = newHost(s, i, base, index)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := hosts[i].enroll(ctx, i); err != nil {
				s.c.errors.Add(1)
				errc <- fmt.Errorf("%s: %w", hosts[i].facts.Hostname, err)
				hosts[i] = nil
				return
			}
			s.c.enrolled.Add(1)
		})
	}
	wg.Wait()
	close(errc)
	var errList []error
	for err := range errc {
		errList = append(errList, err)
	}
	var ok []*host
	for _, h := range hosts {
		if h != nil {
			ok = append(ok, h)
		}
	}
	if len(errList) > 0 {
		s.log.WarnContext(ctx, "some simulated hosts could not enroll", "failed", len(errList), "first", errList[0])
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("agentsim: no host could enroll: %w", errors.Join(errList...))
	}
	return ok, nil
}

// apiError is a non-200 answer from the server.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("server answered %d: %s", e.Status, e.Msg) }

// send does req and decodes a 200 answer into out.
func (s *sim) send(req *http.Request, out any) error {
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return &apiError{Status: resp.StatusCode, Msg: e.Error}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// jittered spreads d by ± the jitter fraction.
func (s *sim) jittered(d time.Duration, rng *rand.Rand) time.Duration {
	return time.Duration(float64(d) * (1 + s.opt.Jitter*(2*rng.Float64()-1)))
}
