package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/installed"
	pwmatch "github.com/patchward/patchward/internal/match"
)

// maxFeedFile bounds one feed file read by scan; the OSV all.zip for Debian
// is the largest published file people point it at.
const maxFeedFile = 1 << 30

type scanFlags struct {
	feeds      string
	dpkg       string
	release    string
	osRelease  string
	rpmdb      string
	apk        string
	sboms      []string
	cpes       []string
	format     string
	noExitCode bool
}

// scanFinding is one line of scan output.
type scanFinding struct {
	Package       string   `json:"package"`
	Installed     string   `json:"installed_version"`
	Binaries      []string `json:"binary_packages,omitempty"`
	Ecosystem     string   `json:"ecosystem"`
	Vulnerability string   `json:"vulnerability"`
	Aliases       []string `json:"aliases,omitempty"`
	Fixed         string   `json:"fixed_version,omitempty"`
	Severity      string   `json:"severity,omitempty"`
	CVSS          float64  `json:"cvss,omitempty"`
	KEV           bool     `json:"kev"`
	EPSS          float64  `json:"epss,omitempty"`
	Source        string   `json:"source"`
	VEX           string   `json:"vex,omitempty"`
}

func newScanCmd(*globals) *cobra.Command {
	f := &scanFlags{}
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "Scan one host's packages or an SBOM against feed files, offline",
		Long: `Scan one host or SBOM against vulnerability feeds without a server or
database, the way osv-scanner and grype are used.

--feeds names a directory holding any mix of feed files in their published
formats (OSV JSON records or all.zip archives, NVD CVE API 2.0 JSON, the CISA
KEV catalog, FIRST EPSS CSV, CSAF 2.0 advisories). Files are recognised by
their content, not their names; files that are not feeds are skipped with a
warning, and a broken feed file stops the scan.

The exit status is 1 when vulnerabilities affect the input (0 with
--no-exit-code), 2 on usage or input errors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runScan(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.feeds, "feeds", "", "directory of feed files (required)")
	fl.StringVar(&f.dpkg, "dpkg-status", "", "a dpkg status file (/var/lib/dpkg/status)")
	fl.StringVar(&f.release, "release", "", "the host's release for --dpkg-status: Debian:12, Ubuntu:22.04:LTS, 12, bookworm")
	fl.StringVar(&f.osRelease, "os-release", "", "the host's /etc/os-release, instead of --release")
	fl.StringVar(&f.rpmdb, "rpmdb", "", "an RPM database (Packages, rpmdb.sqlite) of a RHEL-family host; use with --os-release")
	fl.StringVar(&f.apk, "apk-installed", "", "an Alpine /lib/apk/db/installed file; use with --os-release")
	fl.StringArrayVar(&f.sboms, "sbom", nil, "a CycloneDX or SPDX JSON SBOM (repeatable)")
	fl.StringArrayVar(&f.cpes, "cpe", nil, "a CPE 2.3 name of the host's OS or firmware (repeatable)")
	fl.StringVar(&f.format, "format", "table", "output: table or json")
	fl.BoolVar(&f.noExitCode, "no-exit-code", false, "exit 0 even when vulnerabilities are found")
	_ = cmd.MarkFlagRequired("feeds")
	return cmd
}

func runScan(cmd *cobra.Command, f *scanFlags) error {
	if f.format != "table" && f.format != "json" {
		return errs.E(errs.Invalid, "--format must be table or json")
	}
	host, err := scanInputs(f)
	if err != nil {
		return err
	}
	if len(host.Packages) == 0 && len(host.CPEs) == 0 {
		return errs.E(errs.Invalid, "nothing to scan: give --dpkg-status, --rpmdb, --apk-installed, --sbom or --cpe")
	}
	feeds, err := loadFeedDir(f.feeds, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	ix := pwmatch.NewIndex(feeds.advisories, feeds.kev, feeds.epss)
	matches := ix.MatchHost(host)
	out := make([]scanFinding, 0, len(matches))
	for _, m := range matches {
		sf := scanFinding{Package: m.Package, Installed: m.Version, Binaries: m.Binaries, Ecosystem: m.Ecosystem,
			Vulnerability: m.AdvisoryID, Aliases: m.Aliases, Fixed: m.FixedVersion, KEV: m.KEV, EPSS: m.EPSS, Source: m.Source}
		if sev, ok := feeds.severityOf(m.AdvisoryID, m.Aliases); ok {
			sf.Severity, sf.CVSS = sev.Rating, sev.Score
		}
		if m.VEX != nil {
			sf.VEX = string(m.VEX.Status)
		}
		out = append(out, sf)
	}
	slices.SortFunc(out, func(a, b scanFinding) int {
		return cmp.Or(cmp.Compare(a.Package, b.Package), cmp.Compare(a.Vulnerability, b.Vulnerability))
	})
	w := cmd.OutOrStdout()
	if f.format == "json" {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"findings": out, "packages_scanned": len(host.Packages),
			"advisories_loaded": len(feeds.advisories)}); err != nil {
			return err
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
	} else if err := printScanTable(w, out, len(host.Packages), len(feeds.advisories)); err != nil {
		return err
	}
	affected := 0
	for _, sf := range out {
		if sf.VEX != string(advisory.StatusKnownNotAffected) {
			affected++
		}
	}
	if affected > 0 && !f.noExitCode {
		return exitCode(1)
	}
	return nil
}

func printScanTable(w io.Writer, out []scanFinding, pkgs, advs int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tINSTALLED\tECOSYSTEM\tVULNERABILITY\tFIXED\tSEVERITY\tKEV\tEPSS\tALIASES")
	for _, f := range out {
		kev := ""
		if f.KEV {
			kev = "KEV"
		}
		epss := ""
		if f.EPSS > 0 {
			epss = fmt.Sprintf("%.3f", f.EPSS)
		}
		sev := f.Severity
		if f.CVSS > 0 {
			sev = fmt.Sprintf("%s %.1f", f.Severity, f.CVSS)
		}
		if f.VEX != "" {
			sev += " (VEX: " + f.VEX + ")"
		}
		fixed := cmp.Or(f.Fixed, "(no fix)")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Package, f.Installed, f.Ecosystem, f.Vulnerability,
			fixed, sev, kev, epss, strings.Join(f.Aliases, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d vulnerabilities in %d packages scanned against %d advisories.\n", len(out), pkgs, advs)
	return err
}

// scanInputs reads the host's package lists and SBOMs.
func scanInputs(f *scanFlags) (pwmatch.HostInventory, error) {
	host := pwmatch.HostInventory{AssetID: "scan", CPEs: f.cpes}
	release := f.release
	if f.osRelease != "" {
		b, err := os.ReadFile(f.osRelease)
		if err != nil {
			return host, fmt.Errorf("--os-release: %w", err)
		}
		if release == "" {
			release = string(b)
		}
	}
	add := func(pkgs []installed.Package) {
		for _, p := range pkgs {
			host.Packages = append(host.Packages, pwmatch.Package{Name: p.Name, Version: p.Version, Arch: p.Arch,
				Ecosystem: p.Ecosystem, PURL: p.PURL, SourceName: p.SourceName, SourceVersion: p.SourceVersion})
		}
	}
	if f.dpkg != "" {
		r, err := os.Open(f.dpkg)
		if err != nil {
			return host, fmt.Errorf("--dpkg-status: %w", err)
		}
		pkgs, err := installed.ParseDpkgStatus(r, release)
		r.Close()
		if err != nil {
			return host, fmt.Errorf("--dpkg-status %s: %w", f.dpkg, err)
		}
		add(pkgs)
	}
	if f.rpmdb != "" {
		pkgs, err := installed.ReadRpmDB(f.rpmdb)
		if err != nil {
			return host, fmt.Errorf("--rpmdb %s: %w", f.rpmdb, err)
		}
		add(withReleaseEcosystem(pkgs, release))
	}
	if f.apk != "" {
		r, err := os.Open(f.apk)
		if err != nil {
			return host, fmt.Errorf("--apk-installed: %w", err)
		}
		pkgs, err := installed.ParseApkInstalled(r)
		r.Close()
		if err != nil {
			return host, fmt.Errorf("--apk-installed %s: %w", f.apk, err)
		}
		add(withReleaseEcosystem(pkgs, release))
	}
	for _, path := range f.sboms {
		r, err := os.Open(path)
		if err != nil {
			return host, fmt.Errorf("--sbom: %w", err)
		}
		sbom, err := installed.ParseSBOM(r)
		r.Close()
		if err != nil {
			return host, fmt.Errorf("--sbom %s: %w", path, err)
		}
		add(sbom.Packages())
		for _, c := range sbom.Components {
			if c.CPE != "" {
				host.CPEs = append(host.CPEs, c.CPE)
			}
		}
	}
	return host, nil
}

// withReleaseEcosystem fills in the release of RPM and apk packages, whose
// databases do not say which distribution release they belong to.
func withReleaseEcosystem(pkgs []installed.Package, release string) []installed.Package {
	if !strings.Contains(release, "=") {
		return pkgs
	}
	o, err := installed.ParseOSRelease(strings.NewReader(release))
	if err != nil || o.Ecosystem() == "" {
		return pkgs
	}
	for i := range pkgs {
		pkgs[i].Ecosystem = o.Ecosystem()
	}
	return pkgs
}

// feedSet is everything read from a feed directory.
type feedSet struct {
	advisories []advisory.Advisory
	kev        map[string]advisory.KEV
	epss       map[string]advisory.EPSS
	severity   map[string]advisory.Severity
}

func (fs *feedSet) severityOf(id string, aliases []string) (advisory.Severity, bool) {
	if s, ok := fs.severity[id]; ok {
		return s, true
	}
	for _, a := range aliases {
		if s, ok := fs.severity[a]; ok {
			return s, true
		}
	}
	return advisory.Severity{}, false
}

// loadFeedDir parses every feed file under dir, recognising each by content.
func loadFeedDir(dir string, warn io.Writer) (*feedSet, error) {
	fset := &feedSet{kev: map[string]advisory.KEV{}, epss: map[string]advisory.EPSS{}, severity: map[string]advisory.Severity{}}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > maxFeedFile {
			return errs.E(errs.TooLarge, "feed file %s is larger than %d bytes", path, maxFeedFile)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		parsed, err := advisory.ParseAny(path, data)
		if errors.Is(err, errs.ErrUnsupported) {
			fmt.Fprintf(warn, "patchward scan: skipping %s: not a feed file\n", path)
			return nil
		}
		if err != nil {
			return err
		}
		files++
		fset.advisories = append(fset.advisories, parsed.Advisories...)
		if parsed.KEV != nil {
			for _, k := range parsed.KEV.Entries {
				fset.kev[k.CVE] = k
			}
		}
		if parsed.EPSS != nil {
			for _, e := range parsed.EPSS.Scores {
				fset.epss[e.CVE] = e
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read feeds in %s: %w", dir, err)
	}
	if files == 0 {
		return nil, errs.E(errs.Invalid, "no feed files found in %s", dir)
	}
	for _, a := range fset.advisories {
		best, ok := advisory.Headline(a.Severity)
		if !ok {
			continue
		}
		for _, id := range append([]string{a.ID}, a.Aliases...) {
			if cur, seen := fset.severity[id]; !seen || best.Score > cur.Score {
				fset.severity[id] = best
			}
		}
	}
	return fset, nil
}
