package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
)

// Groups is what the risk acceptance needs from the inventory service.
type Groups interface {
	Groups(ctx context.Context) ([]inventory.Group, error)
}

// Exceptions is what the risk acceptance needs from the risk service.
type Exceptions interface {
	RequestException(ctx context.Context, who risk.Requester, e risk.Exception) (risk.Exception, error)
	DecideException(ctx context.Context, who risk.Requester, id string, d risk.Decision) (risk.Exception, error)
}

// PumpException is the risk acceptance a clinic records for infusion pumps
// it may not patch itself: BD Alaris pumps run an FDA-cleared configuration
// and take software only from BD service, and BD's advisory (CISA
// ICSMA-23-194-01) says three of its CVEs remain on the newest pump
// software. Its compensating controls are the ones that advisory
// recommends, recorded as the clinic has them in force.
func PumpException(groupID string, now time.Time) risk.Exception {
	return risk.Exception{
		Scope:    risk.ScopeGroup,
		Target:   groupID,
		Decision: policy.DecisionMitigate,
		Reason: "BD Alaris PCU Model 8015 pumps run an FDA-cleared configuration: only BD service may change their software. " +
			"BD Alaris System 12.3 is the remediation in CISA ICSMA-23-194-01, and CVE-2023-30559, CVE-2023-30560 and " +
			"CVE-2023-30561 remain on PCU 12.3.1, so the pumps stay on their current software until BD schedules the upgrade.",
		Controls: []risk.Control{
			{Kind: policy.ControlSegmentation, Description: "Pumps on the medical device VLAN 50; its ACL allows only DNS, DHCP " +
				"and the Alaris Systems Manager on port 3613, as BD recommends; no route to the user VLAN or the internet."},
			{Kind: policy.ControlAllowlisting, Description: "MAC filtering on the VLAN 50 switch ports: only registered pumps and the Systems Manager connect."},
			{Kind: policy.ControlMonitoring, Description: "Network monitoring alerts on any VLAN 50 traffic outside the ACL; " +
				"biomedical engineering reviews the alerts weekly and inspects the pumps' software versions at each preventive maintenance."},
			{Kind: policy.ControlVendorManaged, Description: "Upgrade to BD Alaris System 12.3 requested through the BD account " +
				"executive; BD service installs it when authorised."},
		},
		Owner:     "Biomedical engineering (clinical engineer)",
		ExpiresAt: now.AddDate(0, 6, 0),
	}
}

// AcceptPumpRisk records the demo's risk acceptance for the infusion pumps
// through the risk service, as two people would: requester asks, approver
// (another user, in a role the policy lets approve) approves. It returns
// the approved exception.
func AcceptPumpRisk(ctx context.Context, inv Groups, svc Exceptions, requester, approver risk.Requester, now time.Time) (risk.Exception, error) {
	gs, err := inv.Groups(ctx)
	if err != nil {
		return risk.Exception{}, fmt.Errorf("demo risk acceptance: %w", err)
	}
	groupID := ""
	for _, g := range gs {
		if g.Name == PumpGroup {
			groupID = g.ID
		}
	}
	if groupID == "" {
		return risk.Exception{}, errs.E(errs.NotFound, "demo risk acceptance: no group %q", PumpGroup)
	}
	e, err := svc.RequestException(ctx, requester, PumpException(groupID, now))
	if err != nil {
		return risk.Exception{}, fmt.Errorf("demo risk acceptance: %w", err)
	}
	e, err = svc.DecideException(ctx, approver, e.ID, risk.Decision{Action: "approve", Revision: e.Revision,
		Note: "Approved: controls checked on site with biomedical engineering; review at the next quarterly device review."})
	if err != nil {
		return risk.Exception{}, fmt.Errorf("demo risk acceptance: %w", err)
	}
	return e, nil
}
