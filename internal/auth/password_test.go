package auth

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// cheap keeps tests fast; the format and logic are the same as production.
var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashRoundTrip(t *testing.T) {
	const pw = "correct horse battery staple"
	enc, err := HashPassword(pw, cheap, rand.Reader)
	if err != nil {
		t.Fatalf("HashPassword: %v", err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("HashPassword = %q; want PHC argon2id prefix", enc)
	}
	h, err := ParseHash(enc)
	if err != nil {
		t.Fatalf("ParseHash(%q): %v", enc, err)
	}
	if got := h.String(); got != enc {
		t.Errorf("ParseHash(%q).String() = %q; want the input back", enc, got)
	}
	for _, tc := range []struct {
		name       string
		pw         string
		current    Params
		ok, rehash bool
	}{
		{"right", pw, cheap, true, false},
		{"wrong", pw + "!", cheap, false, false},
		{"empty", "", cheap, false, false},
		{"params changed", pw, Params{Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, true, true},
		{"wrong and params changed", "nope", DefaultParams(), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := VerifyPassword(enc, tc.pw, tc.current)
			if err != nil {
				t.Fatalf("VerifyPassword: %v", err)
			}
			if ok != tc.ok || rehash != tc.rehash {
				t.Errorf("VerifyPassword = ok %v, rehash %v; want %v, %v", ok, rehash, tc.ok, tc.rehash)
			}
		})
	}
	// Two hashes of one password differ: the salt is random.
	enc2, _ := HashPassword(pw, cheap, rand.Reader)
	if enc2 == enc {
		t.Errorf("two hashes of one password are equal: %q", enc)
	}
}

// TestKnownVector checks that PHC strings from other implementations verify:
// the argon2id vector for "password" and salt "somesalt" at m=64,t=1,p=1
// (golang.org/x/crypto/argon2 TestVectors), written in PHC form.
func TestKnownVector(t *testing.T) {
	const enc = "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$ZVrRXqxlLcWfcXCnMyv0m4Rpvh/bnCi7"
	ok, _, err := VerifyPassword(enc, "password", DefaultParams())
	if err != nil {
		t.Fatalf("VerifyPassword: %v", err)
	}
	if !ok {
		t.Errorf("VerifyPassword(reference vector) = false; want true")
	}
}

func TestParseHashMalformed(t *testing.T) {
	const salt, key = "c29tZXNhbHRzb21lc2FsdA", "RdescudvJCsgt3ub+b+dWRWJTmaaJObGRdescudvJCs"
	good := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	if _, err := ParseHash(good); err != nil {
		t.Fatalf("ParseHash(%q): %v", good, err)
	}
	for _, s := range []string{
		"",
		"password",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt,
		good + "$",
		"x" + good,
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$bcrypt$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1,k=2$" + salt + "$" + key,
		"$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=-1,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=4,t=1,p=1$" + salt + "$" + key,           // below 8*p
		"$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key,  // 4 TiB
		"$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key, // overflows uint32
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1000,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key,                          // 4-byte salt
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$a2V5",                      // 3-byte key
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,                  // padded
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "=",              // padded
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:len(key)-1] + "t", // non-zero trailing bits
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNh_HRzb21lc2FsdA$" + key,          // base64url, not std
	} {
		if h, err := ParseHash(s); err == nil {
			t.Errorf("ParseHash(%q) = %+v; want an error", s, h)
		} else if !errors.Is(err, errHashFormat) {
			t.Errorf("ParseHash(%q) error %v does not wrap errHashFormat", s, err)
		}
	}
}

// FuzzParseHash holds the parser of stored hashes to: no panics, errors
// that wrap errHashFormat, and canonical round trips for what it accepts.
func FuzzParseHash(f *testing.F) {
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObGRdescudvJCs")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$ZVrRXqxlLcWfcXCnMyv0m4Rpvh/bnCi7")
	f.Add("$argon2id$v=19$m=0,t=0,p=0$$")
	f.Add("$$$$$")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			if !errors.Is(err, errHashFormat) {
				t.Fatalf("ParseHash(%q) error %v does not wrap errHashFormat", s, err)
			}
			return
		}
		if got := h.String(); got != s {
			t.Fatalf("ParseHash(%q).String() = %q; want the input", s, got)
		}
		if err := h.Params.validate(); err != nil {
			t.Fatalf("ParseHash(%q) accepted invalid params: %v", s, err)
		}
	})
}

func TestBootstrapPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		p := BootstrapPassword()
		if len(p) != 29 || strings.Count(p, "-") != 4 {
			t.Fatalf("BootstrapPassword() = %q; want 5 dash-separated groups of 5", p)
		}
		for _, r := range strings.ReplaceAll(p, "-", "") {
			if !strings.ContainsRune(passwordAlphabet, r) {
				t.Fatalf("BootstrapPassword() = %q has %q outside the alphabet", p, r)
			}
		}
		if err := ValidatePassword("admin", p); err != nil {
			t.Fatalf("BootstrapPassword() = %q fails the policy: %v", p, err)
		}
		if seen[p] {
			t.Fatalf("BootstrapPassword() repeated %q", p)
		}
		seen[p] = true
	}
}

func TestGeneratePasswordReadError(t *testing.T) {
	if _, err := generatePassword(strings.NewReader("short")); err == nil {
		t.Errorf("generatePassword(short reader) = nil error; want one")
	}
}
