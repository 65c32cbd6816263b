package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
)

// MaxStepOutput bounds the output kept per step: the tail is what explains
// a failure, and a chatty package manager must not bloat results.
const MaxStepOutput = 8 << 10

// tailBuffer keeps the last max bytes written to it and counts the rest.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int64
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.dropped += int64(over)
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dropped > 0 {
		return fmt.Sprintf("[... %d earlier bytes omitted]\n%s", t.dropped, t.buf)
	}
	return string(t.buf)
}

// Command is one command to run: argv (never a shell string) and extra
// environment.
type Command struct {
	Name    string
	Argv    []string
	Env     []string
	Timeout time.Duration
	// User, when set, runs the command as that user (and its primary
	// group) instead of the agent's own: health checks and read-only
	// queries need no root, so they do not get it.
	User string
	// Stdout, when set, also receives the command's complete standard
	// output (up to MaxCapture bytes), for callers that parse it; the step
	// keeps only the bounded tail.
	Stdout *bytes.Buffer
}

// MaxCapture bounds a parsed command output (a package list).
const MaxCapture = 64 << 20

// limitedBuffer stops accepting bytes past its limit but never fails the
// writer (the command must not die of SIGPIPE).
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}

// Runner runs commands and reports them as steps. The default runs real
// processes; tests of the executor's logic substitute a fake.
type Runner interface {
	Run(ctx context.Context, c Command) agentapi.Step
}

// ExecRunner runs real processes with a bounded, combined output.
type ExecRunner struct {
	Now func() time.Time
}

// Run starts c.Argv[0] with c.Argv[1:] and waits for it (or its timeout).
func (r ExecRunner) Run(ctx context.Context, c Command) agentapi.Step {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	st := agentapi.Step{Name: c.Name, Command: c.Argv, Started: now().UTC()}
	if len(c.Argv) == 0 {
		st.ExitCode = -1
		st.Output = "no command configured"
		st.Ended = now().UTC()
		return st
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	out := &tailBuffer{max: MaxStepOutput}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdout, cmd.Stderr = out, out
	if c.Stdout != nil {
		cmd.Stdout = io.MultiWriter(out, limitedBuffer{b: c.Stdout, max: MaxCapture})
	}
	cmd.Stdin = nil
	// A child that keeps our pipes open after being killed must not hang
	// the agent.
	cmd.WaitDelay = 10 * time.Second
	configureProcess(cmd)
	if c.User != "" {
		if err := runAs(cmd, c.User); err != nil {
			st.ExitCode = -1
			st.Output = err.Error()
			st.Ended = now().UTC()
			return st
		}
	}
	err := cmd.Run()
	st.Ended = now().UTC()
	st.Output = out.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
		st.OK = true
	case errors.As(err, &ee):
		st.ExitCode = ee.ExitCode()
		if ctx.Err() != nil {
			st.Output = strings.TrimRight(st.Output, "\n") + fmt.Sprintf("\n[agent: stopped after %s: %v]", c.Timeout, ctx.Err())
		}
	default:
		st.ExitCode = -1
		st.Output = strings.TrimRight(st.Output+"\n"+err.Error(), "\n")
	}
	return st
}

// note builds a step that ran no command (a decision or a probe).
func note(now func() time.Time, name string, ok bool, start time.Time, format string, args ...any) agentapi.Step {
	st := agentapi.Step{Name: name, OK: ok, Started: start.UTC(), Ended: now().UTC(), Output: fmt.Sprintf(format, args...)}
	if !ok {
		st.ExitCode = 1
	}
	if len(st.Output) > MaxStepOutput {
		st.Output = st.Output[len(st.Output)-MaxStepOutput:]
	}
	return st
}

// lastLine returns the last non-empty line of s, for short error messages.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// joinSteps reports several commands that together make one change (an
// install followed by a removal) as a single step: the first command,
// every command's output in order under a "$ argv" line, the exit code of
// the first that failed, and the time from the first start to the last
// end. The output keeps its tail, as a step's always does.
func joinSteps(name string, steps ...agentapi.Step) agentapi.Step {
	switch len(steps) {
	case 0:
		return agentapi.Step{Name: name, OK: true, Output: "nothing to do"}
	case 1:
		st := steps[0]
		st.Name = name
		return st
	}
	out := agentapi.Step{Name: name, Command: steps[0].Command, Started: steps[0].Started, OK: true}
	var b strings.Builder
	for _, s := range steps {
		fmt.Fprintf(&b, "$ %s\n%s", strings.Join(s.Command, " "), s.Output)
		if !strings.HasSuffix(s.Output, "\n") {
			b.WriteByte('\n')
		}
		out.Ended = s.Ended
		if !s.OK && out.OK {
			out.OK, out.ExitCode = false, s.ExitCode
		}
	}
	out.Output = b.String()
	if over := len(out.Output) - MaxStepOutput; over > 0 {
		out.Output = fmt.Sprintf("[... %d earlier bytes omitted]\n%s", over, out.Output[over:])
	}
	return out
}
