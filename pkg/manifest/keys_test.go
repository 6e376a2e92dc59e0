package manifest

import (
	"slices"
	"testing"
	"time"
)

func TestIDsNameTheMillisecondAndSortWithOldIDs(t *testing.T) {
	at := time.Date(2026, 11, 25, 2, 0, 0, 123_456_789, time.FixedZone("CET", 3600))
	id := NewID(at)
	if id != "20261125T010000Z.123" {
		t.Fatalf("NewID = %q", id)
	}
	if err := CheckName("backup id", id); err != nil {
		t.Fatal(err)
	}
	if got, ok := IDTime(id); !ok || !got.Equal(at.Truncate(time.Millisecond)) {
		t.Fatalf("IDTime(%q) = %v, %v", id, got, ok)
	}
	if got, ok := IDFromKey(ManifestKey(id)); !ok || got != id {
		t.Fatalf("IDFromKey(ManifestKey(%q)) = %q, %v", id, got, ok)
	}
	// An id of an older s3bak names the second.
	if got, ok := IDTime("20261125T010000Z"); !ok || !got.Equal(time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)) {
		t.Fatalf("IDTime of an old id = %v, %v", got, ok)
	}
	for _, bad := range []string{"imported-by-hand", "20261125T010000Z.12", "20261125T010000Z-123", ""} {
		if _, ok := IDTime(bad); ok {
			t.Errorf("IDTime(%q) is a time", bad)
		}
	}
	// Sorted as strings (as catalog.IDs and the index sort them), old and
	// new ids come in the order of their times.
	base := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	ids := []string{
		NewID(base.Add(1500 * time.Millisecond)),
		"20261125T010001Z",
		NewID(base.Add(999 * time.Millisecond)),
		"20261125T010000Z",
		NewID(base.Add(2 * time.Millisecond)),
		NewID(base),
	}
	slices.Sort(ids)
	for i := 1; i < len(ids); i++ {
		a, _ := IDTime(ids[i-1])
		b, _ := IDTime(ids[i])
		if a.After(b) {
			t.Fatalf("sorted ids %q: %s before %s", ids, ids[i-1], ids[i])
		}
	}
	if ids[0] != "20261125T010000Z" || ids[len(ids)-1] != NewID(base.Add(1500*time.Millisecond)) {
		t.Fatalf("sorted ids %q", ids)
	}
}
