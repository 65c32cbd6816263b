package agent

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/patchward/patchward/internal/agentapi"
)

// Ecosystems of Windows inventory entries: installed programs (registry
// uninstall keys) and installed updates (KB articles).
const (
	EcosystemWindows   = "windows"
	EcosystemWindowsKB = "windows-kb"
)

// UninstallEntry is one subkey of
// HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall (or its
// WOW6432Node twin). Reading the registry is Windows-only; turning entries
// into packages is not, so it is tested everywhere.
type UninstallEntry struct {
	Key             string
	DisplayName     string
	DisplayVersion  string
	Publisher       string
	SystemComponent uint64
	ParentKeyName   string
	ReleaseType     string
}

// UninstallPackages keeps what Programs and Features shows: entries with a
// name and version that are neither system components nor updates of
// another entry.
func UninstallPackages(entries []UninstallEntry) []agentapi.Package {
	seen := map[string]bool{}
	var out []agentapi.Package
	for _, e := range entries {
		name := strings.TrimSpace(e.DisplayName)
		ver := strings.TrimSpace(e.DisplayVersion)
		if name == "" || ver == "" || e.SystemComponent == 1 || e.ParentKeyName != "" {
			continue
		}
		switch e.ReleaseType {
		case "Update", "Hotfix", "Security Update":
			continue
		}
		k := name + "\x00" + ver
		if seen[k] {
			continue // the same program under both registry views
		}
		seen[k] = true
		out = append(out, agentapi.Package{Name: name, Version: ver, Ecosystem: EcosystemWindows})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var kbRE = regexp.MustCompile(`^KB[0-9]{4,8}$`)

// ParseHotFixCSV reads `Get-HotFix | Select-Object HotFixID,Description,
// InstalledOn | ConvertTo-Csv -NoTypeInformation` (the same columns as
// `wmic qfe`). Each KB becomes a package whose version is "installed":
// KBs have no version, matching is by presence.
func ParseHotFixCSV(r io.Reader) ([]agentapi.Package, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parse hotfix CSV: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	col := -1
	for i, h := range rows[0] {
		if strings.EqualFold(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")), "HotFixID") {
			col = i
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("parse hotfix CSV: no HotFixID column in %q", rows[0])
	}
	seen := map[string]bool{}
	var out []agentapi.Package
	for _, row := range rows[1:] {
		if col >= len(row) {
			continue
		}
		id := strings.ToUpper(strings.TrimSpace(row[col]))
		if !kbRE.MatchString(id) || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, agentapi.Package{Name: id, Version: "installed", Ecosystem: EcosystemWindowsKB})
	}
	return out, nil
}

// wuaUpdate is one update as our Windows Update Agent query prints it.
type wuaUpdate struct {
	Title      string `json:"Title"`
	KBs        string `json:"KBs"`
	Severity   string `json:"Severity"`
	Categories string `json:"Categories"`
}

// WUAQuery is the PowerShell that lists pending updates through the
// Windows Update Agent COM API as JSON (ParseWUAJSON reads it).
const WUAQuery = `$ErrorActionPreference='Stop';` +
	`$s=(New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher();` +
	`$r=$s.Search("IsInstalled=0 and IsHidden=0 and Type='Software'");` +
	`@($r.Updates | ForEach-Object { [pscustomobject]@{Title=$_.Title;KBs=($_.KBArticleIDs -join ',');` +
	`Severity=[string]$_.MsrcSeverity;Categories=(($_.Categories | ForEach-Object { $_.Name }) -join ',')} })` +
	` | ConvertTo-Json -Compress`

// ParseWUAJSON reads WUAQuery's output. ConvertTo-Json writes a lone object
// for one update and nothing for none, so both shapes are accepted.
func ParseWUAJSON(b []byte) ([]agentapi.PendingUpdate, error) {
	b = []byte(strings.TrimSpace(strings.TrimPrefix(string(b), "\ufeff")))
	if len(b) == 0 {
		return nil, nil
	}
	var list []wuaUpdate
	if b[0] == '{' {
		var one wuaUpdate
		if err := json.Unmarshal(b, &one); err != nil {
			return nil, fmt.Errorf("parse Windows Update list: %w", err)
		}
		list = []wuaUpdate{one}
	} else if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("parse Windows Update list: %w", err)
	}
	var out []agentapi.PendingUpdate
	for _, u := range list {
		name := strings.TrimSpace(u.Title)
		if kb := strings.Split(u.KBs, ",")[0]; kb != "" {
			name = "KB" + strings.TrimPrefix(strings.TrimSpace(kb), "KB")
		}
		if name == "" {
			continue
		}
		title := u.Title
		if len(title) > agentapi.MaxField {
			title = title[:agentapi.MaxField]
		}
		if title == "" {
			title = name
		}
		out = append(out, agentapi.PendingUpdate{
			Name:             name,
			AvailableVersion: title,
			Security:         u.Severity != "" || strings.Contains(u.Categories, "Security"),
		})
	}
	return out, nil
}
