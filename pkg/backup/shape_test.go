package backup

import "testing"

func TestStreamShapeFitsTheBudget(t *testing.T) {
	const mib = 1 << 20
	def := Stream{ChunkSize: 8 * mib, PartSize: 16 * mib, Concurrency: 2}
	tests := []struct {
		name       string
		budget     int64
		largest    int64
		fixedChunk bool
		want       Stream
	}{
		{"unbounded keeps everything", 0, 1 << 30, false, def},
		{"default budget keeps everything", 160 * mib, 1 << 30, false, def},
		{"64MiB budget: smaller parts first", 40 * mib, 1 << 30, false, Stream{ChunkSize: 4 * mib, PartSize: 5 * mib, Concurrency: 1}},
		{"fixed chunk is kept", 40 * mib, 1 << 30, true, Stream{ChunkSize: 8 * mib, PartSize: 5 * mib, Concurrency: 1}},
		{"16MiB: floor of one-MiB chunks", 10 * mib, 1 << 30, false, Stream{ChunkSize: 1 * mib, PartSize: 5 * mib, Concurrency: 1}},
		// 300 GB need 32 MiB parts for 10,000 parts: never below that.
		{"large file keeps its part size", 40 * mib, 300 << 30, false, Stream{ChunkSize: 1 * mib, PartSize: 32 * mib, Concurrency: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StreamShape(tt.budget, def, tt.largest, tt.fixedChunk)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
