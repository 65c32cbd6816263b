package change

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/patchward/patchward/internal/errs"
)

// MaxDocument bounds a change record sent by a client (1 MiB): far above
// any real change, small enough that a hostile body costs nothing.
const MaxDocument = 1 << 20

// Decode reads one change record as a client sends it to Create or Update
// (the JSON API and the CLI's files). It is strict — unknown fields and
// trailing data are refused, so a misspelt "rollback_plan" is an error
// rather than a silently missing plan — and it clears what only the server
// decides: state, requester, risk rating, timestamps, sign-off signatures
// and the emergency record's review. Revision is kept: an update names the
// revision it was made on.
func Decode(r io.Reader) (Change, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxDocument+1))
	if err != nil {
		return Change{}, fmt.Errorf("read change: %w", err)
	}
	if len(body) > MaxDocument {
		return Change{}, errs.E(errs.TooLarge, "a change record may be at most %d KiB", MaxDocument>>10)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var c Change
	if err := dec.Decode(&c); err != nil {
		return Change{}, errs.Wrap(errs.Invalid, err, "the change record is not valid JSON of the expected shape (%s)", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Change{}, errs.E(errs.Invalid, "the change record is followed by more data")
	}
	c.State, c.RequestedBy, c.RequestedByID, c.EditedBy = "", "", "", nil
	c.Risk = RiskRating{}
	var zero Change
	c.CreatedAt, c.UpdatedAt, c.EditedAt = zero.CreatedAt, zero.UpdatedAt, zero.EditedAt
	c.SignOffs = resetSignOffs(c.SignOffs)
	if c.Emergency != nil {
		c.Emergency = &EmergencyInfo{Justification: c.Emergency.Justification, GoNoGoBy: c.Emergency.GoNoGoBy}
	}
	c.normalize()
	return c, nil
}

// jsonProblem says where decoding failed without echoing the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s", typ.Field, typ.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the document ends early"
	}
	return "unknown field or bad value"
}
