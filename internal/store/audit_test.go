package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

var (
	auditAdmin = audit.Actor{Kind: audit.ActorUser, ID: "u1", Name: "admin", Addr: "10.0.0.5"}
	auditTech  = audit.Actor{Kind: audit.ActorUser, ID: "u2", Name: "tech", Addr: "10.0.0.6"}
)

// auditClock ticks one second per call from a fixed instant.
func auditClock() func() time.Time {
	t := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func auditSigner(t testing.TB) *audit.Signer {
	t.Helper()
	skey, err := audit.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// auditFixture holds a log written through the real inventory service: eight
// entries, seqs 0-7, with a signed checkpoint after each of the first seven
// (sizes 1-7) and entry 7 not yet signed, as between two checkpoint ticks.
type auditFixture struct {
	db     *store.DB
	signer *audit.Signer
}

func newAuditFixture(t *testing.T, engine store.Engine) auditFixture {
	t.Helper()
	ctx := context.Background()
	clock := auditClock()
	db := storetest.Open(t, engine, store.Options{Now: clock})
	svc := inventory.NewService(db.Inventory(), clock)
	signer := auditSigner(t)
	cpr := audit.NewCheckpointer(db.Audit(), signer, clock, nil)
	checkpoint := func() {
		t.Helper()
		if _, _, err := cpr.Checkpoint(ctx); err != nil {
			t.Fatalf("Checkpoint: %v", err)
		}
	}
	site, err := svc.CreateSite(ctx, auditAdmin, inventory.Site{Name: "Main Clinic", TimeZone: "Europe/Berlin"}) // 0
	if err != nil {
		t.Fatalf("CreateSite: %v", err)
	}
	checkpoint()
	grp, err := svc.CreateGroup(ctx, auditAdmin, inventory.Group{Name: "Lab"}) // 1
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	checkpoint()
	asset := inventory.Asset{Name: "LIS-01", Type: inventory.TypeServer, Hostname: "lis01", SiteID: site.ID,
		Exposure: inventory.ExposureClinicalVLAN, HandlesPHI: true, Criticality: inventory.LevelCritical,
		SafetyImpact: inventory.SafetyHigh, SupportStatus: inventory.SupportSupported, Groups: []string{grp.ID}}
	a, err := svc.CreateAsset(ctx, auditAdmin, asset) // 2
	if err != nil {
		t.Fatalf("CreateAsset: %v", err)
	}
	checkpoint()
	a.OSVersion = "12"
	if a, err = svc.UpdateAsset(ctx, auditTech, a.ID, a); err != nil { // 3
		t.Fatalf("UpdateAsset: %v", err)
	}
	checkpoint()
	asset.Name, asset.Hostname = "PACS-01", "pacs01"
	b, err := svc.CreateAsset(ctx, auditTech, asset) // 4
	if err != nil {
		t.Fatalf("CreateAsset: %v", err)
	}
	checkpoint()
	if _, err := svc.UpdateSite(ctx, auditAdmin, site.ID, inventory.Site{Name: "Main Clinic", Address: "Hauptstr. 1", TimeZone: "Europe/Berlin"}); err != nil { // 5
		t.Fatalf("UpdateSite: %v", err)
	}
	checkpoint()
	if err := svc.DeleteAsset(ctx, auditAdmin, b.ID, "decommissioned"); err != nil { // 6
		t.Fatalf("DeleteAsset: %v", err)
	}
	checkpoint()
	if _, err := svc.UpdateGroup(ctx, auditTech, grp.ID, inventory.Group{Name: "Laboratory"}); err != nil { // 7
		t.Fatalf("UpdateGroup: %v", err)
	}
	head, err := db.Audit().Head(ctx)
	if err != nil || head.Size != 8 {
		t.Fatalf("audit head size = %d, %v; want 8 (one entry per mutation)", head.Size, err)
	}
	return auditFixture{db: db, signer: signer}
}

func (f auditFixture) verify(ctx context.Context) (audit.Result, error) {
	return audit.NewService(f.db.Audit(), f.signer.Verifier(), nil).Verify(ctx)
}

func (f auditFixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if err := f.db.ExecRaw(context.Background(), q, args...); err != nil {
		t.Fatalf("ExecRaw(%q): %v", q, err)
	}
}

// disableTriggers does what a hostile database administrator does first.
func (f auditFixture) disableTriggers(t *testing.T) {
	t.Helper()
	if f.db.Engine() == store.Postgres {
		f.exec(t, `ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_change`)
		return
	}
	f.exec(t, `DROP TRIGGER audit_entries_no_update`)
	f.exec(t, `DROP TRIGGER audit_entries_no_delete`)
}

func (f auditFixture) entries(t *testing.T) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for e, err := range f.db.Audit().Entries(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// recordOf turns a stored entry back into the record that produced it.
func recordOf(e audit.Entry) audit.Record {
	rec := audit.Record{Actor: e.Actor, Action: e.Action, ObjectType: e.ObjectType, ObjectID: e.ObjectID, Reason: e.Reason}
	if len(e.Before) > 0 {
		rec.Before = e.Before
	}
	if len(e.After) > 0 {
		rec.After = e.After
	}
	return rec
}

// rewrite replaces the log with es, every hash and the head recomputed so
// that each entry, link and stored root is consistent: the most careful
// rewrite someone with database access and our source code can make.
func (f auditFixture) rewrite(t *testing.T, es []audit.Entry) {
	t.Helper()
	f.exec(t, `DELETE FROM audit_entries`)
	var head audit.Head
	for i, e := range es {
		ne, next, err := audit.Next(head, recordOf(e), e.At)
		if err != nil {
			t.Fatalf("rewrite %d: %v", i, err)
		}
		f.insert(t, ne)
		head = next
	}
	f.setHead(t, head)
}

func (f auditFixture) insert(t *testing.T, e audit.Entry) {
	t.Helper()
	f.exec(t, `INSERT INTO audit_entries (seq, at_us, actor_kind, actor_id, actor_name, actor_addr, action,
		object_type, object_id, before_json, after_json, reason, prev_hash, leaf_hash, root_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		e.Seq, e.At.UnixMicro(), e.Actor.Kind, e.Actor.ID, e.Actor.Name, e.Actor.Addr, e.Action, e.ObjectType,
		e.ObjectID, nullable(e.Before), nullable(e.After), e.Reason, e.PrevHash, e.LeafHash, e.RootHash)
}

func nullable(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

func (f auditFixture) setHead(t *testing.T, h audit.Head) {
	t.Helper()
	last := h.LastLeaf
	if last == nil {
		last = []byte{}
	}
	f.exec(t, `UPDATE audit_head SET size = $1, hashes = $2, last_leaf = $3 WHERE id = 1`,
		h.Size, append([]byte{}, bytes.Join(h.Range, nil)...), last)
}

// shift moves entries with seq >= from by delta in two steps, because both
// engines check the primary key row by row.
func (f auditFixture) shift(t *testing.T, from, delta int64) {
	t.Helper()
	f.exec(t, `UPDATE audit_entries SET seq = seq + 1000000 WHERE seq >= $1`, from)
	f.exec(t, `UPDATE audit_entries SET seq = seq - 1000000 + $1 WHERE seq >= 1000000`, delta)
}

// TestAuditAppendOnly checks the triggers refuse an application-level edit.
func TestAuditAppendOnly(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			f := newAuditFixture(t, engine)
			ctx := context.Background()
			if err := f.db.ExecRaw(ctx, `UPDATE audit_entries SET action = 'x' WHERE seq = 1`); err == nil {
				t.Errorf("UPDATE audit_entries = nil; want the append-only trigger to refuse")
			}
			if err := f.db.ExecRaw(ctx, `DELETE FROM audit_entries WHERE seq = 1`); err == nil {
				t.Errorf("DELETE FROM audit_entries = nil; want the append-only trigger to refuse")
			}
		})
	}
}

// TestAuditTamper is the tamper suite: each kind of tampering, done with raw
// SQL after disabling the append-only triggers, must fail verification and
// name the first bad entry (or checkpoint); the untouched log must pass.
func TestAuditTamper(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, f auditFixture)
		want   *audit.VerifyError // nil: verification passes
	}{
		{"untouched", func(t *testing.T, f auditFixture) {}, nil},
		{"alter after_json", func(t *testing.T, f auditFixture) {
			f.exec(t, `UPDATE audit_entries SET after_json = replace(after_json, 'LIS-01', 'LIS-99') WHERE seq = 2`)
		}, &audit.VerifyError{Seq: 2, Problem: audit.ProblemLeafHash}},
		{"alter actor_name", func(t *testing.T, f auditFixture) {
			f.exec(t, `UPDATE audit_entries SET actor_name = 'admin' WHERE seq = 4`)
		}, &audit.VerifyError{Seq: 4, Problem: audit.ProblemLeafHash}},
		{"alter at_us", func(t *testing.T, f auditFixture) {
			f.exec(t, `UPDATE audit_entries SET at_us = at_us - 3600000000 WHERE seq = 3`)
		}, &audit.VerifyError{Seq: 3, Problem: audit.ProblemLeafHash}},
		{"alter action", func(t *testing.T, f auditFixture) {
			f.exec(t, `UPDATE audit_entries SET action = 'asset.view' WHERE seq = 6`)
		}, &audit.VerifyError{Seq: 6, Problem: audit.ProblemLeafHash}},
		{"alter unsigned entry", func(t *testing.T, f auditFixture) {
			f.exec(t, `UPDATE audit_entries SET reason = 'routine' WHERE seq = 7`)
		}, &audit.VerifyError{Seq: 7, Problem: audit.ProblemLeafHash}},
		{"alter prev_hash", func(t *testing.T, f auditFixture) {
			f.exec(t, `UPDATE audit_entries SET prev_hash = leaf_hash WHERE seq = 5`)
		}, &audit.VerifyError{Seq: 5, Problem: audit.ProblemPrevHash}},
		{"alter content and recompute all hashes", func(t *testing.T, f auditFixture) {
			es := f.entries(t)
			es[3].After = bytes.Replace(es[3].After, []byte(`"12"`), []byte(`"11"`), 1)
			f.rewrite(t, es)
		}, &audit.VerifyError{Seq: 3, Checkpoint: 4, Problem: audit.ProblemCheckpointRoot}},
		{"delete an entry", func(t *testing.T, f auditFixture) {
			f.exec(t, `DELETE FROM audit_entries WHERE seq = 5`)
		}, &audit.VerifyError{Seq: 5, Problem: audit.ProblemMissing}},
		{"delete an entry and renumber with recomputed hashes", func(t *testing.T, f auditFixture) {
			es := f.entries(t)
			es = append(es[:2], es[3:]...)
			for i := range es {
				es[i].Seq = int64(i)
			}
			f.rewrite(t, es)
		}, &audit.VerifyError{Seq: 2, Checkpoint: 3, Problem: audit.ProblemCheckpointRoot}},
		{"delete the last entries and roll back the head", func(t *testing.T, f auditFixture) {
			es := f.entries(t)
			f.rewrite(t, es[:5])
		}, &audit.VerifyError{Seq: 5, Checkpoint: 6, Problem: audit.ProblemMissing}},
		{"delete the last entry, head untouched", func(t *testing.T, f auditFixture) {
			f.exec(t, `DELETE FROM audit_entries WHERE seq = 7`)
		}, &audit.VerifyError{Seq: 7, Problem: audit.ProblemMissing}},
		{"insert an entry in the middle", func(t *testing.T, f auditFixture) {
			es := f.entries(t)
			f.shift(t, 4, 1)
			forged := es[3]
			forged.Seq, forged.Actor.Name = 4, "admin"
			f.insert(t, forged)
		}, &audit.VerifyError{Seq: 4, Problem: audit.ProblemPrevHash}},
		{"append a well-formed entry outside Patchward", func(t *testing.T, f auditFixture) {
			head, err := f.db.Audit().Head(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			e, _, err := audit.Next(head, audit.Record{Actor: auditAdmin, Action: "asset.delete", ObjectType: "asset", ObjectID: "x"}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			f.insert(t, e)
		}, &audit.VerifyError{Seq: 8, Problem: audit.ProblemUnrecorded}},
		{"swap two entries", func(t *testing.T, f auditFixture) {
			f.exec(t, `UPDATE audit_entries SET seq = -1 WHERE seq = 2`)
			f.exec(t, `UPDATE audit_entries SET seq = 2 WHERE seq = 5`)
			f.exec(t, `UPDATE audit_entries SET seq = 5 WHERE seq = -1`)
		}, &audit.VerifyError{Seq: 2, Problem: audit.ProblemPrevHash}},
		{"swap two entries with recomputed hashes", func(t *testing.T, f auditFixture) {
			es := f.entries(t)
			es[4], es[5] = es[5], es[4]
			es[4].Seq, es[5].Seq = 4, 5
			f.rewrite(t, es)
		}, &audit.VerifyError{Seq: 4, Checkpoint: 5, Problem: audit.ProblemCheckpointRoot}},
		{"alter a checkpoint's note", func(t *testing.T, f auditFixture) {
			f.exec(t, `UPDATE audit_checkpoints SET note = replace(note, $1, $2) WHERE size = 4`, "\n4\n", "\n3\n")
		}, &audit.VerifyError{Seq: -1, Checkpoint: 4, Problem: audit.ProblemCheckpointSignature}},
		{"alter a checkpoint's root", func(t *testing.T, f auditFixture) {
			f.exec(t, `UPDATE audit_checkpoints SET root_hash = (SELECT root_hash FROM audit_entries WHERE seq = 0) WHERE size = 4`)
		}, &audit.VerifyError{Seq: -1, Checkpoint: 4, Problem: audit.ProblemCheckpointRow}},
		{"replace a checkpoint with one signed by another key", func(t *testing.T, f auditFixture) {
			es := f.entries(t)
			note, err := auditSigner(t).Sign(6, es[5].RootHash)
			if err != nil {
				t.Fatal(err)
			}
			f.exec(t, `UPDATE audit_checkpoints SET note = $1 WHERE size = 6`, note)
		}, &audit.VerifyError{Seq: -1, Checkpoint: 6, Problem: audit.ProblemCheckpointSignature}},
		{"alter the head", func(t *testing.T, f auditFixture) {
			f.exec(t, `UPDATE audit_head SET last_leaf = (SELECT leaf_hash FROM audit_entries WHERE seq = 0)`)
		}, &audit.VerifyError{Seq: -1, Problem: audit.ProblemHead}},
	}
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ctx := context.Background()
					f := newAuditFixture(t, engine)
					f.disableTriggers(t)
					tt.tamper(t, f)
					res, err := f.verify(ctx)
					if tt.want == nil {
						if err != nil || res.Entries != 8 || res.Checkpoints != 7 {
							t.Fatalf("Verify() = %+v, %v; want 8 entries, 7 checkpoints, nil", res, err)
						}
						return
					}
					var ve *audit.VerifyError
					if !errors.As(err, &ve) {
						t.Fatalf("Verify() = %v; want a *VerifyError", err)
					}
					if ve.Seq != tt.want.Seq || ve.Checkpoint != tt.want.Checkpoint || ve.Problem != tt.want.Problem {
						t.Errorf("Verify() = seq %d, checkpoint %d, %v (%v); want seq %d, checkpoint %d, %v",
							ve.Seq, ve.Checkpoint, ve.Problem, err, tt.want.Seq, tt.want.Checkpoint, tt.want.Problem)
					}
					// A running Checkpointer must refuse to sign it too.
					cpr := audit.NewCheckpointer(f.db.Audit(), f.signer, nil, nil)
					if _, made, err := cpr.Checkpoint(ctx); made || !errors.Is(err, audit.ErrTampered) {
						t.Errorf("Checkpoint() = %v, %v; want false, ErrTampered", made, err)
					}
				})
			}
		})
	}
}

func TestAuditList(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			f := newAuditFixture(t, engine)
			svc := audit.NewService(f.db.Audit(), f.signer.Verifier(), nil)
			all := f.entries(t)
			seqs := func(p audit.Page) []int64 {
				var s []int64
				for _, e := range p.Entries {
					s = append(s, e.Seq)
				}
				return s
			}
			tests := []struct {
				name  string
				q     audit.Query
				want  []int64
				total int
			}{
				{"all, newest first", audit.Query{}, []int64{7, 6, 5, 4, 3, 2, 1, 0}, 8},
				{"page", audit.Query{Limit: 3, Offset: 2}, []int64{5, 4, 3}, 8},
				{"object type", audit.Query{ObjectType: "site"}, []int64{5, 0}, 2},
				{"object", audit.Query{ObjectType: "asset", ObjectID: all[2].ObjectID}, []int64{3, 2}, 2},
				{"related objects", audit.Query{ObjectIDs: []string{all[2].ObjectID, all[5].ObjectID}}, []int64{5, 3, 2, 0}, 4},
				{"actor by name", audit.Query{Actor: "tech"}, []int64{7, 4, 3}, 3},
				{"actor by id", audit.Query{Actor: "u2"}, []int64{7, 4, 3}, 3},
				{"action", audit.Query{Action: "asset.create"}, []int64{4, 2}, 2},
				{"time range", audit.Query{From: all[2].At, To: all[5].At}, []int64{4, 3, 2}, 3},
			}
			for _, tt := range tests {
				p, err := svc.List(ctx, tt.q)
				if err != nil {
					t.Fatalf("List(%s) = %v", tt.name, err)
				}
				if diff := cmp.Diff(tt.want, seqs(p)); diff != "" || p.Total != tt.total {
					t.Errorf("List(%s) = %v (total %d); want %v (total %d)", tt.name, seqs(p), p.Total, tt.want, tt.total)
				}
			}
			p, err := svc.List(ctx, audit.Query{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(all[7], p.Entries[0]); diff != "" {
				t.Errorf("listed entry differs from streamed one (-stream +list):\n%s", diff)
			}
			if _, err := svc.List(ctx, audit.Query{Offset: -1}); err == nil {
				t.Errorf("List(offset -1) = nil error; want Invalid")
			}
		})
	}
}

func TestAuditExport(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			f := newAuditFixture(t, engine)
			svc := audit.NewService(f.db.Audit(), f.signer.Verifier(), nil)
			all := f.entries(t)
			// Entry 7 is not covered by a checkpoint yet, so it is left out.
			b, err := svc.Export(ctx, all[1].At, all[7].At.Add(time.Second))
			if err != nil {
				t.Fatalf("Export() = %v", err)
			}
			if len(b.Entries) != 6 || b.Entries[0].Seq != 1 {
				t.Fatalf("Export() = %d entries from %d; want 6 from 1", len(b.Entries), b.Entries[0].Seq)
			}
			var buf bytes.Buffer
			if err := json.NewEncoder(&buf).Encode(b); err != nil {
				t.Fatal(err)
			}
			parsed, err := audit.ParseBundle(&buf)
			if err != nil {
				t.Fatalf("ParseBundle() = %v", err)
			}
			if res, err := audit.VerifyBundle(parsed, f.signer.Verifier()); err != nil || res.CheckpointSize != 7 {
				t.Errorf("VerifyBundle() = %+v, %v; want checkpoint size 7, nil", res, err)
			}
		})
	}
}

// BenchmarkAuditAppend measures appends through Transact, one entry per
// transaction as a domain service makes them, on a SQLite file and, when
// PATCHWARD_TEST_POSTGRES is set, on PostgreSQL.
func BenchmarkAuditAppend(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(string(engine), func(b *testing.B) {
			ctx := context.Background()
			db := storetest.Open(b, engine, store.Options{})
			var i int
			for b.Loop() {
				err := db.Transact(ctx, func(tx *store.Tx) error {
					rec, _ := benchRecord(int64(i))
					return tx.AppendAudit(ctx, rec)
				})
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

func benchRecord(i int64) (audit.Record, time.Time) {
	id := strconv.FormatInt(i%5000, 10)
	return audit.Record{
		Actor:  audit.Actor{Kind: audit.ActorUser, ID: "u" + strconv.FormatInt(i%17, 10), Name: "user", Addr: "10.1.2.3"},
		Action: "asset.update", ObjectType: "asset", ObjectID: "asset-" + id,
		Before: json.RawMessage(`{"id":"asset-` + id + `","criticality":"high","rev":` + strconv.FormatInt(i, 10) + `}`),
		After:  json.RawMessage(`{"id":"asset-` + id + `","criticality":"critical","rev":` + strconv.FormatInt(i+1, 10) + `}`),
	}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
}

// fillAudit writes n valid entries (built with audit.Next) straight into the
// tables in multi-row batches, with a signed checkpoint every 1000 entries:
// far faster than n transactions, and the result is the same log.
func fillAudit(tb testing.TB, db *store.DB, s *audit.Signer, n int64) {
	tb.Helper()
	ctx := context.Background()
	// 1000 rows per INSERT is 15,000 parameters, under both engines' limits.
	// SQLite resolves each named parameter ($N) by a linear search, so big
	// statements there use anonymous ones (?) instead.
	const rows = 1000
	placeholders := "($%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d),"
	if db.Engine() == store.SQLite {
		placeholders = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?),"
	}
	var (
		head audit.Head
		sql  strings.Builder
		args []any
	)
	flush := func() {
		if len(args) == 0 {
			return
		}
		if err := db.ExecRaw(ctx, strings.TrimSuffix(sql.String(), ","), args...); err != nil {
			tb.Fatalf("fill audit log: %v", err)
		}
		sql.Reset()
		args = args[:0]
	}
	for i := range n {
		if len(args) == 0 {
			sql.WriteString(`INSERT INTO audit_entries (seq, at_us, actor_kind, actor_id, actor_name, actor_addr,
				action, object_type, object_id, before_json, after_json, reason, prev_hash, leaf_hash, root_hash) VALUES `)
		}
		rec, at := benchRecord(i)
		e, next, err := audit.Next(head, rec, at)
		if err != nil {
			tb.Fatal(err)
		}
		head = next
		k := len(args)
		if db.Engine() == store.SQLite {
			sql.WriteString(placeholders)
		} else {
			fmt.Fprintf(&sql, placeholders, k+1, k+2, k+3, k+4, k+5, k+6, k+7, k+8, k+9, k+10, k+11, k+12, k+13, k+14, k+15)
		}
		args = append(args, e.Seq, e.At.UnixMicro(), e.Actor.Kind, e.Actor.ID, e.Actor.Name, e.Actor.Addr,
			e.Action, e.ObjectType, e.ObjectID, string(e.Before), string(e.After), e.Reason, e.PrevHash,
			e.LeafHash, e.RootHash)
		if (i+1)%rows == 0 {
			flush()
			note, err := s.Sign(i+1, e.RootHash)
			if err != nil {
				tb.Fatal(err)
			}
			if err := db.Audit().InsertCheckpoint(ctx, audit.Checkpoint{Size: i + 1, Root: e.RootHash, Note: note, CreatedAt: at}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	flush()
	if err := db.ExecRaw(ctx, `UPDATE audit_head SET size = $1, hashes = $2, last_leaf = $3 WHERE id = 1`,
		head.Size, bytes.Join(head.Range, nil), head.LastLeaf); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkAuditVerifyDB verifies a log of PATCHWARD_BENCH_AUDIT_ENTRIES
// entries (default 1,000,000) read from the database, one subbenchmark per
// engine. Filling the log is set-up and not timed.
func BenchmarkAuditVerifyDB(b *testing.B) {
	n := int64(1_000_000)
	if v := os.Getenv("PATCHWARD_BENCH_AUDIT_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.ParseInt(v, 10, 64); err != nil {
			b.Fatalf("PATCHWARD_BENCH_AUDIT_ENTRIES: %v", err)
		}
	}
	for _, engine := range storetest.Engines(b) {
		b.Run(fmt.Sprintf("%s/entries=%d", engine, n), func(b *testing.B) {
			ctx := context.Background()
			dsn := storetest.DSN(b, engine)
			db := storetest.OpenDSN(b, dsn, store.Options{})
			s := auditSigner(b)
			start := time.Now()
			fillAudit(b, db, s, n)
			b.Logf("filled %d entries in %v", n, time.Since(start))
			if engine == store.SQLite {
				if st, err := os.Stat(filepath.Clean(dsn)); err == nil {
					b.Logf("database file %d MB", st.Size()>>20)
				}
			}
			svc := audit.NewService(db.Audit(), s.Verifier(), nil)
			for b.Loop() {
				res, err := svc.Verify(ctx)
				if err != nil || res.Entries != n {
					b.Fatalf("Verify() = %+v, %v", res, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
