// Package feeds keeps Patchward's copy of the vulnerability feeds current:
// it fetches each configured feed (an HTTPS URL or a local file, directory
// or archive) incrementally, parses every record with package advisory
// before the database is touched, and swaps the new version in atomically.
// A broken, truncated or shrunken feed changes nothing and says why.
//
// Storage keeps whole versions: a sync writes a complete new version next to
// the current one and flips the feed's current-version pointer in the same
// transaction, so readers (the matching engine, the API) never see a
// half-written feed, and a process killed mid-sync leaves the previous
// version current. The version before the current one is kept for diffing;
// older ones are pruned after the swap.
package feeds

import (
	"context"
	"encoding/json"
	"time"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/audit"
)

// Kind is the format family a feed publishes.
type Kind string

// The feed kinds Patchward ingests.
const (
	OSV  Kind = "osv"
	NVD  Kind = "nvd"
	KEV  Kind = "kev"
	EPSS Kind = "epss"
	CSAF Kind = "csaf"
)

// Kinds lists every kind, in the order help text shows them.
var Kinds = []Kind{OSV, NVD, KEV, EPSS, CSAF}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	switch k {
	case OSV, NVD, KEV, EPSS, CSAF:
		return true
	}
	return false
}

// Status is what an operator needs to know about one feed: where it comes
// from, which version is current, and how the last attempts went.
type Status struct {
	Feed   string `json:"feed"`
	Kind   Kind   `json:"kind"`
	Source string `json:"source"`
	// Version counts this feed's versions from 1; zero means no version has
	// been stored yet.
	Version   int        `json:"version"`
	VersionID int64      `json:"-"`
	FetchedAt *time.Time `json:"fetched_at,omitempty"`
	// LastAttemptAt is the last sync attempt, successful or not;
	// LastSuccessAt the last one that ended with a current version (new or
	// unchanged).
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	// LastError is the user-safe reason the last attempt failed; empty
	// after a success.
	LastError string `json:"last_error,omitempty"`
	// Record counts of the current version.
	Advisories int `json:"advisories"`
	KEV        int `json:"kev"`
	EPSS       int `json:"epss"`
	// Conditional-request validators and the content hash of the current
	// version; the next sync sends them back to skip unchanged downloads.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	SHA256       string `json:"sha256,omitempty"`
	// Cursor is where an incremental feed (NVD) continues from: the
	// lastModEndDate of the query that produced the current version.
	Cursor string `json:"cursor,omitempty"`
	// Meta describes the current version's content (KEV catalog version,
	// EPSS model and score date).
	Meta Meta `json:"meta"`
}

// Meta is what a version's files say about themselves.
type Meta struct {
	KEVCatalogVersion string     `json:"kev_catalog_version,omitempty"`
	KEVReleased       *time.Time `json:"kev_released,omitempty"`
	EPSSModelVersion  string     `json:"epss_model_version,omitempty"`
	EPSSScoreDate     *time.Time `json:"epss_score_date,omitempty"`
	// Files counts the feed files (documents, records, pages) parsed.
	Files int `json:"files,omitempty"`
	// Skipped counts files in directories and archives that were no feed
	// format at all (README.json, schemas, provider indexes).
	Skipped int `json:"skipped,omitempty"`
	// Incremental is true when the version was built from its predecessor
	// plus a modified-since delta.
	Incremental bool `json:"incremental,omitempty"`
}

// Version is one stored, complete version of a feed.
type Version struct {
	ID     int64
	Feed   string
	Number int
	// BaseID is the version an incremental version copied its unchanged
	// records from; zero for a full version.
	BaseID       int64
	FetchedAt    time.Time
	Source       string
	ETag         string
	LastModified string
	SHA256       string
	Cursor       string
	Advisories   int
	KEV          int
	EPSS         int
	Meta         Meta
}

// Record is one advisory ready to store: its normalised JSON plus the keys
// the lookup tables index. Encoding happens while parsing, so a sync holds
// compact bytes rather than decoded structs for tens of thousands of records.
type Record struct {
	// Key identifies the record within a version: the advisory ID, plus
	// the CSAF document's tracking ID for CSAF (one CVE can appear in many
	// vendors' documents).
	Key string
	ID  string
	// Idents are the upper-cased ID, aliases and upstream IDs, for lookup
	// by any of them.
	Idents []string
	// Packages are the distinct (ecosystem, package) pairs affected.
	Packages []Package
	Data     json.RawMessage
}

// Package is one (ecosystem, package) pair an advisory names.
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
}

// Query filters SearchAdvisories. Empty fields match everything.
type Query struct {
	// ID is a prefix of an advisory ID or alias, case-insensitive.
	ID string
	// Package is an exact package (or CPE/CSAF product) name.
	Package string
	// Ecosystem is an exact ecosystem ("Debian:12") or its family
	// ("Debian" matches every Debian release).
	Ecosystem string
}

// Hit is one search result: an advisory and the feed it came from.
type Hit struct {
	Feed     string            `json:"feed"`
	Advisory advisory.Advisory `json:"advisory"`
}

// Page is one page of search results.
type Page struct {
	Total  int   `json:"total"`
	Limit  int   `json:"limit"`
	Offset int   `json:"offset"`
	Hits   []Hit `json:"hits"`
}

// Reader is the read side of the feed store: what the matching engine and
// the API consume. Every method reads only current versions.
type Reader interface {
	// CurrentAdvisories calls fn for each advisory of every feed's current
	// version, ordered by feed and key, from one consistent snapshot. An
	// advisory published by two feeds is passed once per feed. fn's error
	// stops the walk and is returned.
	CurrentAdvisories(ctx context.Context, fn func(advisory.Advisory) error) error
	// KEV returns the current KEV entries keyed by CVE ID.
	KEV(ctx context.Context) (map[string]advisory.KEV, error)
	// EPSS returns the current EPSS scores keyed by CVE ID.
	EPSS(ctx context.Context) (map[string]advisory.EPSS, error)
	// FeedStatus lists every feed that was ever synced, by name.
	FeedStatus(ctx context.Context) ([]Status, error)
	// Advisory returns the advisory with this ID or, failing that, one that
	// has it as an alias (case-insensitive). NotFound if none.
	Advisory(ctx context.Context, id string) (advisory.Advisory, error)
	// SearchAdvisories pages through advisories matching q, by ID.
	SearchAdvisories(ctx context.Context, q Query, limit, offset int) (Page, error)
}

// Store is the storage the sync service needs.
type Store interface {
	Reader
	// State returns the stored status of one feed; NotFound if it has
	// never been synced.
	State(ctx context.Context, feed string) (Status, error)
	// Lock serialises syncs of one feed across processes (a PostgreSQL
	// advisory lock; SQLite has a single writer and needs none). It returns
	// a Conflict error at once when another process holds the lock.
	Lock(ctx context.Context, feed string) (unlock func(), err error)
	Transact(ctx context.Context, fn func(Tx) error) error
	// Prune deletes the feed's versions other than the current and the
	// previous one, returning how many it deleted.
	Prune(ctx context.Context, feed string) (int, error)
}

// Tx is one write transaction of a sync.
type Tx interface {
	audit.Appender
	// UpsertFeed creates the feed's row or updates its kind and source.
	UpsertFeed(ctx context.Context, feed string, kind Kind, source string) error
	// CurrentVersionID returns the feed's current version (zero if none),
	// locking the feed's row until the transaction ends.
	CurrentVersionID(ctx context.Context, feed string) (int64, error)
	// InsertVersion stores v with the next version number and sets v.ID and
	// v.Number.
	InsertVersion(ctx context.Context, v *Version) error
	InsertAdvisories(ctx context.Context, versionID int64, recs []Record) error
	// CopyAdvisories copies into version to every record of version from
	// whose key to does not hold yet, returning how many it copied.
	CopyAdvisories(ctx context.Context, from, to int64) (int, error)
	InsertKEV(ctx context.Context, versionID int64, kev []advisory.KEV) error
	InsertEPSS(ctx context.Context, versionID int64, scores []advisory.EPSS) error
	// Activate records v's final counts and makes it the feed's current
	// version, keeping the one it replaces as the previous version.
	Activate(ctx context.Context, v *Version) error
	// TouchVersion refreshes the validators of an unchanged current
	// version, so the next conditional request can be answered with 304.
	TouchVersion(ctx context.Context, versionID int64, etag, lastModified string) error
	// RecordAttempt stores the outcome of an attempt: errText empty for a
	// success.
	RecordAttempt(ctx context.Context, feed string, at time.Time, errText string) error
}
