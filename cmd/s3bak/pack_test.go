package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestPacksAreKeptWhileAnyBackupUsesThem backs up three trees of small
// files, which go into packs: the second shares one content with the
// first, the third nothing. A pack is deleted only when no kept backup uses
// any file in it, every kept backup restores, and the catalog has neither
// orphans nor missing objects afterwards.
func TestPacksAreKeptWhileAnyBackupUsesThem(t *testing.T) {
	t.Parallel()
	bucket := newBucket(t)
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	table := "shop/items-00112233445566778899aabbccddeeff"
	trees := []map[string]string{
		{"nb-1-big-TOC.txt": "first a", "nb-1-big-Digest.crc32": "first b"},
		{"nb-1-big-TOC.txt": "first a", "nb-2-big-Digest.crc32": "second c"},
		{"nb-3-big-TOC.txt": "third d"},
	}
	var ids []string
	var packs []string
	for i, files := range trees {
		dir := t.TempDir()
		tag := "t" + string(rune('1'+i))
		for name, body := range files {
			writeFile(t, filepath.Join(dir, table, "snapshots", tag, name), []byte(body))
		}
		st := statsOf(t, mustRun(t, append([]string{"backup", "--data-dir", dir, "--tag", tag}, node...)...))
		if st.Packs != 1 {
			t.Fatalf("backup %d stored its new contents in %d packs, want 1: %+v", i+1, st.Packs, st)
		}
		ids = append(ids, st.ID)
		packs = listKeys(t, bucket, "prod/cass-1/data/packs/")
	}
	if len(packs) != 3 || len(listKeys(t, bucket, "prod/cass-1/data/")) != 3 {
		t.Fatalf("bucket holds packs %v; want 3 and no other object", packs)
	}
	purge := func(keep string) int {
		r := mustRun(t, append([]string{"purge", "--keep-last", keep, "--grace", "0", "--output", "json"}, node...)...)
		var reps []struct {
			Deleted int `json:"objects_deleted"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil || len(reps) != 1 {
			t.Fatalf("purge report %s (%v)", r.stdout, err)
		}
		return reps[0].Deleted
	}
	// The first backup's pack still holds the content the second uses.
	if n := purge("2"); n != 0 || len(listKeys(t, bucket, "prod/cass-1/data/")) != 3 {
		t.Fatalf("purge --keep-last 2 deleted %d objects; the first pack is still used by the second backup", n)
	}
	target := t.TempDir()
	mustRun(t, append([]string{"restore", "--backup", ids[1], "--target", target}, node...)...)
	compareTree(t, target, map[string][]byte{table + "/nb-1-big-TOC.txt": []byte("first a"), table + "/nb-2-big-Digest.crc32": []byte("second c")})
	// Now nothing kept uses the first two packs.
	if n := purge("1"); n != 2 {
		t.Fatalf("purge --keep-last 1 deleted %d objects, want the 2 packs no kept backup uses", n)
	}
	if left := listKeys(t, bucket, "prod/cass-1/data/"); len(left) != 1 || !strings.HasSuffix(left[0], ".pack") {
		t.Fatalf("bucket holds %v after the purge, want the third backup's pack", left)
	}
	target = t.TempDir()
	mustRun(t, append([]string{"restore", "--backup", ids[2], "--target", target}, node...)...)
	compareTree(t, target, map[string][]byte{table + "/nb-3-big-TOC.txt": []byte("third d")})
	v := mustRun(t, append([]string{"verify", "--deep"}, node...)...)
	if !strings.Contains(v.stdout, "0 problems") || !strings.Contains(v.stdout, "0 orphans") || !strings.Contains(v.stdout, "0 backups reference missing objects") {
		t.Fatalf("verify after purge: %s", v.stdout)
	}
}
