package fleet

import (
	"errors"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

func TestAssetType(t *testing.T) {
	for _, tc := range []struct {
		f    agentapi.Facts
		want inventory.Type
	}{
		{agentapi.Facts{OSID: "debian", OSName: "Debian GNU/Linux", Make: "Dell Inc.", Model: "PowerEdge R650"}, inventory.TypeServer},
		{agentapi.Facts{OSID: "debian", Make: "QEMU", Model: "Standard PC (Q35 + ICH9, 2009)"}, inventory.TypeVM},
		{agentapi.Facts{OSID: "windows", OSName: "Microsoft Windows Server 2022 Standard", Make: "VMware, Inc.", Model: "VMware7,1"}, inventory.TypeVM},
		{agentapi.Facts{OSID: "windows", OSName: "Microsoft Windows Server 2022 Standard", Make: "HPE"}, inventory.TypeServer},
		{agentapi.Facts{OSID: "windows", OSName: "Microsoft Windows 11 Pro", Make: "LENOVO"}, inventory.TypeEndpoint},
		{agentapi.Facts{OSID: "macos", OSName: "macOS"}, inventory.TypeEndpoint},
		{agentapi.Facts{OSID: "ubuntu", OSName: "Ubuntu", OSVersion: "24.04 LTS Desktop"}, inventory.TypeEndpoint},
		{agentapi.Facts{OSID: "rhel", OSName: "Red Hat Enterprise Linux", OSVersion: "9.4 (Plow)"}, inventory.TypeServer},
	} {
		if got := AssetType(tc.f); got != tc.want {
			t.Errorf("AssetType(%s %s %s) = %s; want %s", tc.f.OSName, tc.f.Make, tc.f.Model, got, tc.want)
		}
	}
}

func TestChoose(t *testing.T) {
	c := func(id, host, serial string, owned bool) Candidate {
		return Candidate{AssetID: id, Hostname: host, Serial: serial, AgentOwned: owned}
	}
	for _, tc := range []struct {
		name         string
		cands        []Candidate
		host, serial string
		want         string
	}{
		{"serial beats host name", []Candidate{c("a", "lis01", "", false), c("b", "", "SN1", false)}, "lis01", "sn1", "b"},
		{"full host name", []Candidate{c("a", "LIS01.lab.local", "", false)}, "lis01.lab.local", "", "a"},
		{"short asset name", []Candidate{c("a", "lis01", "", false)}, "lis01.lab.local", "", "a"},
		{"short agent name", []Candidate{c("a", "lis01.lab.local", "", false)}, "lis01", "", "a"},
		{"owned by an active agent", []Candidate{c("a", "lis01", "SN1", true)}, "lis01", "SN1", ""},
		{"ambiguous", []Candidate{c("a", "lis01", "", false), c("b", "LIS01", "", false)}, "lis01", "", ""},
		{"different host", []Candidate{c("a", "lis02", "", false)}, "lis01", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := choose(tc.cands, tc.host, tc.serial); got != tc.want {
				t.Errorf("choose = %q; want %q", got, tc.want)
			}
		})
	}
	for _, s := range []string{"", "0", "To be filled by O.E.M.", "Default string", "00000000", "System Serial Number"} {
		if usableSerial(s) != "" {
			t.Errorf("usableSerial(%q) is usable", s)
		}
	}
}

// TestBackoff checks the server-wide bucket: within the rate the interval
// is the base (±jitter); a storm stretches it up to MaxBackoff, and it
// recovers once the rate drops.
func TestBackoff(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	s := NewService(nil, Options{Now: func() time.Time { return now }, Rand: func() float64 { return 0.5 },
		CheckInInterval: time.Minute, CheckInRate: 10, CheckInBurst: 10, MaxBackoff: 4})
	if got := s.nextCheckIn(now); got != time.Minute {
		t.Errorf("idle: next = %s; want 1m", got)
	}
	var got time.Duration
	for range 100 { // 100 check-ins in one instant, ten times the rate
		got = s.nextCheckIn(now)
	}
	if got != 4*time.Minute {
		t.Errorf("storm: next = %s; want the 4m cap", got)
	}
	now = now.Add(3 * time.Second) // 30 tokens back: still in debt
	if got := s.nextCheckIn(now); got <= time.Minute || got >= 4*time.Minute {
		t.Errorf("recovering: next = %s; want between 1m and 4m", got)
	}
	now = now.Add(10 * time.Second)
	if got := s.nextCheckIn(now); got != time.Minute {
		t.Errorf("recovered: next = %s; want 1m", got)
	}
	s.opt.Rand = func() float64 { return 0 }
	if got := s.nextCheckIn(now); got != 54*time.Second {
		t.Errorf("jitter: next = %s; want 54s (-10%%)", got)
	}
}

func TestFactsHashIgnoresUptime(t *testing.T) {
	f := agentapi.Facts{Hostname: "a", UptimeSeconds: 1}
	g := f
	g.UptimeSeconds = 99999
	if factsHash(f, nil) != factsHash(g, nil) {
		t.Error("uptime changes the facts hash: every heartbeat would be a write")
	}
	g.RebootRequired = true
	if factsHash(f, nil) == factsHash(g, nil) {
		t.Error("reboot_required does not change the facts hash")
	}
}

func TestInventoryDelta(t *testing.T) {
	old := []inventory.Software{{Name: "a", Version: "1"}, {Name: "b", Version: "1"}, {Name: "c", Version: "1"}}
	cur := []inventory.Software{{Name: "a", Version: "1"}, {Name: "b", Version: "2"}, {Name: "d", Version: "1"}}
	d := inventoryDelta(old, cur, "h")
	if d != (InventoryDelta{Hash: "h", Count: 3, Added: 1, Removed: 1, Upgraded: 1}) {
		t.Errorf("inventoryDelta = %+v", d)
	}
}

func TestJobSpecValidate(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	past := now.Add(-time.Hour)
	ok := JobSpec{AgentID: "a1", Kind: agentapi.JobInstall, Packages: []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3.0.16-1~deb12u1"}}}
	nb, dl, err := ok.validate(now)
	if err != nil || !nb.Equal(now) || !dl.Equal(now.Add(DefaultJobDeadline)) {
		t.Errorf("validate(ok) = %v, %v, %v", nb, dl, err)
	}
	for name, mod := range map[string]func(*JobSpec){
		"leading dash":       func(s *JobSpec) { s.Packages[0].Name = "-y" },
		"space in version":   func(s *JobSpec) { s.Packages[0].TargetVersion = "1 2" },
		"shell metachar":     func(s *JobSpec) { s.Packages[0].Name = "a;reboot" },
		"previous version":   func(s *JobSpec) { s.Packages[0].PreviousVersion = "1" },
		"duplicate":          func(s *JobSpec) { s.Packages = append(s.Packages, s.Packages[0]) },
		"deadline in past":   func(s *JobSpec) { s.Deadline = &past },
		"disk space not int": func(s *JobSpec) { s.PreChecks = []agentapi.Check{{Kind: "disk_space", Arg: "lots"}} },
		"unknown check":      func(s *JobSpec) { s.PostChecks = []agentapi.Check{{Kind: "ping"}} },
		"inventory packages": func(s *JobSpec) { s.Kind = agentapi.JobInventory },
		"bad change id":      func(s *JobSpec) { s.ChangeID = "CHG 1" },
	} {
		s := ok
		s.Packages = append([]agentapi.JobPackage(nil), ok.Packages...)
		mod(&s)
		if _, _, err := s.validate(now); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("validate(%s) = %v; want Invalid", name, err)
		}
	}
}
