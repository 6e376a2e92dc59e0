// Package progress is the one interface through which engines report how
// many raw bytes they have done, whatever shows it (a terminal bar, nothing).
package progress

// Counter is told how many bytes are done; it must be safe for concurrent use.
type Counter interface{ Add(n int64) }

// Discard ignores progress.
var Discard Counter = discard{}

type discard struct{}

func (discard) Add(int64) {}
