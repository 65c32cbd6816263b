package main

import "github.com/spf13/cobra"

func newAssetCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "asset", Short: "(being written)"}
}
