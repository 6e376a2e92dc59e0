package layering

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/s3bak/s3bak/"

// low are the building blocks: they know nothing of backups, manifests,
// catalogs or locks, so each can be tested, benchmarked and reused alone.
// A low package imports no package of this module but other low ones.
var low = []string{
	"pkg/budget",
	"pkg/chunk",
	"pkg/eintr",
	"pkg/pagecache",
	"pkg/progress",
	"pkg/source",
	"pkg/sysprio",
	"pkg/transfer",
	"pkg/units",
}

// testOnly are helpers for tests, the demo and the bench: the s3bak binary
// never links them.
var testOnly = []string{
	"pkg/faultproxy",
	"pkg/miniotest",
	"pkg/preflight/fakeaws",
	"pkg/testfixture",
}

// tools may import test helpers: they are not part of the binary.
var tools = []string{"bench", "demo"}

type pkg struct {
	ImportPath string
	Imports    []string
}

// modulePackages lists every package of the module with the module
// packages its non-test files import, paths relative to the module.
func modulePackages(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", module+"...")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var own []string
		for _, imp := range p.Imports {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				own = append(own, rel)
			}
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = own
	}
	return pkgs
}

func TestPackagesAreLayered(t *testing.T) {
	pkgs := modulePackages(t)
	for _, p := range slices.Concat(low, testOnly) {
		if _, ok := pkgs[p]; !ok {
			t.Errorf("%s is listed in this test but is not a package of the module: update the lists", p)
		}
	}
	for p, imports := range pkgs {
		for _, imp := range imports {
			switch {
			case slices.Contains(low, p) && !slices.Contains(low, imp):
				t.Errorf("%s imports %s: a low-level package imports only other low-level ones (%s)", p, imp, strings.Join(low, ", "))
			case strings.HasPrefix(p, "pkg/") && !strings.HasPrefix(imp, "pkg/"):
				t.Errorf("%s imports %s: nothing under pkg/ imports a command or tool", p, imp)
			case slices.Contains(testOnly, imp) && !slices.Contains(testOnly, p) && !slices.Contains(tools, p):
				t.Errorf("%s imports %s: test helpers are for tests, the demo and the bench, not the binary", p, imp)
			}
		}
	}
}
