// Package deploy is the scheduling half of change deployment: when a job
// may run (maintenance windows, freezes, emergency windows, per-asset
// weekly windows, all in each site's time zone and across DST changes),
// which ring an asset deploys in, whether a ring's wave may hand over to
// the next (Gate), and how many jobs a site may run at once (Throttle).
//
// Everything here is pure domain logic over a compiled policy: no storage,
// no clock of its own (every call takes the time it reasons about), so the
// scheduler, the API and the tests share one behaviour. Times follow the
// policy package's single DST rule (policy.FromWall): a wall-clock time in
// a spring-forward gap reads with the offset before the gap, a repeated
// time is its first occurrence.
package deploy
