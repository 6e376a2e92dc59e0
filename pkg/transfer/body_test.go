package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"hash/crc32"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/s3bak/s3bak/pkg/faultproxy"
)

// TestPiecesReaderReadsAndRewinds: a Body of several pieces reads as their
// concatenation, and seeks (as the SDK does to send it again) from any
// place to any other, empty pieces included (iotest.TestReader checks
// Read and Seek against the content).
func TestPiecesReaderReadsAndRewinds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pieces []string
	}{
		{"two", []string{"hello, ", "world"}},
		{"empty between", []string{"ab", "", "cd", "", "", "e"}},
		{"empty first and last", []string{"", "abc", "defgh", ""}},
		{"long", []string{strings.Repeat("x", 5000), strings.Repeat("y", 3), strings.Repeat("z", 7000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b Body
			for _, p := range tc.pieces {
				b.Pieces = append(b.Pieces, []byte(p))
			}
			want := strings.Join(tc.pieces, "")
			if b.Len() != int64(len(want)) {
				t.Fatalf("Len %d, want %d", b.Len(), len(want))
			}
			if err := iotest.TestReader(b.reader(), []byte(want)); err != nil {
				t.Fatal(err)
			}
			if got, wantSum := b.sum(), crc32.Checksum([]byte(want), castagnoli); got != wantSum {
				t.Fatalf("CRC32C %08x, want %08x", got, wantSum)
			}
		})
	}
}

// TestPartOfPiecesIsSentAgainWhole: a part sent from several pieces whose
// first attempt fails is sent again from its start, and the object holds
// the pieces one after the other. The CRC32C a caller summed is the one
// the server checks: a wrong one fails the part.
func TestPartOfPiecesIsSentAgainWhole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, c := proxied(t)
	if !c.PartChecksums() {
		t.Fatal("the test client sends no part checksums")
	}
	pieces := make([][]byte, 3)
	var crc uint32
	for i, n := range []int{MinPartSize / 2, 0, MinPartSize/2 + 777} {
		pieces[i] = make([]byte, n)
		rand.Read(pieces[i])
		crc = crc32.Update(crc, castagnoli, pieces[i])
	}
	key := "faults/pieces"
	u, err := c.StartMultipart(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort(context.WithoutCancel(ctx), u)
	// A mismatch is retried as bytes damaged on the way: once is enough.
	once, err := New(ctx, Options{Bucket: "transfer", EndpointURL: srv.URL, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	wrong := Body{Pieces: pieces, CRC32C: crc + 1, Summed: true}
	if _, err := once.UploadPart(ctx, u, 1, wrong); damagedOnTheWay.IsErrorRetryable(err) != aws.TrueTernary {
		t.Fatalf("a part with a wrong CRC32C: %v, want the server's checksum mismatch", err)
	}
	fail := p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodPut, key), Times: 1, Fault: faultproxy.Status(http.StatusInternalServerError)})
	part, err := c.UploadPart(ctx, u, 1, Body{Pieces: pieces, CRC32C: crc, Summed: true})
	if err != nil {
		t.Fatal(err)
	}
	if fail.Applied() != 1 || fail.Seen() != 2 {
		t.Fatalf("proxy saw %d attempts (%d failed), want the part and its retry", fail.Seen(), fail.Applied())
	}
	if err := c.CompleteMultipart(ctx, u, []Part{part}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetBytes(ctx, key, 1<<30)
	if want := bytes.Join(pieces, nil); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes (%v), want the %d of the pieces", len(got), err, len(want))
	}
}
