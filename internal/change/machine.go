package change

import (
	"fmt"
	"slices"
	"strings"

	"github.com/patchward/patchward/internal/errs"
)

// State is where a change is in its life.
type State string

// The states.
const (
	Draft      State = "draft"
	Submitted  State = "submitted"
	Approved   State = "approved"
	Rejected   State = "rejected"
	Scheduled  State = "scheduled"
	InProgress State = "in_progress"
	Completed  State = "completed"
	Halted     State = "halted"
	RolledBack State = "rolled_back"
	Cancelled  State = "cancelled"
)

// States lists every state in life order.
var States = []State{Draft, Submitted, Approved, Rejected, Scheduled, InProgress, Completed, Halted, RolledBack, Cancelled}

// Terminal reports whether nothing more can happen to a change in s.
func (s State) Terminal() bool { return len(MovesFrom(s)) == 0 }

// Editable reports whether a change in s may still have its content
// edited: until it is scheduled, and not once rejected (rework returns
// it to draft first).
func (s State) Editable() bool { return s == Draft || s == Submitted || s == Approved }

// Action is what moves a change from one state to another.
type Action string

// The actions.
const (
	ActSubmit  Action = "submit"
	ActApprove Action = "approve"
	ActReject  Action = "reject"
	// ActReopen returns an approved change to submitted when an edit
	// withdraws its approvals.
	ActReopen   Action = "reopen"
	ActRework   Action = "rework"
	ActSchedule Action = "schedule"
	ActStart    Action = "start"
	ActComplete Action = "complete"
	ActHalt     Action = "halt"
	ActResume   Action = "resume"
	ActRollBack Action = "roll_back"
	ActCancel   Action = "cancel"
)

// Move is one legal transition.
type Move struct {
	From   State
	Action Action
	To     State
}

// Moves is the state machine, as data: every legal transition and nothing
// else. Guards (approvals, tests, reviews) are checked by the service on
// top; this table alone decides whether a move exists at all.
var Moves = []Move{
	{Draft, ActSubmit, Submitted},
	{Submitted, ActApprove, Approved},
	{Submitted, ActReject, Rejected},
	{Approved, ActReopen, Submitted},
	{Rejected, ActRework, Draft},
	{Approved, ActSchedule, Scheduled},
	{Scheduled, ActStart, InProgress},
	{InProgress, ActComplete, Completed},
	{InProgress, ActHalt, Halted},
	{InProgress, ActRollBack, RolledBack},
	{Halted, ActResume, InProgress},
	{Halted, ActRollBack, RolledBack},
	{Halted, ActCancel, Cancelled},
	{Draft, ActCancel, Cancelled},
	{Submitted, ActCancel, Cancelled},
	{Approved, ActCancel, Cancelled},
	{Scheduled, ActCancel, Cancelled},
}

// MovesFrom lists the legal moves out of s, in table order.
func MovesFrom(s State) []Move {
	var out []Move
	for _, m := range Moves {
		if m.From == s {
			out = append(out, m)
		}
	}
	return out
}

// Next returns the state that act leads to from from, or a Conflict error
// naming the state, the refused action and the moves that are allowed.
func Next(from State, act Action) (State, error) {
	if !slices.Contains(States, from) {
		return "", errs.E(errs.Internal, "unknown change state %q", from)
	}
	for _, m := range Moves {
		if m.From == from && m.Action == act {
			return m.To, nil
		}
	}
	allowed := MovesFrom(from)
	if len(allowed) == 0 {
		return "", errs.E(errs.Conflict, "cannot %s a change that is %s: %s is final", verb(act), from, from)
	}
	names := make([]string, len(allowed))
	for i, m := range allowed {
		names[i] = fmt.Sprintf("%s (→ %s)", m.Action, m.To)
	}
	return "", errs.E(errs.Conflict, "cannot %s a change that is %s; from %s the allowed moves are %s",
		verb(act), from, from, strings.Join(names, ", "))
}

func verb(a Action) string { return strings.ReplaceAll(string(a), "_", " ") }
