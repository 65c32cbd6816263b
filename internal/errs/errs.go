// Package errs defines the small closed set of error kinds that every layer
// uses, so that the HTTP boundary can map them to status codes in one place
// and never has to inspect message text.
package errs

import (
	"errors"
	"fmt"
)

// Kind is a class of failure that callers can act on.
type Kind int

// The kinds. Zero is deliberately "internal" so a forgotten wrap is treated
// as a server fault rather than leaking as a client error.
const (
	Internal Kind = iota
	NotFound
	Invalid
	Conflict
	Forbidden
	Unauthorized
	TooLarge
	Unsupported
)

func (k Kind) String() string {
	switch k {
	case NotFound:
		return "not found"
	case Invalid:
		return "invalid"
	case Conflict:
		return "conflict"
	case Forbidden:
		return "forbidden"
	case Unauthorized:
		return "unauthorized"
	case TooLarge:
		return "too large"
	case Unsupported:
		return "unsupported"
	default:
		return "internal"
	}
}

// Error carries a kind and a message that is safe to show to users. Err, if
// set, is the underlying cause for logs only.
type Error struct {
	Kind    Kind
	Message string
	// Fields holds per-field validation messages, keyed by field name.
	Fields map[string]string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, errs.NotFound) style checks work via sentinel values.
func (e *Error) Is(target error) bool {
	t, ok := target.(kindSentinel)
	return ok && Kind(t) == e.Kind
}

type kindSentinel Kind

func (k kindSentinel) Error() string { return Kind(k).String() }

// Sentinels usable with errors.Is.
var (
	ErrNotFound     error = kindSentinel(NotFound)
	ErrInvalid      error = kindSentinel(Invalid)
	ErrConflict     error = kindSentinel(Conflict)
	ErrForbidden    error = kindSentinel(Forbidden)
	ErrUnauthorized error = kindSentinel(Unauthorized)
	ErrTooLarge     error = kindSentinel(TooLarge)
	ErrUnsupported  error = kindSentinel(Unsupported)
)

// E builds an *Error of the given kind with a user-safe message.
func E(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap attaches a kind and user-safe message to an underlying cause.
func Wrap(k Kind, err error, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Err: err}
}

// KindOf reports the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Validation collects per-field problems and turns them into one Invalid error.
type Validation struct {
	fields map[string]string
	order  []string
}

// Add records a problem with a field; the first message per field wins.
func (v *Validation) Add(field, format string, args ...any) {
	if v.fields == nil {
		v.fields = map[string]string{}
	}
	if _, ok := v.fields[field]; ok {
		return
	}
	v.fields[field] = fmt.Sprintf(format, args...)
	v.order = append(v.order, field)
}

// Err returns nil when no problem was added, else an Invalid *Error whose
// message lists every problem in the order found.
func (v *Validation) Err(what string) error {
	if len(v.order) == 0 {
		return nil
	}
	msg := what + ": "
	for i, f := range v.order {
		if i > 0 {
			msg += "; "
		}
		msg += f + ": " + v.fields[f]
	}
	return &Error{Kind: Invalid, Message: msg, Fields: v.fields}
}

// HTTPStatus is the one table that maps error kinds to HTTP status codes.
func HTTPStatus(err error) int {
	switch KindOf(err) {
	case NotFound:
		return 404
	case Invalid:
		return 400
	case Conflict:
		return 409
	case Forbidden:
		return 403
	case Unauthorized:
		return 401
	case TooLarge:
		return 413
	case Unsupported:
		return 415
	default:
		return 500
	}
}

// Public returns the message that is safe to show a user for err: the
// kinded message, or a generic one for internal faults whose detail belongs
// in the log only.
func Public(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		return e.Message
	}
	return "internal error; the details have been logged"
}

// FieldsOf returns per-field validation messages carried by err, if any.
func FieldsOf(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
