package agentapi

import (
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// InventoryHash is the canonical hash of an inventory that both sides
// compute: the agent to decide whether to send its package list, the server
// to check that the list it received is the one the hash names (so an agent
// cannot acknowledge one list and store another).
//
// The canonical form sorts packages by ecosystem, name, arch, version,
// source name, source version and PURL, and writes each as its seven fields
// in that order, each followed by 0x1f, the package ended by 0x1e. Fields
// may not contain control characters (ValidatePackage refuses them), so the
// separators cannot be forged. The result is lower-case hex SHA-256; order
// of the input and duplicates in different positions do not matter.
func InventoryHash(pkgs []Package) string {
	sorted := slices.Clone(pkgs)
	slices.SortFunc(sorted, comparePackages)
	h := sha256.New()
	buf := make([]byte, 0, 256)
	for _, p := range sorted {
		buf = buf[:0]
		for _, f := range [...]string{p.Ecosystem, p.Name, p.Arch, p.Version, p.SourceName, p.SourceVersion, p.PURL} {
			buf = append(buf, f...)
			buf = append(buf, 0x1f)
		}
		buf = append(buf, 0x1e)
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func comparePackages(a, b Package) int {
	return cmp.Or(cmp.Compare(a.Ecosystem, b.Ecosystem), cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Arch, b.Arch), cmp.Compare(a.Version, b.Version),
		cmp.Compare(a.SourceName, b.SourceName), cmp.Compare(a.SourceVersion, b.SourceVersion),
		cmp.Compare(a.PURL, b.PURL))
}

// Sign sets the headers of a signed agent request on r: agent ID, protocol
// version, timestamp and the Ed25519 signature of SigningString over r's
// method, r.URL.Path, now and body. body must be exactly the bytes sent.
func Sign(r *http.Request, agentID string, key ed25519.PrivateKey, body []byte, now time.Time) {
	sig := ed25519.Sign(key, []byte(SigningString(r.Method, r.URL.Path, now, body)))
	r.Header.Set(HeaderAgent, agentID)
	r.Header.Set(HeaderProtocol, strconv.Itoa(ProtocolVersion))
	r.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	r.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
}
