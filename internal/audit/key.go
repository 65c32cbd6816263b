package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/patchward/patchward/internal/errs"
)

// Origin is the first line of every checkpoint. It names the log, so a
// checkpoint from another transparency log signed with a reused key can
// never pass for one of ours.
const Origin = "patchward audit log"

// KeyName is the name inside the signed-note keys Patchward generates. Note
// key names may not contain spaces, which is why it is not Origin itself.
const KeyName = "patchward-audit"

// algEd25519 is the signed-note algorithm byte for Ed25519 keys.
const algEd25519 = 1

// Signer signs checkpoints with the installation's private Ed25519 note key.
type Signer struct {
	s        note.Signer
	verifier *Verifier
}

// GenerateKey returns a new private note key in the signed-note text form
// ("PRIVATE+KEY+name+hash+base64"), which is what the key file holds.
func GenerateKey() (string, error) {
	skey, _, err := note.GenerateKey(rand.Reader, KeyName)
	if err != nil {
		return "", fmt.Errorf("generate audit key: %w", err)
	}
	return skey, nil
}

// NewSigner parses a private note key and derives its public verifier key,
// so the key file is the only secret to keep and the public half can always
// be printed from it.
func NewSigner(skey string) (*Signer, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "the audit key is not a valid private note key")
	}
	vkey, err := verifierKeyOf(skey)
	if err != nil {
		return nil, err
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	return &Signer{s: s, verifier: v}, nil
}

// verifierKeyOf derives the public verifier key from an Ed25519 private note
// key. The note package checks the key hash in NewSigner but offers no way
// back to the public key, so the seed is decoded here.
func verifierKeyOf(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errs.E(errs.Invalid, "the audit key is not a valid private note key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algEd25519 {
		return "", errs.E(errs.Invalid, "the audit key is not an Ed25519 private note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return "", fmt.Errorf("derive audit verifier key: %w", err)
	}
	return vkey, nil
}

// Verifier returns the public half of s.
func (s *Signer) Verifier() *Verifier { return s.verifier }

// Sign returns the signed checkpoint note for a tree of size with root.
func (s *Signer) Sign(size int64, root []byte) (string, error) {
	if size < 0 {
		return "", fmt.Errorf("sign checkpoint: negative size %d", size)
	}
	text := log.Checkpoint{Origin: Origin, Size: uint64(size), Hash: root}.Marshal()
	msg, err := note.Sign(&note.Note{Text: string(text)}, s.s)
	if err != nil {
		return "", fmt.Errorf("sign checkpoint: %w", err)
	}
	return string(msg), nil
}

// Verifier checks checkpoint signatures with a public verifier key. It is
// all an auditor needs, so it is built from the printable key string alone.
type Verifier struct {
	v   note.Verifier
	key string
}

// NewVerifier parses a public verifier key ("name+hash+base64"), as printed
// by `patchward audit pubkey`.
func NewVerifier(vkey string) (*Verifier, error) {
	vkey = strings.TrimSpace(vkey)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "not a valid audit verifier key")
	}
	return &Verifier{v: v, key: vkey}, nil
}

// Key returns the verifier key in its printable form.
func (v *Verifier) Key() string { return v.key }

// ErrBadSignature reports a checkpoint whose signature does not verify with
// the given key: forged, altered, or signed by another installation.
var ErrBadSignature = errors.New("checkpoint signature does not verify")

// Open verifies a signed checkpoint note and returns the size and root it
// commits to. Only the signed text is trusted; nothing outside it is.
func (v *Verifier) Open(signed string) (size int64, root []byte, err error) {
	cp, _, _, err := log.ParseCheckpoint([]byte(signed), Origin, v.v)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if cp.Size > 1<<62 {
		return 0, nil, fmt.Errorf("%w: size %d out of range", ErrBadSignature, cp.Size)
	}
	return int64(cp.Size), cp.Hash, nil
}

// LoadOrCreateKey reads the private note key at path, creating it with mode
// 0600 when it does not exist yet, so the first `serve` or `audit
// checkpoint` sets the log up without a separate step. It reports whether
// it created the key, which the caller should tell the operator: the public
// key must be recorded somewhere the database administrator cannot change.
func LoadOrCreateKey(path string) (s *Signer, created bool, err error) {
	s, err = LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, false, err
	}
	skey, err := GenerateKey()
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create audit key directory: %w", err)
	}
	// O_EXCL: if two processes race to create the key, one wins and the
	// other reads the winner's key instead of overwriting it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		s, err = LoadKey(path)
		return s, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("create audit key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("write audit key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("write audit key: %w", err)
	}
	s, err = NewSigner(skey)
	return s, true, err
}

// LoadKey reads an existing private note key file. It refuses a file other
// users can read or write: whoever holds the key can sign a rewritten log.
func LoadKey(path string) (*Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open audit key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open audit key: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, errs.E(errs.Invalid, "audit key %s has mode %04o; it must be readable by its owner only (chmod 600)", path, st.Mode().Perm())
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read audit key: %w", err)
	}
	s, err := NewSigner(buf.String())
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	return s, nil
}
