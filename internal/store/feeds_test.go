package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// The matching engine reads advisories, KEV and EPSS through the feed store
// (DB.Feeds returns a feeds.Store).
var _ match.AdvisorySource = feeds.Store(nil)

// feedRecord builds a stored record the way the sync service does.
func feedRecord(t testing.TB, a advisory.Advisory) feeds.Record {
	t.Helper()
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	r := feeds.Record{Key: a.ID, ID: a.ID, Data: data, Idents: []string{strings.ToUpper(a.ID)}}
	for _, al := range a.Aliases {
		r.Idents = append(r.Idents, strings.ToUpper(al))
	}
	for _, af := range a.Affected {
		r.Packages = append(r.Packages, feeds.Package{Ecosystem: af.Ecosystem, Name: af.Package})
	}
	return r
}

func adv(id string, aliases []string, eco, pkg, summary string) advisory.Advisory {
	return advisory.Advisory{ID: id, Source: "osv", Aliases: aliases, Summary: summary,
		Published: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), Modified: time.Date(2024, 2, 3, 0, 0, 0, 0, time.UTC),
		Affected: []advisory.Affected{{Ecosystem: eco, Package: pkg, Vulnerable: true,
			Ranges: []advisory.Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "1.2-3"}}}}}
}

// writeVersion stores one version of feed "osv-test" in one transaction and
// makes it current; base non-zero builds it incrementally.
func writeVersion(ctx context.Context, t *testing.T, fs feeds.Store, feed string, base int64, recs []feeds.Record,
	kev []advisory.KEV, epss []advisory.EPSS) *feeds.Version {
	t.Helper()
	v := &feeds.Version{Feed: feed, BaseID: base, FetchedAt: time.Now(), Source: "testdata", SHA256: fmt.Sprint(time.Now().UnixNano()),
		Advisories: len(recs), KEV: len(kev), EPSS: len(epss)}
	err := fs.Transact(ctx, func(tx feeds.Tx) error {
		if err := tx.UpsertFeed(ctx, feed, feeds.OSV, "testdata"); err != nil {
			return err
		}
		if err := tx.InsertVersion(ctx, v); err != nil {
			return err
		}
		if err := tx.InsertAdvisories(ctx, v.ID, recs); err != nil {
			return err
		}
		if base != 0 {
			n, err := tx.CopyAdvisories(ctx, base, v.ID)
			if err != nil {
				return err
			}
			v.Advisories += n
		}
		if err := tx.InsertKEV(ctx, v.ID, kev); err != nil {
			return err
		}
		if err := tx.InsertEPSS(ctx, v.ID, epss); err != nil {
			return err
		}
		if err := tx.Activate(ctx, v); err != nil {
			return err
		}
		if err := tx.RecordAttempt(ctx, feed, time.Now(), ""); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: audit.System, Action: "feed.sync", ObjectType: "feed", ObjectID: feed})
	})
	if err != nil {
		t.Fatalf("write version of %s: %v", feed, err)
	}
	return v
}

func currentIDs(ctx context.Context, t *testing.T, r feeds.Reader) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := r.CurrentAdvisories(ctx, func(a advisory.Advisory) error { got[a.ID] = a.Summary; return nil }); err != nil {
		t.Fatalf("CurrentAdvisories: %v", err)
	}
	return got
}

func TestFeedsConformance(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		fs := db.Feeds()

		if _, err := fs.State(ctx, "osv-test"); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("State(never synced) = %v; want NotFound", err)
		}
		if st, err := fs.FeedStatus(ctx); err != nil || len(st) != 0 {
			t.Fatalf("FeedStatus() = %v, %v; want empty", st, err)
		}

		v1 := writeVersion(ctx, t, fs, "osv-test", 0, []feeds.Record{
			feedRecord(t, adv("DSA-3029-1", []string{"CVE-2014-3616"}, "Debian:7", "nginx", "nginx v1")),
			feedRecord(t, adv("DLA-3623-1", []string{"CVE-2023-44487"}, "Debian:10", "nghttp2", "nghttp2 v1")),
			feedRecord(t, adv("GHSA-838r-hvwh-24h8", nil, "PyPI", "django", "django v1")),
		}, []advisory.KEV{{CVE: "CVE-2023-44487", VendorProject: "IETF", DateAdded: time.Date(2023, 10, 10, 0, 0, 0, 0, time.UTC), KnownRansomware: false}},
			[]advisory.EPSS{{CVE: "CVE-2014-3616", Score: 0.01, Percentile: 0.5}, {CVE: "CVE-2023-44487", Score: 0.9, Percentile: 0.99}})
		if v1.Number != 1 {
			t.Errorf("first version number = %d; want 1", v1.Number)
		}

		if diff := cmp.Diff(map[string]string{"DSA-3029-1": "nginx v1", "DLA-3623-1": "nghttp2 v1", "GHSA-838r-hvwh-24h8": "django v1"},
			currentIDs(ctx, t, fs)); diff != "" {
			t.Errorf("CurrentAdvisories (-want +got):\n%s", diff)
		}
		for _, tc := range []struct{ q, want string }{
			{"DSA-3029-1", "DSA-3029-1"},
			{"dsa-3029-1", "DSA-3029-1"},
			{"CVE-2014-3616", "DSA-3029-1"},
			{"ghsa-838r-hvwh-24h8", "GHSA-838r-hvwh-24h8"},
		} {
			a, err := fs.Advisory(ctx, tc.q)
			if err != nil || a.ID != tc.want {
				t.Errorf("Advisory(%q) = %q, %v; want %q", tc.q, a.ID, err, tc.want)
			}
		}
		if _, err := fs.Advisory(ctx, "CVE-1999-0001"); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("Advisory(unknown) error = %v; want NotFound", err)
		}

		search := func(q feeds.Query, limit, offset int) (int, []string) {
			t.Helper()
			p, err := fs.SearchAdvisories(ctx, q, limit, offset)
			if err != nil {
				t.Fatalf("SearchAdvisories(%+v): %v", q, err)
			}
			var ids []string
			for _, h := range p.Hits {
				if h.Feed != "osv-test" {
					t.Errorf("hit %s from feed %q; want osv-test", h.Advisory.ID, h.Feed)
				}
				ids = append(ids, h.Advisory.ID)
			}
			return p.Total, ids
		}
		for _, tc := range []struct {
			name          string
			q             feeds.Query
			limit, offset int
			total         int
			want          []string
		}{
			{"all", feeds.Query{}, 10, 0, 3, []string{"DLA-3623-1", "DSA-3029-1", "GHSA-838r-hvwh-24h8"}},
			{"page", feeds.Query{}, 1, 1, 3, []string{"DSA-3029-1"}},
			{"id prefix", feeds.Query{ID: "ds"}, 10, 0, 1, []string{"DSA-3029-1"}},
			{"alias prefix", feeds.Query{ID: "CVE-20"}, 10, 0, 2, []string{"DLA-3623-1", "DSA-3029-1"}},
			{"package", feeds.Query{Package: "nginx"}, 10, 0, 1, []string{"DSA-3029-1"}},
			{"ecosystem family", feeds.Query{Ecosystem: "Debian"}, 10, 0, 2, []string{"DLA-3623-1", "DSA-3029-1"}},
			{"ecosystem exact", feeds.Query{Ecosystem: "Debian:10"}, 10, 0, 1, []string{"DLA-3623-1"}},
			{"package and ecosystem", feeds.Query{Package: "nginx", Ecosystem: "Debian:10"}, 10, 0, 0, nil},
			{"id and package", feeds.Query{ID: "CVE-2023", Package: "nghttp2"}, 10, 0, 1, []string{"DLA-3623-1"}},
			{"no match", feeds.Query{ID: "USN-"}, 10, 0, 0, nil},
			{"count only", feeds.Query{Ecosystem: "PyPI"}, 0, 0, 1, nil},
		} {
			total, ids := search(tc.q, tc.limit, tc.offset)
			if total != tc.total || !cmp.Equal(ids, tc.want) {
				t.Errorf("%s: SearchAdvisories(%+v) = %d %v; want %d %v", tc.name, tc.q, total, ids, tc.total, tc.want)
			}
		}

		kev, err := fs.KEV(ctx)
		if err != nil || len(kev) != 1 || kev["CVE-2023-44487"].VendorProject != "IETF" {
			t.Errorf("KEV() = %v, %v; want CVE-2023-44487 from IETF", kev, err)
		}
		epss, err := fs.EPSS(ctx)
		if err != nil || len(epss) != 2 || epss["CVE-2023-44487"].Percentile != 0.99 {
			t.Errorf("EPSS() = %v, %v; want two scores", epss, err)
		}

		// An incremental version: one record replaced, one added, the rest
		// copied inside the database.
		v2 := writeVersion(ctx, t, fs, "osv-test", v1.ID, []feeds.Record{
			feedRecord(t, adv("DSA-3029-1", []string{"CVE-2014-3616"}, "Debian:7", "nginx", "nginx v2")),
			feedRecord(t, adv("USN-6315-1", nil, "Ubuntu:22.04:LTS", "linux", "linux v2")),
		}, nil, nil)
		if v2.Number != 2 || v2.Advisories != 4 {
			t.Errorf("incremental version = number %d with %d advisories; want 2 with 4", v2.Number, v2.Advisories)
		}
		if diff := cmp.Diff(map[string]string{"DSA-3029-1": "nginx v2", "DLA-3623-1": "nghttp2 v1",
			"GHSA-838r-hvwh-24h8": "django v1", "USN-6315-1": "linux v2"}, currentIDs(ctx, t, fs)); diff != "" {
			t.Errorf("CurrentAdvisories after incremental (-want +got):\n%s", diff)
		}
		if total, ids := search(feeds.Query{ID: "CVE-2023-44487"}, 10, 0); total != 1 || ids[0] != "DLA-3623-1" {
			t.Errorf("copied alias lookup = %d %v; want DLA-3623-1", total, ids)
		}
		if total, _ := search(feeds.Query{Package: "nginx"}, 10, 0); total != 1 {
			t.Errorf("replaced record indexed %d times; want once", total)
		}
		if kev, _ := fs.KEV(ctx); len(kev) != 0 {
			t.Errorf("KEV after a version without KEV rows = %d entries; want 0 (readers see only the current version)", len(kev))
		}

		// A transaction that fails after writing a whole version changes
		// nothing.
		boom := errors.New("boom")
		err = fs.Transact(ctx, func(tx feeds.Tx) error {
			v := &feeds.Version{Feed: "osv-test", FetchedAt: time.Now(), Source: "x"}
			if err := tx.InsertVersion(ctx, v); err != nil {
				return err
			}
			if err := tx.InsertAdvisories(ctx, v.ID, []feeds.Record{feedRecord(t, adv("X-1", nil, "npm", "x", "x"))}); err != nil {
				return err
			}
			if err := tx.Activate(ctx, v); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Transact = %v; want boom", err)
		}
		st, err := fs.State(ctx, "osv-test")
		if err != nil || st.Version != 2 || st.Advisories != 4 || st.VersionID != v2.ID {
			t.Errorf("State after rollback = version %d (%d advisories), %v; want version 2 with 4", st.Version, st.Advisories, err)
		}

		// Duplicate keys within a version are a conflict, never a silent overwrite.
		err = fs.Transact(ctx, func(tx feeds.Tx) error {
			v := &feeds.Version{Feed: "osv-test", FetchedAt: time.Now(), Source: "x"}
			if err := tx.InsertVersion(ctx, v); err != nil {
				return err
			}
			r := feedRecord(t, adv("X-1", nil, "npm", "x", "x"))
			return tx.InsertAdvisories(ctx, v.ID, []feeds.Record{r, r})
		})
		if !errors.Is(err, errs.ErrConflict) {
			t.Errorf("duplicate key insert = %v; want Conflict", err)
		}

		v3 := writeVersion(ctx, t, fs, "osv-test", 0, []feeds.Record{
			feedRecord(t, adv("DSA-3029-1", nil, "Debian:7", "nginx", "nginx v3")),
		}, nil, nil)
		if n, err := fs.Prune(ctx, "osv-test"); err != nil || n != 1 {
			t.Errorf("Prune = %d, %v; want 1 (version 1; 2 is kept as previous)", n, err)
		}
		if n, err := fs.Prune(ctx, "osv-test"); err != nil || n != 0 {
			t.Errorf("second Prune = %d, %v; want 0", n, err)
		}
		st, err = fs.State(ctx, "osv-test")
		if err != nil || st.Version != 3 || st.VersionID != v3.ID || st.Advisories != 1 || st.LastSuccessAt == nil {
			t.Errorf("State = %+v, %v; want version 3 with 1 advisory", st, err)
		}

		err = fs.Transact(ctx, func(tx feeds.Tx) error {
			if id, err := tx.CurrentVersionID(ctx, "osv-test"); err != nil || id != v3.ID {
				return fmt.Errorf("CurrentVersionID = %d, %v; want %d", id, err, v3.ID)
			}
			if err := tx.TouchVersion(ctx, v3.ID, `"etag-2"`, "Mon, 02 Jan 2006 15:04:05 GMT"); err != nil {
				return err
			}
			return tx.RecordAttempt(ctx, "osv-test", time.Now(), "GET https://example.org/x: 503 Service Unavailable")
		})
		if err != nil {
			t.Fatal(err)
		}
		all, err := fs.FeedStatus(ctx)
		if err != nil || len(all) != 1 {
			t.Fatalf("FeedStatus = %v, %v", all, err)
		}
		if s := all[0]; s.ETag != `"etag-2"` || s.LastError == "" || s.Version != 3 || s.Kind != feeds.OSV {
			t.Errorf("FeedStatus()[0] = %+v; want the touched validators and the last error", s)
		}
	})
}

func TestFeedsLock(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		fs := db.Feeds()
		unlock, err := fs.Lock(ctx, "kev")
		if err != nil {
			t.Fatal(err)
		}
		other, err := fs.Lock(ctx, "epss")
		if err != nil {
			t.Fatalf("Lock(another feed) = %v; want nil", err)
		}
		other()
		_, err = fs.Lock(ctx, "kev")
		if db.Engine() == store.Postgres && !errors.Is(err, errs.ErrConflict) {
			t.Errorf("second Lock(kev) on PostgreSQL = %v; want Conflict", err)
		}
		unlock()
		again, err := fs.Lock(ctx, "kev")
		if err != nil {
			t.Fatalf("Lock after unlock = %v", err)
		}
		again()
	})
}

// BenchmarkFeedsEPSSSwap measures the swap of an EPSS-sized version: 300,000
// scores written, made current and the previous version pruned.
func BenchmarkFeedsEPSSSwap(b *testing.B) {
	const rows = 300_000
	scores := make([]advisory.EPSS, rows)
	for i := range scores {
		scores[i] = advisory.EPSS{CVE: fmt.Sprintf("CVE-%d-%05d", 1999+i/20000, i%20000), Score: float64(i%1000) / 1000, Percentile: float64(i) / rows}
	}
	for _, e := range storetest.Engines(b) {
		b.Run(string(e), func(b *testing.B) {
			ctx := context.Background()
			db := storetest.Open(b, e, store.Options{})
			fs := db.Feeds()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				err := fs.Transact(ctx, func(tx feeds.Tx) error {
					if err := tx.UpsertFeed(ctx, "epss", feeds.EPSS, "bench"); err != nil {
						return err
					}
					v := &feeds.Version{Feed: "epss", FetchedAt: time.Now(), Source: "bench", EPSS: rows}
					if err := tx.InsertVersion(ctx, v); err != nil {
						return err
					}
					if err := tx.InsertEPSS(ctx, v.ID, scores); err != nil {
						return err
					}
					return tx.Activate(ctx, v)
				})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := fs.Prune(ctx, "epss"); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
			m, err := fs.EPSS(ctx)
			if err != nil || len(m) != rows {
				b.Fatalf("EPSS() = %d scores, %v; want %d", len(m), err, rows)
			}
		})
	}
}
