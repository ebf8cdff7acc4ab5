package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v3"
)

func init() {
	// --version only: -v is left free (urfave/cli's default steals it).
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version and exit"}
}

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version string

// buildVersion returns the version: the -ldflags value, else the module
// version recorded by the go tool, else "(devel)".
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func versionCommand(env *env) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of esctl",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if env.jsonOutput(cmd) {
				return env.printJSON(map[string]string{"version": buildVersion(), "go": runtime.Version()})
			}
			_, err := fmt.Fprintf(env.stdout, "esctl %s (%s, %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
