package main

import (
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/catalog"
)

// taggedBackups backs up node n1 three times: tag day1, then day2, then
// day1 again with other contents. It returns the bucket, the ids in order
// and what each backup holds (restored path -> bytes).
func taggedBackups(t *testing.T) (bucket string, ids []string, want []map[string][]byte) {
	t.Helper()
	bucket = newBucket(t)
	dataDir := t.TempDir()
	table := filepath.Join(dataDir, "shop", "orders-0123456789abcdef0123456789abcdef")
	for _, tag := range []string{"day1", "day2", "day1"} {
		data := make([]byte, 3000)
		rand.Read(data)
		files := map[string][]byte{"nb-1-big-Data.db": data, "nb-1-big-TOC.txt": []byte("Data.db\nTOC.txt\n")}
		w := map[string][]byte{}
		for name, b := range files {
			writeFile(t, filepath.Join(table, "snapshots", tag, name), b)
			w["shop/orders-0123456789abcdef0123456789abcdef/"+name] = b
		}
		r := mustRun(t, "backup", "--bucket", bucket, "--cluster", "prod", "--node", "n1", "--tag", tag,
			"--data-dir", dataDir, "--output", "json", "--again")
		var out struct {
			BackupID string `json:"backup_id"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.BackupID == "" {
			t.Fatalf("backup output %q: %v", r.stdout, err)
		}
		ids = append(ids, out.BackupID)
		want = append(want, w)
	}
	return bucket, ids, want
}

func TestSelectByTag(t *testing.T) {
	t.Parallel()
	bucket, ids, want := taggedBackups(t)
	n1 := []string{"--bucket", bucket, "--cluster", "prod", "--node", "n1"}
	cmd := func(args ...string) []string { return append(args, n1...) }

	// The newest backup of day1 is the third; of day2 the second.
	target := t.TempDir()
	r := mustRun(t, cmd("restore", "--tag", "day1", "--target", target)...)
	if !strings.Contains(r.stdout, "restored backup "+ids[2]+" (tag day1)") {
		t.Fatalf("restore --tag day1 did not restore %s: %s", ids[2], r.stdout)
	}
	compareTree(t, target, want[2])
	target = t.TempDir()
	mustRun(t, cmd("restore", "--tag", "day2", "--target", target)...)
	compareTree(t, target, want[1])

	// An unknown tag names the tags there are, newest first.
	wantExit(t, s3bak(t, cmd("restore", "--tag", "day3", "--target", t.TempDir())...), exitNotFound,
		`no complete backup of tag "day3" on node n1; tags: day1, day2`)
	wantExit(t, s3bak(t, cmd("verify", "--tag", "day3")...), exitNotFound, `tags: day1, day2`)
	// --backup and --tag together are a usage error.
	wantExit(t, s3bak(t, cmd("restore", "--tag", "day1", "--backup", ids[0], "--target", t.TempDir())...), exitUsage,
		"--backup and --tag")
	wantExit(t, s3bak(t, cmd("verify", "--tag", "day1", "--backup", ids[0])...), exitUsage, "--backup and --tag")

	// A filter that matches nothing is not found, not a failure.
	wantExit(t, s3bak(t, cmd("restore", "--tag", "day2", "--keyspace", "nosuch", "--target", t.TempDir())...), exitNotFound,
		"no file that matches", "keyspaces in it: shop")
	wantExit(t, s3bak(t, cmd("restore", "--table", "nosuch", "--target", t.TempDir())...), exitNotFound, "no file that matches")

	// verify --tag checks that backup.
	r = mustRun(t, cmd("verify", "--tag", "day2", "--deep", "--output", "json")...)
	var v verifyOutput
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.BackupID != ids[1] || !v.OK {
		t.Fatalf("verify --tag day2: %v %s", err, r.stdout)
	}

	// list --tag filters; a tag no backup has is not found.
	r = mustRun(t, cmd("list", "--tag", "day1", "--output", "json")...)
	var sums []catalog.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sums); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sums {
		if s.Tag != "day1" {
			t.Fatalf("list --tag day1 lists %+v", s)
		}
		got = append(got, s.ID)
	}
	if !slices.Equal(got, []string{ids[0], ids[2]}) {
		t.Fatalf("list --tag day1: %v, want %v", got, []string{ids[0], ids[2]})
	}
	wantExit(t, s3bak(t, cmd("list", "--tag", "day3")...), exitNotFound, `tags: day1, day2`)

	// purge --dry-run --tag reports that tag's backups only; --tag
	// without --dry-run is refused.
	r = mustRun(t, cmd("purge", "--keep-last", "1", "--dry-run", "--tag", "day1")...)
	if !strings.Contains(r.stdout, "keep   n1 "+ids[2]) || !strings.Contains(r.stdout, "remove n1 "+ids[0]) || strings.Contains(r.stdout, ids[1]) {
		t.Fatalf("purge --dry-run --tag day1:\n%s", r.stdout)
	}
	wantExit(t, s3bak(t, cmd("purge", "--keep-last", "1", "--tag", "day1")...), exitUsage, "--dry-run")
	wantExit(t, s3bak(t, cmd("purge", "--keep-last", "1", "--dry-run", "--tag", "day3")...), exitNotFound, "tags: day1, day2")
	mustRun(t, cmd("list", "--tag", "day2")...) // the dry run deleted nothing

	// The file's tag: is backup's snapshot tag: it selects nothing.
	conf := filepath.Join(t.TempDir(), "s3bak.yaml")
	writeFile(t, conf, []byte("tag: day2\n"))
	target = t.TempDir()
	mustRun(t, cmd("restore", "--config", conf, "--backup", ids[0], "--target", target)...)
	compareTree(t, target, want[0])
	r = mustRun(t, cmd("list", "--config", conf, "--output", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), &sums); err != nil || len(sums) != 3 {
		t.Fatalf("list with tag: in the file: %v %s", err, r.stdout)
	}
	mustRun(t, cmd("purge", "--config", conf, "--keep-last", "3")...)
}

func TestRestoreFromNode(t *testing.T) {
	t.Parallel()
	bucket, ids, want := taggedBackups(t)
	// A replacement host, n2, restores n1's backup of day2.
	n2 := []string{"--bucket", bucket, "--cluster", "prod", "--node", "n2"}
	target := t.TempDir()
	r := mustRun(t, append([]string{"restore", "--from-node", "n1", "--tag", "day2", "--target", target}, n2...)...)
	compareTree(t, target, want[1])
	if !strings.Contains(r.stdout, "restored backup "+ids[1]) || !strings.Contains(r.stdout, "prod/n1 (from node n1, on node n2)") {
		t.Fatalf("restore --from-node does not say whose backup it restored: %s", r.stdout)
	}
	mustRun(t, append([]string{"verify", "--from-node", "n1", "--tag", "day1"}, n2...)...)
	// n2 itself has no backup.
	wantExit(t, s3bak(t, append([]string{"restore", "--tag", "day2", "--target", t.TempDir()}, n2...)...), exitNotFound,
		"on node n2: it has no complete backup at all")
	wantExit(t, s3bak(t, append([]string{"restore", "--from-node", "../n1", "--target", t.TempDir()}, n2...)...), exitUsage)
}
