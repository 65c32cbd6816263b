package change

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/audit"
)

// Notifier sends one message to the people on call (notify.Mailer,
// notify.Webhook, notify.All).
type Notifier interface {
	Notify(ctx context.Context, subject, body string) error
}

// AlertAction is the audit action of a sent proposal alert. Its After
// holds the proposal's entered_at, which is how a restarted server knows
// what it has already told people.
const AlertAction = "change.proposal_alert"

// ProposalAlerts tells people as soon as a vulnerability becomes an
// emergency proposal (entered the top tier through KEV), and again when
// more assets join it: the seeds' emergency path starts with someone
// knowing, not with someone happening to open the proposals page. Each
// alert is audited; one that could not be sent is retried on the next
// check.
type ProposalAlerts struct {
	proposals *Proposals
	store     Store
	notifier  Notifier
	// trail is where sent alerts are found again after a restart.
	trail AuditLister
	now   func() time.Time

	mu     sync.Mutex
	mark   time.Time
	loaded bool
}

// alertLookback bounds the first check of a server that never alerted: a
// proposal older than this has been on the proposals page for a month.
const alertLookback = 30 * 24 * time.Hour

// AuditLister lists audit entries, newest first (audit.Service).
type AuditLister interface {
	List(ctx context.Context, q audit.Query) (audit.Page, error)
}

// NewProposalAlerts returns alerts sent through n, audited in store and
// found again in trail.
func NewProposalAlerts(p *Proposals, store Store, trail AuditLister, n Notifier, now func() time.Time) *ProposalAlerts {
	if now == nil {
		now = time.Now
	}
	return &ProposalAlerts{proposals: p, store: store, notifier: n, trail: trail, now: now}
}

// lastAlert is the entered_at of the newest alert sent (zero when none).
func (a *ProposalAlerts) lastAlert(ctx context.Context) (time.Time, error) {
	page, err := a.trail.List(ctx, audit.Query{Action: AlertAction, Limit: 1})
	if err != nil || len(page.Entries) == 0 {
		return time.Time{}, err
	}
	var last struct {
		EnteredAt time.Time `json:"entered_at"`
	}
	if err := json.Unmarshal(page.Entries[0].After, &last); err != nil {
		return time.Time{}, fmt.Errorf("read the last proposal alert: %w", err)
	}
	return last.EnteredAt, nil
}

// Check alerts on every proposal that entered since the last alert and
// returns how many it sent.
func (a *ProposalAlerts) Check(ctx context.Context) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.loaded {
		m, err := a.lastAlert(ctx)
		if err != nil {
			return 0, err
		}
		a.mark, a.loaded = m, true
	}
	since := a.now().Add(-alertLookback)
	if a.mark.After(since) {
		since = a.mark.Add(time.Microsecond)
	}
	props, err := a.proposals.EmergencyProposals(ctx, since)
	if err != nil {
		return 0, err
	}
	loc, err := policyZone(ctx, a.proposals.policies)
	if err != nil {
		return 0, err
	}
	// Oldest first, so the newest alert in the trail is the watermark even
	// when a send fails halfway.
	slices.SortStableFunc(props, func(x, y Proposal) int { return x.EnteredAt.Compare(y.EnteredAt) })
	sent := 0
	for _, p := range props {
		subject, body := alertText(p, loc)
		if err := a.notifier.Notify(ctx, subject, body); err != nil {
			return sent, fmt.Errorf("alert on proposal %s: %w", p.VulnID, err)
		}
		assets := make([]string, len(p.Assets))
		for i, x := range p.Assets {
			assets[i] = x.AssetID
		}
		err := a.store.Transact(ctx, func(tx Tx) error {
			return tx.AppendAudit(ctx, audit.Record{Actor: audit.System, Action: AlertAction, ObjectType: "vulnerability", ObjectID: p.VulnID,
				After:  map[string]any{"entered_at": p.EnteredAt, "tier": p.Tier, "assets": assets, "subject": subject},
				Reason: "a finding entered the top tier through CISA KEV"})
		})
		if err != nil {
			return sent, fmt.Errorf("audit the alert on proposal %s: %w", p.VulnID, err)
		}
		sent++
		if p.EnteredAt.After(a.mark) {
			a.mark = p.EnteredAt
		}
	}
	return sent, nil
}

// alertText is the message: what, since when, where, and what fixes it.
func alertText(p Proposal, loc *time.Location) (string, string) {
	subject := fmt.Sprintf("Emergency proposal: %s (CISA KEV, %s) on %s", p.VulnID, p.Tier, p.assetCount())
	var b strings.Builder
	fmt.Fprintf(&b, "%s entered the %s tier through a CISA KEV listing at %s (score %.0f).\n\nAssets:\n",
		p.VulnID, p.Tier, p.EnteredAt.In(loc).Format("Mon 2 Jan 2006 15:04 MST"), p.Score)
	for _, x := range p.Assets {
		fix := "no fixed version published: plan a mitigation"
		if x.FixedVersion != "" {
			fix = "fixed in " + x.FixedVersion
		}
		fmt.Fprintf(&b, "- %s: %s %s, %s\n", x.AssetName, x.Package, x.Version, fix)
	}
	fmt.Fprintf(&b, "\nDraft the emergency change from Patchward's Proposals page, or: patchward change proposals --draft %s\n", p.VulnID)
	return subject, b.String()
}
