package match

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/advisory"
)

// The fleet benchmark: 10,000 hosts with about 2,000 real Debian 12
// packages each, every package at one of its real versions, matched against
// the real Debian test feeds plus a derived Debian:12 feed of realistic size
// (see testdata/matching/README.md). Run with
//
//	go test ./internal/match -run '^$' -bench . -benchtime 3x
//
// Figures reported: ns/op is one full re-evaluation (every host, cold
// verdict cache), peak-heap-MB the largest heap in use while it ran.

const (
	benchHosts   = 10000
	benchPerHost = 2000
	// benchPerSource advisories per source package: about 30k advisories
	// and 90k affected entries, the order of Debian's OSV feed.
	benchPerSource = 25
)

// benchFeed derives a Debian feed from real package versions. For each
// source package: advisories fixed in Debian:12 at its real
// bookworm-security version (hosts still on the point release are
// affected), at its bookworm main version (only hosts on an older 12.11
// version are), or not fixed at all (every tenth source, like the
// tracker's open no-DSA issues); each also has Debian:11 and Debian:13
// entries that must never match a Debian 12 host.
func benchFeed(pkgs []bookwormPkg, perSource int) []advisory.Advisory {
	type src struct{ main, sec string }
	sources := map[string]src{}
	var order []string
	for _, p := range pkgs {
		s, ok := sources[p.source]
		if !ok {
			order = append(order, p.source)
		}
		if s.main == "" {
			s.main = p.srcVersion
		}
		if p.secSrc != "" {
			s.sec = p.secSrc
		}
		sources[p.source] = s
	}
	var out []advisory.Advisory
	n := 0
	for si, name := range order {
		s := sources[name]
		for k := range perSource {
			n++
			cve := fmt.Sprintf("CVE-2099-%05d", n)
			fixed := s.main
			switch {
			case si%10 == 0 && k == 0:
				fixed = ""
			case s.sec != "" && k%3 == 0:
				fixed = s.sec
			}
			rg := advisory.Range{Type: "ECOSYSTEM", Introduced: "0", Fixed: fixed}
			out = append(out, advisory.Advisory{
				ID: "PWBENCH-DEBIAN-" + cve, Source: "osv", Aliases: []string{cve},
				Affected: []advisory.Affected{
					{Ecosystem: "Debian:11", Package: name, Ranges: []advisory.Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "0.1-1"}}},
					{Ecosystem: "Debian:12", Package: name, Ranges: []advisory.Range{rg}},
					{Ecosystem: "Debian:13", Package: name, Ranges: []advisory.Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "999:1"}}},
				},
			})
			if k == 0 && s.sec != "" {
				// A DSA for the same fix, aliasing the CVE: deduplicated.
				out = append(out, advisory.Advisory{ID: fmt.Sprintf("PWBENCH-DSA-%05d-1", n), Source: "osv", Aliases: []string{cve},
					Affected: []advisory.Affected{{Ecosystem: "Debian:12", Package: name, Ranges: []advisory.Range{rg}}}})
			}
		}
	}
	return out
}

func benchEnrichment(feed []advisory.Advisory) (map[string]advisory.KEV, map[string]advisory.EPSS) {
	kev := map[string]advisory.KEV{}
	epss := map[string]advisory.EPSS{}
	for i, a := range feed {
		for _, c := range a.Aliases {
			if i%50 == 0 {
				kev[c] = advisory.KEV{CVE: c}
			}
			epss[c] = advisory.EPSS{CVE: c, Score: float64(i%1000) / 1000}
		}
	}
	return kev, epss
}

// hostGen draws hosts: every host has the real 12.11 base system (the
// status file's packages) plus a random choice of the rest, each package at
// its 12.11, point-release or security version.
type hostGen struct {
	base, extra []bookwormPkg
	status      map[string]Package
}

func newHostGen(pkgs []bookwormPkg, status []Package) *hostGen {
	g := &hostGen{status: map[string]Package{}}
	for _, p := range status {
		g.status[p.Name] = p
	}
	for _, p := range pkgs {
		if _, ok := g.status[p.name]; ok {
			g.base = append(g.base, p)
		} else {
			g.extra = append(g.extra, p)
		}
	}
	return g
}

func (g *hostGen) host(i, perHost int, buf []Package) []Package {
	r := rand.New(rand.NewPCG(uint64(i), 20261123))
	buf = buf[:0]
	pick := func(p bookwormPkg) {
		v, sv := p.version, p.srcVersion
		x := r.IntN(100)
		switch {
		case x < 50 && p.secVersion != "":
			v, sv = p.secVersion, p.secSrc
		case x >= 85:
			if st, ok := g.status[p.name]; ok {
				v, sv = st.Version, st.SourceVersion
			}
		}
		buf = append(buf, Package{Name: p.name, Version: v, Arch: p.arch, Ecosystem: "Debian:12", SourceName: p.source, SourceVersion: sv})
	}
	if perHost >= len(g.base) {
		for _, p := range g.base {
			pick(p)
		}
		for _, j := range r.Perm(len(g.extra))[:min(perHost-len(g.base), len(g.extra))] {
			pick(g.extra[j])
		}
		return buf
	}
	all := append(append([]bookwormPkg(nil), g.base...), g.extra...)
	for _, j := range r.Perm(len(all))[:perHost] {
		pick(all[j])
	}
	return buf
}

func genHosts(pkgs []bookwormPkg, status []Package, n, perHost int) []HostInventory {
	g := newHostGen(pkgs, status)
	out := make([]HostInventory, n)
	for i := range out {
		out[i] = HostInventory{AssetID: fmt.Sprintf("host-%05d", i), Packages: g.host(i, perHost, nil)}
	}
	return out
}

type benchWorld struct {
	feed  []advisory.Advisory
	kev   map[string]advisory.KEV
	epss  map[string]advisory.EPSS
	est   *Estate
	gen   *hostGen
	build time.Duration
}

var (
	worldOnce sync.Once
	world     benchWorld
)

func loadWorld(b *testing.B) *benchWorld {
	worldOnce.Do(func() {
		pkgs := loadBookworm(b)
		status := loadDpkgStatus(b, "Debian:12")
		feed := append(loadTracker(b), loadDSAList(b)...)
		feed = append(feed, loadOSVDir(b)...)
		feed = append(feed, benchFeed(pkgs, benchPerSource)...)
		kev, epss := benchEnrichment(feed)
		g := newHostGen(pkgs, status)
		start := time.Now()
		eb := NewEstateBuilder()
		var buf []Package
		for i := range benchHosts {
			id := fmt.Sprintf("host-%05d", i)
			buf = g.host(i, benchPerHost, buf)
			eb.AddHost(id)
			for _, p := range buf {
				eb.Add(id, p)
			}
		}
		world = benchWorld{feed: feed, kev: kev, epss: epss, est: eb.Estate(), gen: g, build: time.Since(start)}
	})
	return &world
}

// peakHeap samples HeapInuse until stop is called and returns the peak.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak.Load() }
}

const mb = 1 << 20

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkMatchEstateFull(b *testing.B) {
	w := loadWorld(b)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	stop := peakHeap()
	cpu0 := cpuTime()
	matches := 0
	for b.Loop() {
		b.StopTimer()
		ix := NewIndex(w.feed, w.kev, w.epss) // a new feed version: cold verdict cache
		b.StartTimer()
		matches = 0
		for _, ms := range ix.MatchEstate(w.est) {
			matches += len(ms)
		}
	}
	peak := stop()
	cpu := cpuTime() - cpu0
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(w.est.Hosts()), "hosts")
	b.ReportMetric(float64(w.est.Rows()), "rows")
	b.ReportMetric(float64(w.est.Tuples()), "tuples")
	b.ReportMetric(w.build.Seconds(), "estate-build-s")
	b.ReportMetric(float64(matches), "matches")
	b.ReportMetric(float64(peak)/mb, "peak-heap-MB")
	// CPU time (index builds included) does not depend on what else the
	// shared machine is running, unlike ns/op.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/mb/float64(b.N), "alloc-MB/op")
}

// BenchmarkMatchEstateRealFeedsOnly matches the same estate against the
// real Debian records alone (tracker JSON, DSA list, OSV DSA/DLA): few of
// them concern bookworm, so this is the floor, not the realistic load.
func BenchmarkMatchEstateRealFeedsOnly(b *testing.B) {
	w := loadWorld(b)
	real := append(loadTracker(b), loadDSAList(b)...)
	real = append(real, loadOSVDir(b)...)
	matches := 0
	for b.Loop() {
		b.StopTimer()
		ix := NewIndex(real, w.kev, w.epss)
		b.StartTimer()
		matches = 0
		for _, ms := range ix.MatchEstate(w.est) {
			matches += len(ms)
		}
	}
	b.ReportMetric(float64(len(real)), "advisories")
	b.ReportMetric(float64(matches), "matches")
}

func BenchmarkBuildIndex(b *testing.B) {
	w := loadWorld(b)
	var ix *Index
	for b.Loop() {
		ix = NewIndex(w.feed, w.kev, w.epss)
	}
	st := ix.Stats()
	b.ReportMetric(float64(st.Advisories), "advisories")
	b.ReportMetric(float64(st.Entries), "entries")
}

// BenchmarkMatchHost is one host's re-evaluation after a new inventory:
// "warm" against an index that already evaluated the estate (the normal
// case), "cold" against a fresh index that has seen nothing.
func BenchmarkMatchHost(b *testing.B) {
	w := loadWorld(b)
	h := HostInventory{AssetID: "host-new", Packages: w.gen.host(benchHosts+1, benchPerHost, nil)}
	b.Run("warm", func(b *testing.B) {
		ix := NewIndex(w.feed, w.kev, w.epss)
		for range ix.MatchEstate(w.est) {
		}
		n := 0
		for b.Loop() {
			n = len(ix.MatchHost(h))
		}
		b.ReportMetric(float64(n), "matches")
	})
	b.Run("cold", func(b *testing.B) {
		n := 0
		for b.Loop() {
			b.StopTimer()
			ix := NewIndex(w.feed, w.kev, w.epss)
			b.StartTimer()
			n = len(ix.MatchHost(h))
		}
		b.ReportMetric(float64(n), "matches")
	})
}
