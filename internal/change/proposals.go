package change

import (
	"cmp"
	"context"
	"fmt"
	"github.com/patchward/patchward/internal/risk"
	"slices"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/errs"
)

// Emergency proposals (issue 6, emergency path: "proposed automatically
// when a finding enters the top tier through KEV"). They live in change
// control, not in deploy, because what they propose is a change record:
// Proposal.Draft is the emergency change an admin creates with one action,
// and "already handled" is a question about change records (a finding
// linked to a change that is not cancelled). The risk engine only
// supplies the history that says why each finding is urgent.

// KEVReason is the phrase the risk engine writes into a finding's risk
// event when the finding's KEV flag appears; the proposal query matches it.
const KEVReason = risk.ReasonEnteredKEV

// KEVFinding is one open finding whose risk history shows it entered the
// top tier because CISA listed its vulnerability in KEV.
type KEVFinding struct {
	FindingID    string
	AssetID      string
	AssetName    string
	VulnID       string
	Ecosystem    string
	Package      string
	Version      string
	FixedVersion string
	// FixNote is the vendor's fix when it names no version.
	FixNote string
	Tier    string
	Score   float64
	// EnteredAt is the first risk event at or after the query's since that
	// put it in the top tier for its KEV listing.
	EnteredAt time.Time
}

// ProposalStore is the narrow read proposals need: risk events joined with
// findings and with the findings change records link.
type ProposalStore interface {
	// KEVTopTier returns the open findings whose current tier is the top
	// one (rank 0, named topTier), with a risk event at or after since into
	// topTier whose reason contains KEVReason, and that no live change
	// links (cancelled and rolled-back changes do not count); one row per
	// such event, in no particular order.
	KEVTopTier(ctx context.Context, topTier string, since time.Time) ([]KEVFinding, error)
}

// Proposal is a proposed emergency change: one vulnerability that entered
// the top tier through KEV, with every affected asset's open finding.
type Proposal struct {
	VulnID string `json:"vuln_id"`
	Tier   string `json:"tier"`
	// Score is the highest score among the findings.
	Score float64 `json:"score"`
	// EnteredAt is the earliest time a finding of the vulnerability entered
	// the top tier through KEV.
	EnteredAt time.Time       `json:"entered_at"`
	Assets    []ProposalAsset `json:"assets"`
	// Patches are the fixes the findings name, one per package, ecosystem
	// and fixed version; empty when no fix is published yet (the change
	// then needs a manual mitigation task).
	Patches []Patch `json:"patches"`
}

// ProposalAsset is one affected asset and its finding.
type ProposalAsset struct {
	AssetID      string `json:"asset_id"`
	AssetName    string `json:"asset_name"`
	FindingID    string `json:"finding_id"`
	Package      string `json:"package"`
	Version      string `json:"version"`
	FixedVersion string `json:"fixed_version,omitempty"`
	// FixNote is the vendor's fix when it names no version ("update to
	// 21.12 through the vendor"): the draft turns it into a manual task.
	FixNote string `json:"fix_note,omitempty"`
}

// Draft is the emergency change the proposal stands for: its findings,
// assets and patches filled in, everything people must decide (test
// protocol, rollback plan, justification) left to the one who creates it.
func (p Proposal) Draft() Change {
	c := Change{Type: Emergency, Title: fmt.Sprintf("Emergency: %s (CISA KEV) on %s", p.VulnID, p.assetCount()),
		Description: fmt.Sprintf("%s entered the %s tier through a CISA KEV listing on %s.", p.VulnID, p.Tier, p.EnteredAt.Format(time.RFC3339)),
		Patches:     slices.Clone(p.Patches), Advisories: []string{p.VulnID}}
	for _, a := range p.Assets {
		c.Findings = append(c.Findings, a.FindingID)
		if !slices.Contains(c.Targets.Assets, a.AssetID) {
			c.Targets.Assets = append(c.Targets.Assets, a.AssetID)
		}
		if a.FixedVersion == "" && a.FixNote != "" {
			task := ManualTask{Description: a.AssetName + ": " + a.FixNote}
			if !slices.ContainsFunc(c.Patches, func(p Patch) bool { return p.Manual != nil && p.Manual.Description == task.Description }) {
				c.Patches = append(c.Patches, Patch{Manual: &task})
			}
		}
	}
	return c
}

// assetCount is "1 asset" or "3 assets".
func (p Proposal) assetCount() string {
	if len(p.Assets) == 1 {
		return "1 asset"
	}
	return fmt.Sprintf("%d assets", len(p.Assets))
}

// Proposals is the read model of emergency proposals.
type Proposals struct {
	store    ProposalStore
	policies Policies
}

// NewProposals returns the read model on store, judging "top tier" by the
// policy in force.
func NewProposals(store ProposalStore, policies Policies) *Proposals {
	return &Proposals{store: store, policies: policies}
}

// EmergencyProposals lists, per vulnerability, the open findings that
// entered the top tier through KEV at or after since and are not yet in a
// (non-cancelled) change: worst score first, then newest. A finding
// covered by a change drops out, so each proposal shows only the assets
// still to be handled.
func (p *Proposals) EmergencyProposals(ctx context.Context, since time.Time) ([]Proposal, error) {
	pol, _, err := p.policies.Current(ctx)
	if err != nil {
		return nil, err
	}
	tiers := pol.Policy().Risk.Tiers
	if len(tiers) == 0 {
		return nil, errs.E(errs.Invalid, "the policy in force defines no risk tiers")
	}
	rows, err := p.store.KEVTopTier(ctx, tiers[0].Name, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("emergency proposals: %w", err)
	}
	return groupProposals(rows), nil
}

// groupProposals folds the store's rows (one per qualifying event) into
// one proposal per vulnerability with one entry per finding.
func groupProposals(rows []KEVFinding) []Proposal {
	byVuln := map[string]*Proposal{}
	seen := map[string]int{} // finding → index in its proposal's Assets
	var order []string
	for _, r := range rows {
		p, ok := byVuln[r.VulnID]
		if !ok {
			p = &Proposal{VulnID: r.VulnID, Tier: r.Tier, EnteredAt: r.EnteredAt}
			byVuln[r.VulnID] = p
			order = append(order, r.VulnID)
		}
		p.Score = max(p.Score, r.Score)
		if r.EnteredAt.Before(p.EnteredAt) {
			p.EnteredAt = r.EnteredAt
		}
		if _, dup := seen[r.FindingID]; dup {
			continue
		}
		seen[r.FindingID] = len(p.Assets)
		p.Assets = append(p.Assets, ProposalAsset{AssetID: r.AssetID, AssetName: r.AssetName, FindingID: r.FindingID,
			Package: r.Package, Version: r.Version, FixedVersion: r.FixedVersion, FixNote: r.FixNote})
		if r.FixedVersion != "" && !slices.ContainsFunc(p.Patches, func(x Patch) bool {
			return x.Package == r.Package && x.Ecosystem == r.Ecosystem && x.TargetVersion == r.FixedVersion
		}) {
			p.Patches = append(p.Patches, Patch{Package: r.Package, Ecosystem: r.Ecosystem, TargetVersion: r.FixedVersion})
		}
	}
	out := make([]Proposal, 0, len(order))
	for _, v := range order {
		p := byVuln[v]
		slices.SortFunc(p.Assets, func(a, b ProposalAsset) int {
			return cmp.Or(strings.Compare(a.AssetName, b.AssetName), strings.Compare(a.FindingID, b.FindingID))
		})
		slices.SortFunc(p.Patches, func(a, b Patch) int {
			return cmp.Or(strings.Compare(a.Package, b.Package), strings.Compare(a.Ecosystem, b.Ecosystem), strings.Compare(a.TargetVersion, b.TargetVersion))
		})
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Proposal) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), b.EnteredAt.Compare(a.EnteredAt), strings.Compare(a.VulnID, b.VulnID))
	})
	return out
}
