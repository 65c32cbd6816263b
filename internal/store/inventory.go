package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/inventory"
)

// Inventory returns the inventory's view of the database.
func (db *DB) Inventory() inventory.Store {
	return invStore{db: db, invReader: invReader{q: db.r}}
}

type invStore struct {
	db *DB
	invReader
}

type invReader struct{ q querier }

func (s invStore) Transact(ctx context.Context, fn func(inventory.Tx) error) error {
	return s.db.Transact(ctx, func(t *Tx) error { return fn(invTx{Tx: t, invReader: invReader{q: t.tx}}) })
}

type invTx struct {
	*Tx
	invReader
}

const assetCols = `id, name, type, hostname, make, model, serial, asset_tag, os_name, os_version,
	firmware_version, cpe, ip_addresses, mac_address, site_id, location, network_zone, exposure,
	business_owner, technical_owner, data_class, handles_phi, criticality, safety_impact,
	regulated_device, restriction, restriction_notes, maintenance_window, patch_source,
	support_status, end_of_support, last_patched_at, pending_updates, purchase_ref, purchased_at,
	last_seen_at, source, notes, created_at, updated_at, revision`

func assetArgs(a *inventory.Asset) []any {
	ips, _ := json.Marshal(nonNil(a.IPAddresses))
	return []any{a.ID, a.Name, string(a.Type), a.Hostname, a.Make, a.Model, a.Serial, a.AssetTag,
		a.OSName, a.OSVersion, a.FirmwareVersion, a.CPE, string(ips), a.MACAddress, nullStr(a.SiteID),
		a.Location, a.NetworkZone, string(a.Exposure), a.BusinessOwner, a.TechnicalOwner,
		string(a.DataClass), a.HandlesPHI, string(a.Criticality), string(a.SafetyImpact),
		a.RegulatedDevice, string(a.Restriction), a.RestrictionNotes, a.MaintenanceWindow,
		a.PatchSource, string(a.SupportStatus), nullTime(a.EndOfSupport), nullTime(a.LastPatchedAt),
		a.PendingUpdates, a.PurchaseRef, nullTime(a.PurchasedAt), nullTime(a.LastSeenAt),
		string(a.Source), a.Notes, a.CreatedAt.UTC(), a.UpdatedAt.UTC(), a.Revision}
}

type rowScanner interface{ Scan(dest ...any) error }

func scanAsset(r rowScanner) (inventory.Asset, error) {
	var (
		a                                 inventory.Asset
		ips                               string
		site                              sql.NullString
		eos, patched, purchased, seen     sql.NullTime
		typ, exp, dc, crit, safety, restr string
		support, source                   string
	)
	err := r.Scan(&a.ID, &a.Name, &typ, &a.Hostname, &a.Make, &a.Model, &a.Serial, &a.AssetTag,
		&a.OSName, &a.OSVersion, &a.FirmwareVersion, &a.CPE, &ips, &a.MACAddress, &site,
		&a.Location, &a.NetworkZone, &exp, &a.BusinessOwner, &a.TechnicalOwner, &dc, &a.HandlesPHI,
		&crit, &safety, &a.RegulatedDevice, &restr, &a.RestrictionNotes, &a.MaintenanceWindow,
		&a.PatchSource, &support, &eos, &patched, &a.PendingUpdates, &a.PurchaseRef, &purchased,
		&seen, &source, &a.Notes, &a.CreatedAt, &a.UpdatedAt, &a.Revision)
	if err != nil {
		return a, err
	}
	a.Type, a.Exposure, a.DataClass, a.Criticality = inventory.Type(typ), inventory.Exposure(exp), inventory.Classification(dc), inventory.Level(crit)
	a.SafetyImpact, a.Restriction, a.SupportStatus, a.Source = inventory.SafetyImpact(safety), inventory.Restriction(restr), inventory.Support(support), inventory.Source(source)
	a.SiteID = site.String
	a.EndOfSupport, a.LastPatchedAt, a.PurchasedAt, a.LastSeenAt = timePtr(eos), timePtr(patched), timePtr(purchased), timePtr(seen)
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	if err := json.Unmarshal([]byte(ips), &a.IPAddresses); err != nil {
		return a, fmt.Errorf("asset %s: ip_addresses: %w", a.ID, err)
	}
	if len(a.IPAddresses) == 0 {
		a.IPAddresses = nil
	}
	return a, nil
}

func (r invReader) GetAsset(ctx context.Context, id string) (inventory.Asset, error) {
	a, err := scanAsset(r.q.QueryRowContext(ctx, `SELECT `+assetCols+` FROM assets WHERE id = $1`, id))
	if err != nil {
		return a, notFound(err, "asset", id)
	}
	assets := []inventory.Asset{a}
	if err := r.fillDetails(ctx, assets, true); err != nil {
		return a, err
	}
	return assets[0], nil
}

// filterSQL builds the WHERE clause for f with numbered arguments.
func filterSQL(f inventory.Filter) (string, []any) {
	var (
		conds []string
		args  []any
	)
	add := func(cond string, vals ...any) {
		for _, v := range vals {
			args = append(args, v)
			cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(args)), 1)
		}
		conds = append(conds, cond)
	}
	if f.SiteID != "" {
		add("site_id = ?", f.SiteID)
	}
	if f.Type != "" {
		add("type = ?", string(f.Type))
	}
	if f.Criticality != "" {
		add("criticality = ?", string(f.Criticality))
	}
	if f.PHI != nil {
		add("handles_phi = ?", *f.PHI)
	}
	if f.Exposure != "" {
		add("exposure = ?", string(f.Exposure))
	}
	if f.Support != "" {
		add("support_status = ?", string(f.Support))
	}
	if f.Owner != "" {
		o := strings.ToLower(f.Owner)
		add("(lower(business_owner) = ? OR lower(technical_owner) = ?)", o, o)
	}
	if f.Tag != "" {
		add("id IN (SELECT asset_id FROM asset_tags WHERE tag = ?)", strings.ToLower(f.Tag))
	}
	if f.GroupID != "" {
		add("id IN (SELECT asset_id FROM asset_group_members WHERE group_id = ?)", f.GroupID)
	}
	if f.Q != "" {
		p := "%" + likeEscape(strings.ToLower(f.Q)) + "%"
		add(`search_text LIKE ? ESCAPE '\'`, p)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func (r invReader) ListAssets(ctx context.Context, f inventory.Filter) (inventory.Page, error) {
	where, args := filterSQL(f)
	page := inventory.Page{Limit: f.Limit, Offset: f.Offset, Assets: []inventory.Asset{}}
	if err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM assets`+where, args...).Scan(&page.Total); err != nil {
		return page, fmt.Errorf("count assets: %w", translate(err))
	}
	if page.Total == 0 || f.Limit == 0 {
		return page, nil
	}
	n := len(args)
	q := fmt.Sprintf(`SELECT %s FROM assets%s ORDER BY sort_key, id LIMIT $%d OFFSET $%d`, assetCols, where, n+1, n+2)
	assets, err := r.queryAssets(ctx, q, append(args, f.Limit, f.Offset)...)
	if err != nil {
		return page, err
	}
	if err := r.fillDetails(ctx, assets, false); err != nil {
		return page, err
	}
	page.Assets = assets
	return page, nil
}

func (r invReader) AllAssets(ctx context.Context) ([]inventory.Asset, error) {
	assets, err := r.queryAssets(ctx, `SELECT `+assetCols+` FROM assets ORDER BY sort_key, id`)
	if err != nil {
		return nil, err
	}
	return assets, r.fillDetails(ctx, assets, true)
}

func (r invReader) queryAssets(ctx context.Context, q string, args ...any) ([]inventory.Asset, error) {
	rows, err := r.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list assets: %w", translate(err))
	}
	defer rows.Close()
	var out []inventory.Asset
	for rows.Next() {
		a, err := scanAsset(rows)
		if err != nil {
			return nil, fmt.Errorf("scan asset: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list assets: %w", translate(err))
	}
	return out, nil
}

// fillDetails loads tags, groups and (optionally) software for assets in a
// few set-wise queries rather than one per asset.
func (r invReader) fillDetails(ctx context.Context, assets []inventory.Asset, software bool) error {
	if len(assets) == 0 {
		return nil
	}
	idx := make(map[string]int, len(assets))
	for i := range assets {
		idx[assets[i].ID] = i
	}
	// For a page, filter by id; for everything, read the whole table once.
	cond, args := "", []any(nil)
	if len(assets) <= MaxInList {
		ph := make([]string, len(assets))
		for i := range assets {
			ph[i] = fmt.Sprintf("$%d", i+1)
			args = append(args, assets[i].ID)
		}
		cond = " WHERE asset_id IN (" + strings.Join(ph, ",") + ")"
	}
	err := r.each(ctx, `SELECT asset_id, tag FROM asset_tags`+cond+` ORDER BY asset_id, tag`, args, func(id, v string) {
		if i, ok := idx[id]; ok {
			assets[i].Tags = append(assets[i].Tags, v)
		}
	})
	if err != nil {
		return fmt.Errorf("load asset tags: %w", err)
	}
	err = r.each(ctx, `SELECT asset_id, group_id FROM asset_group_members`+cond+` ORDER BY asset_id, group_id`, args, func(id, v string) {
		if i, ok := idx[id]; ok {
			assets[i].Groups = append(assets[i].Groups, v)
		}
	})
	if err != nil {
		return fmt.Errorf("load asset groups: %w", err)
	}
	if !software {
		return nil
	}
	rows, err := r.q.QueryContext(ctx, `SELECT asset_id, name, version, arch, ecosystem, purl, source_name, source_version FROM asset_software`+cond+` ORDER BY asset_id, ord`, args...)
	if err != nil {
		return fmt.Errorf("load software: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var s inventory.Software
		if err := rows.Scan(&id, &s.Name, &s.Version, &s.Arch, &s.Ecosystem, &s.PURL, &s.SourceName, &s.SourceVersion); err != nil {
			return fmt.Errorf("scan software: %w", err)
		}
		if i, ok := idx[id]; ok {
			assets[i].Software = append(assets[i].Software, s)
		}
	}
	return rows.Err()
}

// MaxInList bounds IN-lists; above it we read whole tables instead.
const MaxInList = 1000

func (r invReader) each(ctx context.Context, q string, args []any, fn func(a, b string)) error {
	rows, err := r.q.QueryContext(ctx, q, args...)
	if err != nil {
		return translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		fn(a, b)
	}
	return rows.Err()
}

func (t invTx) InsertAsset(ctx context.Context, a *inventory.Asset) error {
	args := append(assetArgs(a), sortKey(a), searchText(a))
	ph := make([]string, len(args))
	for i := range ph {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO assets (`+assetCols+`, sort_key, search_text) VALUES (`+strings.Join(ph, ",")+`)`, args...); err != nil {
		return fmt.Errorf("insert asset: %w", translate(err))
	}
	return t.writeDetails(ctx, a)
}

func (t invTx) UpdateAsset(ctx context.Context, a *inventory.Asset) error {
	args := append(assetArgs(a), sortKey(a), searchText(a))
	cols := strings.Split(assetCols+", sort_key, search_text", ",")
	sets := make([]string, 0, len(cols))
	for i, c := range cols[1:] { // skip id
		sets = append(sets, fmt.Sprintf("%s = $%d", strings.TrimSpace(c), i+2))
	}
	q := fmt.Sprintf(`UPDATE assets SET %s WHERE id = $1 AND revision = $%d`, strings.Join(sets, ", "), len(args)+1)
	res, err := t.tx.ExecContext(ctx, q, append(args, a.Revision-1)...)
	if err != nil {
		return fmt.Errorf("update asset: %w", translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("update asset %s: %w", a.ID, conflictOrMissing)
	}
	for _, table := range []string{"asset_tags", "asset_group_members", "asset_software"} {
		if _, err := t.tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE asset_id = $1`, a.ID); err != nil {
			return fmt.Errorf("update asset: %w", translate(err))
		}
	}
	return t.writeDetails(ctx, a)
}

func (t invTx) writeDetails(ctx context.Context, a *inventory.Asset) error {
	for _, tag := range a.Tags {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO asset_tags (asset_id, tag) VALUES ($1, $2)`, a.ID, tag); err != nil {
			return fmt.Errorf("store asset tag: %w", translate(err))
		}
	}
	for _, g := range a.Groups {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO asset_group_members (asset_id, group_id) VALUES ($1, $2)`, a.ID, g); err != nil {
			return fmt.Errorf("store group membership: %w", translate(err))
		}
	}
	return t.insertSoftware(ctx, a.ID, a.Software)
}

// insertSoftware writes software rows in multi-row batches: fleets report
// thousands of packages per host.
func (t invTx) insertSoftware(ctx context.Context, assetID string, sw []inventory.Software) error {
	const per = 9
	const batch = 100 // 900 parameters, under SQLite's default limit
	for start := 0; start < len(sw); start += batch {
		end := min(start+batch, len(sw))
		var (
			sb   strings.Builder
			args = make([]any, 0, (end-start)*per)
		)
		sb.WriteString(`INSERT INTO asset_software (asset_id, ord, name, version, arch, ecosystem, purl, source_name, source_version) VALUES `)
		for i := start; i < end; i++ {
			if i > start {
				sb.WriteByte(',')
			}
			n := len(args)
			fmt.Fprintf(&sb, "($%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9)
			s := sw[i]
			args = append(args, assetID, i, s.Name, s.Version, s.Arch, s.Ecosystem, s.PURL, s.SourceName, s.SourceVersion)
		}
		if _, err := t.tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("store software: %w", translate(err))
		}
	}
	return nil
}

func (t invTx) DeleteAsset(ctx context.Context, id string) error {
	return t.deleteByID(ctx, "assets", "asset", id)
}

func (t *Tx) deleteByID(ctx context.Context, table, what, id string) error {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return notFound(sql.ErrNoRows, what, id)
	}
	return nil
}

const siteCols = `id, name, address, time_zone, created_at`

func (r invReader) GetSite(ctx context.Context, id string) (inventory.Site, error) {
	var s inventory.Site
	err := r.q.QueryRowContext(ctx, `SELECT `+siteCols+` FROM sites WHERE id = $1`, id).Scan(&s.ID, &s.Name, &s.Address, &s.TimeZone, &s.CreatedAt)
	s.CreatedAt = s.CreatedAt.UTC()
	return s, notFoundOrNil(err, "site", id)
}

func (r invReader) ListSites(ctx context.Context) ([]inventory.Site, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+siteCols+` FROM sites ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", translate(err))
	}
	defer rows.Close()
	out := []inventory.Site{}
	for rows.Next() {
		var s inventory.Site
		if err := rows.Scan(&s.ID, &s.Name, &s.Address, &s.TimeZone, &s.CreatedAt); err != nil {
			return nil, err
		}
		s.CreatedAt = s.CreatedAt.UTC()
		out = append(out, s)
	}
	return out, rows.Err()
}

func (t invTx) InsertSite(ctx context.Context, s *inventory.Site) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO sites (`+siteCols+`) VALUES ($1, $2, $3, $4, $5)`, s.ID, s.Name, s.Address, s.TimeZone, s.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("insert site %q: %w", s.Name, translate(err))
	}
	return nil
}

func (t invTx) UpdateSite(ctx context.Context, s *inventory.Site) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE sites SET name = $2, address = $3, time_zone = $4 WHERE id = $1`, s.ID, s.Name, s.Address, s.TimeZone)
	if err != nil {
		return fmt.Errorf("update site %q: %w", s.Name, translate(err))
	}
	return nil
}

func (t invTx) DeleteSite(ctx context.Context, id string) error {
	return t.deleteByID(ctx, "sites", "site", id)
}

const groupCols = `id, name, description, created_at`

func (r invReader) GetGroup(ctx context.Context, id string) (inventory.Group, error) {
	var g inventory.Group
	err := r.q.QueryRowContext(ctx, `SELECT `+groupCols+` FROM asset_groups WHERE id = $1`, id).Scan(&g.ID, &g.Name, &g.Description, &g.CreatedAt)
	g.CreatedAt = g.CreatedAt.UTC()
	return g, notFoundOrNil(err, "group", id)
}

func (r invReader) ListGroups(ctx context.Context) ([]inventory.Group, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+groupCols+` FROM asset_groups ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", translate(err))
	}
	defer rows.Close()
	out := []inventory.Group{}
	for rows.Next() {
		var g inventory.Group
		if err := rows.Scan(&g.ID, &g.Name, &g.Description, &g.CreatedAt); err != nil {
			return nil, err
		}
		g.CreatedAt = g.CreatedAt.UTC()
		out = append(out, g)
	}
	return out, rows.Err()
}

func (t invTx) InsertGroup(ctx context.Context, g *inventory.Group) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO asset_groups (`+groupCols+`) VALUES ($1, $2, $3, $4)`, g.ID, g.Name, g.Description, g.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("insert group %q: %w", g.Name, translate(err))
	}
	return nil
}

func (t invTx) UpdateGroup(ctx context.Context, g *inventory.Group) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE asset_groups SET name = $2, description = $3 WHERE id = $1`, g.ID, g.Name, g.Description)
	if err != nil {
		return fmt.Errorf("update group %q: %w", g.Name, translate(err))
	}
	return nil
}

func (t invTx) DeleteGroup(ctx context.Context, id string) error {
	return t.deleteByID(ctx, "asset_groups", "group", id)
}

// sortKey and searchText are the precomputed listing keys (migration 4):
// the list is ordered by name without case, and the free-text filter looks
// in one lower-cased column instead of six.
func sortKey(a *inventory.Asset) string { return strings.ToLower(a.Name) }

func searchText(a *inventory.Asset) string {
	return strings.ToLower(strings.Join([]string{a.Name, a.Hostname, a.Serial, a.AssetTag, a.Make, a.Model}, "\x1f"))
}

func nullStr(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nullTime(t *time.Time) sql.NullTime {
	if t == nil {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: t.UTC(), Valid: true}
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func notFoundOrNil(err error, what, id string) error {
	if err == nil {
		return nil
	}
	return notFound(err, what, id)
}
