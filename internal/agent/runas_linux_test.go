//go:build linux

package agent

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestRunAsUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	st := ExecRunner{}.Run(context.Background(), Command{Name: "id", Argv: []string{"id", "-u"}, User: "nobody"})
	if !st.OK || strings.TrimSpace(st.Output) != "65534" {
		t.Fatalf("id -u as nobody = %q (ok=%v); want 65534", st.Output, st.OK)
	}
	st = ExecRunner{}.Run(context.Background(), Command{Name: "id", Argv: []string{"id", "-u"}, User: "no-such-user-pw"})
	if st.OK || st.ExitCode != -1 {
		t.Fatalf("unknown user ran: %+v", st)
	}
}
