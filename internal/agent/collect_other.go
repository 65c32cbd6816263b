//go:build !linux && !windows && !darwin

package agent

import (
	"context"
	"time"
)

// RebootRequired is unknown on this OS.
func RebootRequired() bool { return false }

// HostCollector reports facts only on operating systems without a
// package collector.
type HostCollector struct {
	Cfg Config
	Run Runner
	Now func() time.Time
}

// NewHostCollector returns the collector for this OS.
func NewHostCollector(cfg Config, run Runner) *HostCollector {
	return &HostCollector{Cfg: cfg, Run: run, Now: time.Now}
}

// Collect implements Collector with facts alone.
func (c *HostCollector) Collect(ctx context.Context) (Inventory, error) {
	inv := Inventory{Facts: commonFacts()}
	inv.Warnings = []string{"no package collector for this OS"}
	inv.finish()
	return inv, nil
}
