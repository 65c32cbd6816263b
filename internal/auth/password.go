package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters. They are a value rather than
// constants so that tests hash with cheap settings and an operator can raise
// the cost later: stored hashes carry their own parameters, and a login
// rehashes a password whose parameters differ from the current ones.
type Params struct {
	// Memory is in KiB.
	Memory  uint32
	Time    uint32
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// DefaultParams returns the costs for a small clinic server: 64 MiB, one
// pass, two lanes is above the OWASP floor for argon2id yet keeps a hash
// near 50 ms on two cores. The service caps concurrent hashes so a burst of
// logins cannot exhaust memory. It is a function, not a variable, so no
// caller can lower the cost for everyone.
func DefaultParams() Params {
	return Params{Memory: 64 * 1024, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}
}

// Bounds on parameters read from storage. A stored hash is outside data: one
// altered to demand a terabyte of memory must fail to parse, not take the
// server down.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 64
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
)

// validate reports whether p is within the bounds this package accepts.
func (p Params) validate() error {
	switch {
	case p.Threads < 1:
		return errors.New("parallelism must be at least 1")
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("memory must be between %d and %d KiB", 8*uint32(p.Threads), maxMemoryKiB)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("iterations must be between 1 and %d", maxTime)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt must be %d to %d bytes", minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("hash must be %d to %d bytes", minKeyLen, maxKeyLen)
	}
	return nil
}

// String renders p in the PHC parameter form, e.g. "m=65536,t=1,p=2".
func (p Params) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads)
}

// Hash is a parsed argon2id hash in PHC string format:
//
//	$argon2id$v=19$m=65536,t=1,p=2$<salt>$<hash>
//
// with salt and hash in unpadded standard base64, as the reference
// implementation and other PHC libraries write them.
type Hash struct {
	Params Params
	Salt   []byte
	Key    []byte
}

var b64 = base64.RawStdEncoding.Strict()

// String formats h as a PHC string.
func (h Hash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$%s$%s$%s", argon2.Version, h.Params, b64.EncodeToString(h.Salt), b64.EncodeToString(h.Key))
}

// errHashFormat is the cause for every malformed stored hash. Parse errors
// name the part that is wrong but never echo the hash itself into logs.
var errHashFormat = errors.New("malformed argon2id hash")

// ParseHash parses a PHC argon2id string. It accepts only the canonical form
// that Hash.String writes, so a parsed hash formats back to the same text.
func ParseHash(s string) (Hash, error) {
	// The base64 decoder skips line breaks; reject them so that only one
	// spelling of a hash parses.
	if strings.ContainsAny(s, "\r\n") {
		return Hash{}, fmt.Errorf("%w: contains a line break", errHashFormat)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return Hash{}, fmt.Errorf("%w: want 5 $-separated fields", errHashFormat)
	}
	if parts[1] != "argon2id" {
		return Hash{}, fmt.Errorf("%w: algorithm is not argon2id", errHashFormat)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Hash{}, fmt.Errorf("%w: unsupported version", errHashFormat)
	}
	var h Hash
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return Hash{}, fmt.Errorf("%w: want parameters m, t and p", errHashFormat)
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return Hash{}, fmt.Errorf("%w: parameter %d is not %s", errHashFormat, i+1, name)
		}
		bits := 32
		if name == "p" {
			bits = 8
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil || strconv.FormatUint(n, 10) != v {
			return Hash{}, fmt.Errorf("%w: parameter %s is not a canonical number", errHashFormat, name)
		}
		switch name {
		case "m":
			h.Params.Memory = uint32(n)
		case "t":
			h.Params.Time = uint32(n)
		case "p":
			h.Params.Threads = uint8(n)
		}
	}
	var err error
	if h.Salt, err = b64.DecodeString(parts[4]); err != nil {
		return Hash{}, fmt.Errorf("%w: salt is not base64", errHashFormat)
	}
	if h.Key, err = b64.DecodeString(parts[5]); err != nil {
		return Hash{}, fmt.Errorf("%w: hash is not base64", errHashFormat)
	}
	h.Params.SaltLen, h.Params.KeyLen = uint32(len(h.Salt)), uint32(len(h.Key))
	if err := h.Params.validate(); err != nil {
		return Hash{}, fmt.Errorf("%w: %w", errHashFormat, err)
	}
	return h, nil
}

// HashPassword hashes password with params and a salt read from random.
func HashPassword(password string, p Params, random io.Reader) (string, error) {
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("argon2id parameters: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := io.ReadFull(random, salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return Hash{Params: p, Salt: salt, Key: key}.String(), nil
}

// VerifyPassword reports whether password matches the PHC string encoded,
// comparing in constant time, and whether the hash should be recomputed
// because it was made with parameters other than current.
func VerifyPassword(encoded, password string, current Params) (ok, rehash bool, err error) {
	h, err := ParseHash(encoded)
	if err != nil {
		return false, false, err
	}
	key := argon2.IDKey([]byte(password), h.Salt, h.Params.Time, h.Params.Memory, h.Params.Threads, uint32(len(h.Key)))
	ok = subtle.ConstantTimeCompare(key, h.Key) == 1
	return ok, ok && h.Params != current, nil
}

// passwordAlphabet leaves out characters that are easy to misread when a
// password is copied from a terminal: I, O, l, 0 and 1.
const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

// generatePassword returns 25 characters from passwordAlphabet (about 145
// bits) in dash-separated groups of five, so it can be read aloud or typed.
func generatePassword(random io.Reader) (string, error) {
	const groups, per = 5, 5
	var sb strings.Builder
	// Rejection sampling keeps every character equally likely.
	limit := byte(256 - 256%len(passwordAlphabet))
	buf := make([]byte, 64)
	for n := 0; n < groups*per; {
		if _, err := io.ReadFull(random, buf); err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		for _, b := range buf {
			if b >= limit || n == groups*per {
				continue
			}
			if n > 0 && n%per == 0 {
				sb.WriteByte('-')
			}
			sb.WriteByte(passwordAlphabet[int(b)%len(passwordAlphabet)])
			n++
		}
	}
	return sb.String(), nil
}

// BootstrapPassword returns a strong random password for a first admin or a
// reset, meant to be shown once and changed. It reads crypto/rand, which
// cannot fail on supported platforms.
func BootstrapPassword() string {
	p, err := generatePassword(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not return errors since Go 1.24
	}
	return p
}
