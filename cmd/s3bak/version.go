package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Set by release builds (make release):
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=<sha>"
//
// Left empty, the version comes from the build information Go records: the
// module version when built as a module (go install …@v1.2.0), and the
// commit, its time and whether the work tree had changes when built from a
// git checkout.
var (
	version string
	commit  string
)

// versionInfo is what `s3bak version --output json` prints.
type versionInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: version, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		vcsCommit := ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsCommit = s.Value
			case "vcs.time":
				v.CommitTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
		if v.Commit == "" {
			v.Commit = vcsCommit
		} else if vcsCommit != "" && vcsCommit != v.Commit {
			// -X main.commit names another commit than the tree built:
			// the build information's time and state are not its.
			v.CommitTime, v.Modified = "", false
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	// git describe --dirty, or Go's own version of a checkout, already
	// says so.
	if dirtyVersion(v.Version) {
		v.Modified = true
	}
	return v
}

// String is the version as the version command prints it and as manifests
// record it (after "s3bak "): version, commit, and whether the tree had
// uncommitted changes.
func (v versionInfo) String() string {
	s := v.Version
	if v.Commit != "" {
		s += " commit " + v.Commit
		if v.Modified && !dirtyVersion(v.Version) {
			s += " (modified)"
		}
	}
	return s
}

func dirtyVersion(s string) bool {
	return strings.HasSuffix(s, "-dirty") || strings.HasSuffix(s, "+dirty")
}

// toolVersion is recorded in manifests: "s3bak v1.2.0 commit 4f…".
func toolVersion() string { return "s3bak " + buildVersion().String() }

func newVersionCommand(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit s3bak was built from",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			v := buildVersion()
			if output == "json" {
				return writeJSON(g.stdout, v)
			}
			s := toolVersion()
			if v.CommitTime != "" {
				s += ", " + v.CommitTime
			}
			_, err := fmt.Fprintf(g.stdout, "%s, %s %s\n", s, v.Go, v.Platform)
			return err
		},
	}
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	return cmd
}
