package main

import "github.com/spf13/cobra"

func newServeCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "serve", Short: "(being written)"}
}
