package agentapi_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

func validCheckIn() agentapi.CheckInRequest {
	pkgs := []agentapi.Package{{Name: "curl", Version: "7.88.1-10+deb12u8", Arch: "amd64", Ecosystem: "Debian:12",
		PURL: "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u8?arch=amd64"}}
	return agentapi.CheckInRequest{
		Facts: agentapi.Facts{Hostname: "lis01.lab.local", OSName: "Debian GNU/Linux", OSVersion: "12", OSID: "debian", Arch: "amd64",
			IPAddresses: []string{"10.0.0.5", "fe80::1"}, MACAddress: "52-54-00-12-34-56", TimeZone: "America/Chicago"},
		InventoryHash: agentapi.InventoryHash(pkgs), Inventory: pkgs,
		Pending: []agentapi.PendingUpdate{{Name: "curl", CurrentVersion: "7.88.1-10+deb12u8", AvailableVersion: "7.88.1-10+deb12u9"}},
		Running: []string{"0193a1b2-0000-7000-8000-000000000001"},
	}
}

func TestCheckInValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*agentapi.CheckInRequest)
		field string
	}{
		{"valid", func(*agentapi.CheckInRequest) {}, ""},
		{"hash", func(c *agentapi.CheckInRequest) { c.InventoryHash = "ABC" }, "inventory_hash"},
		{"control char in name", func(c *agentapi.CheckInRequest) { c.Inventory[0].Name = "cu\nrl" }, "inventory[0].name"},
		{"long version", func(c *agentapi.CheckInRequest) { c.Inventory[0].Version = strings.Repeat("1", 201) }, "inventory[0].version"},
		{"no ecosystem", func(c *agentapi.CheckInRequest) { c.Inventory[0].Ecosystem = "" }, "inventory[0].ecosystem"},
		{"bad purl", func(c *agentapi.CheckInRequest) { c.Inventory[0].PURL = "curl" }, "inventory[0].purl"},
		{"bad arch", func(c *agentapi.CheckInRequest) { c.Inventory[0].Arch = "amd 64" }, "inventory[0].arch"},
		{"too many packages", func(c *agentapi.CheckInRequest) {
			c.Inventory = make([]agentapi.Package, agentapi.MaxPackages+1)
		}, "inventory"},
		{"bad ip", func(c *agentapi.CheckInRequest) { c.Facts.IPAddresses = []string{"10.0.0.300"} }, "facts.ip_addresses"},
		{"bad hostname", func(c *agentapi.CheckInRequest) { c.Facts.Hostname = "host name" }, "facts.hostname"},
		{"bad os id", func(c *agentapi.CheckInRequest) { c.Facts.OSID = "Debian" }, "facts.os_id"},
		{"bad mac", func(c *agentapi.CheckInRequest) { c.Facts.MACAddress = "52:54:00" }, "facts.mac_address"},
		{"negative uptime", func(c *agentapi.CheckInRequest) { c.Facts.UptimeSeconds = -1 }, "facts.uptime_seconds"},
		{"invalid utf-8", func(c *agentapi.CheckInRequest) { c.Facts.OSName = "Debian\xff" }, "facts.os_name"},
		{"pending without version", func(c *agentapi.CheckInRequest) { c.Pending[0].AvailableVersion = "" }, "pending[0].available_version"},
		{"running id", func(c *agentapi.CheckInRequest) { c.Running = []string{"../../etc"} }, "running_jobs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validCheckIn()
			tc.mod(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, errs.ErrInvalid) {
				t.Fatalf("Validate() = %v; want Invalid", err)
			}
			if _, ok := errs.FieldsOf(err)[tc.field]; !ok {
				t.Errorf("Validate() fields = %v; want %s", errs.FieldsOf(err), tc.field)
			}
		})
	}
}

func TestCheckInValidateCapsProblems(t *testing.T) {
	c := validCheckIn()
	c.Inventory = make([]agentapi.Package, 1000)
	err := c.Validate()
	if n := len(errs.FieldsOf(err)); n > 21 {
		t.Errorf("Validate() reported %d fields; want at most 21", n)
	}
	if !strings.Contains(err.Error(), "further problems not listed") {
		t.Errorf("Validate() = %v; want a note on the problems left out", err)
	}
}

func TestJobResultValidate(t *testing.T) {
	now := time.Now()
	valid := func() agentapi.JobResult {
		return agentapi.JobResult{JobID: "0193a1b2-0000-7000-8000-000000000001", Attempt: 1, Status: agentapi.StatusFailed,
			Steps:     []agentapi.Step{{Name: "install", Command: []string{"apt-get", "install", "curl=1"}, ExitCode: 100, Output: "E: lock\x00", Started: now, Ended: now}},
			Installed: map[string]string{"curl": "1"}}
	}
	for _, tc := range []struct {
		name  string
		mod   func(*agentapi.JobResult)
		field string
	}{
		{"valid", func(*agentapi.JobResult) {}, ""},
		{"status", func(j *agentapi.JobResult) { j.Status = "done" }, "status"},
		{"attempt", func(j *agentapi.JobResult) { j.Attempt = 0 }, "attempt"},
		{"job id", func(j *agentapi.JobResult) { j.JobID = "a b" }, "job_id"},
		{"output", func(j *agentapi.JobResult) { j.Steps[0].Output = strings.Repeat("x", agentapi.MaxStepOutput+1) }, "steps[0].output"},
		{"step name", func(j *agentapi.JobResult) { j.Steps[0].Name = "" }, "steps[0].name"},
		{"year 10000", func(j *agentapi.JobResult) { j.Steps[0].Ended = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "steps[0].ended"},
		{"ended before started", func(j *agentapi.JobResult) { j.Steps[0].Ended = now.Add(-time.Hour) }, "steps[0].ended"},
		{"installed", func(j *agentapi.JobResult) { j.Installed = map[string]string{"curl": "1\n"} }, "installed"},
		{"exit code", func(j *agentapi.JobResult) { j.Steps[0].ExitCode = 1 << 40 }, "steps[0].exit_code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := valid()
			tc.mod(&j)
			err := j.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				if strings.ContainsRune(j.Steps[0].Output, 0) {
					t.Error("Validate() kept a NUL in the output")
				}
				return
			}
			if _, ok := errs.FieldsOf(err)[tc.field]; !ok {
				t.Errorf("Validate() = %v; want a problem with %s", err, tc.field)
			}
		})
	}
}
