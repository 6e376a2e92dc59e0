package purge

import (
	"math"
	"testing"
	"time"
)

func TestEarlyDeletionCharge(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	const gib = 1 << 30
	for _, tc := range []struct {
		class string
		size  int64
		age   time.Duration
		want  float64
	}{
		{"STANDARD", gib, day, 0},
		{"INTELLIGENT_TIERING", gib, day, 0},
		{"", gib, day, 0},
		{"STANDARD_IA", gib, 10 * day, 0.0125 * 20 / 30},          // 20 of 30 days left
		{"standard_ia", gib, 30 * day, 0},                         // the minimum has passed
		{"ONEZONE_IA", 10 * gib, 0, 0.01 * 10},                    // a whole month
		{"GLACIER_IR", gib, 30 * day, 0.004 * 60 / 30},            // 90-day minimum
		{"GLACIER_IR", 1, 89 * day, 0.004 * 128 / (1 << 20) / 30}, // billed as 128 KiB for 1 day
		{"DEEP_ARCHIVE", gib, 0, 0.00099 * 6},
	} {
		got := Charge(tc.class, tc.size, now.Add(-tc.age), now)
		if math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s, %d bytes, %v old: $%g, want $%g", tc.class, tc.size, tc.age, got, tc.want)
		}
	}
	var e EarlyDeletion
	e.add("STANDARD_IA", gib, now.Add(-10*day), now)
	e.add("STANDARD_IA", gib, now.Add(-40*day), now)
	e.add("STANDARD", gib, now, now)
	if e.Objects != 1 || e.Bytes != gib || math.Abs(e.USD-0.0125*20/30) > 1e-12 {
		t.Fatalf("%+v", e)
	}
}
