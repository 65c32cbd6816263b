package feeds

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"os"
	"testing"

	"github.com/patchward/patchward/internal/errs"
)

func TestWant(t *testing.T) {
	osv := newContent(Feed{Kind: OSV, Exclude: []string{"*-draft.json"}})
	csaf := newContent(Feed{Kind: CSAF})
	epss := newContent(Feed{Kind: EPSS})
	for _, tc := range []struct {
		c    *content
		name string
		want bool
	}{
		{osv, "DSA-3029-1.json", true},
		{osv, "debian/DSA-3029-1.JSON", true},
		{osv, "all.zip", true},
		{osv, "x.tar.gz", true},
		{osv, "README.md", false},
		{osv, ".git/config.json", false},
		{osv, "a/.hidden/DSA-1.json", false},
		{osv, "DSA-1-draft.json", false},
		{csaf, "OT/white/cisa-csaf-ot-feed-tlp-white.json", false},
		{csaf, "provider-metadata.json", false},
		{csaf, "OT/white/2024/icsma-24-030-01.json", true},
		{csaf, "OT/white/2024/icsma-24-030-01.json.asc", false},
		{epss, "epss_scores-2025-02-20.csv.gz", true},
		{epss, "epss.json", false},
	} {
		if got := tc.c.want(tc.name); got != tc.want {
			t.Errorf("want(%s, %q) = %v; want %v", tc.c.feed.Kind, tc.name, got, tc.want)
		}
	}
}

// FuzzContentAdd feeds arbitrary bytes to the archive expansion and parse
// step: it must never panic, must fail only with a kinded error, and must
// respect the size cap however the input nests its archives.
func FuzzContentAdd(f *testing.F) {
	dsa, _ := os.ReadFile("testdata/osv/DSA-3029-1.json")
	epss, _ := os.ReadFile("testdata/epss/example-1.csv")
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	w, _ := zw.Create("DSA-3029-1.json")
	w.Write(dsa)
	zw.Close()
	var gbuf bytes.Buffer
	gw := gzip.NewWriter(&gbuf)
	gw.Write(epss)
	gw.Close()
	var tbuf bytes.Buffer
	tw := tar.NewWriter(&tbuf)
	tw.WriteHeader(&tar.Header{Name: "osv/DSA-3029-1.json", Mode: 0o644, Size: int64(len(dsa)), Typeflag: tar.TypeReg})
	tw.Write(dsa)
	tw.Close()
	for _, seed := range [][]byte{dsa, epss, zbuf.Bytes(), gbuf.Bytes(), tbuf.Bytes(), zbuf.Bytes()[:40], gbuf.Bytes()[:20], {}, []byte("PK\x05\x06")} {
		f.Add(seed, uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, k uint8) {
		kind := Kinds[int(k)%len(Kinds)]
		c := newContent(Feed{Name: "fuzz", Kind: kind, MaxBytes: 1 << 20})
		err := c.add("input", data, true)
		if err != nil && errs.KindOf(err) == errs.Internal {
			t.Fatalf("add error has no kind: %v", err)
		}
		if c.inflated > c.feed.MaxBytes {
			t.Fatalf("inflated %d bytes past the %d cap", c.inflated, c.feed.MaxBytes)
		}
	})
}
