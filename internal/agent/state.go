package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// Identity is what enrollment gave the agent, plus what it must remember
// across restarts about its conversation with the server.
type Identity struct {
	Server          string        `json:"server"`
	AgentID         string        `json:"agent_id"`
	AssetID         string        `json:"asset_id"`
	CheckInInterval time.Duration `json:"checkin_interval"`
	// AckedInventoryHash is the inventory hash the server last accepted;
	// the full inventory is sent again only when it changes.
	AckedInventoryHash string `json:"acked_inventory_hash,omitempty"`
	// Window is the last maintenance window the server sent, so a restart
	// while the server is unreachable still enforces it.
	Window   *agentapi.Window `json:"window,omitempty"`
	Enrolled time.Time        `json:"enrolled"`
}

// StateDir is the agent's private directory: key, identity, job journal.
type StateDir struct{ Dir string }

const (
	keyFile      = "agent.key"
	identityFile = "identity.json"
)

// Init creates the directory readable by its owner only.
func (s StateDir) Init() error {
	if err := os.MkdirAll(filepath.Join(s.Dir, "jobs"), 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone; tighten it.
	if err := os.Chmod(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	return nil
}

// LoadOrCreateKey returns the agent's Ed25519 key, generating it on first
// use. The private key never leaves this file (mode 0600).
func (s StateDir) LoadOrCreateKey() (ed25519.PrivateKey, error) {
	path := filepath.Join(s.Dir, keyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return parseKey(b)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read agent key: %w", err)
	}
	if err := s.Init(); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate agent key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode agent key: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	// O_EXCL: two enroll commands racing must not overwrite each other's key.
	if err := writeFileSync(path, pemBytes, 0o600, true); err != nil {
		return nil, fmt.Errorf("write agent key: %w", err)
	}
	return priv, nil
}

// LoadKey returns the existing key or an error saying to enroll first.
func (s StateDir) LoadKey() (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, keyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errs.E(errs.Invalid, "no agent key in %s: run `patchward-agent enroll` first", s.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read agent key: %w", err)
	}
	return parseKey(b)
}

func parseKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errs.E(errs.Invalid, "agent key file is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "agent key file")
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errs.E(errs.Invalid, "agent key is not Ed25519")
	}
	return priv, nil
}

// LoadIdentity reads the enrollment result.
func (s StateDir) LoadIdentity() (Identity, error) {
	var id Identity
	b, err := os.ReadFile(filepath.Join(s.Dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return id, errs.E(errs.Invalid, "agent is not enrolled (no %s in %s): run `patchward-agent enroll`", identityFile, s.Dir)
	}
	if err != nil {
		return id, fmt.Errorf("read agent identity: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, errs.Wrap(errs.Invalid, err, "agent identity file is corrupt")
	}
	return id, nil
}

// SaveIdentity writes the identity atomically and durably.
func (s StateDir) SaveIdentity(id Identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(s.Dir, identityFile), b, 0o600, false); err != nil {
		return fmt.Errorf("save agent identity: %w", err)
	}
	return nil
}

// writeFileSync writes data to path so that after a crash the file holds
// either its old or its new content, never a torn mix: write a temporary
// file, fsync it, rename over path, fsync the directory.
func writeFileSync(path string, data []byte, perm os.FileMode, exclusive bool) error {
	dir := filepath.Dir(path)
	if exclusive {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s already exists", path)
		}
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if exclusive {
		// Link fails if path appeared meanwhile, unlike rename.
		if err := os.Link(tmp, path); err != nil {
			return err
		}
	} else if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// JobsDir is where the job journal lives.
func (s StateDir) JobsDir() string { return filepath.Join(s.Dir, "jobs") }

// RemoveKey deletes the key (re-enrollment with a fresh identity).
func (s StateDir) RemoveKey() error {
	for _, f := range []string{keyFile, identityFile} {
		if err := os.Remove(filepath.Join(s.Dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", f, err)
		}
	}
	return nil
}

// PublicKey returns the public half of the agent's key.
func PublicKey(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// Enroll creates (or reuses) the agent key, presents it with a one-time
// token, and records the resulting identity in the state directory.
func Enroll(ctx context.Context, st StateDir, server, token string, facts agentapi.Facts, hc *http.Client) (Identity, error) {
	key, err := st.LoadOrCreateKey()
	if err != nil {
		return Identity{}, err
	}
	client, err := NewClient(server, "", nil, hc, nil)
	if err != nil {
		return Identity{}, err
	}
	resp, err := client.Enroll(ctx, token, PublicKey(key), facts)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	id := Identity{Server: server, AgentID: resp.AgentID, AssetID: resp.AssetID, CheckInInterval: resp.CheckInInterval.Duration, Enrolled: time.Now().UTC()}
	return id, st.SaveIdentity(id)
}
