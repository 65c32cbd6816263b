package main

import (
	"bytes"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

// calendarMaxMonths bounds the CLI's range as the API bounds its own.
const calendarMaxMonths = 12

func newCalendarCmd(g *globals) *cobra.Command {
	var (
		from, to, out string
		asICS, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "calendar [--from DATE] [--to DATE] [--ics [--out FILE]]",
		Short: "The rolling maintenance calendar: windows, emergency windows, freezes, assets' own windows and changes",
		Long: `Print the maintenance calendar from the policy in force and the inventory:
policy windows (the baseline marked), emergency windows, freezes, the
assets' own weekly windows aggregated, and the changes booked or under way
(their planned windows and rollout waves). --from defaults to now and --to to six
months later; at most twelve months. --ics writes the iCalendar feed (RFC 5545)
that the server publishes at /api/v1/calendar.ics, to --out or standard output.`,
		Example: `  patchward calendar --from 2026-12-01 --to 2027-03-01
  patchward calendar --ics --out maintenance.ics`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			now := time.Now().UTC().Truncate(time.Second)
			start, end, err := calendarRange(now, from, to)
			if err != nil {
				return err
			}
			if out != "" && !asICS {
				return errs.E(errs.Invalid, "--out writes the iCalendar feed; add --ics")
			}
			db, err := g.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			changes := changeService(db)
			src := &api.PolicyCalendar{Policies: policyService(db), Inventory: inventory.NewService(db.Inventory(), nil),
				Changes: changes, Rollouts: rollouts(db, changes)}
			v, err := src.Calendar(ctx, start, end)
			if err != nil {
				return err
			}
			feed := deploy.Feed{Occurrences: v.Entries, Changes: v.Changes}
			w := cmd.OutOrStdout()
			for _, s := range v.Skipped {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: asset %s (%s) left out: %s\n", s.Name, s.ID, s.Problem)
			}
			switch {
			case asICS && out != "" && out != "-":
				if err := writeFileAtomic(out, bytes.NewReader(feed.ICS(now))); err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %d events from %s to %s\n", out, len(v.Entries)+len(v.Changes), start.Format(time.DateOnly), end.Format(time.DateOnly))
				return err
			case asICS:
				_, err = w.Write(feed.ICS(now))
				return err
			case asJSON:
				return printJSON(w, api.NewCalendarResponse(start, end, v))
			}
			if len(v.Entries) == 0 && len(v.Changes) == 0 {
				_, err = fmt.Fprintln(w, "Nothing on the calendar in this range.")
				return err
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "START\tEND\tZONE\tKIND\tNAME\tASSETS")
			for _, o := range v.Entries {
				loc := zoneOrUTC(o.Zone)
				layout := "2006-01-02 15:04"
				if o.AllDay {
					layout = time.DateOnly
				}
				end := o.End.In(loc)
				if o.AllDay {
					end = end.AddDate(0, 0, -1) // the last frozen day, inclusive
				}
				kind := string(o.Kind)
				if o.Baseline {
					kind += " (baseline)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", o.Start.In(loc).Format(layout), end.Format(layout), o.Zone, kind, o.Name, o.Assets)
			}
			if err := tw.Flush(); err != nil || len(v.Changes) == 0 {
				return err
			}
			fmt.Fprintln(w, "\nCHANGES")
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "START\tEND\tZONE\tCHANGE\tTYPE\tSTATE\tWHAT\tTITLE")
			for _, c := range v.Changes {
				loc := zoneOrUTC(c.Zone)
				what := "planned"
				if c.Ring != "" {
					what = fmt.Sprintf("wave %s, %d assets", c.Ring, c.Assets)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Start.In(loc).Format("2006-01-02 15:04"), c.End.In(loc).Format("2006-01-02 15:04"),
					c.Zone, c.ChangeID, c.Type, c.State, what, c.Title)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "start: a date or an RFC 3339 time (default now)")
	fl.StringVar(&to, "to", "", "end: a date or an RFC 3339 time (default six months after --from)")
	fl.BoolVar(&asICS, "ics", false, "write the iCalendar feed instead of a table")
	fl.StringVarP(&out, "out", "o", "", "with --ics: the file to write (default standard output)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// calendarRange reads --from and --to as the API reads its parameters.
func calendarRange(now time.Time, from, to string) (time.Time, time.Time, error) {
	start := now
	if from != "" {
		t, err := audit.ParseTime(from, false)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--from: %w", err)
		}
		start = t
	}
	end := start.AddDate(0, 6, 0)
	if to != "" {
		t, err := audit.ParseTime(to, false)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--to: %w", err)
		}
		end = t
	}
	if !end.After(start) {
		return time.Time{}, time.Time{}, errs.E(errs.Invalid, "--to must be after --from")
	}
	if end.After(start.AddDate(0, calendarMaxMonths, 0)) {
		return time.Time{}, time.Time{}, errs.E(errs.Invalid, "the calendar spans at most %d months", calendarMaxMonths)
	}
	return start, end, nil
}

// zoneOrUTC is the named zone, or UTC for a name this machine cannot load
// (the row still names the zone it meant).
func zoneOrUTC(name string) *time.Location {
	if l, err := time.LoadLocation(name); err == nil {
		return l
	}
	return time.UTC
}
