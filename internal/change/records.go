package change

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// testable are the states in which test runs may be recorded: testing in
// staging before approval, in the pilot ring during deployment, and after
// a halt to decide between resuming and rolling back.
var testable = []State{Draft, Submitted, Approved, Scheduled, InProgress, Halted}

// RecordTestRun records one run of the change's test protocol. Every result
// must name a case of the protocol, once, with pass, fail or skipped; a
// failed case needs notes; evidence must already be attached to the change.
func (s *Service) RecordTestRun(ctx context.Context, u User, id string, run TestRun) (TestRun, error) {
	if err := u.may(writers, "record a test run"); err != nil {
		return TestRun{}, err
	}
	now := s.clock()
	run.ID, run.ChangeID, run.RunBy, run.At = s.newID(), id, u.name(), now
	err := s.store.Transact(ctx, func(tx Tx) error {
		cur, err := tx.Lock(ctx, id)
		if err != nil {
			return err
		}
		if !slices.Contains(testable, cur.State) {
			return errs.E(errs.Conflict, "a change that is %s takes no more test runs", cur.State)
		}
		ev, err := tx.EvidenceList(ctx, id)
		if err != nil {
			return err
		}
		if err := validateRun(cur, run, ev); err != nil {
			return err
		}
		if err := tx.AddTestRun(ctx, run); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: u.Actor, Action: "change.test_run", ObjectType: "change", ObjectID: id, After: run})
	})
	if err != nil {
		return TestRun{}, fmt.Errorf("record test run on change %s: %w", id, err)
	}
	return run, nil
}

func validateRun(c Change, run TestRun, ev []Evidence) error {
	var v errs.Validation
	if len(run.Results) == 0 {
		v.Add("results", "required: at least one case result")
	}
	seen := map[string]bool{}
	for i := range run.Results {
		r := &run.Results[i]
		r.CaseID, r.Notes = strings.TrimSpace(r.CaseID), strings.TrimSpace(r.Notes)
		f := field("results", i)
		switch {
		case !slices.ContainsFunc(c.TestProtocol, func(s TestStep) bool { return s.CaseID == r.CaseID }):
			v.Add(f, "case %q is not in the change's test protocol", r.CaseID)
		case seen[r.CaseID]:
			v.Add(f, "case %q has two results", r.CaseID)
		case r.Result != ResultPass && r.Result != ResultFail && r.Result != ResultSkipped:
			v.Add(f, "result must be pass, fail or skipped, got %q", r.Result)
		case r.Result != ResultPass && r.Notes == "":
			v.Add(f, "a %s result needs notes saying what happened", r.Result)
		case len(r.Notes) > maxText:
			v.Add(f, "notes: at most %d characters", maxText)
		}
		seen[r.CaseID] = true
		for _, e := range r.Evidence {
			if !slices.ContainsFunc(ev, func(x Evidence) bool { return x.SHA256 == e.SHA256 }) {
				v.Add(f, "evidence %s is not attached to this change; upload it first", e.SHA256)
			}
		}
	}
	return v.Err("invalid test run")
}

// AddEvidence attaches a file to a change, reading at most MaxEvidence
// bytes. The bytes are stored under their SHA-256, once however often they
// are attached; attaching the same bytes to the same change again returns
// the existing record.
func (s *Service) AddEvidence(ctx context.Context, u User, id, name, mediaType string, r io.Reader) (Evidence, error) {
	if err := u.may(writers, "attach evidence"); err != nil {
		return Evidence{}, err
	}
	name = strings.TrimSpace(name)
	var v errs.Validation
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "/\\\x00") {
		v.Add("name", "required: a file name of at most 255 characters without path separators")
	}
	if mediaType == "" {
		mediaType = "application/octet-stream"
	}
	if _, _, err := mime.ParseMediaType(mediaType); err != nil {
		v.Add("media_type", "not a media type: %q", mediaType)
	}
	if err := v.Err("invalid evidence"); err != nil {
		return Evidence{}, err
	}
	content, err := io.ReadAll(io.LimitReader(r, MaxEvidence+1))
	if err != nil {
		return Evidence{}, fmt.Errorf("read evidence: %w", err)
	}
	if len(content) > MaxEvidence {
		return Evidence{}, errs.E(errs.TooLarge, "evidence may be at most %d MiB", MaxEvidence>>20)
	}
	if len(content) == 0 {
		return Evidence{}, errs.E(errs.Invalid, "evidence file is empty")
	}
	sum := sha256.Sum256(content)
	e := Evidence{ChangeID: id, SHA256: hex.EncodeToString(sum[:]), Name: name, MediaType: mediaType,
		Size: int64(len(content)), UploadedBy: u.name(), At: s.clock()}
	err = s.store.Transact(ctx, func(tx Tx) error {
		cur, err := tx.Lock(ctx, id)
		if err != nil {
			return err
		}
		if cur.State.Terminal() && cur.State != Completed && cur.State != RolledBack {
			return errs.E(errs.Conflict, "a change that is %s takes no more evidence", cur.State)
		}
		list, err := tx.EvidenceList(ctx, id)
		if err != nil {
			return err
		}
		if i := slices.IndexFunc(list, func(x Evidence) bool { return x.SHA256 == e.SHA256 }); i >= 0 {
			e = list[i]
			return nil
		}
		if err := tx.PutEvidence(ctx, e, content); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: u.Actor, Action: "change.evidence", ObjectType: "change", ObjectID: id, After: e})
	})
	if err != nil {
		return Evidence{}, fmt.Errorf("attach evidence to change %s: %w", id, err)
	}
	return e, nil
}

// ErrTampered marks evidence whose stored bytes no longer match their hash.
var ErrTampered = errs.E(errs.Internal, "stored evidence does not match its SHA-256: it was altered or corrupted in storage")

// GetEvidence returns an attachment's record and bytes after checking the
// bytes against the hash they were stored under, so altered evidence is
// never handed out as genuine.
func (s *Service) GetEvidence(ctx context.Context, id, sum string) (Evidence, io.Reader, error) {
	e, content, err := s.store.Evidence(ctx, id, strings.ToLower(strings.TrimSpace(sum)))
	if err != nil {
		return Evidence{}, nil, err
	}
	got := sha256.Sum256(content)
	if hex.EncodeToString(got[:]) != e.SHA256 || int64(len(content)) != e.Size {
		return Evidence{}, nil, fmt.Errorf("evidence %s of change %s: %w", e.SHA256, id, ErrTampered)
	}
	return e, bytes.NewReader(content), nil
}

// SignOff gives one of the change's requested acceptance sign-offs. The
// user signs as the policy role and must hold it;
// separation of duties applies as for approvals.
func (s *Service) SignOff(ctx context.Context, u User, id, role, note string, revision int) (Change, error) {
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return Change{}, err
	}
	now := s.clock()
	var out Change
	err = s.store.Transact(ctx, func(tx Tx) error {
		cur, err := tx.Lock(ctx, id)
		if err != nil {
			return err
		}
		if err := checkRevision(cur, revision); err != nil {
			return err
		}
		if !slices.Contains([]State{Scheduled, InProgress, Halted}, cur.State) {
			return errs.E(errs.Conflict, "sign-offs are given while a change is scheduled or in progress, not when %s", cur.State)
		}
		i := slices.IndexFunc(cur.SignOffs, func(so SignOff) bool { return so.Role == role })
		if i < 0 {
			return errs.E(errs.Invalid, "this change asks for no sign-off by %q", role)
		}
		if cur.SignOffs[i].At != nil {
			return errs.E(errs.Conflict, "%s already signed off (%s)", role, cur.SignOffs[i].By)
		}
		if !u.holds(pol, role) {
			return notHeld("signing off", role)
		}
		if pol.Policy().Approvals.SeparationOfDuties && cur.RequestedByID == u.Actor.ID {
			return errs.E(errs.Forbidden, "you requested this change, so you cannot sign it off (policy approvals.separation_of_duties)")
		}
		next := cur
		next.SignOffs = slices.Clone(cur.SignOffs)
		next.SignOffs[i] = SignOff{Role: role, By: u.name(), At: &now, Note: strings.TrimSpace(note)}
		next.Revision, next.UpdatedAt = cur.Revision+1, now
		if err := tx.Update(ctx, next); err != nil {
			return err
		}
		out = next
		return tx.AppendAudit(ctx, audit.Record{Actor: u.Actor, Action: "change.sign_off", ObjectType: "change", ObjectID: id,
			After: next.SignOffs[i], Reason: note})
	})
	if err != nil {
		return Change{}, fmt.Errorf("sign off change %s: %w", id, err)
	}
	return out, nil
}

// RecordReview records an emergency change's post-incident review, which
// it needs before it can complete.
func (s *Service) RecordReview(ctx context.Context, u User, id string, r Review, revision int) (Change, error) {
	if err := u.may(writers, "record a post-incident review"); err != nil {
		return Change{}, err
	}
	r.Summary = strings.TrimSpace(r.Summary)
	r.Lessons = cleanList(r.Lessons)
	if r.Summary == "" {
		var v errs.Validation
		v.Add("summary", "required: what happened and what was decided")
		return Change{}, v.Err("invalid review")
	}
	now := s.clock()
	r.By, r.At = u.name(), now
	var out Change
	err := s.store.Transact(ctx, func(tx Tx) error {
		cur, err := tx.Lock(ctx, id)
		if err != nil {
			return err
		}
		if err := checkRevision(cur, revision); err != nil {
			return err
		}
		if cur.Type != Emergency || cur.Emergency == nil {
			return errs.E(errs.Conflict, "only an emergency change has a post-incident review")
		}
		if !slices.Contains([]State{InProgress, Halted, Completed, RolledBack, Cancelled}, cur.State) {
			return errs.E(errs.Conflict, "a post-incident review follows deployment; this change is %s", cur.State)
		}
		next := cur
		e := *cur.Emergency
		e.PostIncidentReview = &r
		next.Emergency = &e
		next.Revision, next.UpdatedAt = cur.Revision+1, now
		if err := tx.Update(ctx, next); err != nil {
			return err
		}
		out = next
		return tx.AppendAudit(ctx, audit.Record{Actor: u.Actor, Action: "change.review", ObjectType: "change", ObjectID: id, After: r})
	})
	if err != nil {
		return Change{}, fmt.Errorf("record review of change %s: %w", id, err)
	}
	return out, nil
}
