package change

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Notices tells the people who must act next when a change moves: its
// approvers when it awaits approval (again, after an edit withdrew their
// approvals), everyone at once for an emergency's go/no-go, the requester
// when it is rejected. Rollout halts are told by the rollout engine.
type Notices struct {
	svc *Service
	n   Notifier
}

// NewNotices returns notices about svc's changes sent through n, with
// times in the zone of the policy in force.
func NewNotices(svc *Service, n Notifier) *Notices {
	return &Notices{svc: svc, n: n}
}

// Moved is the service's OnMove hook: it sends the notice a move calls
// for, if any. It returns the error of the send (the hook's caller logs
// it; the move itself stands).
func (ns *Notices) Moved(ctx context.Context, c Change, from State) error {
	subject, body, err := ns.notice(ctx, c, from)
	if err != nil || subject == "" {
		return err
	}
	return ns.n.Notify(ctx, subject, body)
}

func (ns *Notices) notice(ctx context.Context, c Change, from State) (string, string, error) {
	loc, err := policyZone(ctx, ns.svc.policies)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s change", c.Title, c.Type)
	if c.Risk.Tier != "" {
		fmt.Fprintf(&b, ", risk %s", c.Risk.Tier)
	}
	fmt.Fprintf(&b, ", requested by %s).\n", c.RequestedBy)
	var subject string
	switch {
	case c.State == Submitted:
		approvals, st, err := ns.svc.Approvals(ctx, c.ID)
		if err != nil {
			return "", "", err
		}
		subject = "Change awaits approval: " + c.Title
		if from == Approved {
			subject = "Change edited, approve again: " + c.Title
			fmt.Fprintf(&b, "It was edited after approval, so its %d approval(s) were withdrawn.\n", countWithdrawn(approvals))
		}
		if c.Type == Emergency && c.Emergency != nil {
			subject = "EMERGENCY change awaits go/no-go: " + c.Title
			fmt.Fprintf(&b, "Go/no-go by %s; not approved by then, it expires.\nJustification: %s\n",
				c.Emergency.GoNoGoBy.In(loc).Format("Mon 2 Jan 2006 15:04 MST"), c.Emergency.Justification)
		}
		fmt.Fprintf(&b, "Needs %d of: %s.\n", st.Requirement.Quorum, strings.Join(st.Requirement.Roles, ", "))
		for _, ca := range st.MissingClass {
			fmt.Fprintf(&b, "Also needs the %s (for %s).\n", ca.Role, ca.Class)
		}
	case c.State == Rejected:
		approvals, _, err := ns.svc.Approvals(ctx, c.ID)
		if err != nil {
			return "", "", err
		}
		subject = "Change rejected: " + c.Title
		for i := len(approvals) - 1; i >= 0; i-- {
			if a := approvals[i]; a.Decision == Reject {
				fmt.Fprintf(&b, "Rejected by %s as %s: %s\n", a.By, a.Role, a.Note)
				break
			}
		}
		b.WriteString("Rework it to draft, address the note and submit it again.\n")
	case c.State == Approved && c.Type == Emergency:
		subject = "EMERGENCY change approved (GO): " + c.Title
		b.WriteString("Schedule it into the emergency window and start it.\n")
	default:
		return "", "", nil
	}
	fmt.Fprintf(&b, "\nChange %s in Patchward: Changes, or `patchward change show %s`.\n", c.ID, c.ID)
	return subject, b.String(), nil
}

// countWithdrawn counts the approvals an edit withdrew: the expired ones
// on the revision before the latest expiry.
func countWithdrawn(approvals []Approval) int {
	var last time.Time
	for _, a := range approvals {
		if a.ExpiredAt != nil && a.ExpiredAt.After(last) {
			last = *a.ExpiredAt
		}
	}
	n := 0
	for _, a := range approvals {
		if a.ExpiredAt != nil && a.ExpiredAt.Equal(last) && a.Decision == Approve {
			n++
		}
	}
	return n
}

// policyZone is the policy's organisation time zone, in which messages
// give times (UTC when it names none).
func policyZone(ctx context.Context, policies Policies) (*time.Location, error) {
	pol, _, err := policies.Current(ctx)
	if err != nil {
		return nil, err
	}
	if l, err := time.LoadLocation(pol.Policy().Organization.TimeZone); err == nil {
		return l, nil
	}
	return time.UTC, nil
}
