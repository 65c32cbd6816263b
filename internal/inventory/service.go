package inventory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// Filter selects assets for listing. Zero fields do not filter.
type Filter struct {
	SiteID      string
	Type        Type
	Criticality Level
	PHI         *bool
	Exposure    Exposure
	// Owner matches the business or the technical owner, case-insensitively.
	Owner   string
	Support Support
	Tag     string
	GroupID string
	// Q is a case-insensitive substring of name, hostname, serial, asset tag,
	// make or model.
	Q      string
	Limit  int
	Offset int
}

// MaxPage is the largest page a listing returns.
const MaxPage = 1000

// Page is one page of a listing plus the total that matched.
type Page struct {
	Assets []Asset `json:"assets"`
	Total  int     `json:"total"`
	Limit  int     `json:"limit"`
	Offset int     `json:"offset"`
}

// Reader is the read side of inventory storage.
type Reader interface {
	GetAsset(ctx context.Context, id string) (Asset, error)
	ListAssets(ctx context.Context, f Filter) (Page, error)
	// AllAssets returns every asset with software, for export and reconciliation.
	AllAssets(ctx context.Context) ([]Asset, error)
	GetSite(ctx context.Context, id string) (Site, error)
	ListSites(ctx context.Context) ([]Site, error)
	GetGroup(ctx context.Context, id string) (Group, error)
	ListGroups(ctx context.Context) ([]Group, error)
}

// Tx is the inventory's view of one storage transaction. It embeds
// audit.Appender so every change is logged in the same transaction.
type Tx interface {
	Reader
	audit.Appender
	InsertAsset(ctx context.Context, a *Asset) error
	// UpdateAsset stores a, which must carry the new revision; it fails with
	// Conflict unless the stored revision is a.Revision-1.
	UpdateAsset(ctx context.Context, a *Asset) error
	DeleteAsset(ctx context.Context, id string) error
	InsertSite(ctx context.Context, s *Site) error
	UpdateSite(ctx context.Context, s *Site) error
	DeleteSite(ctx context.Context, id string) error
	InsertGroup(ctx context.Context, g *Group) error
	UpdateGroup(ctx context.Context, g *Group) error
	DeleteGroup(ctx context.Context, id string) error
}

// Store is the inventory's storage: reads plus transactions.
type Store interface {
	Reader
	Transact(ctx context.Context, fn func(Tx) error) error
}

// Service implements inventory use cases.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService returns a Service on store using now as its clock.
func NewService(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// NewID returns a new time-ordered identifier.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// Asset returns one asset with its software.
func (s *Service) Asset(ctx context.Context, id string) (Asset, error) {
	return s.store.GetAsset(ctx, id)
}

// Assets lists assets matching f.
func (s *Service) Assets(ctx context.Context, f Filter) (Page, error) {
	if f.Limit <= 0 || f.Limit > MaxPage {
		f.Limit = min(max(f.Limit, 50), MaxPage)
	}
	if f.Offset < 0 {
		return Page{}, errs.E(errs.Invalid, "offset must not be negative")
	}
	return s.store.ListAssets(ctx, f)
}

// CreateAsset validates and stores a new asset.
func (s *Service) CreateAsset(ctx context.Context, actor audit.Actor, a Asset) (Asset, error) {
	err := s.store.Transact(ctx, func(tx Tx) error {
		return s.createAsset(ctx, tx, actor, &a, "asset.create")
	})
	if err != nil {
		return Asset{}, fmt.Errorf("create asset: %w", err)
	}
	return a, nil
}

func (s *Service) createAsset(ctx context.Context, tx Tx, actor audit.Actor, a *Asset, action string) error {
	a.Normalize()
	if err := a.Validate(); err != nil {
		return err
	}
	if err := checkRefs(ctx, tx, a); err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	a.ID, a.CreatedAt, a.UpdatedAt, a.Revision = NewID(), now, now, 1
	if err := tx.InsertAsset(ctx, a); err != nil {
		return err
	}
	return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: action, ObjectType: "asset", ObjectID: a.ID, After: a})
}

// UpdateAsset replaces the editable fields of asset id with a. a.Revision
// must equal the stored revision, so two admins editing at once cannot
// silently overwrite each other.
func (s *Service) UpdateAsset(ctx context.Context, actor audit.Actor, id string, a Asset) (Asset, error) {
	err := s.store.Transact(ctx, func(tx Tx) error {
		return s.updateAsset(ctx, tx, actor, id, &a, "asset.update")
	})
	if err != nil {
		return Asset{}, fmt.Errorf("update asset: %w", err)
	}
	return a, nil
}

func (s *Service) updateAsset(ctx context.Context, tx Tx, actor audit.Actor, id string, a *Asset, action string) error {
	old, err := tx.GetAsset(ctx, id)
	if err != nil {
		return err
	}
	if a.Revision != 0 && a.Revision != old.Revision {
		return errs.E(errs.Conflict, "asset %s was changed by someone else (revision %d, you sent %d); reload and retry", id, old.Revision, a.Revision)
	}
	a.Normalize()
	if err := a.Validate(); err != nil {
		return err
	}
	if err := checkRefs(ctx, tx, a); err != nil {
		return err
	}
	a.ID, a.CreatedAt, a.Revision = old.ID, old.CreatedAt, old.Revision+1
	a.UpdatedAt = s.now().UTC().Truncate(time.Microsecond)
	if err := tx.UpdateAsset(ctx, a); err != nil {
		return err
	}
	return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: action, ObjectType: "asset", ObjectID: id, Before: old, After: a})
}

// DeleteAsset removes an asset; the audit entry keeps its last state.
func (s *Service) DeleteAsset(ctx context.Context, actor audit.Actor, id, reason string) error {
	err := s.store.Transact(ctx, func(tx Tx) error {
		old, err := tx.GetAsset(ctx, id)
		if err != nil {
			return err
		}
		if err := tx.DeleteAsset(ctx, id); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "asset.delete", ObjectType: "asset", ObjectID: id, Before: old, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("delete asset: %w", err)
	}
	return nil
}

func checkRefs(ctx context.Context, tx Tx, a *Asset) error {
	var v errs.Validation
	if a.SiteID != "" {
		if _, err := tx.GetSite(ctx, a.SiteID); errors.Is(err, errs.ErrNotFound) {
			v.Add("site_id", "no site %q", a.SiteID)
		} else if err != nil {
			return err
		}
	}
	for _, g := range a.Groups {
		if _, err := tx.GetGroup(ctx, g); errors.Is(err, errs.ErrNotFound) {
			v.Add("groups", "no group %q", g)
		} else if err != nil {
			return err
		}
	}
	return v.Err("invalid asset")
}

// Sites lists all sites.
func (s *Service) Sites(ctx context.Context) ([]Site, error) { return s.store.ListSites(ctx) }

// Site returns one site.
func (s *Service) Site(ctx context.Context, id string) (Site, error) { return s.store.GetSite(ctx, id) }

// CreateSite validates and stores a site.
func (s *Service) CreateSite(ctx context.Context, actor audit.Actor, site Site) (Site, error) {
	if err := site.Validate(); err != nil {
		return Site{}, err
	}
	site.ID, site.CreatedAt = NewID(), s.now().UTC().Truncate(time.Microsecond)
	err := s.store.Transact(ctx, func(tx Tx) error {
		if err := tx.InsertSite(ctx, &site); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "site.create", ObjectType: "site", ObjectID: site.ID, After: site})
	})
	if err != nil {
		return Site{}, fmt.Errorf("create site: %w", err)
	}
	return site, nil
}

// UpdateSite changes a site's name, address or time zone.
func (s *Service) UpdateSite(ctx context.Context, actor audit.Actor, id string, site Site) (Site, error) {
	if err := site.Validate(); err != nil {
		return Site{}, err
	}
	err := s.store.Transact(ctx, func(tx Tx) error {
		old, err := tx.GetSite(ctx, id)
		if err != nil {
			return err
		}
		site.ID, site.CreatedAt = old.ID, old.CreatedAt
		if err := tx.UpdateSite(ctx, &site); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "site.update", ObjectType: "site", ObjectID: id, Before: old, After: site})
	})
	if err != nil {
		return Site{}, fmt.Errorf("update site: %w", err)
	}
	return site, nil
}

// DeleteSite removes a site that no asset references.
func (s *Service) DeleteSite(ctx context.Context, actor audit.Actor, id string) error {
	err := s.store.Transact(ctx, func(tx Tx) error {
		old, err := tx.GetSite(ctx, id)
		if err != nil {
			return err
		}
		if p, err := tx.ListAssets(ctx, Filter{SiteID: id, Limit: 1}); err != nil {
			return err
		} else if p.Total > 0 {
			return errs.E(errs.Conflict, "site %q still has %d assets; move them first", old.Name, p.Total)
		}
		if err := tx.DeleteSite(ctx, id); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "site.delete", ObjectType: "site", ObjectID: id, Before: old})
	})
	if err != nil {
		return fmt.Errorf("delete site: %w", err)
	}
	return nil
}

// Groups lists all asset groups.
func (s *Service) Groups(ctx context.Context) ([]Group, error) { return s.store.ListGroups(ctx) }

// Group returns one group.
func (s *Service) Group(ctx context.Context, id string) (Group, error) {
	return s.store.GetGroup(ctx, id)
}

// CreateGroup validates and stores a group.
func (s *Service) CreateGroup(ctx context.Context, actor audit.Actor, g Group) (Group, error) {
	if err := g.Validate(); err != nil {
		return Group{}, err
	}
	g.ID, g.CreatedAt = NewID(), s.now().UTC().Truncate(time.Microsecond)
	err := s.store.Transact(ctx, func(tx Tx) error {
		if err := tx.InsertGroup(ctx, &g); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "group.create", ObjectType: "group", ObjectID: g.ID, After: g})
	})
	if err != nil {
		return Group{}, fmt.Errorf("create group: %w", err)
	}
	return g, nil
}

// UpdateGroup renames or re-describes a group.
func (s *Service) UpdateGroup(ctx context.Context, actor audit.Actor, id string, g Group) (Group, error) {
	if err := g.Validate(); err != nil {
		return Group{}, err
	}
	err := s.store.Transact(ctx, func(tx Tx) error {
		old, err := tx.GetGroup(ctx, id)
		if err != nil {
			return err
		}
		g.ID, g.CreatedAt = old.ID, old.CreatedAt
		if err := tx.UpdateGroup(ctx, &g); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "group.update", ObjectType: "group", ObjectID: id, Before: old, After: g})
	})
	if err != nil {
		return Group{}, fmt.Errorf("update group: %w", err)
	}
	return g, nil
}

// DeleteGroup removes a group; its members stay, without the membership.
func (s *Service) DeleteGroup(ctx context.Context, actor audit.Actor, id string) error {
	err := s.store.Transact(ctx, func(tx Tx) error {
		old, err := tx.GetGroup(ctx, id)
		if err != nil {
			return err
		}
		if err := tx.DeleteGroup(ctx, id); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "group.delete", ObjectType: "group", ObjectID: id, Before: old})
	})
	if err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	return nil
}
