package main

import "github.com/spf13/cobra"

func newAuditCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "audit", Short: "(being written)"}
}
