package match

import (
	"iter"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/patchward/patchward/internal/advisory"
)

// Estate is the whole fleet's installed software in the form matching
// wants: each distinct tuple stored once, and each host a list of small
// indexes into a table of distinct (tuple, binary package) pairs. Ten
// thousand hosts with two thousand packages each fit in well under a
// hundred megabytes this way, where twenty million Package structs would
// not.
type Estate struct {
	tuples []tupleKey
	keys   []tupleMeta
	pkgs   []estatePkg
	hosts  []estateHost
}

type tupleMeta struct {
	primary, alt Key
	hasAlt       bool
}

// estatePkg is one distinct installed package: the tuple it is matched as,
// and the binary package name when matching used its source package.
type estatePkg struct {
	tuple  int32
	binary string
}

type estateHost struct {
	id   string
	pkgs []int32
}

// Hosts reports how many hosts the estate holds.
func (e *Estate) Hosts() int { return len(e.hosts) }

// Tuples reports how many distinct tuples the estate holds: the number of
// evaluations a full re-match costs.
func (e *Estate) Tuples() int { return len(e.tuples) }

// Rows reports how many host×package rows the estate holds.
func (e *Estate) Rows() int {
	n := 0
	for _, h := range e.hosts {
		n += len(h.pkgs)
	}
	return n
}

// ExpandKeys returns keys plus the package keys of every tuple that is
// looked up under one of keys through its PURL: a changed CSAF product
// filed under pkg:generic/acme re-matches the packages that carry that
// PURL, and their findings are filed under the package's own key.
func (e *Estate) ExpandKeys(keys ChangedKeys) ChangedKeys {
	out := make(ChangedKeys, len(keys))
	for k := range keys {
		out[k] = struct{}{}
	}
	for _, m := range e.keys {
		if m.hasAlt && keys.Has(m.alt) {
			out[m.primary] = struct{}{}
		}
	}
	return out
}

// EstateBuilder interns inventory rows into an Estate. Rows may arrive in
// any order; the store streams them grouped by asset.
type EstateBuilder struct {
	e       *Estate
	tuples  map[tupleKey]int32
	pkgs    map[pkgKey]int32
	hostIdx map[string]int32
}

type pkgKey struct {
	eco, name, version, src, srcVersion, purl string
}

// NewEstateBuilder returns an empty builder.
func NewEstateBuilder() *EstateBuilder {
	return &EstateBuilder{e: &Estate{}, tuples: map[tupleKey]int32{}, pkgs: map[pkgKey]int32{}, hostIdx: map[string]int32{}}
}

// AddHost makes sure assetID is in the estate even with nothing installed,
// so that its findings are closed when its inventory empties.
func (b *EstateBuilder) AddHost(assetID string) { b.host(assetID) }

func (b *EstateBuilder) host(id string) *estateHost {
	i, ok := b.hostIdx[id]
	if !ok {
		b.e.hosts = append(b.e.hosts, estateHost{id: id})
		i = int32(len(b.e.hosts) - 1)
		b.hostIdx[id] = i
	}
	return &b.e.hosts[i]
}

// Add records that assetID has p installed.
func (b *EstateBuilder) Add(assetID string, p Package) {
	h := b.host(assetID)
	pk := pkgKey{p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion, p.PURL}
	i, ok := b.pkgs[pk]
	if !ok {
		i = int32(len(b.e.pkgs))
		b.e.pkgs = append(b.e.pkgs, estatePkg{tuple: b.tuple(p.tupleKey()), binary: p.binary()})
		b.pkgs[pk] = i
	}
	h.pkgs = append(h.pkgs, i)
}

// AddCPE records that assetID's OS or firmware is identified by cpe.
func (b *EstateBuilder) AddCPE(assetID, cpe string) {
	if cpe == "" {
		return
	}
	h := b.host(assetID)
	pk := pkgKey{eco: advisory.EcosystemCPE, name: cpe}
	i, ok := b.pkgs[pk]
	if !ok {
		i = int32(len(b.e.pkgs))
		b.e.pkgs = append(b.e.pkgs, estatePkg{tuple: b.tuple(tupleKey{eco: advisory.EcosystemCPE, name: cpe})})
		b.pkgs[pk] = i
	}
	h.pkgs = append(h.pkgs, i)
}

// AddProduct records that assetID is a device known by vendor, product name
// and version (its make, model and firmware version).
func (b *EstateBuilder) AddProduct(assetID string, p Product) {
	if p.Vendor == "" || p.Name == "" {
		return
	}
	h := b.host(assetID)
	t := productTuple(p)
	pk := pkgKey{eco: t.eco, name: t.name, version: t.version}
	i, ok := b.pkgs[pk]
	if !ok {
		i = int32(len(b.e.pkgs))
		b.e.pkgs = append(b.e.pkgs, estatePkg{tuple: b.tuple(t)})
		b.pkgs[pk] = i
	}
	h.pkgs = append(h.pkgs, i)
}

func productTuple(p Product) tupleKey {
	return tupleKey{eco: advisory.EcosystemCSAF, name: p.Vendor + "\x00" + p.Name, version: p.Version}
}

func (b *EstateBuilder) tuple(t tupleKey) int32 {
	i, ok := b.tuples[t]
	if !ok {
		i = int32(len(b.e.tuples))
		b.e.tuples = append(b.e.tuples, t)
		p, a, has := tupleKeys(t)
		b.e.keys = append(b.e.keys, tupleMeta{primary: p, alt: a, hasAlt: has})
		b.tuples[t] = i
	}
	return i
}

// Estate returns the built estate. The builder must not be used after.
func (b *EstateBuilder) Estate() *Estate {
	e := b.e
	b.e, b.tuples, b.pkgs, b.hostIdx = nil, nil, nil, nil
	return e
}

// MatchHost matches one host's inventory: what a new agent report or SBOM
// upload triggers. Tuples already evaluated under this index (by the last
// full run or by other hosts) are not evaluated again.
func (ix *Index) MatchHost(h HostInventory) []Match {
	local := map[tupleKey]int32{}
	var hits []hostHit
	add := func(t tupleKey, bin string) {
		id, ok := local[t]
		if !ok {
			id = int32(len(local))
			local[t] = id
		}
		if ms := ix.verdicts(t); len(ms) > 0 {
			k, _, _ := tupleKeys(t)
			hits = append(hits, hostHit{tuple: id, key: k, ms: ms, binary: bin})
		}
	}
	for _, p := range h.Packages {
		add(p.tupleKey(), p.binary())
	}
	for _, c := range h.CPEs {
		if c != "" {
			add(tupleKey{eco: advisory.EcosystemCPE, name: c}, "")
		}
	}
	for _, p := range h.Products {
		if p.Vendor != "" && p.Name != "" {
			add(productTuple(p), "")
		}
	}
	var f fanner
	f.slot = make([]int32, len(local))
	r := f.fanOut(h.AssetID, hits)
	return append(make([]Match, 0, len(r)), r...)
}

// MatchEstate matches every host: the full re-evaluation. It yields each
// host's matches in estate order, every host included (a host with none
// yields an empty slice, so its findings can be closed). The yielded slice
// and the Binaries in it are reused for the next host: copy what you keep.
func (ix *Index) MatchEstate(e *Estate) iter.Seq2[string, []Match] {
	return ix.MatchEstateKeys(e, nil)
}

// MatchEstateKeys matches only tuples filed under keys (nil means all) and
// yields only the hosts that hold at least one such tuple, with their
// matches under those keys. Pass keys through Estate.ExpandKeys first. As
// with MatchEstate, yielded slices are reused.
func (ix *Index) MatchEstateKeys(e *Estate, keys ChangedKeys) iter.Seq2[string, []Match] {
	return func(yield func(string, []Match) bool) {
		want := make([]bool, len(e.tuples))
		for i, m := range e.keys {
			want[i] = keys == nil || keys.Has(m.primary) || (m.hasAlt && keys.Has(m.alt))
		}
		verdicts := ix.evaluateAll(e, want)
		f := fanner{slot: make([]int32, len(e.tuples))}
		var hits []hostHit
		for _, h := range e.hosts {
			hits = hits[:0]
			held := keys == nil
			for _, pi := range h.pkgs {
				p := &e.pkgs[pi]
				if !want[p.tuple] {
					continue
				}
				held = true
				if ms := verdicts[p.tuple]; len(ms) > 0 {
					hits = append(hits, hostHit{tuple: p.tuple, key: e.keys[p.tuple].primary, ms: ms, binary: p.binary})
				}
			}
			if !held {
				continue
			}
			if !yield(h.id, f.fanOut(h.id, hits)) {
				return
			}
		}
	}
}

// evaluateAll evaluates the wanted tuples on every core. Tuples are
// independent and the index is read-only, so this scales with cores.
func (ix *Index) evaluateAll(e *Estate, want []bool) [][]Match {
	out := make([][]Match, len(e.tuples))
	var next atomic.Int64
	var wg sync.WaitGroup
	const chunk = 64
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				start := int(next.Add(chunk)) - chunk
				if start >= len(e.tuples) {
					return
				}
				for i := start; i < min(start+chunk, len(e.tuples)); i++ {
					if want[i] {
						out[i] = ix.verdicts(e.tuples[i])
					}
				}
			}
		})
	}
	wg.Wait()
	return out
}

// hostHit is one installed package of a host whose tuple has matches.
type hostHit struct {
	tuple int32
	// key is the tuple's primary key, which its matches are filed under.
	key    Key
	ms     []Match
	binary string
}

// fanner copies tuple verdicts onto hosts, reusing its buffers from host to
// host: at fleet scale the copying, not the matching, is the work, and
// allocating twenty million matches per run would be most of it.
type fanner struct {
	// slot[tuple] is 1 + the group of a tuple on the current host, 0 if none.
	slot   []int32
	groups []fanGroup
	arena  []string
	out    []Match
	byKey  map[Key]int32
	seen   map[string]bool
}

type fanGroup struct {
	tuple int32
	ms    []Match
	nbin  int
	off   int
	key   Key
}

// fanOut builds one host's matches. Binary packages from one source package
// share its matches (their names are listed in Binaries), and a
// vulnerability seen through two tuples under the same key (two versions of
// one package during an upgrade) is reported once.
func (f *fanner) fanOut(assetID string, hits []hostHit) []Match {
	f.groups = f.groups[:0]
	for _, h := range hits {
		g := f.slot[h.tuple]
		if g == 0 {
			f.groups = append(f.groups, fanGroup{tuple: h.tuple, key: h.key, ms: h.ms})
			g = int32(len(f.groups))
			f.slot[h.tuple] = g
		}
		if h.binary != "" {
			f.groups[g-1].nbin++
		}
	}
	// Lay the binaries out in one arena, group after group.
	n, off := 0, 0
	for i := range f.groups {
		g := &f.groups[i]
		g.off = off
		off += g.nbin
		g.nbin = 0
		n += len(g.ms)
	}
	f.arena = slices.Grow(f.arena[:0], off)[:off]
	for _, h := range hits {
		if h.binary == "" {
			continue
		}
		g := &f.groups[f.slot[h.tuple]-1]
		f.arena[g.off+g.nbin] = h.binary
		g.nbin++
	}
	// Two tuples under one key on one host are rare; find them without
	// hashing every match.
	if f.byKey == nil {
		f.byKey = map[Key]int32{}
	}
	clear(f.byKey)
	dups := false
	for i := range f.groups {
		g := &f.groups[i]
		if _, ok := f.byKey[g.key]; ok {
			dups = true
		}
		f.byKey[g.key]++
	}
	out := slices.Grow(f.out[:0], n)
	for i := range f.groups {
		g := &f.groups[i]
		bins := f.arena[g.off : g.off+g.nbin : g.off+g.nbin]
		if len(bins) == 0 {
			bins = nil
		}
		shared := dups && f.byKey[g.key] > 1
		for _, m := range g.ms {
			if shared {
				id := g.key.String() + "\x00" + m.AdvisoryID
				if f.seen == nil {
					f.seen = map[string]bool{}
				}
				if f.seen[id] {
					continue
				}
				f.seen[id] = true
			}
			m.AssetID = assetID
			m.Binaries = bins
			out = append(out, m)
		}
		f.slot[g.tuple] = 0
	}
	clear(f.seen)
	f.out = out
	return out
}
