package risk

import (
	"context"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
)

// Subject is one finding to assess, with the asset facts it is scored on
// and its stored record, if it has been assessed before.
type Subject struct {
	Finding match.Finding
	Asset   policy.AssetFacts
	// TimeZone is the IANA zone of the asset's site ("" when it has none).
	TimeZone string
	// Record is nil when the finding has never been assessed.
	Record *Record
}

// WorklistFilter selects records for the prioritised worklist. Zero fields
// do not filter.
type WorklistFilter struct {
	// Status defaults to StatusOpen; "all" lists every status.
	Status  string
	Tier    string
	AssetID string
	SiteID  string
	VulnID  string
	// SLA is SLABreached, SLADueSoon or SLAOnTrack, judged at Now.
	SLA string
	Now time.Time
	// Sort is "score" (highest first, the default) or "due" (soonest first).
	Sort   string
	Limit  int
	Offset int
}

// WorklistItem is one row of the worklist: the record and what the row
// needs to be read without another lookup.
type WorklistItem struct {
	Record
	AssetName    string `json:"asset_name"`
	SiteID       string `json:"site_id,omitempty"`
	Ecosystem    string `json:"ecosystem"`
	Package      string `json:"package"`
	Version      string `json:"version"`
	FixedVersion string `json:"fixed_version,omitempty"`
	// FixNote is the vendor's fix when it names no version.
	FixNote string `json:"fix_note,omitempty"`
	// SLA is the SLA state at the time of listing.
	SLA string `json:"sla"`
}

// WorklistPage is one page of the worklist and the total that matched.
type WorklistPage struct {
	Items  []WorklistItem `json:"items"`
	Total  int            `json:"total"`
	Limit  int            `json:"limit"`
	Offset int            `json:"offset"`
}

// ExceptionFilter selects exceptions. Zero fields do not filter.
type ExceptionFilter struct {
	State  string
	Scope  string
	Target string
	// ReviewDueBy lists approved exceptions whose next review is at or
	// before this time.
	ReviewDueBy *time.Time
	// ExpiringBy lists approved exceptions that expire at or before it.
	ExpiringBy *time.Time
}

// Store is the storage the risk service needs.
type Store interface {
	// EachSubject streams the findings that need assessing — open ones,
	// and any whose record is not yet final (still open or excepted) —
	// with asset facts and stored record; assetID "" means every asset.
	EachSubject(ctx context.Context, assetID string, fn func(Subject) error) error
	GetRecord(ctx context.Context, findingID string) (Record, error)
	Worklist(ctx context.Context, f WorklistFilter) (WorklistPage, error)
	// History returns a finding's priority events, oldest first.
	History(ctx context.Context, findingID string) ([]Event, error)
	GetException(ctx context.Context, id string) (Exception, error)
	Exceptions(ctx context.Context, f ExceptionFilter) ([]Exception, error)
	Reviews(ctx context.Context, exceptionID string) ([]Review, error)
	Transact(ctx context.Context, fn func(Tx) error) error
}

// Tx is one transaction of risk writes, audited in the same transaction.
type Tx interface {
	audit.Appender
	// PutRecords inserts or replaces records by finding ID.
	PutRecords(ctx context.Context, rs []Record) error
	AddEvents(ctx context.Context, es []Event) error
	// LockException reads an exception for update.
	LockException(ctx context.Context, id string) (Exception, error)
	// PutException inserts an exception (Revision 1) or updates it when
	// the stored revision is Revision-1; otherwise errs.Conflict.
	PutException(ctx context.Context, e Exception) error
	AddReview(ctx context.Context, r Review) error
}
