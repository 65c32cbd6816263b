package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
)

// ProposalReader lists emergency proposals; *change.Proposals implements
// it.
type ProposalReader interface {
	// EmergencyProposals lists, per vulnerability, the open findings that
	// entered the top tier through KEV at or after since and no live
	// change covers, worst first.
	EmergencyProposals(ctx context.Context, since time.Time) ([]change.Proposal, error)
}

var _ ProposalReader = (*change.Proposals)(nil)

// Proposal look-back: how far back a KEV listing still proposes an
// emergency change. A finding that entered the top tier longer ago and
// is still not in a change is the worklist's business (its SLA clock is
// running), not a fresh emergency.
const (
	defaultProposalDays = 30
	maxProposalDays     = 366
)

type proposalsView struct {
	Days      int
	Since     when
	Proposals []proposalRow
	CanDraft  bool
	Error     string
}

type proposalRow struct {
	change.Proposal
	Entered when
	// DraftURL opens the new-change form pre-filled from Proposal.Draft.
	DraftURL string
}

// proposalDays reads ?days=, defaulting and bounding it.
func proposalDays(q url.Values) (int, error) {
	s := strings.TrimSpace(q.Get("days"))
	if s == "" {
		return defaultProposalDays, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxProposalDays {
		return defaultProposalDays, errs.E(errs.Invalid, "days must be a whole number from 1 to %d", maxProposalDays)
	}
	return n, nil
}

func (ui *UI) proposalSince(days int) time.Time {
	return ui.cfg.Now().UTC().AddDate(0, 0, -days)
}

func (ui *UI) listProposals(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	days, derr := proposalDays(r.URL.Query())
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return err
	}
	now := ui.cfg.Now()
	since := ui.proposalSince(days)
	v := proposalsView{Days: days, Since: whenAt(since, zones.org, now), CanDraft: p.Can(auth.PermChangeWrite)}
	if derr != nil {
		v.Error = errs.Public(derr)
		ui.render(w, r, http.StatusBadRequest, "proposals", "Emergency proposals", v)
		return nil
	}
	ps, err := ui.cfg.Proposals.EmergencyProposals(ctx, since)
	if err != nil {
		return err
	}
	for _, pr := range ps {
		q := url.Values{"type": {string(change.Emergency)}, "proposal": {pr.VulnID}, "days": {strconv.Itoa(days)}}
		v.Proposals = append(v.Proposals, proposalRow{Proposal: pr, Entered: whenAt(pr.EnteredAt, zones.org, now),
			DraftURL: "/changes/new?" + q.Encode()})
	}
	ui.render(w, r, http.StatusOK, "proposals", "Emergency proposals", v)
	return nil
}

// proposalDraft finds the proposal for vulnID (as /proposals listed it)
// and returns its draft change as form values: title, description,
// findings, advisories, assets and patches. NotFound when the proposal
// is gone, e.g. because a change now covers its findings.
func (ui *UI) proposalDraft(ctx context.Context, q url.Values) (url.Values, error) {
	vuln := strings.TrimSpace(q.Get("proposal"))
	days, err := proposalDays(q)
	if err != nil {
		return nil, err
	}
	ps, err := ui.cfg.Proposals.EmergencyProposals(ctx, ui.proposalSince(days))
	if err != nil {
		return nil, err
	}
	for _, pr := range ps {
		if pr.VulnID != vuln {
			continue
		}
		d := pr.Draft()
		vals := url.Values{"type": {string(d.Type)}, "title": {d.Title}, "description": {d.Description},
			"finding": d.Findings, "advisory": d.Advisories, "asset": d.Targets.Assets, "group": d.Targets.Groups}
		for _, pt := range d.Patches {
			if pt.Manual != nil {
				continue
			}
			vals.Add("pkg", pt.Package)
			vals.Add("eco", pt.Ecosystem)
			vals.Add("version", pt.TargetVersion)
		}
		return vals, nil
	}
	return nil, errs.E(errs.NotFound, "no emergency proposal for %s: a change may already cover its findings", vuln)
}
