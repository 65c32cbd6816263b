package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
)

// runAuditCLI runs the patchward command tree against dbPath and returns
// standard output and standard error separately.
func runAuditCLI(t *testing.T, dbPath string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(append([]string{"--db", dbPath, "--log-level", "error"}, args...))
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func mustRunAuditCLI(t *testing.T, dbPath string, args ...string) string {
	t.Helper()
	out, errOut, err := runAuditCLI(t, dbPath, args...)
	if err != nil {
		t.Fatalf("patchward %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// exitStatus is the status main would exit with for err.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	return 1
}

func TestAuditCLI(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "patchward.db")
	mustRunAuditCLI(t, dbPath, "migrate")

	ctx := context.Background()
	db, err := store.Open(ctx, dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := inventory.NewService(db.Inventory(), time.Now)
	actor := audit.Actor{Kind: audit.ActorUser, ID: "u1", Name: "admin", Addr: "192.0.2.10"}
	site, err := svc.CreateSite(ctx, actor, inventory.Site{Name: "Main Clinic", TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateAsset(ctx, actor, inventory.Asset{Name: "LIS-01", Type: inventory.TypeServer, SiteID: site.ID,
		Exposure: inventory.ExposureClinicalVLAN, Criticality: inventory.LevelHigh, SafetyImpact: inventory.SafetyHigh,
		SupportStatus: inventory.SupportSupported}); err != nil {
		t.Fatal(err)
	}

	// The first checkpoint creates the key beside the database.
	if out := mustRunAuditCLI(t, dbPath, "audit", "checkpoint"); out != "signed checkpoint at size 2\n" {
		t.Errorf("audit checkpoint = %q; want %q", out, "signed checkpoint at size 2\n")
	}
	if st, err := os.Stat(filepath.Join(dir, "patchward-audit.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("audit key file: %v, %v; want mode 0600", st, err)
	}
	pubkey := strings.TrimSpace(mustRunAuditCLI(t, dbPath, "audit", "pubkey"))
	if !strings.HasPrefix(pubkey, audit.KeyName+"+") {
		t.Errorf("audit pubkey = %q; want a verifier key named %s", pubkey, audit.KeyName)
	}

	out := mustRunAuditCLI(t, dbPath, "audit", "verify")
	if !strings.Contains(out, "audit log OK: 2 entries and 1 signed checkpoints verified") {
		t.Errorf("audit verify = %q; want OK with 2 entries, 1 checkpoint", out)
	}
	mustRunAuditCLI(t, dbPath, "audit", "verify", "--pubkey", pubkey)

	out = mustRunAuditCLI(t, dbPath, "audit", "log", "--type", "asset")
	if !strings.Contains(out, "asset.create") || !strings.Contains(out, "192.0.2.10") || !strings.Contains(out, "1 of 1 entries") {
		t.Errorf("audit log --type asset = %q; want the asset.create entry", out)
	}

	bundle := filepath.Join(dir, "export.json")
	from := time.Now().Add(-time.Hour).Format(time.RFC3339)
	mustRunAuditCLI(t, dbPath, "audit", "export", "--from", from, "--out", bundle)
	out = mustRunAuditCLI(t, "unused.db", "audit", "verify-export", bundle, "--pubkey", pubkey)
	if !strings.Contains(out, "audit export OK: 2 entries") {
		t.Errorf("audit verify-export = %q; want OK with 2 entries", out)
	}

	// An auditor holding another installation's key is told it fails.
	other, err := audit.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := audit.NewSigner(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := runAuditCLI(t, "unused.db", "audit", "verify-export", bundle, "--pubkey", otherSigner.Verifier().Key()); err == nil {
		t.Errorf("verify-export with another key = nil; want an error")
	}

	// A hostile administrator edits the bundle: verify-export exits 2.
	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(dir, "edited.json")
	if err := os.WriteFile(edited, bytes.Replace(raw, []byte("LIS-01"), []byte("LIS-02"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runAuditCLI(t, "unused.db", "audit", "verify-export", edited, "--pubkey", pubkey)
	if got := exitStatus(err); got != 2 || !strings.Contains(err.Error(), "audit export verification FAILED at entry 1: leaf hash mismatch") {
		t.Errorf("verify-export(edited) = %v (exit %d); want exit 2 naming entry 1", err, got)
	}

	// ... and the database: verify exits 2 naming the entry.
	for _, q := range []string{
		`DROP TRIGGER audit_entries_no_update`,
		`UPDATE audit_entries SET actor_addr = '203.0.113.9' WHERE seq = 1`,
	} {
		if err := db.ExecRaw(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = runAuditCLI(t, dbPath, "audit", "verify")
	want := "audit log verification FAILED at entry 1: leaf hash mismatch (content altered)"
	if got := exitStatus(err); got != 2 || err.Error() != want {
		t.Errorf("audit verify(tampered) = %v (exit %d); want %q (exit 2)", err, got, want)
	}
	if _, _, err := runAuditCLI(t, dbPath, "audit", "checkpoint"); exitStatus(err) != 2 {
		t.Errorf("audit checkpoint(tampered) = %v; want exit 2 and nothing signed", err)
	}
}
