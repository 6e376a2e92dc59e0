package backup

import (
	"bytes"
	"io"
	"testing"
)

// TestConcatReadsItsPartsInTurn: the stored manifest is sent from its
// head, the temporary file and its tail as one seekable body; every range
// of it reads as the bytes joined would.
func TestConcatReadsItsPartsInTurn(t *testing.T) {
	parts := [][]byte{[]byte("head-"), []byte("records\nrecords\n"), {}, []byte("-tail")}
	var c concat
	var want []byte
	for _, p := range parts {
		c = append(c, struct {
			r io.ReaderAt
			n int64
		}{bytes.NewReader(p), int64(len(p))})
		want = append(want, p...)
	}
	if c.size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", c.size(), len(want))
	}
	for off := 0; off <= len(want); off++ {
		for n := 0; off+n <= len(want)+2; n++ {
			b := make([]byte, n)
			got, err := c.ReadAt(b, int64(off))
			end := min(off+n, len(want))
			if got != end-off || !bytes.Equal(b[:got], want[off:end]) {
				t.Fatalf("ReadAt(%d bytes at %d) = %q, want %q", n, off, b[:got], want[off:end])
			}
			if off+n > len(want) && err != io.EOF {
				t.Fatalf("ReadAt past the end at %d+%d: %v, want EOF", off, n, err)
			}
			if off+n <= len(want) && err != nil {
				t.Fatalf("ReadAt(%d at %d): %v", n, off, err)
			}
		}
	}
	all, err := io.ReadAll(io.NewSectionReader(c, 0, c.size()))
	if err != nil || !bytes.Equal(all, want) {
		t.Fatalf("whole: %q, %v", all, err)
	}
}
