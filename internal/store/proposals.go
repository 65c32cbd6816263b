package store

import (
	"context"
	"fmt"
	"time"

	"github.com/patchward/patchward/internal/change"
)

// Proposals returns the read behind emergency proposals.
func (db *DB) Proposals() change.ProposalStore { return proposalStore{db: db} }

type proposalStore struct{ db *DB }

// notLinked is the "no live change links the finding" test: a cancelled
// change never ran, and a rolled-back one left the finding as it was, so
// neither covers it.
// Change records keep their linked findings only in the document, so each
// engine reads the JSON array its own way; changes are few next to
// findings, and the candidates are already narrowed to open top-tier KEV
// findings when this runs.
var notLinked = map[Engine]string{
	SQLite: `NOT EXISTS (SELECT 1 FROM changes c, json_each(c.doc, '$.findings') j
		WHERE c.state NOT IN ('cancelled', 'rolled_back') AND j.value = f.id)`,
	Postgres: `NOT EXISTS (SELECT 1 FROM changes c
		WHERE c.state NOT IN ('cancelled', 'rolled_back') AND (c.doc::jsonb -> 'findings') @> jsonb_build_array(f.id))`,
}

// KEVTopTier reads one row per qualifying risk event; the caller groups
// them. Event times are read as rows, not aggregated, because SQLite
// returns an aggregate of a TIMESTAMP column as text.
func (s proposalStore) KEVTopTier(ctx context.Context, topTier string, since time.Time) ([]change.KEVFinding, error) {
	q := `SELECT f.id, f.asset_id, COALESCE(a.name, ''), f.vuln_id, f.ecosystem, f.package, f.version, f.fixed_version,
			f.fix_note, fr.tier, fr.score, e.at
		FROM finding_risk fr
		JOIN findings f ON f.id = fr.finding_id
		JOIN finding_risk_events e ON e.finding_id = fr.finding_id
		LEFT JOIN assets a ON a.id = f.asset_id
		WHERE fr.status = 'open' AND f.state = 'open' AND fr.tier_rank = 0 AND fr.tier = $1
			AND e.tier = $1 AND e.at >= $2 AND e.reason LIKE $3
			AND ` + notLinked[s.db.engine] + `
		ORDER BY f.vuln_id, f.id, e.at`
	rows, err := s.db.r.QueryContext(ctx, q, topTier, since.UTC(), "%"+change.KEVReason+"%")
	if err != nil {
		return nil, fmt.Errorf("read KEV top-tier findings: %w", translate(err))
	}
	defer rows.Close()
	var out []change.KEVFinding
	for rows.Next() {
		var k change.KEVFinding
		if err := rows.Scan(&k.FindingID, &k.AssetID, &k.AssetName, &k.VulnID, &k.Ecosystem, &k.Package, &k.Version,
			&k.FixedVersion, &k.FixNote, &k.Tier, &k.Score, &k.EnteredAt); err != nil {
			return nil, fmt.Errorf("read KEV top-tier findings: %w", translate(err))
		}
		k.EnteredAt = k.EnteredAt.UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read KEV top-tier findings: %w", translate(err))
	}
	return out, nil
}
