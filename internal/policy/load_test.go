package policy

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
)

// edit replaces the one occurrence of old in a policy file with new; with
// upTo set it replaces everything from old up to (not including) upTo.
type edit struct{ old, upTo, new string }

func applyEdits(t *testing.T, src string, edits []edit) string {
	t.Helper()
	for _, e := range edits {
		if n := strings.Count(src, e.old); n != 1 {
			t.Fatalf("edit: %q occurs %d times in the file, want once", e.old, n)
		}
		i := strings.Index(src, e.old)
		j := i + len(e.old)
		if e.upTo != "" {
			k := strings.Index(src[i:], e.upTo)
			if k < 0 {
				t.Fatalf("edit: %q not found after %q", e.upTo, e.old)
			}
			j = i + k
		}
		src = src[:i] + e.new + src[j:]
	}
	return src
}

// lineOf returns the 1-based line of the one occurrence of needle.
func lineOf(t *testing.T, src, needle string) int {
	t.Helper()
	if n := strings.Count(src, needle); n != 1 {
		t.Fatalf("lineOf: %q occurs %d times, want once", needle, n)
	}
	return strings.Count(src[:strings.Index(src, needle)], "\n") + 1
}

func readBase(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("Load error is %T (%v), want *Error", err, err)
	}
	return pe.Problems
}

func TestBaseLoads(t *testing.T) {
	if _, err := Load([]byte(readBase(t))); err != nil {
		t.Fatalf("Load(testdata/base.yaml):\n%v", err)
	}
}

// wantProblem is one expected problem: its path, the text on its line
// (which must occur once in the edited file) and a fragment of its message.
type wantProblem struct {
	path, at, msg string
}

func TestLoadProblems(t *testing.T) {
	base := readBase(t)
	tests := []struct {
		name  string
		edits []edit
		want  []wantProblem
		// subset: the want problems must be among those reported (for
		// edits whose knock-on problems are not the point).
		subset bool
	}{
		// Decoding: unknown keys at several depths, duplicates, types.
		{"unknown top-level key", []edit{{old: "version: 1\n", new: "version: 1\nbogus: true\n"}},
			[]wantProblem{{"bogus", "bogus: true", `unknown key "bogus"`}}, false},
		{"unknown key with suggestion", []edit{{old: "  name: Test Clinic\n", new: "  name: Test Clinic\n  nmae: x\n"}},
			[]wantProblem{{"organization.nmae", "nmae: x", `did you mean "name"`}}, false},
		{"unknown key in tier", []edit{{old: "      due_soon: 24h\n", new: "      due_soon: 24h\n      due_son: 1h\n"}},
			[]wantProblem{{"risk.tiers[0].due_son", "due_son: 1h", `unknown key "due_son"`}}, false},
		{"unknown key in map value", []edit{{old: "      quorum: 2\n", new: "      quorum: 2\n      veto: true\n"}},
			[]wantProblem{{"approvals.types.normal.veto", "veto: true", `unknown key "veto"`}}, false},
		{"unknown key in rule", []edit{{old: "      min_tier: critical\n", new: "      min_tier: critical\n      priority: 1\n"}},
			[]wantProblem{{"risk.rules[0].priority", "priority: 1", `unknown key`}}, false},
		{"duplicate key", []edit{{old: "  clock_start: first_seen\n", new: "  clock_start: first_seen\n  clock_start: fix_available\n"}},
			[]wantProblem{{"sla.clock_start", "clock_start: fix_available", "duplicate key \"clock_start\" (first at line"}}, false},
		{"number wanted", []edit{{old: "    cvss: 30\n", new: "    cvss: high\n"}},
			[]wantProblem{{"risk.weights.cvss", "cvss: high", `want a number, got "high"`}}, false},
		{"bool wanted", []edit{{old: "  require_plan: true", new: "  require_plan: always"}},
			[]wantProblem{{"rollback.require_plan", "require_plan: always", "want true or false"}}, false},
		{"int wanted", []edit{{old: "    min_success: 3", new: "    min_success: 2.5"}},
			[]wantProblem{{"rings[0].min_success", "min_success: 2.5", "want a whole number"}}, false},
		{"list wanted", []edit{{old: "  scope: [everything]", new: "  scope: everything"}},
			[]wantProblem{{"organization.scope", "scope: everything", "want a list"}}, false},
		{"mapping wanted", []edit{{old: "sla:\n  clock_start: first_seen\n  epss_jump: 0.1\n", new: "sla: fast\n"}},
			[]wantProblem{{"sla", "sla: fast", "want a mapping"}}, false},
		{"alias refused", []edit{{old: "  scope: [everything]", new: "  scope: &s [everything]"}, {old: "  tests: [qc]", new: "  tests: *s"}},
			[]wantProblem{{"emergency.tests", "tests: *s", "aliases"}}, false},
		{"bad duration", []edit{{old: "      due: 72h", new: "      due: 72"}},
			[]wantProblem{{"risk.tiers[0].due", "due: 72\n", "missing unit"}}, false},
		{"negative duration", []edit{{old: "  go_no_go: 4h", new: "  go_no_go: -4h"}},
			[]wantProblem{{"emergency.go_no_go", "go_no_go: -4h", "negative"}}, false},
		{"version", []edit{{old: "version: 1", new: "version: 2"}},
			[]wantProblem{{"version", "version: 2", "must be 1"}}, false},

		// Organisation and roles.
		{"time zone", []edit{{old: "  time_zone: Europe/Berlin", new: "  time_zone: Mars/Olympus"}},
			[]wantProblem{{"organization.time_zone", "time_zone: Mars/Olympus", "unknown time zone"}}, false},
		{"missing time zone", []edit{{old: "  time_zone: Europe/Berlin\n", new: ""}},
			[]wantProblem{{"organization.time_zone", "organization:", "required"}}, false},
		{"owner names no role", []edit{{old: "  owner: manager", new: "  owner: ceo"}},
			[]wantProblem{{"organization.owner", "owner: ceo", `names no role in roles: "ceo"`}}, false},
		{"grants", []edit{{old: "    grants: approver", new: "    grants: superuser"}},
			[]wantProblem{{"roles[1].grants", "grants: superuser", "must be one of Patchward's roles"}}, false},
		{"duplicate role", []edit{{old: "  - name: lab-director\n", new: "  - name: manager\n"}},
			[]wantProblem{{"roles[1].name", "  - name: manager\n    grants: approver", `duplicate role "manager"`}}, true},

		{"missing name", []edit{{old: "  name: Test Clinic\n", new: ""}},
			[]wantProblem{{"organization.name", "organization:", "required"}}, false},
		{"missing scope", []edit{{old: "  scope: [everything]\n", new: ""}},
			[]wantProblem{{"organization.scope", "organization:", "required"}}, false},
		{"no roles", []edit{{old: "roles:\n", upTo: "approvals:\n", new: "roles: []\n"}},
			[]wantProblem{
				{"organization.owner", "owner: manager", "names no role"},
				{"asset_classes[0].approvers[0]", "approvers: [manager]", "names no role"},
				{"asset_classes[1].approvers[0]", "approvers: [lab-director]", "names no role"},
				{"roles", "roles: []", "at least one role"},
			}, true},

		// Risk mode, weights, rules.
		{"mode", []edit{{old: "  mode: score", new: "  mode: vibes"}},
			[]wantProblem{{"risk.mode", "mode: vibes", "must be one of"}}, false},
		{"negative weight", []edit{{old: "    kev: 30", new: "    kev: -1"}},
			[]wantProblem{{"risk.weights.kev", "kev: -1", "must not be negative"}}, false},
		{"negative zone weight", []edit{{old: "      dmz: 10", new: "      dmz: -10"}},
			[]wantProblem{{"risk.weights.network_zone.dmz", "dmz: -10", "must not be negative"}}, false},
		{"unknown exposure level", []edit{{old: "      vpn: 15\n", new: "      vpn: 15\n      wifi: 3\n"}},
			[]wantProblem{{"risk.weights.exposure.wifi", "wifi: 3", `unknown level "wifi"`}}, false},
		{"exposure decreasing", []edit{{old: "      internet_facing: 25", new: "      internet_facing: 10"}},
			[]wantProblem{{"risk.weights.exposure.internet_facing", "internet_facing: 10", `less than "vpn" (15)`}}, false},
		{"criticality missing level", []edit{{old: "      critical: 25\n", new: ""}},
			[]wantProblem{{"risk.weights.criticality", "    criticality:", `"critical" is missing`}}, false},
		{"safety decreasing", []edit{{old: "      none: 0\n", new: "      none: 20\n"}},
			[]wantProblem{{"risk.weights.patient_safety", "    patient_safety:", `"low" is missing`}}, false},
		{"duplicate rule", []edit{{old: "    - name: ransomware", new: "    - name: kev-exposed"}},
			[]wantProblem{{"risk.rules[1].name", "    - name: kev-exposed\n      when: |", `duplicate rule "kev-exposed"`}}, false},
		{"rule min_tier", []edit{{old: "      min_tier: critical", new: "      min_tier: urgent"}},
			[]wantProblem{{"risk.rules[0].min_tier", "min_tier: urgent", `names no tier in risk.tiers: "urgent"`}}, false},
		{"rule does nothing", []edit{{old: "      add: 10", new: "      add: 0"}},
			[]wantProblem{{"risk.rules[1]", "    - name: ransomware", "does nothing"}}, false},
		{"rule without when", []edit{{old: "      when: vuln.kev && asset.exposure == \"internet_facing\"\n", new: ""}},
			[]wantProblem{{"risk.rules[0].when", "- name: kev-exposed", "required"}}, false},

		// Tiers and score bands.
		{"no tiers", []edit{{old: "  tiers:\n    - name: critical", upTo: "  ssvc:\n", new: "  tiers: []\n"}},
			[]wantProblem{{"risk.tiers", "tiers: []", "at least one SLA tier"}}, true},
		{"duplicate tier", []edit{{old: "    - name: medium", new: "    - name: high"}},
			[]wantProblem{
				{"risk.tiers[2].name", "    - name: high\n      min_score: 25", `duplicate tier "high"`},
				{"risk.ssvc.outcomes.track*", "track*: medium", `names no tier in risk.tiers: "medium"`},
				{"risk.kev_bands.tiers.high", "high: medium", `names no tier in risk.tiers: "medium"`},
			}, false},
		{"due not positive", []edit{{old: "      due: 72h", new: "      due: 0"}},
			[]wantProblem{{"risk.tiers[0].due", "due: 0", "must be a positive duration"}}, false},
		{"due_soon not shorter", []edit{{old: "      due_soon: 24h", new: "      due_soon: 3d\n"}},
			[]wantProblem{{"risk.tiers[0].due_soon", "due_soon: 3d\n\n", "must be shorter than due (72h)"}}, false},
		{"bands overlap", []edit{{old: "      max_score: 70", new: "      max_score: 75"}},
			[]wantProblem{{"risk.tiers[1].min_score", "      min_score: 50", `overlaps tier "critical" (70–100)`}}, false},
		{"bands gap", []edit{{old: "      min_score: 50", new: "      min_score: 55"}},
			[]wantProblem{{"risk.tiers[2].max_score", "      max_score: 50", "leaves a gap: scores 50–55"}}, false},
		{"top below 100", []edit{{old: "      max_score: 100", new: "      max_score: 90"}},
			[]wantProblem{{"risk.tiers[0].max_score", "max_score: 90", "must reach 100"}}, false},
		{"bottom above 0", []edit{{old: "      min_score: 0", new: "      min_score: 5"}},
			[]wantProblem{{"risk.tiers[3].min_score", "min_score: 5\n", "must start at 0"}}, false},
		{"band out of range", []edit{{old: "      min_score: 70", new: "      min_score: 170"}},
			[]wantProblem{{"risk.tiers[0].min_score", "min_score: 170", "between 0 and 100"}}, false},
		{"band empty", []edit{{old: "      min_score: 25", new: "      min_score: 50"}},
			[]wantProblem{{"risk.tiers[2].max_score", "      max_score: 50", "must be above min_score (50)"}}, false},
		{"tiers out of order", []edit{
			{old: "      min_score: 70\n      max_score: 100", new: "      min_score: 0X\n      max_score: 25X"},
			{old: "      min_score: 0\n      max_score: 25\n", new: "      min_score: 70\n      max_score: 100\n"},
			{old: "      min_score: 0X\n      max_score: 25X", new: "      min_score: 0\n      max_score: 25"},
		}, []wantProblem{{"risk.tiers[1]", "    - name: high", "most urgent first"}}, false},
		{"bands only checked in score mode", []edit{{old: "  mode: score", new: "  mode: ssvc"}, {old: "      max_score: 70", new: "      max_score: 75"}},
			nil, false},

		// SSVC and KEV bands.
		{"ssvc unknown decision", []edit{{old: "      track: low\n", new: "      track: low\n      defer: low\n"}},
			[]wantProblem{{"risk.ssvc.outcomes.defer", "defer: low", `unknown SSVC decision "defer"`}}, false},
		{"ssvc outcome tier", []edit{{old: "      act: critical", new: "      act: urgent"}},
			[]wantProblem{{"risk.ssvc.outcomes.act", "act: urgent", "names no tier"}}, false},
		{"ssvc mode needs every decision", []edit{{old: "  mode: score", new: "  mode: ssvc"}, {old: "      track: low\n", new: ""}},
			[]wantProblem{{"risk.ssvc.outcomes", "    outcomes:", `"track" is missing`}}, false},
		{"ssvc table", []edit{{old: "  ssvc:\n", new: "  ssvc:\n    table: cisa-9\n"}},
			[]wantProblem{{"risk.ssvc.table", "table: cisa-9", "unknown decision table"}}, false},
		{"poc percentile", []edit{{old: "    poc_epss_percentile: 0.9", new: "    poc_epss_percentile: 90"}},
			[]wantProblem{{"risk.ssvc.poc_epss_percentile", "poc_epss_percentile: 90", "between 0 and 1"}}, false},
		{"mission returns string", []edit{{old: "    mission_medium: asset.handles_phi", new: "    mission_medium: asset.name"}},
			[]wantProblem{{"risk.ssvc.mission_medium", "mission_medium: asset.name", "must return bool"}}, false},
		{"kev band unknown", []edit{{old: "      other: low", new: "      other: low\n      medium: low"}},
			[]wantProblem{{"risk.kev_bands.tiers.medium", "medium: low", `unknown band "medium"`}}, false},
		{"kev band tier", []edit{{old: "      kev: critical", new: "      kev: urgent"}},
			[]wantProblem{{"risk.kev_bands.tiers.kev", "kev: urgent", "names no tier"}}, false},
		{"kev_bands mode needs every band", []edit{{old: "  mode: score", new: "  mode: kev_bands"}, {old: "      other: low\n", new: ""}},
			[]wantProblem{{"risk.kev_bands.tiers", "    tiers:\n      kev: critical", `"other" is missing`}}, false},
		{"mission compile error", []edit{{old: "    mission_medium: asset.handles_phi", new: "    mission_medium: asset.handles_phi &&"}},
			[]wantProblem{{"risk.ssvc.mission_medium", "mission_medium: asset.handles_phi &&", "Syntax error"}}, false},
		{"kev_bands mode durations", []edit{{old: "  mode: score", new: "  mode: kev_bands"}, {old: "    kev: 14d", new: "    kev: 0"}},
			[]wantProblem{{"risk.kev_bands.kev", "kev: 0", "positive"}}, false},

		// SLA.
		{"clock start", []edit{{old: "  clock_start: first_seen", new: "  clock_start: whenever"}},
			[]wantProblem{{"sla.clock_start", "clock_start: whenever", "must be one of"}}, false},
		{"epss jump", []edit{{old: "  epss_jump: 0.1", new: "  epss_jump: 10"}},
			[]wantProblem{{"sla.epss_jump", "epss_jump: 10", "between 0 and 1"}}, false},

		// Asset classes.
		{"class sees only asset", []edit{{old: "    match: asset.type == \"analyzer\"", new: "    match: vuln.kev"}},
			[]wantProblem{{"asset_classes[1].match", "match: vuln.kev", "undeclared reference to 'vuln'"}}, false},
		{"class due unknown tier", []edit{{old: "      critical: 48h", new: "      urgent: 48h"}},
			[]wantProblem{{"asset_classes[0].due.urgent", "urgent: 48h", `names no tier in risk.tiers: "urgent"`}}, false},
		{"class due not stricter", []edit{{old: "      high: 7d", new: "      high: 15d"}},
			[]wantProblem{{"asset_classes[1].due.high", "high: 15d", `15d is longer than tier "high"'s target (14d)`}}, false},
		{"class due zero", []edit{{old: "      critical: 48h", new: "      critical: 0"}},
			[]wantProblem{{"asset_classes[0].due.critical", "      critical: 0", "positive"}}, false},
		{"class approver", []edit{{old: "    approvers: [lab-director]", new: "    approvers: [manager, lab-boss]"}},
			[]wantProblem{{"asset_classes[1].approvers[1]", "approvers: [manager, lab-boss]", `names no role in roles: "lab-boss"`}}, false},
		{"duplicate class", []edit{{old: "  - name: lab\n", new: "  - name: dc\n"}},
			[]wantProblem{
				{"asset_classes[1].name", "  - name: dc\n    match: asset.type", `duplicate asset class "dc"`},
				{"testing.cases[0].applies_to[0]", "applies_to: [lab]", `names no asset class: "lab"`},
			}, false},

		// Approvals.
		{"negative quorum", []edit{{old: "      quorum: 2", new: "      quorum: -1"}},
			[]wantProblem{{"approvals.types.normal.quorum", "quorum: -1", "must not be negative"}}, false},
		{"unknown change type", []edit{{old: "    standard:", new: "    routine:"}},
			[]wantProblem{{"approvals.types.routine", "routine:", `unknown change type "routine"`}}, false},
		{"quorum above roles", []edit{{old: "      quorum: 2", new: "      quorum: 3"}},
			[]wantProblem{{"approvals.types.normal.quorum", "quorum: 3", "3 approvals needed but only 2 role(s)"}}, false},
		{"quorum zero", []edit{{old: "      quorum: 1", new: "      quorum: 0\n"}},
			[]wantProblem{{"approvals.types.emergency.quorum", "quorum: 0\n\n", "at least 1 unless"}}, false},
		{"approval role", []edit{{old: "      roles: [manager]\n      quorum: 1", new: "      roles: [nobody]\n      quorum: 1"}},
			[]wantProblem{{"approvals.types.emergency.roles[0]", "roles: [nobody]", `names no role in roles: "nobody"`}}, false},
		{"emergency type missing", []edit{{old: "    emergency:\n      roles: [manager]\n      quorum: 1\n", new: ""}},
			[]wantProblem{{"approvals.types", "  types:", `approval rules for "emergency"`}}, false},

		// Emergency.
		{"emergency window", []edit{{old: "  window: nightly", new: "  window: weekend"}},
			[]wantProblem{{"emergency.window", "window: weekend", "names no maintenance window"}}, false},
		{"emergency tests", []edit{{old: "  tests: [qc]", new: "  tests: [qc, ekg]"}},
			[]wantProblem{{"emergency.tests[1]", "tests: [qc, ekg]", `names no test case in testing.cases: "ekg"`}}, false},
		{"emergency authority", []edit{{old: "  authority: [manager]", new: "  authority: [janitor]"}},
			[]wantProblem{{"emergency.authority[0]", "authority: [janitor]", "names no role"}}, false},
		{"go/no-go", []edit{{old: "  go_no_go: 4h", new: "  go_no_go: 0"}},
			[]wantProblem{{"emergency.go_no_go", "go_no_go: 0", "positive"}}, false},
		{"immediate window", []edit{{old: "  window: nightly", new: "  window: immediate"}}, nil, false},

		{"emergency authority empty", []edit{{old: "  authority: [manager]", new: "  authority: []"}},
			[]wantProblem{{"emergency.authority", "authority: []", "required"}}, false},
		{"review_within", []edit{{old: "  review_within: 7d\n", new: ""}},
			[]wantProblem{{"emergency.review_within", "emergency:\n  authority", "positive"}}, false},

		// Windows.
		{"rrule", []edit{{old: "FREQ=MONTHLY;BYDAY=2TU", new: "FREQ=MONTHLY;BYDAY=2XX"}},
			[]wantProblem{{"maintenance_windows[0].schedule", "BYDAY=2XX", "not a valid RRULE"}}, false},
		{"rrule freq", []edit{{old: "    schedule: FREQ=DAILY", new: "    schedule: FREQ=SECONDLY"}},
			[]wantProblem{{"maintenance_windows[1].schedule", "FREQ=SECONDLY", "FREQ must be"}}, false},
		{"rrule dtstart", []edit{{old: "    schedule: FREQ=DAILY", new: "    schedule: FREQ=DAILY;DTSTART=20250101T000000Z"}},
			[]wantProblem{{"maintenance_windows[1].schedule", "DTSTART=", "must not set DTSTART"}}, false},
		{"start", []edit{{old: "    start: \"22:00\"", new: "    start: \"25:00\""}},
			[]wantProblem{{"maintenance_windows[0].start", "25:00", "HH:MM"}}, false},
		{"window zone", []edit{{old: "    time_zone: America/Chicago", new: "    time_zone: Chicago"}},
			[]wantProblem{{"maintenance_windows[1].time_zone", "time_zone: Chicago", "IANA"}}, false},
		{"window duration", []edit{{old: "    duration: 6h", new: "    duration: 0"}},
			[]wantProblem{{"maintenance_windows[0].duration", "duration: 0", "positive"}}, false},
		{"duplicate window", []edit{{old: "  - name: nightly", new: "  - name: monthly"}},
			[]wantProblem{{"emergency.window", "window: nightly", "names no maintenance window"}, {"maintenance_windows[1].name", "  - name: monthly\n    schedule: FREQ=DAILY", `duplicate window "monthly"`}}, false},
		{"offset days", []edit{{old: "    offset_days: 2", new: "    offset_days: 40"}},
			[]wantProblem{{"maintenance_windows[0].offset_days", "offset_days: 40", "between -31 and 31"}}, false},

		{"window name reserved", []edit{{old: "  - name: monthly\n", new: "  - name: immediate\n"}},
			[]wantProblem{{"maintenance_windows[0].name", "name: immediate", "reserved"}}, false},
		{"window start missing", []edit{{old: "    start: \"21:00\"\n", new: ""}},
			[]wantProblem{{"maintenance_windows[1].start", "  - name: nightly", "required"}}, false},
		{"weekly without a day", []edit{{old: "    schedule: FREQ=DAILY", new: "    schedule: FREQ=WEEKLY"}},
			[]wantProblem{{"maintenance_windows[1].schedule", "schedule: FREQ=WEEKLY", "needs BYDAY"}}, false},

		// Freezes.
		{"freeze date", []edit{{old: "    from: \"2026-05-04\"", new: "    from: \"05/04/2026\""}},
			[]wantProblem{{"freezes[0].from", "05/04/2026", "YYYY-MM-DD"}}, false},
		{"freeze order", []edit{{old: "    to: \"2026-05-15\"", new: "    to: \"2026-05-01\""}},
			[]wantProblem{{"freezes[0].to", "2026-05-01", "before from"}}, false},

		{"duplicate freeze", []edit{{old: "retention:", new: "retention:"}, {old: "freezes:\n", new: "freezes:\n  - name: pt\n    from: \"2026-01-01\"\n    to: \"2026-01-02\"\n"}},
			[]wantProblem{{"freezes[1].name", "  - name: pt\n    from: \"2026-05-04\"", `duplicate freeze "pt"`}}, false},

		// Rings.
		{"duplicate ring", []edit{{old: "  - name: rest", new: "  - name: pilot"}},
			[]wantProblem{{"rings[1].name", "  - name: pilot\n    success_rate: 1", `duplicate ring "pilot"`}}, false},
		{"ring select", []edit{{old: "    select: '\"pilot\" in asset.tags'", new: "    select: asset.tags"}},
			[]wantProblem{{"rings[0].select", "select: asset.tags", "must return bool"}}, false},
		{"ring rate", []edit{{old: "    success_rate: 0.95", new: "    success_rate: 95"}},
			[]wantProblem{{"rings[0].success_rate", "success_rate: 95", "between 0 and 1"}}, false},
		{"ring min_success", []edit{{old: "    min_success: 3", new: "    min_success: -3"}},
			[]wantProblem{{"rings[0].min_success", "min_success: -3", "must not be negative"}}, false},
		{"ring halt rate", []edit{{old: "    halt_failure_rate: 0.1", new: "    halt_failure_rate: -0.1"}},
			[]wantProblem{{"rings[0].halt_failure_rate", "halt_failure_rate: -0.1", "between 0 and 1"}}, false},
		{"ring max_concurrent", []edit{{old: "    halt_failure_rate: 0.1", new: "    halt_failure_rate: 0.1\n    max_concurrent: -2"}},
			[]wantProblem{{"rings[0].max_concurrent", "max_concurrent: -2", "must not be negative"}}, false},
		{"no rings", []edit{{old: "rings:\n", upTo: "testing:\n", new: "rings: []\n"}},
			[]wantProblem{{"rings", "rings: []", "at least one deployment ring"}}, false},

		// Testing.
		{"required_for", []edit{{old: "  required_for: [normal, emergency]", new: "  required_for: [normal, urgent]"}},
			[]wantProblem{{"testing.required_for[1]", "required_for: [normal, urgent]", `unknown change type "urgent"`}}, false},
		{"duplicate test case", []edit{{old: "    - id: boot", new: "    - id: qc"}},
			[]wantProblem{{"testing.cases[1].id", "    - id: qc\n      name: Boot", `duplicate test case "qc"`}}, false},
		{"applies_to", []edit{{old: "      applies_to: [lab]", new: "      applies_to: [laboratory]"}},
			[]wantProblem{{"testing.cases[0].applies_to[0]", "applies_to: [laboratory]", `names no asset class: "laboratory"`}}, false},
		{"test criteria", []edit{{old: "      criteria: boots\n", new: ""}},
			[]wantProblem{{"testing.cases[1].criteria", "    - id: boot", "required"}}, false},

		{"empty rollback trigger", []edit{{old: "  triggers: [a test fails]", new: "  triggers: [a test fails, \"\"]"}},
			[]wantProblem{{"rollback.triggers[1]", "triggers: [a test fails", "required"}}, false},

		// Exceptions and retention.
		{"exception approver", []edit{{old: "  approver_roles: [approver]", new: "  approver_roles: [approver, boss]"}},
			[]wantProblem{{"exceptions.approver_roles[1]", "approver_roles: [approver, boss]", "must be one of Patchward's roles"}}, false},
		{"no exception approvers", []edit{{old: "  approver_roles: [approver]", new: "  approver_roles: []"}},
			[]wantProblem{{"exceptions.approver_roles", "approver_roles: []", "required"}}, false},
		{"exception decision", []edit{{old: "  decisions: [accept, mitigate]", new: "  decisions: [accept, ignore]"}},
			[]wantProblem{{"exceptions.decisions[1]", "decisions: [accept, ignore]", `unknown decision "ignore"`}}, false},
		{"require_controls", []edit{{old: "  require_controls: [mitigate]", new: "  require_controls: [pray]"}},
			[]wantProblem{{"exceptions.require_controls[0]", "require_controls: [pray]", "unknown decision"}}, false},
		{"review after expiry", []edit{{old: "  review_every: 90d", new: "  review_every: 200d"}},
			[]wantProblem{{"exceptions.review_every", "review_every: 200d", "longer than max_duration (180d)"}}, false},
		{"max duration", []edit{{old: "  max_duration: 180d", new: "  max_duration: 0"}},
			[]wantProblem{{"exceptions.max_duration", "max_duration: 0", "positive"}}, false},
		{"retention", []edit{{old: "  findings: 3y", new: "  findings: 0"}},
			[]wantProblem{{"retention.findings", "findings: 0", "positive"}}, false},
		{"retention missing", []edit{{old: "  audit: 6y\n", new: ""}},
			[]wantProblem{{"retention.audit", "retention:", "positive"}}, false},

		// Several problems at once come back in file order.
		{"several", []edit{
			{old: "  mode: score", new: "  mode: vibes"},
			{old: "version: 1", new: "version: 3"},
			{old: "  findings: 3y", new: "  findings: forever"},
		}, []wantProblem{
			{"version", "version: 3", "must be 1"},
			{"risk.mode", "mode: vibes", "must be one of"},
			{"retention.findings", "findings: forever", "duration"},
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := applyEdits(t, base, tt.edits)
			_, err := Load([]byte(src))
			got := problemsOf(t, err)
			type pos struct {
				Line int
				Path string
			}
			var wantPos, gotPos []pos
			for _, w := range tt.want {
				wantPos = append(wantPos, pos{lineOf(t, src, w.at), w.path})
			}
			for _, g := range got {
				gotPos = append(gotPos, pos{g.Line, g.Path})
			}
			if tt.subset {
				for i, w := range wantPos {
					j := -1
					for k, g := range gotPos {
						if g == w {
							j = k
						}
					}
					if j < 0 {
						t.Errorf("Load: no problem %+v among\n%v", w, err)
					} else if !strings.Contains(got[j].Message, tt.want[i].msg) {
						t.Errorf("problem %s message = %q; want it to contain %q", w.Path, got[j].Message, tt.want[i].msg)
					}
				}
				return
			}
			if diff := cmp.Diff(wantPos, gotPos); diff != "" {
				t.Fatalf("Load problems (-want +got):\n%s\nfull error:\n%v", diff, err)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].Message, w.msg) {
					t.Errorf("problem %s message = %q; want it to contain %q", w.path, got[i].Message, w.msg)
				}
			}
		})
	}
}

// TestCELProblemPositions checks that a CEL error points at the offending
// token in the file, whether the expression is a plain, quoted or block
// scalar.
func TestCELProblemPositions(t *testing.T) {
	base := readBase(t)
	tests := []struct {
		name string
		edit edit
		path string
		// at is the text of the problem's line; col the column of the
		// offending token.
		at  string
		col int
		msg string
	}{
		{
			name: "syntax error in a plain scalar",
			edit: edit{old: `      when: vuln.kev && asset.exposure == "internet_facing"`, new: `      when: vuln.kev && && asset.exposure == "internet_facing"`},
			path: "risk.rules[0].when", at: "when: vuln.kev && &&", col: 25, msg: "Syntax error",
		},
		{
			name: "unknown field on the second line of a block scalar",
			edit: edit{old: "        asset.handles_phi\n", new: "        asset.handles_phy\n"},
			path: "risk.rules[1].when", at: "asset.handles_phy", col: 14, msg: "undefined field 'handles_phy'",
		},
		{
			name: "string result in a plain scalar",
			edit: edit{old: `      when: vuln.kev && asset.exposure == "internet_facing"`, new: `      when: asset.name + "x"`},
			path: "risk.rules[0].when", at: "when: asset.name", col: 13, msg: "must return bool (true or false), returns string",
		},
		{
			name: "error in a single-quoted scalar",
			edit: edit{old: `    match: '"domain-controller" in asset.tags'`, new: `    match: '"domain-controller" in asset.tagz'`},
			path: "asset_classes[0].match", at: "asset.tagz", col: 41, msg: "undefined field 'tagz'",
		},
		{
			name: "error in a folded block scalar",
			edit: edit{old: `    mission_high: asset.criticality == "critical"`, new: "    mission_high: >\n      asset.criticality == \"critical\" ||\n      asset.safety == 1"},
			path: "risk.ssvc.mission_high", at: "asset.safety", col: 12, msg: "undefined field 'safety'",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := applyEdits(t, base, []edit{tt.edit})
			_, err := Load([]byte(src))
			got := problemsOf(t, err)
			if len(got) == 0 {
				t.Fatal("Load succeeded; want a CEL problem")
			}
			p := got[0]
			line := lineOf(t, src, tt.at)
			if p.Path != tt.path || p.Line != line || p.Column != tt.col || !strings.Contains(p.Message, tt.msg) {
				t.Errorf("Load problem = %+v; want %s at %d:%d containing %q\nline %d: %q", p, tt.path, line, tt.col, tt.msg,
					line, strings.Split(src, "\n")[line-1])
			}
		})
	}
}

func TestYAMLSyntaxProblems(t *testing.T) {
	base := readBase(t)
	tests := []struct {
		name string
		src  string
		line int
		msg  string
	}{
		{"tab indentation", applyEdits(t, base, []edit{{old: "  name: Test Clinic\n", new: "  name: Test Clinic\n\tscope: []\n"}}), 4, "tab"},
		{"unclosed flow list", applyEdits(t, base, []edit{{old: "  authority: [manager]", new: "  authority: [manager"}}), 118, "did not find expected"},
		{"bad indentation", applyEdits(t, base, []edit{{old: "  epss_jump: 0.1", new: "   epss_jump: 0.1"}}), 86, ""},
		{"unknown anchor", applyEdits(t, base, []edit{{old: "  tests: [qc]", new: "  tests: *nothing"}}), 120, "unknown anchor"},
		{"empty file", "", 1, "empty"},
		{"only comments", "# nothing here\n", 1, "empty"},
		{"two documents", "version: 1\n---\nversion: 2\n", 2, "one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]byte(tt.src))
			got := problemsOf(t, err)
			if len(got) != 1 || got[0].Line != tt.line || !strings.Contains(got[0].Message, tt.msg) {
				t.Errorf("Load problems = %+v; want one at line %d containing %q", got, tt.line, tt.msg)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	src := applyEdits(t, readBase(t), []edit{{old: "      max_score: 70", new: "      max_score: 75"}, {old: "  mode: score", new: "  mode: Score"}})
	_, err := Load([]byte(src))
	want := "line 9: risk.mode: must be one of \"score\", \"ssvc\", \"kev_bands\", got \"Score\""
	if err == nil || err.Error() != want {
		t.Errorf("Load error = %v; want %s", err, want)
	}
	src = applyEdits(t, readBase(t), []edit{{old: "      max_score: 70", new: "      max_score: 75"}})
	_, err = Load([]byte(src))
	want = "line 51: risk.tiers[1].min_score: overlaps tier \"critical\" (70–100)"
	if err == nil || err.Error() != want {
		t.Errorf("Load error = %v; want %s", err, want)
	}
	if !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("errors.Is(err, errs.ErrInvalid) = false; want true")
	}
	if got := errs.HTTPStatus(err); got != 400 {
		t.Errorf("errs.HTTPStatus(err) = %d; want 400", got)
	}
	if got := errs.Public(err); !strings.Contains(got, want) {
		t.Errorf("errs.Public(err) = %q; want it to contain %q", got, want)
	}
	if got := errs.FieldsOf(err)["risk.tiers[1].min_score"]; got != want {
		t.Errorf("errs.FieldsOf(err)[path] = %q; want %q", got, want)
	}
}

func TestTooLarge(t *testing.T) {
	_, err := Load(make([]byte, MaxSourceSize+1))
	if got := problemsOf(t, err); len(got) != 1 || !strings.Contains(got[0].Message, "limit") {
		t.Errorf("Load(huge) problems = %+v; want one about the size limit", got)
	}
}
