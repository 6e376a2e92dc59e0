package cassandra

import (
	"fmt"
	"time"
)

// AutoTagPrefix begins every tag that --tag auto names.
const AutoTagPrefix = "auto-"

// AutoTag names the snapshot of the period that now falls in: the UTC time
// floored to period, as auto-2026-11-30 for periods of whole days,
// auto-2026-11-30T06 for whole hours, auto-2026-11-30T0630 for minutes.
// Every node of a cluster computes the same tag for the same period without
// talking to the others (given clocks that agree, and a run not scheduled
// at a period's edge). The period divides a day or is whole days; the
// floors count from 0001-01-01 UTC, so a 168h period begins on Mondays.
func AutoTag(now time.Time, period time.Duration) (string, error) {
	const day = 24 * time.Hour
	if period < time.Minute || period%time.Minute != 0 || (period < day && day%period != 0) || (period > day && period%day != 0) {
		return "", fmt.Errorf("--tag-period %s: want whole minutes that divide a day (1h, 6h, 30m), or whole days (24h, 168h)", period)
	}
	t := now.UTC().Truncate(period)
	switch {
	case period%day == 0:
		return AutoTagPrefix + t.Format("2006-01-02"), nil
	case period%time.Hour == 0:
		return AutoTagPrefix + t.Format("2006-01-02T15"), nil
	}
	return AutoTagPrefix + t.Format("2006-01-02T1504"), nil
}
