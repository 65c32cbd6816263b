//go:build !windows

package main

import (
	"context"
	"log/slog"
)

// runService runs the daemon in the foreground; systemd (or launchd)
// supervises it.
func runService(ctx context.Context, _ *slog.Logger, run func(context.Context) error) error {
	return run(ctx)
}
