package catalog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
)

// TestLiveTableFindsEveryEntry: entries added one by one — many keys
// twice, as two contents whose SHA-256s share 64 bits would be — are all
// found, at every size the runs merge at, and a key never added is not;
// the table costs 16 bytes an entry once its runs are merged.
func TestLiveTableFindsEveryEntry(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tab liveTable
	want := map[uint64][]uint64{}
	check := func(n int) {
		t.Helper()
		for k, locs := range want {
			var got []uint64
			tab.each(k, func(loc uint64) bool { got = append(got, loc); return false })
			slices.Sort(got)
			if !slices.Equal(got, locs) {
				t.Fatalf("after %d entries: key %x has %v, want %v", n, k, got, locs)
			}
		}
		if tab.each(1<<63+12345, func(uint64) bool { return true }) {
			t.Fatalf("after %d entries: a key never added was found", n)
		}
	}
	for i := range 20000 {
		k := rng.Uint64() >> 1
		if i%7 == 0 && i > 0 {
			k = tab.tailOrRunKey(rng) // a key added before
		}
		tab.add(entry{k, uint64(i)})
		want[k] = append(want[k], uint64(i))
		if i == liveTail-1 || i == 3*liveTail || i == 5000 {
			check(i + 1)
		}
	}
	check(20000)
	for i := 1; i < len(tab.runs); i++ {
		if len(tab.runs[i]) >= len(tab.runs[i-1]) {
			t.Fatalf("run %d has %d entries, not fewer than the %d of the run before", i, len(tab.runs[i]), len(tab.runs[i-1]))
		}
	}
	if m := tab.memory(); m > 20000*16*5/4 {
		t.Fatalf("%d bytes for 20,000 entries, want about 16 each", m)
	}
}

// tailOrRunKey picks a key already in the table.
func (t *liveTable) tailOrRunKey(rng *rand.Rand) uint64 {
	if len(t.runs) == 0 || len(t.tail) > 0 && rng.IntN(2) == 0 {
		return t.tail[rng.IntN(len(t.tail))].key
	}
	run := t.runs[rng.IntN(len(t.runs))]
	return run[rng.IntN(len(run))].key
}

// TestLiveRecordsReadWhileWritten: a run's records are found by content
// whether their bytes still wait in memory or are in the temporary file,
// and once flushed the file holds every record, in order, as a checkpoint
// reads it.
func TestLiveRecordsReadWhileWritten(t *testing.T) {
	r, err := newLiveRecords(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	var all []byte
	var files []manifest.File
	for i := range 1000 { // some 300 KB of records: several flushes
		sum := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		f := manifest.File{Path: fmt.Sprintf("ks/t-1/nb-%d-big-Data.db", i), Size: int64(i + 1), SHA256: hex.EncodeToString(sum[:]),
			Key: manifest.ObjectKey(hex.EncodeToString(sum[:]), false, 0), StoredSize: int64(i + 1), Compression: chunk.None}
		if err := r.add(&f, ""); err != nil {
			t.Fatal(err)
		}
		line, err := manifest.AppendRecord(nil, &f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, line...)
		files = append(files, f)
		for _, j := range []int{0, i / 2, i} {
			got, ok := r.byContent(files[j].SHA256, files[j].Size)
			if !ok || got.Path != files[j].Path {
				t.Fatalf("after %d records: record %d found %v as %q, want %q", i+1, j, ok, got.Path, files[j].Path)
			}
		}
	}
	if r.flushed == 0 || len(r.tail) == 0 {
		t.Fatalf("flushed %d bytes, %d waiting: the test should cover both", r.flushed, len(r.tail))
	}
	if err := r.flush(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, r.size)
	if _, err := r.f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("the file holds %d bytes unlike the %d of the records added", len(got), len(all))
	}
}
