package agentapi

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/package-url/packageurl-go"

	"github.com/patchward/patchward/internal/errs"
)

// Limits of the protocol. The server refuses anything larger (413 for a
// body over its cap, 400 for a field or list over its bound), so one broken
// or hostile agent cannot fill the database or the server's memory. Agents
// bound what they send to the same numbers.
const (
	MaxEnrollBody  = 64 << 10 // bytes
	MaxCheckInBody = 8 << 20  // bytes, with a full inventory
	MaxResultBody  = 8 << 20  // bytes, with every step's output
	MaxPackages    = 50_000   // inventory entries per check-in
	MaxPending     = 10_000   // pending updates per check-in
	MaxRunning     = 100      // running job IDs per check-in
	MaxIPs         = 64       // IP addresses in the facts
	MaxSteps       = 100      // steps per job result
	MaxStepOutput  = 32 << 10 // bytes of output per step; agents truncate
	MaxCommandArgs = 64       // arguments per step command
	MaxArgLen      = 1024     // bytes per command argument
	MaxInstalled   = 1000     // entries in JobResult.Installed
	MaxField       = 200      // names, versions and most facts: the inventory's own bound
	MaxPURL        = 400      // package URLs, as the inventory allows
	MaxReason      = 4000     // free-text reasons
	MaxToken       = 128      // enrollment token length
	MaxID          = 64       // agent and job IDs
	MaxAttempt     = 1_000_000
)

// maxProblems caps how many problems one validation reports: a 50,000-entry
// inventory of garbage deserves one readable error, not 50,000.
const maxProblems = 20

// problems collects validation failures up to maxProblems.
type problems struct {
	v errs.Validation
	n int
}

func (p *problems) add(field, format string, args ...any) {
	if p.n < maxProblems {
		p.v.Add(field, format, args...)
	}
	p.n++
}

func (p *problems) err(what string) error {
	if p.n > maxProblems {
		p.v.Add("more", "%d further problems not listed", p.n-maxProblems)
	}
	return p.v.Err(what)
}

// Printable reports whether s is valid UTF-8 made only of printable
// characters (letters, marks, numbers, punctuation, symbols, ASCII space):
// no control characters, so nothing can forge a separator or a log line.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// text checks an optional printable field of at most max bytes.
func (p *problems) text(field, s string, max int, required bool) {
	switch {
	case s == "":
		if required {
			p.add(field, "is required")
		}
	case len(s) > max:
		p.add(field, "must be at most %d bytes", max)
	case !Printable(s):
		p.add(field, "must be printable text (no control characters)")
	}
}

var (
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9._-]{0,252})$`)
	osIDRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	archRE     = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
	tzRE       = regexp.MustCompile(`^[A-Za-z0-9_+./-]{1,64}$`)
	macRE      = regexp.MustCompile(`^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$`)
	hashRE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	idRE       = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

// ValidID reports whether s has the shape of an agent or job ID.
func ValidID(s string) bool { return idRE.MatchString(s) }

// ValidHostname reports whether s is a host name an agent may report.
func ValidHostname(s string) bool { return hostnameRE.MatchString(s) }

// Validate checks facts as the server receives them.
func (f *Facts) Validate() error {
	var p problems
	f.validate(&p, "facts.")
	return p.err("invalid facts")
}

func (f *Facts) validate(p *problems, prefix string) {
	if f.Hostname != "" && !hostnameRE.MatchString(f.Hostname) {
		p.add(prefix+"hostname", "must be a host name (letters, digits, '.', '-', '_'; at most 253)")
	}
	p.text(prefix+"os_name", f.OSName, MaxField, false)
	p.text(prefix+"os_version", f.OSVersion, MaxField, false)
	if f.OSID != "" && !osIDRE.MatchString(f.OSID) {
		p.add(prefix+"os_id", "must be an os-release ID (lower-case letters, digits, '.', '_', '-')")
	}
	p.text(prefix+"kernel", f.Kernel, MaxField, false)
	if f.Arch != "" && !archRE.MatchString(f.Arch) {
		p.add(prefix+"arch", "must be an architecture name (letters, digits, '.', '_', '-'; at most 32)")
	}
	p.text(prefix+"firmware", f.Firmware, MaxField, false)
	if len(f.IPAddresses) > MaxIPs {
		p.add(prefix+"ip_addresses", "at most %d addresses", MaxIPs)
	} else {
		for _, ip := range f.IPAddresses {
			if len(ip) > 64 {
				p.add(prefix+"ip_addresses", "an address is longer than 64 bytes")
				break
			}
			if _, err := netip.ParseAddr(ip); err != nil {
				p.add(prefix+"ip_addresses", "%q is not an IP address", ip)
				break
			}
		}
	}
	if f.MACAddress != "" && !macRE.MatchString(f.MACAddress) {
		p.add(prefix+"mac_address", "must be a MAC address (aa:bb:cc:dd:ee:ff)")
	}
	p.text(prefix+"serial", f.Serial, MaxField, false)
	p.text(prefix+"make", f.Make, MaxField, false)
	p.text(prefix+"model", f.Model, MaxField, false)
	if f.TimeZone != "" && !tzRE.MatchString(f.TimeZone) {
		p.add(prefix+"time_zone", "must be an IANA time zone name")
	}
	if f.UptimeSeconds < 0 {
		p.add(prefix+"uptime_seconds", "must not be negative")
	}
	p.text(prefix+"agent_version", f.AgentVersion, 64, false)
}

// Validate checks an enrollment request.
func (e *EnrollRequest) Validate() error {
	var p problems
	switch {
	case e.Token == "":
		p.add("token", "is required")
	case len(e.Token) > MaxToken || !Printable(e.Token):
		p.add("token", "is not an enrollment token")
	}
	if len(e.PublicKey) != 32 {
		p.add("public_key", "must be a 32-byte Ed25519 public key (base64)")
	}
	if !hostnameRE.MatchString(e.Hostname) {
		p.add("hostname", "must be a host name (letters, digits, '.', '-', '_'; at most 253)")
	}
	e.Facts.validate(&p, "facts.")
	return p.err("invalid enrollment")
}

// Validate checks a check-in: facts, the hash, every package and pending
// update, and the running job IDs.
func (c *CheckInRequest) Validate() error {
	var p problems
	c.Facts.validate(&p, "facts.")
	if !hashRE.MatchString(c.InventoryHash) {
		p.add("inventory_hash", "must be 64 lower-case hex digits (SHA-256)")
	}
	if len(c.Inventory) > MaxPackages {
		p.add("inventory", "at most %d packages", MaxPackages)
	} else {
		for i := range c.Inventory {
			c.Inventory[i].validate(&p, fmt.Sprintf("inventory[%d].", i))
		}
	}
	if len(c.Pending) > MaxPending {
		p.add("pending", "at most %d pending updates", MaxPending)
	} else {
		for i, u := range c.Pending {
			f := fmt.Sprintf("pending[%d].", i)
			p.text(f+"name", u.Name, MaxField, true)
			p.text(f+"current_version", u.CurrentVersion, MaxField, false)
			p.text(f+"available_version", u.AvailableVersion, MaxField, true)
		}
	}
	if len(c.Running) > MaxRunning {
		p.add("running_jobs", "at most %d job IDs", MaxRunning)
	} else {
		for _, id := range c.Running {
			if !idRE.MatchString(id) {
				p.add("running_jobs", "%q is not a job ID", truncate(id, 70))
				break
			}
		}
	}
	return p.err("invalid check-in")
}

func (pk *Package) validate(p *problems, prefix string) {
	p.text(prefix+"name", pk.Name, MaxField, true)
	p.text(prefix+"version", pk.Version, MaxField, true)
	p.text(prefix+"ecosystem", pk.Ecosystem, MaxField, true)
	if pk.Arch != "" && !archRE.MatchString(pk.Arch) {
		p.add(prefix+"arch", "must be an architecture name (letters, digits, '.', '_', '-'; at most 32)")
	}
	p.text(prefix+"source_name", pk.SourceName, MaxField, false)
	p.text(prefix+"source_version", pk.SourceVersion, MaxField, false)
	if pk.PURL != "" {
		if len(pk.PURL) > MaxPURL || !Printable(pk.PURL) {
			p.add(prefix+"purl", "must be a package URL of at most %d bytes", MaxPURL)
		} else if _, err := packageurl.FromString(pk.PURL); err != nil {
			p.add(prefix+"purl", "is not a package URL")
		}
	}
}

// Statuses lists the job statuses an agent may report.
var Statuses = []string{StatusSucceeded, StatusFailed, StatusRolledBack, StatusRefused}

// earliest and latest bound step times: encoding/json cannot write years
// past 9999, and nothing an agent ran happened before 2000.
var (
	earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	latest   = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Validate checks a job result. Step output may hold any text an agent
// captured, bounded in size; NUL bytes are replaced (PostgreSQL text cannot
// hold them) rather than refusing a result that reports what really ran.
func (j *JobResult) Validate() error {
	var p problems
	if !idRE.MatchString(j.JobID) {
		p.add("job_id", "is not a job ID")
	}
	if j.Attempt < 1 || j.Attempt > MaxAttempt {
		p.add("attempt", "must be between 1 and %d", MaxAttempt)
	}
	valid := false
	for _, s := range Statuses {
		valid = valid || j.Status == s
	}
	if !valid {
		p.add("status", "must be one of: %s", strings.Join(Statuses, ", "))
	}
	j.Reason = strings.ReplaceAll(j.Reason, "\x00", "\uFFFD")
	if len(j.Reason) > MaxReason {
		p.add("reason", "must be at most %d bytes", MaxReason)
	}
	if len(j.Steps) > MaxSteps {
		p.add("steps", "at most %d steps", MaxSteps)
	} else {
		for i := range j.Steps {
			s := &j.Steps[i]
			f := fmt.Sprintf("steps[%d].", i)
			p.text(f+"name", s.Name, MaxField, true)
			if len(s.Command) > MaxCommandArgs {
				p.add(f+"command", "at most %d arguments", MaxCommandArgs)
			}
			for k, a := range s.Command {
				if len(a) > MaxArgLen || strings.ContainsRune(a, 0) {
					p.add(f+"command", "argument %d is longer than %d bytes or holds NUL", k, MaxArgLen)
					break
				}
			}
			if s.ExitCode < -1<<31 || s.ExitCode > 1<<32 {
				p.add(f+"exit_code", "is out of range")
			}
			s.Output = strings.ReplaceAll(s.Output, "\x00", "\uFFFD")
			if len(s.Output) > MaxStepOutput {
				p.add(f+"output", "must be at most %d bytes (truncate on the agent)", MaxStepOutput)
			}
			if implausible(s.Started) {
				p.add(f+"started", "is not a plausible time")
			}
			if implausible(s.Ended) {
				p.add(f+"ended", "is not a plausible time")
			}
			if !s.Started.IsZero() && !s.Ended.IsZero() && s.Ended.Before(s.Started) {
				p.add(f+"ended", "is before started")
			}
		}
	}
	if len(j.Installed) > MaxInstalled {
		p.add("installed", "at most %d entries", MaxInstalled)
	} else {
		for name, v := range j.Installed {
			if name == "" || len(name) > MaxField || !Printable(name) || len(v) > MaxField || !Printable(v) {
				p.add("installed", "entry %q must map a printable package name to a printable version", truncate(name, 40))
				break
			}
		}
	}
	return p.err("invalid job result")
}

func implausible(t time.Time) bool {
	return !t.IsZero() && (t.Before(earliest) || t.After(latest))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
