package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

// withInventory opens the database, runs fn with an inventory service and
// closes the database again.
func (g *globals) withInventory(ctx context.Context, fn func(*inventory.Service) error) error {
	db, err := g.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(inventory.NewService(db.Inventory(), time.Now))
}

func newAssetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "asset",
		Short: "List, show, import, export and reconcile the asset inventory",
	}
	cmd.AddCommand(newAssetListCmd(g), newAssetShowCmd(g), newAssetImportCmd(g), newAssetExportCmd(g), newAssetReconcileCmd(g))
	return cmd
}

func newAssetListCmd(g *globals) *cobra.Command {
	var (
		f       inventory.Filter
		site    string
		typ     string
		crit    string
		asJSON  bool
		limit   int
		offsetN int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List assets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if typ != "" && !slices.Contains(inventory.Types, inventory.Type(typ)) {
				return errs.E(errs.Invalid, "--type %q is not one of: %s", typ, enumNames(inventory.Types))
			}
			if crit != "" && !slices.Contains(inventory.Levels, inventory.Level(crit)) {
				return errs.E(errs.Invalid, "--criticality %q is not one of: %s", crit, enumNames(inventory.Levels))
			}
			f.Type, f.Criticality, f.Limit, f.Offset = inventory.Type(typ), inventory.Level(crit), limit, offsetN
			return g.withInventory(ctx, func(svc *inventory.Service) error {
				sites, err := svc.Sites(ctx)
				if err != nil {
					return err
				}
				if site != "" {
					if f.SiteID, err = resolveSiteID(sites, site); err != nil {
						return err
					}
				}
				page, err := svc.Assets(ctx, f)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return printJSON(out, page)
				}
				names := map[string]string{}
				for _, s := range sites {
					names[s.ID] = s.Name
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tTYPE\tCRITICALITY\tSITE\tHOSTNAME\tSERIAL")
				for _, a := range page.Assets {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, a.Type, a.Criticality, names[a.SiteID], a.Hostname, a.Serial)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				_, err = fmt.Fprintf(out, "%d of %d assets\n", len(page.Assets), page.Total)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&site, "site", "", "only assets at this site (name or ID)")
	fl.StringVar(&typ, "type", "", "only assets of this type ("+enumNames(inventory.Types)+")")
	fl.StringVar(&crit, "criticality", "", "only assets of this criticality ("+enumNames(inventory.Levels)+")")
	fl.StringVar(&f.Q, "q", "", "search name, hostname, serial, asset tag, make and model")
	fl.IntVar(&limit, "limit", 100, fmt.Sprintf("at most this many assets (max %d)", inventory.MaxPage))
	fl.IntVar(&offsetN, "offset", 0, "skip this many assets")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func resolveSiteID(sites []inventory.Site, v string) (string, error) {
	for _, s := range sites {
		if s.ID == v || strings.EqualFold(s.Name, v) {
			return s.ID, nil
		}
	}
	return "", errs.E(errs.NotFound, "no site named %q", v)
}

func enumNames[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func newAssetShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one asset with its software",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withInventory(ctx, func(svc *inventory.Service) error {
				a, err := svc.Asset(ctx, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return printJSON(out, a)
				}
				sites, err := svc.Sites(ctx)
				if err != nil {
					return err
				}
				groups, err := svc.Groups(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				row := inventory.CSVRow(&a, sites, groups)
				for i, h := range inventory.CSVHeader() {
					if row[i] != "" && h != "software_count" {
						fmt.Fprintf(tw, "%s:\t%s\n", h, strings.ReplaceAll(row[i], "\n", "\n\t"))
					}
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(a.Software) > 0 {
					fmt.Fprintf(out, "\nsoftware (%d):\n", len(a.Software))
					tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
					for _, s := range a.Software {
						fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, s.Version, s.Ecosystem)
					}
					return tw.Flush()
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAssetImportCmd(g *globals) *cobra.Command {
	var (
		kind   string
		maps   []string
		match  []string
		dryRun bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a CSV of purchase records, discovery results or assets",
		Long: `Import a CSV file (comma, semicolon or tab separated; "-" reads standard input).

--kind purchase   a purchase ledger: rows set purchase_ref / purchased_at
--kind discovery  a scan or discovery export: rows set last_seen_at to now
--kind inventory  a spreadsheet of assets, such as "patchward asset export"
--kind nmap       nmap XML output (nmap -oX): hosts that were up count as seen

Columns are matched to fields by name ("Serial Number" -> serial, "PO Number"
-> purchase_ref, ...). Map others with --map 'Header=field,Other=-' ('-'
ignores a column). Each row updates the asset it matches (by serial, asset
tag, MAC, then hostname) or creates one. If any row has a problem, every
problem is listed and nothing is imported. --dry-run shows what would happen.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			mapping, err := parseColumnMapping(maps)
			if err != nil {
				return err
			}
			in := cmd.InOrStdin()
			name := "stdin"
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in, name = f, filepath.Base(args[0])
			}
			opt := inventory.ImportOptions{Kind: inventory.ImportKind(kind), Mapping: mapping, DryRun: dryRun, Match: match, Name: name}
			return g.withInventory(ctx, func(svc *inventory.Service) error {
				var (
					rep inventory.ImportReport
					err error
				)
				if kind == "nmap" {
					rep, err = svc.ImportNmap(ctx, cliActor(), in, name, dryRun)
				} else {
					rep, err = svc.ImportCSV(ctx, cliActor(), io.LimitReader(in, inventory.MaxImportBytes+1), opt)
				}
				out := cmd.OutOrStdout()
				if asJSON {
					if werr := printJSON(out, rep); werr != nil {
						return werr
					}
				} else if werr := printImportReport(out, rep, err == nil); werr != nil {
					return werr
				}
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&kind, "kind", "", "what the file holds: purchase, discovery, inventory or nmap (required)")
	fl.StringArrayVar(&maps, "map", nil, "column mapping 'Header=field,...' ('-' ignores a column); repeatable")
	fl.StringSliceVar(&match, "match", nil, "identifiers to match rows on, in order (default serial,asset_tag,mac,hostname)")
	fl.BoolVar(&dryRun, "dry-run", false, "show what would change and write nothing")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	_ = cmd.MarkFlagRequired("kind")
	return cmd
}

// parseColumnMapping reads --map values: "Header=field" pairs separated by commas.
func parseColumnMapping(vals []string) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range vals {
		for _, pair := range strings.Split(v, ",") {
			if strings.TrimSpace(pair) == "" {
				continue
			}
			h, f, ok := strings.Cut(pair, "=")
			if !ok || strings.TrimSpace(h) == "" || strings.TrimSpace(f) == "" {
				return nil, errs.E(errs.Invalid, "--map %q: want Header=field (or Header=- to ignore the column)", pair)
			}
			m[strings.TrimSpace(h)] = strings.TrimSpace(f)
		}
	}
	return m, nil
}

func printImportReport(w io.Writer, rep inventory.ImportReport, ok bool) error {
	var b strings.Builder
	if len(rep.Columns) > 0 {
		b.WriteString("columns:\n")
		for _, c := range rep.Columns {
			fmt.Fprintf(&b, "  %-24s -> %s\n", c.Column, c.Field)
		}
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintf(&b, "problems found: %d\n", rep.ErrorCount)
		for _, e := range rep.Errors {
			fmt.Fprintf(&b, "  line %d", e.Row)
			if e.Column != "" {
				fmt.Fprintf(&b, ", column %q", e.Column)
			}
			fmt.Fprintf(&b, ": %s\n", e.Message)
		}
		if rep.ErrorCount > len(rep.Errors) {
			fmt.Fprintf(&b, "  ... and %d more\n", rep.ErrorCount-len(rep.Errors))
		}
	} else {
		for _, r := range rep.Preview {
			if r.Action == inventory.ActionUnchanged {
				continue
			}
			fmt.Fprintf(&b, "line %d: %s %q", r.Row, r.Action, r.AssetName)
			if r.AssetID != "" {
				fmt.Fprintf(&b, " (%s)", r.AssetID)
			}
			b.WriteString("\n")
			for _, c := range r.Changes {
				if r.Action == inventory.ActionCreate {
					fmt.Fprintf(&b, "    %s: %s\n", c.Field, c.New)
				} else {
					fmt.Fprintf(&b, "    %s: %q -> %q\n", c.Field, c.Old, c.New)
				}
			}
		}
	}
	verb := "imported"
	switch {
	case !ok:
		verb = "NOT imported (nothing was written)"
	case rep.DryRun:
		verb = "dry run, nothing was written"
	}
	fmt.Fprintf(&b, "%d rows: %d to create, %d to update, %d unchanged; %s\n", rep.Rows, rep.Created, rep.Updated, rep.Unchanged, verb)
	if ok && !rep.DryRun {
		fmt.Fprintf(&b, "import %s recorded in the audit log\n", rep.ID)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func newAssetExportCmd(g *globals) *cobra.Command {
	var format, outPath string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export every asset as CSV (re-importable) or JSON (with software)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if format != "csv" && format != "json" {
				return errs.E(errs.Invalid, "--format %q: use csv or json", format)
			}
			return g.withInventory(ctx, func(svc *inventory.Service) error {
				write := svc.ExportCSV
				if format == "json" {
					write = svc.ExportJSON
				}
				if outPath == "" || outPath == "-" {
					return write(ctx, cmd.OutOrStdout())
				}
				return writeExportFile(outPath, func(w io.Writer) error { return write(ctx, w) })
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", "csv", "csv or json")
	cmd.Flags().StringVar(&outPath, "out", "", "write to this file instead of standard output")
	return cmd
}

// writeExportFile writes through a temporary file and renames it, so a
// failed export never leaves a truncated file that looks complete. The
// inventory says which devices handle PHI and how exposed they are, so the
// file is readable by its owner only.
func writeExportFile(path string, fn func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after a successful rename
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func newAssetReconcileCmd(g *globals) *cobra.Command {
	var (
		staleDays int
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Compare purchase records with what discovery and agents have seen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return g.withInventory(ctx, func(svc *inventory.Service) error {
				r, err := svc.Reconcile(ctx, staleDays)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return printJSON(out, r)
				}
				var b strings.Builder
				fmt.Fprintf(&b, "%d assets; %d both purchased and seen\n", r.Total, r.Matched)
				section := func(title string, as []inventory.Asset) {
					fmt.Fprintf(&b, "\n%s: %d\n", title, len(as))
					for _, a := range as {
						seen := "never"
						if a.LastSeenAt != nil {
							seen = a.LastSeenAt.Format(time.DateOnly)
						}
						fmt.Fprintf(&b, "  %s  %-30s serial=%s tag=%s po=%s last seen=%s\n", a.ID, a.Name, a.Serial, a.AssetTag, a.PurchaseRef, seen)
					}
				}
				section("purchased, never seen on the network", r.PurchasedNeverSeen)
				section("seen, never purchased (shadow or unmanaged)", r.SeenNeverPurchased)
				section(fmt.Sprintf("stale (not seen for more than %d days)", r.StaleDays), r.Stale)
				_, err = io.WriteString(out, b.String())
				return err
			})
		},
	}
	cmd.Flags().IntVar(&staleDays, "stale-days", inventory.DefaultStaleDays, "days without a sighting before an asset is stale")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
