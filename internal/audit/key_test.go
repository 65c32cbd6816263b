package audit_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/audit"
)

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "audit.key")
	s1, created, err := audit.LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey(new) = %v, %v; want created, nil", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %04o; want 0600", got)
	}
	s2, created, err := audit.LoadOrCreateKey(path)
	if err != nil || created {
		t.Fatalf("LoadOrCreateKey(existing) = %v, %v; want not created, nil", created, err)
	}
	if a, b := s1.Verifier().Key(), s2.Verifier().Key(); a != b {
		t.Errorf("reloaded verifier key = %q; want %q", b, a)
	}
	if !strings.HasPrefix(s1.Verifier().Key(), audit.KeyName+"+") {
		t.Errorf("verifier key = %q; want prefix %q", s1.Verifier().Key(), audit.KeyName+"+")
	}
	skey, _ := os.ReadFile(path)
	if strings.Contains(s1.Verifier().Key(), strings.TrimSpace(string(skey))) {
		t.Errorf("verifier key contains the private key")
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.LoadKey(path); err == nil {
		t.Errorf("LoadKey(mode 0644) = nil; want an error")
	}
}

func TestSignAndOpen(t *testing.T) {
	s := newSigner(t)
	root := make([]byte, 32)
	root[0] = 7
	note, err := s.Sign(12, root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(note, audit.Origin+"\n12\n") {
		t.Errorf("Sign() = %q; want the checkpoint body first", note)
	}
	size, got, err := s.Verifier().Open(note)
	if err != nil || size != 12 || string(got) != string(root) {
		t.Errorf("Open(Sign(12, root)) = %d, %x, %v; want 12, %x, nil", size, got, err, root)
	}
	other := newSigner(t)
	if _, _, err := other.Verifier().Open(note); !errors.Is(err, audit.ErrBadSignature) {
		t.Errorf("Open with another key = %v; want ErrBadSignature", err)
	}
}

func TestNewSignerRejects(t *testing.T) {
	for _, k := range []string{"", "PRIVATE+KEY+x+00000000+AAAA", "not a key"} {
		if _, err := audit.NewSigner(k); err == nil {
			t.Errorf("NewSigner(%q) = nil error; want an error", k)
		}
	}
	if _, err := audit.NewVerifier("garbage"); err == nil {
		t.Errorf("NewVerifier(garbage) = nil error; want an error")
	}
}
