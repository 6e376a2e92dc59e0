package runlog

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/manifest"
)

func TestRunKeysSortByStart(t *testing.T) {
	start := time.Date(2026, 11, 25, 2, 0, 0, 123e6, time.UTC)
	var keys []string
	for i, cmd := range []string{"verify", "backup", "purge", "restore"} {
		k := manifest.RunKey(start.Add(time.Duration(i)*time.Millisecond), cmd)
		if !manifest.IsRunKey("prefix/prod/n1/" + k) {
			t.Fatalf("%s is not a run key", k)
		}
		keys = append(keys, k)
	}
	if keys[0] != "runs/20261125T020000Z.123-verify.json" {
		t.Fatalf("key %s", keys[0])
	}
	if !slices.IsSorted(keys) {
		t.Fatalf("keys do not sort as their starts: %v", keys)
	}
	for _, k := range []string{"runs/x-backup.json", "runs/20261125T020000Z.123.json", "backups/20261125T020000Z.123-backup.json", "runs/20261125T020000Z.123-backup.tmp"} {
		if manifest.IsRunKey(k) {
			t.Errorf("%s taken for a run key", k)
		}
	}
}

func TestScrub(t *testing.T) {
	secret := "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	got := Scrub("signature of "+secret+" and "+secret[:20]+" failed", secret, "", "short")
	if strings.Contains(got, secret) || !strings.Contains(got, "[redacted]") {
		t.Fatalf("Scrub: %s", got)
	}
	if got := Scrub("nothing here", secret); got != "nothing here" {
		t.Fatalf("Scrub changed %q", got)
	}
}
