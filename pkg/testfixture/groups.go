package testfixture

import (
	"context"
	"fmt"

	"github.com/s3bak/s3bak/pkg/source"
)

// SameAsWhole lists grouped, a group at a time, and tells how it differs
// from whole, the same snapshot listed at once: a grouped set must give
// exactly the whole set's files, in path order, with the same totals. each,
// when not nil, is given every group's files for the caller's own checks.
func SameAsWhole(ctx context.Context, grouped, whole *source.Set, each func(g source.Group, files []source.File)) error {
	if grouped.Files != nil || len(grouped.Groups) == 0 {
		return fmt.Errorf("not a grouped set: %d files, %d groups", len(grouped.Files), len(grouped.Groups))
	}
	var all []source.File
	var largest int64
	prev := ""
	for _, g := range grouped.Groups {
		files, err := g.List(ctx)
		if err != nil {
			return fmt.Errorf("group %s: %w", g.Key, err)
		}
		for _, f := range files {
			if prev != "" && source.ComparePaths(prev, f.Path) >= 0 {
				return fmt.Errorf("%s listed after %s", f.Path, prev)
			}
			prev = f.Path
			largest = max(largest, f.Size)
		}
		if each != nil {
			each(g, files)
		}
		all = append(all, files...)
	}
	if len(all) != len(whole.Files) || grouped.Count() != len(all) || grouped.TotalSize() != whole.TotalSize() || grouped.LargestFile() != largest {
		return fmt.Errorf("grouped: %d files (%d counted), %d bytes, largest %d; whole: %d files, %d bytes",
			len(all), grouped.Count(), grouped.TotalSize(), grouped.LargestFile(), len(whole.Files), whole.TotalSize())
	}
	for i := range all {
		if all[i].Path != whole.Files[i].Path || all[i].Abs() != whole.Files[i].Abs() {
			return fmt.Errorf("file %d: %s from %s, whole set %s from %s", i, all[i].Path, all[i].Abs(), whole.Files[i].Path, whole.Files[i].Abs())
		}
	}
	return nil
}
