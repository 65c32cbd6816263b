//go:build linux

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// runAgent enrolls the real patchward-agent binary at url with token,
// configured by cfg (YAML lines; the state directory is added), and runs
// it as a daemon until the test ends. It returns the agent's ID and its
// log; an agent that logged an error fails the test, and a failed test
// prints the log.
func runAgent(t *testing.T, ctx context.Context, url, token string, cfg []string) (string, *syncBuf) {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.Join(append([]string{"state_dir: " + state}, cfg...), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := agentCmd(ctx, "-config", cfgPath, "enroll", "--server", url, "--token", token).CombinedOutput(); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	var ident struct {
		AgentID string `json:"agent_id"`
	}
	b, err := os.ReadFile(filepath.Join(state, "identity.json"))
	if err != nil || json.Unmarshal(b, &ident) != nil || ident.AgentID == "" {
		t.Fatalf("identity after enroll: %s, %v", b, err)
	}
	cmd := agentCmd(ctx, "-config", cfgPath, "run")
	logs := &syncBuf{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		} else if strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("agent logged errors:\n%s", logs.String())
		}
	})
	return ident.AgentID, logs
}
