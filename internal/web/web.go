// Package web is Patchward's server-rendered HTML UI: sign-in, the asset
// inventory (list, detail, edit, create), CSV import with a preview, the
// audit log viewer, vulnerability intelligence (findings across the
// estate and per asset, advisory search and detail, feed status), and risk:
// the prioritised worklist, each finding's score explanation and SLA clock,
// the policy in force with its editor, and exceptions (risk acceptances)
// from request to approval and review; change control: change records
// made from findings, their approvals, test runs with evidence, sign-offs
// and state moves, the rolling maintenance calendar, each change's
// rollout (waves, gates, operator actions, manual tasks, verification)
// with a per-asset deployment log, and emergency proposals. It needs no
// JavaScript and no front-end build step: templates and static files are
// embedded and parsed once at start-up, and every page is rendered to a
// buffer before a byte is written, so a template failure becomes a clean
// error page instead of half a table.
//
// The package declares the narrow interfaces it consumes (Accounts,
// Inventory, Importer, AuditLog, FindingsReader, AdvisoryReader, RiskReader,
// ExceptionService, PolicyService, ChangeService, RolloutService,
// JobReader, ProposalReader); main wires the real
// services in.
package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
)

// Accounts signs users in and out. The auth service implements it.
type Accounts interface {
	// Login checks a username and password and starts a browser session.
	// It fails with an Unauthorized error for wrong credentials.
	Login(ctx context.Context, username, password, addr string) (token string, p auth.Principal, err error)
	// Logout ends the session identified by token.
	Logout(ctx context.Context, token string) error
}

// Inventory is the part of the inventory service the UI uses;
// *inventory.Service implements it.
type Inventory interface {
	Assets(ctx context.Context, f inventory.Filter) (inventory.Page, error)
	Asset(ctx context.Context, id string) (inventory.Asset, error)
	CreateAsset(ctx context.Context, actor audit.Actor, a inventory.Asset) (inventory.Asset, error)
	UpdateAsset(ctx context.Context, actor audit.Actor, id string, a inventory.Asset) (inventory.Asset, error)
	Sites(ctx context.Context) ([]inventory.Site, error)
	Groups(ctx context.Context) ([]inventory.Group, error)
}

// Importer imports a CSV file into the inventory. With DryRun set it must
// change nothing and report what it would do, row by row.
type Importer interface {
	ImportCSV(ctx context.Context, actor audit.Actor, r io.Reader, opt ImportOptions) (ImportResult, error)
}

// ImportOptions says how to read an uploaded CSV file.
type ImportOptions struct {
	// Kind is one of the Config.ImportKinds names, e.g. "inventory".
	Kind string
	// Name labels the import for the audit trail: the uploaded file name.
	Name   string
	DryRun bool
}

// ImportResult is what an import did, or on a dry run would do. Any error
// means nothing was, or would be, written.
type ImportResult struct {
	Rows   []ImportRow
	Errors []ImportError
	// ErrorCount counts every error when Errors is capped.
	ErrorCount int
}

// ImportRow is the outcome for one data row of the file.
type ImportRow struct {
	// Line is the line number a spreadsheet shows (the header is line 1),
	// so an admin can find the row.
	Line int
	// Action is "create", "update" or "unchanged".
	Action string
	// AssetID is empty for a create in a dry run.
	AssetID string
	Name    string
	Changes []ImportChange
}

// ImportChange is one field an update changes.
type ImportChange struct {
	Field, Old, New string
}

// ImportError is one problem with the file, with a user-safe message.
// Column is the CSV header, empty when the problem is the row as a whole;
// Line is 0 for a problem with the file itself.
type ImportError struct {
	Line    int
	Column  string
	Message string
}

// ImportKind is one kind of CSV file the importer understands.
type ImportKind struct {
	Name  string // form value passed as ImportOptions.Kind
	Label string // shown to the user
}

// AuditQuery selects audit entries. Zero fields do not filter.
type AuditQuery struct {
	ObjectType string
	// ObjectIDs are the objects asked about: entries about any of them.
	ObjectIDs []string
	// Actor matches the actor's name (username) or ID.
	Actor string
	// Action matches exactly, e.g. "asset.update".
	Action string
	Limit  int
	Offset int
}

// AuditLog lists audit entries, newest first.
type AuditLog interface {
	Entries(ctx context.Context, q AuditQuery) (entries []audit.Entry, total int, err error)
}

// FindingsReader lists findings and reads one with its lifecycle;
// *match.Service implements it. The UI only reads: findings change when
// inventories and feeds do, never by a click.
type FindingsReader interface {
	// Findings returns one page of findings matching f. A zero State
	// means every state.
	Findings(ctx context.Context, f match.FindingFilter) (match.FindingPage, error)
	// Finding returns one finding; NotFound if there is none.
	Finding(ctx context.Context, id string) (match.Finding, error)
}

// AdvisoryReader is the part of the feed store's read side the UI shows;
// the store's feeds.Reader (and so feeds.Store) implements it. It leaves
// out the bulk reads (CurrentAdvisories, KEV, EPSS) that only the matcher
// needs.
type AdvisoryReader interface {
	// Advisory returns the advisory with this ID or, failing that, one that
	// has it as an alias; NotFound if none.
	Advisory(ctx context.Context, id string) (advisory.Advisory, error)
	// SearchAdvisories pages through the advisories matching q.
	SearchAdvisories(ctx context.Context, q feeds.Query, limit, offset int) (feeds.Page, error)
	// FeedStatus lists every feed that was ever synced.
	FeedStatus(ctx context.Context) ([]feeds.Status, error)
}

// RiskReader is the read side of the risk engine the UI shows;
// *risk.Service implements it. Scores and clocks change when findings, the
// policy or exceptions do, never by a click on the worklist.
type RiskReader interface {
	// Worklist lists risk records, most urgent first (or soonest due).
	Worklist(ctx context.Context, f risk.WorklistFilter) (risk.WorklistPage, error)
	// Explain returns a finding's record, SLA state and priority history;
	// NotFound until the finding has been assessed.
	Explain(ctx context.Context, findingID string) (risk.Explanation, error)
}

// ExceptionService requests, decides and lists exceptions; *risk.Service
// implements it. The service, not the UI, enforces the policy's approver
// roles, separation of duties and the revision check, so the UI only has
// to show what it says.
type ExceptionService interface {
	RequestException(ctx context.Context, who risk.Requester, e risk.Exception) (risk.Exception, error)
	DecideException(ctx context.Context, who risk.Requester, id string, d risk.Decision) (risk.Exception, error)
	// Exception returns one exception with its reviews; NotFound if none.
	Exception(ctx context.Context, id string) (risk.Exception, []risk.Review, error)
	Exceptions(ctx context.Context, f risk.ExceptionFilter) ([]risk.Exception, error)
	ExceptionAging(ctx context.Context) (risk.AgingReport, error)
	// ReviewsDue lists approved exceptions whose review is due by by.
	ReviewsDue(ctx context.Context, by time.Time) ([]risk.Exception, error)
}

// PolicyService keeps the policy in force; *policy.Service implements it.
type PolicyService interface {
	// Current returns the policy in force and its version (0 for the
	// built-in default).
	Current(ctx context.Context) (*policy.Compiled, policy.Version, error)
	// Validate loads src without applying it; a bad file is an error
	// wrapping *policy.Error with every problem and its line.
	Validate(src []byte) (*policy.Compiled, error)
	// Apply validates src and stores it as the next version; on any error
	// the old version stays in force.
	Apply(ctx context.Context, actor audit.Actor, src []byte, comment string) (policy.Version, error)
	// Versions lists applied versions, newest first, without their source.
	Versions(ctx context.Context) ([]policy.Version, error)
	// Version returns version n with its source (0 is the built-in default).
	Version(ctx context.Context, n int) (*policy.Compiled, policy.Version, error)
	// Document renders version n (-1 for the one in force) as "md" or "html".
	Document(ctx context.Context, n int, format string) ([]byte, error)
}

// FeedTokens creates calendar feed tokens: read-only secrets that only the
// iCalendar feed accepts, for calendar apps that cannot sign in;
// *auth.Service implements it.
type FeedTokens interface {
	CreateFeedToken(ctx context.Context, actor audit.Actor, userID, name string) (string, auth.Token, error)
}

// Config is everything the UI needs. Accounts and Inventory are required;
// without Importer, Audit, Findings, Advisories, Risk, Exceptions or Policy
// the pages that need them (and their navigation links) are not offered,
// so the UI can ship before those services do.
type Config struct {
	Accounts  Accounts
	Inventory Inventory
	Importer  Importer
	Audit     AuditLog
	// Findings enables /findings, /findings/{id} and the Vulnerabilities
	// section of the asset page.
	Findings FindingsReader
	// Advisories enables /advisories, /advisories/{id} and /feeds, and
	// links from findings to their advisories.
	Advisories AdvisoryReader
	// Risk enables /worklist (the landing page when present) and the
	// Priority section of the finding page.
	Risk RiskReader
	// Exceptions enables /exceptions and the "Request exception" links.
	Exceptions ExceptionService
	// Policy enables /policy and its editor; the worklist and exception
	// forms also read tier names, decisions and the time zone from it.
	// With Policy, /calendar shows its maintenance windows and freezes.
	Policy PolicyService
	// Changes enables /changes (change records from draft to completed)
	// and the "Create change" links on the worklist and finding pages.
	Changes ChangeService
	// Rollouts adds the Deployment section to a change page (waves,
	// items, gates, the operator's pause, resume, abort and roll back,
	// manual task outcomes, the not-converged list) and each asset's
	// deployment log at /changes/{id}/log?asset=ID. While a rollout is
	// active it steers the change: the change's own halt, resume, roll
	// back, complete and cancel act through it (ChangeMove), and the page
	// offers the rollout's operations in place of all but halt.
	Rollouts RolloutService
	// Jobs lets the deployment log show each job step's command and
	// output as the agent reported them; without it the log shows step
	// names and exit codes only.
	Jobs JobReader
	// Proposals enables /proposals: vulnerabilities that entered the top
	// risk tier through CISA KEV and no change covers yet, each with a
	// button that opens the new-change form pre-filled as an emergency.
	// It needs Changes.
	Proposals ProposalReader
	// FeedTokens lets /calendar make a personal iCalendar feed link
	// (a read-only feed token); without it the page explains how to get
	// one from the JSON API.
	FeedTokens FeedTokens
	// Now is the clock for "due in 3 days" and the exception views;
	// default time.Now.
	Now func() time.Time
	// ImportKinds lists the CSV kinds offered on the import page; default
	// DefaultImportKinds().
	ImportKinds []ImportKind
	// MaxImportBytes bounds an uploaded CSV file; default DefaultMaxImportBytes.
	MaxImportBytes int64
	// Log receives internal errors; default slog.Default().
	Log *slog.Logger
}

// DefaultImportKinds returns the kinds the inventory importer understands.
func DefaultImportKinds() []ImportKind {
	return []ImportKind{
		{Name: "inventory", Label: "Asset list (e.g. an edited export)"},
		{Name: "purchase", Label: "Purchase records"},
		{Name: "discovery", Label: "Discovery or network scan export"},
	}
}

// DefaultMaxImportBytes is the default upload limit: a purchase export for
// a clinic group is a few hundred kilobytes.
const DefaultMaxImportBytes = 4 << 20

// UI is the HTML user interface.
type UI struct {
	cfg    Config
	log    *slog.Logger
	pages  map[string]*template.Template
	static *staticFiles
}

// New checks cfg and parses the embedded templates and static files, so a
// broken template fails start-up rather than the first request.
func New(cfg Config) (*UI, error) {
	if cfg.Accounts == nil || cfg.Inventory == nil {
		return nil, errors.New("web: Config needs Accounts and Inventory")
	}
	if len(cfg.ImportKinds) == 0 {
		cfg.ImportKinds = DefaultImportKinds()
	}
	if cfg.MaxImportBytes <= 0 {
		cfg.MaxImportBytes = DefaultMaxImportBytes
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	st, err := loadStatic()
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	ui := &UI{cfg: cfg, log: cfg.Log, static: st}
	if ui.pages, err = parsePages(st); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return ui, nil
}

// Handler returns the UI's routes. It expects authn.Middleware (and the
// server's cross-origin protection) to wrap it.
func (ui *UI) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range ui.routes() {
		mux.Handle(rt.pattern, ui.wrap(rt))
	}
	mux.Handle("GET /static/{name}", http.HandlerFunc(ui.static.serve))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ui.fail(w, r, notFound())
	}))
	return mux
}

// Compile-time checks that the real services fit the interfaces, so a
// change of signature breaks the build here rather than main's wiring.
var (
	_ FindingsReader   = (*match.Service)(nil)
	_ AdvisoryReader   = feeds.Reader(nil)
	_ RiskReader       = (*risk.Service)(nil)
	_ ExceptionService = (*risk.Service)(nil)
	_ PolicyService    = (*policy.Service)(nil)
	_ FeedTokens       = (*auth.Service)(nil)
)
