package feeds_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

var tester = audit.Actor{Kind: audit.ActorSystem, ID: "cli", Name: "cli:test"}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func localFeed(name string, kind feeds.Kind, path string) feeds.Feed {
	return feeds.Feed{Name: name, Kind: kind, Path: path, Interval: time.Hour, Timeout: time.Minute, MaxBytes: 64 << 20}
}

func newService(db *store.DB) *feeds.Service {
	return feeds.NewService(db.Feeds(), feeds.Options{Fetcher: &feeds.Fetcher{Backoff: time.Millisecond, NVDPageDelay: -1}})
}

// snapshot is everything a reader can see of the feeds, to prove a failed
// sync changed nothing.
type snapshot struct {
	Status     []feeds.Status
	Advisories []string
	KEV, EPSS  int
}

func snap(t *testing.T, r feeds.Reader) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	if s.Status, err = r.FeedStatus(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range s.Status {
		// Attempt bookkeeping is allowed to change; the data is not.
		s.Status[i].LastAttemptAt, s.Status[i].LastError, s.Status[i].Source = nil, "", ""
	}
	if err := r.CurrentAdvisories(ctx, func(a advisory.Advisory) error {
		s.Advisories = append(s.Advisories, a.ID+" "+a.Modified.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	kev, err := r.KEV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	epss, err := r.EPSS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.KEV, s.EPSS = len(kev), len(epss)
	return s
}

func auditActions(t *testing.T, db *store.DB, feed string) []string {
	t.Helper()
	p, err := db.Audit().List(context.Background(), audit.Query{ObjectType: "feed", ObjectID: feed, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(p.Entries) - 1; i >= 0; i-- {
		out = append(out, p.Entries[i].Action)
	}
	return out
}

// TestSyncLocalFeeds ingests every kind from the real files in testdata and
// checks facts the files state.
func TestSyncLocalFeeds(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc := newService(db)
		fs := db.Feeds()
		for _, tc := range []struct {
			feed       feeds.Feed
			advisories int
			kev, epss  int
		}{
			{localFeed("osv-dir", feeds.OSV, "testdata/osv"), 6, 0, 0},
			{localFeed("kev", feeds.KEV, "testdata/kev/known_exploited_vulnerabilities.json"), 0, 1404, 0},
			{localFeed("nvd-page", feeds.NVD, "testdata/nvd/vunnel_nvd_full-page.json"), 38, 0, 0},
			{localFeed("epss", feeds.EPSS, "testdata/epss/example-1.csv"), 0, 0, 5},
			{localFeed("icsma", feeds.CSAF, "testdata/csaf"), 1, 0, 0},
		} {
			res, err := svc.Sync(ctx, tester, tc.feed, feeds.SyncOptions{})
			if err != nil {
				t.Fatalf("Sync(%s): %v", tc.feed.Name, err)
			}
			want := feeds.Result{Feed: tc.feed.Name, Outcome: feeds.Updated, Version: 1, Advisories: tc.advisories, KEV: tc.kev, EPSS: tc.epss}
			res.State = feeds.Status{}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("Sync(%s) (-want +got):\n%s", tc.feed.Name, diff)
			}
			// The same content again is recognised by its hash.
			res, err = svc.Sync(ctx, tester, tc.feed, feeds.SyncOptions{})
			if err != nil || res.Outcome != feeds.Unchanged || res.Version != 1 {
				t.Errorf("second Sync(%s) = %s version %d, %v; want unchanged version 1", tc.feed.Name, res.Outcome, res.Version, err)
			}
			if got, want := auditActions(t, db, tc.feed.Name), []string{"feed.sync", "feed.sync"}; !cmp.Equal(got, want) {
				t.Errorf("audit of %s = %v; want %v", tc.feed.Name, got, want)
			}
		}

		kev, err := fs.KEV(ctx)
		if err != nil {
			t.Fatal(err)
		}
		git := kev["CVE-2025-48384"]
		if git.VendorProject != "Git" || !git.DateAdded.Equal(time.Date(2025, 8, 25, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("KEV CVE-2025-48384 = %+v; want Git, added 2025-08-25", git)
		}
		epss, err := fs.EPSS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e := epss["CVE-1999-0005"]; e.Score != 0.91963 || e.Percentile != 0.99214 {
			t.Errorf("EPSS CVE-1999-0005 = %+v; want 0.91963 / 0.99214", e)
		}
		a, err := fs.Advisory(ctx, "cve-2014-3616")
		if err != nil || a.ID != "DSA-3029-1" || a.Affected[0].Package != "nginx" {
			t.Errorf("Advisory(cve-2014-3616) = %s %v; want DSA-3029-1 for nginx", a.ID, err)
		}
		if a.Affected[0].Ranges[0].Fixed != "1.2.1-2.2+wheezy3" {
			t.Errorf("DSA-3029-1 fixed = %q; want 1.2.1-2.2+wheezy3", a.Affected[0].Ranges[0].Fixed)
		}
		page, err := fs.SearchAdvisories(ctx, feeds.Query{Ecosystem: "AlmaLinux"}, 10, 0)
		if err != nil || page.Total != 1 || page.Hits[0].Advisory.ID != "ALSA-2022:8194" || page.Hits[0].Feed != "osv-dir" {
			t.Errorf("search AlmaLinux = %+v, %v; want ALSA-2022:8194 from osv-dir", page, err)
		}
		if p, err := fs.SearchAdvisories(ctx, feeds.Query{ID: "CVE-2023-3090"}, 10, 0); err != nil || p.Total != 1 || p.Hits[0].Advisory.ID != "DLA-3623-1" {
			t.Errorf("search by the upstream CVE of DLA-3623-1 = %+v, %v; want DLA-3623-1", p, err)
		}
		if _, err := fs.Advisory(ctx, "CVE-2023-27314"); err != nil {
			t.Errorf("Advisory(CVE-2023-27314) from the NVD page: %v", err)
		}
		st, err := svc.State(ctx, "kev")
		if err != nil || st.Meta.KEVCatalogVersion != "2025.08.25" || st.LastError != "" || st.SHA256 == "" {
			t.Errorf("State(kev) = %+v, %v; want catalog 2025.08.25", st, err)
		}
		n := 0
		if err := fs.CurrentAdvisories(ctx, func(advisory.Advisory) error { n++; return nil }); err != nil || n != 6+38+1 {
			t.Errorf("CurrentAdvisories = %d, %v; want %d", n, err, 6+38+1)
		}
	})
}

// TestSyncArchives reads OSV records from a zip (the shape of OSV's
// per-ecosystem all.zip), EPSS from a .csv.gz, and CSAF from a tar.gz
// provider directory whose ROLIE feed file is skipped by default.
func TestSyncArchives(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		svc := newService(db)

		var zbuf bytes.Buffer
		zw := zip.NewWriter(&zbuf)
		entries, _ := os.ReadDir("testdata/osv")
		for _, e := range entries {
			w, _ := zw.Create(e.Name())
			w.Write(readTestdata(t, "osv/"+e.Name()))
		}
		w, _ := zw.Create("README.txt") // not a record: ignored by name
		w.Write([]byte("hello"))
		w, _ = zw.Create("schema.json") // JSON but no feed format: skipped
		w.Write([]byte(`{"$schema": "https://json-schema.org/draft/2020-12/schema"}`))
		zw.Close()
		zipPath := writeFile(t, dir, "all.zip", zbuf.Bytes())

		var gbuf bytes.Buffer
		gw := gzip.NewWriter(&gbuf)
		gw.Write(readTestdata(t, "epss/example-1.csv"))
		gw.Close()
		gzPath := writeFile(t, dir, "epss_scores-current.csv.gz", gbuf.Bytes())

		var tbuf bytes.Buffer
		gw = gzip.NewWriter(&tbuf)
		tw := tar.NewWriter(gw)
		for name, data := range map[string][]byte{
			"csaf_files/OT/white/2018/icsma-18-240-01.json":        readTestdata(t, "csaf/icsma-18-240-01.json"),
			"csaf_files/OT/white/cisa-csaf-ot-feed-tlp-white.json": []byte(`{"feed": {"id": "rolie"}}`),
			"csaf_files/OT/white/index.txt":                        []byte("2018/icsma-18-240-01.json\n"),
		} {
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
			tw.Write(data)
		}
		tw.Close()
		gw.Close()
		tarPath := writeFile(t, dir, "csaf.tar.gz", tbuf.Bytes())

		for _, tc := range []struct {
			feed  feeds.Feed
			count func(feeds.Result) int
			want  int
		}{
			{localFeed("osv-zip", feeds.OSV, zipPath), func(r feeds.Result) int { return r.Advisories*10 + r.State.Meta.Skipped }, 61},
			{localFeed("epss-gz", feeds.EPSS, gzPath), func(r feeds.Result) int { return r.EPSS }, 5},
			{localFeed("csaf-tar", feeds.CSAF, tarPath), func(r feeds.Result) int { return r.Advisories }, 1},
		} {
			res, err := svc.Sync(ctx, tester, tc.feed, feeds.SyncOptions{})
			if err != nil || tc.count(res) != tc.want {
				t.Errorf("Sync(%s) = %+v, %v; want %d records", tc.feed.Name, res, err, tc.want)
			}
		}
	})
}

// kevServer serves a KEV catalog with validators and counts what it saw.
type kevServer struct {
	body         atomic.Pointer[[]byte]
	etag         atomic.Pointer[string]
	requests     atomic.Int32
	conditionals atomic.Int32
	notModified  atomic.Int32
}

func (s *kevServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	etag := *s.etag.Load()
	lm := "Mon, 25 Aug 2025 17:04:19 GMT"
	if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
		s.conditionals.Add(1)
	}
	if r.Header.Get("If-None-Match") == etag {
		s.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", lm)
	w.Header().Set("Content-Type", "application/json")
	w.Write(*s.body.Load())
}

func TestSyncHTTPConditional(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		full := readTestdata(t, "kev/known_exploited_vulnerabilities.json")
		srv := &kevServer{}
		srv.body.Store(&full)
		etag := `"v1"`
		srv.etag.Store(&etag)
		ts := httptest.NewServer(srv)
		defer ts.Close()
		svc := newService(db)
		f := feeds.Feed{Name: "kev", Kind: feeds.KEV, URL: ts.URL + "/feeds/known_exploited_vulnerabilities.json",
			Interval: time.Hour, Timeout: time.Minute, MaxBytes: 16 << 20}

		res, err := svc.Sync(ctx, tester, f, feeds.SyncOptions{})
		if err != nil || res.Outcome != feeds.Updated || res.KEV != 1404 {
			t.Fatalf("first Sync = %+v, %v; want updated with 1404 KEV entries", res, err)
		}
		if res.State.ETag != `"v1"` || res.State.LastModified == "" {
			t.Errorf("stored validators = %q, %q; want the server's", res.State.ETag, res.State.LastModified)
		}
		res, err = svc.Sync(ctx, tester, f, feeds.SyncOptions{})
		if err != nil || res.Outcome != feeds.Unchanged || res.Version != 1 {
			t.Fatalf("second Sync = %+v, %v; want unchanged", res, err)
		}
		if srv.notModified.Load() != 1 {
			t.Errorf("server answered 304 %d times; want 1", srv.notModified.Load())
		}

		// The publisher adds an entry: a new version, the old one kept as
		// the previous.
		grown := bytes.Replace(full, []byte(`"vulnerabilities": [`), []byte(`"vulnerabilities": [
        {"cveID": "CVE-2099-0001", "vendorProject": "Example", "product": "Infusion pump", "vulnerabilityName": "Example",
         "dateAdded": "2025-08-26", "shortDescription": "x", "requiredAction": "x", "dueDate": "2025-09-16",
         "knownRansomwareCampaignUse": "Known", "notes": "", "cwes": []},`), 1)
		grown = bytes.Replace(grown, []byte(`"count": 1404,`), []byte(`"count": 1405,`), 1)
		srv.body.Store(&grown)
		etag2 := `"v2"`
		srv.etag.Store(&etag2)
		res, err = svc.Sync(ctx, tester, f, feeds.SyncOptions{})
		if err != nil || res.Outcome != feeds.Updated || res.Version != 2 || res.KEV != 1405 {
			t.Fatalf("third Sync = %+v, %v; want version 2 with 1405 entries", res, err)
		}
		kev, _ := db.Feeds().KEV(ctx)
		if !kev["CVE-2099-0001"].KnownRansomware {
			t.Errorf("new KEV entry not visible or not flagged ransomware: %+v", kev["CVE-2099-0001"])
		}
		if got := srv.conditionals.Load(); got != 2 {
			t.Errorf("conditional requests = %d; want 2 (every sync after the first)", got)
		}

		// Force ignores validators and the hash: a full download stored
		// as a fresh version.
		before := srv.notModified.Load()
		res, err = svc.Sync(ctx, tester, f, feeds.SyncOptions{Force: true})
		if err != nil || res.Outcome != feeds.Updated || res.Version != 3 || srv.notModified.Load() != before {
			t.Errorf("forced Sync = %+v, %v; want a full download stored as version 3", res, err)
		}
	})
}

// TestSyncBrokenChangesNothing feeds broken sources to a feed with a good
// current version: each sync fails with a reason naming the problem, the
// reason is stored and audited, and readers see exactly what they saw.
func TestSyncBrokenChangesNothing(t *testing.T) {
	kevFull := readTestdata(t, "kev/known_exploited_vulnerabilities.json")
	epssGood := "#model_version:v2023.03.01,score_date:2025-02-20T00:00:00+0000\ncve,epss,percentile\n"
	for i := range 100 {
		epssGood += fmt.Sprintf("CVE-2024-%05d,0.%05d,0.%05d\n", i, i, i)
	}
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write([]byte(epssGood))
	gw.Close()
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	w, _ := zw.Create("DSA-3029-1.json")
	w.Write(readTestdata(t, "osv/DSA-3029-1.json"))
	w, _ = zw.Create("BROKEN-1.json")
	w.Write([]byte(`{"id": "BROKEN-1", "modified": "2024-01-01T00:00:00Z", "affected": [`))
	zw.Close()

	type source struct {
		name string
		kind feeds.Kind
		data []byte
	}
	type brokenCase struct {
		name string
		// good is synced first; bad must then fail with want in its message.
		good, bad source
		want      string
		kind      errs.Kind
	}
	var cases []brokenCase
	for _, tc := range []brokenCase{
		{"truncated KEV JSON", source{"kev.json", feeds.KEV, kevFull}, source{"kev.json", feeds.KEV, kevFull[:len(kevFull)/2]}, "kev.json:", errs.Invalid},
		{"corrupted zip", source{"all.zip", feeds.OSV, zbuf.Bytes()[:0]}, source{"all.zip", feeds.OSV, append([]byte("PK\x03\x04"), zbuf.Bytes()[4:len(zbuf.Bytes())/2]...)}, "not a readable zip archive", errs.Invalid},
		{"one bad record in a zip", source{"all.zip", feeds.OSV, nil}, source{"all.zip", feeds.OSV, zbuf.Bytes()}, "all.zip: BROKEN-1.json", errs.Invalid},
		{"truncated gzip", source{"epss.csv.gz", feeds.EPSS, gz.Bytes()}, source{"epss.csv.gz", feeds.EPSS, gz.Bytes()[:gz.Len()-10]}, "cannot decompress", errs.Invalid},
		{"EPSS with a bad header", source{"epss.csv", feeds.EPSS, []byte(epssGood)}, source{"epss.csv", feeds.EPSS, readTestdata(t, "epss/invalid-header.csv")}, "epss.csv:", errs.Invalid},
		{"EPSS cut at a line boundary", source{"epss.csv", feeds.EPSS, []byte(epssGood)}, source{"epss.csv", feeds.EPSS, []byte(epssGood[:strings.Index(epssGood, "CVE-2024-00040")])}, "refusing a drop of more than half", errs.Invalid},
		{"wrong kind", source{"kev.json", feeds.KEV, kevFull}, source{"kev.json", feeds.KEV, readTestdata(t, "osv/DSA-3029-1.json")}, "holds osv data, but feed", errs.Invalid},
		{"empty file", source{"kev.json", feeds.KEV, kevFull}, source{"kev.json", feeds.KEV, nil}, "kev.json:", errs.Unsupported},
	} {
		cases = append(cases, tc)
	}
	// One database per engine for all cases, a feed per case: a failed
	// sync must leave every feed as it was, not only its own.
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc := newService(db)
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				dir := t.TempDir()
				name := fmt.Sprintf("feed-%d", i)
				good := tc.good
				if len(good.data) == 0 {
					// Zip cases start from the good DSA record alone.
					good = source{"DSA-3029-1.json", feeds.OSV, readTestdata(t, "osv/DSA-3029-1.json")}
				}
				f := localFeed(name, tc.good.kind, writeFile(t, dir, good.name, good.data))
				if _, err := svc.Sync(ctx, tester, f, feeds.SyncOptions{}); err != nil {
					t.Fatalf("good Sync: %v", err)
				}
				before := snap(t, db.Feeds())

				f.Path = writeFile(t, t.TempDir(), tc.bad.name, tc.bad.data)
				_, err := svc.Sync(ctx, tester, f, feeds.SyncOptions{})
				if err == nil || !strings.Contains(feeds.PublicMessage(err), tc.want) || errs.KindOf(err) != tc.kind {
					t.Fatalf("bad Sync error = %v (kind %v); want %v containing %q", err, errs.KindOf(err), tc.kind, tc.want)
				}
				if diff := cmp.Diff(before, snap(t, db.Feeds())); diff != "" {
					t.Errorf("a failed sync changed what readers see (-before +after):\n%s", diff)
				}
				st, err := svc.State(ctx, name)
				if err != nil || !strings.Contains(st.LastError, tc.want) || st.Version != 1 {
					t.Errorf("State = version %d, last error %q, %v; want version 1 and the reason", st.Version, st.LastError, err)
				}
				if got := auditActions(t, db, name); !cmp.Equal(got, []string{"feed.sync", "feed.sync_failed"}) {
					t.Errorf("audit = %v; want feed.sync, feed.sync_failed", got)
				}
			})
		}
	})
}

func TestSyncHTTPFailures(t *testing.T) {
	kev := readTestdata(t, "kev/known_exploited_vulnerabilities.json")
	for _, tc := range []struct {
		name     string
		handler  http.HandlerFunc
		maxBytes int64
		want     string
		requests int32
	}{
		{"server error retried then given up", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}, 0, "503 Service Unavailable", 4},
		{"not found is not retried", func(w http.ResponseWriter, r *http.Request) {
			http.NotFound(w, r)
		}, 0, "404 Not Found", 1},
		{"body cut short", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(kev)))
			w.Write(kev[:len(kev)/3])
		}, 0, "download interrupted", 4},
		{"larger than max_size", func(w http.ResponseWriter, r *http.Request) {
			w.Write(kev)
		}, 1000, "max_size", 1},
		{"redirect to plain http elsewhere", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://feeds.example.org/kev.json", http.StatusFound)
		}, 0, "refusing redirect", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := storetest.Open(t, store.SQLite, store.Options{})
			var n atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				tc.handler(w, r)
			}))
			defer ts.Close()
			f := feeds.Feed{Name: "kev", Kind: feeds.KEV, URL: ts.URL + "/kev.json", Timeout: time.Minute, MaxBytes: 16 << 20}
			if tc.maxBytes > 0 {
				f.MaxBytes = tc.maxBytes
			}
			_, err := newService(db).Sync(context.Background(), tester, f, feeds.SyncOptions{})
			if err == nil || !strings.Contains(feeds.PublicMessage(err), tc.want) {
				t.Fatalf("Sync error = %v; want one containing %q", err, tc.want)
			}
			if n.Load() != tc.requests {
				t.Errorf("server saw %d requests; want %d", n.Load(), tc.requests)
			}
			st, err := db.Feeds().State(context.Background(), "kev")
			if err != nil || st.VersionID != 0 || !strings.Contains(st.LastError, tc.want) {
				t.Errorf("State = %+v, %v; want no version and the reason", st, err)
			}
		})
	}
}

// nvdServer serves the real 38-CVE NVD page through the API's paging, and
// a modified-since query with one changed CVE.
func nvdServer(t *testing.T, queries *[]string) *httptest.Server {
	page := readTestdata(t, "nvd/vunnel_nvd_full-page.json")
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		*queries = append(*queries, r.URL.RawQuery)
		if q.Get("lastModStartDate") != "" {
			changed := bytes.Replace(page, []byte(`"resultsPerPage": 38`), []byte(`"resultsPerPage": 1`), 1)
			changed = bytes.Replace(changed, []byte(`"totalResults": 38`), []byte(`"totalResults": 1`), 1)
			i := bytes.Index(changed, []byte(`"vulnerabilities": [`)) + len(`"vulnerabilities": [`)
			j := bytes.Index(changed[i:], []byte("\n        },\n        {")) + i
			out := append(append([]byte{}, changed[:j]...), []byte("\n        }\n    ]\n}")...)
			out = bytes.Replace(out, []byte(`"lastModified": "2023-10-18T18:00:24.900"`), []byte(`"lastModified": "2023-10-20T10:00:00.000"`), 1)
			w.Write(out)
			return
		}
		// Full download: pretend the API pages at 20 records by rewriting
		// the paging header; the test only needs the records once in total.
		if q.Get("startIndex") == "0" {
			w.Write(bytes.Replace(page, []byte(`"resultsPerPage": 38`), []byte(`"resultsPerPage": 20`), 1))
			return
		}
		fmt.Fprint(w, `{"resultsPerPage": 18, "startIndex": 20, "totalResults": 38, "format": "NVD_CVE", "version": "2.0", "timestamp": "2023-10-18T18:04:18.493", "vulnerabilities": []}`)
	}))
}

func TestSyncNVDIncremental(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var queries []string
		ts := nvdServer(t, &queries)
		defer ts.Close()
		svc := newService(db)
		f := feeds.Feed{Name: "nvd", Kind: feeds.NVD, URL: ts.URL + "/rest/json/cves/2.0?noRejected", Timeout: time.Minute, MaxBytes: 16 << 20}

		res, err := svc.Sync(ctx, tester, f, feeds.SyncOptions{})
		if err != nil || res.Advisories != 38 || res.Incremental {
			t.Fatalf("full NVD Sync = %+v, %v; want 38 advisories, full", res, err)
		}
		if len(queries) != 2 || !strings.Contains(queries[1], "startIndex=20") || !strings.Contains(queries[0], "noRejected") {
			t.Errorf("full sync queries = %q; want two pages keeping the URL's own parameters", queries)
		}
		queries = nil
		res, err = svc.Sync(ctx, tester, f, feeds.SyncOptions{})
		if err != nil || res.Advisories != 38 || !res.Incremental || res.Version != 2 {
			t.Fatalf("incremental NVD Sync = %+v, %v; want version 2, incremental, 38 advisories", res, err)
		}
		if len(queries) != 1 || !strings.Contains(queries[0], "lastModStartDate=") || !strings.Contains(queries[0], "lastModEndDate=") {
			t.Errorf("incremental query = %q; want lastModStartDate and lastModEndDate", queries)
		}
		a, err := db.Feeds().Advisory(ctx, "CVE-2023-27314")
		if err != nil || !a.Modified.Equal(time.Date(2023, 10, 20, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("changed CVE = modified %v, %v; want the delta's 2023-10-20T10:00", a.Modified, err)
		}
		st, _ := svc.State(ctx, "nvd")
		if !st.Meta.Incremental || st.Cursor == "" {
			t.Errorf("State = %+v; want an incremental version with a cursor", st)
		}
	})
}

// TestSyncConcurrent shows one process refuses a second sync of the same
// feed while the first is in its transaction.
func TestSyncConcurrent(t *testing.T) {
	db := storetest.Open(t, store.SQLite, store.Options{})
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	svc := feeds.NewService(db.Feeds(), feeds.Options{BeforeCommit: func(ctx context.Context, feed string) error {
		close(entered)
		<-release
		return nil
	}})
	f := localFeed("kev", feeds.KEV, "testdata/kev/known_exploited_vulnerabilities.json")
	done := make(chan error)
	go func() {
		_, err := svc.Sync(ctx, tester, f, feeds.SyncOptions{})
		done <- err
	}()
	<-entered
	if _, err := svc.Sync(ctx, tester, f, feeds.SyncOptions{}); !errors.Is(err, errs.ErrConflict) {
		t.Errorf("concurrent Sync = %v; want Conflict", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSyncEPSS measures a whole sync of an EPSS-sized file (300,000
// generated rows, gzip as published): read, decompress, parse, swap, prune.
func BenchmarkSyncEPSS(b *testing.B) {
	const rows = 300_000
	var csv bytes.Buffer
	csv.WriteString("#model_version:v2025.03.14,score_date:2025-08-25T00:00:00+0000\ncve,epss,percentile\n")
	for i := range rows {
		fmt.Fprintf(&csv, "CVE-%d-%05d,0.%05d,0.%05d\n", 1999+i/20000, i%20000, i%99991, i%99989)
	}
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(csv.Bytes())
	gw.Close()
	for _, e := range storetest.Engines(b) {
		b.Run(string(e), func(b *testing.B) {
			db := storetest.Open(b, e, store.Options{})
			svc := newService(db)
			path := writeFile(b, b.TempDir(), "epss_scores-current.csv.gz", gz.Bytes())
			f := localFeed("epss", feeds.EPSS, path)
			b.ResetTimer()
			for b.Loop() {
				res, err := svc.Sync(context.Background(), tester, f, feeds.SyncOptions{Force: true})
				if err != nil || res.EPSS != rows {
					b.Fatalf("Sync = %+v, %v", res, err)
				}
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
