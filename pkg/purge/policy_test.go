package purge

import (
	"slices"
	"testing"
	"time"
)

func TestPolicyApply(t *testing.T) {
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	var backups []Backup
	for d := 1; d <= 25; d++ { // two a day, 1 Nov (a Sunday) to 25 Nov
		for _, h := range []int{2, 14} {
			backups = append(backups, Backup{ID: day(d, h).Format("20060102T150405Z"), Time: day(d, h)})
		}
	}
	backups = append(backups, Backup{ID: "imported-by-hand"}) // unknown time
	ids := func(bs []Backup) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.ID)
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		name string
		p    Policy
		keep []string
	}{
		{"last 3", Policy{Last: 3}, []string{"20261124T140000Z", "20261125T020000Z", "20261125T140000Z", "imported-by-hand"}},
		{"within 1d of the newest", Policy{Within: 24 * time.Hour}, []string{"20261124T140000Z", "20261125T020000Z", "20261125T140000Z", "imported-by-hand"}},
		{"daily 3 keeps each day's newest", Policy{Daily: 3}, []string{"20261123T140000Z", "20261124T140000Z", "20261125T140000Z", "imported-by-hand"}},
		{"weekly 2 (ISO weeks start on Monday)", Policy{Weekly: 2}, []string{"20261122T140000Z", "20261125T140000Z", "imported-by-hand"}},
		{"monthly 5 with one month of data", Policy{Monthly: 5}, []string{"20261125T140000Z", "imported-by-hand"}},
		{"rules add up", Policy{Last: 1, Daily: 2}, []string{"20261124T140000Z", "20261125T140000Z", "imported-by-hand"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, remove := tt.p.Apply(backups)
			if got := ids(keep); !slices.Equal(got, tt.keep) {
				t.Fatalf("kept %v, want %v", got, tt.keep)
			}
			if len(keep)+len(remove) != len(backups) {
				t.Fatalf("%d kept + %d removed != %d", len(keep), len(remove), len(backups))
			}
			for _, b := range keep {
				if len(b.Reasons) == 0 {
					t.Fatalf("%s kept without a reason", b.ID)
				}
			}
		})
	}
}

func TestEmptyPolicyIsRefused(t *testing.T) {
	if err := (Policy{}).Validate(); err != ErrNoPolicy {
		t.Fatalf("empty policy: %v", err)
	}
	if err := (Policy{Last: -1, Daily: 1}).Validate(); err == nil {
		t.Fatal("negative count accepted")
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "36h": 36 * time.Hour, "0": 0, "1.5d": 36 * time.Hour} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "xd", "1y", "-3h"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}
