package transfer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/iotest"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/miniotest"
)

var srv *miniotest.Server

func TestMain(m *testing.M) {
	os.Exit(miniotest.Main(m, func(s *miniotest.Server) error { srv = s; return nil }, "transfer"))
}

func client(t *testing.T, checksum string) *Client {
	t.Helper()
	c, err := New(context.Background(), Options{Bucket: "transfer", ChecksumCalculation: checksum})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// uploadStream stores everything r yields at key as a multipart upload of
// partSize parts, concurrency of them in flight, the way pkg/backup drives
// large files' uploads (without the resume records); a failure aborts the
// upload.
func uploadStream(ctx context.Context, c *Client, key string, r io.Reader, partSize int64, concurrency int) (err error) {
	u, err := c.StartMultipart(ctx, key)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			c.Abort(context.WithoutCancel(ctx), u)
		}
	}()
	var (
		mu    sync.Mutex
		parts []Part
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for n := int32(1); ; n++ {
		b := make([]byte, partSize)
		k, rerr := io.ReadFull(r, b)
		if k > 0 || n == 1 {
			g.Go(func() error {
				p, err := c.UploadPart(gctx, u, n, Bytes(b[:k]))
				mu.Lock()
				parts = append(parts, p)
				mu.Unlock()
				return err
			})
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			g.Wait()
			return rerr
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	slices.SortFunc(parts, func(a, b Part) int { return cmp.Compare(a.Number, b.Number) })
	return c.CompleteMultipart(ctx, u, parts)
}

// TestMultipartStreamRoundTrip uploads an unseekable stream of several
// parts, with and without request checksums, and reads it back whole and
// by range.
func TestMultipartStreamRoundTrip(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 3*MinPartSize+12345)
	rand.Read(data)
	for _, mode := range []string{"when_supported", "when_required"} {
		c := client(t, mode)
		key := "mp/" + mode
		// HalfReader hides io.Seeker and forces short reads.
		if err := uploadStream(ctx, c, key, iotest.HalfReader(bytes.NewReader(data)), MinPartSize, 3); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		got, err := c.GetBytes(ctx, key, 1<<30)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes, err %v", mode, len(got), err)
		}
		body, err := c.Get(ctx, key, MinPartSize-10, 20)
		if err != nil {
			t.Fatal(err)
		}
		part, _ := io.ReadAll(body)
		body.Close()
		if !bytes.Equal(part, data[MinPartSize-10:MinPartSize+10]) {
			t.Fatalf("%s: range across a part boundary is wrong", mode)
		}
		info, err := c.Head(ctx, key)
		if err != nil || info.Size != int64(len(data)) {
			t.Fatalf("%s: head %+v %v", mode, info, err)
		}
	}
}

func TestConditionalPutAndNotFound(t *testing.T) {
	ctx := context.Background()
	c := client(t, "")
	if err := c.PutBytesIfAbsent(ctx, "cond/once", []byte("a"), ""); err != nil {
		t.Fatal(err)
	}
	if err := c.PutBytesIfAbsent(ctx, "cond/once", []byte("b"), ""); !errors.Is(err, ErrExists) {
		t.Fatalf("second conditional put: want ErrExists, got %v", err)
	}
	if b, _ := c.GetBytes(ctx, "cond/once", 10); string(b) != "a" {
		t.Fatalf("conditional put replaced the object: %q", b)
	}
	if _, err := c.Head(ctx, "cond/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("head missing: %v", err)
	}
	if _, err := c.Get(ctx, "cond/missing", 0, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if _, err := c.GetBytes(ctx, "cond/once", 0); err == nil {
		t.Fatal("GetBytes ignored its limit")
	}
}

func TestListPagesAndDirs(t *testing.T) {
	ctx := context.Background()
	c := client(t, "")
	for i := range 1005 { // more than one ListObjectsV2 page
		if err := c.PutBytes(ctx, fmt.Sprintf("list/n%d/obj-%04d", i%3, i), nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, err := range c.List(ctx, "list/") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1005 {
		t.Fatalf("listed %d objects, want 1005", n)
	}
	var dirs []string
	for d, err := range c.ListDirs(ctx, "list/") {
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	if len(dirs) != 3 || dirs[0] != "list/n0/" {
		t.Fatalf("dirs %v", dirs)
	}
}

func TestMissingBucketIsNamed(t *testing.T) {
	c, err := New(context.Background(), Options{Bucket: "no-such-bucket-here"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckBucket(context.Background())
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("no-such-bucket-here")) {
		t.Fatalf("want an error naming the bucket, got %v", err)
	}
}

func TestPartSizeFor(t *testing.T) {
	for _, tc := range []struct{ largest, min, want int64 }{
		{0, 16 << 20, 16 << 20},
		{1 << 30, 0, MinPartSize},
		{5 << 40, 16 << 20, 530 << 20}, // 5 TiB + 1% in 10,000 parts = 529.5 MiB, rounded up
	} {
		got := PartSizeFor(tc.largest, tc.min)
		if got != tc.want {
			t.Errorf("PartSizeFor(%d, %d) = %d, want %d", tc.largest, tc.min, got, tc.want)
		}
		if tc.largest > 0 && (got*MaxParts < tc.largest+tc.largest/100) {
			t.Errorf("PartSizeFor(%d): %d parts cannot hold it", tc.largest, MaxParts)
		}
	}
}
