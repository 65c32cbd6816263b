// Package agentapi is the protocol between patchward-agent and the server:
// wire types (this file), the canonical inventory hash and request signing
// (canonical.go) and the protocol's limits and validation (validate.go),
// all shared by both sides. The server's handlers live in the subpackage
// agentserver, so the agent binary links none of the server.
// Everything an agent sends is untrusted input: the server validates sizes,
// shapes and identities, and an agent can only read its own jobs and write
// its own results.
//
// Authentication. Enrollment presents a one-time, expiring enrollment token
// and the agent's Ed25519 public key; the agent keeps the private key. Every
// later request carries headers
//
//	Patchward-Agent: <agent id>
//	Patchward-Timestamp: <unix seconds>
//	Patchward-Signature: base64(ed25519.Sign(key, SigningString(...)))
//
// over the method, path, timestamp and SHA-256 of the body, so a stolen
// request cannot be replayed outside a short window or altered, and the
// server stores no secret that could impersonate an agent.
package agentapi

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// ProtocolVersion is the version of this protocol; the server refuses
// agents that speak an unknown major version.
const ProtocolVersion = 1

// Paths of the agent protocol, under the server's base URL.
const (
	PathEnroll  = "/agent/v1/enroll"
	PathCheckIn = "/agent/v1/checkin"
	PathJobs    = "/agent/v1/jobs"
	// PathJobResult is followed by the job ID: /agent/v1/jobs/{id}/result.
	PathJobResult = "/agent/v1/jobs/{id}/result"
)

// Header names of a signed request.
const (
	HeaderAgent     = "Patchward-Agent"
	HeaderTimestamp = "Patchward-Timestamp"
	HeaderSignature = "Patchward-Signature"
	// HeaderProtocol carries ProtocolVersion on every request.
	HeaderProtocol = "Patchward-Protocol"
)

// MaxClockSkew bounds how far a request's timestamp may differ from the
// server's clock.
const MaxClockSkew = 5 * time.Minute

// SigningString is what an agent signs for one request.
func SigningString(method, path string, ts time.Time, body []byte) string {
	sum := sha256.Sum256(body)
	return strings.Join([]string{"patchward-agent-v1", method, path, strconv.FormatInt(ts.Unix(), 10), hex.EncodeToString(sum[:])}, "\n")
}

// EnrollRequest registers a new agent.
type EnrollRequest struct {
	Token     string `json:"token"`
	PublicKey []byte `json:"public_key"` // Ed25519, 32 bytes
	Hostname  string `json:"hostname"`
	Facts     Facts  `json:"facts"`
}

// EnrollResponse names the agent's identity.
type EnrollResponse struct {
	AgentID string `json:"agent_id"`
	AssetID string `json:"asset_id"`
	// CheckInInterval is how often the agent should check in.
	CheckInInterval Duration `json:"checkin_interval"`
}

// Facts describe the host.
type Facts struct {
	Hostname       string   `json:"hostname"`
	OSName         string   `json:"os_name"`
	OSVersion      string   `json:"os_version"`
	OSID           string   `json:"os_id"` // os-release ID: debian, ubuntu, rhel, alpine, windows, macos
	Kernel         string   `json:"kernel,omitempty"`
	Arch           string   `json:"arch"`
	Firmware       string   `json:"firmware,omitempty"`
	IPAddresses    []string `json:"ip_addresses,omitempty"`
	MACAddress     string   `json:"mac_address,omitempty"`
	Serial         string   `json:"serial,omitempty"`
	Make           string   `json:"make,omitempty"`
	Model          string   `json:"model,omitempty"`
	TimeZone       string   `json:"time_zone"`
	UptimeSeconds  int64    `json:"uptime_seconds"`
	RebootRequired bool     `json:"reboot_required"`
	AgentVersion   string   `json:"agent_version"`
}

// Package is one installed package as the agent reports it.
type Package struct {
	Name          string `json:"name"`
	Version       string `json:"version"`
	Arch          string `json:"arch,omitempty"`
	Ecosystem     string `json:"ecosystem"`
	PURL          string `json:"purl,omitempty"`
	SourceName    string `json:"source_name,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
}

// PendingUpdate is an update the OS package manager offers.
type PendingUpdate struct {
	Name             string `json:"name"`
	CurrentVersion   string `json:"current_version"`
	AvailableVersion string `json:"available_version"`
	Security         bool   `json:"security,omitempty"`
}

// CheckInRequest is the periodic heartbeat. Inventory is sent only when its
// hash differs from the one the server last acknowledged.
type CheckInRequest struct {
	Facts Facts `json:"facts"`
	// InventoryHash is the SHA-256 (hex) of the agent's canonical package
	// list; the server compares it with the last one it stored.
	InventoryHash string `json:"inventory_hash"`
	// Inventory is the full package list, present only when the server asked
	// for it (InventoryWanted) or the hash changed since the last ack.
	Inventory []Package       `json:"inventory,omitempty"`
	Pending   []PendingUpdate `json:"pending,omitempty"`
	Running   []string        `json:"running_jobs,omitempty"`
}

// CheckInResponse tells the agent what to do next.
type CheckInResponse struct {
	// InventoryWanted asks for the full inventory on the next check-in
	// (the server does not know InventoryHash).
	InventoryWanted bool `json:"inventory_wanted"`
	// JobsAvailable says there are jobs to pull.
	JobsAvailable bool `json:"jobs_available"`
	// NextCheckIn is when to check in again; the server raises it to make
	// agents back off under load.
	NextCheckIn Duration `json:"next_checkin"`
	// Window is the agent's maintenance window, so it can refuse jobs
	// outside it even when the server says otherwise.
	Window *Window `json:"window,omitempty"`
}

// Window is a maintenance window in the agent's local time zone: weekly
// Slots, and dated Openings for windows a week cannot express (the monthly
// baseline after Patch Tuesday, a quarterly vendor window). The server sends
// the openings of the coming weeks; an agent that has not heard from it
// since the last one ended has no opening and refuses non-emergency jobs.
type Window struct {
	Name     string    `json:"name"`
	TimeZone string    `json:"time_zone"`
	Slots    []Slot    `json:"slots"`
	Openings []Opening `json:"openings,omitempty"`
}

// Opening is one dated opening of a window, [Start, End).
type Opening struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// MaxOpenings bounds the dated openings one window may carry.
const MaxOpenings = 200

// Slot is one weekly opening: Day (0=Sunday) and start/end "HH:MM" local;
// an end before the start runs past midnight.
type Slot struct {
	Day   int    `json:"day"`
	Start string `json:"start"`
	End   string `json:"end"`
}

// Job is work for one agent.
type Job struct {
	ID       string `json:"id"`
	ChangeID string `json:"change_id,omitempty"`
	Kind     string `json:"kind"` // install, rollback, inventory
	// Emergency jobs may run outside the maintenance window.
	Emergency   bool         `json:"emergency"`
	AllowReboot bool         `json:"allow_reboot"`
	Packages    []JobPackage `json:"packages"`
	PreChecks   []Check      `json:"pre_checks,omitempty"`
	PostChecks  []Check      `json:"post_checks,omitempty"`
	NotBefore   time.Time    `json:"not_before"`
	Deadline    time.Time    `json:"deadline"`
}

// Job kinds.
const (
	JobInstall   = "install"
	JobRollback  = "rollback"
	JobInventory = "inventory"
)

// JobPackage is one package to set to a version.
type JobPackage struct {
	Name          string `json:"name"`
	TargetVersion string `json:"target_version"`
	// PreviousVersion is filled in by the agent before installing, for
	// rollback.
	PreviousVersion string `json:"previous_version,omitempty"`
}

// Check is a pre- or post-check the agent runs.
type Check struct {
	Kind string `json:"kind"` // disk_space, pkg_lock_free, backup_hook, service_active, command
	// Arg is the check's argument: MiB free, a service name, or the name of
	// a hook/command configured on the agent (never a shell string from the
	// server: the server cannot make an agent run arbitrary commands).
	Arg string `json:"arg,omitempty"`
}

// JobsResponse lists the agent's jobs that are ready.
type JobsResponse struct {
	Jobs []Job `json:"jobs"`
}

// JobResult reports a job's outcome, step by step.
type JobResult struct {
	JobID string `json:"job_id"`
	// Attempt distinguishes re-sent results of one run (idempotency).
	Attempt int    `json:"attempt"`
	Status  string `json:"status"` // succeeded, failed, rolled_back, refused
	Reason  string `json:"reason,omitempty"`
	Steps   []Step `json:"steps"`
	// Installed is the resulting version per package.
	Installed map[string]string `json:"installed,omitempty"`
}

// Job statuses reported by agents.
const (
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
	StatusRolledBack = "rolled_back"
	StatusRefused    = "refused"
)

// Step is one command or check the agent ran.
type Step struct {
	Name     string    `json:"name"`
	Command  []string  `json:"command,omitempty"`
	ExitCode int       `json:"exit_code"`
	Output   string    `json:"output,omitempty"` // bounded by the agent
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	OK       bool      `json:"ok"`
}

// Duration is a time.Duration that travels as a Go duration string.
type Duration struct{ time.Duration }

// MarshalText encodes d like "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}
