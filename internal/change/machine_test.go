package change

import (
	"errors"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/errs"
)

// actions lists every action, to try each against each state.
var actions = []Action{ActSubmit, ActApprove, ActReject, ActReopen, ActRework, ActSchedule, ActStart,
	ActComplete, ActHalt, ActResume, ActRollBack, ActCancel}

// want is the state machine spelt out independently of Moves, so a
// slip in the table is caught rather than copied.
var want = map[State]map[Action]State{
	Draft:      {ActSubmit: Submitted, ActCancel: Cancelled},
	Submitted:  {ActApprove: Approved, ActReject: Rejected, ActCancel: Cancelled},
	Approved:   {ActSchedule: Scheduled, ActCancel: Cancelled, ActReopen: Submitted},
	Rejected:   {ActRework: Draft},
	Scheduled:  {ActStart: InProgress, ActCancel: Cancelled},
	InProgress: {ActComplete: Completed, ActHalt: Halted, ActRollBack: RolledBack},
	Halted:     {ActResume: InProgress, ActRollBack: RolledBack, ActCancel: Cancelled},
	Completed:  {},
	RolledBack: {},
	Cancelled:  {},
}

func TestNextEveryStateAndAction(t *testing.T) {
	for _, from := range States {
		for _, act := range actions {
			t.Run(string(from)+"/"+string(act), func(t *testing.T) {
				got, err := Next(from, act)
				to, legal := want[from][act]
				if legal {
					if err != nil || got != to {
						t.Fatalf("Next(%s, %s) = %q, %v; want %s", from, act, got, err, to)
					}
					return
				}
				if err == nil {
					t.Fatalf("Next(%s, %s) = %q; want refused", from, act, got)
				}
				if !errors.Is(err, errs.ErrConflict) {
					t.Errorf("Next(%s, %s) error kind = %v; want conflict", from, act, errs.KindOf(err))
				}
				msg := err.Error()
				if !strings.Contains(msg, string(from)) || !strings.Contains(msg, verb(act)) {
					t.Errorf("Next(%s, %s) error %q does not name the state and the action", from, act, msg)
				}
				for a, to := range want[from] {
					if !strings.Contains(msg, string(a)) || !strings.Contains(msg, string(to)) {
						t.Errorf("Next(%s, %s) error %q does not name the allowed move %s → %s", from, act, msg, a, to)
					}
				}
				if len(want[from]) == 0 && !strings.Contains(msg, "final") {
					t.Errorf("Next(%s, %s) error %q does not say %s is final", from, act, msg, from)
				}
			})
		}
	}
}

func TestMovesTableMatchesSpec(t *testing.T) {
	n := 0
	for _, m := range want {
		n += len(m)
	}
	if len(Moves) != n {
		t.Errorf("len(Moves) = %d; want %d", len(Moves), n)
	}
	for _, s := range States {
		if s.Terminal() != (len(want[s]) == 0) {
			t.Errorf("%s.Terminal() = %v; want %v", s, s.Terminal(), len(want[s]) == 0)
		}
	}
	if _, err := Next("bogus", ActSubmit); errs.KindOf(err) != errs.Internal {
		t.Errorf("Next(bogus) = %v; want an internal error", err)
	}
}
