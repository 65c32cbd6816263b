package risk

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
)

// exceptionRulesPolicy is the default policy with these exception rules.
func exceptionRulesPolicy(t *testing.T, rules map[string]any) *policy.Compiled {
	t.Helper()
	return editedPolicy(t, func(doc map[string]any) { doc["exceptions"] = rules })
}

func standardExceptionPolicy(t *testing.T) *policy.Compiled {
	return exceptionRulesPolicy(t, map[string]any{
		"approver_roles":   []string{"approver", "admin"},
		"max_duration":     "180d",
		"review_every":     "30d",
		"require_controls": []string{"mitigate"},
		"decisions":        []string{"accept", "mitigate", "transfer", "avoid"},
	})
}

var excNow = time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)

func validRequest() Exception {
	return Exception{
		Scope: ScopeAsset, Target: "asset-analyzer-1", VulnID: "CVE-2026-1234",
		Decision: policy.DecisionMitigate,
		Reason:   "FDA-validated analyzer: the maker has not released the fix for this model",
		Controls: []Control{{Kind: policy.ControlSegmentation, Description: "lab VLAN 40, no route to the internet",
			VerifiedBy: "mallory", VerifiedAt: &excNow}},
		Owner: "laboratory director",
		// Fields a client must not be able to set:
		State: ExceptionApproved, DecidedBy: "mallory", Revision: 7,
		EndedBy: "mallory", LastReviewedAt: &excNow,
		ExpiresAt: excNow.AddDate(0, 3, 0),
	}
}

func kindOf(t *testing.T, err error, want errs.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil; want %v", want)
	}
	if got := errs.KindOf(err); got != want {
		t.Fatalf("error kind = %v (%v); want %v", got, err, want)
	}
}

func TestNewException(t *testing.T) {
	p := standardExceptionPolicy(t)
	got, err := NewException(validRequest(), "alice", p, excNow)
	if err != nil {
		t.Fatalf("NewException(valid) = %v", err)
	}
	if !regexp.MustCompile(`^exc_[0-9a-f]{16}$`).MatchString(got.ID) {
		t.Errorf("ID = %q; want exc_ and 16 hex digits", got.ID)
	}
	want := validRequest()
	want.Controls = []Control{{Kind: policy.ControlSegmentation, Description: "lab VLAN 40, no route to the internet"}}
	want.ID = got.ID
	want.State, want.DecidedBy, want.Revision, want.EndedBy, want.LastReviewedAt = ExceptionRequested, "", 1, "", nil
	want.RequestedBy, want.RequestedAt, want.UpdatedAt = "alice", excNow, excNow
	want.NextReviewAt = excNow.AddDate(0, 0, 30)
	if diff := cmp.Diff(want, got, timeEqual); diff != "" {
		t.Errorf("NewException (-want +got):\n%s", diff)
	}
	other, _ := NewException(validRequest(), "alice", p, excNow)
	if other.ID == got.ID {
		t.Errorf("two exceptions got the same ID %q", got.ID)
	}

	// An exception shorter than the review interval is reviewed at expiry.
	short := validRequest()
	short.ExpiresAt = excNow.AddDate(0, 0, 10)
	got, err = NewException(short, "alice", p, excNow)
	if err != nil || !got.NextReviewAt.Equal(short.ExpiresAt) {
		t.Errorf("short exception: next review %v (err %v); want its expiry %v", got.NextReviewAt, err, short.ExpiresAt)
	}
}

func TestNewExceptionInvalid(t *testing.T) {
	p := standardExceptionPolicy(t)
	tests := []struct {
		name      string
		edit      func(e *Exception)
		requester string
		wantField string
		wantMsg   string
	}{
		{"no scope", func(e *Exception) { e.Scope = "" }, "alice", "scope", "required"},
		{"unknown scope", func(e *Exception) { e.Scope = "site" }, "alice", "scope", `"site" is not finding, asset or group`},
		{"no target", func(e *Exception) { e.Target = "  " }, "alice", "target", "required: the asset"},
		{"no decision", func(e *Exception) { e.Decision = "" }, "alice", "decision", "required"},
		{"unknown decision", func(e *Exception) { e.Decision = "ignore" }, "alice", "decision", "not allowed by the policy"},
		{"no reason", func(e *Exception) { e.Reason = "" }, "alice", "reason", "required"},
		{"unknown control kind", func(e *Exception) { e.Controls[0].Kind = "prayer" }, "alice", "controls[0].kind", `"prayer" is not one of`},
		{"control without description", func(e *Exception) {
			e.Controls = append(e.Controls, Control{Kind: policy.ControlMonitoring})
		}, "alice", "controls[1].description", "required"},
		{"mitigate without controls", func(e *Exception) { e.Controls = nil }, "alice", "controls", "at least one compensating control for mitigate decisions"},
		{"no owner", func(e *Exception) { e.Owner = "" }, "alice", "owner", "required"},
		{"no requester", func(e *Exception) {}, " ", "requested_by", "required"},
		{"no expiry", func(e *Exception) { e.ExpiresAt = time.Time{} }, "alice", "expires_at", "required: every exception ends"},
		{"expiry now", func(e *Exception) { e.ExpiresAt = excNow }, "alice", "expires_at", "must be in the future"},
		{"beyond max duration", func(e *Exception) { e.ExpiresAt = excNow.AddDate(0, 0, 180).Add(time.Second) }, "alice", "expires_at", "at most 180d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validRequest()
			e.Controls = append([]Control(nil), e.Controls...)
			tt.edit(&e)
			_, err := NewException(e, tt.requester, p, excNow)
			kindOf(t, err, errs.Invalid)
			if !errors.Is(err, errs.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			fields := errs.FieldsOf(err)
			if len(fields) != 1 {
				t.Errorf("fields = %v; want only %s", fields, tt.wantField)
			}
			if msg := fields[tt.wantField]; !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("field %s = %q; want it to contain %q", tt.wantField, msg, tt.wantMsg)
			}
		})
	}

	t.Run("at the max duration exactly", func(t *testing.T) {
		e := validRequest()
		e.ExpiresAt = excNow.AddDate(0, 0, 180)
		if _, err := NewException(e, "alice", p, excNow); err != nil {
			t.Errorf("expiry at max_duration: %v; want accepted", err)
		}
	})
	t.Run("every problem at once", func(t *testing.T) {
		_, err := NewException(Exception{}, "", p, excNow)
		fields := errs.FieldsOf(err)
		for _, f := range []string{"scope", "target", "decision", "reason", "owner", "requested_by", "expires_at"} {
			if _, ok := fields[f]; !ok {
				t.Errorf("empty exception: no problem reported for %s (got %v)", f, fields)
			}
		}
	})
	t.Run("accept needs no control", func(t *testing.T) {
		e := validRequest()
		e.Decision, e.Controls = policy.DecisionAccept, nil
		if _, err := NewException(e, "alice", p, excNow); err != nil {
			t.Errorf("accept without controls: %v; want accepted", err)
		}
	})
	t.Run("decisions the policy narrows", func(t *testing.T) {
		narrow := exceptionRulesPolicy(t, map[string]any{
			"approver_roles": []string{"approver"}, "max_duration": "90d", "review_every": "30d",
			"require_controls": []string{"mitigate", "accept"}, "decisions": []string{"mitigate", "accept"},
		})
		e := validRequest()
		e.Decision = policy.DecisionTransfer
		_, err := NewException(e, "alice", narrow, excNow)
		if msg := errs.FieldsOf(err)["decision"]; !strings.Contains(msg, "use one of mitigate, accept") {
			t.Errorf("transfer under a narrowed policy: %q", msg)
		}
		e.Decision, e.Controls = policy.DecisionAccept, nil
		_, err = NewException(e, "alice", narrow, excNow)
		if msg := errs.FieldsOf(err)["controls"]; !strings.Contains(msg, "for accept decisions") {
			t.Errorf("accept without controls when required: %q", msg)
		}
	})
}

// requested returns a fresh requested exception from alice.
func requested(t *testing.T, p *policy.Compiled) Exception {
	t.Helper()
	e, err := NewException(validRequest(), "alice", p, excNow)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestApprove(t *testing.T) {
	p := standardExceptionPolicy(t)
	later := excNow.Add(2 * time.Hour)

	got, err := Approve(requested(t, p), "bob", "approver", "controls checked on site", p, later)
	if err != nil {
		t.Fatalf("Approve = %v", err)
	}
	if got.State != ExceptionApproved || got.DecidedBy != "bob" || got.DecidedAt == nil || !got.DecidedAt.Equal(later) ||
		got.DecisionNote != "controls checked on site" || got.Revision != 2 || !got.UpdatedAt.Equal(later) {
		t.Errorf("approved = %+v", got)
	}
	if want := later.AddDate(0, 0, 30); !got.NextReviewAt.Equal(want) {
		t.Errorf("NextReviewAt = %v; want review_every from approval %v", got.NextReviewAt, want)
	}
	if !got.Active(later) || got.Active(got.ExpiresAt) {
		t.Errorf("Active: at approval %v, at expiry %v; want true, false", got.Active(later), got.Active(got.ExpiresAt))
	}

	tests := []struct {
		name     string
		e        func() Exception
		approver string
		role     string
		now      time.Time
		want     errs.Kind
		wantMsg  string
	}{
		{"requester approves own", func() Exception { return requested(t, p) }, "alice", "approver", later, errs.Forbidden, "separation of duties"},
		{"requester in other case", func() Exception { return requested(t, p) }, "ALICE", "admin", later, errs.Forbidden, "separation of duties"},
		{"role not allowed", func() Exception { return requested(t, p) }, "carol", "operator", later, errs.Forbidden, `role "operator" may not approve exceptions; the policy allows approver, admin`},
		{"already approved", func() Exception { return got }, "carol", "approver", later, errs.Conflict, "is approved: only a requested exception can be approved"},
		{"rejected", func() Exception {
			r, _ := Reject(requested(t, p), "bob", "approver", "no controls", p, later)
			return r
		}, "carol", "approver", later, errs.Conflict, "is rejected"},
		{"expired before approval", func() Exception { return requested(t, p) }, "bob", "approver", excNow.AddDate(0, 4, 0), errs.Conflict, "expired at"},
		{"no approver", func() Exception { return requested(t, p) }, "", "approver", later, errs.Invalid, "decided_by"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Approve(tt.e(), tt.approver, tt.role, "", p, tt.now)
			kindOf(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Approve error = %q; want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestReject(t *testing.T) {
	p := standardExceptionPolicy(t)
	later := excNow.Add(time.Hour)
	got, err := Reject(requested(t, p), "bob", "approver", "segmentation not in place", p, later)
	if err != nil {
		t.Fatalf("Reject = %v", err)
	}
	if got.State != ExceptionRejected || got.DecidedBy != "bob" || got.DecisionNote != "segmentation not in place" || got.Revision != 2 || got.EndedAt != nil {
		t.Errorf("rejected = %+v", got)
	}
	if got.Active(later) {
		t.Error("a rejected exception is active")
	}
	_, err = Reject(requested(t, p), "alice", "approver", "never mind", p, later)
	kindOf(t, err, errs.Forbidden)
	if !strings.Contains(err.Error(), "withdraw it by revoking it instead") {
		t.Errorf("self-rejection error = %q", err)
	}
	_, err = Reject(requested(t, p), "bob", "viewer", "no", p, later)
	kindOf(t, err, errs.Forbidden)
	_, err = Reject(requested(t, p), "bob", "approver", " ", p, later)
	kindOf(t, err, errs.Invalid)
	_, err = Reject(got, "carol", "approver", "twice", p, later)
	kindOf(t, err, errs.Conflict)
}

func TestRevoke(t *testing.T) {
	p := standardExceptionPolicy(t)
	approved, err := Approve(requested(t, p), "bob", "approver", "", p, excNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Exception{requested(t, p), approved} {
		now := excNow.AddDate(0, 0, 5)
		got, err := Revoke(e, "carol", "analyzer replaced", now)
		if err != nil {
			t.Fatalf("Revoke(%s) = %v", e.State, err)
		}
		if got.State != ExceptionRevoked || got.EndedAt == nil || !got.EndedAt.Equal(now) || got.EndedBy != "carol" ||
			got.EndNote != "analyzer replaced" || got.Revision != e.Revision+1 || got.DecidedBy != e.DecidedBy {
			t.Errorf("Revoke(%s) = %+v", e.State, got)
		}
		if got.Active(now) {
			t.Error("a revoked exception is active")
		}
		_, err = Revoke(got, "carol", "again", now)
		kindOf(t, err, errs.Conflict)
	}
	_, err = Revoke(approved, "carol", "", excNow)
	kindOf(t, err, errs.Invalid)
	if _, ok := errs.FieldsOf(err)["end_note"]; !ok {
		t.Errorf("revoke without a note: fields %v; want end_note", errs.FieldsOf(err))
	}
	expired, _ := Expire(approved, approved.ExpiresAt)
	_, err = Revoke(expired, "carol", "late", approved.ExpiresAt)
	kindOf(t, err, errs.Conflict)
}

func TestReviewException(t *testing.T) {
	p := standardExceptionPolicy(t)
	approvedAt := excNow.Add(time.Hour)
	approved, err := Approve(requested(t, p), "bob", "approver", "", p, approvedAt)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("continue", func(t *testing.T) {
		now := approvedAt.AddDate(0, 0, 31)
		got, rev, err := ReviewException(approved, "dana", "continue", "VLAN ACL re-checked", p, now)
		if err != nil {
			t.Fatalf("Review(continue) = %v", err)
		}
		if got.State != ExceptionApproved || got.LastReviewedAt == nil || !got.LastReviewedAt.Equal(now) ||
			!got.NextReviewAt.Equal(now.AddDate(0, 0, 30)) || got.Revision != approved.Revision+1 || !got.UpdatedAt.Equal(now) {
			t.Errorf("reviewed = %+v", got)
		}
		if c := got.Controls[0]; c.VerifiedAt == nil || !c.VerifiedAt.Equal(now) || c.VerifiedBy != "dana" {
			t.Errorf("control after review = %+v; want verified by dana now", c)
		}
		if approved.Controls[0].VerifiedAt != nil {
			t.Error("Review changed the caller's controls")
		}
		want := Review{ExceptionID: approved.ID, At: now, By: "dana", Outcome: ReviewContinue, Note: "VLAN ACL re-checked"}
		if diff := cmp.Diff(want, rev, timeEqual); diff != "" {
			t.Errorf("review (-want +got):\n%s", diff)
		}
	})
	t.Run("continue near expiry reviews at expiry", func(t *testing.T) {
		now := approved.ExpiresAt.AddDate(0, 0, -10)
		got, _, err := ReviewException(approved, "dana", "continue", "", p, now)
		if err != nil || !got.NextReviewAt.Equal(approved.ExpiresAt) {
			t.Errorf("next review %v (err %v); want the expiry %v", got.NextReviewAt, err, approved.ExpiresAt)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		now := approvedAt.AddDate(0, 0, 31)
		got, rev, err := ReviewException(approved, "dana", "revoke", "monitoring agent removed", p, now)
		if err != nil {
			t.Fatalf("Review(revoke) = %v", err)
		}
		if got.State != ExceptionRevoked || got.EndedAt == nil || !got.EndedAt.Equal(now) || got.EndedBy != "dana" ||
			got.EndNote != "monitoring agent removed" || got.LastReviewedAt == nil || got.Revision != approved.Revision+1 {
			t.Errorf("revoked at review = %+v", got)
		}
		if rev.Outcome != ReviewRevoke {
			t.Errorf("review outcome = %q", rev.Outcome)
		}
	})
	for _, tt := range []struct {
		name    string
		e       Exception
		outcome string
		note    string
		now     time.Time
		want    errs.Kind
	}{
		{"requested", requested(t, p), "continue", "", approvedAt, errs.Conflict},
		{"expired", approved, "continue", "", approved.ExpiresAt, errs.Conflict},
		{"unknown outcome", approved, "extend", "", approvedAt, errs.Invalid},
		{"revoke without a note", approved, "revoke", "", approvedAt, errs.Invalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReviewException(tt.e, "dana", tt.outcome, tt.note, p, tt.now)
			kindOf(t, err, tt.want)
		})
	}
}

func TestExpire(t *testing.T) {
	p := standardExceptionPolicy(t)
	approved, err := Approve(requested(t, p), "bob", "approver", "", p, excNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := Expire(approved, approved.ExpiresAt.Add(-time.Nanosecond)); ok || got.State != ExceptionApproved || got.Revision != approved.Revision {
		t.Errorf("Expire before expiry = %s, %v; want unchanged", got.State, ok)
	}
	sweep := approved.ExpiresAt.Add(6 * time.Hour)
	got, ok := Expire(approved, sweep)
	if !ok || got.State != ExceptionExpired || got.EndedAt == nil || !got.EndedAt.Equal(approved.ExpiresAt) ||
		got.Revision != approved.Revision+1 || !got.UpdatedAt.Equal(sweep) {
		t.Errorf("Expire after expiry = %+v, %v; want expired, ended at the expiry", got, ok)
	}
	if _, ok := Expire(got, sweep); ok {
		t.Error("Expire expired an expired exception again")
	}
	if _, ok := Expire(requested(t, p), sweep); ok {
		t.Error("Expire expired a requested exception")
	}
}

func TestExceptionCovers(t *testing.T) {
	s := Subject{
		Finding: match.Finding{ID: "f1", AssetID: "a1", VulnID: "CVE-2026-1234", AdvisoryIDs: []string{"DSA-6000-1", "GHSA-xxxx-yyyy-zzzz"}},
		Asset:   policy.AssetFacts{ID: "a1", Groups: []string{"lab-analyzers", "site-north"}},
	}
	tests := []struct {
		scope, target, vuln string
		want                bool
	}{
		{ScopeFinding, "f1", "", true},
		{ScopeFinding, "f2", "", false},
		{ScopeAsset, "a1", "", true},
		{ScopeAsset, "a2", "", false},
		{ScopeGroup, "lab-analyzers", "", true},
		{ScopeGroup, "site-north", "", true},
		{ScopeGroup, "pharmacy", "", false},
		{ScopeAsset, "a1", "cve-2026-1234", true},
		{ScopeAsset, "a1", "dsa-6000-1", true},
		{ScopeGroup, "lab-analyzers", "GHSA-XXXX-YYYY-ZZZZ", true},
		{ScopeAsset, "a1", "CVE-2026-9999", false},
		{ScopeFinding, "f1", "CVE-2026-9999", false},
		{"site", "a1", "", false},
	}
	for _, tt := range tests {
		e := Exception{Scope: tt.scope, Target: tt.target, VulnID: tt.vuln}
		if got := e.Covers(s); got != tt.want {
			t.Errorf("Exception{%s %s %s}.Covers = %v; want %v", tt.scope, tt.target, tt.vuln, got, tt.want)
		}
	}
}

func TestCovering(t *testing.T) {
	s := Subject{
		Finding: match.Finding{ID: "f1", AssetID: "a1", VulnID: "CVE-2026-1234"},
		Asset:   policy.AssetFacts{ID: "a1", Groups: []string{"lab"}},
	}
	exp := excNow.AddDate(0, 1, 0)
	mk := func(id, scope, target string, state string, expires time.Time) Exception {
		return Exception{ID: id, Scope: scope, Target: target, State: state, ExpiresAt: expires}
	}
	es := []Exception{
		mk("exc_g", ScopeGroup, "lab", ExceptionApproved, exp.AddDate(0, 2, 0)),
		mk("exc_a2", ScopeAsset, "a1", ExceptionApproved, exp),
		mk("exc_a1", ScopeAsset, "a1", ExceptionApproved, exp),
		mk("exc_f_requested", ScopeFinding, "f1", ExceptionRequested, exp),
		mk("exc_f_lapsed", ScopeFinding, "f1", ExceptionApproved, excNow),
		mk("exc_other", ScopeAsset, "a2", ExceptionApproved, exp),
	}
	if got := Covering(es, s, excNow); got == nil || got.ID != "exc_a1" {
		t.Errorf("Covering = %v; want exc_a1 (asset scope beats group; same expiry: smallest ID)", got)
	}
	es[1].ExpiresAt = exp.AddDate(0, 0, 1)
	if got := Covering(es, s, excNow); got == nil || got.ID != "exc_a2" {
		t.Errorf("Covering = %v; want exc_a2 (later expiry)", got)
	}
	if got := Covering(es[3:], s, excNow); got != nil {
		t.Errorf("Covering(no active) = %v; want nil", got.ID)
	}
}

func TestAging(t *testing.T) {
	now := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	approved := func(id string, age time.Duration, nextReview, expires time.Time) Exception {
		d := now.Add(-age)
		return Exception{ID: id, Scope: ScopeAsset, Target: "a-" + id, Owner: "o", State: ExceptionApproved,
			RequestedAt: d.Add(-day), DecidedAt: &d, NextReviewAt: nextReview, ExpiresAt: expires}
	}
	far := now.AddDate(0, 6, 0)
	es := []Exception{
		approved("exc_fresh", 0, now.AddDate(0, 0, 30), far),                  // 0 days
		approved("exc_30", 30*day+23*time.Hour, now.AddDate(0, 0, 1), far),    // 30 days
		approved("exc_31", 31*day, now, far),                                  // review due this instant
		approved("exc_90", 90*day, now.Add(-6*day), now.AddDate(0, 0, 30)),    // due 6 days ago; expires in exactly 30 days
		approved("exc_91", 91*day, now.Add(-7*day), now.AddDate(0, 0, 10)),    // overdue by the grace
		approved("exc_180", 180*day, now.Add(-40*day), now.AddDate(0, 0, 31)), // overdue; expires beyond the window
		approved("exc_181", 181*day, now.Add(-50*day), now.Add(time.Hour)),    // overdue; expiring in an hour
		approved("exc_lapsed", 200*day, now.Add(-90*day), now),                // past expiry, not yet swept
		{ID: "exc_req", State: ExceptionRequested},
		{ID: "exc_rej", State: ExceptionRejected},
		{ID: "exc_rev", State: ExceptionRevoked},
		{ID: "exc_exp", State: ExceptionExpired},
	}
	rep := Aging(es, now)
	wantStates := []StateCount{{ExceptionRequested, 1}, {ExceptionApproved, 7}, {ExceptionRejected, 1}, {ExceptionRevoked, 1}, {ExceptionExpired, 2}}
	if diff := cmp.Diff(wantStates, rep.States); diff != "" {
		t.Errorf("States (-want +got):\n%s", diff)
	}
	var counts []int
	for _, b := range rep.Ages {
		counts = append(counts, b.Count)
	}
	if diff := cmp.Diff([]int{2, 2, 2, 1}, counts); diff != "" {
		t.Errorf("age buckets 0–30, 31–90, 91–180, >180 (-want +got):\n%s", diff)
	}
	ids := func(items []AgingItem) []string {
		var out []string
		for _, it := range items {
			out = append(out, it.ID)
		}
		return out
	}
	if diff := cmp.Diff([]string{"exc_90", "exc_31"}, ids(rep.DueForReview)); diff != "" {
		t.Errorf("DueForReview (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"exc_181", "exc_180", "exc_91"}, ids(rep.OverdueReviews)); diff != "" {
		t.Errorf("OverdueReviews (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"exc_181", "exc_91", "exc_90"}, ids(rep.Expiring)); diff != "" {
		t.Errorf("Expiring (-want +got):\n%s", diff)
	}
	if rep.OverdueReviews[0].AgeDays != 181 {
		t.Errorf("AgeDays = %d; want 181", rep.OverdueReviews[0].AgeDays)
	}

	// The order of the input does not matter.
	rev := make([]Exception, len(es))
	for i, e := range es {
		rev[len(es)-1-i] = e
	}
	if diff := cmp.Diff(rep, Aging(rev, now), timeEqual); diff != "" {
		t.Errorf("Aging depends on input order (-first +reversed):\n%s", diff)
	}
}

// TestExceptionLifecycleStopsClock ties the two halves together: a
// requested exception does not stop the clock, an approved one does, and
// revoking it restarts the clock when it was revoked.
func TestExceptionLifecycleStopsClock(t *testing.T) {
	p := standardExceptionPolicy(t)
	utc := time.UTC
	seen := excNow.Add(-48 * time.Hour)
	fx := newClockFixture(t, p, utc, seen)
	fx.finding.AssetID, fx.finding.VulnID = "asset-analyzer-1", "CVE-2026-1234"
	a := tierAssessment("high", 1, "14d", "3d")
	subject := Subject{Finding: fx.finding, Asset: policy.AssetFacts{ID: "asset-analyzer-1"}}

	open, _ := fx.step(nil, a, nil, excNow)
	req := requested(t, p)
	if !req.Covers(subject) {
		t.Fatal("request does not cover the finding")
	}
	r, ev := fx.step(&open, a, Covering([]Exception{req}, subject, excNow), excNow)
	if r.Status != StatusOpen || ev != nil {
		t.Errorf("requested exception: %s (event %+v); want open, nothing", r.Status, ev)
	}
	approvedAt := excNow.Add(time.Hour)
	ok, err := Approve(req, "bob", "approver", "", p, approvedAt)
	if err != nil {
		t.Fatal(err)
	}
	r, _ = fx.step(&r, a, Covering([]Exception{ok}, subject, approvedAt), approvedAt)
	if r.Status != StatusExcepted || r.ExceptionID != ok.ID {
		t.Fatalf("approved exception: %s %q; want excepted by %s", r.Status, r.ExceptionID, ok.ID)
	}
	revokedAt := approvedAt.AddDate(0, 0, 20)
	gone, err := Revoke(ok, "carol", "analyzer patched by the maker's engineer", revokedAt)
	if err != nil {
		t.Fatal(err)
	}
	r, _ = fx.step(&r, a, &gone, revokedAt.Add(30*time.Minute))
	if r.Status != StatusOpen || r.ClockBasis != BasisExceptionEnded || !r.ClockStart.Equal(revokedAt) {
		t.Errorf("after revocation: %s %s from %v; want open from %v", r.Status, r.ClockBasis, r.ClockStart, revokedAt)
	}
}
