package main

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/transfer"
)

// A large file's parts follow the bucket's round trip unless the flags
// name them; a round trip not measured counts as far, as S3 is.
func TestPartsFollowTheRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rtt       time.Duration
		size      int64
		atOnce    int
		wantSize  int64
		wantParts int
	}{
		{"a MinIO beside the node", 800 * time.Microsecond, 0, 0, 16 << 20, 3},
		{"S3, 20 ms away", 20 * time.Millisecond, 0, 0, 8 << 20, 8},
		{"not measured", 0, 0, 0, 8 << 20, 8},
		{"at the threshold", transfer.NearRoundTrip, 0, 0, 8 << 20, 8},
		{"--part-size given", 20 * time.Millisecond, 32 << 20, 0, 32 << 20, 8},
		{"--part-concurrency given", 800 * time.Microsecond, 0, 8, 16 << 20, 8},
		{"both given", 20 * time.Millisecond, 64 << 20, 2, 64 << 20, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &backupOptions{partSize: tc.size, partsAtOnce: tc.atOnce}
			size, n := o.parts(tc.rtt, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if size != tc.wantSize || n != tc.wantParts {
				t.Fatalf("parts(%s) = %d bytes × %d, want %d × %d", tc.rtt, size, n, tc.wantSize, tc.wantParts)
			}
		})
	}
}
