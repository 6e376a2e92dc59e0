package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
)

// packFiles encodes raws as a backup does and stores them one after the
// other in one pack, returning their manifest entries.
func packFiles(t *testing.T, node manifest.Node, raws map[string][]byte) ([]manifest.File, []byte) {
	t.Helper()
	enc, err := chunk.NewEncoder(chunk.Options{Mode: chunk.Auto, ChunkSize: 64 << 10, Level: 3, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var pack []byte
	var files []manifest.File
	for path, raw := range raws {
		obj, l := enc.EncodeBytes(nil, raw)
		sum := sha256.Sum256(raw)
		f := manifest.File{Path: path, Size: int64(len(raw)), ModTime: time.Unix(1_700_000_000, 0).UTC(), Mode: 0o640,
			SHA256: hex.EncodeToString(sum[:]), Key: manifest.PackKey("p-" + node.Name), Offset: int64(len(pack)),
			StoredSize: l.StoredSize, Compression: l.Mode, ChunkSize: l.ChunkSize, Chunks: manifest.ChunksOf(l)}
		pack = append(pack, obj...)
		files = append(files, f)
	}
	if err := client.PutBytes(context.Background(), node.Root()+files[0].Key, pack, ""); err != nil {
		t.Fatal(err)
	}
	return files, pack
}

// TestRestorePackedFiles restores files that share a pack (one of several
// chunks) byte for byte, then fails, naming the damage and leaving nothing,
// once one byte of one of them is changed in the pack.
func TestRestorePackedFiles(t *testing.T) {
	node := testNode(t)
	raws := map[string][]byte{
		"ks/t-1/nb-1-big-TOC.txt":       []byte("Data.db\nTOC.txt\n"),
		"ks/t-1/nb-1-big-Statistics.db": mixedData(200<<10+7, 4),
		"ks/t-1/nb-1-big-Digest.crc32":  []byte("12345"),
		"ks/t-1/nb-1-big-Summary.db":    mixedData(3000, 5),
		"ks/t-1/nb-1-big-Filter.db":     mixedData(70<<10, 6),
	}
	files, pack := packFiles(t, node, raws)
	if runs, rest := splitPacked(files); len(runs) != 1 || len(rest) != 0 || len(runs[0].files) != len(files) {
		t.Fatalf("%d runs (%d files left apart), want the whole pack in one GET", len(runs), len(rest))
	}
	target := t.TempDir()
	if _, err := Run(context.Background(), client, node, backupOf(node, files...), Options{Target: target}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, target, raws)

	var victim manifest.File
	for _, f := range files {
		if f.Path == "ks/t-1/nb-1-big-Statistics.db" {
			victim = f
		}
	}
	pack[victim.Offset+victim.StoredSize/2] ^= 0xff
	if err := client.PutBytes(context.Background(), node.Root()+victim.Key, pack, ""); err != nil {
		t.Fatal(err)
	}
	target = t.TempDir()
	_, err := Run(context.Background(), client, node, backupOf(node, files...), Options{Target: target})
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("restore of a damaged pack: %v, want a verification failure", err)
	}
	checkTree(t, target, map[string][]byte{})
}

// TestPackRunWhoseFileCannotBeCreated: a run's files are created while
// its GET goes; one that cannot be (its name is longer than the file
// system takes) ends the restore with an error naming it, the GET stopped
// and its memory given back, and nothing left in the target.
func TestPackRunWhoseFileCannotBeCreated(t *testing.T) {
	stageSmall(t) // files written under their final names
	ctx := bounded(t, 60*time.Second)
	node := testNode(t)
	long := "nb-1-big-" + strings.Repeat("x", 300) + ".db"
	raws := map[string][]byte{
		"ks/t-1/nb-1-big-TOC.txt": []byte("Data.db\nTOC.txt\n"),
		"ks/t-1/" + long:          mixedData(3000, 8),
	}
	files, _ := packFiles(t, node, raws)
	target := t.TempDir()
	b := budget.New(8 << 20)
	_, err := Run(ctx, client, node, backupOf(node, files...), Options{Target: target, Budget: b})
	if err == nil || !strings.Contains(err.Error(), long) || !strings.Contains(err.Error(), "nothing was moved into place") {
		t.Fatalf("restore: %v, want an error naming the file that could not be created", err)
	}
	t.Logf("restore failed as it should: %v", err)
	if used := b.InUse(); used != 0 {
		t.Fatalf("%d bytes of the budget still held", used)
	}
	checkTree(t, target, map[string][]byte{})
}

// TestFileNamedNearTheLimitRestores: a file whose name is as long as the
// file system takes is restored under it, though its temporary name would
// be longer (tempName shortens it).
func TestFileNamedNearTheLimitRestores(t *testing.T) {
	ctx := bounded(t, 60*time.Second)
	node := testNode(t)
	long := "ks/t-1/nb-1-big-" + strings.Repeat("x", maxName-len("nb-1-big-.db")) + ".db"
	raws := map[string][]byte{
		"ks/t-1/nb-1-big-TOC.txt": []byte("Data.db\nTOC.txt\n"),
		long:                      mixedData(3000, 9),
	}
	files, _ := packFiles(t, node, raws)
	target := t.TempDir()
	if _, err := Run(ctx, client, node, backupOf(node, files...), Options{Target: target}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, target, raws)
}

// TestRestoreGroupedFiles restores files of one group (small files coded
// together, each its bytes from its Skip) and a file packed alone after
// it, byte for byte; then, with one byte of the group changed in the pack,
// fails naming the damage and leaves nothing.
func TestRestoreGroupedFiles(t *testing.T) {
	node := testNode(t)
	enc, err := chunk.NewEncoder(chunk.Options{Mode: chunk.Auto, ChunkSize: 1 << 20, Level: 3, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	names := []string{"ks/t-1/nb-1-big-Digest.crc32", "ks/t-1/nb-1-big-Statistics.db", "ks/t-1/nb-1-big-TOC.txt"}
	raws := map[string][]byte{names[0]: []byte("12345"), names[1]: mixedData(9000, 7), names[2]: []byte("Data.db\nTOC.txt\n")}
	var grp []byte
	for _, n := range names {
		grp = append(grp, raws[n]...)
	}
	obj, l := enc.EncodeBytes(nil, grp)
	key := manifest.PackKey("g-" + node.Name)
	var files []manifest.File
	var skip int64
	for _, n := range names {
		sum := sha256.Sum256(raws[n])
		files = append(files, manifest.File{Path: n, Size: int64(len(raws[n])), ModTime: time.Unix(1_700_000_000, 0).UTC(),
			Mode: 0o640, SHA256: hex.EncodeToString(sum[:]), Key: key, StoredSize: l.StoredSize, Compression: l.Mode,
			Chunks: manifest.ChunksOf(l), Group: int64(len(grp)), Skip: skip})
		skip += int64(len(raws[n]))
	}
	alone := mixedData(5000, 8)
	aloneObj, al := enc.EncodeBytes(nil, alone)
	sum := sha256.Sum256(alone)
	files = append(files, manifest.File{Path: "ks/t-1/nb-2-big-Summary.db", Size: int64(len(alone)), ModTime: time.Unix(1_700_000_000, 0).UTC(),
		Mode: 0o640, SHA256: hex.EncodeToString(sum[:]), Key: key, Offset: int64(len(obj)), StoredSize: al.StoredSize,
		Compression: al.Mode, ChunkSize: al.ChunkSize, Chunks: manifest.ChunksOf(al)})
	raws["ks/t-1/nb-2-big-Summary.db"] = alone
	pack := append(obj, aloneObj...)
	if err := client.PutBytes(context.Background(), node.Root()+key, pack, ""); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	if _, err := Run(context.Background(), client, node, backupOf(node, files...), Options{Target: target}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, target, raws)

	pack[len(obj)/2] ^= 0xff
	if err := client.PutBytes(context.Background(), node.Root()+key, pack, ""); err != nil {
		t.Fatal(err)
	}
	target = t.TempDir()
	_, err = Run(context.Background(), client, node, backupOf(node, files...), Options{Target: target})
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), key) {
		t.Fatalf("restore of a damaged group: %v, want a verification failure naming %s", err, key)
	}
	checkTree(t, target, map[string][]byte{})
}
