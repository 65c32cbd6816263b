package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
)

func TestKeyFileIsPrivateAndStable(t *testing.T) {
	st := StateDir{Dir: filepath.Join(t.TempDir(), "state")}
	k1, err := st.LoadOrCreateKey()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(st.Dir, "agent.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if di, _ := os.Stat(st.Dir); di.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v; want 0700", di.Mode().Perm())
	}
	k2, err := st.LoadKey()
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("reloaded key differs (%v)", err)
	}
}

func TestJournalRoundTripAndHostileIDs(t *testing.T) {
	j, err := OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"job-1", "../../etc/passwd", strings.Repeat("x", 500)} {
		e := Entry{Job: agentapi.Job{ID: id}, State: JobReceived, Received: time.Now()}
		if err := j.Put(e); err != nil {
			t.Fatalf("Put(%q): %v", id, err)
		}
		got, err := j.Get(id)
		if err != nil || got.Job.ID != id {
			t.Fatalf("Get(%q) = %q, %v", id, got.Job.ID, err)
		}
	}
	names, _ := filepath.Glob(filepath.Join(j.dir, "*"))
	if len(names) != 3 {
		t.Errorf("journal holds %v; want three job files and no temporaries", names)
	}
	if _, err := j.Get("missing"); err == nil {
		t.Error("Get(missing) = nil error")
	}
}

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
server: https://patchward.clinic.example
checkin_interval: 2m
window:
  name: sunday-night
  time_zone: America/New_York
  slots: [{day: 0, start: "01:00", end: "05:00"}]
hooks:
  snapshot: [/usr/local/sbin/snapshot-root]
require_backup_hook: snapshot
health:
  commands:
    lis-ping: [/usr/lib/nagios/plugins/check_tcp, -H, localhost, -p, "2575"]
  always: [lis-ping]
  services: [nginx]
apt:
  options: ["-o", "Acquire::Retries=3"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CheckInInterval.Duration != 2*time.Minute || cfg.Window.Wire().TimeZone != "America/New_York" || cfg.StateDir != DefaultStateDir || !cfg.updateBeforeInstall() {
		t.Errorf("config = %+v", cfg)
	}
	for name, bad := range map[string]string{
		"unknown key":     "sever: x\n",
		"missing hook":    "require_backup_hook: nope\n",
		"bad zone":        "window: {name: w, time_zone: Nowhere/Land, slots: [{day: 0, start: '01:00', end: '02:00'}]}\n",
		"always unknown":  "health: {always: [x]}\n",
		"bad duration":    "checkin_interval: soon\n",
		"empty hook argv": "hooks: {snap: []}\n",
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("ParseConfig(%s) = nil error", name)
		}
	}
}

func TestHTTPClientCAFile(t *testing.T) {
	cfg := Defaults()
	if _, err := HTTPClient(cfg); err != nil {
		t.Fatalf("system roots: %v", err)
	}
	cfg.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(cfg.CAFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := HTTPClient(cfg); err == nil {
		t.Error("a CA file without certificates was accepted")
	}
}
