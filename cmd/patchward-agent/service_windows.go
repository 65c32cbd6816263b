//go:build windows

package main

import (
	"context"
	"log/slog"

	"golang.org/x/sys/windows/svc"
)

// serviceName is the name docs/agent.md installs the service under.
const serviceName = "PatchwardAgent"

// runService runs the daemon under the Windows service control manager
// when started by it (the SCM kills a service that does not answer its
// control requests), else in the foreground.
func runService(ctx context.Context, log *slog.Logger, run func(context.Context) error) error {
	isSvc, err := svc.IsWindowsService()
	if err != nil || !isSvc {
		return run(ctx)
	}
	h := &handler{ctx: ctx, run: run, log: log}
	if err := svc.Run(serviceName, h); err != nil {
		return err
	}
	return h.err
}

type handler struct {
	ctx context.Context
	run func(context.Context) error
	log *slog.Logger
	err error
}

// Execute answers the SCM: running until Stop or Shutdown, then cancelling
// the daemon and waiting for it (a running job is allowed to finish).
func (h *handler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			h.err = err
			if err != nil {
				h.log.Error("agent stopped", "err", err)
				return true, 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
			}
		}
	}
}
