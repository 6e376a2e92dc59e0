package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
)

// TestTablesOfAddsUpBatches: a backup's tables added up a batch of files
// at a time are the tables of all its files at once, whatever table spans
// a batch's end, and the filter applies.
func TestTablesOfAddsUpBatches(t *testing.T) {
	var files restore.Files
	var all []cassandra.BackupFile
	for i := range 10_000 {
		p := fmt.Sprintf("ks/t%d-%032x/nb-%d-big-Data.db", i/3000, i/3000+1, i)
		if i%7 == 0 {
			p = fmt.Sprintf("ks/t%d-%032x/manifest.json.%d", i/3000, i/3000+1, i) // not an sstable: not counted
		}
		files = append(files, manifest.File{Path: p, Size: int64(i)})
		all = append(all, cassandra.BackupFile{Path: p, Size: int64(i)})
	}
	got, err := tablesOf(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := cassandra.Tables(all); !reflect.DeepEqual(got, want) || len(got) != 4 {
		t.Fatalf("tables in batches:\n%+v\nall at once:\n%+v", got, want)
	}
	keep := func(p string) bool { return strings.HasPrefix(p, "ks/t1-") }
	got, err = tablesOf(files, keep)
	if err != nil || len(got) != 1 || got[0].Table != "t1" {
		t.Fatalf("filtered: %+v, %v", got, err)
	}
}
