package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadPackageDBs reads the real package databases that
// internal/installed keeps as test data, through the agent's wiring, so
// each OS family's collector path is exercised on Linux.
func TestReadPackageDBs(t *testing.T) {
	td := filepath.Join("..", "installed", "testdata")
	osr := func(content string) osRelease {
		p := filepath.Join(t.TempDir(), "os-release")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		o, err := readOSReleaseFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	tests := []struct {
		name, db, osRelease, wantEco string
	}{
		{"debian", "debian12-dpkg-status", "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n", "Debian:12"},
		{"alpine", "osv-scalibr-apk-installed", "ID=alpine\nVERSION_ID=3.19.1\n", "Alpine:v3.19"},
		{"rocky", "rpmdb-fixture.sqlite", "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n", "Rocky Linux:9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := filepath.Join(td, tt.db)
			if _, err := os.Stat(src); err != nil {
				t.Skipf("fixture %s: %v", tt.db, err)
			}
			// The collector picks the reader by the database's file name.
			name := map[string]string{"debian": "status", "alpine": "installed", "rocky": "rpmdb.sqlite"}[tt.name]
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(db, b, 0o644); err != nil {
				t.Fatal(err)
			}
			pkgs, err := readPackageDB(db, osr(tt.osRelease))
			if err != nil {
				t.Fatal(err)
			}
			if len(pkgs) == 0 {
				t.Fatal("no packages")
			}
			for _, p := range pkgs {
				if p.Name == "" || p.Version == "" || p.Ecosystem != tt.wantEco {
					t.Fatalf("package %+v; want name, version and ecosystem %s", p, tt.wantEco)
				}
			}
		})
	}
}
