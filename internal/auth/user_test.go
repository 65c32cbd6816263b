package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
)

func TestNewUserValidate(t *testing.T) {
	const pw = "a long enough passphrase"
	for _, tc := range []struct {
		name string
		in   NewUser
		// want maps each field that should be rejected to a fragment of its
		// message; nil means valid.
		want map[string]string
	}{
		{"valid", NewUser{Username: "alice", Role: RoleAdmin, Password: pw}, nil},
		{"valid normalised", NewUser{Username: "  Alice.Smith@Clinic ", DisplayName: " Alice ", Role: " Viewer", Password: pw}, nil},
		{"valid punctuation", NewUser{Username: "j_doe-2", Role: RoleOperator, Password: pw}, nil},
		{"valid unicode passphrase", NewUser{Username: "zoe", Role: RoleAuditor, Password: "pâté für alle 🍕🍕"}, nil},
		{"short username", NewUser{Username: "al", Role: RoleAdmin, Password: pw}, map[string]string{"username": "3 to 64"}},
		{"long username", NewUser{Username: strings.Repeat("a", 65), Role: RoleAdmin, Password: pw}, map[string]string{"username": "3 to 64"}},
		{"username space", NewUser{Username: "al ice", Role: RoleAdmin, Password: pw}, map[string]string{"username": "may contain only"}},
		{"username leading dot", NewUser{Username: ".alice", Role: RoleAdmin, Password: pw}, map[string]string{"username": "start with"}},
		{"username unicode", NewUser{Username: "аlice", Role: RoleAdmin, Password: pw}, map[string]string{"username": "may contain only"}},
		{"bad role", NewUser{Username: "alice", Role: "root", Password: pw}, map[string]string{"role": "admin, approver, operator, auditor, viewer"}},
		{"no role", NewUser{Username: "alice", Password: pw}, map[string]string{"role": "must be one of"}},
		{"short password", NewUser{Username: "alice", Role: RoleAdmin, Password: "elevenchars"}, map[string]string{"password": "at least 12"}},
		{"12 runes ok", NewUser{Username: "alice", Role: RoleAdmin, Password: "ééééééééééé1"}, nil},
		{"long password", NewUser{Username: "alice", Role: RoleAdmin, Password: strings.Repeat("x", 257)}, map[string]string{"password": "at most 256"}},
		{"256 ok", NewUser{Username: "alice", Role: RoleAdmin, Password: strings.Repeat("xy", 128)}, nil},
		{"password is username", NewUser{Username: "alice.smith.x", Role: RoleAdmin, Password: "Alice.Smith.X"}, map[string]string{"password": "same as the username"}},
		{"password control char", NewUser{Username: "alice", Role: RoleAdmin, Password: "abcdefghijkl\x00"}, map[string]string{"password": "control"}},
		{"password bad utf8", NewUser{Username: "alice", Role: RoleAdmin, Password: "abcdefghijkl\xff"}, map[string]string{"password": "UTF-8"}},
		{"display name too long", NewUser{Username: "alice", Role: RoleAdmin, Password: pw, DisplayName: strings.Repeat("n", 129)}, map[string]string{"display_name": "at most 128"}},
		{"display name newline", NewUser{Username: "alice", Role: RoleAdmin, Password: pw, DisplayName: "A\nB"}, map[string]string{"display_name": "control"}},
		{"everything wrong", NewUser{Username: "!", Role: "x", Password: "short"}, map[string]string{"username": "3 to 64", "role": "must be one of", "password": "at least 12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Normalize()
			err := in.Validate()
			checkFields(t, err, tc.want)
		})
	}
}

func checkFields(t *testing.T, err error, want map[string]string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("Validate() = %v; want nil", err)
		}
		return
	}
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Invalid {
		t.Fatalf("Validate() = %v; want an Invalid *errs.Error", err)
	}
	got := map[string]string{}
	for f, msg := range e.Fields {
		got[f] = msg
		if frag, ok := want[f]; ok && strings.Contains(msg, frag) {
			got[f] = frag
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate() fields (-want +got):\n%s\nmessage: %s", diff, e.Message)
	}
}

func TestUserUpdateValidate(t *testing.T) {
	name, long, bad := "Dr. Alice", strings.Repeat("n", 129), Role("superuser")
	admin, yes := RoleAdmin, true
	for _, tc := range []struct {
		name string
		in   UserUpdate
		want map[string]string
	}{
		{"display name", UserUpdate{DisplayName: &name}, nil},
		{"role", UserUpdate{Role: &admin}, nil},
		{"disable", UserUpdate{Disabled: &yes}, nil},
		{"empty", UserUpdate{}, map[string]string{"update": "no field"}},
		{"bad role", UserUpdate{Role: &bad}, map[string]string{"role": "must be one of"}},
		{"long name", UserUpdate{DisplayName: &long}, map[string]string{"display_name": "at most 128"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Normalize()
			checkFields(t, in.Validate(), tc.want)
		})
	}
}

func TestNormalizeUsername(t *testing.T) {
	for in, want := range map[string]string{"Alice": "alice", "  bob\t": "bob", "": ""} {
		if got := NormalizeUsername(in); got != want {
			t.Errorf("NormalizeUsername(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestSecretFormat(t *testing.T) {
	s := NewService(nil, Options{})
	tok, err := s.newSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 || !wellFormedSecret(tok) {
		t.Errorf("newSecret() = %q; want 43 chars of base64url", tok)
	}
	for _, bad := range []string{"", "abc", tok + "A", tok[:42] + "=", tok[:42] + "+", strings.Repeat("A", 42) + "B"} {
		if wellFormedSecret(bad) {
			t.Errorf("wellFormedSecret(%q) = true; want false", bad)
		}
	}
}
