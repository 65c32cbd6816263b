package agentapi_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
)

func TestInventoryHash(t *testing.T) {
	pkgs := []agentapi.Package{
		{Name: "openssl", Version: "3.0.15-1~deb12u1", Arch: "amd64", Ecosystem: "Debian:12", SourceName: "openssl"},
		{Name: "libc6", Version: "2.36-9+deb12u9", Arch: "amd64", Ecosystem: "Debian:12", SourceName: "glibc"},
		{Name: "libc6", Version: "2.36-9+deb12u9", Arch: "i386", Ecosystem: "Debian:12", SourceName: "glibc"},
	}
	h := agentapi.InventoryHash(pkgs)
	if len(h) != 64 || strings.ToLower(h) != h {
		t.Fatalf("InventoryHash = %q; want 64 lower-case hex digits", h)
	}
	reversed := slices.Clone(pkgs)
	slices.Reverse(reversed)
	if got := agentapi.InventoryHash(reversed); got != h {
		t.Errorf("InventoryHash depends on order: %s vs %s", got, h)
	}
	if !slices.Equal(reversed[0:1], pkgs[2:3]) {
		t.Error("InventoryHash reordered its argument")
	}
	// Every field counts, and moving text between fields changes the hash.
	for name, mod := range map[string]func(*agentapi.Package){
		"version":        func(p *agentapi.Package) { p.Version = "3.0.16-1~deb12u1" },
		"arch":           func(p *agentapi.Package) { p.Arch = "arm64" },
		"source":         func(p *agentapi.Package) { p.SourceName = "" },
		"source version": func(p *agentapi.Package) { p.SourceVersion = "3.0.15" },
		"purl":           func(p *agentapi.Package) { p.PURL = "pkg:deb/debian/openssl" },
		"shifted":        func(p *agentapi.Package) { p.Name, p.Version = "openssl3", ".0.15-1~deb12u1" },
	} {
		changed := slices.Clone(pkgs)
		mod(&changed[0])
		if agentapi.InventoryHash(changed) == h {
			t.Errorf("changing %s kept the hash", name)
		}
	}
	// The empty inventory has the SHA-256 of nothing.
	if got := agentapi.InventoryHash(nil); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("InventoryHash(nil) = %s", got)
	}
}

func TestSign(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	r := httptest.NewRequest("POST", "https://patchward.example"+agentapi.PathCheckIn, nil)
	now := time.Unix(1_790_000_000, 0)
	body := []byte(`{"inventory_hash":"x"}`)
	agentapi.Sign(r, "agent-1", key, body, now)
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(agentapi.HeaderSignature))
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Get(agentapi.HeaderAgent) != "agent-1" || r.Header.Get(agentapi.HeaderTimestamp) != "1790000000" || r.Header.Get(agentapi.HeaderProtocol) != "1" {
		t.Errorf("headers = %v", r.Header)
	}
	if !ed25519.Verify(pub, []byte(agentapi.SigningString("POST", agentapi.PathCheckIn, now, body)), sig) {
		t.Error("signature does not verify over the signing string")
	}
}
