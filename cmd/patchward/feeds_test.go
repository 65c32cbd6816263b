package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// feedsTestdata is the feeds package's real test data.
var feedsTestdata = filepath.Join("..", "..", "internal", "feeds", "testdata")

// feedsRoot is the CLI root with the feeds command, whether or not main's
// subcommand list has it yet.
func feedsRoot() *cobra.Command {
	root := newRoot()
	for _, c := range root.Commands() {
		if c.Name() == "feeds" {
			return root
		}
	}
	subcommands = append(subcommands[:len(subcommands):len(subcommands)], newFeedsCmd)
	return newRoot()
}

func runFeedsCLI(t *testing.T, dsn string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := feedsRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"--db", dsn, "--log-level", "error"}, args...))
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestFeedsCLI(t *testing.T) {
	t.Setenv(envFeedsConfig, "")
	os.Unsetenv(envFeedsConfig)
	dir := t.TempDir()
	dsn := filepath.Join(dir, "patchward.db")
	if _, _, err := runFeedsCLI(t, dsn, "migrate"); err != nil {
		t.Fatal(err)
	}
	kev, _ := filepath.Abs(filepath.Join(feedsTestdata, "kev", "known_exploited_vulnerabilities.json"))
	osvDir, _ := filepath.Abs(filepath.Join(feedsTestdata, "osv"))
	t.Chdir(dir) // the default feeds.yaml is looked up in the working directory

	for _, tc := range []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
	}{
		{"no feeds configured", []string{"feeds", "sync"}, "", "no feeds are configured"},
		{"--from needs --kind", []string{"feeds", "sync", "--from", kev}, "", "--from needs --kind"},
		{"--kind without --from", []string{"feeds", "sync", "--kind", "kev"}, "", "--kind goes with --from"},
		{"unknown kind", []string{"feeds", "sync", "--from", kev, "--kind", "oval"}, "", "unknown --kind"},
		{"bad feed name", []string{"feeds", "sync", "--from", kev, "--kind", "kev", "--feed", "My KEV"}, "", "not a valid feed name"},
		{"air-gapped import", []string{"feeds", "sync", "--from", kev, "--kind", "kev"}, "manual-kev: updated, version 1 (1404 KEV entries)", ""},
		{"same file again", []string{"feeds", "sync", "--from", kev, "--kind", "kev"}, "manual-kev: unchanged, version 1", ""},
		{"missing explicit config", []string{"feeds", "sync", "--config", "nope.yaml"}, "", "nope.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runFeedsCLI(t, dsn, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(userMessage(err), tc.wantErr) {
					t.Fatalf("%v = %v; want an error containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("%v = %q, %v; want output containing %q", tc.args, out, err, tc.wantOut)
			}
		})
	}

	cfg := "feeds:\n  - name: osv-local\n    kind: osv\n    path: " + osvDir + "\n    interval: 6h\n  - name: broken\n    kind: kev\n    path: " + filepath.Join(dir, "broken.json") + "\n"
	os.WriteFile(filepath.Join(dir, "feeds.yaml"), []byte(cfg), 0o644)
	os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"catalogVersion": "x", "vulnerabilities": [`), 0o644)
	out, stderr, err := runFeedsCLI(t, dsn, "feeds", "sync")
	if exitStatus(err) != 1 || !strings.Contains(out, "osv-local: updated, version 1 (6 advisories)") ||
		!strings.Contains(stderr, "broken: FAILED: broken.json:") {
		t.Errorf("feeds sync with one broken feed = %q, %q, %v; want osv-local updated, broken FAILED, exit 1", out, stderr, err)
	}
	out, _, err = runFeedsCLI(t, dsn, "feeds", "sync", "--feed", "osv-local")
	if err != nil || !strings.Contains(out, "osv-local: unchanged") {
		t.Errorf("feeds sync --feed osv-local = %q, %v; want unchanged", out, err)
	}
	if _, _, err := runFeedsCLI(t, dsn, "feeds", "sync", "--feed", "nvd"); errs.KindOf(err) != errs.NotFound {
		t.Errorf("feeds sync --feed nvd = %v; want NotFound", err)
	}

	out, _, err = runFeedsCLI(t, dsn, "feeds", "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FEED", "osv-local", "manual-kev", "1404", "FAILED: broken.json:"} {
		if !strings.Contains(out, want) {
			t.Errorf("feeds status output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runFeedsCLI(t, dsn, "feeds", "status", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st []feeds.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("feeds status --format json: %v\n%s", err, out)
	}
	got := map[string]int{}
	for _, s := range st {
		got[s.Feed] = s.Version
	}
	if want := map[string]int{"broken": 0, "manual-kev": 1, "osv-local": 1}; !equalMaps(got, want) {
		t.Errorf("feeds status versions = %v; want %v", got, want)
	}
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// envHelper makes the test binary act as the patchward command; the
// kill -9 test runs it as a real subprocess it can SIGKILL.
const envHelper = "PATCHWARD_TEST_CLI_ARGS"

func TestHelperPatchwardProcess(t *testing.T) {
	args := os.Getenv(envHelper)
	if args == "" {
		t.Skip("helper process for TestFeedsSyncKill9")
	}
	root := feedsRoot()
	root.SetArgs(strings.Split(args, "\x1f"))
	if err := root.ExecuteContext(context.Background()); err != nil {
		os.Stderr.WriteString("patchward: " + userMessage(err) + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

func helperCmd(t *testing.T, hold bool, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPatchwardProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelper+"="+strings.Join(args, "\x1f"))
	if hold {
		cmd.Env = append(cmd.Env, envSyncHold+"=1")
	}
	return cmd
}

// TestFeedsSyncKill9 kills `patchward feeds sync` with SIGKILL while its
// swap transaction holds a complete new version, uncommitted, and checks on
// each engine that the previous version is still current and complete and
// that the next sync succeeds.
func TestFeedsSyncKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	kev := filepath.Join(feedsTestdata, "kev", "known_exploited_vulnerabilities.json")
	full, err := os.ReadFile(kev)
	if err != nil {
		t.Fatal(err)
	}
	// The next catalog: one new entry on top of the real 1,404.
	next := bytes.Replace(full, []byte(`"vulnerabilities": [`), []byte(`"vulnerabilities": [
        {"cveID": "CVE-2099-0001", "vendorProject": "Example", "product": "Infusion pump", "vulnerabilityName": "Example",
         "dateAdded": "2025-08-26", "shortDescription": "x", "requiredAction": "x", "dueDate": "2025-09-16",
         "knownRansomwareCampaignUse": "Unknown", "notes": "", "cwes": []},`), 1)
	next = bytes.Replace(next, []byte(`"count": 1404,`), []byte(`"count": 1405,`), 1)
	osvDir := filepath.Join(feedsTestdata, "osv")

	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			dsn := storetest.DSN(t, engine)
			db := storetest.OpenDSN(t, dsn, store.Options{}) // migrates
			path := filepath.Join(dir, "kev.json")
			if err := os.WriteFile(path, full, 0o644); err != nil {
				t.Fatal(err)
			}
			sync := func(hold bool, feed, kind, from string) *exec.Cmd {
				return helperCmd(t, hold, "--db", dsn, "--log-level", "error", "feeds", "sync", "--feed", feed, "--kind", kind, "--from", from)
			}
			for _, c := range []*exec.Cmd{sync(false, "kev", "kev", path), sync(false, "osv", "osv", osvDir)} {
				if out, err := c.CombinedOutput(); err != nil {
					t.Fatalf("first sync: %v\n%s", err, out)
				}
			}
			before := feedView(t, db)
			if before.kev != 1404 || before.advisories != 6 || before.versions["kev"] != 1 {
				t.Fatalf("after the first syncs: %+v; want 1404 KEV entries, 6 advisories, kev version 1", before)
			}

			// Second sync of the new catalog, held open inside its swap
			// transaction and killed there.
			if err := os.WriteFile(path, next, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := sync(true, "kev", "kev", path)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			held := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if sc.Text() == syncHoldLine {
						held <- true
						io.Copy(io.Discard, stdout)
						return
					}
				}
				held <- false
			}()
			select {
			case ok := <-held:
				if !ok {
					cmd.Wait()
					t.Fatalf("the sync ended without reaching its swap transaction:\n%s", stderr.String())
				}
			case <-time.After(2 * time.Minute):
				cmd.Process.Kill()
				t.Fatal("the sync did not reach its swap transaction within 2 minutes")
			}
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("sync exited with %v; want killed by SIGKILL", err)
			}

			after := feedView(t, db)
			if !equalViews(before, after) {
				t.Fatalf("after kill -9 readers see %+v; want the previous version %+v", after, before)
			}
			if _, err := db.Feeds().Advisory(ctx, "CVE-2014-3616"); err != nil {
				t.Errorf("the other feed's advisory after the kill: %v", err)
			}

			// The next sync succeeds. On PostgreSQL the killed session's
			// locks go when the server notices the dead connection; a
			// Conflict until then is the lock doing its job, so retry.
			var out []byte
			deadline := time.Now().Add(30 * time.Second)
			for {
				out, err = sync(false, "kev", "kev", path).CombinedOutput()
				if err == nil || !strings.Contains(string(out), "another Patchward process") || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err != nil || !strings.Contains(string(out), "kev: updated, version 2 (1405 KEV entries)") {
				t.Fatalf("sync after the kill = %v\n%s", err, out)
			}
			final := feedView(t, db)
			if final.kev != 1405 || final.versions["kev"] != 2 || final.advisories != 6 {
				t.Errorf("after the next sync: %+v; want kev version 2 with 1405 entries, 6 advisories", final)
			}
		})
	}
}

type view struct {
	versions   map[string]int
	counts     map[string]int
	kev        int
	advisories int
	newEntry   bool
}

func feedView(t *testing.T, db *store.DB) view {
	t.Helper()
	ctx := context.Background()
	v := view{versions: map[string]int{}, counts: map[string]int{}}
	st, err := db.Feeds().FeedStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		v.versions[s.Feed] = s.Version
		v.counts[s.Feed] = s.Advisories + s.KEV + s.EPSS
	}
	kev, err := db.Feeds().KEV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v.kev = len(kev)
	_, v.newEntry = kev["CVE-2099-0001"]
	if err := db.Feeds().CurrentAdvisories(ctx, func(advisory.Advisory) error { v.advisories++; return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

func equalViews(a, b view) bool {
	return equalMaps(a.versions, b.versions) && equalMaps(a.counts, b.counts) && a.kev == b.kev &&
		a.advisories == b.advisories && a.newEntry == b.newEntry
}
